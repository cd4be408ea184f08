// Bandwidth estimation through the SFU with real Chromium: a publisher sends three simulcast
// layers of a busy red 1280×720 canvas; two members receive it, one of them in a network
// namespace of its own (netns.mjs) behind an nftables policer. With the policer on, the server's
// estimate for that member falls and the allocator moves it to a lower layer: it decodes a
// smaller frameWidth and keeps decoding (red, so from the right owner), while the other member
// keeps the top layer. With the policer lifted, the member climbs back to the top layer (1280
// unless a CPU-starved Chrome scaled its encodings down).

import { assert, newPage, sleep, startServer, uniqueRoom, waitFor } from './harness.mjs';
import { SERVER_IP, isolatedBrowser, loadInMember, networkTools } from './netns.mjs';
import { INPAGE, colourOf, helperPage, joinAs, trackStats } from './subscriptions.mjs';

const TRACK = 'pub:camera';
/**
 * 80 kB/s (640 kbit/s): Chrome's top 720p layer wants up to 2.5 Mbit/s, but starved of CPU (noise
 * at 720p, three encodings, two cores) it may make little more than 1; its 180p layer needs 0.2.
 */
const POLICE_KBYTES = 80;

const widthOf = async (page) => (await trackStats(page))[TRACK]?.frameWidth ?? 0;
const framesOf = async (page) => (await trackStats(page))[TRACK]?.framesDecoded ?? 0;

/** Wait until `page` decodes TRACK at a width `ok` accepts; the milliseconds it took. */
async function waitWidth(page, what, ok, timeout = 30000) {
  const t0 = Date.now();
  await waitFor(`${what} (decoding ${await widthOf(page)} wide)`, async () => ok(await widthOf(page)), { timeout, interval: 200 });
  return Date.now() - t0;
}

/** The width the publisher encodes each of its layers at now, and why Chrome limits them. */
const sentLayers = (page) => page.evaluate(async () => {
  const out = {};
  (await window.room.pc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) {
      out[s.rid] = { width: s.frameWidth ?? 0, limit: s.qualityLimitationReason ?? '?' };
    }
  });
  return out;
});

/**
 * Wait (60 s at most) until weak decodes the top layer again; how long it took and its width. The top
 * layer is 1280 wide unless Chrome, starved of CPU on a loaded machine, scales its encodings
 * down: then weak must reach what the publisher's top encoding is now. A timeout says what the
 * publisher sends, what best decodes and what reached weak in the last seconds, so that a slow
 * estimate can be told from a publisher that stopped sending the layer.
 */
async function climbBack(pub, weak, best, timeout = 60000) {
  const t0 = Date.now();
  const bytesOf = async () => (await trackStats(weak))[TRACK]?.bytesReceived ?? 0;
  const trail = [];
  for (;;) {
    const [layers, w, bw, bytes] = [await sentLayers(pub), await widthOf(weak), await widthOf(best), await bytesOf()];
    const top = Math.max(0, ...Object.values(layers).map((l) => l.width));
    if (w > 0 && w === top) return { ms: Date.now() - t0, width: w };
    trail.push({ at: Date.now() - t0, w, bw, bytes });
    if (Date.now() - t0 >= timeout) {
      const rates = trail.filter((_, i) => i % 10 === 0).map((s, i, all) => {
        const prev = all[i - 1];
        const kbps = prev ? Math.round(((s.bytes - prev.bytes) * 8) / (s.at - prev.at)) : 0;
        return `${Math.round(s.at / 1000)} s: weak ${s.w} wide at ${kbps} kbit/s, best ${s.bw}`;
      });
      throw new Error(`weak did not climb back to the top layer within ${timeout} ms of lifting the policer; `
        + `publisher sends ${JSON.stringify(layers)}; ${rates.join('; ')}`);
    }
    await sleep(200);
  }
}

export async function adaptToPolicedLink({ browser, report }) {
  const tools = networkTools();
  if (tools !== true) throw new Error(`the adaptation test needs a network namespace with nftables: ${tools} (scripts/browser-tests.sh installs it)`);
  const server = await startServer({ logName: 'server-adapt.log', ip: SERVER_IP, args: ['--bandwidth-estimation', 'true'] });
  let member = null;
  const pages = [];
  try {
    member = await isolatedBrowser(server.port);
    const weak = await newPage(member.browser, 'adapt-weak');
    pages.push(weak);
    await loadInMember(weak, server.base, INPAGE);
    const pub = await helperPage(browser, server.base, 'adapt-pub');
    const best = await helperPage(browser, server.base, 'adapt-best');
    pages.push(pub, best);
    const roomName = uniqueRoom('adapt');
    await joinAs(pub, {
      host: server.host, roomName, id: 'pub', options: { simulcast: true },
      publish: [{ colour: 'red', size: [1280, 720], busy: true, name: 'camera', source: 'camera' }],
    });
    await joinAs(best, { host: server.host, roomName, id: 'best' });
    await joinAs(weak, { host: server.host, roomName, id: 'weak' });
    await waitWidth(best, 'best to decode the top layer', (w) => w === 1280, 40000);
    await waitWidth(weak, 'weak to decode the top layer before the policer', (w) => w === 1280, 40000);

    // The policer: the member's estimate falls, the allocator moves it down.
    await member.police(POLICE_KBYTES);
    const down = await waitWidth(weak, `weak to move below 1280 behind a ${POLICE_KBYTES} kB/s policer`, (w) => w > 0 && w < 1280);
    const lower = await widthOf(weak);
    // The switch itself starts at a keyframe, while the policer may still be dropping what was
    // queued before it: judge the steady state after it.
    await sleep(2000);
    const [before, bestBefore] = [await framesOf(weak), await framesOf(best)];
    await sleep(5000);
    const decoded = (await framesOf(weak)) - before;
    const bestDecoded = (await framesOf(best)) - bestBefore;
    const held = await widthOf(weak);
    // The publisher's frame rate is what its CPU allows (noise at 720p, three encodings, two
    // cores: a few frames a second at the top layer). Behind the policer the member may try the
    // top layer again and fall back (the estimate recovers between drops), so the steady state
    // is reported, and only a member that stopped decoding fails.
    const pauses = await weak.evaluate(() => window.events
      .filter(([, name]) => name === 'trackPaused' || name === 'trackResumed')
      .map(([at, name]) => `${name} ${at - window.events[0][0]} ms`));
    assert(decoded >= 5, `weak decoded ${decoded} frames in 5 s behind the policer, best ${bestDecoded}; `
      + `weak at ${held}, its pauses: ${pauses.join(', ') || 'none'}`);
    // Its only video track is the first in its order, which an estimate never pauses.
    assert(pauses.length === 0, `weak's only video track was paused: ${pauses.join(', ')}`);
    // best's own estimate may dip for a moment on a starved machine; it holds or regains 1280.
    await waitWidth(best, 'best to keep the top layer', (w) => w === 1280, 15000);
    // Behind the policer frames come in bursts, with stalls of seconds while a layer switch
    // waits for its keyframe: one frame, given longer, shows whose video it is.
    const policed = { samples: 1, frameTimeout: 6000, timeout: 30000 };
    for (const [page, who, how] of [[weak, 'weak', policed], [best, 'best', undefined]]) {
      const colour = await colourOf(page, 'pub', TRACK, how);
      assert(colour === 'red', `${who} decodes ${TRACK} as ${colour}`);
    }

    // Lifted: it climbs back to the top layer.
    await member.restore();
    const up = await climbBack(pub, weak, best);
    const colour = await colourOf(weak, 'pub', TRACK);
    assert(colour === 'red', `weak decodes ${TRACK} as ${colour} after climbing back`);
    report(`policer ${POLICE_KBYTES} kB/s: weak 1280 → ${lower} in ${down} ms (${decoded} frames in the next 5 s at ${held}, best ${bestDecoded}; `
      + 'never paused), '
      + `back to the top layer (${up.width}) ${up.ms} ms after lifting; best stays at 1280; red throughout`);
  } finally {
    for (const page of pages) await page.closeContext().catch(() => {});
    await member?.stop();
    await server.stop();
  }
}
