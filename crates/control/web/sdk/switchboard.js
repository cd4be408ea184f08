// Switchboard JavaScript SDK: join a Switchboard SFU room from a browser.
//
// A plain ES module with no dependencies and no build step. Served by every Switchboard server at
// /sdk/switchboard.js (types at /sdk/switchboard.d.ts); docs/sdk.md is the guide.
//
//   import { Peer } from '/sdk/switchboard.js';
//   const peer = new Peer({ host: 'sfu.example.com' });
//   peer.on('open', () => {
//     const room = peer.joinRoom('lobby', { stream: await navigator.mediaDevices.getUserMedia(...) });
//     room.on('stream', (stream) => { video.srcObject = stream; /* stream.peerId */ });
//   });
//
// Wire protocol: docs/protocol.md (the Rust crate switchboard-protocol is authoritative).

export const PROTOCOL_VERSION = 1;

const TOKEN = /^[A-Za-z0-9._-]{1,64}$/;
const TOKEN_RULE = "letters, digits, '-', '_', '.'; 1-64 characters";
const MAX_DISPLAY_NAME = 100;
const DEFAULT_CONNECT_TIMEOUT_MS = 10000;
const JOIN_TIMEOUT_MS = 10000;
const LEAVE_GRACE_MS = 2000;

const LEAVE_REASONS = {
  requested: 'the client asked to leave',
  transportClosed: 'ICE or DTLS failed or timed out',
  mediaError: 'the media engine hit an error for this participant',
  tooSlow: 'the client could not keep up with its signalling events',
  serverShutdown: 'the server is shutting down',
  kicked: 'an operator removed this participant',
  roomClosed: 'an operator closed the room',
  credentialExpired: 'the credential expired and was not renewed with updateCredential',
  serverError: 'the media shard hosting the room failed; rejoin to get a working one',
};
/** Peer emits `expiresIn` this long before its credential runs out. */
const EXPIRY_WARNING_S = 60;

/**
 * Every error the SDK reports or throws. `type` (alias `code`) says what happened without
 * parsing `message`: the server's error codes (`invalidRoomName`, `peerIdTaken`, `badSdp`, ...)
 * and the SDK's own (`invalidArgument`, `serverUnreachable`, `connectionLost`, `timeout`,
 * `removed`, `negotiationFailed`, `mediaFailed`, `peerDestroyed`, `alreadyJoined`).
 */
export class SwitchboardError extends Error {
  constructor(type, message, details = {}) {
    super(message);
    this.name = 'SwitchboardError';
    this.type = type;
    this.code = type;
    Object.assign(this, details);
  }
}

function invalid(message) {
  return new SwitchboardError('invalidArgument', message);
}

// ------------------------------------------------------------------------------------- events

class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  /** Call `listener` on every `event`. Returns this, for chaining. */
  on(event, listener) {
    if (typeof listener !== 'function') throw invalid(`listener for '${event}' must be a function`);
    if (!this._listeners.has(event)) this._listeners.set(event, []);
    this._listeners.get(event).push({ listener, once: false });
    return this;
  }

  /** Call `listener` on the next `event` only. */
  once(event, listener) {
    this.on(event, listener);
    const list = this._listeners.get(event);
    list[list.length - 1].once = true;
    return this;
  }

  /** Remove `listener` (or every listener of `event` when no listener is given). */
  off(event, listener) {
    if (listener === undefined) {
      this._listeners.delete(event);
      return this;
    }
    const list = this._listeners.get(event);
    if (list) this._listeners.set(event, list.filter((l) => l.listener !== listener));
    return this;
  }

  _emit(event, ...args) {
    const list = this._listeners.get(event);
    if (!list || list.length === 0) {
      if (event === 'error') console.warn('[switchboard] unhandled error event:', args[0]);
      return;
    }
    this._listeners.set(event, list.filter((l) => !l.once));
    for (const { listener } of list) {
      try {
        listener(...args);
      } catch (err) {
        // A throwing listener must not break the SDK's state machine.
        console.error(`[switchboard] a '${event}' listener threw:`, err);
      }
    }
  }
}

// --------------------------------------------------------------------------------- helpers

function randomId() {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  let id = 'p-';
  for (const b of bytes) id += alphabet[b % alphabet.length];
  return id;
}

/** The signalling WebSocket URL for a `host` option (see docs/sdk.md). */
export function signallingUrl(host, secure) {
  if (host === undefined || host === null || host === '') {
    if (typeof location === 'undefined' || !location.host) {
      throw invalid('Peer needs a host option ("host:port" or a ws://, wss://, http:// or https:// URL)');
    }
    host = location.host;
    if (secure === undefined) secure = location.protocol === 'https:';
  }
  if (typeof host !== 'string') throw invalid('host must be a string like "127.0.0.1:7880" or a URL');
  let text = host.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) text = `${secure ? 'wss' : 'ws'}://${text}`;
  let url;
  try {
    url = new URL(text);
  } catch {
    throw invalid(`host ${JSON.stringify(host)} is not a valid address`);
  }
  const schemes = { 'ws:': 'ws:', 'wss:': 'wss:', 'http:': 'ws:', 'https:': 'wss:' };
  if (!schemes[url.protocol]) {
    throw invalid(`host ${JSON.stringify(host)}: use ws://, wss://, http:// or https://`);
  }
  url.protocol = schemes[url.protocol];
  if (secure === true) url.protocol = 'wss:';
  if (url.pathname === '' || url.pathname === '/') url.pathname = '/v1/ws';
  return url.toString();
}

function checkDisplayName(name) {
  if (typeof name !== 'string') throw invalid('name must be a string');
  if (name.trim() === '') throw invalid('name must not be empty');
  if ([...name].length > MAX_DISPLAY_NAME) {
    throw invalid(`name must be at most ${MAX_DISPLAY_NAME} characters`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) throw invalid('name must not contain control characters');
}

function checkCredential(credential) {
  const ok = typeof credential === 'object' && credential !== null
    && Number.isSafeInteger(credential.timestamp) && credential.timestamp >= 0
    && Number.isSafeInteger(credential.ttl) && credential.ttl >= 0
    && typeof credential.authToken === 'string' && credential.authToken !== '';
  if (!ok) {
    throw invalid('credential must be { timestamp: Unix seconds, ttl: seconds, authToken: string } as minted by your application server');
  }
  return { timestamp: credential.timestamp, ttl: credential.ttl, authToken: credential.authToken };
}

function checkBandwidth(key, value) {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalid(`${key} must be a positive number of kbit/s, got ${JSON.stringify(value)}`);
  }
  return value;
}

function codecsFor(kind, mimeType) {
  const caps = globalThis.RTCRtpSender?.getCapabilities?.(kind);
  const recv = globalThis.RTCRtpReceiver?.getCapabilities?.(kind);
  if (!caps || !recv) return null;
  const wanted = `${kind}/${mimeType}`.toLowerCase();
  if (!caps.codecs.some((c) => c.mimeType.toLowerCase() === wanted)) return null;
  // The chosen codec in every profile the browser has, plus retransmission for video.
  return recv.codecs.filter((c) => {
    const m = c.mimeType.toLowerCase();
    return m === wanted || (kind === 'video' && m === 'video/rtx');
  });
}

const VIDEO_CODECS = { vp8: 'VP8', h264: 'H264' };
const AUDIO_CODECS = { opus: 'opus' };
const ROOM_OPTIONS = new Set([
  'mode', 'stream', 'name', 'videoBandwidth', 'audioBandwidth', 'videoCodec', 'audioCodec',
]);

function parseRoomOptions(options) {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw invalid('joinRoom options must be an object');
  for (const key of Object.keys(options)) {
    if (!ROOM_OPTIONS.has(key)) {
      throw invalid(`unknown joinRoom option ${JSON.stringify(key)} (known: ${[...ROOM_OPTIONS].join(', ')})`);
    }
  }
  const mode = options.mode ?? 'sfu';
  if (mode !== 'sfu') {
    throw invalid(`room mode ${JSON.stringify(mode)} is not supported: Switchboard rooms are 'sfu'`);
  }
  const stream = options.stream ?? null;
  if (stream !== null) checkStream(stream);
  if (options.name !== undefined) checkDisplayName(options.name);
  const parsed = {
    mode,
    stream,
    name: options.name,
    videoBandwidth: checkBandwidth('videoBandwidth', options.videoBandwidth),
    audioBandwidth: checkBandwidth('audioBandwidth', options.audioBandwidth),
    videoCodecs: null,
    audioCodecs: null,
  };
  if (options.videoCodec !== undefined) {
    const name = VIDEO_CODECS[String(options.videoCodec).toLowerCase()];
    if (!name) {
      throw invalid(`videoCodec ${JSON.stringify(options.videoCodec)} is not supported (use 'VP8' or 'H264')`);
    }
    parsed.videoCodecs = codecsFor('video', name);
    if (!parsed.videoCodecs) throw invalid(`this browser cannot send ${name} video`);
  }
  if (options.audioCodec !== undefined) {
    const name = AUDIO_CODECS[String(options.audioCodec).toLowerCase()];
    if (!name) {
      throw invalid(`audioCodec ${JSON.stringify(options.audioCodec)} is not supported (use 'opus')`);
    }
    parsed.audioCodecs = codecsFor('audio', name);
    if (!parsed.audioCodecs) throw invalid(`this browser cannot send ${name} audio`);
  }
  return parsed;
}

function checkStream(stream) {
  if (typeof stream?.getTracks !== 'function') throw invalid('stream must be a MediaStream or null');
  for (const kind of ['audio', 'video']) {
    const n = stream.getTracks().filter((t) => t.kind === kind).length;
    if (n > 1) throw invalid(`stream has ${n} ${kind} tracks; a room sends at most one of each kind`);
  }
}

function trackInfo(t) {
  return { trackId: t.trackId, kind: t.kind, muted: Boolean(t.muted) };
}

function peerInfo(p) {
  return { peerId: p.peerId, name: p.name, tracks: p.tracks.map(trackInfo) };
}

// ---------------------------------------------------------------------- signalling channel

/** One WebSocket to /v1/ws: JSON messages in and out. */
class Channel {
  constructor(url, timeoutMs) {
    this.url = url;
    this.onmessage = null;
    this.onclose = null;
    this.closed = false;
    this.ready = new Promise((resolve, reject) => {
      const unreachable = (detail) =>
        new SwitchboardError(
          'serverUnreachable',
          `cannot reach the Switchboard server at ${url} (${detail})`,
          { url },
        );
      let ws;
      try {
        ws = new WebSocket(url);
      } catch (err) {
        reject(unreachable(err.message));
        return;
      }
      this.ws = ws;
      let opened = false;
      const timer = setTimeout(() => {
        if (opened) return;
        reject(unreachable(`no answer within ${timeoutMs} ms`));
        this.close();
      }, timeoutMs);
      ws.onopen = () => {
        opened = true;
        clearTimeout(timer);
        resolve(this);
      };
      ws.onmessage = (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          console.warn('[switchboard] server sent a frame that is not JSON:', event.data);
          return;
        }
        this.onmessage?.(message);
      };
      ws.onclose = (event) => {
        clearTimeout(timer);
        const wasOpen = opened;
        this.closed = true;
        if (!wasOpen) {
          reject(unreachable('connection refused, wrong address, or not a Switchboard server'));
          return;
        }
        this.onclose?.(event);
      };
    });
    // Rejections are handled by whoever awaits `ready`; never leave one unhandled.
    this.ready.catch(() => {});
  }

  get isOpen() {
    return !this.closed && this.ws?.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  close() {
    this.closed = true;
    this.onmessage = null;
    this.onclose = null;
    try {
      this.ws?.close(1000);
    } catch {
      // already closing
    }
  }
}

// ------------------------------------------------------------------------------------ Peer

const PEER_OPTIONS = new Set(['host', 'id', 'credential', 'secure', 'connectTimeout', 'debug', 'iceServers']);

/**
 * A client of one Switchboard server. Events: `open` (peer id), `close`, `error` (SwitchboardError),
 * `disconnected` (peer id), `expiresIn` (seconds left on the credential, once, a minute before).
 */
export class Peer extends Emitter {
  constructor(options = {}) {
    super();
    if (typeof options !== 'object' || options === null) throw invalid('Peer options must be an object');
    for (const key of Object.keys(options)) {
      if (!PEER_OPTIONS.has(key)) {
        throw invalid(`unknown Peer option ${JSON.stringify(key)} (known: ${[...PEER_OPTIONS].join(', ')})`);
      }
    }
    const { host, id, credential, secure, connectTimeout, debug, iceServers } = options;
    if (id !== undefined && (typeof id !== 'string' || !TOKEN.test(id))) {
      throw invalid(`peer id ${JSON.stringify(id)} is invalid (${TOKEN_RULE})`);
    }
    const checkedCredential = credential === undefined ? undefined : checkCredential(credential);
    if (checkedCredential && id === undefined) {
      throw invalid('a credential is minted for one peer id: pass that id as well');
    }
    if (connectTimeout !== undefined && !(Number.isFinite(connectTimeout) && connectTimeout > 0)) {
      throw invalid('connectTimeout must be a positive number of milliseconds');
    }
    if (iceServers !== undefined && !Array.isArray(iceServers)) throw invalid('iceServers must be an array');
    /** The signalling endpoint, e.g. ws://127.0.0.1:7880/v1/ws. */
    this.url = signallingUrl(host, secure);
    /** This peer's id in every room it joins. */
    this.id = id ?? randomId();
    /** The credential sent with every join (see updateCredential). */
    this.credential = checkedCredential;
    /** True once the server was reached, until destroy(). */
    this.open = false;
    /** True after destroy(), or after the server could not be reached. */
    this.destroyed = false;
    /** True when the connection kept for the next joinRoom dropped (joinRoom reconnects). */
    this.disconnected = false;
    /** Rooms this peer is in, by name. */
    this.rooms = new Map();
    this._connectTimeout = connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this._debug = Boolean(debug);
    this._iceServers = iceServers ?? [];
    this._spare = null;
    this._expiryTimer = null;
    this._scheduleExpiryWarning();
    this._opening = this._connect();
  }

  /**
   * Replace the credential before it expires: sent to every room this peer is in (each answers
   * with `credentialUpdated`, or an `error`) and used for later joins.
   */
  updateCredential(credential) {
    if (this.destroyed) throw new SwitchboardError('peerDestroyed', 'this peer was destroyed; create a new Peer');
    this.credential = checkCredential(credential);
    this._scheduleExpiryWarning();
    for (const room of this.rooms.values()) room._updateCredential(this.credential);
  }

  _scheduleExpiryWarning() {
    clearTimeout(this._expiryTimer);
    this._expiryTimer = null;
    const c = this.credential;
    if (!c) return;
    const expiresAt = (c.timestamp + c.ttl) * 1000;
    const warnIn = expiresAt - EXPIRY_WARNING_S * 1000 - Date.now();
    // setTimeout cannot wait longer than ~24.8 days; nobody needs that warning in advance.
    if (warnIn < 0 || warnIn > 2 ** 31 - 1) return;
    this._expiryTimer = setTimeout(() => {
      if (!this.destroyed) this._emit('expiresIn', Math.max(0, Math.round((expiresAt - Date.now()) / 1000)));
    }, warnIn);
  }

  _log(...args) {
    if (this._debug) console.debug('[switchboard]', ...args);
  }

  async _connect() {
    // Let the caller attach listeners before anything is emitted.
    await Promise.resolve();
    const channel = new Channel(this.url, this._connectTimeout);
    try {
      await channel.ready;
    } catch (err) {
      if (!this.destroyed) this._fail(err);
      return;
    }
    if (this.destroyed) {
      channel.close();
      return;
    }
    this._keepSpare(channel);
    this.open = true;
    this._log('open', this.id, this.url);
    this._emit('open', this.id);
  }

  /** Hold an open, unjoined connection for the next joinRoom. */
  _keepSpare(channel) {
    if (this._spare || !channel.isOpen || this.destroyed) {
      channel.close();
      return;
    }
    this._spare = channel;
    this.disconnected = false;
    channel.onmessage = (message) => this._log('← (idle connection)', JSON.stringify(message));
    channel.onclose = () => {
      if (this._spare !== channel) return;
      this._spare = null;
      this._lost();
    };
  }

  _lost() {
    if (this.destroyed || this.disconnected) return;
    this.disconnected = true;
    this._emit('disconnected', this.id);
  }

  _fail(err) {
    this._emit('error', err);
    for (const room of [...this.rooms.values()]) room._fail(err);
    this.destroy();
  }

  /** A connection for a new room: the spare one, or a new one. */
  async _takeChannel() {
    await this._opening;
    if (this.destroyed) throw new SwitchboardError('peerDestroyed', 'the peer was destroyed');
    const spare = this._spare;
    this._spare = null;
    if (spare?.isOpen) return spare;
    spare?.close();
    const channel = new Channel(this.url, this._connectTimeout);
    await channel.ready;
    this.disconnected = false;
    return channel;
  }

  /**
   * Join `roomName` (created on first join). Throws synchronously on invalid arguments; everything
   * that happens later (refused name, network trouble) arrives as the room's `error` event.
   */
  joinRoom(roomName, options) {
    if (this.destroyed) throw new SwitchboardError('peerDestroyed', 'this peer was destroyed; create a new Peer');
    if (typeof roomName !== 'string') throw invalid('room name must be a string');
    const parsed = parseRoomOptions(options);
    if (this.rooms.has(roomName)) {
      throw new SwitchboardError('alreadyJoined', `this peer is already in room ${JSON.stringify(roomName)}; close that room first`);
    }
    const room = new SfuRoom(this, roomName, parsed);
    this.rooms.set(roomName, room);
    room._start();
    return room;
  }

  /** Leave every room, close every connection, emit `close`. */
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.open = false;
    clearTimeout(this._expiryTimer);
    for (const room of [...this.rooms.values()]) room.close();
    this._spare?.close();
    this._spare = null;
    this._emit('close');
  }
}

// --------------------------------------------------------------------------------- SfuRoom

/**
 * Membership of one room through the SFU. Events: `open`, `peerJoin` (peerId), `peerLeave`
 * (peerId), `stream` (MediaStream with .peerId), `removeStream` (MediaStream), `data`
 * ({ src, data }), `trackMuted` ({ peerId, trackId, kind, muted }), `draining` (deadlineMs),
 * `credentialUpdated` (expiresAt), `connectionState` (RTCPeerConnectionState), `close`, `error`
 * (SwitchboardError).
 */
export class SfuRoom extends Emitter {
  constructor(peer, name, options) {
    super();
    this.name = name;
    this.mode = 'sfu';
    this.peer = peer;
    /** The stream this room sends (null: receive only). */
    this.localStream = options.stream;
    /** Other members by peer id: { peerId, name, tracks: [{ trackId, kind }] }. */
    this.peers = new Map();
    this._names = new Map();
    /** True between `open` and `close`. */
    this.open = false;
    this.closed = false;
    /** The media connection's RTCPeerConnectionState. */
    this.connectionState = 'new';
    /** The RTCPeerConnection, once joined (read-only use: stats, debugging). */
    this.pc = null;
    /** When the session ends unless the credential is renewed (Unix seconds), once known. */
    this.expiresAt = null;
    this._options = options;
    this._channel = null;
    this._queue = Promise.resolve();
    this._offerWanted = false;
    this._offerSent = false;
    this._localCandidates = [];
    this._remoteCandidates = [];
    /** mid → { peerId, trackId, kind }: what the server said arrives on each receive m-line. */
    this._slots = new Map();
    /** peerId → MediaStream currently handed to the app. */
    this._streams = new Map();
    this._streamUpdate = null;
    this._senders = { audio: null, video: null };
    this._joinTimer = null;
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

  _send(message) {
    this._log('→', JSON.stringify(message));
    return this._channel?.send(message);
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
    this._channel = channel;
    channel.onmessage = (m) => this._onMessage(m);
    channel.onclose = (event) => {
      this._channel = null;
      if (this.closed) return;
      this.peer._lost();
      this._fail(new SwitchboardError(
        'connectionLost',
        `the signalling connection to ${this.peer.url} closed unexpectedly (code ${event.code})`,
      ));
    };
    const join = { type: 'join', room: this.name, peerId: this.peer.id, mode: 'sfu' };
    if (this._options.name !== undefined) join.name = this._options.name;
    if (this.peer.credential !== undefined) join.credential = this.peer.credential;
    this._joinTimer = setTimeout(() => {
      this._fail(new SwitchboardError('timeout', `the server did not answer join within ${JOIN_TIMEOUT_MS} ms`));
    }, JOIN_TIMEOUT_MS);
    this._send(join);
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
        const info = message.peer;
        this.peers.set(info.peerId, peerInfo(info));
        this._names.set(info.peerId, info.name);
        this._emit('peerJoin', info.peerId);
        break;
      }
      case 'peerLeft':
        this._onPeerLeft(message.peerId);
        break;
      case 'trackPublished': {
        this._slots.set(message.mid, {
          peerId: message.peerId,
          trackId: message.track.trackId,
          kind: message.track.kind,
        });
        const info = this.peers.get(message.peerId);
        if (info && !info.tracks.some((t) => t.trackId === message.track.trackId)) {
          info.tracks.push(trackInfo(message.track));
        }
        this._scheduleStreams();
        break;
      }
      case 'trackUnpublished': {
        const slot = this._slots.get(message.mid);
        if (slot && slot.trackId === message.trackId && slot.peerId === message.peerId) {
          this._slots.delete(message.mid);
        }
        // The track may still be carried on another m-line (the server moved it); it is only
        // gone from the member's list when no m-line carries it.
        const carried = [...this._slots.values()].some((s) => s.trackId === message.trackId);
        const info = this.peers.get(message.peerId);
        if (info && !carried) info.tracks = info.tracks.filter((t) => t.trackId !== message.trackId);
        this._scheduleStreams();
        break;
      }
      case 'left':
        this._onLeft(message.reason);
        break;
      case 'message':
        this._emit('data', { src: message.from ?? null, data: message.data });
        break;
      case 'trackMuted': {
        const info = this.peers.get(message.peerId);
        const track = info?.tracks.find((t) => t.trackId === message.trackId);
        if (track) track.muted = message.muted;
        const kind = message.kind ?? track?.kind;
        this._emit('trackMuted', { peerId: message.peerId, trackId: message.trackId, kind, muted: message.muted });
        break;
      }
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
    if (message.request === 'offer') {
      // Our offer was refused: return to stable so negotiation can go on.
      this._enqueue(async () => {
        if (this.pc?.signalingState === 'have-local-offer') {
          await this.pc.setLocalDescription({ type: 'rollback' });
        }
      });
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
    for (const m of message.members) {
      this.peers.set(m.peerId, peerInfo(m));
      this._names.set(m.peerId, m.name);
    }
    const pc = new RTCPeerConnection({
      iceServers: this.peer._iceServers,
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
    });
    this.pc = pc;
    pc.onicecandidate = (event) => this._onLocalCandidate(event.candidate);
    pc.onconnectionstatechange = () => {
      if (this.closed) return;
      this.connectionState = pc.connectionState;
      this._emit('connectionState', pc.connectionState);
      if (pc.connectionState === 'failed') {
        this._emit('error', new SwitchboardError('mediaFailed', 'the media connection to the server failed (ICE or DTLS)'));
      }
    };

    const stream = this.localStream;
    if (stream) {
      for (const track of stream.getTracks()) this._addSender(track, stream);
    }
    // Receive slots for what the members already publish: saves the server a round of offers.
    const existing = { audio: 0, video: 0 };
    for (const m of message.members) for (const t of m.tracks) existing[t.kind] += 1;
    for (const kind of ['audio', 'video']) {
      for (let i = 0; i < existing[kind]; i += 1) pc.addTransceiver(kind, { direction: 'recvonly' });
    }
    if (pc.getTransceivers().length === 0) {
      // An offer needs at least one m-line; a receive-only client starts with one slot of each.
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
    }
    this.open = true;
    this._emit('open');
    this._requestOffer();
  }

  _addSender(track, stream) {
    const transceiver = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    this._senders[track.kind] = transceiver;
    this._preferCodecs(transceiver, track.kind);
    return transceiver;
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

  async _applyBandwidth() {
    for (const kind of ['audio', 'video']) {
      const kbps = kind === 'video' ? this._options.videoBandwidth : this._options.audioBandwidth;
      const transceiver = this._senders[kind];
      if (!kbps || !transceiver || !transceiver.sender.track) continue;
      const params = transceiver.sender.getParameters();
      if (!params.encodings || params.encodings.length === 0) continue;
      const bps = Math.round(kbps * 1000);
      if (params.encodings.every((e) => e.maxBitrate === bps)) continue;
      for (const e of params.encodings) e.maxBitrate = bps;
      try {
        await transceiver.sender.setParameters(params);
      } catch (err) {
        this._emit('error', new SwitchboardError('negotiationFailed', `could not limit ${kind} to ${kbps} kbit/s: ${err.message}`));
      }
    }
  }

  /**
   * Send `stream` instead of the current one, without rejoining: tracks are swapped in place,
   * added (e.g. voice-only → camera on) or removed (stream without video → video unpublished).
   * Pass null to send nothing. Resolves when the change is applied.
   */
  replaceStream(stream) {
    if (this.closed) throw new SwitchboardError('roomClosed', 'the room is closed');
    if (stream !== null) checkStream(stream);
    this.localStream = stream;
    if (!this.pc) return Promise.resolve(); // not joined yet: used when the media is set up
    return this._enqueue(async () => {
      let renegotiate = false;
      for (const kind of ['audio', 'video']) {
        const track = stream?.getTracks().find((t) => t.kind === kind) ?? null;
        const transceiver = this._senders[kind];
        if (!transceiver) {
          if (track) {
            this._addSender(track, stream);
            renegotiate = true;
          }
          continue;
        }
        if (track) {
          await transceiver.sender.replaceTrack(track);
          transceiver.sender.setStreams?.(stream);
          if (transceiver.direction !== 'sendonly') {
            transceiver.direction = 'sendonly';
            renegotiate = true;
          }
        } else if (transceiver.direction !== 'inactive') {
          // Unpublish: the server sees the m-line go inactive.
          await transceiver.sender.replaceTrack(null);
          transceiver.direction = 'inactive';
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

  // ---------------------------------------------------------------------- negotiation
  //
  // Every SDP step runs in one queue, so two never interleave. The client is the impolite peer:
  // a server offer that arrives while our own offer is outstanding is ignored (the server drops it
  // when our offer reaches it, and offers again after answering ours).

  _enqueue(task) {
    const run = this._queue.then(async () => {
      if (this.closed || !this.pc) return;
      await task();
    });
    this._queue = run.catch((err) => {
      if (this.closed) return;
      this._emit('error', new SwitchboardError('negotiationFailed', `SDP negotiation failed: ${err.message ?? err}`));
    });
    // The failure is reported as an `error` event; callers that await `run` see it too.
    run.catch(() => {});
    return run;
  }

  _requestOffer() {
    this._offerWanted = true;
    this._enqueue(() => this._maybeOffer());
  }

  async _maybeOffer() {
    const pc = this.pc;
    if (!this._offerWanted || pc.signalingState !== 'stable') return;
    this._offerWanted = false;
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this._send({ type: 'offer', sdp: pc.localDescription.sdp });
    if (!this._offerSent) {
      this._offerSent = true;
      for (const c of this._localCandidates) this._send(c);
      this._localCandidates = [];
    }
  }

  async _onAnswer(sdp) {
    const pc = this.pc;
    if (pc.signalingState !== 'have-local-offer') {
      this._log('answer without an outstanding offer; ignored');
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp });
    await this._afterNegotiation();
  }

  async _onServerOffer(sdp) {
    const pc = this.pc;
    if (pc.signalingState === 'have-local-offer') {
      this._log('glare: ignoring the server offer; the server offers again after answering ours');
      return;
    }
    await pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this._send({ type: 'answer', sdp: pc.localDescription.sdp });
    await this._afterNegotiation();
  }

  async _afterNegotiation() {
    await this._flushRemoteCandidates();
    this._updateStreams();
    await this._applyBandwidth();
    if (this._offerWanted) await this._maybeOffer();
  }

  _onLocalCandidate(candidate) {
    if (candidate && candidate.candidate && /\s\S+\.local\s/.test(candidate.candidate)) {
      // mDNS-obfuscated host candidate: the server cannot resolve it, and needs no client
      // candidates at all (ICE-lite learns the address from our connectivity checks).
      return;
    }
    const message = candidate
      ? { type: 'candidate', candidate: candidate.candidate, sdpMid: candidate.sdpMid ?? undefined, sdpMLineIndex: candidate.sdpMLineIndex ?? undefined }
      : { type: 'candidate', candidate: '' };
    if (this._offerSent) this._send(message);
    else this._localCandidates.push(message);
  }

  _onRemoteCandidate(message) {
    const init = {
      candidate: message.candidate,
      sdpMid: message.sdpMid ?? null,
      sdpMLineIndex: message.sdpMLineIndex ?? (message.sdpMid == null ? 0 : null),
    };
    if (init.candidate.startsWith('a=')) init.candidate = init.candidate.slice(2);
    this._remoteCandidates.push(init);
    this._enqueue(() => this._flushRemoteCandidates());
  }

  async _flushRemoteCandidates() {
    const pc = this.pc;
    if (!pc.remoteDescription) return; // kept until the server's SDP is applied
    const pending = this._remoteCandidates;
    this._remoteCandidates = [];
    for (const init of pending) {
      try {
        await pc.addIceCandidate(init);
      } catch (err) {
        // The same candidate is in the server's SDP already; a failure here is not fatal.
        this._log('addIceCandidate failed', init, err.message);
      }
    }
  }

  // ---------------------------------------------------------------------- remote streams

  _scheduleStreams() {
    // trackPublished events come in bursts (audio and video of one member): settle them first.
    if (this._streamUpdate) return;
    this._streamUpdate = setTimeout(() => {
      this._streamUpdate = null;
      if (!this.closed) this._updateStreams();
    }, 0);
  }

  /** Hand the app one MediaStream per member, rebuilt when the member's track set changes. */
  _updateStreams() {
    if (!this.pc) return;
    const byMid = new Map();
    for (const t of this.pc.getTransceivers()) if (t.mid !== null) byMid.set(t.mid, t);
    const wanted = new Map();
    for (const [mid, slot] of this._slots) {
      const transceiver = byMid.get(mid);
      if (!transceiver) continue; // its m-line is not applied yet; retried after the next SDP step
      if (!wanted.has(slot.peerId)) wanted.set(slot.peerId, []);
      wanted.get(slot.peerId).push(transceiver.receiver.track);
    }
    for (const [peerId, current] of [...this._streams]) {
      if (!wanted.has(peerId)) {
        this._streams.delete(peerId);
        this._emit('removeStream', current);
      }
    }
    for (const [peerId, tracks] of wanted) {
      tracks.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'audio' ? -1 : 1));
      const current = this._streams.get(peerId);
      const have = current?.getTracks() ?? [];
      if (have.length === tracks.length && tracks.every((t) => have.includes(t))) continue;
      const stream = new MediaStream(tracks);
      stream.peerId = peerId;
      this._streams.set(peerId, stream);
      this._emit('stream', stream);
    }
  }

  /**
   * Send `data` (anything JSON can carry) to every other member, or to one (`{ to: peerId }`).
   * They receive it as a `data` event { src, data }. Returns false when the room is not open.
   */
  send(data, options = {}) {
    if (data === undefined || typeof data === 'function' || typeof data === 'symbol') {
      throw invalid('data must be a JSON value');
    }
    const to = options?.to;
    if (to !== undefined && (typeof to !== 'string' || !TOKEN.test(to))) {
      throw invalid(`to must be a peer id (${TOKEN_RULE})`);
    }
    if (!this.open) return false;
    const message = { type: 'message', data };
    if (to !== undefined) message.to = to;
    return Boolean(this._send(message));
  }

  _updateCredential(credential) {
    if (this.open) this._send({ type: 'updateCredential', credential });
  }

  /**
   * Receive statistics per member: { [peerId]: { audio: { packetsReceived, bytesReceived },
   * video: { packetsReceived, bytesReceived, framesReceived, framesDecoded, keyFramesDecoded, pliCount,
   * frameWidth, frameHeight, codec } } }, keyed on the server's trackPublished announcements.
   */
  async getPeerStats() {
    const result = {};
    if (!this.pc) return result;
    const report = await this.pc.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.mid === undefined) return;
      const slot = this._slots.get(s.mid);
      if (!slot) return;
      const entry = (result[slot.peerId] ??= {});
      const kind = s.kind ?? slot.kind;
      const stat = { packetsReceived: s.packetsReceived ?? 0, bytesReceived: s.bytesReceived ?? 0 };
      if (kind === 'video') {
        Object.assign(stat, {
          framesReceived: s.framesReceived ?? 0,
          framesDecoded: s.framesDecoded ?? 0,
          keyFramesDecoded: s.keyFramesDecoded ?? 0,
          pliCount: s.pliCount ?? 0,
          frameWidth: s.frameWidth ?? 0,
          frameHeight: s.frameHeight ?? 0,
          codec: report.get(s.codecId)?.mimeType,
        });
      }
      entry[kind] = stat;
    });
    return result;
  }

  /** The RTCPeerConnection's stats report. */
  getStats() {
    return this.pc ? this.pc.getStats() : Promise.resolve(new Map());
  }

  // ---------------------------------------------------------------------------- leaving

  /** Leave the room. Emits `close`; the local stream is left running (it is the app's). */
  close() {
    if (this.closed) return;
    const channel = this._channel;
    if (channel?.isOpen) {
      // Also when `joined` has not arrived yet: the server handles messages in order, so the
      // join it is processing is undone by this leave.
      channel.send({ type: 'leave' });
      // The server answers `left` and closes; don't wait for it longer than this.
      setTimeout(() => channel.close(), LEAVE_GRACE_MS);
    } else {
      channel?.close();
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
    clearTimeout(this._joinTimer);
    clearTimeout(this._streamUpdate);
    if (this.pc) {
      this.pc.onicecandidate = null;
      this.pc.onconnectionstatechange = null;
      this.pc.close();
    }
    this.connectionState = 'closed';
    for (const stream of this._streams.values()) this._emit('removeStream', stream);
    this._streams.clear();
    this._slots.clear();
    if (this.peer.rooms.get(this.name) === this) this.peer.rooms.delete(this.name);
    this._emit('close');
  }
}
