// Audio that survives loss: Chromium publishes Opus as RED (audio/red) when the server's answer
// offers it, and a Chromium member in a network namespace of its own (netns.mjs) receives it as
// RED behind 5 % random loss (nftables numgen) on every datagram. Its decoder rebuilds lost
// packets from the next one's redundancy: what it still has to conceal stays under 1 % of the
// samples, while 5 % of the packets are lost on the wire. Its video is repaired by NACK: it
// never has to ask for a keyframe (what a frame lost for good makes Chromium do). The canvas colour comes from the
// publisher (the right owner); the server counts the RED packets it receives.

import { assert, newPage, sleep, startServer, uniqueRoom, waitFor } from './harness.mjs';
import { SERVER_IP, isolatedBrowser, loadInMember, networkTools } from './netns.mjs';
import { INPAGE, colourOf, helperPage, joinAs } from './subscriptions.mjs';

const LOSS_PERCENT = 5;
const WINDOW_MS = 12000;

/** The member's inbound audio and video counters, and the codec each arrives in. */
const inbound = (page) => page.evaluate(async () => {
  const report = await window.room.pc.getStats();
  const out = {};
  const codecs = {};
  report.forEach((s) => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
  report.forEach((s) => {
    if (s.type !== 'inbound-rtp' || (s.packetsReceived ?? 0) === 0) return;
    out[s.kind] = {
      codec: codecs[s.codecId],
      received: s.packetsReceived ?? 0,
      lost: s.packetsLost ?? 0,
      samples: s.totalSamplesReceived ?? 0,
      concealed: s.concealedSamples ?? 0,
      frames: s.framesDecoded ?? 0,
      nacks: s.nackCount ?? 0,
      rtx: s.retransmittedPacketsReceived ?? 0,
      freezes: s.freezeCount ?? 0,
      plis: s.pliCount ?? 0,
      firs: s.firCount ?? 0,
    };
  });
  return out;
});

/** The codec the publisher's audio leaves in. */
const sentAudioCodec = (page) => page.evaluate(async () => {
  const report = await window.room.pc.getStats();
  const codecs = {};
  report.forEach((s) => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
  let codec = null;
  report.forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'audio') codec = codecs[s.codecId]; });
  return codec;
});

/** The server's count of RED packets received from publishers. */
async function redPackets(server) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('switchboard_red_packets_total'));
  return Number(line?.split(' ')[1] ?? 0);
}

export async function redUnderLoss({ browser, report }) {
  const tools = networkTools();
  if (tools !== true) throw new Error(`the RED test needs a network namespace with nftables: ${tools} (scripts/browser-tests.sh installs it)`);
  const server = await startServer({ logName: 'server-red.log', ip: SERVER_IP });
  let member = null;
  const pages = [];
  try {
    member = await isolatedBrowser(server.port);
    const lossy = await newPage(member.browser, 'red-lossy');
    pages.push(lossy);
    await loadInMember(lossy, server.base, INPAGE);
    const pub = await helperPage(browser, server.base, 'red-pub');
    pages.push(pub);
    const roomName = uniqueRoom('red');
    await joinAs(pub, {
      host: server.host, roomName, id: 'pub',
      publish: [
        { tone: { frequency: 440, gain: 0.5 }, name: 'mic', source: 'microphone' },
        { colour: 'green', name: 'camera', source: 'camera' },
      ],
    });
    await joinAs(lossy, { host: server.host, roomName, id: 'lossy' });
    // Audio is decoded (and its samples counted) only when something plays it.
    await waitFor('lossy to get pub\'s microphone', () => lossy.evaluate(() => {
      const track = window.room.getRemoteTrack('pub', 'pub:mic');
      if (!track) return false;
      const player = document.createElement('audio');
      player.srcObject = new window.MediaStream([track]);
      player.muted = false;
      document.body.appendChild(player);
      player.play().catch(() => {});
      return true;
    }));
    let last = null;
    await waitFor('lossy to receive audio and video', async () => {
      last = await inbound(lossy);
      return last.audio?.samples > 48000 && last.video?.frames > 25;
    }, { timeout: 30000 }).catch((err) => { throw new Error(`${err.message}: ${JSON.stringify(last)}`); });
    // RED on the wire, by the server's count of RED packets from publishers (Chromium's stats
    // name the primary codec, Opus, for RED streams too).
    const t0 = Date.now();
    const redBefore = await redPackets(server);
    await waitFor('the server to receive RED from pub', async () => (await redPackets(server)) > redBefore + 100, { timeout: 30000 })
      .catch(async (err) => { throw new Error(`${err.message}: the publisher's stats say ${await sentAudioCodec(pub)}`); });
    const redAfter = Date.now() - t0;
    const colour = await colourOf(lossy, 'pub', 'pub:camera');
    assert(colour === 'green', `lossy decodes pub's camera as ${colour}`);

    await member.lose(LOSS_PERCENT);
    await sleep(2000);
    const a = await inbound(lossy);
    await sleep(WINDOW_MS);
    const b = await inbound(lossy);
    await member.restore();
    const audioPackets = (b.audio.received - a.audio.received) + (b.audio.lost - a.audio.lost);
    const wireLoss = (b.audio.lost - a.audio.lost) / audioPackets;
    const concealed = (b.audio.concealed - a.audio.concealed) / (b.audio.samples - a.audio.samples);
    const videoPackets = (b.video.received - a.video.received) + (b.video.lost - a.video.lost);
    const videoLoss = (b.video.lost - a.video.lost) / videoPackets;
    const line = `${await redPackets(server)} RED packets in (100 within ${redAfter} ms); ${LOSS_PERCENT} % random loss: audio lost on the wire ${(wireLoss * 100).toFixed(2)} % of ${audioPackets} packets, `
      + `concealed after RED ${(concealed * 100).toFixed(2)} % of the samples; video lost on the wire ${(videoLoss * 100).toFixed(2)} % of ${videoPackets}, ${b.video.nacks - a.video.nacks} NACKs sent, ${b.video.rtx - a.video.rtx} retransmissions received, `
      + `${(b.video.plis - a.video.plis) + (b.video.firs - a.video.firs)} keyframe requests (unrepaired frames), ${b.video.frames - a.video.frames} frames decoded`;
    report(line);
    assert(wireLoss > 0.02, `the loss reached the member: ${line}`);
    assert(concealed < 0.01, `RED left too much to conceal: ${line}`);
    // Video: Chromium's packetsLost counts the wire's loss (a packet repaired by RTX does not
    // count as received). What NACK could not repair shows as a keyframe request: a frame it
    // cannot decode makes it send a PLI. None in the window: nothing stayed lost.
    const plis = (b.video.plis - a.video.plis) + (b.video.firs - a.video.firs);
    assert(videoLoss > 0.02, `the loss reached the member's video: ${line}`);
    assert(plis === 0, `the member asked for ${plis} keyframes: video stayed lost: ${line}`);
    assert(b.video.frames - a.video.frames > 100, `lossy kept decoding video: ${b.video.frames - a.video.frames} frames`);
  } finally {
    for (const page of pages) await page.closeContext().catch(() => {});
    await member?.stop();
    await server.stop();
  }
}
