// Selective subscription and described tracks, proven by content: every published track is a
// canvas of its own colour, and receivers name the colour at the centre of the frames they
// decode. A member with autoSubscribe:false receives nothing until it subscribes to one peer's
// screen share, then exactly that, and nothing again after unsubscribing; a member that takes
// everything gets one member's camera and screen share as two distinct, described tracks.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert, newPage, sleep, uniqueRoom, waitFor } from './harness.mjs';

export const INPAGE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'inpage.js');

/** A page on `base` with the in-page helpers loaded. */
export async function helperPage(browser, base, label) {
  const page = await newPage(browser, label);
  await page.goto(`${base}/healthz`);
  await page.addScriptTag({ path: INPAGE });
  return page;
}

/**
 * Join in `page`; `publish` lists the tracks to send: { colour, name, source, description,
 * size: [w, h], busy } for a canvas, { tone: { frequency, gain }, name, source } for a sine.
 */
export async function joinAs(page, { host, roomName, id, options = {}, publish = [] }) {
  await page.evaluate(async ({ host: h, roomName: r, id: i, options: o, publish: p }) => {
    const room = await window.sbt.join({ host: h, roomName: r, id: i, options: o });
    window.published = {};
    for (const t of p) {
      const track = t.tone
        ? window.sbt.toneTrack(t.tone.frequency, t.tone.gain)
        : window.sbt.colourTrack(t.colour, t.size?.[0], t.size?.[1], t.busy);
      const info = await room.publishTrack(track, { name: t.name, source: t.source, description: t.description });
      window.published[info.trackId] = track;
    }
  }, { host, roomName, id, options, publish });
}

export const events = (page, name) => page.evaluate((n) => window.events.filter((e) => e[1] === n), name);

/** Per-track receive stats of the page's room. */
export const trackStats = (page) => page.evaluate(() => window.room.getTrackStats());

/**
 * The colour `page` decodes for `trackId` (of `peerId`): the first `samples` (3) new frames in a
 * row, each shown within `frameTimeout` ms, that agree on a colour (the first frames of a stream
 * may be black or blurred). After `timeout` ms (15 s), what the last frames showed, which fails
 * any colour check with a clear message.
 */
export async function colourOf(page, peerId, trackId, { samples = 3, frameTimeout = 3000, timeout = 15000 } = {}) {
  let last = 'no frames';
  try {
    return await waitFor(`${page.label} to show frames of ${trackId}`, async () => {
      last = await page.evaluate(async ({ p, t, n, ms }) => {
        const track = window.room.getRemoteTrack(p, t);
        if (!track) return 'no track';
        const seen = [];
        for (let i = 0; i < n; i += 1) seen.push(await window.sbt.frameColour(track, ms));
        return new Set(seen).size === 1 ? seen[0] : `mixed(${seen.join(',')})`;
      }, { p: peerId, t: trackId, n: samples, ms: frameTimeout });
      return /^(no |none|mixed)/.test(last) ? null : last;
    }, { timeout });
  } catch {
    return last;
  }
}

export async function selectiveSubscription({ browser, server, report }) {
  const roomName = uniqueRoom('sel');
  const host = server.host;
  const alice = await helperPage(browser, server.base, 'sel-alice');
  const bob = await helperPage(browser, server.base, 'sel-bob');
  const carol = await helperPage(browser, server.base, 'sel-carol');
  const dave = await helperPage(browser, server.base, 'sel-dave');
  const pages = [alice, bob, carol, dave];
  try {
    await joinAs(alice, {
      host, roomName, id: 'alice',
      publish: [
        { colour: 'red', name: 'camera', source: 'camera', description: 'Alice at her desk' },
        { colour: 'blue', name: 'screen', source: 'screen', description: 'Alice shares slides' },
      ],
    });
    await joinAs(bob, { host, roomName, id: 'bob', publish: [{ colour: 'green', name: 'camera', source: 'camera', description: 'Bob' }] });
    await joinAs(carol, { host, roomName, id: 'carol', options: { autoSubscribe: false } });
    await joinAs(dave, { host, roomName, id: 'dave' });

    // Dave takes everything: Alice's camera and screen arrive as two distinct, described tracks.
    const seen = await waitFor('dave to receive alice:camera, alice:screen and bob:camera', async () => {
      const arrived = (await events(dave, 'remoteTrack')).map((e) => e[2]);
      const ids = arrived.map((a) => a.trackId);
      return ['alice:camera', 'alice:screen', 'bob:camera'].every((t) => ids.includes(t)) ? arrived : null;
    });
    const cam = seen.find((a) => a.trackId === 'alice:camera');
    const screen = seen.find((a) => a.trackId === 'alice:screen');
    assert(cam.source === 'camera' && cam.description === 'Alice at her desk', `alice:camera described as ${JSON.stringify(cam)}`);
    assert(screen.source === 'screen' && screen.description === 'Alice shares slides', `alice:screen described as ${JSON.stringify(screen)}`);
    assert(cam.mid !== screen.mid, `camera and screen on distinct m-lines (${cam.mid}, ${screen.mid})`);
    const daveColours = {
      camera: await colourOf(dave, 'alice', 'alice:camera'),
      screen: await colourOf(dave, 'alice', 'alice:screen'),
      bob: await colourOf(dave, 'bob', 'bob:camera'),
    };
    assert(daveColours.camera === 'red' && daveColours.screen === 'blue' && daveColours.bob === 'green',
      `dave decodes alice:camera/alice:screen/bob:camera as ${JSON.stringify(daveColours)} (want red/blue/green)`);
    const state = await dave.evaluate(() => window.room.getMediaState('alice'));
    assert(state.video && state.screenShare && !state.audio, `alice's media state: ${JSON.stringify(state)}`);

    // Carol (autoSubscribe: false) discovers every track but receives nothing.
    const defs = await carol.evaluate(() => window.room.getPeerTrackDefinitions());
    assert(defs.alice?.['alice:screen']?.source === 'screen' && defs.alice['alice:screen'].description === 'Alice shares slides'
      && defs.alice['alice:camera']?.kind === 'video' && defs.bob?.['bob:camera'],
      `carol's track definitions: ${JSON.stringify(defs)}`);
    const onlyBob = await carol.evaluate(() => window.room.getPeerTrackDefinitions('bob', ['camera']));
    assert(Object.keys(onlyBob).join() === 'bob' && Object.keys(onlyBob.bob).join() === 'bob:camera',
      `filtered definitions: ${JSON.stringify(onlyBob)}`);
    await sleep(1500);
    const idle = await carol.evaluate(() => window.sbt.inboundByMid(window.room));
    const idlePackets = Object.values(idle).reduce((n, s) => n + s.packets, 0);
    assert(idlePackets === 0, `carol received packets before subscribing: ${JSON.stringify(idle)}`);
    assert((await events(carol, 'remoteTrack')).length === 0, 'carol got remoteTrack before subscribing');

    // Carol subscribes to Alice's screen share: time to the first packet and the first frame.
    const timing = await carol.evaluate(async () => {
      const room = window.room;
      const asked = performance.now();
      const arrived = room.subscribe('alice', 'screen');
      const out = { trackMs: null, packetMs: null, frameMs: null };
      arrived.then(() => { out.trackMs = performance.now() - asked; });
      const deadline = asked + 15000;
      while (performance.now() < deadline && out.frameMs === null) {
        const s = (await room.getTrackStats())['alice:screen'];
        if (s && s.packetsReceived > 0 && out.packetMs === null) out.packetMs = performance.now() - asked;
        if (s && s.framesDecoded > 0) out.frameMs = performance.now() - asked;
        await new Promise((r) => setTimeout(r, 10));
      }
      await arrived;
      return out;
    });
    assert(timing.frameMs !== null, `carol never decoded alice:screen: ${JSON.stringify(timing)}`);
    const colour = await colourOf(carol, 'alice', 'alice:screen');
    assert(colour === 'blue', `carol's alice:screen frames are ${colour}, not blue (alice's screen canvas)`);

    // Exactly that track: nothing else arrives, on any m-line.
    await sleep(1500);
    const stats = await trackStats(carol);
    const arriving = Object.keys(stats).filter((t) => stats[t].packetsReceived > 0);
    assert(arriving.join() === 'alice:screen', `carol receives ${JSON.stringify(arriving)}; only alice:screen subscribed`);
    const mid = stats['alice:screen'].mid;
    const perMid = await carol.evaluate(() => window.sbt.inboundByMid(window.room));
    const others = Object.entries(perMid).filter(([m, s]) => m !== mid && s.packets > 0);
    assert(others.length === 0, `other m-lines of carol carry packets: ${JSON.stringify(others)}`);

    // Unsubscribe: the track ends and its m-line's packet count stops rising.
    await carol.evaluate(() => window.room.unsubscribe('alice', 'alice:screen'));
    await waitFor('carol\'s remoteTrackEnded for alice:screen', async () => (await events(carol, 'remoteTrackEnded')).some((e) => e[2].trackId === 'alice:screen'));
    await sleep(500);
    const settled = (await carol.evaluate(() => window.sbt.inboundByMid(window.room)))[mid].packets;
    await sleep(2000);
    const later = (await carol.evaluate(() => window.sbt.inboundByMid(window.room)))[mid].packets;
    assert(later === settled, `packets on carol's m-line ${mid} kept rising after unsubscribe: ${settled} → ${later}`);

    // A track that does not exist is refused with its code (the promise and the error event).
    const refused = await carol.evaluate(() => window.room.subscribe('bob', 'screen').then(() => 'resolved?!', (e) => e.type));
    assert(refused === 'unknownTrack', `subscribe to bob:screen: ${refused}`);
    // A track defined before any media is discoverable; a subscription to it waits for it to go
    // live, and publishTrack under its name makes it live.
    const notesId = await alice.evaluate(() => window.room.defineTrack({ name: 'notes', kind: 'video', source: 'other', description: 'speaker notes' }));
    assert(notesId === 'alice:notes', `defineTrack returned ${notesId}`);
    const defined = await waitFor('carol to discover alice:notes', async () => (await events(carol, 'trackDefined')).find((e) => e[2].trackId === 'alice:notes')?.[2]);
    assert(defined.live === false && defined.source === 'other' && defined.description === 'speaker notes', `alice:notes defined as ${JSON.stringify(defined)}`);
    await carol.evaluate(() => { window.notesArrived = window.room.subscribe('alice', 'notes').then((t) => t?.kind ?? 'null'); });
    await sleep(500);
    assert((await events(carol, 'remoteTrack')).filter((e) => e[2].trackId === 'alice:notes').length === 0, 'alice:notes arrived before it was published');
    await alice.evaluate(async () => {
      window.published['alice:notes'] = window.sbt.colourTrack('yellow');
      await window.room.publishTrack(window.published['alice:notes'], { name: 'notes' });
    });
    assert(await carol.evaluate(() => window.notesArrived) === 'video', 'carol\'s pending subscribe resolved with the video track');
    const notesColour = await colourOf(carol, 'alice', 'alice:notes');
    assert(notesColour === 'yellow', `carol decodes alice:notes as ${notesColour}, not yellow`);

    // Unpublishing the screen share removes it: dave's copy ends, the media state follows.
    await alice.evaluate(() => window.room.unpublishTrack('alice:screen'));
    await waitFor('dave to see alice:screen removed and ended', async () => {
      const removed = (await events(dave, 'trackRemoved')).some((e) => e[2].trackId === 'alice:screen');
      const ended = (await events(dave, 'remoteTrackEnded')).some((e) => e[2].trackId === 'alice:screen');
      return removed && ended;
    });
    await waitFor('dave to see alice stop sharing her screen', async () => {
      const last = (await events(dave, 'mediaState')).filter((e) => e[2].peerId === 'alice').pop();
      return last && last[2].state.screenShare === false && last[2].state.video === true;
    });
    report(`subscription latency (subscribe() → remoteTrack / first packet / first decoded frame): ${Math.round(timing.trackMs)} / ${Math.round(timing.packetMs)} / ${Math.round(timing.frameMs)} ms`);
    report(`colours: dave alice:camera=${daveColours.camera} alice:screen=${daveColours.screen} bob:camera=${daveColours.bob}; carol alice:screen=${colour}; after unsubscribe ${settled} → ${later} packets`);
  } finally {
    await Promise.all(pages.map((p) => p.closeContext()));
  }
}
