// signalModifier end to end: the application's admission check (admission.every_signal) sees
// every client message with the field the SDK's hook added (a CSRF token), lets through the
// ones that carry it, and refuses one that does not (admissionDenied for that message only: the
// session goes on, and the same request with the token succeeds).

import http from 'node:http';
import { assert, freePort, sleep, startServer, uniqueRoom, waitFor } from './harness.mjs';
import { colourOf, events, helperPage, joinAs } from './subscriptions.mjs';

const TOKEN = 'csrf-7f3a';

/** The application's admission endpoint: allows what carries the token, records everything. */
async function admissionApp() {
  const seen = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      let check;
      try {
        check = JSON.parse(body);
      } catch {
        res.writeHead(400).end();
        return;
      }
      const message = check.check === 'join' ? check.join : check.signal;
      const ok = message?.csrf === TOKEN;
      seen.push({ peerId: check.peerId, type: check.check === 'join' ? 'join' : check.signalType, ok });
      res.writeHead(ok ? 204 : 403).end();
    });
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}/admit`, seen, close: () => new Promise((r) => server.close(r)) };
}

export async function signalModifierChecked({ browser, report }) {
  const app = await admissionApp();
  const own = await startServer({
    logName: 'server-signals.log',
    args: ['--admission-url', app.url, '--admission-every-signal', 'true'],
  });
  const roomName = uniqueRoom('csrf');
  const pub = await helperPage(browser, own.base, 'csrf-pub');
  const sub = await helperPage(browser, own.base, 'csrf-sub');
  try {
    // Both add the token through the room option; the subscriber leaves it off `subscribe`
    // while window.skipSubscribeToken is set.
    await pub.evaluate((t) => { window.modifier = (name, payload) => ({ ...payload, csrf: t }); }, TOKEN);
    await sub.evaluate((t) => {
      window.skipSubscribeToken = true;
      window.modifier = (name, payload) => {
        if (name === 'subscribe' && window.skipSubscribeToken) return payload;
        payload.csrf = t;
        return undefined;
      };
    }, TOKEN);
    // Functions do not cross page.evaluate: joinAs passes a marker that inpage.js resolves.
    await joinAs(pub, { host: own.host, roomName, id: 'pub', options: { signalModifier: 'window.modifier' }, publish: [{ colour: 'green', name: 'camera' }] });
    await joinAs(sub, { host: own.host, roomName, id: 'sub', options: { autoSubscribe: false, signalModifier: 'window.modifier' } });

    // Without the token the subscribe is refused, that message only.
    await sub.evaluate(() => { window.room.subscribe('pub', 'camera'); });
    const denied = await waitFor('sub\'s subscribe to be refused', async () => (await events(sub, 'error')).find((e) => e[2].type === 'admissionDenied')?.[2]);
    await sleep(500);
    assert((await events(sub, 'remoteTrack')).length === 0, 'a refused subscribe delivered the track');
    assert(await sub.evaluate(() => window.room.state) === 'connected', 'the session goes on after a refused message');

    // With the token it goes through.
    await sub.evaluate(() => { window.skipSubscribeToken = false; window.room.subscribe('pub', 'camera'); });
    const colour = await colourOf(sub, 'pub', 'pub:camera');
    assert(colour === 'green', `after a subscribe with the token sub decodes pub's camera as ${colour}, not green`);

    const refused = app.seen.filter((s) => !s.ok);
    assert(refused.length === 1 && refused[0].type === 'subscribe' && refused[0].peerId === 'sub',
      `the application refused ${JSON.stringify(refused)} (want one subscribe of sub)`);
    const types = [...new Set(app.seen.filter((s) => s.ok).map((s) => s.type))].sort();
    for (const t of ['join', 'offer', 'subscribe']) assert(types.includes(t), `the application never saw a ${t} with the token (saw ${types})`);
    report(`the admission check saw ${app.seen.length} messages (${types.join(', ')}) with the token; a subscribe without it → "${denied.message}"`);
  } finally {
    await Promise.all([pub.closeContext(), sub.closeContext()]);
    await own.stop();
    await app.close();
  }
}
