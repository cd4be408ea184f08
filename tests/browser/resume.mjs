// Sessions that survive the network: a member in a network namespace of its own (netns.mjs) has
// its WebSocket cut for 5 s (the others see peerReconnecting, then peerReconnected, media from
// the same id, never peerLeft; the SDK resumes by itself), its UDP cut for 5 s (an ICE restart
// brings the media back), its address changed (media follows), and its WebSocket cut for longer
// than the server's grace period (the others see peerLeft; the SDK's resume is refused).

import { assert, newPage, sleep, startServer, uniqueRoom, waitFor } from './harness.mjs';
import { FIRST_ADDRESS, SECOND_ADDRESS, SERVER_IP, isolatedBrowser, loadInMember, networkTools } from './netns.mjs';
import { INPAGE, colourOf, events, helperPage, joinAs } from './subscriptions.mjs';

/** Server grace for parked sessions in these tests (the default is 20 s). */
const GRACE_S = 4;
/** The keepalive the moving member uses: a dead WebSocket is noticed within ~2.5-3.5 s. */
const KEEPALIVE = { interval: 1000, timeout: 2500 };
/** ...and a dead media path within ~3-4 s (browsers take 10 s and more to say so). */
const MEDIA_TIMEOUT = 3000;
/** The server counts a silent connection as dropped after this long (control/session). */
const SERVER_SILENT_S = 15;

async function setUp(browser, report, label) {
  const tools = networkTools();
  if (tools !== true) throw new Error(`resume tests need a network namespace with nftables: ${tools} (scripts/browser-tests.sh installs it)`);
  const server = await startServer({ logName: `server-${label}.log`, ip: SERVER_IP, args: ['--resume-grace-s', String(GRACE_S)] });
  let member = null;
  let obs = null;
  const stop = async () => {
    await member?.stop();
    await obs?.closeContext();
    await server.stop();
  };
  try {
    member = await isolatedBrowser(server.port);
    const page = await newPage(member.browser, `${label}-member`);
    await loadInMember(page, server.base, INPAGE);
    obs = await helperPage(browser, server.base, `${label}-obs`);
    const roomName = uniqueRoom(label);
    await joinAs(obs, { host: server.host, roomName, id: 'obs' });
    await joinAs(page, {
      host: server.host, roomName, id: 'roamer',
      options: { keepalive: KEEPALIVE, mediaTimeout: MEDIA_TIMEOUT, reconnectTimeout: 40000 },
      publish: [{ colour: 'red', name: 'camera', source: 'camera' }],
    });
    const first = await colourOf(obs, 'roamer', 'roamer:camera');
    assert(first === 'red', `obs decodes roamer's camera as ${first}, not red`);
    await waitFor('roamer to be connected', () => page.evaluate(() => window.room.state === 'connected'));
    report(`roamer joined from ${FIRST_ADDRESS} (own netns), server on ${SERVER_IP}`);
    return { server, member, page, obs, stop };
  } catch (err) {
    // Nothing of a failed set-up outlives it (a server or a browser would outlive the suite).
    await stop();
    throw err;
  }
}

/**
 * Watch obs decode roamer's camera for `ms`: the longest time without a new frame. (Handled at
 * once, so a test that fails meanwhile reports its own error, not this one's.)
 */
function watchGaps(obs, ms) {
  const watching = obs.evaluate(({ forMs }) => window.sbt.frameGaps(window.room, 'roamer:camera', forMs), { forMs: ms });
  watching.catch(() => {});
  return watching;
}

/** obs decodes new frames of roamer's camera, and they are still red. */
async function mediaFlows(obs, what) {
  const before = await obs.evaluate(async () => (await window.room.getTrackStats())['roamer:camera']?.framesDecoded ?? 0);
  await waitFor(`obs to decode roamer's camera ${what}`, () => obs.evaluate(
    async (b) => ((await window.room.getTrackStats())['roamer:camera']?.framesDecoded ?? 0) > b + 10, before,
  ), { timeout: 20000 });
  const colour = await colourOf(obs, 'roamer', 'roamer:camera');
  assert(colour === 'red', `roamer's frames ${what} are ${colour}, not red`);
}

/** The member's connection events since `t0`, for reports and failure messages. */
const since = async (page, t0) => (await page.evaluate(() => window.events))
  .filter((e) => ['ice', 'connectionState', 'iceRestart', 'state', 'resumed'].includes(e[1]) && e[0] >= t0)
  .map((e) => `+${e[0] - t0}ms ${e[1]} ${JSON.stringify(e[2])}`).join('; ');

const states = async (page) => (await events(page, 'state')).map((e) => e[2][0]);

export async function resumeAfterOutages({ browser, report }) {
  const t = await setUp(browser, report, 'resume');
  const { member, page, obs } = t;
  try {
    // 1. The WebSocket is cut for 5 s; media keeps flowing over UDP meanwhile.
    const gaps = watchGaps(obs, 11000);
    const cutAt = Date.now();
    await member.cut('ws');
    await sleep(5000);
    await member.restore();
    const resumed = await waitFor('roamer to resume its session', async () => (await events(page, 'resumed'))[0], { timeout: 20000 });
    const wsGap = await gaps;
    const obsEvents = (await obs.evaluate(() => window.events)).filter((e) => e[2] === 'roamer' || e[2]?.peerId === 'roamer');
    const order = obsEvents.map((e) => e[1]).filter((n) => ['peerReconnecting', 'peerReconnected', 'peerLeave'].includes(n));
    assert(JSON.stringify(order) === '["peerReconnecting","peerReconnected"]', `obs saw ${JSON.stringify(order)} for roamer (want peerReconnecting, peerReconnected)`);
    await mediaFlows(obs, 'after the resume');
    const seq = await states(page);
    assert(JSON.stringify(seq) === '["connected","reconnecting","connected"]', `roamer's states: ${JSON.stringify(seq)}`);
    const negotiated = await obs.evaluate(() => window.events.filter((e) => e[1] === 'remoteTrack').length);
    assert(negotiated === 1, `obs got ${negotiated} remoteTrack events; the resume must not renegotiate`);
    report(`WS cut 5 s: roamer resumed ${resumed[2].downtimeMs} ms after noticing (${resumed[2].attempts} attempts, ${resumed[0] - cutAt} ms after the cut); `
      + `longest gap in obs's decoded frames ${wsGap.longestGapMs} ms`);

    // 2. Its UDP is cut for 5 s: ICE restarts bring the media back.
    const restartsBefore = await page.evaluate(() => window.room.iceRestarts);
    const udpGaps = watchGaps(obs, 16000);
    const cutUdpAt = Date.now();
    await member.cut('udp');
    await sleep(5000);
    await member.restore();
    const restoredAt = Date.now();
    const timeline = () => since(page, cutUdpAt);
    await waitFor('roamer to be connected again', () => page.evaluate(() => window.room.state === 'connected'), { timeout: 20000 })
      .catch(async (err) => { throw new Error(`${err.message}; roamer since the cut: ${await timeline()}`); });
    const connectedAfter = Date.now() - restoredAt;
    const restarts = await page.evaluate(() => window.room.iceRestarts);
    const media = await timeline();
    const udpStates = (await events(page, 'state')).filter((e) => e[0] >= cutUdpAt).map((e) => e[2][0]);
    assert(JSON.stringify(udpStates) === '["reconnecting","connected"]', `roamer's states around the UDP cut: ${JSON.stringify(udpStates)}; ${media}`);
    assert(restarts > restartsBefore, `no ICE restart during the UDP cut (${restartsBefore} → ${restarts}); roamer since the cut: ${media}`);
    await mediaFlows(obs, 'after the ICE restart');
    const udpGap = await udpGaps;
    report(`roamer since the UDP cut: ${media}`);
    report(`UDP cut 5 s: ${restarts - restartsBefore} ICE restart(s); state connected ${connectedAfter} ms after the restore; longest gap in obs's frames ${udpGap.longestGapMs} ms`);

    // 3. The address changes (Wi-Fi → cellular): the old one disappears, media follows.
    const moveGaps = watchGaps(obs, 25000);
    const movedAt = Date.now();
    await member.moveToSecondAddress();
    // The first address is gone from the member's namespace: whatever obs decodes now left from
    // the second one.
    await mediaFlows(obs, 'after the move').catch(async (err) => { throw new Error(`${err.message}; roamer since the move: ${await since(page, movedAt)}`); });
    const backAfter = Date.now() - movedAt;
    report(`roamer since the move: ${await since(page, movedAt)}`);
    const moveGap = await moveGaps;
    const left = (await obs.evaluate(() => window.events)).filter((e) => e[1] === 'peerLeave');
    assert(left.length === 0, `obs saw peerLeave: ${JSON.stringify(left)}`);
    const after = await page.evaluate(() => ({ resumes: window.room.resumes, iceRestarts: window.room.iceRestarts, state: window.room.state }));
    report(`address change ${FIRST_ADDRESS} → ${SECOND_ADDRESS}: obs decodes roamer again ${backAfter} ms or less after the move; `
      + `longest gap in obs's frames ${moveGap.longestGapMs} ms (roamer: ${after.resumes} resumes, ${after.iceRestarts} ICE restarts in all)`);
  } finally {
    await t.stop();
  }
}

export async function resumeAfterGrace({ browser, report }) {
  const t = await setUp(browser, report, 'grace');
  const { member, page, obs } = t;
  try {
    // Cut longer than the server's silence limit plus the grace period: the session ends.
    const cutFor = (SERVER_SILENT_S + GRACE_S + 5) * 1000;
    await member.cut('ws');
    const reconnecting = await waitFor('obs to see roamer reconnecting', async () => (await events(obs, 'peerReconnecting'))[0], { timeout: cutFor });
    const leave = await waitFor('obs to see roamer leave', async () => (await events(obs, 'peerLeave')).find((e) => e[2] === 'roamer'), { timeout: cutFor });
    const parked = leave[0] - reconnecting[0];
    assert(parked >= (GRACE_S - 1) * 1000, `roamer left ${parked} ms after peerReconnecting; the grace is ${GRACE_S} s`);
    await member.restore();
    const closed = await waitFor('roamer\'s room to close', async () => (await events(page, 'close'))[0], { timeout: 20000 });
    const err = (await events(page, 'error')).pop()?.[2];
    assert(err?.type === 'resumeFailed', `roamer's last error: ${JSON.stringify(err)} (want resumeFailed)`);
    const seq = await states(page);
    assert(JSON.stringify(seq) === '["connected","reconnecting","closed"]', `roamer's states: ${JSON.stringify(seq)}`);
    report(`WS cut ${cutFor / 1000} s: obs saw peerReconnecting, then peerLeave ${parked} ms later (grace ${GRACE_S} s); roamer: "${err.message}", closed ${closed[0] - leave[0]} ms after the others saw it leave`);
  } finally {
    await t.stop();
  }
}
