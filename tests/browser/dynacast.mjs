// Dynacast through the SFU: a publisher stops encoding the simulcast layers nobody receives and
// starts them again when somebody wants them. One member publishes a red 1280×720 canvas in three
// layers; one member receives it. When that member asks for `low`, the publisher's 640 and 1280
// encodings turn inactive (its sender's parameters, and its outbound-rtp stops counting bytes for
// them) after the server's hold; when it asks for `high` again they start and it decodes 1280
// red. When the receiver leaves, every encoding stops; a newcomer gets them back and decodes
// 1280 red.

import { assert, uniqueRoom, waitFor } from './harness.mjs';
import { colourOf, events, helperPage, joinAs, trackStats } from './subscriptions.mjs';

const TRACK = 'pub:camera';

const widthOf = async (page) => (await trackStats(page))[TRACK]?.frameWidth ?? 0;

/** The publisher's camera encodings: rid → { active, bytes, frames } (sent and encoded so far). */
const encodings = (page) => page.evaluate(async () => {
  const sender = window.room.pc.getSenders().find((s) => s.track?.kind === 'video');
  const out = {};
  for (const e of sender.getParameters().encodings) out[e.rid] = { active: e.active, bytes: 0, frames: 0 };
  (await sender.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.rid && out[s.rid]) {
      Object.assign(out[s.rid], { bytes: s.bytesSent ?? 0, frames: s.framesEncoded ?? 0 });
    }
  });
  return out;
});

const activeRids = (e) => Object.keys(e).filter((rid) => e[rid].active).sort().join(',');

/** Wait until exactly `rids` (sorted, comma-separated) are active; ms taken. */
async function waitActive(page, rids, what) {
  const t0 = Date.now();
  await waitFor(`${what}: the publisher to send ${rids || 'nothing'} (now ${activeRids(await encodings(page))})`,
    async () => activeRids(await encodings(page)) === rids, { timeout: 20000 });
  return Date.now() - t0;
}

/** Per rid, what grew over one interval: "h:inactive bytes+907 frames+7" (for failures). */
const deltas = (a, b) => Object.keys(b).map((r) => `${r}:${b[r].active ? 'active' : 'inactive'}`
  + ` bytes+${b[r].bytes - (a[r]?.bytes ?? 0)} frames+${b[r].frames - (a[r]?.frames ?? 0)}`).join(', ');

/** The rids whose bytesSent grew over `ms`, and the deltas of every rid. */
async function growing(page, ms) {
  const a = await encodings(page);
  await new Promise((r) => setTimeout(r, ms));
  const b = await encodings(page);
  const rids = Object.keys(b).filter((rid) => b[rid].bytes > (a[rid]?.bytes ?? 0)).sort().join(',');
  return { rids, detail: deltas(a, b) };
}

/**
 * Wait until only `rids` still send bytes, judged by one quiet second within 8 s (a frame in
 * flight at `active = false` may still go out in the first). Returns ms taken.
 */
async function quietExcept(page, rids, what) {
  const t0 = Date.now();
  let sending;
  do {
    sending = await growing(page, 1000);
    if (sending.rids === rids) return Date.now() - t0;
  } while (Date.now() - t0 < 8000);
  throw new Error(`with ${what} the publisher still sends bytes on ${sending.rids || 'nothing'} after 8 s (last second: ${sending.detail})`);
}

async function decodes(page, who, width) {
  const t0 = Date.now();
  await waitFor(`${who} to decode ${TRACK} ${width} wide (now ${await widthOf(page)})`,
    async () => (await widthOf(page)) === width, { timeout: 30000 });
  const colour = await colourOf(page, 'pub', TRACK);
  assert(colour === 'red', `${who} decodes ${TRACK} as ${colour}`);
  return Date.now() - t0;
}

export async function dynacastLayers({ browser, server, report }) {
  const roomName = uniqueRoom('dynacast');
  const pages = [];
  try {
    const pub = await helperPage(browser, server.base, 'dynacast-pub');
    const viewer = await helperPage(browser, server.base, 'dynacast-viewer');
    pages.push(pub, viewer);
    await joinAs(pub, {
      host: server.host, roomName, id: 'pub', options: { simulcast: true },
      publish: [{ colour: 'red', size: [1280, 720], name: 'camera', source: 'camera' }],
    });
    await joinAs(viewer, { host: server.host, roomName, id: 'viewer' });
    await decodes(viewer, 'viewer', 1280);
    assert(activeRids(await encodings(pub)) === 'f,h,q', 'all three layers at first');

    await viewer.evaluate(() => window.room.setTrackQuality('pub', 'camera', { quality: 'low' }));
    const toStop = await waitActive(pub, 'q', 'viewer wants low');
    await decodes(viewer, 'viewer (low)', 320);
    const drained = await quietExcept(pub, 'q', 'h and f inactive');
    // The server ranks layers by picture size: this still canvas's q sends more bytes than h and
    // f, and ranked by rate the "low" layer would be one of those (the publisher was told to
    // switch between them).
    assert(activeRids(await encodings(pub)) === 'q', `after the quiet second the publisher sends ${activeRids(await encodings(pub))}`);
    const told = await events(pub, 'layersWanted');
    assert(told.length >= 1 && told.at(-1)[2].trackId === TRACK, `layersWanted events: ${JSON.stringify(told)}`);

    await viewer.evaluate(() => window.room.setTrackQuality('pub', 'camera', { quality: 'high' }));
    const toStart = await waitActive(pub, 'f,h,q', 'viewer wants high');
    const toTop = await decodes(viewer, 'viewer (high again)', 1280);

    // Leaving (not just closing the page, which keeps the session for a resume).
    await viewer.evaluate(() => window.room.close());
    await viewer.closeContext();
    pages.splice(pages.indexOf(viewer), 1);
    const toNone = await waitActive(pub, '', 'nobody receives');
    const drainedNone = await quietExcept(pub, '', 'every layer inactive');

    const late = await helperPage(browser, server.base, 'dynacast-late');
    pages.push(late);
    const t0 = Date.now();
    await joinAs(late, { host: server.host, roomName, id: 'late' });
    await decodes(late, 'late', 1280);
    const lateMs = Date.now() - t0;
    assert(activeRids(await encodings(pub)) === 'f,h,q', 'every layer again for the newcomer');
    const errors = await pub.evaluate(() => window.events.filter((e) => e[1] === 'error'));
    assert(errors.length === 0, `the publisher got errors: ${JSON.stringify(errors)}`);
    report(`low → h and f stopped after ${toStop} ms (hold 3 s), only q sends bytes (quiet second ends ${drained} ms later); high → started in ${toStart} ms, `
      + `1280 decoded ${toTop} ms later; receiver left → all stopped in ${toNone} ms (quiet ${drainedNone} ms later); a newcomer decodes 1280 red ${lateMs} ms after joining`);
  } finally {
    for (const page of pages) await page.closeContext();
  }
}
