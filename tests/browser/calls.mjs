// Calls on the peer connection (docs/protocol-peer.md): ringing 1:1 calls in p2p and sfu mode
// with colour-checked video both ways, the end reasons, a voice-only call that adds video, a mesh
// room of three, DataConnections, and the demo page's "Call a peer" box.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert, newPage, startServer, uniqueRoom, waitFor } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const INPAGE = path.join(HERE, 'inpage.js');
const CALLS_INPAGE = path.join(HERE, 'calls-inpage.js');

/** A page on `base` with the helpers, registered as `id`. */
export async function callPage(browser, base, host, id) {
  const page = await newPage(browser, id);
  await page.goto(`${base}/healthz`);
  await page.addScriptTag({ path: INPAGE });
  await page.addScriptTag({ path: CALLS_INPAGE });
  await page.evaluate(({ h, i }) => window.ct.peer(h, i), { h: host, i: id });
  return page;
}

export const uid = (prefix) => uniqueRoom(prefix).replace(/[^A-Za-z0-9._-]/g, '');

/** Alice calls Bob; Bob's page gets the ringing call. Returns the call id. */
export async function ring(alice, bob, { to, colour, audio = true, options = {}, id = 'c' }) {
  const callId = await alice.evaluate(({ t, c, a, o, k }) => {
    const s = window.ct.stream({ colour: c, audio: a });
    const mc = window.ct.watch(window.peer.call(t, s, o));
    window.out = window.out ?? {};
    window.out[k] = mc;
    return mc.id;
  }, { t: to, c: colour, a: audio, o: options, k: id });
  await waitFor(`${bob.label} to be rung for ${callId}`, () => bob.evaluate(
    (cid) => window.incoming.some((mc) => mc.id === cid && mc.state === 'ringing'), callId,
  ), { timeout: 10000 });
  return callId;
}

/** State and end reason of a call in a page (outgoing by key, or incoming by id). */
export function callState(page, callId) {
  return page.evaluate((cid) => {
    const all = [...window.incoming, ...window.dataIn, ...Object.values(window.out ?? {})];
    const mc = all.find((c) => c.id === cid);
    return mc ? { state: mc.state, endReason: mc.endReason, events: mc.events.map((e) => e[0]) } : null;
  }, callId);
}

export async function expectEnded(page, callId, reason) {
  const got = await waitFor(`${page.label} to see ${callId} ended ${reason}`, async () => {
    const s = await callState(page, callId);
    return s && s.state === 'ended' ? s : null;
  }, { timeout: 15000 });
  assert(got.endReason === reason, `${page.label}: ${callId} ended ${got.endReason}, expected ${reason} (${JSON.stringify(got)})`);
  // The state change was announced as an event too.
  const events = await page.evaluate((cid) => {
    const all = [...window.incoming, ...window.dataIn, ...Object.values(window.out ?? {})];
    return all.find((c) => c.id === cid).events.filter((e) => e[0] === 'stateChanged').map((e) => e[1]);
  }, callId);
  assert(events.some((e) => e.state === 'ended' && e.endReason === reason), `${page.label}: stateChanged events ${JSON.stringify(events)}`);
}

/** Bob answers the ringing call `callId` with his own colour; first-frame time kept in the page. */
export function answer(bob, callId, { colour, audio = true }) {
  return bob.evaluate(({ cid, c, a }) => {
    const mc = window.incoming.find((x) => x.id === cid);
    const t0 = performance.now();
    mc.answer(window.ct.stream({ colour: c, audio: a }));
    window.ct.firstFrame(mc).then((t) => { mc.firstFrameMs = Math.round(t - t0); });
  }, { cid: callId, c: colour, a: audio });
}

/** The colour `page` decodes on call `callId` (incoming or outgoing). */
function remoteColour(page, callId) {
  return page.evaluate(async (cid) => {
    const all = [...window.incoming, ...Object.values(window.out ?? {})];
    const mc = all.find((c) => c.id === cid);
    return window.ct.colourOfStream(mc?.remoteStream);
  }, callId);
}

async function expectColour(page, callId, colour) {
  let last;
  try {
    await waitFor(`${page.label} to decode ${colour} on ${callId}`, async () => {
      last = await remoteColour(page, callId);
      return last === colour;
    }, { timeout: 20000, interval: 300 });
  } catch {
    throw new Error(`${page.label} decodes ${last} on ${callId}, expected ${colour}`);
  }
}

/** Audio packets received on the call grow. */
async function expectAudio(page, callId) {
  const count = () => page.evaluate(async (cid) => {
    const all = [...window.incoming, ...Object.values(window.out ?? {})];
    const mc = all.find((c) => c.id === cid);
    return (await window.ct.inbound(mc.pc)).audio;
  }, callId);
  const first = await count();
  await waitFor(`${page.label} to receive audio packets on ${callId}`, async () => (await count()) > first && (await count()) > 0, { timeout: 10000 });
}

/** A full 1:1 call: ring, accept, colours both ways, audio both ways, data both ways, hangup. */
async function oneToOne({ browser, server, report }, media) {
  const a = uid('alice');
  const b = uid('bob');
  const alice = await callPage(browser, server.base, server.host, a);
  const bob = await callPage(browser, server.base, server.host, b);
  try {
    const callId = await ring(alice, bob, { to: b, colour: 'red', options: { media, metadata: { topic: 'standup' } } });
    const seen = await bob.evaluate((cid) => {
      const mc = window.incoming.find((x) => x.id === cid);
      return { remoteId: mc.remoteId, initiator: mc.initiator, metadata: mc.metadata, session: mc.session, media: mc.media };
    }, callId);
    assert(seen.remoteId === a && seen.initiator === false && seen.metadata?.topic === 'standup'
      && seen.session === `call:${callId}` && seen.media === media, `Bob's view of the call: ${JSON.stringify(seen)}`);
    await alice.evaluate((cid) => {
      const mc = window.out.c;
      mc.on('participantJoined', () => {
        const t0 = performance.now();
        window.ct.firstFrame(mc).then((t) => { mc.firstFrameMs = Math.round(t - t0); });
      });
      return cid;
    }, callId);
    await answer(bob, callId, { colour: 'green' });
    await expectColour(bob, callId, 'red');
    await expectColour(alice, callId, 'green');
    await expectAudio(alice, callId);
    await expectAudio(bob, callId);
    for (const page of [alice, bob]) {
      await waitFor(`${page.label} to see ${callId} connected`, async () => (await callState(page, callId))?.state === 'connected', { timeout: 10000 });
    }
    const times = await Promise.all([bob, alice].map((p) => waitFor(`${p.label}'s first-frame time`, () => p.evaluate((cid) => {
      const mc = [...window.incoming, ...Object.values(window.out ?? {})].find((c) => c.id === cid);
      return mc.firstFrameMs ?? null;
    }, callId))));
    report(`[${media}] accept → first remote frame: callee ${times[0]} ms, caller ${times[1]} ms`);

    // Data both ways, each side's own content.
    await waitFor('the call to be open on both sides', async () => {
      const open = await Promise.all([alice, bob].map((p) => p.evaluate((cid) => [...window.incoming, ...Object.values(window.out ?? {})].find((c) => c.id === cid).open, callId)));
      return open.every(Boolean);
    }, { timeout: 10000 });
    await alice.evaluate(() => window.out.c.send({ from: 'alice', n: 1 }));
    await bob.evaluate((cid) => window.incoming.find((x) => x.id === cid).send('hello from bob'), callId);
    await waitFor('data both ways', async () => {
      const [atAlice, atBob] = await Promise.all([
        alice.evaluate(() => window.out.c.received),
        bob.evaluate((cid) => window.incoming.find((x) => x.id === cid).received, callId),
      ]);
      const okA = atAlice.length === 1 && atAlice[0] === 'hello from bob';
      const okB = atBob.length === 1 && atBob[0]?.from === 'alice' && atBob[0]?.n === 1;
      if (!okA || !okB) throw new Error(`alice got ${JSON.stringify(atAlice)}, bob got ${JSON.stringify(atBob)}`);
      return true;
    }, { timeout: 10000 });

    // Bob sees Alice's peer in `connections`; Alice hangs up: both see `ended`, `completed`.
    const conns = await bob.evaluate((peerA) => (window.peer.connections[peerA] ?? []).map((c) => c.id), a);
    assert(conns.includes(callId), `Bob's peer.connections[${a}]: ${JSON.stringify(conns)}`);
    await alice.evaluate(() => window.out.c.close());
    await expectEnded(alice, callId, 'completed');
    await expectEnded(bob, callId, 'completed');
    const after = await bob.evaluate((peerA) => window.peer.connections[peerA] ?? null, a);
    assert(after === null, `Bob's connections after the hangup: ${JSON.stringify(after)}`);
  } finally {
    await alice.closeContext();
    await bob.closeContext();
  }
}

export const p2pCall = (ctx) => oneToOne(ctx, 'p2p');
export const sfuCall = (ctx) => oneToOne(ctx, 'sfu');

/** rejected, missed (a server with a 2 s ring timeout), busy, cancelled. */
export async function callEndReasons({ browser, server, report }) {
  const a = uid('alice');
  const b = uid('bob');
  const c = uid('carol');
  const alice = await callPage(browser, server.base, server.host, a);
  const bob = await callPage(browser, server.base, server.host, b);
  const carol = await callPage(browser, server.base, server.host, c);
  const pages = [alice, bob, carol];
  try {
    // Rejected.
    const rejected = await ring(alice, bob, { to: b, colour: 'red', options: { media: 'p2p' }, id: 'rejected' });
    await bob.evaluate((cid) => window.incoming.find((x) => x.id === cid).reject(), rejected);
    await expectEnded(alice, rejected, 'rejected');
    await expectEnded(bob, rejected, 'rejected');

    // Cancelled: Alice hangs up while it rings.
    const cancelled = await ring(alice, bob, { to: b, colour: 'red', options: { media: 'p2p' }, id: 'cancelled' });
    await alice.evaluate(() => window.out.cancelled.close());
    await expectEnded(alice, cancelled, 'cancelled');
    await expectEnded(bob, cancelled, 'cancelled');

    // Busy: Bob is in a call with Alice; Carol calls him.
    const inCall = await ring(alice, bob, { to: b, colour: 'red', options: { media: 'p2p' }, id: 'inCall' });
    await answer(bob, inCall, { colour: 'green' });
    await waitFor('Alice and Bob connected', async () => (await callState(alice, inCall))?.state === 'connected', { timeout: 15000 });
    const busy = await carol.evaluate((to) => {
      window.out = { busy: window.ct.watch(window.peer.call(to, window.ct.stream({ colour: 'blue' }), { media: 'p2p' })) };
      return window.out.busy.id;
    }, b);
    await expectEnded(carol, busy, 'busy');
    const bobRung = await bob.evaluate((cid) => window.incoming.some((x) => x.id === cid), busy);
    assert(!bobRung, 'Bob was rung for the busy call');
    await alice.evaluate(() => window.out.inCall.close());
    await expectEnded(bob, inCall, 'completed');
  } finally {
    for (const p of pages) await p.closeContext();
  }

  // Missed: a server of its own that rings for 2 s.
  const own = await startServer({ logName: 'server-calls-missed.log', args: ['--call-ring-timeout-s', '2'] });
  const ada = await callPage(browser, own.base, own.host, 'ada');
  const ben = await callPage(browser, own.base, own.host, 'ben');
  try {
    const t0 = Date.now();
    const missed = await ring(ada, ben, { to: 'ben', colour: 'red', options: { media: 'p2p' }, id: 'missed' });
    await expectEnded(ada, missed, 'missed');
    await expectEnded(ben, missed, 'missed');
    report(`rejected, cancelled, busy, completed; missed after ${Date.now() - t0} ms with a 2 s ring timeout`);
  } finally {
    await ada.closeContext();
    await ben.closeContext();
    await own.stop();
  }
}

/** A voice-only p2p call; Alice adds her camera mid-call and Bob decodes her colour. */
export async function voiceThenVideo({ browser, server, report }) {
  const a = uid('alice');
  const b = uid('bob');
  const alice = await callPage(browser, server.base, server.host, a);
  const bob = await callPage(browser, server.base, server.host, b);
  try {
    const callId = await ring(alice, bob, { to: b, colour: null, options: { media: 'p2p' } });
    const type = await bob.evaluate((cid) => window.incoming.find((x) => x.id === cid).callType, callId);
    assert(type === 'audio', `a call from an audio-only stream is an audio call, got ${type}`);
    await answer(bob, callId, { colour: null });
    await expectAudio(alice, callId);
    await expectAudio(bob, callId);
    const before = await remoteColour(bob, callId);
    assert(before === 'no video track', `Bob before the upgrade: ${before}`);
    const t0 = Date.now();
    await alice.evaluate(() => window.out.c.addTrack(window.sbt.colourTrack('yellow')));
    await expectColour(bob, callId, 'yellow');
    report(`voice-only call: Alice's added video decoded by Bob ${Date.now() - t0} ms after addTrack`);
    // Bob turns his camera on as well (renegotiation from the callee's side).
    await bob.evaluate((cid) => window.incoming.find((x) => x.id === cid).addTrack(window.sbt.colourTrack('blue')), callId);
    await expectColour(alice, callId, 'blue');
    await expectColour(bob, callId, 'yellow');
    // LumenJS media-toggle: Alice mutes her microphone; Bob is told who and what.
    await alice.evaluate(() => window.out.c.toggleMedia({ audio: false, video: true }));
    const changed = await waitFor('Bob to get mediaChanged', () => bob.evaluate((cid) => {
      const e = window.incoming.find((x) => x.id === cid).events.filter((x) => x[0] === 'mediaChanged');
      return e.length ? e[e.length - 1][1] : null;
    }, callId), { timeout: 5000 });
    assert(changed.peerId === a && changed.audio === false && changed.video === true && changed.screenShare === false,
      `Bob's mediaChanged: ${JSON.stringify(changed)}`);
    const muted = await alice.evaluate(() => window.out.c.localStream.getAudioTracks().every((t) => !t.enabled));
    assert(muted, 'Alice\'s audio track is still enabled after toggleMedia({ audio: false })');
    await bob.evaluate((cid) => window.incoming.find((x) => x.id === cid).close(), callId);
    await expectEnded(alice, callId, 'completed');
  } finally {
    await alice.closeContext();
    await bob.closeContext();
  }
}

/** Three members of a mesh room: each decodes both others' colours. */
export async function meshRoomOfThree({ browser, server, report }) {
  const roomName = uid('mesh');
  const members = [['red', uid('m1')], ['green', uid('m2')], ['blue', uid('m3')]];
  const pages = [];
  try {
    for (const [colour, id] of members) {
      const page = await callPage(browser, server.base, server.host, id);
      pages.push(page);
      await page.evaluate(({ r, c }) => new Promise((resolve, reject) => {
        const room = window.peer.joinRoom(r, { mode: 'mesh', stream: window.ct.stream({ colour: c }) });
        window.mesh = room;
        window.meshData = [];
        room.on('data', (d) => window.meshData.push(d));
        room.once('open', resolve);
        room.once('error', (e) => reject(new Error(`${e.type}: ${e.message}`)));
      }), { r: roomName, c: colour });
    }
    for (const [i, page] of pages.entries()) {
      for (const [j, [colour, id]] of members.entries()) {
        if (i === j) continue;
        let last;
        try {
          await waitFor(`${page.label} to decode ${id}`, async () => {
            last = await page.evaluate((pid) => window.ct.colourOfStream(window.mesh.getStream(pid)), id);
            return last === colour;
          }, { timeout: 20000, interval: 300 });
        } catch {
          throw new Error(`${page.label} decodes ${last} from ${id}, expected ${colour}`);
        }
      }
    }
    await pages[0].evaluate(() => window.mesh.send({ hi: 'from the first' }));
    for (const page of pages.slice(1)) {
      await waitFor(`${page.label} to get the mesh message`, () => page.evaluate(
        (src) => window.meshData.some((d) => d.src === src && d.data?.hi === 'from the first'), members[0][1],
      ), { timeout: 5000 });
    }
    const own = await pages[0].evaluate(() => window.meshData.length);
    assert(own === 0, 'the sender got its own mesh message');
    await pages[2].evaluate(() => window.mesh.close());
    await waitFor('the others to see the third leave', async () => {
      const seen = await Promise.all(pages.slice(0, 2).map((p) => p.evaluate((pid) => !window.mesh.members.includes(pid), members[2][1])));
      return seen.every(Boolean);
    }, { timeout: 10000 });
    report('mesh of three: every member decodes both others\' colours; messages from the right member');
  } finally {
    for (const p of pages) await p.closeContext();
  }
}

/** DataConnections with json and binary serialization, p2p and relayed by the SFU, both ways, auto-accepted. */
export async function dataConnections({ browser, server }) {
  const a = uid('alice');
  const b = uid('bob');
  const alice = await callPage(browser, server.base, server.host, a);
  const bob = await callPage(browser, server.base, server.host, b);
  try {
    for (const [media, serialization] of [['p2p', 'json'], ['p2p', 'binary'], ['sfu', 'json'], ['sfu', 'binary']]) {
      const id = await alice.evaluate(({ to, s, m }) => {
        const dc = window.ct.watch(window.peer.connect(to, { serialization: s, label: `chat-${s}`, metadata: { k: s }, media: m }));
        window.out = { ...(window.out ?? {}), [s]: dc };
        return dc.id;
      }, { to: b, s: serialization, m: media });
      await waitFor(`${serialization} connection open on both sides`, async () => {
        const [x, y] = await Promise.all([
          alice.evaluate((s) => window.out[s].open, serialization),
          bob.evaluate((cid) => window.dataIn.find((d) => d.id === cid)?.open ?? false, id),
        ]);
        return x && y;
      }, { timeout: 15000 });
      const meta = await bob.evaluate((cid) => {
        const dc = window.dataIn.find((d) => d.id === cid);
        return { label: dc.label, serialization: dc.serialization, metadata: dc.metadata, type: dc.type, media: dc.media };
      }, id);
      assert(meta.label === `chat-${serialization}` && meta.serialization === serialization && meta.metadata?.k === serialization && meta.type === 'data' && meta.media === media,
        `Bob's DataConnection: ${JSON.stringify(meta)}`);
      if (serialization === 'json') {
        await alice.evaluate(() => window.out.json.send({ msg: 'from alice', list: [1, 2] }));
        await bob.evaluate((cid) => window.dataIn.find((d) => d.id === cid).send(['from bob', true]), id);
      } else {
        await alice.evaluate(() => window.out.binary.send(new Uint8Array([1, 2, 3, 250])));
        await bob.evaluate((cid) => window.dataIn.find((d) => d.id === cid).send(new Uint8Array([9, 8, 7]).buffer), id);
      }
      const [atAlice, atBob] = await waitFor(`${media} ${serialization} data both ways`, async () => {
        const got = await Promise.all([
          alice.evaluate((s) => window.out[s].received, serialization),
          bob.evaluate((cid) => window.dataIn.find((d) => d.id === cid).received, id),
        ]);
        return got[0].length > 0 && got[1].length > 0 ? got : null;
      }, { timeout: 10000 });
      const expected = serialization === 'json'
        ? [JSON.stringify([['from bob', true]]), JSON.stringify([{ msg: 'from alice', list: [1, 2] }])]
        : [JSON.stringify([{ binary: [9, 8, 7] }]), JSON.stringify([{ binary: [1, 2, 3, 250] }])];
      assert(JSON.stringify(atAlice) === expected[0], `${media} ${serialization}: Alice got ${JSON.stringify(atAlice)}`);
      assert(JSON.stringify(atBob) === expected[1], `${media} ${serialization}: Bob got ${JSON.stringify(atBob)}`);
      await alice.evaluate((s) => window.out[s].close(), serialization);
      await expectEnded(bob, id, 'completed');
    }
    const rung = await bob.evaluate(() => window.incoming.length);
    assert(rung === 0, `a DataConnection rang as a call ${rung} times`);
  } finally {
    await alice.closeContext();
    await bob.closeContext();
  }
}

/** The demo page's "Call a peer" box: call by id, accept, hang up. */
export async function demoCall({ browser, server }) {
  const alice = await newPage(browser, 'demo-alice');
  const bob = await newPage(browser, 'demo-bob');
  try {
    for (const page of [alice, bob]) {
      // debug: the SDK logs every message to the console (artifacts/browser-console.log).
      await page.goto(`${server.base}/?quality=low&debug`);
      await waitFor(`${page.label} to show its peer id`, async () => /\S/.test(await page.textContent('#my-peer-id')), { timeout: 10000 });
    }
    const bobId = (await bob.textContent('#my-peer-id')).trim();
    await alice.fill('#callee', bobId);
    await alice.click('#call-peer');
    await bob.waitForSelector('#incoming:not([hidden])', { timeout: 10000 });
    await waitFor('Alice to show ringing', async () => /ringing/.test(await alice.textContent('#call-state')), { timeout: 10000 });
    await bob.click('#accept-call');
    const shown = (page) => page.evaluate(() => ({
      state: document.getElementById('call-state').textContent,
      error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
      log: [...document.querySelectorAll('#log li')].slice(-6).map((li) => li.textContent),
    }));
    for (const page of [alice, bob]) {
      try {
        await waitFor(`${page.label} to show connected`, async () => /connected/.test(await page.textContent('#call-state')), { timeout: 20000 });
      } catch (err) {
        throw new Error(`${err.message}; Alice shows ${JSON.stringify(await shown(alice))}, Bob ${JSON.stringify(await shown(bob))}`);
      }
      await waitFor(`${page.label} to show the remote video`, () => page.evaluate(() => {
        const v = document.getElementById('call-remote');
        return v && v.srcObject && v.videoWidth > 0;
      }), { timeout: 20000 });
    }
    await alice.click('#hangup-call');
    for (const page of [alice, bob]) {
      await waitFor(`${page.label} to show ended`, async () => /ended.*completed/.test(await page.textContent('#call-state')), { timeout: 10000 });
    }
  } finally {
    await alice.closeContext();
    await bob.closeContext();
  }
}

/**
 * The peer connection drops mid-call: the SDK resumes it with the token and the call goes on.
 * Then disconnect() and reconnect() (SkyWay): offline, and callable again under the same id.
 */
export async function presenceResume({ browser, server, report }) {
  const a = uid('alice');
  const b = uid('bob');
  const alice = await callPage(browser, server.base, server.host, a);
  const bob = await callPage(browser, server.base, server.host, b);
  try {
    const callId = await ring(alice, bob, { to: b, colour: 'red', options: { media: 'p2p' } });
    await answer(bob, callId, { colour: 'green' });
    await expectColour(bob, callId, 'red');
    const t0 = Date.now();
    // Cut Alice's /v1/peer WebSocket (not her media): the SDK registers again with its token.
    await alice.evaluate(() => {
      window.disconnects = 0;
      window.peer.on('disconnected', () => { window.disconnects += 1; });
      window.peer._presence._channel.ws.close();
    });
    await waitFor('Alice to be registered again', () => alice.evaluate(() => window.disconnects === 1 && window.peer._presence.up), { timeout: 10000 });
    report(`peer connection resumed ${Date.now() - t0} ms after the cut`);
    const still = await callState(alice, callId);
    assert(still.state !== 'ended', `the call ended on the cut: ${JSON.stringify(still)}`);
    await expectColour(bob, callId, 'red');
    // Call messages flow on the new connection: Alice's hangup reaches Bob.
    await alice.evaluate(() => window.out.c.close());
    await expectEnded(bob, callId, 'completed');
    const ids = await bob.evaluate(() => window.peer.listAllPeers());
    assert(ids.includes(a) && ids.includes(b), `listAllPeers after the resume: ${JSON.stringify(ids)}`);
    const errors = await alice.evaluate(() => window.peerErrors);
    assert(errors.length === 0, `Alice's peer errors: ${JSON.stringify(errors)}`);

    // SkyWay's disconnect() then reconnect(): offline, then reachable again under the same id.
    await bob.evaluate(() => window.peer.disconnect());
    await waitFor('Bob to be offline', async () => !(await alice.evaluate(() => window.peer.listAllPeers())).includes(b), { timeout: 5000 });
    const again = await bob.evaluate(() => window.peer.reconnect());
    assert(again === b, `reconnect() resolved with ${again}`);
    const after = await alice.evaluate(() => window.peer.listAllPeers());
    assert(after.includes(b), `listAllPeers after Bob's reconnect: ${JSON.stringify(after)}`);
    const second = await ring(alice, bob, { to: b, colour: 'blue', options: { media: 'p2p' }, id: 'again' });
    await bob.evaluate((cid) => window.incoming.find((x) => x.id === cid).reject(), second);
    await expectEnded(alice, second, 'rejected');
  } finally {
    await alice.closeContext();
    await bob.closeContext();
  }
}
