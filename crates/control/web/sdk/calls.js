// Switchboard JavaScript SDK: calls (docs/protocol-peer.md "Calls"). A MediaConnection is one
// 1:1 call as SkyWay names it; the server owns its state (initiating → ringing → connecting →
// connected ⇄ reconnecting → ended). Its media goes either browser to browser (`media: 'p2p'`,
// one RTCPeerConnection, signals relayed by the server) or through the private SFU room
// `call.<callId>` (`media: 'sfu'`, the default, an SfuRoom of room.js). A DataConnection is a
// p2p call of type `data` carrying only the data channel. See docs/sdk.md "Calls".

import {
  Emitter, SwitchboardError, TOKEN, TOKEN_RULE, checkBandwidth, checkStream, codecsFor, invalid,
  randomId, VIDEO_CODECS, AUDIO_CODECS,
} from './core.js';
import { P2PLink, RemoteStreams } from './p2p.js';

/** A string or binary data goes as it is; any other value as JSON text. */
function isRaw(data) {
  return typeof data === 'string' || data instanceof ArrayBuffer || ArrayBuffer.isView(data);
}

const CALL_OPTIONS = new Set([
  'label', 'metadata', 'media', 'callType', 'videoBandwidth', 'audioBandwidth', 'videoCodec',
  'audioCodec', 'callId', 'conversationId',
]);
const CONNECT_OPTIONS = new Set(['label', 'metadata', 'serialization', 'callId', 'media']);
export const SERIALIZATIONS = ['binary', 'json', 'none'];
const MAX_METADATA_BYTES = 4096;
/** A callee of an sfu call joins the call's room at most this long (ms) after accepting. */
const ACCEPT_SETTLE_MS = 1500;
const ACCEPTED_STATES = ['connecting', 'connected', 'reconnecting'];

function checkCallId(id) {
  if (typeof id !== 'string' || !TOKEN.test(id)) throw invalid(`callId must be a call id (${TOKEN_RULE})`);
  return id;
}

function checkMetadata(metadata) {
  if (metadata === undefined) return undefined;
  let text;
  try {
    text = JSON.stringify(metadata);
  } catch {
    throw invalid('metadata must be a JSON value');
  }
  if (text === undefined) throw invalid('metadata must be a JSON value');
  if (new TextEncoder().encode(text).length > MAX_METADATA_BYTES) throw invalid(`metadata must be at most ${MAX_METADATA_BYTES} bytes as JSON`);
  return metadata;
}

function codecOption(kind, value) {
  if (value === undefined) return null;
  const table = kind === 'video' ? VIDEO_CODECS : AUDIO_CODECS;
  const name = table[String(value).toLowerCase()];
  if (!name) throw invalid(`${kind}Codec ${JSON.stringify(value)} is not supported (use ${Object.values(table).join(' or ')})`);
  const codecs = codecsFor(kind, name);
  if (!codecs) throw invalid(`this browser cannot send ${name} ${kind}`);
  return codecs;
}

/** peer.call's options, checked: throws invalidArgument. */
export function parseCallOptions(options, stream) {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw invalid('call options must be an object');
  for (const key of Object.keys(options)) {
    if (!CALL_OPTIONS.has(key)) throw invalid(`unknown call option ${JSON.stringify(key)} (known: ${[...CALL_OPTIONS].join(', ')})`);
  }
  const media = options.media ?? 'sfu';
  if (media !== 'sfu' && media !== 'p2p') throw invalid(`media must be 'sfu' or 'p2p', not ${JSON.stringify(media)}`);
  const callType = options.callType ?? (stream && stream.getVideoTracks().length === 0 && stream.getAudioTracks().length > 0 ? 'audio' : 'video');
  if (callType !== 'audio' && callType !== 'video') throw invalid(`callType must be 'audio' or 'video' (use peer.connect for data), not ${JSON.stringify(callType)}`);
  if (options.label !== undefined && typeof options.label !== 'string') throw invalid('label must be a string');
  if (options.conversationId !== undefined && typeof options.conversationId !== 'string') throw invalid('conversationId must be a string');
  return {
    callId: options.callId === undefined ? randomId().replace(/^p-/, 'c-') : checkCallId(options.callId),
    media,
    callType,
    label: options.label ?? '',
    metadata: checkMetadata(options.metadata),
    conversationId: options.conversationId,
    videoBandwidth: checkBandwidth('videoBandwidth', options.videoBandwidth),
    audioBandwidth: checkBandwidth('audioBandwidth', options.audioBandwidth),
    videoCodec: options.videoCodec,
    audioCodec: options.audioCodec,
    videoCodecs: codecOption('video', options.videoCodec),
    audioCodecs: codecOption('audio', options.audioCodec),
  };
}

/** peer.connect's options, checked. */
export function parseConnectOptions(options) {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw invalid('connect options must be an object');
  for (const key of Object.keys(options)) {
    if (!CONNECT_OPTIONS.has(key)) throw invalid(`unknown connect option ${JSON.stringify(key)} (known: ${[...CONNECT_OPTIONS].join(', ')})`);
  }
  const media = options.media ?? 'p2p';
  if (media !== 'sfu' && media !== 'p2p') throw invalid(`media must be 'p2p' or 'sfu', not ${JSON.stringify(media)}`);
  const serialization = options.serialization ?? 'binary';
  if (!SERIALIZATIONS.includes(serialization)) throw invalid(`serialization must be 'binary', 'json' or 'none', not ${JSON.stringify(serialization)}`);
  if (options.label !== undefined && typeof options.label !== 'string') throw invalid('label must be a string');
  return {
    callId: options.callId === undefined ? randomId().replace(/^p-/, 'd-') : checkCallId(options.callId),
    media,
    callType: 'data',
    label: options.label ?? '',
    metadata: checkMetadata(options.metadata),
    serialization,
  };
}

/**
 * One call. Events: `stateChanged` { state, endReason }, `stream` (remote MediaStream with
 * `peerId`), `removestream`, `track`, `removetrack`, `open`, `data`, `participantJoined`,
 * `participantLeft` { peerId, reason }, `mediaChanged` { peerId, audio, video, screenShare },
 * `close`, `error` (SwitchboardError).
 */
export class MediaConnection extends Emitter {
  constructor(peer, info, { initiator, options = {}, stream = null }) {
    super();
    this.peer = peer;
    this.type = 'media';
    /** SkyWay's connectionId; Artico's call id: the same value. */
    this.id = info.callId;
    this.callId = info.callId;
    this.connectionId = info.callId;
    /** Artico's session name, "call:<callId>". */
    this.session = info.session ?? `call:${info.callId}`;
    this.metadata = info.metadata ?? options.metadata ?? null;
    this.label = options.label ?? (info.metadata && typeof info.metadata === 'object' ? info.metadata.label : undefined) ?? '';
    this.initiator = initiator;
    this.remoteId = initiator ? info.calleeIds[0] : info.callerId;
    this.peerId = this.remoteId;
    /** The others who accepted (and have not left), by peer id: a group call has several. */
    this.participants = new Set(initiator ? [] : (info.participants ?? [info.callerId]).filter((id) => id !== peer.id));
    this.media = info.media ?? 'sfu';
    this.callType = info.callType ?? 'video';
    /** The server's state of the call (LumenJS names). */
    this.state = info.state ?? 'initiating';
    this.endReason = null;
    this.open = false;
    this.closed = false;
    this.localStream = stream;
    /** The SfuRoom of an `sfu` call, once joined. */
    this.room = null;
    this._info = info;
    this._options = options;
    this._link = null;
    this._pendingSignals = [];
    this._remote = new RemoteStreams(this.remoteId, (event, ...args) => this._emit(event, ...args));
    this._answered = initiator;
    this._joinTimer = null;
    this._joinRetried = false;
  }

  /** The remote stream currently received (the first one), or null. */
  get remoteStream() {
    if (this.room) return this.room.getStream(this.remoteId) ?? this.room.remoteStreams[0] ?? null;
    return this._remote.first;
  }

  /** The RTCPeerConnection carrying the media (the call's own, or its SFU room's). */
  get pc() {
    return this._link?.pc ?? this.room?.pc ?? null;
  }

  getStats() {
    return this.pc ? this.pc.getStats() : Promise.resolve(new Map());
  }

  _log(...args) {
    this.peer._log(`[call ${this.id}]`, ...args);
  }

  _send(message) {
    return this.peer._presence?.send({ ...message, callId: this.id }) ?? false;
  }

  /** Accept a ringing call, sending `stream` (null or absent: receive only). */
  answer(stream = null, options = {}) {
    if (this.initiator) throw invalid('answer() is for the callee; the caller already is in the call');
    if (this.closed) throw new SwitchboardError('callEnded', 'the call has ended');
    if (this._answered) throw invalid('this call was answered already');
    if (stream !== null && stream !== undefined) checkStream(stream);
    if (options && typeof options === 'object') {
      for (const key of ['videoBandwidth', 'audioBandwidth']) {
        if (options[key] !== undefined) this._options[key] = checkBandwidth(key, options[key]);
      }
      if (options.videoCodec !== undefined) this._options.videoCodecs = codecOption('video', options.videoCodec);
      if (options.audioCodec !== undefined) this._options.audioCodecs = codecOption('audio', options.audioCodec);
    }
    this._answered = true;
    this.localStream = stream ?? null;
    this.answeredAt = performance.now();
    if (this.media === 'p2p') this._startLink();
    this._send({ type: 'callRespond', action: 'accept' });
    if (this.media === 'sfu') {
      // The call's room admits us once the server has the accept: join on its state change
      // (`connecting`), which comes after it (our join travels on another socket and could
      // overtake the accept). Should that change not come (a group call already connecting),
      // join after a moment anyway.
      this._joinTimer = setTimeout(() => this._joinRoom(), ACCEPT_SETTLE_MS);
    }
  }

  /** Decline a ringing call (the caller sees `rejected`). */
  reject() {
    if (this.initiator) throw invalid('reject() is for the callee; the caller hangs up with close()');
    if (this.closed || this._answered) return;
    this._answered = true;
    this._send({ type: 'callRespond', action: 'reject' });
  }

  /** Hang up (the caller hanging up while it rings cancels the call). */
  close(reason) {
    if (this.closed) return;
    if (!this.initiator && !this._answered) {
      // Hanging up a call that rings here declines it.
      this.reject();
      this._end('rejected', false);
      return;
    }
    const message = { type: 'callHangup' };
    if (reason === 'failed') message.reason = 'failed';
    this._send(message);
    this._end(this.initiator && (this.state === 'ringing' || this.state === 'initiating') ? 'cancelled' : 'completed', false);
  }

  /** Artico's name for close(). */
  hangup() {
    this.close();
  }

  // ------------------------------------------------------------------------ p2p media

  _startLink() {
    if (this._link || this.closed) return;
    const o = this._options;
    this._link = new P2PLink({
      iceServers: [...this.peer._iceServers, ...(this.peer._presence?.iceServers ?? [])],
      iceTransportPolicy: this.peer._iceTransportPolicy,
      polite: !this.initiator,
      offersFirst: this.initiator,
      dataChannel: true,
      videoCodecs: o.videoCodecs,
      audioCodecs: o.audioCodecs,
      videoBandwidth: o.videoBandwidth,
      audioBandwidth: o.audioBandwidth,
      send: (signal) => this._send({ type: 'callSignal', to: this.remoteId, signal }),
      onTrack: (track, streams) => this._remote.onTrack(track, streams),
      onState: (state) => this._onTransport(state),
      onChannelOpen: () => this._onOpen(),
      onChannelMessage: (data) => this._onChannelData(data),
      onChannelClose: () => this._log('data channel closed'),
      onError: (err) => this._emit('error', err),
      log: (...args) => this._log(...args),
    });
    for (const track of this.localStream?.getTracks() ?? []) this._link.addTrack(track, this.localStream);
    const pending = this._pendingSignals;
    this._pendingSignals = [];
    for (const signal of pending) this._link.onSignal(signal);
  }

  _onTransport(state) {
    if (state === 'connected') this._send({ type: 'callTransport', state: 'connected' });
    else if (state === 'disconnected') this._send({ type: 'callTransport', state: 'disconnected' });
    else if (state === 'failed') {
      this._send({ type: 'callTransport', state: 'failed' });
      this._emit('error', new SwitchboardError('mediaFailed', 'the media connection of the call failed'));
    }
  }

  _onOpen() {
    if (this.open || this.closed) return;
    this.open = true;
    this._emit('open');
  }

  /** `src`: the sender's peer id (sfu calls name it; in a p2p call it is the other side). */
  _onChannelData(data, src = this.remoteId) {
    let value = data;
    if (typeof data === 'string') {
      try {
        value = JSON.parse(data);
      } catch {
        value = data;
      }
    }
    this._emit('data', value, src);
  }

  // ------------------------------------------------------------------------ sfu media

  _joinRoom() {
    clearTimeout(this._joinTimer);
    this._joinTimer = null;
    if (this.room || this.closed) return;
    const o = this._options;
    const roomOptions = { stream: this.localStream ?? undefined };
    for (const key of ['videoBandwidth', 'audioBandwidth', 'videoCodec', 'audioCodec']) {
      if (o[key] !== undefined) roomOptions[key] = o[key];
    }
    const name = this._info.room ?? `call.${this.id}`;
    let room;
    try {
      room = this.peer.joinRoom(name, roomOptions);
    } catch (err) {
      this._emit('error', err);
      return;
    }
    this.room = room;
    // Open for data once the room's relayed channel is (its open event comes first).
    room.on('dataOpen', () => this._onOpen());
    room.on('stream', (stream) => this._emit('stream', stream));
    room.on('removeStream', (stream) => this._emit('removestream', stream));
    room.on('remoteTrack', (t) => this._emit('track', t.track, room.getStream(t.peerId)));
    room.on('remoteTrackEnded', (t) => this._emit('removetrack', t));
    room.on('data', ({ src, data, channel }) => {
      if (channel) this._onChannelData(data, src);
      else this._emit('data', data, src); // a room message (signalling socket), from other SDKs
    });
    room.on('connectionState', (state) => this._onTransport(state));
    room.on('error', (err) => {
      if (err.type === 'notInCall' && !room.open && !this._joinRetried) {
        // The accept had not reached the call yet: once more, a little later.
        this._joinRetried = true;
        this._log('call room refused the join (notInCall); retrying');
        this._joinTimer = setTimeout(() => this._joinRoom(), ACCEPT_SETTLE_MS);
        return;
      }
      this._emit('error', err);
    });
    room.on('close', () => {
      if (this.room === room) this.room = null;
    });
  }

  // ----------------------------------------------------------------------- sending

  /**
   * Send `data` to the others (strings and binary as they are, anything else as JSON): over the
   * call's data channel (p2p), or over the call room's data channel, which the SFU relays to
   * every other participant (sfu). False when it cannot be sent now (not open yet, ended).
   */
  send(data) {
    if (data === undefined || typeof data === 'function' || typeof data === 'symbol') throw invalid('data must be a string, binary data or a JSON value');
    const out = isRaw(data) || data instanceof Blob ? data : JSON.stringify(data);
    return this._sendRaw(out);
  }

  /** Put `data` (string, binary) on whichever data channel the call has. */
  _sendRaw(data) {
    if (this.room) {
      if (data instanceof Blob) throw invalid('sfu calls send strings, ArrayBuffers or typed arrays (not Blobs)');
      return this.room.sendData(data);
    }
    const channel = this._link?.channel;
    if (!channel || channel.readyState !== 'open') return false;
    channel.send(data);
    return true;
  }

  /** Ring more peers into this call (a group call; `sfu` calls only). */
  invite(peerIds) {
    const ids = Array.isArray(peerIds) ? peerIds : [peerIds];
    if (this.media !== 'sfu') throw invalid('only sfu calls take more participants (a p2p call is 1:1)');
    if (this.closed) throw new SwitchboardError('callEnded', 'the call has ended');
    if (ids.length === 0) throw invalid('invite whom? give one peer id or more');
    for (const id of ids) {
      if (typeof id !== 'string' || !TOKEN.test(id)) throw invalid(`peer id ${JSON.stringify(id)} is invalid (${TOKEN_RULE})`);
      if (id === this.peer.id) throw invalid('a peer cannot invite itself');
    }
    return this._send({ type: 'callInvite', calleeIds: ids });
  }

  /** Send the tracks of `stream` too (or instead, for kinds it has). */
  addStream(stream) {
    checkStream(stream);
    if (this.room) return this.room.replaceStream(stream);
    this.localStream = stream;
    for (const track of stream.getTracks()) this._replaceOrAdd(track, stream);
    return Promise.resolve();
  }

  /** Send one more track (e.g. the camera in a voice-only call): renegotiates. */
  addTrack(track, stream) {
    if (typeof track?.kind !== 'string') throw invalid('track must be a MediaStreamTrack');
    if (this.room) return this.room.publishTrack(track);
    if (!this.localStream) this.localStream = stream ?? new MediaStream();
    if (!this.localStream.getTracks().includes(track)) this.localStream.addTrack(track);
    this._replaceOrAdd(track, stream ?? this.localStream);
    return Promise.resolve();
  }

  _replaceOrAdd(track, stream) {
    if (!this._link) return;
    const same = this._link.pc.getSenders().find((s) => s.track && s.track.kind === track.kind && s.track !== track);
    if (same) same.replaceTrack(track);
    else this._link.addTrack(track, stream);
  }

  /** Stop sending `track`. */
  removeTrack(track) {
    if (this.room) return this.room.unpublishTrack(track);
    this.localStream?.removeTrack?.(track);
    this._link?.removeTrack(track);
    return Promise.resolve();
  }

  /** LumenJS call:media-toggle: enable or disable the local tracks and tell the others. */
  toggleMedia({ audio, video, screenShare = false } = {}) {
    const now = {
      audio: audio ?? (this.localStream?.getAudioTracks().some((t) => t.enabled) ?? false),
      video: video ?? (this.localStream?.getVideoTracks().some((t) => t.enabled) ?? false),
      screenShare: Boolean(screenShare),
    };
    for (const t of this.localStream?.getAudioTracks() ?? []) t.enabled = now.audio;
    for (const t of this.localStream?.getVideoTracks() ?? []) t.enabled = now.video;
    this._send({ type: 'callMediaToggle', ...now });
  }

  // ------------------------------------------------------------------- server messages

  _onMessage(message) {
    switch (message.type) {
      case 'callCreated':
        this._info = message.call;
        this._setState(message.call.state);
        if (this.media === 'sfu') this._joinRoom();
        break;
      case 'callStateChanged':
        if (message.state === 'ended') {
          this._end(message.endReason ?? 'completed', true);
          break;
        }
        this._setState(message.state);
        if (this._joinTimer && ACCEPTED_STATES.includes(message.state)) this._joinRoom();
        break;
      case 'callParticipantJoined':
        if (message.peerId !== this.peer.id) this.participants.add(message.peerId);
        this._emit('participantJoined', message.peerId);
        if (this.initiator && this.media === 'p2p' && message.peerId === this.remoteId) {
          this.acceptedAt = performance.now();
          this._startLink();
        }
        break;
      case 'callParticipantLeft':
        this.participants.delete(message.peerId);
        this._emit('participantLeft', { peerId: message.peerId, reason: message.reason });
        break;
      case 'callMediaChanged':
        this._emit('mediaChanged', { peerId: message.peerId, audio: message.audio, video: message.video, screenShare: message.screenShare });
        break;
      case 'callSignal':
        if (message.from !== this.remoteId) return;
        if (this._link) this._link.onSignal(message.signal);
        else this._pendingSignals.push(message.signal);
        break;
      default:
        break;
    }
  }

  _setState(state) {
    if (this.closed || state === this.state) return;
    this.state = state;
    this._emit('stateChanged', { state, endReason: null });
  }

  /** callInitiate was refused: the call never existed. */
  _refused(err) {
    this._emit('error', err);
    this._end('failed', true);
  }

  _end(reason, fromServer) {
    if (this.closed) return;
    this.closed = true;
    this.open = false;
    this.endReason = reason;
    this.state = 'ended';
    clearTimeout(this._joinTimer);
    this._joinTimer = null;
    this._link?.close();
    this._link = null;
    this.room?.close();
    this.room = null;
    this._remote.clear();
    this.peer._forgetCall(this);
    this._log('ended', reason, fromServer ? '(server)' : '(here)');
    this._emit('stateChanged', { state: 'ended', endReason: reason });
    this._emit('close');
  }
}

/**
 * A data-only call (SkyWay's DataConnection): browser to browser (`media: 'p2p'`, the default)
 * or relayed by the SFU through the call's room (`media: 'sfu'`). Events: `open`, `data`,
 * `close`, `error`.
 * `serialization`: 'json' (JSON text both ways), 'binary' (ArrayBuffer / typed arrays as they
 * are; strings as strings; other values as JSON), 'none' (whatever the data channel takes).
 */
export class DataConnection extends MediaConnection {
  constructor(peer, info, { initiator, options = {} }) {
    super(peer, info, { initiator, options });
    this.type = 'data';
    const meta = info.metadata && typeof info.metadata === 'object' ? info.metadata : {};
    this.serialization = options.serialization ?? meta.serialization ?? 'binary';
    this.label = options.label ?? meta.label ?? '';
    this.metadata = options.metadata ?? meta.metadata ?? null;
    this.dataChannel = null;
  }

  _startLink() {
    super._startLink();
    this.dataChannel = this._link?.channel ?? null;
  }

  send(data) {
    if (this.serialization === 'json') {
      const text = JSON.stringify(data);
      if (text === undefined) throw invalid('data must be a JSON value with serialization json');
      return this._sendRaw(text);
    }
    if (this.serialization === 'binary' && !(isRaw(data) || data instanceof Blob)) return this._sendRaw(JSON.stringify(data));
    return this._sendRaw(data);
  }

  _onChannelData(data, src = this.remoteId) {
    if (this.serialization === 'json' && typeof data === 'string') {
      try {
        this._emit('data', JSON.parse(data), src);
      } catch {
        this._emit('error', new SwitchboardError('invalidData', 'a message was not JSON (serialization json)'));
      }
      return;
    }
    this._emit('data', data, src);
  }
}
