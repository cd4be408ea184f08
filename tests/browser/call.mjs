// A three-person call through the demo page's UI, checked with the browsers' own WebRTC stats.

import path from 'node:path';
import { ARTIFACTS, assert, newPage, uniqueRoom, waitFor } from './harness.mjs';

/** Open the demo page and join `room` as `name` by filling the form and clicking Join. */
export async function joinViaUi(page, base, { room, name, camera = true, mic = true }) {
  await page.goto(`${base}/?quality=low`);
  await page.fill('#room', room);
  await page.fill('#name', name);
  await page.setChecked('#use-camera', camera);
  await page.setChecked('#use-mic', mic);
  await page.click('#join');
  await page.waitForSelector('#call-bar:not([hidden])', { timeout: 20000 });
}

/** Receive stats keyed by the sender's display name. */
export async function statsByName(page) {
  return page.evaluate(async () => {
    const room = window.switchboardDemo.room;
    if (!room) return {};
    const stats = await room.getPeerStats();
    return Object.fromEntries(Object.entries(stats).map(([id, s]) => [room.getPeerName(id) ?? id, s]));
  });
}

/** Names shown on the page's video tiles. */
export async function tileNames(page) {
  return page.$$eval('#grid .tile .name', (els) => els.map((e) => e.textContent));
}

/**
 * Wait until `page` decodes new video frames from every sender in `video` and receives new audio
 * packets from every sender in `audio` (counters above a first sample, so media is flowing now).
 */
export async function expectMediaFrom(page, { audio = [], video = [] }, timeout = 25000) {
  const first = await statsByName(page);
  const base = (name, kind, field) => first[name]?.[kind]?.[field] ?? 0;
  let last;
  await waitFor(`${page.label} to receive audio from [${audio}] and video from [${video}]`, async () => {
    last = await statsByName(page);
    const missing = [];
    for (const name of video) {
      const n = last[name]?.video?.framesDecoded ?? 0;
      if (!(n > 0 && n > base(name, 'video', 'framesDecoded'))) missing.push(`${name}:video=${n}`);
    }
    for (const name of audio) {
      const n = last[name]?.audio?.packetsReceived ?? 0;
      if (!(n > 0 && n > base(name, 'audio', 'packetsReceived'))) missing.push(`${name}:audio=${n}`);
    }
    if (missing.length) throw new Error(`not yet: ${missing.join(', ')}`);
    return true;
  }, { timeout, interval: 400 });
  return last;
}

/** The server's UDP send calls and the datagrams they carried, summed over its shards. */
async function udpSends(server) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const sum = (name) => text.split('\n')
    .filter((l) => l.startsWith(`${name}{`))
    .reduce((total, l) => total + Number(l.split(' ').pop()), 0);
  return { calls: sum('switchboard_udp_send_calls_total'), datagrams: sum('switchboard_udp_datagrams_sent_total') };
}

/** Record the room's peerLeave/removeStream events (by display name) in the page. */
async function recordEvents(page) {
  await page.evaluate(() => {
    const room = window.switchboardDemo.room;
    window.recorded = [];
    room.on('peerLeave', (id) => window.recorded.push(['peerLeave', room.getPeerName(id)]));
    room.on('removeStream', (s) => window.recorded.push(['removeStream', room.getPeerName(s.peerId)]));
    room.on('stream', (s) => window.recorded.push(['stream', room.getPeerName(s.peerId), s.getTracks().map((t) => t.kind).sort().join('+')]));
  });
}

const recorded = (page) => page.evaluate(() => window.recorded);

export async function threePersonCall({ browser, server, report }) {
  const room = uniqueRoom('call');
  const alice = await newPage(browser, 'alice');
  const bob = await newPage(browser, 'bob');
  const carol = await newPage(browser, 'carol');
  const pages = [alice, bob, carol];
  try {
    await alice.goto(`${server.base}/?quality=low`);
    await alice.screenshot({ path: path.join(ARTIFACTS, 'join-form.png') });
    await joinViaUi(alice, server.base, { room, name: 'Alice' });
    await joinViaUi(bob, server.base, { room, name: 'Bob' });
    // Carol starts voice-only and turns her camera on later.
    await joinViaUi(carol, server.base, { room, name: 'Carol', camera: false });

    // Everyone sees everyone's name.
    for (const [page, others] of [[alice, ['Bob', 'Carol']], [bob, ['Alice', 'Carol']], [carol, ['Alice', 'Bob']]]) {
      await waitFor(`${page.label} to show tiles for ${others}`, async () => {
        const names = await tileNames(page);
        return others.every((n) => names.includes(n)) ? names : false;
      });
    }

    await Promise.all([
      expectMediaFrom(alice, { audio: ['Bob', 'Carol'], video: ['Bob'] }),
      expectMediaFrom(bob, { audio: ['Alice', 'Carol'], video: ['Alice'] }),
      expectMediaFrom(carol, { audio: ['Alice', 'Bob'], video: ['Alice', 'Bob'] }),
    ]);
    const timing = async (page) => {
      const m = await waitFor(`${page.label}'s first-frame metric`, () => page.evaluate(() => {
        const x = window.switchboardDemo.metrics;
        return x.firstFrameMs === null ? null : { open: Math.round(x.openAt - x.joinClickedAt), frame: x.firstFrameMs };
      }));
      return `${m.frame} ms (joined after ${m.open} ms)`;
    };
    report(`join click → first remote video frame: Bob (2nd to join) ${await timing(bob)}, Carol (3rd) ${await timing(carol)}`);

    await alice.screenshot({ path: path.join(ARTIFACTS, 'call-voice-only.png') });

    // Carol adds her camera with replaceStream (the demo's "Camera on" button).
    await recordEvents(alice);
    await recordEvents(bob);
    await carol.click('#camera');
    await waitFor('Carol\'s page to publish video', () => carol.evaluate(
      () => window.switchboardDemo.localStream?.getVideoTracks().length === 1,
    ));
    const [aliceStats] = await Promise.all([
      expectMediaFrom(alice, { audio: ['Bob', 'Carol'], video: ['Bob', 'Carol'] }),
      expectMediaFrom(bob, { audio: ['Alice', 'Carol'], video: ['Alice', 'Carol'] }),
    ]);
    // How well the server's UDP GSO batches browser media (libwebrtc packetises a frame into
    // packets of about, not exactly, one size; a run ends at the first shorter one).
    const before = await udpSends(server);
    await new Promise((r) => setTimeout(r, 3000));
    const after = await udpSends(server);
    const calls = after.calls - before.calls;
    const datagrams = after.datagrams - before.datagrams;
    assert(calls > 0 && datagrams >= calls, `the server sent media (${datagrams} datagrams in ${calls} calls)`);
    report(`server egress with three browsers: ${(datagrams / calls).toFixed(2)} datagrams per send call (${datagrams} in 3 s)`);
    const codec = aliceStats.Carol.video.codec;
    report(`Carol's added video reaches Alice as ${codec} ${aliceStats.Carol.video.frameWidth}x${aliceStats.Carol.video.frameHeight}`);
    for (const page of [alice, bob]) {
      const events = await recorded(page);
      assert(events.some(([e, who, kinds]) => e === 'stream' && who === 'Carol' && kinds === 'audio+video'),
        `${page.label} got a 'stream' event with Carol's audio+video (events: ${JSON.stringify(events)})`);
    }

    // Every tile shows moving video: a mid-call picture.
    await waitFor('Alice\'s page to show video for everyone', () => alice.evaluate(
      () => document.querySelectorAll('#grid .tile.no-video').length === 0 && document.querySelectorAll('#grid .tile').length === 3,
    ));
    const shot = path.join(ARTIFACTS, 'call-alice.png');
    await alice.screenshot({ path: shot });
    report(`screenshot: ${path.relative(process.cwd(), shot)}`);

    // Alice mutes her microphone and turns her camera off: the page and her tracks follow.
    await alice.click('#mic');
    await alice.click('#camera');
    const muted = await alice.evaluate(() => {
      const s = window.switchboardDemo.localStream;
      return {
        audio: s.getAudioTracks()[0].enabled,
        video: s.getVideoTracks()[0].enabled,
        mic: document.getElementById('mic').textContent,
        camera: document.getElementById('camera').textContent,
        avatar: document.querySelector('#grid .tile.local').classList.contains('no-video'),
      };
    });
    assert(!muted.audio && !muted.video && muted.mic === 'Unmute mic' && muted.camera === 'Camera on' && muted.avatar,
      `Alice's mute state: ${JSON.stringify(muted)}`);
    await alice.screenshot({ path: path.join(ARTIFACTS, 'call-muted.png') });
    await alice.click('#mic');
    await alice.click('#camera');

    // Bob leaves: the other two get peerLeave and removeStream, and his tile goes.
    await recordEvents(carol);
    await bob.click('#leave');
    await waitFor('Bob\'s page to return to the join form', () => bob.isVisible('#join-form'));
    for (const page of [alice, carol]) {
      await waitFor(`${page.label} to get peerLeave and removeStream for Bob`, async () => {
        const events = await recorded(page);
        const leave = events.some(([e, who]) => e === 'peerLeave' && who === 'Bob');
        const removed = events.some(([e, who]) => e === 'removeStream' && who === 'Bob');
        return leave && removed;
      }, { timeout: 10000 });
      await waitFor(`${page.label} to drop Bob's tile`, async () => !(await tileNames(page)).includes('Bob'), { timeout: 5000 });
      const members = await page.evaluate(() => window.switchboardDemo.room.members.map((id) => window.switchboardDemo.room.getPeerName(id)));
      assert(!members.includes('Bob') && members.length === 1, `${page.label} members after Bob left: ${members}`);
    }
    // The remaining two still talk.
    await Promise.all([
      expectMediaFrom(alice, { audio: ['Carol'], video: ['Carol'] }),
      expectMediaFrom(carol, { audio: ['Alice'], video: ['Alice'] }),
    ]);

    // No page showed an error.
    for (const page of pages) {
      const error = await page.evaluate(() => (document.getElementById('error').hidden ? null : document.getElementById('error').textContent));
      assert(error === null, `${page.label} shows an error: ${error}`);
    }
  } finally {
    for (const page of pages) await page.closeContext();
  }
}
