// Switchboard JavaScript SDK: MeshRoom, a room whose members connect to each other (one
// RTCPeerConnection per other member) while the server relays their signals and data messages
// over the peer connection (docs/protocol-peer.md "Mesh rooms"). Same events as SfuRoom's
// basics. Beyond 4–6 members with video use an SFU room: every member sends its media n−1 times.

import { Emitter, SwitchboardError, checkDisplayName, checkStream, invalid, TOKEN, TOKEN_RULE } from './core.js';
import { P2PLink, RemoteStreams } from './p2p.js';

const MESH_OPTIONS = new Set(['mode', 'stream', 'name']);

export function parseMeshOptions(options) {
  for (const key of Object.keys(options)) {
    if (!MESH_OPTIONS.has(key)) throw invalid(`unknown option ${JSON.stringify(key)} for a mesh room (known: ${[...MESH_OPTIONS].join(', ')})`);
  }
  const stream = options.stream ?? null;
  if (stream !== null) checkStream(stream);
  if (options.name !== undefined) checkDisplayName(options.name);
  return { stream, name: options.name };
}

/**
 * Membership of one mesh room. Events: `open`, `peerJoin` (peer id), `peerLeave` (peer id),
 * `stream` (MediaStream with `peerId`), `removeStream`, `track`, `data` { src, data },
 * `connectionState` { peerId, state }, `close`, `error` (SwitchboardError).
 */
export class MeshRoom extends Emitter {
  constructor(peer, name, options) {
    super();
    this.peer = peer;
    this.name = name;
    this.mode = 'mesh';
    this.localStream = options.stream;
    this.open = false;
    this.closed = false;
    /** Other members by peer id: { peerId, name }. */
    this.peers = new Map();
    this._options = options;
    /** peerId → { link, streams } */
    this._links = new Map();
  }

  get members() {
    return [...this.peers.keys()];
  }

  getPeerName(peerId) {
    return this.peers.get(peerId)?.name ?? null;
  }

  /** The stream received from `peerId`, if any. */
  getStream(peerId) {
    return this._links.get(peerId)?.streams.first ?? null;
  }

  get remoteStreams() {
    return [...this._links.values()].map((l) => l.streams.first).filter(Boolean);
  }

  /** The RTCPeerConnection to `peerId` (stats, debugging). */
  getPeerConnection(peerId) {
    return this._links.get(peerId)?.link.pc ?? null;
  }

  _log(...args) {
    this.peer._log(`[${this.peer.id}@${this.name} mesh]`, ...args);
  }

  _send(message) {
    return this.peer._presence?.send({ ...message, room: this.name }) ?? false;
  }

  async _start() {
    try {
      await this.peer._registered();
    } catch (err) {
      this._fail(err);
      return;
    }
    if (this.closed) return;
    const join = { type: 'meshJoin' };
    if (this._options.name !== undefined) join.name = this._options.name;
    if (!this._send(join)) this._fail(new SwitchboardError('connectionLost', 'the peer connection is not open'));
  }

  _onMessage(message) {
    if (this.closed) return;
    switch (message.type) {
      case 'meshJoined':
        for (const m of message.members) {
          this.peers.set(m.peerId, m);
          this._connect(m.peerId, true);
        }
        this.open = true;
        this._emit('open');
        for (const m of message.members) this._emit('peerJoin', m.peerId);
        break;
      case 'meshPeerJoined':
        this.peers.set(message.peer.peerId, message.peer);
        this._connect(message.peer.peerId, false);
        this._emit('peerJoin', message.peer.peerId);
        break;
      case 'meshPeerLeft':
        this._drop(message.peerId);
        if (this.peers.delete(message.peerId)) this._emit('peerLeave', message.peerId);
        break;
      case 'meshSignal': {
        let entry = this._links.get(message.from);
        // A member we have not heard of yet (its meshPeerJoined may still be on its way).
        if (!entry && message.signal?.type === 'offer') entry = this._connect(message.from, false);
        entry?.link.onSignal(message.signal);
        break;
      }
      case 'meshMessage':
        this._emit('data', { src: message.from, data: message.data });
        break;
      case 'meshLeft':
        this._teardown();
        break;
      default:
        break;
    }
  }

  /** A link to `peerId`; the newcomer (`offers`) makes the first offer. */
  _connect(peerId, offers) {
    this._drop(peerId);
    const streams = new RemoteStreams(peerId, (event, ...args) => {
      this._emit(event === 'removestream' ? 'removeStream' : event, ...args);
    });
    const link = new P2PLink({
      iceServers: [...this.peer._iceServers, ...(this.peer._presence?.iceServers ?? [])],
      iceTransportPolicy: this.peer._iceTransportPolicy,
      // The newcomer is impolite: the members wait for its offer anyway.
      polite: !offers,
      offersFirst: offers,
      dataChannel: false,
      send: (signal) => this._send({ type: 'meshSignal', to: peerId, signal }),
      onTrack: (track, s) => streams.onTrack(track, s),
      onState: (state) => this._emit('connectionState', { peerId, state }),
      onError: (err) => this._emit('error', err),
      log: (...args) => this._log(peerId, ...args),
    });
    for (const track of this.localStream?.getTracks() ?? []) link.addTrack(track, this.localStream);
    if (offers && !this.localStream) {
      // Receive-only newcomer: an offer needs m-lines to receive on.
      link.pc.addTransceiver('audio', { direction: 'recvonly' });
      link.pc.addTransceiver('video', { direction: 'recvonly' });
    }
    const entry = { link, streams };
    this._links.set(peerId, entry);
    return entry;
  }

  _drop(peerId) {
    const entry = this._links.get(peerId);
    if (!entry) return;
    this._links.delete(peerId);
    entry.link.close();
    entry.streams.clear();
  }

  /**
   * Send `data` (any JSON value) to every other member, or to one (`{ to: peerId }`); they get
   * a `data` event { src, data }. False when the room is not open.
   */
  send(data, options = {}) {
    if (data === undefined || typeof data === 'function' || typeof data === 'symbol') throw invalid('data must be a JSON value');
    const to = options?.to;
    if (to !== undefined && (typeof to !== 'string' || !TOKEN.test(to))) throw invalid(`to must be a peer id (${TOKEN_RULE})`);
    if (!this.open) return false;
    const message = { type: 'meshMessage', data };
    if (to !== undefined) message.to = to;
    return Boolean(this._send(message));
  }

  /** Send `stream` instead of the current one, to every member. */
  replaceStream(stream) {
    if (stream !== null) checkStream(stream);
    const old = this.localStream;
    this.localStream = stream;
    for (const { link } of this._links.values()) {
      for (const track of old?.getTracks() ?? []) {
        if (!stream?.getTracks().some((t) => t.kind === track.kind)) link.removeTrack(track);
      }
      for (const track of stream?.getTracks() ?? []) {
        const sender = link.pc.getSenders().find((s) => s.track && s.track.kind === track.kind);
        if (sender) sender.replaceTrack(track);
        else link.addTrack(track, stream);
      }
    }
    return Promise.resolve();
  }

  /** Leave the room: `meshLeave`, every link closed, `close`. */
  close() {
    if (this.closed) return;
    this._send({ type: 'meshLeave' });
    this._teardown();
  }

  _fail(err) {
    if (this.closed) return;
    this._emit('error', err);
    this._teardown();
  }

  _teardown() {
    if (this.closed) return;
    this.closed = true;
    this.open = false;
    for (const peerId of [...this._links.keys()]) this._drop(peerId);
    if (this.peer.rooms.get(this.name) === this) this.peer.rooms.delete(this.name);
    this._emit('close');
  }
}
