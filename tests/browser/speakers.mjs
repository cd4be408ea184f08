// Active speakers from what the browsers themselves measure: two members publish tones at very
// different volumes (a sine at 0.8 and at 0.03 of full scale; Chromium writes the level into
// every audio packet's RFC 6464 header extension), a third only listens. Everybody is told the
// loud one talks first and the soft one second; when the loud one mutes, the list becomes the
// soft one alone.

import { assert, uniqueRoom, waitFor } from './harness.mjs';
import { helperPage, joinAs } from './subscriptions.mjs';

const speakers = (page) => page.evaluate(() => window.room.activeSpeakers);
const names = (list) => list.map((s) => s.peerId).join(',');

export async function activeSpeakers({ browser, server, report }) {
  const roomName = uniqueRoom('speakers');
  const pages = {};
  try {
    for (const [id, tone] of [['loud', { frequency: 440, gain: 0.8 }], ['soft', { frequency: 660, gain: 0.03 }], ['listener', null]]) {
      const page = await helperPage(browser, server.base, `speakers-${id}`);
      pages[id] = page;
      await joinAs(page, {
        host: server.host, roomName, id,
        publish: tone ? [{ tone, name: 'mic', source: 'microphone' }] : [],
      });
    }
    const t0 = Date.now();
    for (const [id, page] of Object.entries(pages)) {
      await waitFor(`${id} to hear loud, then soft`, async () => names(await speakers(page)) === 'loud,soft', { timeout: 15000 });
    }
    const ranked = Date.now() - t0;
    const list = await speakers(pages.listener);
    assert(list[0].level > list[1].level * 10, `loud's level is far above soft's: ${JSON.stringify(list)}`);
    assert(list.every((s) => s.level > 0 && s.level <= 1), `levels in 0..1: ${JSON.stringify(list)}`);

    // Steady talk: no more announcements for a while.
    const count = () => pages.listener.evaluate(() => window.events.filter((e) => e[1] === 'activeSpeakersChanged').length);
    const before = await count();
    await new Promise((r) => setTimeout(r, 2000));
    const after = await count();
    assert(before >= 1, 'the listener got activeSpeakersChanged events');
    assert(after - before <= 1, `steady talk announced ${after - before} times in 2 s`);
    const lastEvent = await pages.listener.evaluate(() => window.events.filter((e) => e[1] === 'activeSpeakersChanged').at(-1)[2]);
    assert(names(lastEvent) === 'loud,soft', `the last event names loud, soft: ${JSON.stringify(lastEvent)}`);

    // The loud one mutes: the soft one is alone.
    const muted = Date.now();
    await pages.loud.evaluate(() => window.room.setMuted('audio', true));
    await waitFor('listener to hear soft alone', async () => names(await speakers(pages.listener)) === 'soft', { timeout: 10000 });
    const switched = Date.now() - muted;
    report(`loud, soft ranked ${ranked} ms after the joins (levels ${list.map((s) => `${s.peerId} ${s.level}`).join(', ')}); `
      + `after loud muted, soft alone ${switched} ms later; ${await count()} announcements in all`);
  } finally {
    for (const page of Object.values(pages)) await page.closeContext();
  }
}
