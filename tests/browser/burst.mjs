// Several peers join at once, some leave at once, one swaps its stream twice while others come and
// go: negotiation must settle (no deadlock) and the survivors must see exactly each other.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, assert, newPage, uniqueRoom, waitFor } from './harness.mjs';

// Installed in a page: helpers to run SDK peers and read their state from the test.
function installPage() {
  window.sb = {
    rooms: new Map(),
    errors: [],
    async media() {
      return navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width: { ideal: 320 }, height: { ideal: 180 }, frameRate: { ideal: 15 } },
      });
    },
    async join(host, roomName, name, stream) {
      const { Peer } = await import('/sdk/switchboard.js');
      const peer = new Peer({ host, id: name, debug: Boolean(window.sbDebug) });
      const room = peer.joinRoom(roomName, { stream, name, videoBandwidth: 300, audioBandwidth: 32 });
      room.on('error', (e) => window.sb.errors.push(`${name}: ${e.type}: ${e.message}`));
      window.sb.rooms.set(name, room);
      return room;
    },
    opened(room) {
      return new Promise((resolve, reject) => {
        if (room.open) resolve();
        room.once('open', resolve);
        room.once('close', () => reject(new Error(`${room.peer.id} closed before open`)));
      });
    },
    async state(name) {
      const room = window.sb.rooms.get(name);
      const stats = await room.getPeerStats();
      const named = Object.fromEntries(Object.entries(stats).map(([id, s]) => [room.getPeerName(id), s]));
      return {
        members: room.members.map((id) => room.getPeerName(id)).sort(),
        streams: room.remoteStreams.map((s) => `${room.getPeerName(s.peerId)}:${s.getTracks().map((t) => t.kind).sort().join('+')}`).sort(),
        signaling: room.pc?.signalingState,
        connection: room.connectionState,
        transceivers: room.pc?.getTransceivers().length,
        stats: named,
      };
    },
  };
}

async function frames(page, name) {
  const s = await page.evaluate((n) => window.sb.state(n), name);
  const counts = Object.fromEntries(Object.entries(s.stats).map(([who, st]) => [who, st.video?.framesDecoded ?? 0]));
  Object.defineProperty(counts, 'detail', { value: s.stats });
  return counts;
}

/** Wait until `name` (in `page`) decodes new frames from every peer in `from`. */
async function decodesFrom(page, name, from) {
  const before = await frames(page, name);
  await waitFor(`${name} to decode video from ${from}`, async () => {
    const now = await frames(page, name);
    const missing = from.filter((who) => !((now[who] ?? 0) > (before[who] ?? 0)));
    if (missing.length) throw new Error(`no new frames from ${missing} (${JSON.stringify(now.detail)})`);
    return true;
  }, { timeout: 25000, interval: 500 });
}

export async function joinLeaveBurst({ browser, server, report }) {
  const roomName = uniqueRoom('burst');
  const watcherPage = await newPage(browser, 'burst-watcher');
  const crowdPage = await newPage(browser, 'burst-crowd');
  try {
    for (const page of [watcherPage, crowdPage]) {
      await page.goto(`${server.base}/healthz`);
      await page.evaluate(installPage);
      if (process.env.SB_DEBUG) await page.evaluate(() => { window.sbDebug = true; });
    }
    await watcherPage.evaluate(async ({ host, roomName: r }) => {
      const room = await window.sb.join(host, r, 'watcher', await window.sb.media());
      await window.sb.opened(room);
    }, { host: server.host, roomName });

    const t0 = Date.now();
    await crowdPage.evaluate(async ({ host, roomName: r }) => {
      const sb = window.sb;
      const stream = await sb.media();
      const audioOnly = new MediaStream(stream.getAudioTracks());
      // Five join at once; two leave as soon as they are in, one leaves before it is in.
      const names = ['p1', 'p2', 'p3', 'p4', 'p5'];
      const rooms = await Promise.all(names.map((n) => sb.join(host, r, n, stream)));
      const [p1, p2, p3, p4, p5] = rooms;
      p5.close();
      await Promise.all([p1, p2, p3, p4].map((room) => sb.opened(room)));
      p2.close();
      p3.close();
      // p4 drops its video and takes it back while the room is still settling.
      await p4.replaceStream(audioOnly);
      await p4.replaceStream(stream);
      // And one more joins and leaves in the middle of it.
      const p6 = await sb.join(host, r, 'p6', stream);
      await sb.opened(p6);
      p6.close();
      return p1.members.length;
    }, { host: server.host, roomName });

    const expected = { watcher: ['p1', 'p4'], p1: ['p4', 'watcher'], p4: ['p1', 'watcher'] };
    for (const [name, others] of Object.entries(expected)) {
      const page = name === 'watcher' ? watcherPage : crowdPage;
      const want = others.map((o) => `${o}:audio+video`);
      await waitFor(`${name} to settle with streams ${want}`, async () => {
        const s = await page.evaluate((n) => window.sb.state(n), name);
        const ok = JSON.stringify(s.members) === JSON.stringify(others)
          && JSON.stringify(s.streams) === JSON.stringify(want)
          && s.signaling === 'stable' && s.connection === 'connected';
        if (!ok) throw new Error(JSON.stringify({ ...s, stats: undefined }));
        return true;
      }, { timeout: 30000, interval: 500 });
    }
    report(`burst settled ${((Date.now() - t0) / 1000).toFixed(1)} s after the first of 6 concurrent joins`);

    await Promise.all([
      decodesFrom(watcherPage, 'watcher', ['p1', 'p4']),
      decodesFrom(crowdPage, 'p1', ['watcher', 'p4']),
      decodesFrom(crowdPage, 'p4', ['watcher', 'p1']),
    ]);
    const slots = await watcherPage.evaluate(() => window.sb.state('watcher').then((s) => s.transceivers));
    report(`watcher ends with ${slots} transceivers after 6 peers came and went`);

    const errors = [
      ...(await watcherPage.evaluate(() => window.sb.errors)),
      ...(await crowdPage.evaluate(() => window.sb.errors)),
    ];
    assert(errors.length === 0, `SDK errors during the burst: ${errors.join(' | ')}`);
  } catch (err) {
    // Leave what each SDK room thought of its m-lines for the post-mortem.
    const dump = async (page) => page.evaluate(() => Object.fromEntries([...window.sb.rooms].map(([name, room]) => [name, {
      closed: room.closed,
      slots: Object.fromEntries(room._slots),
      transceivers: room.pc?.getTransceivers().map((t) => ({ mid: t.mid, direction: t.direction, current: t.currentDirection, track: t.receiver.track.id })),
      local: room.pc?.localDescription?.sdp,
      remote: room.pc?.remoteDescription?.sdp,
    }])));
    const state = { watcher: await dump(watcherPage).catch((e) => String(e)), crowd: await dump(crowdPage).catch((e) => String(e)) };
    writeFileSync(path.join(ARTIFACTS, 'burst-debug.json'), JSON.stringify(state, null, 2));
    throw err;
  } finally {
    await watcherPage.closeContext();
    await crowdPage.closeContext();
  }
}
