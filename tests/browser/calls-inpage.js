// In-page helpers of the calls tests (a classic script, injected after inpage.js): a registered
// Peer that records every call's events, colour + tone streams, first-frame timing and receive
// counters of a call's RTCPeerConnection.
/* global window */
(() => {
  const CALL_EVENTS = [
    'stateChanged', 'open', 'close', 'error', 'stream', 'removestream', 'track', 'participantJoined',
    'participantLeft', 'mediaChanged',
  ];

  function plain(a) {
    if (a instanceof Error) return { type: a.type, message: a.message };
    if (a && typeof a.getTracks === 'function') return { stream: a.id, peerId: a.peerId, kinds: a.getTracks().map((t) => t.kind).sort() };
    if (a && typeof a.kind === 'string' && typeof a.stop === 'function') return { track: a.kind };
    return a;
  }

  /** Record `conn`'s events in conn.events and its data in conn.received. */
  function watch(conn) {
    conn.events = [];
    conn.received = [];
    conn.receivedFrom = [];
    for (const name of CALL_EVENTS) conn.on(name, (a) => conn.events.push([name, plain(a)]));
    conn.on('data', (d, src) => {
      conn.receivedFrom.push(src ?? null);
      let value = d;
      if (d instanceof ArrayBuffer) value = { binary: Array.from(new Uint8Array(d)) };
      else if (ArrayBuffer.isView(d)) value = { binary: Array.from(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)) };
      conn.received.push(value);
    });
    return conn;
  }

  /** A registered Peer as `id`; incoming calls land in window.incoming, data connections in window.dataIn. */
  async function peer(host, id) {
    const { Peer } = await import('/sdk/switchboard.js');
    const p = new Peer({ host, id, debug: true });
    window.peer = p;
    window.incoming = [];
    window.dataIn = [];
    window.peerErrors = [];
    p.on('call', (mc) => window.incoming.push(watch(mc)));
    p.on('connection', (dc) => window.dataIn.push(watch(dc)));
    p.on('error', (e) => window.peerErrors.push(plain(e)));
    await new Promise((resolve, reject) => {
      p.once('open', resolve);
      p.once('close', () => reject(new Error('peer closed before open')));
    });
    if (!p.registered) throw new Error(`not registered: ${JSON.stringify(window.peerErrors)}`);
    return p.id;
  }

  /** A stream with a `colour` canvas video track and/or a 440 Hz oscillator audio track. */
  function stream({ colour = null, audio = true } = {}) {
    const s = new window.MediaStream();
    if (colour) s.addTrack(window.sbt.colourTrack(colour));
    if (audio) {
      const ctx = new window.AudioContext();
      const osc = ctx.createOscillator();
      const dst = ctx.createMediaStreamDestination();
      osc.connect(dst);
      osc.start();
      ctx.resume().catch(() => {});
      s.addTrack(dst.stream.getAudioTracks()[0]);
    }
    return s;
  }

  /** Resolve with performance.now() of the first remote video frame shown for `conn`. */
  function firstFrame(conn) {
    return new Promise((resolve) => {
      const tryNow = () => {
        const track = conn.remoteStream?.getVideoTracks()[0];
        if (!track) return false;
        const video = document.createElement('video');
        video.muted = true;
        video.playsInline = true;
        video.srcObject = new window.MediaStream([track]);
        document.body.appendChild(video);
        video.play().catch(() => {});
        video.requestVideoFrameCallback(() => resolve(performance.now()));
        return true;
      };
      if (tryNow()) return;
      const timer = setInterval(() => {
        if (tryNow()) clearInterval(timer);
      }, 20);
    });
  }

  /** Inbound packets/frames by kind on `pc`. */
  async function inbound(pc) {
    const out = { audio: 0, video: 0, frames: 0 };
    if (!pc) return out;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      out[s.kind] += s.packetsReceived ?? 0;
      if (s.kind === 'video') out.frames += s.framesDecoded ?? 0;
    });
    return out;
  }

  /** The colour of `stream`'s video, three frames in a row agreeing, or a description. */
  async function colourOfStream(stream) {
    const track = stream?.getVideoTracks()[0];
    if (!track) return 'no video track';
    const seen = [];
    for (let i = 0; i < 3; i += 1) {
      try {
        seen.push(await window.sbt.frameColour(track, 3000));
      } catch (e) {
        seen.push(`none(${e.message})`);
      }
    }
    return new Set(seen).size === 1 ? seen[0] : `mixed(${seen.join(',')})`;
  }

  /** The call or data connection `callId` of this page, outgoing or incoming. */
  function call(callId) {
    return [...window.incoming, ...window.dataIn, ...Object.values(window.out ?? {})].find((c) => c.id === callId);
  }

  window.ct = { watch, peer, stream, firstFrame, inbound, colourOfStream, call };
})();
