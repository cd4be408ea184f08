// Switchboard JavaScript SDK: join a Switchboard SFU room from a browser.
//
// Plain ES modules with no dependencies and no build step. Served by every Switchboard server at
// /sdk/switchboard.js (this entry module; it imports core.js, room.js, negotiation.js, tracks.js
// and resume.js from the same directory; types at /sdk/switchboard.d.ts); docs/sdk.md is the
// guide.
//
//   import { Peer } from '/sdk/switchboard.js';
//   const peer = new Peer({ host: 'sfu.example.com' });
//   peer.on('open', () => {
//     const room = peer.joinRoom('lobby', { stream: await navigator.mediaDevices.getUserMedia(...) });
//     room.on('stream', (stream) => { video.srcObject = stream; /* stream.peerId */ });
//   });
//
// Wire protocol: docs/protocol.md (the Rust crate switchboard-protocol is authoritative).

import {
  Channel, DEFAULT_CONNECT_TIMEOUT_MS, EXPIRY_WARNING_S, Emitter, SwitchboardError, TOKEN,
  TOKEN_RULE, checkCredential, checkSignalModifier, invalid, parseRoomOptions, randomId,
  signallingUrl,
} from './core.js';
import { SfuRoom } from './room.js';

export { PROTOCOL_VERSION, SwitchboardError, signallingUrl } from './core.js';
export { SfuRoom } from './room.js';

// ------------------------------------------------------------------------------------ Peer

const PEER_OPTIONS = new Set([
  'host', 'id', 'credential', 'secure', 'connectTimeout', 'debug', 'iceServers', 'iceTransportPolicy',
  'signalModifier',
]);

const ICE_TRANSPORT_POLICIES = ['all', 'relay'];

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
    const {
      host, id, credential, secure, connectTimeout, debug, iceServers, iceTransportPolicy, signalModifier,
    } = options;
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
    if (iceTransportPolicy !== undefined && !ICE_TRANSPORT_POLICIES.includes(iceTransportPolicy)) {
      throw invalid(`iceTransportPolicy must be 'all' or 'relay', not ${JSON.stringify(iceTransportPolicy)}`);
    }
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
    /** The app's own ICE servers; each room adds the ones its `joined` brings (TURN credentials). */
    this._iceServers = iceServers ?? [];
    /** 'relay': media only through a TURN server (tests, or to hide the client's address). */
    this._iceTransportPolicy = iceTransportPolicy ?? 'all';
    /** Called with (signalName, payload) for every message a room sends; see docs/sdk.md. */
    this._signalModifier = checkSignalModifier(signalModifier);
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
    // setTimeout cannot wait longer than ~24.8 days; nobody needs that warning in advance. A
    // credential already in its last minute is warned about at once (and an expired one not).
    if (warnIn > 2 ** 31 - 1 || expiresAt <= Date.now()) return;
    this._expiryTimer = setTimeout(() => {
      if (!this.destroyed) this._emit('expiresIn', Math.max(0, Math.round((expiresAt - Date.now()) / 1000)));
    }, Math.max(0, warnIn));
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
