// Simulcast through the SFU, by content and by size: one member publishes a red 1280×720 canvas
// with `simulcast: true` (three layers: 320, 640 and 1280 wide). Two members receive it: one asks
// for nothing and decodes the full width; the other asks for `low` and decodes a quarter of it,
// then `medium` and `high` move it up; then `fitTrackTo` follows its <video> element: 300 px wide
// gives the low layer, 1200 px the top one. Both decode red throughout (the right owner), and the
// publisher really sends three encodings (its outbound-rtp reports).

import { assert, uniqueRoom, waitFor } from './harness.mjs';
import { colourOf, helperPage, joinAs, trackStats } from './subscriptions.mjs';

const TRACK = 'pub:camera';

/** The width `page` decodes the published camera at, once it is steady. */
const widthOf = async (page) => (await trackStats(page))[TRACK]?.frameWidth ?? 0;

/** The rids the publisher sends, with the width of each. */
const sentLayers = (page) => page.evaluate(async () => {
  const report = await window.room.pc.getStats();
  const layers = {};
  report.forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) layers[s.rid] = s.frameWidth ?? 0;
  });
  return layers;
});

async function waitWidth(page, who, width) {
  const t0 = Date.now();
  await waitFor(`${who} to decode ${TRACK} ${width} wide (now ${await widthOf(page)})`, async () => (await widthOf(page)) === width, { timeout: 30000 });
  return Date.now() - t0;
}

export async function simulcastLayers({ browser, server, report }) {
  const roomName = uniqueRoom('simulcast');
  const pages = [];
  try {
    const pub = await helperPage(browser, server.base, 'simulcast-pub');
    const best = await helperPage(browser, server.base, 'simulcast-best');
    const small = await helperPage(browser, server.base, 'simulcast-small');
    pages.push(pub, best, small);
    await joinAs(pub, {
      host: server.host, roomName, id: 'pub', options: { simulcast: true },
      publish: [{ colour: 'red', size: [1280, 720], name: 'camera', source: 'camera' }],
    });
    await joinAs(best, { host: server.host, roomName, id: 'best' });
    await joinAs(small, { host: server.host, roomName, id: 'small' });
    await waitFor('small to receive the camera', () => small.evaluate((t) => !!window.room.getRemoteTrack('pub', t), 'camera'));
    await small.evaluate(() => window.room.setTrackQuality('pub', 'camera', { quality: 'low' }));

    const layers = await waitFor('the publisher to send three layers', async () => {
      const l = await sentLayers(pub);
      return Object.values(l).filter((w) => w > 0).length === 3 ? l : null;
    }, { timeout: 30000 });
    assert(layers.q === 320 && layers.h === 640 && layers.f === 1280, `sent layers: ${JSON.stringify(layers)}`);
    const bestAfter = await waitWidth(best, 'best', 1280);
    await waitWidth(small, 'small (low)', 320);
    for (const [page, who] of [[best, 'best'], [small, 'small']]) {
      const colour = await colourOf(page, 'pub', TRACK);
      assert(colour === 'red', `${who} decodes ${TRACK} as ${colour}`);
    }
    await small.evaluate(() => window.room.setTrackQuality('pub', 'camera', { quality: 'medium' }));
    const toMedium = await waitWidth(small, 'small (medium)', 640);
    await small.evaluate(() => window.room.setTrackQuality('pub', 'camera', { quality: 'high' }));
    const toHigh = await waitWidth(small, 'small (high)', 1280);
    assert((await widthOf(best)) === 1280, 'best stays on the top layer');
    const colour = await colourOf(small, 'pub', TRACK);
    assert(colour === 'red', `small decodes ${TRACK} as ${colour} after the switches`);
    // fitTrackTo: the quality follows the size small's <video> is shown at.
    await small.evaluate(() => {
      const video = document.createElement('video');
      video.muted = true;
      video.style.width = '300px';
      video.srcObject = new window.MediaStream([window.room.getRemoteTrack('pub', 'camera')]);
      document.body.appendChild(video);
      video.play().catch(() => {});
      window.fitted = video;
      window.stopFit = window.room.fitTrackTo('pub', 'camera', video);
    });
    const toThumb = await waitWidth(small, 'small (300 px element)', 320);
    await small.evaluate(() => { window.fitted.style.width = '1200px'; });
    const toLarge = await waitWidth(small, 'small (1200 px element)', 1280);
    await small.evaluate(() => window.stopFit());
    const errors = await small.evaluate(() => window.events.filter((e) => e[1] === 'error'));
    assert(errors.length === 0, `small got errors: ${JSON.stringify(errors)}`);
    report(`publisher sends q/h/f at ${layers.q}/${layers.h}/${layers.f}; best decodes 1280 (${bestAfter} ms), `
      + `low → 320, medium → 640 in ${toMedium} ms, high → 1280 in ${toHigh} ms; fitTrackTo a 300 px element → 320 in ${toThumb} ms, `
      + `resized to 1200 px → 1280 in ${toLarge} ms; red throughout`);
  } finally {
    for (const page of pages) await page.closeContext();
  }
}
