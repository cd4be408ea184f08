// VP9 and AV1 through the SFU, by content and by codec: one member publishes a red canvas with
// `videoCodec: 'VP9'`, another a green one with `videoCodec: 'AV1'`, a third publishes blue in
// the default codec (VP8). Every member decodes both others' colours, and each video arrives in
// its publisher's codec (the receivers' inbound-rtp codec), so the server forwarded VP9 and AV1
// as they came.

import { assert, uniqueRoom, waitFor } from './harness.mjs';
import { colourOf, helperPage, joinAs, trackStats } from './subscriptions.mjs';

const MEMBERS = [
  { id: 'nine', colour: 'red', codec: 'VP9' },
  { id: 'av1', colour: 'green', codec: 'AV1' },
  { id: 'eight', colour: 'blue', codec: null },
];

/** The mime type `page` sends its video in (outbound-rtp). */
const sentCodec = (page) => page.evaluate(async () => {
  const report = await window.room.pc.getStats();
  let codec = null;
  report.forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') codec = report.get(s.codecId)?.mimeType ?? codec;
  });
  return codec;
});

export async function vp9AndAv1({ browser, server, report }) {
  const roomName = uniqueRoom('codecs');
  const pages = [];
  try {
    for (const m of MEMBERS) {
      const page = await helperPage(browser, server.base, `codecs-${m.id}`);
      pages.push(page);
      const support = await page.evaluate(() => RTCRtpSender.getCapabilities('video').codecs.map((c) => c.mimeType));
      if (m.codec) assert(support.includes(`video/${m.codec}`), `this Chromium cannot send ${m.codec}: ${support}`);
      await joinAs(page, {
        host: server.host, roomName, id: m.id,
        options: m.codec ? { videoCodec: m.codec } : {},
        publish: [{ colour: m.colour, name: 'camera', source: 'camera' }],
      });
    }
    const lines = [];
    for (const [i, m] of MEMBERS.entries()) {
      const page = pages[i];
      for (const [j, other] of MEMBERS.entries()) {
        if (i === j) continue;
        const trackId = `${other.id}:camera`;
        const colour = await colourOf(page, other.id, trackId);
        assert(colour === other.colour, `${m.id} decodes ${trackId} as ${colour}, not ${other.colour}`);
        const codec = await waitFor(`${m.id}'s stats for ${trackId}`, async () => (await trackStats(page))[trackId]?.codec);
        const want = `video/${other.codec ?? 'VP8'}`;
        assert(codec === want, `${m.id} receives ${trackId} in ${codec}, not ${want}`);
      }
      const sent = await sentCodec(page);
      const want = `video/${m.codec ?? 'VP8'}`;
      assert(sent === want, `${m.id} sends ${sent}, not ${want}`);
      const errors = await page.evaluate(() => window.events.filter((e) => e[1] === 'error'));
      assert(errors.length === 0, `${m.id} got errors: ${JSON.stringify(errors)}`);
      lines.push(`${m.id} sends ${sent}`);
    }
    report(`${lines.join(', ')}; each member decodes the other two by colour, in their codecs`);
  } finally {
    for (const page of pages) await page.closeContext();
  }
}
