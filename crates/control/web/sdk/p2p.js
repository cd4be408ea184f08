// Switchboard JavaScript SDK: one browser-to-browser RTCPeerConnection, signalled through the
// server (`callSignal` of a p2p call, `meshSignal` of a mesh room). Used by calls.js and mesh.js.
//
// Negotiation is "perfect negotiation" (the WebRTC spec's pattern): either side may offer at any
// time (a voice-only call that adds video renegotiates from whoever added it); on glare the
// impolite side keeps its offer and the polite side rolls back. One side offers first by
// convention (the caller, the mesh newcomer): the other holds its own offers until the first
// remote offer is answered, so the first exchange never collides. Remote candidates that arrive
// before the remote description is set are buffered.

import { SwitchboardError } from './core.js';

/** Label and id of the data channel of a p2p call (negotiated: both sides create it). */
export const CALL_CHANNEL = 'switchboard-call';

export class P2PLink {
  /**
   * options: { iceServers, iceTransportPolicy, polite, offersFirst, dataChannel, send(signal),
   * onTrack(track, streams), onState(connectionState), onChannelOpen(), onChannelMessage(data),
   * onChannelClose(), onError(err), log(...), videoCodecs, audioCodecs, videoBandwidth,
   * audioBandwidth }
   */
  constructor(options) {
    this.options = options;
    this.closed = false;
    this.pc = new RTCPeerConnection({
      iceServers: options.iceServers,
      iceTransportPolicy: options.iceTransportPolicy ?? 'all',
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
    });
    this._polite = Boolean(options.polite);
    /** The side that does not offer first waits for the first remote offer before offering. */
    this._mayOffer = Boolean(options.offersFirst);
    this._offerWanted = false;
    this._makingOffer = false;
    this._ignoreOffer = false;
    this._candidates = [];
    this._queue = Promise.resolve();
    this.channel = null;
    const pc = this.pc;
    pc.onicecandidate = ({ candidate }) => {
      if (this.closed || !candidate || !candidate.candidate) return;
      options.send({
        type: 'candidate',
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid ?? undefined,
        sdpMLineIndex: candidate.sdpMLineIndex ?? undefined,
      });
    };
    pc.onnegotiationneeded = () => {
      this._offerWanted = true;
      this._enqueue(() => this._maybeOffer());
    };
    pc.ontrack = (event) => {
      if (!this.closed) options.onTrack?.(event.track, event.streams);
    };
    pc.onconnectionstatechange = () => {
      if (!this.closed) options.onState?.(pc.connectionState);
    };
    if (options.dataChannel) {
      this.channel = pc.createDataChannel(CALL_CHANNEL, { negotiated: true, id: 0, ordered: true });
      this.channel.binaryType = 'arraybuffer';
      this.channel.onopen = () => options.onChannelOpen?.();
      this.channel.onmessage = (event) => options.onChannelMessage?.(event.data);
      this.channel.onclose = () => {
        if (!this.closed) options.onChannelClose?.();
      };
    }
  }

  _enqueue(task) {
    const run = this._queue.then(async () => {
      if (!this.closed) await task();
    });
    this._queue = run.catch((err) => {
      if (this.closed) return;
      this.options.onError?.(new SwitchboardError('negotiationFailed', `SDP negotiation failed: ${err.message ?? err}`));
    });
    return run.catch(() => {});
  }

  /** Send `track` (of `stream`); codec preference and bandwidth as the options say. */
  addTrack(track, stream) {
    const existing = this.pc.getSenders().find((s) => s.track === track);
    if (existing) return existing;
    // Reuse a transceiver of the same kind that sends nothing (a removed track's, or the one a
    // remote offer created), so adding video mid-call does not grow the SDP without need.
    const idle = this.pc.getTransceivers().find((t) => !t.stopped && t.mid !== null
      && t.receiver.track?.kind === track.kind && !t.sender.track);
    let sender;
    if (idle) {
      idle.direction = 'sendrecv';
      idle.sender.replaceTrack(track);
      idle.sender.setStreams?.(...(stream ? [stream] : []));
      sender = idle.sender;
      this._preferCodecs(idle, track.kind);
    } else {
      sender = stream ? this.pc.addTrack(track, stream) : this.pc.addTrack(track);
      const transceiver = this.pc.getTransceivers().find((t) => t.sender === sender);
      if (transceiver) this._preferCodecs(transceiver, track.kind);
    }
    return sender;
  }

  removeTrack(track) {
    const sender = this.pc.getSenders().find((s) => s.track === track);
    if (!sender) return false;
    this.pc.removeTrack(sender);
    return true;
  }

  _preferCodecs(transceiver, kind) {
    const codecs = kind === 'video' ? this.options.videoCodecs : this.options.audioCodecs;
    if (!codecs) return;
    try {
      transceiver.setCodecPreferences(codecs);
    } catch (err) {
      this.options.onError?.(new SwitchboardError('negotiationFailed', `could not set ${kind} codec preferences: ${err.message}`));
    }
  }

  async _applyBandwidth() {
    for (const sender of this.pc.getSenders()) {
      const kind = sender.track?.kind;
      const kbps = kind === 'video' ? this.options.videoBandwidth : kind === 'audio' ? this.options.audioBandwidth : undefined;
      if (!kbps) continue;
      const params = sender.getParameters();
      if (!params.encodings || params.encodings.length === 0) continue;
      const bps = Math.round(kbps * 1000);
      if (params.encodings.every((e) => e.maxBitrate === bps)) continue;
      for (const e of params.encodings) e.maxBitrate = bps;
      await sender.setParameters(params).catch((err) => this.options.log?.('setParameters failed', err.message));
    }
  }

  async _maybeOffer() {
    const pc = this.pc;
    if (!this._offerWanted || !this._mayOffer || pc.signalingState !== 'stable') return;
    this._offerWanted = false;
    try {
      this._makingOffer = true;
      await pc.setLocalDescription();
      this.options.send({ type: pc.localDescription.type, sdp: pc.localDescription.sdp });
    } finally {
      this._makingOffer = false;
    }
  }

  /** A signal relayed from the other side: an offer, an answer or a candidate. */
  onSignal(signal) {
    if (!signal || typeof signal !== 'object') return;
    if (signal.type === 'offer' || signal.type === 'answer') {
      this._enqueue(() => this._onDescription({ type: signal.type, sdp: signal.sdp }));
    } else if (signal.type === 'candidate' && typeof signal.candidate === 'string') {
      const init = { candidate: signal.candidate, sdpMid: signal.sdpMid ?? null, sdpMLineIndex: signal.sdpMLineIndex ?? null };
      if (init.sdpMid === null && init.sdpMLineIndex === null) init.sdpMLineIndex = 0;
      this._candidates.push(init);
      this._enqueue(() => this._flushCandidates());
    } else {
      this.options.log?.('ignoring a signal of unknown type', signal.type);
    }
  }

  async _onDescription(description) {
    const pc = this.pc;
    const collision = description.type === 'offer' && (this._makingOffer || pc.signalingState !== 'stable');
    this._ignoreOffer = !this._polite && collision;
    if (this._ignoreOffer) {
      this.options.log?.('glare: keeping our offer, ignoring theirs');
      return;
    }
    if (description.type === 'answer' && pc.signalingState !== 'have-local-offer') {
      this.options.log?.('answer without an outstanding offer; ignored');
      return;
    }
    // Perfect negotiation: setRemoteDescription rolls a colliding local offer back by itself.
    await pc.setRemoteDescription(description);
    if (description.type === 'offer') {
      await pc.setLocalDescription();
      this.options.send({ type: pc.localDescription.type, sdp: pc.localDescription.sdp });
      if (!this._mayOffer) {
        this._mayOffer = true;
        // Tracks added before the first offer arrived may not all fit in the answer.
        this._offerWanted = true;
      }
    }
    await this._flushCandidates();
    await this._applyBandwidth();
    if (this._offerWanted && this._needsOffer()) await this._maybeOffer();
    else this._offerWanted = false;
  }

  /** True when a local track has no negotiated sending m-line (so an offer is needed). */
  _needsOffer() {
    return this.pc.getTransceivers().some((t) => !t.stopped && t.sender.track
      && t.currentDirection !== 'sendrecv' && t.currentDirection !== 'sendonly');
  }

  async _flushCandidates() {
    if (!this.pc.remoteDescription) return; // kept until the remote description is set
    const pending = this._candidates;
    this._candidates = [];
    for (const init of pending) {
      try {
        await this.pc.addIceCandidate(init);
      } catch (err) {
        if (!this._ignoreOffer) this.options.log?.('addIceCandidate failed', err.message);
      }
    }
  }

  /** Restart ICE (after the path failed): the next offer carries new credentials. */
  restartIce() {
    if (this._mayOffer) this.pc.restartIce();
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    const pc = this.pc;
    pc.onicecandidate = null;
    pc.onnegotiationneeded = null;
    pc.ontrack = null;
    pc.onconnectionstatechange = null;
    if (this.channel) {
      this.channel.onopen = null;
      this.channel.onmessage = null;
      this.channel.onclose = null;
    }
    pc.close();
  }
}

/** Remote streams of one link, announced once each: { stream, tracks } with `stream.peerId` set. */
export class RemoteStreams {
  constructor(peerId, emit) {
    this.peerId = peerId;
    this.emit = emit;
    this.streams = new Map();
  }

  onTrack(track, streams) {
    let stream = streams[0];
    if (!stream) {
      stream = this.streams.values().next().value ?? new MediaStream();
      if (!stream.getTracks().includes(track)) stream.addTrack(track);
    }
    stream.peerId = this.peerId;
    const fresh = !this.streams.has(stream.id);
    this.streams.set(stream.id, stream);
    if (fresh) this.emit('stream', stream);
    this.emit('track', track, stream);
    track.addEventListener('ended', () => this.emit('removetrack', track, stream), { once: true });
    stream.addEventListener?.('removetrack', (event) => {
      if (event.track === track) this.emit('removetrack', track, stream);
    });
  }

  get first() {
    return this.streams.values().next().value ?? null;
  }

  clear() {
    for (const stream of this.streams.values()) this.emit('removestream', stream);
    this.streams.clear();
  }
}
