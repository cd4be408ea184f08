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
  TOKEN_RULE, checkCredential, checkSignalModifier, checkStream, invalid, parseRoomOptions, randomId,
  signallingUrl,
} from './core.js';
import { SfuRoom } from './room.js';
import { Presence } from './presence.js';
import { DataConnection, MediaConnection, parseCallOptions, parseConnectOptions } from './calls.js';
import { MeshRoom, parseMeshOptions } from './mesh.js';

export { PROTOCOL_VERSION, SwitchboardError, signallingUrl } from './core.js';
export { SfuRoom } from './room.js';
export { MeshRoom } from './mesh.js';
export { DataConnection, MediaConnection } from './calls.js';

// ------------------------------------------------------------------------------------ Peer

const PEER_OPTIONS = new Set([
  'host', 'id', 'credential', 'secure', 'connectTimeout', 'debug', 'iceServers', 'iceTransportPolicy',
  'signalModifier',
]);

const ICE_TRANSPORT_POLICIES = ['all', 'relay'];

/**
 * A client of one Switchboard server. Events: `open` (peer id, once registered on the peer
 * connection), `call` (an incoming MediaConnection), `connection` (an incoming DataConnection),
 * `close`, `error` (SwitchboardError), `disconnected` (peer id), `expiresIn` (seconds left on the
 * credential, once, a minute before), `draining` (ms).
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
    /** Rooms this peer is in, by name (SfuRoom and MeshRoom). */
    this.rooms = new Map();
    /** Calls by remote peer id, as SkyWay: { [peerId]: [MediaConnection | DataConnection] }. */
    this.connections = {};
    /** True while the peer connection (/v1/peer) is registered: the peer can call and be called. */
    this.registered = false;
    this._calls = new Map();
    this._presence = null;
    this._registering = null;
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
    for (const room of this.rooms.values()) room._updateCredential?.(this.credential);
    this._presence?.send({ type: 'updateCredential', credential: this.credential });
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
    if (this.destroyed) return;
    this._presence = new Presence(this);
    this._registering = this._presence.start();
    this._registering.catch(() => {});
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
    try {
      await this._registering;
      this.registered = true;
    } catch (err) {
      if (this.destroyed) return;
      // Rooms still work; calls and mesh rooms need the registration.
      if (err.type === 'serverUnreachable') this._log('no peer connection (older server?):', err.message);
      else this._emit('error', err);
    }
    if (this.destroyed) return;
    this.open = true;
    this._log('open', this.id, this.url);
    this._emit('open', this.id);
  }

  /** Resolves once registered on the peer connection; rejects when that failed. */
  async _registered() {
    await this._opening;
    if (this.destroyed) throw new SwitchboardError('peerDestroyed', 'the peer was destroyed');
    if (!this.registered || !this._presence) {
      throw new SwitchboardError('notRegistered', 'this peer is not registered on the peer connection (see the error event)');
    }
  }

  _reconnected() {
    this.disconnected = false;
    this.registered = true;
  }

  /** The registration is over (not resumable): calls fail, mesh rooms close. */
  _presenceLost(err) {
    this.registered = false;
    for (const call of [...this._calls.values()]) call._end('failed', true);
    for (const room of [...this.rooms.values()]) if (room.mode === 'mesh') room._fail(err);
    this._lost();
    if (!this.destroyed) this._emit('error', err);
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
   * Join `roomName` (created on first join): an SFU room, or with `mode: 'mesh'` a mesh room
   * (MeshRoom). Throws synchronously on invalid arguments; everything that happens later
   * (refused name, network trouble) arrives as the room's `error` event.
   */
  joinRoom(roomName, options) {
    if (this.destroyed) throw new SwitchboardError('peerDestroyed', 'this peer was destroyed; create a new Peer');
    if (typeof roomName !== 'string') throw invalid('room name must be a string');
    const mesh = options && typeof options === 'object' && options.mode === 'mesh';
    const parsed = mesh ? parseMeshOptions(options) : parseRoomOptions(options);
    if (mesh && !TOKEN.test(roomName)) throw invalid(`room name ${JSON.stringify(roomName)} is invalid (${TOKEN_RULE})`);
    if (this.rooms.has(roomName)) {
      throw new SwitchboardError('alreadyJoined', `this peer is already in room ${JSON.stringify(roomName)}; close that room first`);
    }
    const room = mesh ? new MeshRoom(this, roomName, parsed) : new SfuRoom(this, roomName, parsed);
    this.rooms.set(roomName, room);
    room._start();
    return room;
  }

  // ------------------------------------------------------------------------------ calls

  _checkUsable() {
    if (this.destroyed) throw new SwitchboardError('peerDestroyed', 'this peer was destroyed; create a new Peer');
  }

  _checkRemoteId(peerId) {
    if (typeof peerId !== 'string' || !TOKEN.test(peerId)) throw invalid(`peer id ${JSON.stringify(peerId)} is invalid (${TOKEN_RULE})`);
    if (peerId === this.id) throw invalid('a peer cannot call itself');
  }

  /**
   * Ring `peerId` (or several: an array makes a group call, `sfu` only) and send `stream`
   * (null: receive only) once one answers. Returns a MediaConnection at once; refusals
   * (offline callee, …) arrive as its `error` and `close`.
   */
  call(peerId, stream = null, options = undefined) {
    this._checkUsable();
    const calleeIds = Array.isArray(peerId) ? [...peerId] : [peerId];
    if (calleeIds.length === 0) throw invalid('call whom? give a peer id or a non-empty array of them');
    for (const id of calleeIds) this._checkRemoteId(id);
    if (new Set(calleeIds).size !== calleeIds.length) throw invalid('a callee is listed twice');
    if (stream !== null && stream !== undefined) checkStream(stream);
    const o = parseCallOptions(options, stream);
    if (calleeIds.length > 1 && o.media !== 'sfu') throw invalid("a group call needs media 'sfu' (p2p calls are 1:1)");
    const info = {
      callId: o.callId, callerId: this.id, calleeIds, media: o.media, callType: o.callType,
      state: 'initiating', metadata: o.metadata,
    };
    const call = new MediaConnection(this, info, { initiator: true, options: o, stream: stream ?? null });
    const message = { type: 'callInitiate', callId: o.callId, calleeIds, media: o.media, callType: o.callType };
    if (o.metadata !== undefined) message.metadata = o.metadata;
    if (o.conversationId !== undefined) message.conversationId = o.conversationId;
    this._initiate(call, message);
    return call;
  }

  /**
   * Open a data channel to `peerId` (a `data` call, accepted by the other SDK without ringing):
   * browser to browser, or relayed by the SFU with `{ media: 'sfu' }`.
   */
  connect(peerId, options = undefined) {
    this._checkUsable();
    this._checkRemoteId(peerId);
    const o = parseConnectOptions(options);
    const wire = { label: o.label, serialization: o.serialization };
    if (o.metadata !== undefined) wire.metadata = o.metadata;
    const info = { callId: o.callId, callerId: this.id, calleeIds: [peerId], media: o.media, callType: 'data', state: 'initiating', metadata: wire };
    const conn = new DataConnection(this, info, { initiator: true, options: o });
    this._initiate(conn, { type: 'callInitiate', callId: o.callId, calleeIds: [peerId], media: o.media, callType: 'data', metadata: wire });
    return conn;
  }

  _initiate(call, message) {
    this._remember(call);
    this._registered().then(() => {
      if (call.closed) return;
      this._presence._initiating.push(call);
      if (!this._presence.send(message)) {
        call._refused(new SwitchboardError('connectionLost', 'the peer connection is being resumed; call again'));
      }
    }, (err) => call._refused(err));
  }

  _remember(call) {
    this._calls.set(call.id, call);
    (this.connections[call.remoteId] ??= []).push(call);
  }

  _forgetCall(call) {
    if (this._calls.get(call.id) === call) this._calls.delete(call.id);
    const list = this.connections[call.remoteId];
    if (!list) return;
    const rest = list.filter((c) => c !== call);
    if (rest.length) this.connections[call.remoteId] = rest;
    else delete this.connections[call.remoteId];
  }

  _onCallMessage(callId, message) {
    const call = this._calls.get(callId);
    if (call) call._onMessage(message);
    else this._log('message for an unknown call', callId, message.type);
  }

  _onIncomingCall(info) {
    if (this._calls.has(info.callId)) return; // rung again after a take-over
    if (info.callType === 'data') {
      const conn = new DataConnection(this, info, { initiator: false });
      this._remember(conn);
      conn.answer();
      this._emit('connection', conn);
      return;
    }
    const call = new MediaConnection(this, info, { initiator: false });
    this._remember(call);
    if (info.state && info.state !== 'initiating') call.state = info.state;
    this._emit('call', call);
  }

  /**
   * After a resume: the calls the server still has us in. The others ended while we were away
   * (past the grace the server ends them `failed`, and the news went to the old connection).
   */
  _onCallsResumed(infos) {
    const live = new Map(infos.map((info) => [info.callId, info]));
    for (const call of [...this._calls.values()]) {
      const info = live.get(call.id);
      if (info) call._setState(info.state);
      else call._end('failed', true);
    }
  }

  _onMeshMessage(roomName, message) {
    const room = this.rooms.get(roomName);
    if (room?.mode === 'mesh') room._onMessage(message);
  }

  /** A refused mesh request names no room: a meshJoin refusal is the oldest unopened room's. */
  _onMeshError(err) {
    if (err.request !== 'meshJoin') return false;
    const room = [...this.rooms.values()].find((r) => r.mode === 'mesh' && !r.open && !r.closed);
    if (!room) return false;
    room._fail(err);
    return true;
  }

  /** Every peer id online under the same API key (this one included): `cb(ids)`, and a promise. */
  listAllPeers(cb) {
    this._checkUsable();
    if (cb !== undefined && typeof cb !== 'function') throw invalid('listAllPeers takes a callback (peerIds) => …');
    const result = this._registered().then(() => this._presence.listPeers());
    result.then((ids) => cb?.(ids), (err) => this._emit('error', err));
    return result;
  }

  /**
   * Register again after disconnect() or after the registration was lost for good (SkyWay's
   * reconnect): a fresh registration under the same id (calls and mesh rooms of the old one are
   * over; join mesh rooms again). Emits `open` again and resolves with the id; a refusal is an
   * `error` event and a rejection.
   */
  reconnect() {
    this._checkUsable();
    if (this.registered && this._presence?.up) return Promise.resolve(this.id);
    this._presence?.close();
    const presence = new Presence(this);
    this._presence = presence;
    const done = this._opening.then(() => presence.start()).then(() => {
      if (this._presence !== presence || this.destroyed) throw new SwitchboardError('peerDestroyed', 'the peer was destroyed or reconnected again');
      this.registered = true;
      this.disconnected = false;
      this._log('registered again', this.id);
      this._emit('open', this.id);
      return this.id;
    });
    done.catch((err) => {
      if (this._presence === presence && !this.destroyed) this._emit('error', err);
    });
    return done;
  }

  /** Go offline on the peer connection (calls end, mesh rooms close); SFU rooms stay. */
  disconnect() {
    if (this.destroyed || !this._presence) return;
    for (const call of [...this._calls.values()]) call.close();
    for (const room of [...this.rooms.values()]) if (room.mode === 'mesh') room.close();
    this._presence.close();
    this._presence = null;
    this.registered = false;
    this._lost();
  }

  /** Hang up every call, leave every room, go offline, close every connection, emit `close`. */
  destroy() {
    if (this.destroyed) return;
    for (const call of [...this._calls.values()]) call.close();
    this.destroyed = true;
    this.open = false;
    clearTimeout(this._expiryTimer);
    for (const room of [...this.rooms.values()]) room.close();
    this._presence?.close();
    this._presence = null;
    this.registered = false;
    this._spare?.close();
    this._spare = null;
    this._emit('close');
  }
}
