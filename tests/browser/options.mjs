// joinRoom options reach the browser's WebRTC stack: codec preference, bitrate limits; a stream
// swap that removes and restores video; one peer in two rooms; a server that shuts down.

import { assert, newPage, startServer, uniqueRoom, waitFor } from './harness.mjs';

function installPage() {
  window.sb = {
    async media() {
      return navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width: { ideal: 320 }, height: { ideal: 180 }, frameRate: { ideal: 15 } },
      });
    },
    opened(room) {
      return new Promise((resolve, reject) => {
        if (room.open) resolve();
        room.once('open', resolve);
        room.once('close', () => reject(new Error(`${room.peer.id} in ${room.name} closed before open`)));
      });
    },
    record(room) {
      const events = [];
      for (const name of ['stream', 'removeStream']) {
        room.on(name, (s) => events.push([name, s.peerId, s.getTracks().map((t) => t.kind).sort().join('+')]));
      }
      room.on('error', (e) => events.push(['error', e.type, e.message]));
      return events;
    },
  };
}

export async function roomOptions({ browser, server, report }) {
  const page = await newPage(browser, 'options');
  const roomName = uniqueRoom('opts');
  try {
    await page.goto(`${server.base}/healthz`);
    await page.evaluate(installPage);
    const result = await page.evaluate(async ({ host, roomName: r }) => {
      const { Peer } = await import('/sdk/switchboard.js');
      const sb = window.sb;
      const out = {};
      const stream = await sb.media();
      const h264 = new Peer({ host, id: 'h264' });
      const a = h264.joinRoom(r, { stream, name: 'H', videoCodec: 'H264', audioCodec: 'opus', videoBandwidth: 250, audioBandwidth: 24 });
      const viewer = new Peer({ host, id: 'viewer' });
      const b = viewer.joinRoom(r, { name: 'V' });
      const events = sb.record(b);
      const aEvents = sb.record(a);
      await Promise.all([sb.opened(a), sb.opened(b)]);

      const until = async (what, check, ms = 20000) => {
        const end = Date.now() + ms;
        for (;;) {
          const v = await check();
          if (v) return v;
          if (Date.now() > end) throw new Error(`timed out: ${what}`);
          await new Promise((res) => setTimeout(res, 300));
        }
      };
      const framesFromA = async () => (await b.getPeerStats()).h264?.video?.framesDecoded ?? 0;
      await until('viewer decodes h264 video', async () => (await framesFromA()) > 5);
      const stats = (await b.getPeerStats()).h264.video;
      out.codec = stats.codec;
      const senders = Object.fromEntries(a.pc.getTransceivers().filter((t) => t.sender.track).map((t) => [t.sender.track.kind, t.sender.getParameters().encodings.map((e) => e.maxBitrate)]));
      out.maxBitrate = senders;
      const videoSection = a.pc.localDescription.sdp.split('\r\nm=').find((s) => s.startsWith('video') && s.includes('a=sendonly'));
      out.sentCodecs = [...new Set([...videoSection.matchAll(/a=rtpmap:\d+ ([^/]+)\//g)].map((m) => m[1]))].sort();

      // Drop the video: the viewer's stream for h264 becomes audio-only; then bring it back.
      await a.replaceStream(new MediaStream(stream.getAudioTracks()));
      await until('viewer sees audio only', () => b.getStream('h264')?.getTracks().map((t) => t.kind).join('+') === 'audio');
      out.tracksWhileAudioOnly = b.peers.get('h264').tracks.map((t) => t.kind);
      await a.replaceStream(stream);
      await until('viewer sees video again', () => b.getStream('h264')?.getVideoTracks().length === 1);
      const before = await framesFromA();
      await until('viewer decodes the restored video', async () => (await framesFromA()) > before + 5);
      out.events = events;
      out.aEvents = aEvents;

      // One peer, two rooms at once (one WebSocket each).
      const second = viewer.joinRoom(`${r}-2`, { name: 'V' });
      await sb.opened(second);
      out.roomsOpen = [...viewer.rooms.values()].map((room) => room.open);
      second.close();
      out.roomsAfterClose = [...viewer.rooms.keys()];
      // And a fresh room after that one closed.
      const third = viewer.joinRoom(`${r}-3`);
      await sb.opened(third);
      out.thirdOpen = third.open;
      h264.destroy();
      viewer.destroy();
      out.afterDestroy = { rooms: viewer.rooms.size, closed: b.closed && third.closed, destroyed: viewer.destroyed };
      return out;
    }, { host: server.host, roomName });

    assert(result.codec === 'video/H264', `videoCodec H264: the viewer decodes ${result.codec}`);
    assert(JSON.stringify(result.sentCodecs) === '["H264","rtx"]', `H264 sender offers ${result.sentCodecs}`);
    assert(result.maxBitrate.video?.[0] === 250000 && result.maxBitrate.audio?.[0] === 24000,
      `maxBitrate ${JSON.stringify(result.maxBitrate)}`);
    report(`videoCodec H264 → viewer decodes ${result.codec}; maxBitrate ${JSON.stringify(result.maxBitrate)}`);
    assert(JSON.stringify(result.tracksWhileAudioOnly) === '["audio"]', `tracks while audio-only: ${result.tracksWhileAudioOnly}`);
    const kinds = result.events.filter(([e]) => e === 'stream').map(([, , k]) => k);
    assert(JSON.stringify(kinds.slice(-3)) === '["audio+video","audio","audio+video"]', `viewer stream events ${JSON.stringify(result.events)}`);
    assert(!result.events.some(([e]) => e === 'error') && !result.aEvents.some(([e]) => e === 'error'), `errors: ${JSON.stringify([...result.events, ...result.aEvents])}`);
    assert(result.roomsOpen.length === 2 && result.roomsOpen.every(Boolean), `two rooms at once: ${result.roomsOpen}`);
    assert(result.roomsAfterClose.length === 1, `rooms after closing one: ${result.roomsAfterClose}`);
    assert(result.thirdOpen, 'a further room after one closed');
    assert(result.afterDestroy.rooms === 0 && result.afterDestroy.closed && result.afterDestroy.destroyed, `destroy: ${JSON.stringify(result.afterDestroy)}`);
  } finally {
    await page.closeContext();
  }
}

export async function serverShutdown({ browser, report }) {
  // A server of its own, so stopping it disturbs no other test.
  const own = await startServer({ logName: 'server-shutdown.log' });
  const page = await newPage(browser, 'shutdown');
  try {
    await page.goto(`${own.base}/healthz`);
    await page.evaluate(async ({ host, roomName }) => {
      const { Peer } = await import('/sdk/switchboard.js');
      const peer = new Peer({ host });
      window.got = { events: [] };
      peer.on('disconnected', () => window.got.events.push('peer:disconnected'));
      const room = peer.joinRoom(roomName, { name: 'S' });
      room.on('draining', (ms) => { window.got.events.push('room:draining'); window.got.deadlineMs = ms; });
      room.on('error', (e) => { window.got.events.push('room:error'); window.got.error = { type: e.type, message: e.message, reason: e.reason }; });
      room.on('close', () => window.got.events.push('room:close'));
      await new Promise((resolve) => room.once('open', resolve));
    }, { host: own.host, roomName: uniqueRoom('shutdown') });

    // SIGTERM: the server drains (tells the room, refuses new joins, waits for it to leave).
    own.signal('SIGTERM');
    const draining = await waitFor('the room to hear that the server drains', async () => {
      const g = await page.evaluate(() => window.got);
      return g.events.includes('room:draining') ? g : false;
    }, { timeout: 10000 });
    assert(draining.deadlineMs > 0 && !draining.events.includes('room:close'), `draining: ${JSON.stringify(draining)}`);
    const refused = await page.evaluate(async ({ host }) => {
      const { Peer } = await import('/sdk/switchboard.js');
      const room = new Peer({ host }).joinRoom('late-comer');
      return new Promise((resolve) => {
        room.on('error', (e) => resolve({ type: e.type, message: e.message }));
        room.on('open', () => resolve({ type: 'opened during the drain' }));
      });
    }, { host: own.host });
    assert(refused.type === 'draining', `a join during the drain: ${JSON.stringify(refused)}`);

    // A second SIGTERM ends the drain: the session is closed with serverShutdown.
    own.signal('SIGTERM');
    const got = await waitFor('the room to report the shutdown and close', async () => {
      const g = await page.evaluate(() => window.got);
      return g.events.includes('room:close') ? g : false;
    }, { timeout: 15000 });
    assert(got.error?.type === 'removed' && got.error.reason === 'serverShutdown', `shutdown error: ${JSON.stringify(got)}`);
    report(`drain → 'draining' (${draining.deadlineMs} ms), new join refused: "${refused.message}"; shutdown → "${got.error.message}"`);
  } finally {
    await page.closeContext();
    await own.stop();
  }
}
