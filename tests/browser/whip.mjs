// WHIP and WHEP from pages written as a third party would write them: plain RTCPeerConnection +
// fetch, no SDK, served from another origin than the server (so every request is a CORS one).
// One page publishes a yellow canvas with WHIP; an SDK member of the room sees it as an ordinary
// member and decodes yellow; a second plain page plays it with WHEP and decodes yellow; DELETE
// ends it and the member sees it leave. Prints the time from the WHIP POST to the member's first
// decoded frame (no assertion on it).

import http from 'node:http';
import { assert, freePort, newPage, uniqueRoom, waitFor } from './harness.mjs';
import { INPAGE, colourOf, events, helperPage, joinAs } from './subscriptions.mjs';

/** A blank page on another port of loopback: an origin that is not the server's. */
async function thirdPartyOrigin() {
  const port = await freePort();
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>a third-party player</title><body></body>');
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

async function plainPage(browser, origin, label) {
  const page = await newPage(browser, label);
  await page.goto(`${origin}/`);
  // The colour helpers only (canvas tracks, frame colours); the page never loads the SDK.
  await page.addScriptTag({ path: INPAGE });
  return page;
}

/** In the page: publish a canvas of `colour` with WHIP, trickling candidates with PATCH. */
async function whipPublish(page, url, colour) {
  return page.evaluate(async ({ url: u, colour: c }) => {
    const startedAt = Date.now();
    const pc = new RTCPeerConnection();
    pc.addTransceiver(window.sbt.colourTrack(c), { direction: 'sendonly' });
    const patches = [];
    const pending = [];
    let resource = null;
    let etag = null;
    const trickle = async (candidate) => {
      const frag = `a=ice-ufrag:${candidate.usernameFragment}\r\n`
        + `a=mid:${candidate.sdpMid}\r\na=${candidate.candidate}\r\n`;
      const r = await fetch(resource, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': etag },
        body: frag,
      });
      patches.push(r.status);
    };
    pc.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate) return;
      if (resource) trickle(e.candidate); else pending.push(e.candidate);
    };
    await pc.setLocalDescription(await pc.createOffer());
    const res = await fetch(u, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    const answer = await res.text();
    if (res.status !== 201) return { status: res.status, body: answer };
    resource = new URL(res.headers.get('Location'), u).href;
    etag = res.headers.get('ETag');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    for (const cand of pending.splice(0)) await trickle(cand);
    window.whip = { pc, resource, patches };
    return { status: res.status, resource, etag, startedAt, exposed: res.headers.get('Location') !== null };
  }, { url, colour });
}

/** In the page: play `url` with WHEP (one recvonly video and audio m-line). */
async function whepPlay(page, url) {
  return page.evaluate(async (u) => {
    const startedAt = Date.now();
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const tracks = [];
    pc.ontrack = (e) => tracks.push(e.track);
    await pc.setLocalDescription(await pc.createOffer());
    const res = await fetch(u, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    const answer = await res.text();
    if (res.status !== 201) return { status: res.status, body: answer };
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    window.whep = { pc, tracks, resource: new URL(res.headers.get('Location'), u).href };
    return { status: res.status, startedAt };
  }, url);
}

/** When the plain page's player first decoded a video frame (Unix ms), waiting for it. */
async function firstDecoded(page) {
  return waitFor(`${page.label} to decode a video frame`, () => page.evaluate(async () => {
    if (window.whep.firstFrameAt) return window.whep.firstFrameAt;
    const report = await window.whep.pc.getStats();
    let frames = 0;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
    });
    if (frames > 0) window.whep.firstFrameAt = Date.now();
    return window.whep.firstFrameAt ?? null;
  }), { timeout: 20000, interval: 20 });
}

async function playerColour(page) {
  return waitFor(`${page.label} to show a solid colour`, () => page.evaluate(async () => {
    const video = window.whep.tracks.find((t) => t.kind === 'video');
    if (!video) return null;
    const seen = [];
    for (let i = 0; i < 3; i += 1) seen.push(await window.sbt.frameColour(video, 3000));
    return new Set(seen).size === 1 && !seen[0].startsWith('none') ? seen[0] : null;
  }), { timeout: 20000 });
}

const del = (page, which) => page.evaluate(async (w) => (await fetch(window[w].resource, { method: 'DELETE' })).status, which);

export async function whipAndWhep({ browser, server, report }) {
  const roomName = uniqueRoom('whip');
  const origin = await thirdPartyOrigin();
  const member = await helperPage(browser, server.base, 'whip-member');
  const publisher = await plainPage(browser, origin.base, 'whip-publisher');
  const player = await plainPage(browser, origin.base, 'whep-player');
  try {
    await joinAs(member, { host: server.host, roomName, id: 'member', publish: [{ colour: 'green', name: 'camera' }] });

    const pub = await whipPublish(publisher, `${server.base}/whip/${roomName}`, 'yellow');
    assert(pub.status === 201, `WHIP POST answered ${pub.status}: ${pub.body}`);
    assert(pub.exposed, 'the Location header is readable cross-origin');
    assert(/^"[0-9a-f]+"$/.test(pub.etag ?? ''), `an ETag: ${pub.etag}`);

    // The SDK member sees an ordinary member, and its track decodes yellow.
    const joined = await waitFor('the member to see the WHIP publisher join', async () => {
      const peers = (await events(member, 'peerJoin')).map((e) => e[2]);
      return peers.find((p) => typeof p === 'string' && p.startsWith('whip-')) ?? null;
    });
    const trackId = `${joined}:video`;
    const frameAt = await waitFor(`the member to decode ${trackId}`, () => member.evaluate(async (t) => {
      const s = (await window.room.getTrackStats())[t];
      return s && s.framesDecoded > 0 ? Date.now() : null;
    }, trackId), { timeout: 20000, interval: 20 });
    const colour = await colourOf(member, joined, trackId);
    assert(colour === 'yellow', `the member decodes ${trackId} as ${colour}, not yellow (the WHIP page's canvas)`);
    report(`WHIP join-to-first-frame (POST to the SDK member's first decoded frame): ${frameAt - pub.startedAt} ms`);

    // Trickled candidates were taken (mDNS ones are skipped, not refused).
    const patches = await publisher.evaluate(() => window.whip.patches);
    assert(patches.every((s) => s === 204), `PATCH statuses: ${JSON.stringify(patches)}`);
    report(`PATCH trickle: ${patches.length} candidates, all 204`);

    // A plain WHEP page plays the publisher (one member's tracks): yellow.
    const play = await whepPlay(player, `${server.base}/whep/${roomName}/${joined}`);
    assert(play.status === 201, `WHEP POST answered ${play.status}: ${play.body}`);
    const playedAt = await firstDecoded(player);
    const played = await playerColour(player);
    assert(played === 'yellow', `the WHEP player shows ${played}, not yellow`);
    report(`WHEP POST to the player's first decoded frame: ${playedAt - play.startedAt} ms`);

    // DELETE ends the publisher: the member sees it leave; then the player ends too.
    const status = await del(publisher, 'whip');
    assert(status === 200, `WHIP DELETE answered ${status}`);
    await waitFor('the member to see the WHIP publisher leave', async () => (await events(member, 'peerLeave')).some((e) => e[2] === joined));
    const again = await del(publisher, 'whip');
    assert(again === 404, `a second DELETE answered ${again}`);
    const ended = await del(player, 'whep');
    assert(ended === 200, `WHEP DELETE answered ${ended}`);
  } finally {
    for (const page of [member, publisher, player]) await page.closeContext();
    await origin.close();
  }
}
