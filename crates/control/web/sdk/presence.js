// Switchboard JavaScript SDK: the peer connection (`/v1/peer`, docs/protocol-peer.md). It keeps
// the peer registered (reachable for calls) while it is in no room, answers listAllPeers, and
// routes the messages of calls (calls.js) and mesh rooms (mesh.js). A dropped connection is
// resumed with the registration's resume token, a bounded number of times.

import { Channel, SwitchboardError } from './core.js';

/** Reconnect attempts after the peer connection dropped, and the first delay (doubled each time). */
const RECONNECT_ATTEMPTS = 6;
const RECONNECT_FIRST_DELAY_MS = 250;
const REGISTER_TIMEOUT_MS = 10000;
/** Call and mesh messages kept while the connection is being resumed (bounded). */
const MAX_OUTBOX = 500;
const KEPT_WHILE_DOWN = new Set([
  'callRespond', 'callHangup', 'callSignal', 'callTransport', 'callMediaToggle', 'meshSignal',
  'meshMessage', 'meshLeave', 'updateCredential',
]);

/** The `/v1/peer` URL next to a `/v1/ws` URL. */
export function presenceUrl(wsUrl) {
  const url = new URL(wsUrl);
  url.pathname = url.pathname.endsWith('/v1/ws') ? url.pathname.replace(/\/v1\/ws$/, '/v1/peer') : '/v1/peer';
  return url.toString();
}

export class Presence {
  constructor(peer) {
    this.peer = peer;
    this.url = presenceUrl(peer.url);
    /** True while registered (messages flow). */
    this.up = false;
    this.closed = false;
    /** The server's ICE servers from the last `registered`. */
    this.iceServers = [];
    this._channel = null;
    this._resumeToken = null;
    this._outbox = [];
    this._peerListWaiters = [];
    /** Calls whose callInitiate has no `callCreated` yet, in order (errors name no call id). */
    this._initiating = [];
    this._attempt = 0;
    this._reconnectTimer = null;
  }

  /** Connect and register. Resolves with `registered`; rejects with a SwitchboardError. */
  async start() {
    const channel = new Channel(this.url, this.peer._connectTimeout);
    await channel.ready;
    if (this.closed) {
      channel.close();
      throw new SwitchboardError('peerDestroyed', 'the peer was destroyed');
    }
    return this._register(channel);
  }

  _register(channel) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        channel.close();
        reject(new SwitchboardError('timeout', `the server did not answer register within ${REGISTER_TIMEOUT_MS} ms`));
      }, REGISTER_TIMEOUT_MS);
      channel.onmessage = (message) => {
        this.peer._log('← (peer)', JSON.stringify(message));
        if (message.type === 'registered') {
          clearTimeout(timer);
          this._onRegistered(channel, message);
          resolve(message);
        } else if (message.type === 'error') {
          clearTimeout(timer);
          channel.close();
          reject(new SwitchboardError(message.code ?? 'internal', `server: ${message.message}`, { request: message.request }));
        }
      };
      channel.onclose = () => {
        clearTimeout(timer);
        reject(new SwitchboardError('connectionLost', 'the peer connection closed during register'));
      };
      const register = { type: 'register', peerId: this.peer.id };
      if (this.peer.credential !== undefined) register.credential = this.peer.credential;
      if (this._resumeToken) register.resumeToken = this._resumeToken;
      this.peer._log('→ (peer)', JSON.stringify({ ...register, credential: register.credential ? '…' : undefined }));
      channel.send(register);
    });
  }

  _onRegistered(channel, message) {
    const resumed = this._resumeToken !== null;
    this._channel = channel;
    this._resumeToken = message.resumeToken ?? null;
    this.iceServers = Array.isArray(message.iceServers) ? message.iceServers : [];
    if (message.peerId && message.peerId !== this.peer.id) this.peer.id = message.peerId;
    this.up = true;
    this._attempt = 0;
    channel.onmessage = (m) => {
      if (this._channel !== channel) return;
      this.peer._log('← (peer)', JSON.stringify(m));
      this._onMessage(m);
    };
    channel.onclose = () => {
      if (this._channel !== channel) return;
      this._channel = null;
      this.up = false;
      if (!this.closed) this._reconnect();
    };
    const pending = this._outbox;
    this._outbox = [];
    for (const m of pending) this.send(m);
    if (resumed) this.peer._onCallsResumed(message.calls ?? []);
  }

  _reconnect() {
    if (this.closed) return;
    if (this._attempt >= RECONNECT_ATTEMPTS || !this._resumeToken) {
      this._giveUp(new SwitchboardError('connectionLost', `the peer connection dropped and ${this._attempt} reconnect attempts failed`));
      return;
    }
    const delay = RECONNECT_FIRST_DELAY_MS * 2 ** this._attempt;
    this._attempt += 1;
    this.peer._lost();
    this._reconnectTimer = setTimeout(async () => {
      try {
        await this.start();
        this.peer._log('peer connection resumed');
        this.peer._reconnected();
      } catch (err) {
        if (this.closed) return;
        if (['peerIdTaken', 'invalidResumeToken', 'credentialInvalid', 'credentialExpired'].includes(err.type)) {
          this._giveUp(err);
          return;
        }
        this._reconnect();
      }
    }, delay);
  }

  _giveUp(err) {
    this.up = false;
    this._resumeToken = null;
    this.peer._presenceLost(err);
  }

  /** Send a message; while resuming, call and mesh messages wait (bounded), others are dropped. */
  send(message) {
    if (this.up && this._channel) {
      this.peer._log('→ (peer)', JSON.stringify(message));
      return this._channel.send(message);
    }
    if (!this.closed && KEPT_WHILE_DOWN.has(message.type)) {
      if (this._outbox.length >= MAX_OUTBOX) this._outbox.shift();
      this._outbox.push(message);
      return true;
    }
    return false;
  }

  listPeers() {
    return new Promise((resolve, reject) => {
      if (!this.send({ type: 'listPeers' })) {
        reject(new SwitchboardError('connectionLost', 'the peer connection is not open'));
        return;
      }
      this._peerListWaiters.push({ resolve, reject });
    });
  }

  _onMessage(message) {
    switch (message.type) {
      case 'peers':
        this._peerListWaiters.shift()?.resolve(message.peerIds);
        break;
      case 'callCreated': {
        const i = this._initiating.findIndex((c) => c.id === message.call?.callId);
        if (i >= 0) this._initiating.splice(i, 1);
        this.peer._onCallMessage(message.call.callId, message);
        break;
      }
      case 'callIncoming':
        this.peer._onIncomingCall(message.call);
        break;
      case 'callStateChanged':
      case 'callParticipantJoined':
      case 'callParticipantLeft':
      case 'callMediaChanged':
      case 'callSignal':
        this.peer._onCallMessage(message.callId, message);
        break;
      case 'meshJoined':
      case 'meshLeft':
      case 'meshPeerJoined':
      case 'meshPeerLeft':
      case 'meshSignal':
      case 'meshMessage':
        this.peer._onMeshMessage(message.room, message);
        break;
      case 'credentialUpdated':
      case 'pong':
        break;
      case 'draining':
        this.peer._emit('draining', message.deadlineMs);
        break;
      case 'left':
        this.up = false;
        this._resumeToken = null;
        this._channel?.close();
        this._channel = null;
        if (!this.closed) this.peer._presenceLost(new SwitchboardError('removed', `the server ended the registration: ${message.reason}`, { reason: message.reason }));
        break;
      case 'error':
        this._onError(message);
        break;
      default:
        this.peer._log('ignoring unknown peer-connection message', message.type);
    }
  }

  _onError(message) {
    const err = new SwitchboardError(message.code ?? 'internal', `server: ${message.message}`, { request: message.request });
    if (message.request === 'listPeers') {
      this._peerListWaiters.shift()?.reject(err);
      return;
    }
    if (message.request === 'callInitiate') {
      const call = this._initiating.shift();
      if (call) {
        call._refused(err);
        return;
      }
    }
    if (message.request === 'meshJoin' || message.request === 'meshSignal' || message.request === 'meshMessage') {
      if (this.peer._onMeshError(err)) return;
    }
    this.peer._emit('error', err);
  }

  /** Go offline: `leave`, then close. */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this._reconnectTimer);
    for (const w of this._peerListWaiters) w.reject(new SwitchboardError('peerDestroyed', 'the peer was destroyed'));
    this._peerListWaiters = [];
    const channel = this._channel;
    this._channel = null;
    this.up = false;
    if (channel?.isOpen) {
      channel.send({ type: 'leave' });
      setTimeout(() => channel.close(), 2000);
    } else {
      channel?.close();
    }
  }
}
