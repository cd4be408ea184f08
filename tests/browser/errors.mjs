// The SDK's errors: what an application sees when things go wrong.

import { assert, freePort, newPage } from './harness.mjs';

export async function sdkErrors({ browser, server, report }) {
  const page = await newPage(browser, 'errors');
  // A port nobody listens on (and not one Chromium refuses outright, like 9).
  const closedPort = await freePort();
  try {
    await page.goto(`${server.base}/healthz`);
    const result = await page.evaluate(async ({ goodHost, badHost }) => {
      const { Peer } = await import('/sdk/switchboard.js');
      const plain = (e) => (e ? { type: e.type, name: e.name, message: e.message } : null);
      const within = (ms, executor) => new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ timedOut: true }), ms);
        executor((value) => { clearTimeout(timer); resolve(value); });
      });
      const out = {};

      // 1. Nothing listens there: the peer and the room it was asked to join both report it.
      out.badAddress = await within(8000, (done) => {
        const got = { events: [] };
        const peer = new Peer({ host: badHost });
        peer.on('open', () => got.events.push('peer:open'));
        peer.on('error', (e) => { got.events.push('peer:error'); got.peerError = plain(e); });
        peer.on('close', () => got.events.push('peer:close'));
        const room = peer.joinRoom('lobby');
        room.on('error', (e) => { got.events.push('room:error'); got.roomError = plain(e); });
        room.on('close', () => { got.events.push('room:close'); setTimeout(() => done(got), 50); });
      });

      // 2. A host name that does not resolve.
      out.badHostName = await within(8000, (done) => {
        const peer = new Peer({ host: 'no-such-host.invalid:7880' });
        peer.on('error', (e) => done(plain(e)));
      });

      // 3. A room name the server refuses; the same peer can then join a good room.
      out.badRoom = await within(8000, (done) => {
        const peer = new Peer({ host: goodHost });
        peer.on('open', () => {
          const room = peer.joinRoom('bad room!');
          const got = { events: [] };
          room.on('open', () => got.events.push('room:open'));
          room.on('error', (e) => { got.events.push('room:error'); got.error = plain(e); });
          room.on('close', () => {
            got.events.push('room:close');
            const again = peer.joinRoom('good-room');
            again.on('open', () => {
              got.events.push('good:open');
              got.members = again.members;
              peer.destroy();
            });
            again.on('error', (e) => { got.events.push('good:error'); got.goodError = plain(e); });
            again.on('close', () => { got.events.push('good:close'); done(got); });
          });
        });
      });

      // 4. Invalid arguments throw at once, with a message that says what is wrong.
      const throws = (fn) => {
        try { fn(); return null; } catch (e) { return plain(e); }
      };
      const peer = new Peer({ host: goodHost });
      out.sync = {
        mesh: throws(() => peer.joinRoom('r1', { mode: 'p2p' })),
        h265: throws(() => peer.joinRoom('r2', { videoCodec: 'H265' })),
        g711: throws(() => peer.joinRoom('r3', { audioCodec: 'PCMU' })),
        bandwidth: throws(() => peer.joinRoom('r4', { videoBandwidth: -5 })),
        typo: throws(() => peer.joinRoom('r5', { videoBandwith: 500 })),
        roomType: throws(() => peer.joinRoom(42)),
        badId: throws(() => new Peer({ host: goodHost, id: 'not an id' })),
        badScheme: throws(() => new Peer({ host: 'ftp://example.com' })),
        unknownPeerOption: throws(() => new Peer({ hots: goodHost })),
        badIcePolicy: throws(() => new Peer({ host: goodHost, iceTransportPolicy: 'relay-only' })),
      };
      peer.destroy();
      return out;
    }, { goodHost: server.host, badHost: `127.0.0.1:${closedPort}` });

    const bad = result.badAddress;
    assert(!bad.timedOut, 'bad address: no error/close within 8 s');
    assert(bad.peerError?.type === 'serverUnreachable', `bad address: peer error type ${bad.peerError?.type}`);
    assert(bad.peerError.message.includes(`cannot reach the Switchboard server at ws://127.0.0.1:${closedPort}/v1/ws`), `bad address message: ${bad.peerError.message}`);
    assert(bad.roomError?.type === 'serverUnreachable', `bad address: room error ${JSON.stringify(bad.roomError)}`);
    assert(!bad.events.includes('peer:open'), 'bad address: peer must not open');
    report(`bad address → error: "${bad.peerError.message}"`);

    assert(result.badHostName?.type === 'serverUnreachable', `bad host name: ${JSON.stringify(result.badHostName)}`);

    const room = result.badRoom;
    assert(!room.timedOut, `bad room: timed out (${JSON.stringify(room)})`);
    assert(room.error?.type === 'invalidRoomName', `bad room: error type ${room.error?.type}`);
    assert(/room name/.test(room.error.message), `bad room: message ${room.error.message}`);
    assert(!room.events.includes('room:open'), 'bad room: must not open');
    assert(room.events.includes('good:open'), `bad room: the peer could not join a good room afterwards (${JSON.stringify(room)})`);
    report(`invalid room name → error: "${room.error.message}"`);

    for (const [name, err] of Object.entries(result.sync)) {
      assert(err && err.type === 'invalidArgument' && err.message.length > 10, `${name} should throw invalidArgument, got ${JSON.stringify(err)}`);
    }
    assert(/mesh/.test(result.sync.mesh.message), result.sync.mesh.message);
    assert(/H265/.test(result.sync.h265.message), result.sync.h265.message);
    assert(/videoBandwith/.test(result.sync.typo.message), result.sync.typo.message);
  } finally {
    await page.closeContext();
  }
}
