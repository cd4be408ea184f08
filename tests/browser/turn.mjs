// TURN through a real coturn started here (loopback, use-auth-secret with the server's
// turn.secret). A member joined with iceTransportPolicy 'relay' gets its TURN credentials from
// `joined` (a UDP, then a TCP TURN URL), sends and receives media only through coturn's relay
// (its selected candidate pair's local candidate is a relay candidate, coturn logs the
// allocation for its peer id), and a normal member and it see each other's own colour; after a
// resume it holds the fresh credentials of `resumed`. Join-to-first-frame is measured over the
// relay and over plain UDP (printed, never asserted). Expired or forged TURN credentials get no
// relay candidate (coturn answers 401), while a fresh one minted the same way does, over UDP and
// TCP.

import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ARTIFACTS, assert, freePort, sleep, startServer, uniqueRoom, waitFor } from './harness.mjs';
import { colourOf, helperPage } from './subscriptions.mjs';

const REALM = 'switchboard.test';

/** The TURN REST credential, as the server mints it (crates/control/src/turn.rs). */
export function mintTurn(secret, peerId, expiresAt) {
  const username = `${expiresAt}:${peerId}`;
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') };
}

/**
 * coturn on 127.0.0.1 with a free listening port, a relay port range of its own, the TURN REST
 * secret `secret`, no TLS/DTLS, and relaying to loopback peers allowed (the Switchboard server
 * is on 127.0.0.1 too). Returns { port, url, log(), stop() }.
 */
export async function startCoturn(secret, logName) {
  if (spawnSync('sh', ['-c', 'command -v turnserver']).status !== 0) {
    throw new Error('turnserver (coturn) is not installed; scripts/browser-tests.sh installs it');
  }
  const port = await freePort();
  const minPort = 31000 + Math.floor(Math.random() * 400) * 20;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-coturn-'));
  const logPath = path.join(ARTIFACTS, logName);
  const out = createWriteStream(logPath);
  const child = spawn('turnserver', [
    '-n', // no config file: everything is here
    '--listening-ip', '127.0.0.1',
    '--relay-ip', '127.0.0.1',
    '--listening-port', String(port),
    '--min-port', String(minPort),
    '--max-port', String(minPort + 19),
    '--use-auth-secret',
    '--static-auth-secret', secret,
    '--realm', REALM,
    '--no-tls',
    '--no-dtls',
    '--allow-loopback-peers',
    '--no-cli',
    '--no-rfc5780',
    '--no-software-attribute',
    '--log-file', 'stdout',
    '--simple-log',
    '--verbose',
    '--pidfile', path.join(dir, 'turnserver.pid'),
    '--userdb', path.join(dir, 'turndb'),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(out, { end: false });
  child.stderr.pipe(out, { end: false });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => out.end());
  const log = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const done = await Promise.race([exited, sleep(5000).then(() => null)]);
      if (!done) {
        child.kill('SIGKILL');
        await Promise.race([exited, sleep(2000)]);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('coturn to open its UDP listener', () => {
      if (child.exitCode !== null) throw new Error(`turnserver exited with ${child.exitCode}; see ${logPath}`);
      return log().includes(`UDP listener opened on: 127.0.0.1:${port}`);
    }, { timeout: 15000, interval: 100 });
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, url: `turn:127.0.0.1:${port}?transport=udp`, log, logPath, stop };
}

/**
 * In the page: join as `id`, time from the join call to the first decoded frame of `watch` (a
 * track id), then publish a `colour` canvas as `camera`. Returns { openMs, firstFrameMs }.
 */
async function joinAndTime(page, { host, roomName, id, peerOptions = {}, watch = null, colour }) {
  return page.evaluate(async ({ h, r, i, po, w, c }) => {
    const t0 = performance.now();
    const room = await window.sbt.join({ host: h, roomName: r, id: i, peerOptions: po });
    const openMs = performance.now() - t0;
    let firstFrameMs = null;
    if (w) {
      const deadline = Date.now() + 30000;
      while (firstFrameMs === null) {
        const stats = await room.getTrackStats();
        if ((stats[w]?.framesDecoded ?? 0) > 0) firstFrameMs = performance.now() - t0;
        else if (Date.now() > deadline) throw new Error(`${i}: no frame of ${w} within 30 s of joining`);
        else await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    await room.publishTrack(window.sbt.colourTrack(c), { name: 'camera', source: 'camera' });
    return { openMs: Math.round(openMs), firstFrameMs: firstFrameMs === null ? null : Math.round(firstFrameMs) };
  }, { h: host, r: roomName, i: id, po: peerOptions, w: watch, c: colour });
}

/** The page's selected candidate pair (both ends) and the types of every local candidate. */
async function selectedPair(page) {
  return page.evaluate(async () => {
    const stats = await window.room.pc.getStats();
    let pair = null;
    const localTypes = new Set();
    stats.forEach((s) => {
      if (s.type === 'local-candidate') localTypes.add(s.candidateType);
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        const p = stats.get(s.selectedCandidatePairId);
        const local = stats.get(p.localCandidateId);
        const remote = stats.get(p.remoteCandidateId);
        pair = {
          local: { type: local.candidateType, address: local.address, port: local.port, relayProtocol: local.relayProtocol, url: local.url },
          remote: { type: remote.candidateType, address: remote.address, port: remote.port },
        };
      }
    });
    return pair && { ...pair, localTypes: [...localTypes].sort() };
  });
}

export async function turnRelayCall({ browser, report }) {
  const secret = randomBytes(16).toString('hex');
  const coturn = await startCoturn(secret, 'coturn-call.log');
  try {
    // The server hands out one TURN URL: UDP to coturn, then (another server) TCP to coturn,
    // the way a client whose UDP is blocked reaches it.
    for (const transport of ['udp', 'tcp']) {
      await relayCall(browser, report, coturn, secret, transport);
    }
  } finally {
    await coturn.stop();
  }
}

/** One call with a relay-only member whose TURN URL (from `joined`) uses `transport`. */
async function relayCall(browser, report, coturn, secret, transport) {
  const turnUrl = coturn.url.replace('transport=udp', `transport=${transport}`);
  let server = null;
  const pages = [];
  try {
    server = await startServer({
      logName: `server-turn-${transport}.log`,
      args: ['--turn-urls', turnUrl, '--turn-secret', secret, '--turn-ttl-s', '600'],
    });
    const roomName = uniqueRoom(`turn-${transport}`);
    const host = server.host;
    const anchor = await helperPage(browser, server.base, `turn-${transport}-anchor`);
    const relay = await helperPage(browser, server.base, `turn-${transport}-relay`);
    const direct = await helperPage(browser, server.base, `turn-${transport}-direct`);
    pages.push(anchor, relay, direct);

    await joinAndTime(anchor, { host, roomName, id: 'anchor', colour: 'green' });
    await waitFor('anchor to publish', () => anchor.evaluate(() => window.room.state === 'connected'));
    const viaRelay = await joinAndTime(relay, {
      host, roomName, id: 'relay', peerOptions: { iceTransportPolicy: 'relay' }, watch: 'anchor:camera', colour: 'red',
    });
    const viaUdp = await joinAndTime(direct, { host, roomName, id: 'direct', watch: 'anchor:camera', colour: 'blue' });
    report(`[${transport}] join → first frame of anchor's camera: TURN relay (${transport.toUpperCase()} to coturn) ${viaRelay.firstFrameMs} ms (joined after ${viaRelay.openMs} ms), direct UDP ${viaUdp.firstFrameMs} ms (joined after ${viaUdp.openMs} ms)`);

    // The credential came from `joined`, minted for this peer id and accepted by coturn.
    const config = await relay.evaluate(() => window.room.pc.getConfiguration().iceServers);
    const given = config.find((s) => [].concat(s.urls).includes(turnUrl));
    assert(given && /^\d+:relay$/.test(given.username), `the relay member's ICE servers: ${JSON.stringify(config)}`);
    const expiry = Number(given.username.split(':')[0]);
    const now = Math.floor(Date.now() / 1000);
    assert(expiry > now + 500 && expiry <= now + 600, `expiry ${expiry} is about now + 600 (now ${now})`);
    await waitFor('coturn to log the relay member\'s allocation', () => coturn.log().includes(`user <${given.username}>: incoming packet ALLOCATE processed, success`));

    // Media of the right sender in both directions, and the relay member's path is the relay.
    const seen = {
      'relay sees anchor': await colourOf(relay, 'anchor', 'anchor:camera'),
      'anchor sees relay': await colourOf(anchor, 'relay', 'relay:camera'),
      'direct sees relay': await colourOf(direct, 'relay', 'relay:camera'),
      'relay sees direct': await colourOf(relay, 'direct', 'direct:camera'),
    };
    const expected = { 'relay sees anchor': 'green', 'anchor sees relay': 'red', 'direct sees relay': 'red', 'relay sees direct': 'blue' };
    for (const [what, colour] of Object.entries(expected)) {
      assert(seen[what] === colour, `${what}: ${seen[what]}, expected ${colour} (all: ${JSON.stringify(seen)})`);
    }
    const relayPair = await waitFor('the relay member\'s selected candidate pair', () => selectedPair(relay));
    assert(relayPair.local.type === 'relay' && relayPair.local.relayProtocol === transport,
      `relay member's local candidate is a relay reached over ${transport}: ${JSON.stringify(relayPair)}`);
    assert(relayPair.localTypes.every((t) => t === 'relay'), `relay policy gathers relay candidates only: ${relayPair.localTypes}`);
    const directPair = await waitFor('the direct member\'s selected candidate pair', () => selectedPair(direct));
    assert(directPair.local.type === 'host', `direct member's local candidate: ${JSON.stringify(directPair)}`);

    // Its signalling drops and it resumes: `resumed` brings fresh TURN credentials (a later
    // expiry), which replace the old ones in its RTCPeerConnection; media still flows.
    // Minted in a later second than the first (expiries are whole seconds).
    const mintedAt = expiry - 600;
    for (let i = 0; i < 30 && Math.floor(Date.now() / 1000) <= mintedAt; i += 1) await sleep(100);
    await relay.evaluate(() => window.room._channel.ws.close());
    await waitFor('the relay member to resume', () => relay.evaluate(() => window.events.some((e) => e[1] === 'resumed')));
    const after = await relay.evaluate(() => window.room.pc.getConfiguration().iceServers);
    const renewed = after.filter((s) => [].concat(s.urls).includes(turnUrl));
    assert(renewed.length === 1 && /^\d+:relay$/.test(renewed[0].username) && Number(renewed[0].username.split(':')[0]) > expiry,
      `after the resume, one TURN entry with a later expiry than ${expiry}: ${JSON.stringify(after)}`);
    const afterResume = await colourOf(anchor, 'relay', 'relay:camera');
    assert(afterResume === 'red', `anchor sees relay after its resume: ${afterResume}`);
    report(`[${transport}] after a resume the relay member's TURN username went from ${given.username} to ${renewed[0].username}`);
    report(`[${transport}] relay member's pair: ${relayPair.local.type} ${relayPair.local.address}:${relayPair.local.port} (${relayPair.local.relayProtocol} to ${relayPair.local.url}) → server ${relayPair.remote.address}:${relayPair.remote.port}; direct member's: ${directPair.local.type} → ${directPair.remote.address}:${directPair.remote.port}`);
    report(`[${transport}] colours: ${JSON.stringify(seen)}`);
  } finally {
    for (const page of pages) await page.closeContext();
    await server?.stop();
  }
}

/** In the page: gather with `iceServers` under the relay policy; the candidate types found. */
async function gatherRelay(page, iceServers) {
  return page.evaluate(async (servers) => {
    const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: 'relay' });
    const types = [];
    const relayProtocols = [];
    pc.onicecandidate = (e) => {
      if (!e.candidate?.candidate) return;
      const type = e.candidate.candidate.split(' ')[7];
      types.push(type);
      if (type === 'relay') relayProtocols.push(e.candidate.relayProtocol);
    };
    pc.createDataChannel('probe');
    await pc.setLocalDescription(await pc.createOffer());
    const complete = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 20000);
      const check = () => {
        if (pc.iceGatheringState === 'complete') {
          clearTimeout(timer);
          resolve(true);
        }
      };
      pc.onicegatheringstatechange = check;
      check();
    });
    pc.close();
    return { complete, types, relayProtocols };
  }, iceServers);
}

export async function turnExpiredRefused({ browser, server, report }) {
  const secret = randomBytes(16).toString('hex');
  const coturn = await startCoturn(secret, 'coturn-expiry.log');
  const page = await helperPage(browser, server.base, 'turn-expiry');
  try {
    const now = Math.floor(Date.now() / 1000);
    const cases = {
      fresh: mintTurn(secret, 'fresh', now + 600),
      expired: mintTurn(secret, 'expired', now - 60),
      forged: mintTurn('not-the-secret', 'forged', now + 600),
    };
    const found = {};
    for (const [name, c] of Object.entries(cases)) {
      const result = await gatherRelay(page, [{ urls: [coturn.url], username: c.username, credential: c.credential }]);
      assert(result.complete, `${name}: ICE gathering completed within 20 s`);
      found[name] = result.types;
    }
    // The positive control: the same minting with the right secret and a future expiry works,
    // over UDP and over TCP to coturn (for clients whose UDP is blocked).
    assert(found.fresh.includes('relay'), `a fresh credential gathers a relay candidate: ${JSON.stringify(found)}`);
    const overTcp = await gatherRelay(page, [{
      urls: [coturn.url.replace('transport=udp', 'transport=tcp')],
      username: cases.fresh.username,
      credential: cases.fresh.credential,
    }]);
    assert(overTcp.relayProtocols.includes('tcp'), `a fresh credential over TCP gathers a TCP relay candidate: ${JSON.stringify(overTcp)}`);
    assert(!found.expired.includes('relay'), `an expired credential gathers none: ${JSON.stringify(found)}`);
    assert(!found.forged.includes('relay'), `a credential signed with another secret gathers none: ${JSON.stringify(found)}`);
    const log = coturn.log();
    for (const name of ['expired', 'forged']) {
      const refused = log.split('\n').some((l) => l.includes(`user <${cases[name].username}>`) && l.includes('error 401'));
      assert(refused, `coturn's log (${coturn.logPath}) shows a 401 for the ${name} username ${cases[name].username}`);
    }
    report(`relay candidates: fresh ${found.fresh.filter((t) => t === 'relay').length} (over TCP ${overTcp.relayProtocols.length}), expired ${found.expired.length}, forged ${found.forged.length}; coturn answered 401 to the expired and the forged one`);
  } finally {
    await page.closeContext();
    await coturn.stop();
  }
}
