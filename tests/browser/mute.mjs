// Client mute: setMuted('video', true) stops the server forwarding the camera (the others'
// inbound packet count stops rising), everybody hears of it (trackMuted by the owner, the media
// state), and unmuting starts the track again at a keyframe: frames are decoded again within 1 s.

import { assert, sleep, uniqueRoom, waitFor } from './harness.mjs';
import { colourOf, events, helperPage, joinAs } from './subscriptions.mjs';

const cameraStats = (page) => page.evaluate(async () => (await window.room.getTrackStats())['mia:camera'] ?? null);

export async function clientMute({ browser, server, report }) {
  const roomName = uniqueRoom('mute');
  const host = server.host;
  const mia = await helperPage(browser, server.base, 'mute-mia');
  const obs = await helperPage(browser, server.base, 'mute-obs');
  try {
    await joinAs(mia, { host, roomName, id: 'mia', publish: [{ colour: 'yellow', name: 'camera', source: 'camera' }] });
    await joinAs(obs, { host, roomName, id: 'obs' });
    const colour = await colourOf(obs, 'mia', 'mia:camera');
    assert(colour === 'yellow', `obs decodes mia's camera as ${colour}, not yellow`);
    // Packets are rising before the mute, so "stops rising" means something.
    const flowing = await cameraStats(obs);
    await waitFor('obs\'s packet count from mia to rise', async () => (await cameraStats(obs)).packetsReceived > flowing.packetsReceived + 20);

    const muted = await mia.evaluate(() => window.room.setMuted('video', true));
    assert(JSON.stringify(muted) === '["mia:camera"]', `setMuted('video') applied to ${JSON.stringify(muted)}`);
    const heard = await waitFor('obs to hear that mia muted her camera', async () => {
      const e = (await events(obs, 'trackMuted')).find((x) => x[2].trackId === 'mia:camera' && x[2].muted);
      return e?.[2];
    });
    assert(heard.by === 'owner' && heard.kind === 'video', `trackMuted: ${JSON.stringify(heard)}`);
    await waitFor('obs to see mia\'s media state without video', async () => {
      const e = (await events(obs, 'mediaState')).filter((x) => x[2].peerId === 'mia').pop();
      return e && e[2].state.video === false;
    });
    // Packets in flight drain, then the count stands still.
    await sleep(700);
    const stopped = await cameraStats(obs);
    await sleep(2000);
    const still = await cameraStats(obs);
    assert(still.packetsReceived === stopped.packetsReceived,
      `obs's packets from mia's muted camera kept rising: ${stopped.packetsReceived} → ${still.packetsReceived}`);

    // Unmute: decoding resumes, at a keyframe, within a second. Obs watches from before the
    // unmute; both pages read the same clock.
    const before = await cameraStats(obs);
    const watching = obs.evaluate(async (framesBefore) => {
      const room = window.room;
      const deadline = Date.now() + 8000;
      while (Date.now() < deadline) {
        const s = (await room.getTrackStats())['mia:camera'];
        if (s && s.framesDecoded > framesBefore) return { at: Date.now(), s };
        await new Promise((r) => setTimeout(r, 20));
      }
      return { at: null };
    }, before.framesDecoded);
    const unmuteAt = await mia.evaluate(() => {
      const at = Date.now();
      window.room.setMuted('video', false);
      return at;
    });
    const seenAgain = await watching;
    const first = { ms: seenAgain.at === null ? null : seenAgain.at - unmuteAt, s: seenAgain.s };
    const resumed = { before };
    assert(first.ms !== null, 'obs decoded no frame of mia\'s camera within 8 s of the unmute');
    assert(first.ms <= 1000, `obs decoded mia's camera again ${Math.round(first.ms)} ms after the unmute (the rule: within 1 s)`);
    assert(first.s.keyFramesDecoded > resumed.before.keyFramesDecoded,
      `the first frames after the unmute include a keyframe (${resumed.before.keyFramesDecoded} → ${first.s.keyFramesDecoded})`);
    const unmuted = (await events(obs, 'trackMuted')).find((x) => x[2].trackId === 'mia:camera' && !x[2].muted);
    assert(unmuted?.[2].by === 'owner', `obs heard the unmute: ${JSON.stringify(unmuted)}`);
    report(`mute: packets stopped at ${stopped.packetsReceived}; unmute → first decoded frame ${Math.round(first.ms)} ms (keyframes ${resumed.before.keyFramesDecoded} → ${first.s.keyFramesDecoded})`);
  } finally {
    await Promise.all([mia.closeContext(), obs.closeContext()]);
  }
}
