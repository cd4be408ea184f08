// Switchboard JavaScript SDK: SDP negotiation with the server, one step at a time. Installed on
// SfuRoom by room.js; docs/sdk.md ("How the SDK negotiates") and docs/protocol.md
// ("Renegotiation") give the rules.

import { SwitchboardError } from './core.js';

export const NegotiationMethods = {
  /**
   * The app's ICE servers and the server's (`joined`/`resumed` carry TURN servers with
   * credentials minted for this peer; absent when the server has none).
   */
  _iceServersFrom(message) {
    const fromServer = Array.isArray(message.iceServers) ? message.iceServers : [];
    return [...this.peer._iceServers, ...fromServer];
  },

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
  },

  _requestOffer() {
    this._offerWanted = true;
    this._enqueue(() => this._maybeOffer());
  },

  async _maybeOffer() {
    const pc = this.pc;
    // Without signalling the offer waits: the resume asks for it again.
    if (!this._offerWanted || pc.signalingState !== 'stable' || !this._sigUp) return;
    this._offerWanted = false;
    if (this._iceRestartWanted) {
      this._iceRestartWanted = false;
      pc.restartIce();
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const message = { type: 'offer', sdp: pc.localDescription.sdp };
    const tracks = this._publications();
    if (tracks.length > 0) message.tracks = tracks;
    this._send(message);
    if (!this._offerSent) {
      this._offerSent = true;
      for (const c of this._localCandidates) this._send(c);
      this._localCandidates = [];
    }
  },

  async _onAnswer(sdp) {
    const pc = this.pc;
    if (pc.signalingState !== 'have-local-offer') {
      this._log('answer without an outstanding offer; ignored');
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp });
    await this._afterNegotiation();
  },

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
  },

  async _afterNegotiation() {
    await this._flushRemoteCandidates();
    this._updateStreams();
    await this._applyBandwidth();
    if (this._offerWanted) await this._maybeOffer();
  },

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
  },

  _onRemoteCandidate(message) {
    const init = {
      candidate: message.candidate,
      sdpMid: message.sdpMid ?? null,
      sdpMLineIndex: message.sdpMLineIndex ?? (message.sdpMid == null ? 0 : null),
    };
    if (init.candidate.startsWith('a=')) init.candidate = init.candidate.slice(2);
    this._remoteCandidates.push(init);
    this._enqueue(() => this._flushRemoteCandidates());
  },

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
  },
};
