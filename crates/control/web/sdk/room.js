// Switchboard JavaScript SDK: SfuRoom, one membership of a room through the SFU. This module holds
// joining, the server's messages, remote streams, stats and leaving; negotiation.js adds the SDP
// steps, tracks.js publishing, subscriptions and mutes, resume.js the states, keepalive, resume
// and ICE restarts, data.js messages and data channels. See docs/sdk.md.

import {
  Emitter, JOIN_TIMEOUT_MS, LEAVE_GRACE_MS, LEAVE_REASONS, PROTOCOL_VERSION, SwitchboardError,
  checkStream, peerInfo,
} from './core.js';
import { TrackMethods } from './tracks.js';
import { NegotiationMethods } from './negotiation.js';
import { ResumeMethods } from './resume.js';
import { DataMethods } from './data.js';
import { QualityMethods } from './quality.js';

/** Messages kept while the signalling connection is down, sent once it is back (bounded). */
const QUEUED_WHILE_DOWN = new Set([
  'candidate', 'subscribe', 'unsubscribe', 'mute', 'defineTrack', 'removeTrack', 'updateCredential',
]);
const MAX_OUTBOX = 500;

/**
 * Membership of one room through the SFU. Events: `open`, `state` (setup | connected |
 * reconnecting | closed), `peerJoin`, `peerLeave`, `peerReconnecting`, `peerReconnected`,
 * `stream`, `removeStream`, `remoteTrack`, `remoteTrackEnded`, `trackDefined`, `trackRemoved`,
 * `trackMuted`, `mediaState`, `data`, `dataOpen`, `resumed`, `iceRestart`, `draining`,
 * `credentialUpdated`, `connectionState` (RTCPeerConnectionState), `close`, `error`
 * (SwitchboardError). The d.ts and docs/sdk.md describe each.
 */
export class SfuRoom extends Emitter {
  constructor(peer, name, options) {
    super();
    this.name = name;
    this.mode = 'sfu';
    this.peer = peer;
    /** The stream this room sends (null: receive only). */
    this.localStream = options.stream;
    /** Other members by peer id: { peerId, name, tracks: [TrackInfo], mediaState }. */
    this.peers = new Map();
    this._names = new Map();
    /** True between `open` and `close`. */
    this.open = false;
    this.closed = false;
    /** setup → connected ⇄ reconnecting → closed (see docs/sdk.md). */
    this.state = 'setup';
    /** The media connection's RTCPeerConnectionState. */
    this.connectionState = 'new';
    /** The RTCPeerConnection, once joined (read-only use: stats, debugging). */
    this.pc = null;
    /** When the session ends unless the credential is renewed (Unix seconds), once known. */
    this.expiresAt = null;
    /** ICE restarts done so far (after the media path failed or the address changed). */
    this.iceRestarts = 0;
    /** Who talks, loudest first, as the server last said: [{ peerId, level }] (level 0..1). */
    this.activeSpeakers = [];
    /** Ids of the received tracks the server paused for you (`trackPaused`). */
    this.pausedTracks = new Set();
    /** Resumes done so far (after the signalling connection dropped). */
    this.resumes = 0;
    this._options = options;
    this._channel = null;
    /** The channel is joined (or resumed) and takes messages. */
    this._sigUp = false;
    this._outbox = [];
    this._resumeToken = null;
    this._everConnected = false;
    this._queue = Promise.resolve();
    this._offerWanted = false;
    this._offerSent = false;
    this._localCandidates = [];
    this._remoteCandidates = [];
    /** mid → { peerId, trackId, kind, streamId }: what the server said arrives on each m-line. */
    this._slots = new Map();
    /** mid → { peerId, trackId }: the remote tracks announced to the app with `remoteTrack`. */
    this._announced = new Map();
    /** peerId → MediaStream currently handed to the app. */
    this._streams = new Map();
    this._streamUpdate = null;
    /** trackId → own track: { trackId, name, kind, source, description, track, stream, transceiver, muted }. */
    this._local = new Map();
    /** Own tracks sent from `localStream` (the `stream` option and replaceStream), by kind. */
    this._streamTracks = { audio: null, video: null };
    /** Send transceivers given up by unpublishTrack, reused by the next publishTrack of their kind. */
    this._free = { audio: [], video: [] };
    /** trackId → [{ resolve, reject }]: subscribe() calls waiting for their track. */
    this._pendingSubs = new Map();
    this._joinTimer = null;
    this._pingTimer = null;
    this._lastHeard = 0;
    this._reconnect = null;
    this._mediaTimer = null;
    this._lastRx = { bytes: -1, at: 0 };
    this._mediaStalled = false;
    this._iceDisconnectedAt = null;
    this._blipTimer = null;
    this._nextIceRestartAt = 0;
    this._iceRestartWanted = false;
    this._iceRestartDelay = 0;
    if (options.stream) {
      for (const track of options.stream.getTracks()) this._addStreamTrack(track, options.stream);
    }
  }

  /** Peer ids of the other members. */
  get members() {
    return [...this.peers.keys()];
  }

  /** The display name of a member (also of one that just left; null for unknown ids). */
  getPeerName(peerId) {
    return this.peers.get(peerId)?.name ?? this._names.get(peerId) ?? null;
  }

  /** The stream currently received from `peerId`, if any. */
  getStream(peerId) {
    return this._streams.get(peerId) ?? null;
  }

  /** All remote streams, one per member that publishes something. */
  get remoteStreams() {
    return [...this._streams.values()];
  }

  _log(...args) {
    this.peer._log(`[${this.peer.id}@${this.name}]`, ...args);
  }

  /** The message as the app's signalModifier makes it (the `type` cannot change). */
  _modify(message) {
    const hook = this._options.signalModifier ?? this.peer._signalModifier;
    if (!hook) return message;
    const copy = { ...message };
    try {
      const result = hook(message.type, copy);
      const out = result && typeof result === 'object' ? result : copy;
      out.type = message.type;
      return out;
    } catch (err) {
      console.error(`[switchboard] signalModifier threw for '${message.type}'; sent unmodified:`, err);
      return message;
    }
  }

  /** Send now on whatever channel is attached (join and resume use this). */
  _sendNow(channel, message) {
    const out = this._modify(message);
    this._log('→', JSON.stringify(out));
    return channel.send(out);
  }

  /**
   * Send a message of the session. While the signalling connection is down, requests are kept
   * and sent after the resume; SDP and data messages are not (negotiation starts again after
   * the resume; send() reports false).
   */
  _send(message) {
    if (!this._sigUp || !this._channel) {
      if (!this.closed && QUEUED_WHILE_DOWN.has(message.type)) {
        if (this._outbox.length >= MAX_OUTBOX) this._outbox.shift();
        this._outbox.push(message);
        return true;
      }
      this._log('signalling down; not sent:', message.type);
      return false;
    }
    return this._sendNow(this._channel, message);
  }

  _flushOutbox() {
    const pending = this._outbox;
    this._outbox = [];
    for (const message of pending) this._send(message);
  }

  /** Use `channel` for this session: its messages reach _onMessage while it is current. */
  _attach(channel, onLost) {
    this._channel = channel;
    this._lastHeard = Date.now();
    channel.onmessage = (m) => {
      if (this._channel !== channel) return;
      this._lastHeard = Date.now();
      this._onMessage(m);
    };
    channel.onclose = (event) => {
      if (this._channel !== channel) return;
      this._channel = null;
      this._sigUp = false;
      if (this.closed) return;
      onLost(event);
    };
  }

  async _start() {
    let channel;
    try {
      channel = await this.peer._takeChannel();
    } catch (err) {
      this._fail(err);
      return;
    }
    if (this.closed) {
      this.peer._keepSpare(channel);
      return;
    }
    this._attach(channel, (event) => {
      this.peer._lost();
      this._signallingLost(`closed unexpectedly (code ${event.code})`);
    });
    const join = { type: 'join', room: this.name, peerId: this.peer.id, mode: 'sfu' };
    if (this._options.name !== undefined) join.name = this._options.name;
    if (this.peer.credential !== undefined) join.credential = this.peer.credential;
    if (!this._options.autoSubscribe) join.autoSubscribe = false;
    this._joinTimer = setTimeout(() => {
      this._fail(new SwitchboardError('timeout', `the server did not answer join within ${JOIN_TIMEOUT_MS} ms`));
    }, JOIN_TIMEOUT_MS);
    this._sendNow(channel, join);
  }

  _onMessage(message) {
    if (this.closed) {
      if (message.type === 'left') this._channel?.close();
      return;
    }
    this._log('←', JSON.stringify(message));
    switch (message.type) {
      case 'joined':
        this._onJoined(message);
        break;
      case 'resumed':
        this._onResumed(message);
        break;
      case 'pong':
        break;
      case 'answer':
        this._enqueue(() => this._onAnswer(message.sdp));
        break;
      case 'offer':
        this._enqueue(() => this._onServerOffer(message.sdp));
        break;
      case 'candidate':
        this._onRemoteCandidate(message);
        break;
      case 'peerJoined': {
        const info = peerInfo(message.peer);
        this.peers.set(info.peerId, info);
        this._names.set(info.peerId, info.name);
        this._emit('peerJoin', info.peerId);
        for (const t of info.tracks) this._emit('trackDefined', { peerId: info.peerId, ...t });
        break;
      }
      case 'peerLeft':
        this._onPeerLeft(message.peerId);
        break;
      case 'peerReconnecting':
      case 'peerReconnected': {
        const info = this.peers.get(message.peerId);
        if (info) info.reconnecting = message.type === 'peerReconnecting';
        this._emit(message.type, message.peerId);
        break;
      }
      case 'trackDefined':
        this._onTrackDefined(message.peerId, message.track);
        break;
      case 'trackRemoved':
        this._onTrackRemoved(message.peerId, message.trackId);
        break;
      case 'trackPublished':
        this._onTrackPublished(message);
        break;
      case 'trackUnpublished': {
        const slot = this._slots.get(message.mid);
        if (slot && slot.trackId === message.trackId && slot.peerId === message.peerId) {
          this._slots.delete(message.mid);
        }
        this._scheduleStreams();
        break;
      }
      case 'trackMuted':
        this._onTrackMuted(message);
        break;
      case 'trackPaused':
        this._onTrackPaused(message);
        break;
      case 'trackResumed':
        this._onTrackResumed(message);
        break;
      case 'layersWanted':
        this._onLayersWanted(message);
        break;
      case 'mediaState':
        this._onMediaState(message.peerId, message.state);
        break;
      case 'activeSpeakers':
        // Sent only when who talks (or the order) changed; it may name you too.
        this.activeSpeakers = (message.speakers ?? []).map((s) => ({ peerId: s.peerId, level: s.level }));
        this._emit('activeSpeakersChanged', this.activeSpeakers);
        break;
      case 'left':
        this._onLeft(message.reason);
        break;
      case 'message':
        this._emit('data', { src: message.from ?? null, data: message.data });
        break;
      case 'credentialUpdated':
        this.expiresAt = message.expiresAt;
        this._emit('credentialUpdated', message.expiresAt);
        break;
      case 'draining':
        this._emit('draining', message.deadlineMs);
        break;
      case 'error':
        this._onServerError(message);
        break;
      default:
        this._log('ignoring unknown message type', message.type);
    }
  }

  _onServerError(message) {
    const err = new SwitchboardError(
      message.code ?? 'internal',
      `server: ${message.message}`,
      { request: message.request },
    );
    if (message.request === 'join' && !this.open) {
      // The connection is still usable for another join: give it back to the peer.
      clearTimeout(this._joinTimer);
      const channel = this._channel;
      this._channel = null;
      if (channel) this.peer._keepSpare(channel);
      this._fail(err);
      return;
    }
    if (message.request === 'resume') {
      this._onResumeRefused(err);
      return;
    }
    if (message.request === 'answer' && message.code === 'noPendingOffer') {
      // After a resume the server repeats an offer that may have been answered already.
      this._log('answer not needed any more:', message.message);
      return;
    }
    if (message.request === 'offer') {
      // Our offer was refused: return to stable so negotiation can go on.
      this._enqueue(async () => {
        if (this.pc?.signalingState === 'have-local-offer') {
          await this.pc.setLocalDescription({ type: 'rollback' });
        }
      });
    }
    if (message.request === 'subscribe' && message.code === 'unknownTrack') {
      this._subscriptionRefused(message.message, err);
    }
    this._emit('error', err);
  }

  _onLeft(reason) {
    if (reason === 'requested') {
      this._teardown();
      return;
    }
    const why = LEAVE_REASONS[reason] ?? reason;
    this._fail(new SwitchboardError('removed', `the server ended the session: ${reason} (${why})`, { reason }));
  }

  _onPeerLeft(peerId) {
    for (const [mid, slot] of this._slots) if (slot.peerId === peerId) this._slots.delete(mid);
    this._updateStreams();
    this.peers.delete(peerId);
    this._emit('peerLeave', peerId);
  }

  // ------------------------------------------------------------------------- media setup

  _onJoined(message) {
    clearTimeout(this._joinTimer);
    if (message.protocolVersion !== PROTOCOL_VERSION) {
      console.warn(`[switchboard] server speaks protocol ${message.protocolVersion}, this SDK ${PROTOCOL_VERSION}`);
    }
    if (message.peerId !== this.peer.id) this._log('server assigned peer id', message.peerId);
    this._resumeToken = message.resumeToken ?? null;
    for (const m of message.members) {
      const info = peerInfo(m);
      this.peers.set(m.peerId, info);
      this._names.set(m.peerId, m.name);
    }
    const pc = new RTCPeerConnection({
      iceServers: this._iceServersFrom(message),
      iceTransportPolicy: this.peer._iceTransportPolicy,
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
    });
    this.pc = pc;
    pc.onicecandidate = (event) => this._onLocalCandidate(event.candidate);
    pc.onconnectionstatechange = () => {
      if (this.closed) return;
      this.connectionState = pc.connectionState;
      this._emit('connectionState', pc.connectionState);
      this._updateState(`media ${pc.connectionState}`);
    };
    pc.oniceconnectionstatechange = () => {
      if (!this.closed) this._onIceState();
    };

    for (const entry of this._local.values()) if (entry.track) this._attachSender(entry);
    // Receive slots for what the members already publish: saves the server a round of offers.
    const existing = { audio: 0, video: 0 };
    if (this._options.autoSubscribe) {
      for (const m of this.peers.values()) for (const t of m.tracks) if (t.live) existing[t.kind] += 1;
    }
    for (const kind of ['audio', 'video']) {
      for (let i = 0; i < existing[kind]; i += 1) pc.addTransceiver(kind, { direction: 'recvonly' });
    }
    if (pc.getTransceivers().length === 0) {
      // An offer needs at least one m-line; a receive-only client starts with one slot of each.
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
    }
    this._openDataChannels(pc);
    this._sigUp = true;
    this.open = true;
    this._startKeepalive();
    this._startMediaWatch();
    this._flushOutbox();
    this._emit('open');
    for (const [peerId, info] of this.peers) {
      for (const t of info.tracks) this._emit('trackDefined', { peerId, ...t });
    }
    this._updateState('joined');
    this._requestOffer();
  }

  /** A track of the `stream` option or of replaceStream: named after its default source. */
  _addStreamTrack(track, stream) {
    const entry = this._newLocal(track, { stream });
    this._streamTracks[track.kind] = entry.trackId;
    return entry;
  }

  /** Give `entry` a send transceiver: a free one of its kind, or a new one. */
  async _attachSender(entry) {
    const free = this._free[entry.kind].pop();
    if (free) {
      entry.transceiver = free;
      free.direction = 'sendonly';
      free.sender.setStreams?.(entry.stream);
      await free.sender.replaceTrack(entry.track);
      return;
    }
    const init = { direction: 'sendonly', streams: [entry.stream] };
    const sendEncodings = this._sendEncodings(entry);
    if (sendEncodings) init.sendEncodings = sendEncodings;
    const transceiver = this.pc.addTransceiver(entry.track, init);
    entry.transceiver = transceiver;
    this._preferCodecs(transceiver, entry.kind);
  }

  _preferCodecs(transceiver, kind) {
    const codecs = kind === 'video' ? this._options.videoCodecs : this._options.audioCodecs;
    if (!codecs) return;
    try {
      transceiver.setCodecPreferences(codecs);
    } catch (err) {
      this._emit('error', new SwitchboardError('negotiationFailed', `could not set ${kind} codec preferences: ${err.message}`));
    }
  }

  /**
   * Send `stream` instead of the current one, without rejoining: tracks are swapped in place,
   * added (e.g. voice-only → camera on) or removed (stream without video → video unpublished).
   * Pass null to send nothing. Resolves when the change is applied. Tracks published with
   * publishTrack are not touched.
   */
  replaceStream(stream) {
    if (this.closed) throw new SwitchboardError('roomClosed', 'the room is closed');
    if (stream !== null) checkStream(stream);
    this.localStream = stream;
    if (!this.pc) {
      // Not joined yet: the tracks are set up with the media.
      for (const kind of ['audio', 'video']) {
        const id = this._streamTracks[kind];
        if (id) this._local.delete(id);
        this._streamTracks[kind] = null;
      }
      for (const track of stream?.getTracks() ?? []) this._addStreamTrack(track, stream);
      return Promise.resolve();
    }
    return this._enqueue(async () => {
      let renegotiate = false;
      for (const kind of ['audio', 'video']) {
        const track = stream?.getTracks().find((t) => t.kind === kind) ?? null;
        const entry = this._local.get(this._streamTracks[kind]);
        if (!entry) {
          if (track) {
            await this._attachSender(this._addStreamTrack(track, stream));
            renegotiate = true;
          }
          continue;
        }
        if (track) {
          entry.track = track;
          entry.stream = stream;
          await entry.transceiver.sender.replaceTrack(track);
          entry.transceiver.sender.setStreams?.(stream);
        } else {
          // Unpublish: the server sees the m-line go inactive and removes the track.
          await this._releaseSender(entry);
          this._streamTracks[kind] = null;
          renegotiate = true;
        }
      }
      if (renegotiate) {
        this._offerWanted = true;
        await this._maybeOffer();
      } else {
        await this._applyBandwidth();
      }
    });
  }

  _updateCredential(credential) {
    if (this.open) this._send({ type: 'updateCredential', credential });
  }

  /** The RTCPeerConnection's stats report. */
  getStats() {
    return this.pc ? this.pc.getStats() : Promise.resolve(new Map());
  }

  // ---------------------------------------------------------------------------- leaving

  /** Leave the room. Emits `close`; the local tracks are left running (they are the app's). */
  close() {
    if (this.closed) return;
    const channel = this._channel;
    if (channel?.isOpen && (this._sigUp || !this.open)) {
      // Also when `joined` has not arrived yet: the server handles messages in order, so the
      // join it is processing is undone by this leave.
      this._sendNow(channel, { type: 'leave' });
      // The server answers `left` and closes; don't wait for it longer than this.
      setTimeout(() => channel.close(), LEAVE_GRACE_MS);
    } else {
      channel?.close();
      // Resuming: say goodbye on a connection of its own, so the others need not wait for the
      // grace period to end.
      if (this.open && this._resumeToken) this._farewell();
    }
    this._teardown();
  }

  _fail(err) {
    if (this.closed) return;
    this._emit('error', err);
    this._teardown();
    this._channel?.close();
  }

  _teardown() {
    if (this.closed) return;
    this.closed = true;
    this.open = false;
    this._sigUp = false;
    clearTimeout(this._joinTimer);
    clearTimeout(this._streamUpdate);
    this._stopTimers();
    if (this.pc) {
      this.pc.onicecandidate = null;
      this.pc.onconnectionstatechange = null;
      this.pc.oniceconnectionstatechange = null;
      this.pc.close();
    }
    this.connectionState = 'closed';
    for (const stream of this._streams.values()) this._emit('removeStream', stream);
    this._streams.clear();
    this._slots.clear();
    this._announced.clear();
    this._dropPendingSubscriptions(new SwitchboardError('roomClosed', 'the room was closed before the track arrived'));
    if (this.peer.rooms.get(this.name) === this) this.peer.rooms.delete(this.name);
    this._updateState('closed');
    this._emit('close');
  }
}

Object.assign(SfuRoom.prototype, NegotiationMethods, TrackMethods, ResumeMethods, DataMethods, QualityMethods);
