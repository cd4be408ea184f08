// Switchboard JavaScript SDK, shared pieces: errors, the event emitter, argument checks and the
// signalling channel. Imported by switchboard.js (the entry module) and room.js; see docs/sdk.md.

export const PROTOCOL_VERSION = 1;

export const TOKEN = /^[A-Za-z0-9._-]{1,64}$/;
export const TOKEN_RULE = "letters, digits, '-', '_', '.'; 1-64 characters";
export const MAX_DISPLAY_NAME = 100;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10000;
export const JOIN_TIMEOUT_MS = 10000;
export const LEAVE_GRACE_MS = 2000;

export const LEAVE_REASONS = {
  requested: 'the client asked to leave',
  transportClosed: 'ICE or DTLS failed or timed out',
  mediaError: 'the media engine hit an error for this participant',
  tooSlow: 'the client could not keep up with its signalling events',
  serverShutdown: 'the server is shutting down',
  kicked: 'an operator removed this participant',
  roomClosed: 'an operator closed the room',
  credentialExpired: 'the credential expired and was not renewed with updateCredential',
  serverError: 'the media shard hosting the room failed; rejoin to get a working one',
  reconnectTimeout: 'the signalling connection dropped and no resume came within the grace period',
};
/** Peer emits `expiresIn` this long before its credential runs out. */
export const EXPIRY_WARNING_S = 60;

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

export function invalid(message) {
  return new SwitchboardError('invalidArgument', message);
}

// ------------------------------------------------------------------------------------- events

export class Emitter {
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

export function randomId() {
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

export function checkDisplayName(name) {
  if (typeof name !== 'string') throw invalid('name must be a string');
  if (name.trim() === '') throw invalid('name must not be empty');
  if ([...name].length > MAX_DISPLAY_NAME) {
    throw invalid(`name must be at most ${MAX_DISPLAY_NAME} characters`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) throw invalid('name must not contain control characters');
}

export function checkCredential(credential) {
  const ok = typeof credential === 'object' && credential !== null
    && Number.isSafeInteger(credential.timestamp) && credential.timestamp >= 0
    && Number.isSafeInteger(credential.ttl) && credential.ttl >= 0
    && typeof credential.authToken === 'string' && credential.authToken !== '';
  if (!ok) {
    throw invalid('credential must be { timestamp: Unix seconds, ttl: seconds, authToken: string } as minted by your application server');
  }
  return { timestamp: credential.timestamp, ttl: credential.ttl, authToken: credential.authToken };
}

export function checkBandwidth(key, value) {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalid(`${key} must be a positive number of kbit/s, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function codecsFor(kind, mimeType) {
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

export const VIDEO_CODECS = { vp8: 'VP8', h264: 'H264', vp9: 'VP9', av1: 'AV1' };
export const AUDIO_CODECS = { opus: 'opus' };
export const ROOM_OPTIONS = new Set([
  'mode', 'stream', 'name', 'videoBandwidth', 'audioBandwidth', 'videoCodec', 'audioCodec',
  'autoSubscribe', 'reconnectTimeout', 'keepalive', 'mediaTimeout', 'signalModifier', 'dataChannels',
  'simulcast',
]);
/** Nothing received on the media transport this long (ms) counts as a dead path: ICE restarts. */
export const DEFAULT_MEDIA_TIMEOUT_MS = 5000;
/** How long a room keeps trying to resume after its WebSocket dropped (the server's default grace). */
export const DEFAULT_RECONNECT_TIMEOUT_MS = 20000;
/** Keepalive defaults: a `ping` this often, the connection counts as dead after this much silence. */
export const DEFAULT_KEEPALIVE = { interval: 2000, timeout: 6000 };

/** The `simulcast` option: absent or a boolean. */
function checkSimulcast(value) {
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw invalid('simulcast must be true or false');
  return value;
}

/** A `signalModifier` option: a function, checked early so a typo fails at the call site. */
export function checkSignalModifier(value) {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'function') throw invalid('signalModifier must be a function (signalName, payload) => payload');
  return value;
}

function checkKeepalive(value) {
  if (value === undefined) return { ...DEFAULT_KEEPALIVE };
  if (typeof value !== 'object' || value === null) throw invalid('keepalive must be { interval, timeout } in milliseconds');
  const k = { ...DEFAULT_KEEPALIVE, ...value };
  for (const key of ['interval', 'timeout']) {
    if (!(Number.isFinite(k[key]) && k[key] > 0)) throw invalid(`keepalive.${key} must be a positive number of milliseconds`);
  }
  if (k.timeout <= k.interval) throw invalid('keepalive.timeout must be longer than keepalive.interval');
  return { interval: k.interval, timeout: k.timeout };
}

export function parseRoomOptions(options) {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw invalid('joinRoom options must be an object');
  for (const key of Object.keys(options)) {
    if (!ROOM_OPTIONS.has(key)) {
      throw invalid(`unknown joinRoom option ${JSON.stringify(key)} (known: ${[...ROOM_OPTIONS].join(', ')})`);
    }
  }
  const mode = options.mode ?? 'sfu';
  if (mode !== 'sfu') {
    throw invalid(`room mode ${JSON.stringify(mode)} is not supported: Switchboard rooms are 'sfu' or 'mesh'`);
  }
  const stream = options.stream ?? null;
  if (stream !== null) checkStream(stream);
  if (options.name !== undefined) checkDisplayName(options.name);
  if (options.autoSubscribe !== undefined && typeof options.autoSubscribe !== 'boolean') {
    throw invalid('autoSubscribe must be true or false');
  }
  if (options.dataChannels !== undefined && typeof options.dataChannels !== 'boolean') {
    throw invalid('dataChannels must be true or false');
  }
  const reconnectTimeout = options.reconnectTimeout ?? DEFAULT_RECONNECT_TIMEOUT_MS;
  if (!(Number.isFinite(reconnectTimeout) && reconnectTimeout >= 0)) {
    throw invalid('reconnectTimeout must be a number of milliseconds (0: never resume)');
  }
  const mediaTimeout = options.mediaTimeout ?? DEFAULT_MEDIA_TIMEOUT_MS;
  if (!(Number.isFinite(mediaTimeout) && mediaTimeout >= 1000)) {
    throw invalid('mediaTimeout must be at least 1000 ms');
  }
  const parsed = {
    autoSubscribe: options.autoSubscribe ?? true,
    dataChannels: options.dataChannels ?? true,
    mediaTimeout,
    reconnectTimeout,
    keepalive: checkKeepalive(options.keepalive),
    signalModifier: checkSignalModifier(options.signalModifier),
    mode,
    stream,
    name: options.name,
    videoBandwidth: checkBandwidth('videoBandwidth', options.videoBandwidth),
    audioBandwidth: checkBandwidth('audioBandwidth', options.audioBandwidth),
    simulcast: checkSimulcast(options.simulcast),
    videoCodecs: null,
    audioCodecs: null,
  };
  if (options.videoCodec !== undefined) {
    const name = VIDEO_CODECS[String(options.videoCodec).toLowerCase()];
    if (!name) {
      throw invalid(`videoCodec ${JSON.stringify(options.videoCodec)} is not supported (use 'VP8', 'H264', 'VP9' or 'AV1')`);
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

export function checkStream(stream) {
  if (typeof stream?.getTracks !== 'function') throw invalid('stream must be a MediaStream or null');
  for (const kind of ['audio', 'video']) {
    const n = stream.getTracks().filter((t) => t.kind === kind).length;
    if (n > 1) throw invalid(`stream has ${n} ${kind} tracks; a room sends at most one of each kind`);
  }
}

export const TRACK_SOURCES = ['camera', 'microphone', 'screen', 'screenAudio', 'other'];

/** What a track of `kind` carries when its publisher does not say (as the server assumes). */
export function defaultSource(kind) {
  return kind === 'audio' ? 'microphone' : 'camera';
}

/** A track as the server describes it, in the SDK's shape (also for older servers' messages). */
export function trackInfo(t) {
  return {
    trackId: t.trackId,
    kind: t.kind,
    source: t.source ?? defaultSource(t.kind),
    description: t.description ?? null,
    live: t.live ?? true,
    muted: Boolean(t.muted),
  };
}

export const NO_MEDIA = Object.freeze({ audio: false, video: false, screenShare: false });

export function mediaStateOf(state) {
  return { audio: Boolean(state?.audio), video: Boolean(state?.video), screenShare: Boolean(state?.screenShare) };
}

export function peerInfo(p) {
  return { peerId: p.peerId, name: p.name, tracks: p.tracks.map(trackInfo), mediaState: mediaStateOf(p.mediaState) };
}

// ---------------------------------------------------------------------- signalling channel

/** One WebSocket to /v1/ws: JSON messages in and out. */
export class Channel {
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

