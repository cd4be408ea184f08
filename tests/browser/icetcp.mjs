// ICE-TCP: a member whose UDP is blocked (nftables drops every UDP datagram of its network
// namespace, both ways, before it joins) still joins, publishes and receives, over the server's
// passive TCP candidate; a member with UDP in the same room exchanges media with it, checked by
// colour both ways, and the walled member's selected candidate pair is TCP.

import { assert, freePort, newPage, startServer, uniqueRoom } from './harness.mjs';
import { SERVER_IP, isolatedBrowser, loadInMember, networkTools } from './netns.mjs';
import { INPAGE, colourOf, helperPage, joinAs } from './subscriptions.mjs';

/** The transport of the page's selected ICE candidate pair: { protocol, type, pairs }. */
async function selectedPair(page) {
  return page.evaluate(async () => {
    const stats = [...(await window.room.pc.getStats()).values()];
    const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
    const pair = stats.find((s) => s.id === transport?.selectedCandidatePairId);
    const local = stats.find((s) => s.id === pair?.localCandidateId);
    const remote = stats.find((s) => s.id === pair?.remoteCandidateId);
    return { local: local?.protocol, remote: remote?.protocol, remoteType: remote?.candidateType, remotePort: remote?.port };
  });
}

/** The page's ICE candidates and pairs, for a failure message. */
async function iceDiagnostics(page) {
  return page.evaluate(async () => {
    const pc = window.room?.pc;
    if (!pc) return 'no peer connection';
    const stats = [...(await pc.getStats()).values()];
    const cand = (s) => `${s.candidateType}/${s.protocol}${s.tcpType ? `/${s.tcpType}` : ''} ${s.address}:${s.port}`;
    const locals = stats.filter((s) => s.type === 'local-candidate').map(cand);
    const remotes = stats.filter((s) => s.type === 'remote-candidate').map(cand);
    const pairs = stats.filter((s) => s.type === 'candidate-pair').map((s) => `${s.state}${s.nominated ? '*' : ''}`);
    const remoteSdp = (pc.remoteDescription?.sdp ?? '').split('\r\n').filter((l) => l.startsWith('a=candidate'));
    return `ice ${pc.iceConnectionState}; local [${locals}]; remote [${remotes}]; pairs [${pairs}]; answer candidates ${JSON.stringify(remoteSdp)}`;
  });
}

export async function iceTcpWhenUdpIsBlocked({ browser, report }) {
  const tools = networkTools();
  if (tools !== true) throw new Error(`the ICE-TCP test needs a network namespace with nftables: ${tools} (scripts/browser-tests.sh installs it)`);
  const tcpPort = await freePort(SERVER_IP);
  const server = await startServer({ logName: 'server-icetcp.log', ip: SERVER_IP, args: ['--tcp-port', String(tcpPort)] });
  let member = null;
  let open = null;
  let late = null;
  try {
    member = await isolatedBrowser(server.port);
    await member.cut('udp');
    const page = await newPage(member.browser, 'icetcp-walled');
    await loadInMember(page, server.base, INPAGE);
    open = await helperPage(browser, server.base, 'icetcp-open');
    const roomName = uniqueRoom('icetcp');
    await joinAs(open, { host: server.host, roomName, id: 'open', publish: [{ colour: 'blue', name: 'camera', source: 'camera' }] });
    // Join to the first frame the open member decodes, over TCP (walled) and over UDP (late).
    let joinedAt = Date.now();
    await joinAs(page, { host: server.host, roomName, id: 'walled', publish: [{ colour: 'red', name: 'camera', source: 'camera' }] });
    const seenByOpen = await colourOf(open, 'walled', 'walled:camera');
    const tcpFirstFrameMs = Date.now() - joinedAt;
    if (seenByOpen !== 'red') {
      throw new Error(`the open member decodes walled's camera as ${seenByOpen}, not red; walled: ${await iceDiagnostics(page)}`);
    }
    const seenByWalled = await colourOf(page, 'open', 'open:camera');
    assert(seenByWalled === 'blue', `the walled member decodes open's camera as ${seenByWalled}, not blue`);
    late = await helperPage(browser, server.base, 'icetcp-late');
    joinedAt = Date.now();
    await joinAs(late, { host: server.host, roomName, id: 'late', publish: [{ colour: 'green', name: 'camera', source: 'camera' }] });
    const lateSeen = await colourOf(open, 'late', 'late:camera');
    const udpFirstFrameMs = Date.now() - joinedAt;
    assert(lateSeen === 'green', `the open member decodes late's camera as ${lateSeen}, not green`);
    const lateByWalled = await colourOf(page, 'late', 'late:camera');
    assert(lateByWalled === 'green', `the walled member decodes late's camera as ${lateByWalled}, not green`);
    const pair = await selectedPair(page);
    assert(pair.local === 'tcp' && pair.remote === 'tcp' && pair.remotePort === tcpPort,
      `the walled member's selected pair is ${JSON.stringify(pair)}, not TCP to port ${tcpPort}`);
    const openPair = await selectedPair(open);
    assert(openPair.local === 'udp', `the open member's selected pair is ${JSON.stringify(openPair)}, not UDP`);
    report(`UDP blocked: joined over ICE-TCP (port ${tcpPort}); join to the first frame another member decodes: `
      + `${tcpFirstFrameMs} ms over ICE-TCP, ${udpFirstFrameMs} ms over UDP (colour checks take part of it)`);
  } finally {
    await member?.stop();
    for (const p of [open, late]) await p?.closeContext().catch(() => {});
    await server.stop();
  }
}
