// Switchboard JavaScript SDK: staying connected. The room's state (setup, connected,
// reconnecting, closed), the keepalive that notices a dead WebSocket, the resume of the session
// on a new WebSocket (same peer id, tracks, subscriptions; nobody renegotiates), and ICE
// restarts when the media path fails or the address changes. Installed on SfuRoom by room.js;
// docs/sdk.md has the event sequence.

import { Channel, SwitchboardError, peerInfo } from './core.js';

/** One resume attempt may wait this long for the WebSocket to open... */
const ATTEMPT_TIMEOUT_MS = 3000;
/** ...and this long for the server's answer to `resume`. */
const RESUME_ANSWER_TIMEOUT_MS = 5000;
/** Backoff between attempts: doubles from the first delay up to the last. */
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 1000;
/** ICE `disconnected` for this long (it often recovers by itself) starts an ICE restart. */
const ICE_DISCONNECTED_GRACE_MS = 1500;
/** How often the transport's received bytes are sampled. */
const MEDIA_WATCH_EVERY_MS = 1000;
/** Media quiet this long when a resume succeeds: restart ICE at once. */
const RESUME_QUIET_MS = 1500;
/** A restart that has not brought media back after this long is tried again, doubling up to the max. */
const ICE_RESTART_RETRY_MS = 4000;
const ICE_RESTART_RETRY_MAX_MS = 16000;
/** Codes after which a resume cannot succeed by trying again. */
const FINAL_RESUME_CODES = new Set([
  'resumeFailed', 'credentialInvalid', 'credentialExpired', 'credentialFuture', 'credentialRequired',
]);

function sameTrack(a, b) {
  return a.kind === b.kind && a.source === b.source && a.description === b.description
    && a.live === b.live && a.muted === b.muted;
}

export const ResumeMethods = {
  /** Work out the state from signalling and media; emit `state` when it changes. */
  _updateState(cause) {
    let next;
    if (this.closed) {
      next = 'closed';
    } else if (!this.open) {
      next = 'setup';
    } else if (this._sigUp && this._mediaUp()) {
      next = 'connected';
      this._everConnected = true;
    } else {
      next = this._everConnected ? 'reconnecting' : 'setup';
    }
    if (next === this.state) return;
    const previous = this.state;
    this.state = next;
    this._log('state', previous, '→', next, cause);
    this._emit('state', next, { previous, cause });
  },

  /**
   * The media connection counts as up while `connected`, and through an ICE `disconnected` blip
   * shorter than ICE_DISCONNECTED_GRACE_MS (an ICE restart's old paths end with one), unless
   * nothing arrives on it.
   */
  _mediaUp() {
    const state = this.pc?.connectionState;
    // (connectionstatechange may come before iceconnectionstatechange starts the clock.)
    const since = this._iceDisconnectedAt;
    const blip = state === 'disconnected' && (since === null
      ? this.pc.iceConnectionState === 'disconnected'
      : Date.now() - since < ICE_DISCONNECTED_GRACE_MS);
    return (state === 'connected' || blip) && !this._mediaStalled;
  },

  _startKeepalive() {
    const { interval, timeout } = this._options.keepalive;
    clearInterval(this._pingTimer);
    this._pingTimer = setInterval(() => {
      if (this.closed || !this._sigUp) return;
      const silent = Date.now() - this._lastHeard;
      if (silent > timeout) {
        this._signallingLost(`went silent (nothing for ${silent} ms)`);
        return;
      }
      this._send({ type: 'ping' });
    }, interval);
  },

  _stopTimers() {
    clearInterval(this._pingTimer);
    this._pingTimer = null;
    clearInterval(this._mediaTimer);
    this._mediaTimer = null;
    clearTimeout(this._blipTimer);
    const r = this._reconnect;
    if (r) {
      clearTimeout(r.timer);
      clearTimeout(r.answerTimer);
      r.channel?.close();
    }
    this._reconnect = null;
  },

  /** The WebSocket closed or went silent: resume on a new one, or end. */
  _signallingLost(why) {
    if (this.closed) return;
    this._sigUp = false;
    const old = this._channel;
    this._channel = null;
    old?.close();
    const timeout = this._options.reconnectTimeout;
    if (!this.open || !this._resumeToken || timeout === 0) {
      const what = this.open && !this._resumeToken ? ' (the server keeps no session to resume)' : '';
      this._fail(new SwitchboardError('connectionLost', `the signalling connection to ${this.peer.url} ${why}${what}`));
      return;
    }
    if (this._reconnect) return;
    const now = Date.now();
    this._reconnect = { since: now, deadline: now + timeout, attempt: 0, timer: null, answerTimer: null, channel: null, why };
    this._log('signalling lost:', why, '; resuming');
    this._updateState(`signalling ${why}`);
    this._attemptResume();
  },

  async _attemptResume() {
    const r = this._reconnect;
    if (!r || this.closed || this._reconnect !== r) return;
    if (Date.now() >= r.deadline) {
      this._resumeGaveUp(r);
      return;
    }
    r.attempt += 1;
    const channel = new Channel(this.peer.url, Math.min(ATTEMPT_TIMEOUT_MS, Math.max(200, r.deadline - Date.now())));
    r.channel = channel;
    try {
      await channel.ready;
    } catch (err) {
      if (this._reconnect !== r || this.closed) return;
      r.channel = null;
      r.lastError = err.message;
      this._retryResume(r);
      return;
    }
    if (this._reconnect !== r || this.closed) {
      channel.close();
      return;
    }
    this._attach(channel, () => {
      if (this._reconnect === r) {
        r.lastError = 'the new connection closed before the resume';
        this._retryResume(r);
      } else {
        this._signallingLost('closed unexpectedly');
      }
    });
    const resume = { type: 'resume', token: this._resumeToken };
    if (this.peer.credential !== undefined) resume.credential = this.peer.credential;
    this._sendNow(channel, resume);
    r.answerTimer = setTimeout(() => {
      if (this._reconnect !== r || this._channel !== channel) return;
      this._channel = null;
      channel.close();
      r.lastError = `no answer to resume within ${RESUME_ANSWER_TIMEOUT_MS} ms`;
      this._retryResume(r);
    }, RESUME_ANSWER_TIMEOUT_MS);
  },

  _retryResume(r) {
    clearTimeout(r.answerTimer);
    r.channel = null;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, r.attempt - 1));
    if (Date.now() + delay >= r.deadline) {
      this._resumeGaveUp(r);
      return;
    }
    r.timer = setTimeout(() => this._attemptResume(), delay);
  },

  _resumeGaveUp(r) {
    this._reconnect = null;
    const ms = this._options.reconnectTimeout;
    this._fail(new SwitchboardError(
      'connectionLost',
      `the signalling connection to ${this.peer.url} ${r.why}, and ${r.attempt} attempts to resume within ${ms} ms failed (last: ${r.lastError ?? 'none'})`,
    ));
  },

  /** The server refused `resume`: final (the session is gone), or worth another attempt. */
  _onResumeRefused(err) {
    const r = this._reconnect;
    if (!r) return;
    clearTimeout(r.answerTimer);
    if (FINAL_RESUME_CODES.has(err.type)) {
      this._reconnect = null;
      this._fail(err);
      return;
    }
    const channel = this._channel;
    this._channel = null;
    channel?.close();
    r.lastError = err.message;
    this._retryResume(r);
  },

  /** `resumed`: the session is ours again. Catch up with the room, then negotiate what is due. */
  _onResumed(message) {
    const r = this._reconnect;
    if (r) {
      clearTimeout(r.answerTimer);
      clearTimeout(r.timer);
    }
    this._reconnect = null;
    this._resumeToken = message.resumeToken;
    this._sigUp = true;
    this.resumes += 1;
    if (Array.isArray(message.iceServers)) {
      // Fresh TURN credentials (the old ones may have run out): used from the next ICE
      // gathering on, an ICE restart included.
      try {
        this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: this._iceServersFrom(message) });
      } catch (err) {
        this._log('could not take the fresh ICE servers:', err.message);
      }
    }
    this._catchUp(message);
    // The signalling died and media is quiet too: most likely the path changed (another
    // network, another address). Restart ICE now rather than after mediaTimeout.
    const quietMs = Date.now() - this._lastRx.at;
    const ice = this.pc.iceConnectionState;
    if (this._everConnected && (quietMs >= RESUME_QUIET_MS || ice === 'disconnected' || ice === 'failed')) {
      this._nextIceRestartAt = Date.now() + (this._iceRestartDelay || ICE_RESTART_RETRY_MS);
      this._noteIceRestart(`nothing received for ${quietMs} ms when the signalling came back (ICE ${ice})`);
    }
    this._enqueue(async () => {
      // Our offer (or its answer) may have been lost with the old connection: offer again.
      if (this.pc.signalingState === 'have-local-offer') {
        await this.pc.setLocalDescription({ type: 'rollback' });
        this._offerWanted = true;
      }
      if (this._iceRestartWanted) this._offerWanted = true;
      await this._maybeOffer();
    });
    this._flushOutbox();
    this._emit('resumed', { downtimeMs: r ? Date.now() - r.since : 0, attempts: r?.attempt ?? 0 });
    this._updateState('resumed');
  },

  /** Apply the room as `resumed` describes it: who left, joined or changed tracks meanwhile. */
  _catchUp(message) {
    const now = new Map(message.members.map((m) => [m.peerId, peerInfo(m)]));
    for (const peerId of [...this.peers.keys()]) if (!now.has(peerId)) this._onPeerLeft(peerId);
    for (const [peerId, info] of now) {
      const before = this.peers.get(peerId);
      this.peers.set(peerId, info);
      this._names.set(peerId, info.name);
      if (!before) this._emit('peerJoin', peerId);
      for (const t of before?.tracks ?? []) {
        if (!info.tracks.some((x) => x.trackId === t.trackId)) {
          this._settleSubscription(t.trackId, new SwitchboardError('unknownTrack', `track ${t.trackId} was removed before it arrived`));
          this._emit('trackRemoved', { peerId, trackId: t.trackId });
        }
      }
      for (const t of info.tracks) {
        const old = before?.tracks.find((x) => x.trackId === t.trackId);
        if (!old || !sameTrack(old, t)) this._emit('trackDefined', { peerId, ...t });
      }
      const a = before?.mediaState;
      const b = info.mediaState;
      if (!a || a.audio !== b.audio || a.video !== b.video || a.screenShare !== b.screenShare) {
        this._emit('mediaState', { peerId, state: { ...b } });
      }
    }
    this._slots = new Map(message.slots.map((s) => [s.mid, {
      peerId: s.peerId, trackId: s.track.trackId, kind: s.track.kind, streamId: s.streamId,
    }]));
    this._updateStreams();
  },

  /** Leaving while resuming: take the session back on a connection of its own just to leave. */
  _farewell() {
    const channel = new Channel(this.peer.url, ATTEMPT_TIMEOUT_MS);
    const token = this._resumeToken;
    channel.ready.then(() => {
      channel.onmessage = (m) => {
        if (m.type === 'left' || (m.type === 'error' && m.request === 'resume')) channel.close();
      };
      this._sendNow(channel, { type: 'resume', token });
      this._sendNow(channel, { type: 'leave' });
      setTimeout(() => channel.close(), ATTEMPT_TIMEOUT_MS);
    }, () => {});
  },

  // ------------------------------------------------------------------------- ICE restarts
  //
  // The media path counts as lost when ICE says `failed`, says `disconnected` for a while, or
  // nothing at all arrives on the transport for `mediaTimeout` (browsers notice a dead path only
  // after many unanswered checks; the server's RTCP and STUN answers arrive every few seconds
  // at the least). Then the SDK restarts ICE, and again with backoff until media flows.

  _onIceState() {
    const s = this.pc.iceConnectionState;
    this._log('ICE', s);
    if (s === 'disconnected') {
      if (this._iceDisconnectedAt === null) {
        this._iceDisconnectedAt = Date.now();
        clearTimeout(this._blipTimer);
        this._blipTimer = setTimeout(() => {
          if (!this.closed) this._updateState(`ICE disconnected for ${ICE_DISCONNECTED_GRACE_MS} ms`);
        }, ICE_DISCONNECTED_GRACE_MS);
      }
    } else {
      this._iceDisconnectedAt = null;
    }
    if (s === 'failed') this._checkMedia();
    this._updateState(`ICE ${s}`);
  },

  _startMediaWatch() {
    clearInterval(this._mediaTimer);
    this._lastRx = { bytes: -1, at: Date.now() };
    this._mediaTimer = setInterval(() => this._sampleTransport(), MEDIA_WATCH_EVERY_MS);
  },

  async _sampleTransport() {
    if (this.closed || !this.pc) return;
    let bytes = 0;
    try {
      const report = await this.pc.getStats();
      report.forEach((s) => {
        if (s.type === 'transport') bytes += s.bytesReceived ?? 0;
      });
    } catch {
      return;
    }
    if (bytes !== this._lastRx.bytes) this._lastRx = { bytes, at: Date.now() };
    this._checkMedia();
  },

  _checkMedia() {
    if (this.closed || !this.pc || !this._everConnected) return;
    const now = Date.now();
    const ice = this.pc.iceConnectionState;
    const silentMs = now - this._lastRx.at;
    const lost = ice === 'failed'
      || (ice === 'disconnected' && now - (this._iceDisconnectedAt ?? now) >= ICE_DISCONNECTED_GRACE_MS)
      || silentMs >= this._options.mediaTimeout;
    const stalled = silentMs >= this._options.mediaTimeout;
    if (stalled !== this._mediaStalled) {
      this._mediaStalled = stalled;
      this._updateState(stalled ? `no media for ${silentMs} ms` : 'media flows again');
    }
    if (!lost) {
      this._iceRestartDelay = ICE_RESTART_RETRY_MS;
      this._nextIceRestartAt = 0;
      return;
    }
    if (now < (this._nextIceRestartAt ?? 0)) return;
    const delay = this._iceRestartDelay || ICE_RESTART_RETRY_MS;
    this._nextIceRestartAt = now + delay;
    this._iceRestartDelay = Math.min(ICE_RESTART_RETRY_MAX_MS, delay * 2);
    this._restartIce(stalled ? `nothing received for ${silentMs} ms` : `ICE ${ice}`);
  },

  /** New ICE credentials in a new offer: new paths (another address, another network) are found. */
  _restartIce(why) {
    this._noteIceRestart(why);
    this._requestOffer();
  },

  /** The next offer restarts ICE (pc.restartIce() right before it is made). */
  _noteIceRestart(why) {
    this.iceRestarts += 1;
    this._log('ICE restart', this.iceRestarts, why);
    this._emit('iceRestart', { attempt: this.iceRestarts, iceState: this.pc.iceConnectionState, reason: why });
    this._iceRestartWanted = true;
  },
};
