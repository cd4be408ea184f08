// The browser suite: starts the Switchboard server and headless Chromium, runs every test, prints
// `N passed, M failed`, and exits non-zero on any failure. Run it through scripts/browser-tests.sh
// (which isolates it in a loopback-only network namespace), or directly with
// `node tests/browser/run.mjs` on a machine where loopback is all it needs.
//
// Environment: SWITCHBOARD_BIN (server binary, default target/debug/switchboard), CHROMIUM
// (default /usr/bin/chromium), SWITCHBOARD_LOG (server log filter), TEST (run tests whose name
// contains this text).

import { startBrowser, startServer, withTimeout } from './harness.mjs';
import { threePersonCall } from './call.mjs';
import { sdkErrors } from './errors.mjs';
import { joinLeaveBurst } from './burst.mjs';
import { roomOptions, serverShutdown } from './options.mjs';
import { credentialsAndOperator } from './operator.mjs';
import { selectiveSubscription } from './subscriptions.mjs';
import { clientMute } from './mute.mjs';
import { signalModifierChecked } from './signals.mjs';
import { resumeAfterGrace, resumeAfterOutages } from './resume.mjs';
import { iceTcpWhenUdpIsBlocked } from './icetcp.mjs';
import { turnExpiredRefused, turnRelayCall } from './turn.mjs';
import { whipAndWhep } from './whip.mjs';
import {
  callEndReasons, dataConnections, demoCall, meshRoomOfThree, p2pCall, presenceResume, sfuCall,
  voiceThenVideo,
} from './calls.mjs';
import { groupCall } from './groupcall.mjs';
import { vp9AndAv1 } from './codecs.mjs';
import { activeSpeakers } from './speakers.mjs';
import { simulcastLayers } from './simulcast.mjs';
import { dynacastLayers } from './dynacast.mjs';
import { adaptToPolicedLink } from './adapt.mjs';
import { redUnderLoss } from './red.mjs';

const TESTS = [
  { name: 'three-person call through the demo page', run: threePersonCall, timeout: 150000 },
  { name: 'SDK errors: bad server address, invalid room name, invalid arguments', run: sdkErrors, timeout: 60000 },
  { name: 'join/leave burst and renegotiation never deadlock', run: joinLeaveBurst, timeout: 120000 },
  { name: 'room options: codec, bandwidth, stream swap, several rooms', run: roomOptions, timeout: 90000 },
  { name: 'codecs: VP9 and AV1 publishers reach every member, by colour and codec', run: vp9AndAv1, timeout: 90000 },
  { name: 'active speakers: the louder tone leads, muting it leaves the softer alone', run: activeSpeakers, timeout: 90000 },
  { name: 'simulcast: each subscriber decodes the layer it asks for, by size and colour', run: simulcastLayers, timeout: 120000 },
  { name: 'dynacast: layers nobody receives stop at the publisher and start when wanted', run: dynacastLayers, timeout: 120000 },
  { name: 'loss: RED audio and NACKed video through 5 % random loss (nftables) to a member', run: redUnderLoss, timeout: 120000 },
  { name: 'bandwidth: a member behind an nftables policer drops to a lower layer and climbs back', run: adaptToPolicedLink, timeout: 150000 },
  { name: 'credentials, data messages and operator actions', run: credentialsAndOperator, timeout: 60000 },
  { name: 'server drain and shutdown reach the app', run: serverShutdown, timeout: 60000 },
  { name: 'selective subscription: exactly the subscribed screen share, by colour', run: selectiveSubscription, timeout: 90000 },
  { name: 'client mute stops forwarding; unmute decodes again within 1 s', run: clientMute, timeout: 60000 },
  { name: 'signalModifier: the admission check sees the token on every signal', run: signalModifierChecked, timeout: 60000 },
  { name: 'resume: WebSocket cut, UDP cut, address change', run: resumeAfterOutages, timeout: 150000 },
  { name: 'resume: cut longer than the grace period ends the session', run: resumeAfterGrace, timeout: 90000 },
  { name: 'ICE-TCP: UDP blocked by nftables, media over the TCP port', run: iceTcpWhenUdpIsBlocked, timeout: 90000 },
  { name: 'TURN: relay-only member through coturn (UDP, then TCP to it) exchanges media with a direct one', run: turnRelayCall, timeout: 150000 },
  { name: 'TURN: expired and forged credentials are refused by coturn, a fresh one is not', run: turnExpiredRefused, timeout: 90000 },
  { name: 'calls: p2p 1:1 call, colours, audio and data both ways, hangup', run: p2pCall, timeout: 90000 },
  { name: 'calls: end reasons rejected, cancelled, busy, missed', run: callEndReasons, timeout: 120000 },
  { name: 'calls: voice-only p2p call adds video mid-call', run: voiceThenVideo, timeout: 90000 },
  { name: 'calls: sfu 1:1 call, colours, audio and data both ways, hangup', run: sfuCall, timeout: 90000 },
  { name: 'calls: sfu group call rings two, one rejects, a third invited later', run: groupCall, timeout: 120000 },
  { name: 'calls: mesh room of three', run: meshRoomOfThree, timeout: 90000 },
  { name: 'calls: DataConnection json and binary', run: dataConnections, timeout: 60000 },
  { name: 'calls: demo page call by id, accept, hang up', run: demoCall, timeout: 60000 },
  { name: 'calls: the peer connection resumes mid-call; listAllPeers; disconnect and reconnect', run: presenceResume, timeout: 60000 },
  { name: 'WHIP publisher and WHEP player pages (plain RTCPeerConnection + fetch, another origin)', run: whipAndWhep, timeout: 90000 },
];

const SUITE_LIMIT_MS = 12 * 60 * 1000;

async function main() {
  const started = Date.now();
  const only = process.env.TEST;
  const selected = TESTS.filter((t) => !only || t.name.includes(only));
  let passed = 0;
  let failed = 0;
  let server;
  let browser;
  const watchdog = setTimeout(() => {
    console.error(`suite exceeded ${SUITE_LIMIT_MS / 1000} s; aborting`);
    console.log(`${passed} passed, ${selected.length - passed} failed`);
    process.exit(1);
  }, SUITE_LIMIT_MS);
  try {
    server = await startServer();
    browser = await startBrowser();
    console.log(`server ${server.base}, Chromium ${browser.version}`);
    for (const test of selected) {
      const t0 = Date.now();
      const notes = [];
      const report = (line) => notes.push(line);
      try {
        await withTimeout(test.run({ browser: browser.browser, server, report }), test.timeout, test.name);
        passed += 1;
        console.log(`ok   ${test.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      } catch (err) {
        failed += 1;
        console.log(`FAIL ${test.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
        console.log(`     ${String(err.stack ?? err).split('\n').join('\n     ')}`);
      }
      for (const line of notes) console.log(`     ${line}`);
      if (server.child.exitCode !== null) {
        console.log(`     the server exited (${server.child.exitCode}); see ${server.child.logPath}`);
      }
    }
  } catch (err) {
    console.log(`setup failed: ${err.stack ?? err}`);
    failed = selected.length - passed;
  } finally {
    await browser?.stop();
    await server?.stop();
    clearTimeout(watchdog);
  }
  console.log(`browser suite took ${((Date.now() - started) / 1000).toFixed(1)} s; logs in artifacts/`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main();
