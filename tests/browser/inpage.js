// In-page helpers of the browser suite (a classic script, injected with page.addScriptTag):
// tracks painted in one solid colour, the colour of received frames, and members that record
// every room event with its time. Everything waits with a deadline.
/* global window, document */
(() => {
  const COLOURS = {
    red: [230, 20, 20],
    green: [20, 200, 20],
    blue: [20, 20, 230],
    yellow: [230, 230, 20],
  };

  /** A video track of a canvas painted `colour` (a COLOURS name), repainted 25 times a second. */
  /**
   * A canvas track of `colour` (named at the centre of each frame). `busy`: the top quarter is
   * fresh noise every frame, so the encoder spends what its layers may (a plain canvas encodes
   * to a few kbit/s however large it is).
   */
  function colourTrack(colour, width = 320, height = 240, busy = false) {
    const rgb = COLOURS[colour];
    if (!rgb) throw new Error(`unknown colour ${colour}`);
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const g = canvas.getContext('2d');
    let tick = 0;
    const paint = () => {
      g.fillStyle = `rgb(${rgb.join(',')})`;
      g.fillRect(0, 0, canvas.width, canvas.height);
      // A small moving mark in a corner keeps every frame different (the encoder keeps sending).
      g.fillStyle = 'white';
      g.fillRect((tick * 4) % 60, 4, 8, 8);
      if (busy) {
        const band = Math.floor(canvas.height / 4);
        const noise = g.createImageData(canvas.width, band);
        const px = new Uint32Array(noise.data.buffer);
        for (let i = 0; i < px.length; i += 1) px[i] = (Math.random() * 0xffffff) | 0xff000000;
        g.putImageData(noise, 0, 0);
      }
      tick += 1;
    };
    paint();
    const timer = setInterval(paint, 40);
    const track = canvas.captureStream(25).getVideoTracks()[0];
    track.addEventListener('ended', () => clearInterval(timer));
    return track;
  }

  function nameOf([r, g, b]) {
    let best = null;
    let bestDistance = Infinity;
    for (const [name, ref] of Object.entries(COLOURS)) {
      const d = Math.hypot(r - ref[0], g - ref[1], b - ref[2]);
      if (d < bestDistance) {
        best = name;
        bestDistance = d;
      }
    }
    // Far from every reference colour (black frames, a mix): no name.
    return bestDistance < 90 ? best : `none(${r},${g},${b})`;
  }

  const players = new WeakMap();

  /**
   * The colour name at the centre of the latest frame of a received video track, waiting up to
   * `timeoutMs` for a frame to be shown.
   */
  async function frameColour(track, timeoutMs = 5000) {
    let video = players.get(track);
    if (!video) {
      video = document.createElement('video');
      video.muted = true;
      video.playsInline = true;
      video.srcObject = new window.MediaStream([track]);
      document.body.appendChild(video);
      players.set(track, video);
      video.play().catch(() => {});
    }
    // A frame presented after this call: the element may still show an older track's last frame
    // (an m-line carries other tracks over time).
    const fresh = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      video.requestVideoFrameCallback(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!fresh || video.videoWidth === 0) {
      throw new Error(`no new frame shown within ${timeoutMs} ms (readyState ${video.readyState})`);
    }
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const g = canvas.getContext('2d');
    g.drawImage(video, 0, 0);
    const [r, gr, b] = g.getImageData(Math.floor(canvas.width / 2), Math.floor(canvas.height / 2), 1, 1).data;
    return nameOf([r, gr, b]);
  }

  /** Join `roomName` as `id`; every room event lands in `window.events` as [ms, name, detail]. */
  async function join({ host, roomName, id, options = {}, peerOptions = {} }) {
    const { Peer } = await import('/sdk/switchboard.js');
    if (typeof options.signalModifier === 'string') {
      // Functions cannot cross page.evaluate: 'window.x' names one defined in the page.
      const name = options.signalModifier.replace(/^window\./, '');
      options = { ...options, signalModifier: (signal, payload) => window[name](signal, payload) };
    }
    const peer = new Peer({ host, id, ...peerOptions });
    const room = peer.joinRoom(roomName, options);
    const events = [];
    window.events = events;
    window.room = room;
    const record = (name) => room.on(name, (...args) => {
      const detail = args.map((a) => {
        if (a instanceof Error) return { type: a.type, message: a.message, reason: a.reason };
        if (a && typeof a === 'object' && 'track' in a) return { ...a, track: undefined };
        return a;
      });
      events.push([Date.now(), name, detail.length <= 1 ? detail[0] : detail]);
    });
    for (const name of [
      'open', 'state', 'resumed', 'iceRestart', 'peerJoin', 'peerLeave', 'peerReconnecting',
      'peerReconnected', 'trackDefined', 'trackRemoved', 'remoteTrack', 'remoteTrackEnded',
      'trackMuted', 'mediaState', 'activeSpeakersChanged', 'layersWanted', 'trackPaused', 'trackResumed',
      'connectionState', 'error', 'close',
    ]) record(name);
    room.once('open', () => room.pc.addEventListener('iceconnectionstatechange', () => {
      events.push([Date.now(), 'ice', room.pc.iceConnectionState]);
    }));
    await new Promise((resolve, reject) => {
      room.once('open', resolve);
      room.once('close', () => reject(new Error(`${id} closed before open: ${JSON.stringify(events)}`)));
    });
    return room;
  }

  /** Inbound RTP counters by mid, straight from the PeerConnection. */
  async function inboundByMid(room) {
    const out = {};
    const report = await room.pc.getStats();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.mid !== undefined) {
        out[s.mid] = { packets: s.packetsReceived ?? 0, frames: s.framesDecoded ?? 0, keyFrames: s.keyFramesDecoded ?? 0 };
      }
    });
    return out;
  }

  /**
   * Sample `trackId`'s decoded frame count every `everyMs` for `forMs`: the longest time with no
   * new frame, and when frames stopped and started again.
   */
  async function frameGaps(room, trackId, forMs, everyMs = 50) {
    const end = Date.now() + forMs;
    let lastFrames = -1;
    let lastChange = Date.now();
    let longest = 0;
    const samples = [];
    while (Date.now() < end) {
      const stats = await room.getTrackStats();
      const frames = stats[trackId]?.framesDecoded ?? -1;
      const now = Date.now();
      if (frames !== lastFrames) {
        longest = Math.max(longest, now - lastChange);
        lastChange = now;
        lastFrames = frames;
      }
      samples.push([now, frames]);
      await new Promise((r) => setTimeout(r, everyMs));
    }
    longest = Math.max(longest, Date.now() - lastChange);
    return { longestGapMs: longest, lastFrames, samples: samples.length };
  }

  /** An audio track playing a sine of `frequency` Hz at `gain` (0..1 of full scale). */
  function toneTrack(frequency, gain) {
    const ctx = new window.AudioContext();
    const osc = ctx.createOscillator();
    osc.frequency.value = frequency;
    const amp = ctx.createGain();
    amp.gain.value = gain;
    const dst = ctx.createMediaStreamDestination();
    osc.connect(amp).connect(dst);
    osc.start();
    ctx.resume().catch(() => {});
    return dst.stream.getAudioTracks()[0];
  }

  window.sbt = { COLOURS, colourTrack, toneTrack, frameColour, join, inboundByMid, frameGaps };
})();
