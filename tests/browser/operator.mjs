// A server that requires credentials: joins with missing, forged and good credentials, renewal,
// data messages between members, and what the admin API's actions look like to the SDK.

import { createHmac, randomBytes } from 'node:crypto';
import { assert, newPage, startServer, uniqueRoom, waitFor } from './harness.mjs';

/** What an application server does: sign "<timestamp>:<ttl>:<peerId>" with the API secret. */
function mint(secret, peerId, ttl, timestamp = Math.floor(Date.now() / 1000)) {
  const authToken = createHmac('sha256', secret).update(`${timestamp}:${ttl}:${peerId}`).digest('base64');
  return { timestamp, ttl, authToken };
}

export async function credentialsAndOperator({ browser, report }) {
  const secret = randomBytes(24).toString('hex');
  const own = await startServer({
    logName: 'server-auth.log',
    args: ['--auth-mode', 'required', '--api-key', `app:${secret}`],
  });
  const page = await newPage(browser, 'operator');
  const roomName = uniqueRoom('auth');
  const admin = async (method, path, body) => {
    const res = await fetch(`${own.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert(res.ok, `admin ${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  };
  try {
    await page.goto(`${own.base}/healthz`);
    const credentials = {
      ada: mint(secret, 'ada', 61),
      adaRenewed: mint(secret, 'ada', 3600),
      bob: mint(secret, 'bob', 600),
    };
    const refused = await page.evaluate(async ({ host, roomName: r, credentials: c }) => {
      const { Peer } = await import('/sdk/switchboard.js');
      const firstError = (peer) => new Promise((resolve) => {
        const room = peer.joinRoom(r);
        room.on('error', (e) => resolve({ type: e.type, message: e.message }));
        room.on('open', () => resolve({ type: 'opened?!' }));
      });
      let noId = null;
      try { new Peer({ host, credential: c.bob }); } catch (e) { noId = e.message; }
      return {
        none: await firstError(new Peer({ host, id: 'ada' })),
        forged: await firstError(new Peer({ host, id: 'ada', credential: c.bob })),
        noId,
      };
    }, { host: own.host, roomName, credentials });
    assert(refused.none.type === 'credentialRequired', `no credential: ${JSON.stringify(refused.none)}`);
    assert(refused.forged.type === 'credentialInvalid', `bob's credential used by ada: ${JSON.stringify(refused.forged)}`);
    assert(/peer id/.test(refused.noId ?? ''), `credential without id must throw: ${refused.noId}`);
    report(`no credential → "${refused.none.message}"; forged → "${refused.forged.message}"`);

    // Ada and Bob join with good credentials; Ada's runs out in 61 s, so `expiresIn` comes soon.
    await page.evaluate(async ({ host, roomName: r, credentials: c }) => {
      const { Peer } = await import('/sdk/switchboard.js');
      const log = (window.log = []);
      const join = (id, credential) => {
        const peer = new Peer({ host, id, credential });
        peer.on('expiresIn', (s) => log.push([id, 'expiresIn', s]));
        const room = peer.joinRoom(r, { name: id.toUpperCase() });
        for (const ev of ['data', 'trackMuted', 'credentialUpdated', 'peerLeave']) {
          room.on(ev, (x) => log.push([id, ev, x]));
        }
        room.on('error', (e) => log.push([id, 'error', { type: e.type, reason: e.reason, message: e.message }]));
        room.on('close', () => log.push([id, 'close']));
        return room;
      };
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      window.ada = join('ada', c.ada);
      window.bob = join('bob', c.bob);
      window.ada.replaceStream(stream);
      await Promise.all([window.ada, window.bob].map((room) => new Promise((res, rej) => {
        if (room.open) res();
        room.once('open', res);
        room.once('close', () => rej(new Error(`${room.peer.id} closed before open: ${JSON.stringify(log)}`)));
      })));
    }, { host: own.host, roomName, credentials });

    const events = (who, type) => page.evaluate(([w, t]) => window.log.filter(([a, b]) => a === w && b === t).map((x) => x[2]), [who, type]);
    const expiresIn = await waitFor('ada to be warned that her credential expires', async () => (await events('ada', 'expiresIn'))[0], { timeout: 10000 });
    assert(expiresIn > 0 && expiresIn <= 61, `expiresIn ${expiresIn}`);
    await page.evaluate((c) => window.ada.peer.updateCredential(c), credentials.adaRenewed);
    const expiresAt = await waitFor('ada\'s credential renewal', async () => (await events('ada', 'credentialUpdated'))[0]);
    assert(Math.abs(expiresAt - (credentials.adaRenewed.timestamp + 3600)) <= 1, `expiresAt ${expiresAt}`);

    // Data messages: to everyone, to one peer, to nobody who is there.
    await page.evaluate(() => {
      window.ada.send({ hello: 'all' });
      window.bob.send('just for ada', { to: 'ada' });
      window.bob.send('lost', { to: 'zed' });
    });
    await waitFor('bob to get ada\'s broadcast', async () => (await events('bob', 'data')).some((d) => d.src === 'ada' && d.data.hello === 'all'));
    await waitFor('ada to get bob\'s direct message', async () => (await events('ada', 'data')).some((d) => d.src === 'bob' && d.data === 'just for ada'));
    await waitFor('bob to hear that zed is unknown', async () => (await events('bob', 'error')).some((e) => e.type === 'unknownPeer'));

    // Operator actions through the admin API.
    await admin('POST', `/v1/rooms/${roomName}/messages`, { data: { notice: 'maintenance at 5' } });
    await waitFor('both to get the operator\'s message', async () => {
      const [a, b] = [await events('ada', 'data'), await events('bob', 'data')];
      return [a, b].every((list) => list.some((d) => d.src === null && d.data.notice === 'maintenance at 5'));
    });
    const adaAudio = await page.evaluate(() => window.bob.peers.get('ada').tracks.find((t) => t.kind === 'audio')?.trackId);
    assert(adaAudio, 'bob knows ada\'s audio track');
    await admin('PUT', `/v1/rooms/${roomName}/participants/ada/tracks/${encodeURIComponent(adaAudio)}/mute`, { muted: true });
    const muted = await waitFor('bob to see ada\'s audio muted', async () => (await events('bob', 'trackMuted')).find((m) => m.peerId === 'ada' && m.muted));
    assert(muted.kind === 'audio' && muted.trackId === adaAudio, `trackMuted ${JSON.stringify(muted)}`);
    const flagged = await page.evaluate(() => window.bob.peers.get('ada').tracks.find((t) => t.kind === 'audio').muted);
    assert(flagged === true, 'bob\'s member list marks the track muted');

    await admin('DELETE', `/v1/rooms/${roomName}/participants/bob`);
    const kicked = await waitFor('bob to be removed', async () => {
      const errors = await events('bob', 'error');
      const closed = (await page.evaluate(() => window.bob.closed));
      return closed && errors.find((e) => e.type === 'removed');
    });
    assert(kicked.reason === 'kicked', `kick: ${JSON.stringify(kicked)}`);
    await waitFor('ada to see bob leave', async () => (await events('ada', 'peerLeave')).includes('bob'));
    report(`renewal → expiresAt ${expiresAt}; operator mute → trackMuted; kick → "${kicked.message}"`);

    const adaErrors = await events('ada', 'error');
    assert(adaErrors.length === 0, `ada's errors: ${JSON.stringify(adaErrors)}`);
  } finally {
    await page.closeContext();
    await own.stop();
  }
}
