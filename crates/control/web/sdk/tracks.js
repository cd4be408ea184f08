// Switchboard JavaScript SDK: tracks. Publishing described tracks (several per member, camera and
// screen share at once), defining them before media flows, subscribing to other members' tracks,
// muting your own, and what the server tells about everybody's tracks. Installed on SfuRoom by
// room.js; see docs/sdk.md.

import {
  NO_MEDIA, SwitchboardError, TOKEN, TOKEN_RULE, TRACK_SOURCES, defaultSource, invalid,
  mediaStateOf, trackInfo,
} from './core.js';

/** Longest track description the server accepts, in characters. */
const MAX_TRACK_DESCRIPTION = 256;
const PUBLISH_OPTIONS = new Set(['name', 'source', 'description', 'stream']);

function fits(source, kind) {
  if (source === 'camera' || source === 'screen') return kind === 'video';
  if (source === 'microphone' || source === 'screenAudio') return kind === 'audio';
  return true;
}

function checkDescription(description) {
  if (description === undefined || description === null) return null;
  if (typeof description !== 'string') throw invalid('description must be a string');
  if ([...description].length > MAX_TRACK_DESCRIPTION) {
    throw invalid(`description must be at most ${MAX_TRACK_DESCRIPTION} characters`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(description)) throw invalid('description must not contain control characters');
  return description;
}

function checkSource(source, kind) {
  if (!TRACK_SOURCES.includes(source)) {
    throw invalid(`source ${JSON.stringify(source)} is not one of ${TRACK_SOURCES.join(', ')}`);
  }
  if (!fits(source, kind)) throw invalid(`a ${source} track cannot carry ${kind}`);
  return source;
}

/** The source a captured track says it has: a getDisplayMedia track is a screen share. */
function sourceOf(track) {
  const surface = track.getSettings?.().displaySurface;
  if (surface) return track.kind === 'video' ? 'screen' : 'screenAudio';
  return defaultSource(track.kind);
}

/** A filter argument of getPeerTrackDefinitions: absent, one value, a list, or a predicate. */
function matcher(filter, what) {
  if (filter === undefined || filter === null) return () => true;
  if (typeof filter === 'function') return filter;
  if (typeof filter === 'string') return (v) => v === filter;
  if (Array.isArray(filter)) return (v) => filter.includes(v);
  throw invalid(`${what} filter must be a string, an array of strings or a function`);
}

export const TrackMethods = {
  /** A new own track (not sent yet), validated and named. */
  _newLocal(track, options = {}) {
    const kind = track?.kind ?? options.kind;
    if (kind !== 'audio' && kind !== 'video') throw invalid('a track is audio or video');
    const source = checkSource(options.source ?? (track ? sourceOf(track) : defaultSource(kind)), kind);
    const description = checkDescription(options.description);
    let name = options.name;
    if (name !== undefined) {
      if (typeof name !== 'string' || !TOKEN.test(name)) throw invalid(`track name ${JSON.stringify(name)} is invalid (${TOKEN_RULE})`);
      if (this._local.has(`${this.peer.id}:${name}`)) throw invalid(`you already have a track named ${JSON.stringify(name)}`);
    } else {
      name = source;
      for (let n = 2; this._local.has(`${this.peer.id}:${name}`) && n < 1000; n += 1) name = `${source}-${n}`;
    }
    const entry = {
      trackId: `${this.peer.id}:${name}`,
      name,
      kind,
      source,
      description,
      track: track ?? null,
      stream: track ? (options.stream ?? new MediaStream([track])) : null,
      transceiver: null,
      muted: false,
    };
    this._local.set(entry.trackId, entry);
    return entry;
  },

  _localInfo(entry) {
    return {
      trackId: entry.trackId,
      name: entry.name,
      kind: entry.kind,
      source: entry.source,
      description: entry.description,
      live: Boolean(entry.track && entry.transceiver),
      muted: entry.muted,
      track: entry.track,
    };
  },

  /** This member's own tracks: published ones and ones only defined. */
  getLocalTracks() {
    return [...this._local.values()].map((e) => this._localInfo(e));
  },

  _findLocal(trackOrId) {
    for (const entry of this._local.values()) {
      if (entry.track === trackOrId || entry.trackId === trackOrId || entry.name === trackOrId) return entry;
    }
    return null;
  },

  /** What the offer's sending m-lines publish (offer.tracks). */
  _publications() {
    const out = [];
    for (const entry of this._local.values()) {
      const mid = entry.transceiver?.mid;
      if (!entry.track || mid === null || mid === undefined) continue;
      const publication = { mid, name: entry.name, source: entry.source };
      if (entry.description !== null) publication.description = entry.description;
      out.push(publication);
    }
    return out;
  },

  /**
   * Send `track` to the room as a track of its own, described: options { name, source,
   * description, stream }. The source defaults to `screen` for a getDisplayMedia track, else
   * `camera`/`microphone`; the name (the second half of the track id) to the source. A name given
   * to defineTrack earlier makes that definition live. Resolves with the track's info once
   * negotiated.
   */
  publishTrack(track, options = {}) {
    if (this.closed) throw new SwitchboardError('roomClosed', 'the room is closed');
    if (typeof track?.kind !== 'string' || typeof track.getSettings !== 'function') {
      throw invalid('publishTrack needs a MediaStreamTrack');
    }
    if (typeof options !== 'object' || options === null) throw invalid('publishTrack options must be an object');
    for (const key of Object.keys(options)) {
      if (!PUBLISH_OPTIONS.has(key)) throw invalid(`unknown publishTrack option ${JSON.stringify(key)} (known: ${[...PUBLISH_OPTIONS].join(', ')})`);
    }
    if (this._findLocal(track)?.track === track) throw invalid('this track is published already');
    let entry = options.name === undefined ? null : this._local.get(`${this.peer.id}:${options.name}`);
    if (entry && entry.track) throw invalid(`you already publish a track named ${JSON.stringify(options.name)}`);
    if (entry) {
      // A defined track goes live.
      if (entry.kind !== track.kind) throw invalid(`track ${entry.trackId} was defined as ${entry.kind}`);
      if (options.source !== undefined) entry.source = checkSource(options.source, entry.kind);
      if (options.description !== undefined) entry.description = checkDescription(options.description);
      entry.track = track;
      entry.stream = options.stream ?? new MediaStream([track]);
    } else {
      entry = this._newLocal(track, options);
    }
    if (!this.pc) return Promise.resolve(this._localInfo(entry));
    return this._enqueue(async () => {
      await this._attachSender(entry);
      this._offerWanted = true;
      await this._maybeOffer();
    }).then(() => this._localInfo(entry));
  },

  /** Stop sending one of your tracks (the MediaStreamTrack, or its track id) and remove it from the room. */
  unpublishTrack(trackOrId) {
    if (this.closed) throw new SwitchboardError('roomClosed', 'the room is closed');
    const entry = this._findLocal(trackOrId);
    if (!entry) throw invalid('no such track of yours (pass the MediaStreamTrack or its track id)');
    this._local.delete(entry.trackId);
    for (const kind of ['audio', 'video']) if (this._streamTracks[kind] === entry.trackId) this._streamTracks[kind] = null;
    if (this.open) this._send({ type: 'removeTrack', trackId: entry.trackId });
    if (!this.pc || !entry.transceiver) return Promise.resolve();
    return this._enqueue(async () => {
      await this._releaseSender(entry);
      this._offerWanted = true;
      await this._maybeOffer();
    });
  },

  /** The m-line stops sending; the transceiver serves the next publishTrack of its kind. */
  async _releaseSender(entry) {
    const transceiver = entry.transceiver;
    entry.transceiver = null;
    if (!transceiver) return;
    this._local.delete(entry.trackId);
    await transceiver.sender.replaceTrack(null);
    transceiver.direction = 'inactive';
    this._free[entry.kind].push(transceiver);
  },

  /**
   * Make a track discoverable before any media flows (rtc-cafe's addTrack(track, description)):
   * { name, kind, source, description }. The others get `trackDefined` with `live: false`;
   * publishTrack(track, { name }) later makes it live. Returns the track id.
   */
  defineTrack(options = {}) {
    if (this.closed) throw new SwitchboardError('roomClosed', 'the room is closed');
    if (typeof options !== 'object' || options === null) throw invalid('defineTrack needs { name, kind, source, description }');
    const entry = this._newLocal(null, options);
    const message = { type: 'defineTrack', name: entry.name, kind: entry.kind, source: entry.source };
    if (entry.description !== null) message.description = entry.description;
    this._send(message);
    return entry.trackId;
  },

  /** A full track id from (peerId, trackId or the track's name). */
  _trackIdOf(peerId, trackId) {
    if (typeof peerId !== 'string' || !TOKEN.test(peerId)) throw invalid(`peer id ${JSON.stringify(peerId)} is invalid (${TOKEN_RULE})`);
    if (typeof trackId !== 'string' || trackId === '') throw invalid('trackId must be a track id or a track name');
    const id = trackId.includes(':') ? trackId : `${peerId}:${trackId}`;
    if (!id.startsWith(`${peerId}:`)) throw invalid(`track ${JSON.stringify(trackId)} is not ${peerId}'s`);
    return id;
  },

  /**
   * Receive a track of another member (rtc-cafe's requestPeerTrack). Resolves with the
   * MediaStreamTrack when it arrives (it also comes as a `remoteTrack` event), with null when
   * unsubscribe() came first; rejects with `unknownTrack` when the track does not exist or is
   * removed before it arrives, `roomClosed` when the room closes.
   */
  subscribe(peerId, trackId) {
    const id = this._trackIdOf(peerId, trackId);
    if (this.closed) return Promise.reject(new SwitchboardError('roomClosed', 'the room is closed'));
    const arriving = this.getRemoteTrack(peerId, id);
    const waiting = arriving
      ? Promise.resolve(arriving)
      : new Promise((resolve, reject) => {
        if (!this._pendingSubs.has(id)) this._pendingSubs.set(id, []);
        this._pendingSubs.get(id).push({ resolve, reject });
      });
    waiting.catch(() => {});
    this._send({ type: 'subscribe', trackId: id });
    return waiting;
  },

  /** Stop receiving a member's track (rtc-cafe's removePeerTrack). */
  unsubscribe(peerId, trackId) {
    const id = this._trackIdOf(peerId, trackId);
    for (const waiter of this._pendingSubs.get(id) ?? []) waiter.resolve(null);
    this._pendingSubs.delete(id);
    this._send({ type: 'unsubscribe', trackId: id });
  },

  _settleSubscription(trackId, outcome) {
    const waiters = this._pendingSubs.get(trackId);
    if (!waiters) return;
    this._pendingSubs.delete(trackId);
    for (const w of waiters) {
      if (outcome instanceof Error) w.reject(outcome);
      else w.resolve(outcome);
    }
  },

  /** The server's unknownTrack for a subscribe: its text names the track. */
  _subscriptionRefused(text, err) {
    for (const trackId of [...this._pendingSubs.keys()]) {
      if (text.includes(`"${trackId}"`)) this._settleSubscription(trackId, err);
    }
  },

  _dropPendingSubscriptions(err) {
    for (const trackId of [...this._pendingSubs.keys()]) this._settleSubscription(trackId, err);
  },

  /**
   * The members' tracks, as rtc-cafe's getPeerTrackDefinitions: { [peerId]: { [trackId]: { id,
   * trackId, name, kind, source, description, live, muted } } }. Each filter is a value, a list
   * of values or a predicate, on peer ids and on track ids (or names).
   */
  getPeerTrackDefinitions(peerFilter, idFilter) {
    const peerOk = matcher(peerFilter, 'peer');
    const idOk = matcher(idFilter, 'track id');
    const result = {};
    for (const [peerId, info] of this.peers) {
      if (!peerOk(peerId)) continue;
      const tracks = {};
      for (const t of info.tracks) {
        const name = t.trackId.slice(peerId.length + 1);
        if (!idOk(t.trackId) && !idOk(name)) continue;
        tracks[t.trackId] = { id: t.trackId, trackId: t.trackId, name, kind: t.kind, source: t.source, description: t.description, live: t.live, muted: t.muted };
      }
      result[peerId] = tracks;
    }
    return result;
  },

  /** What a member sends right now: { audio, video, screenShare } (LumenJS's media-changed). */
  getMediaState(peerId) {
    return { ...(this.peers.get(peerId)?.mediaState ?? NO_MEDIA) };
  },

  /**
   * Mute or unmute your own tracks: 'audio' (microphone and other audio), 'video' (camera and
   * other video), 'screenShare' (screen and screen audio), a MediaStreamTrack or a track id.
   * The server stops forwarding them and tells everybody (`trackMuted`, `mediaState`); the
   * local track is disabled while muted. Returns the track ids it applies to.
   */
  setMuted(kindOrTrack, muted) {
    if (typeof muted !== 'boolean') throw invalid('setMuted(kindOrTrack, muted): muted must be true or false');
    if (this.closed) throw new SwitchboardError('roomClosed', 'the room is closed');
    let targets;
    const screen = (e) => e.source === 'screen' || e.source === 'screenAudio';
    if (kindOrTrack === 'audio' || kindOrTrack === 'video') {
      targets = [...this._local.values()].filter((e) => e.kind === kindOrTrack && !screen(e));
    } else if (kindOrTrack === 'screenShare') {
      targets = [...this._local.values()].filter(screen);
    } else {
      const entry = this._findLocal(kindOrTrack);
      if (!entry) throw invalid("setMuted: pass 'audio', 'video', 'screenShare', one of your MediaStreamTracks or a track id");
      targets = [entry];
    }
    for (const entry of targets) {
      entry.muted = muted;
      if (entry.track) entry.track.enabled = !muted;
      if (this.open) this._send({ type: 'mute', trackId: entry.trackId, muted });
    }
    return targets.map((e) => e.trackId);
  },

  /** The MediaStreamTrack on which a member's track arrives now, or null. */
  getRemoteTrack(peerId, trackId) {
    const id = this._trackIdOf(peerId, trackId);
    if (!this.pc) return null;
    for (const [mid, a] of this._announced) {
      if (a.trackId !== id) continue;
      const t = this.pc.getTransceivers().find((x) => x.mid === mid);
      if (t) return t.receiver.track;
    }
    return null;
  },

  /**
   * Receive statistics per remote track: { [trackId]: { peerId, trackId, kind, source, mid,
   * packetsReceived, bytesReceived, and for video framesReceived, framesDecoded, keyFramesDecoded,
   * pliCount, frameWidth, frameHeight, codec } }. Counters belong to the m-line, which may have
   * carried other tracks before: compare two samples.
   */
  async getTrackStats() {
    const result = {};
    if (!this.pc) return result;
    const report = await this.pc.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.mid === undefined) return;
      const slot = this._slots.get(s.mid);
      if (!slot) return;
      const kind = s.kind ?? slot.kind;
      const def = this.peers.get(slot.peerId)?.tracks.find((t) => t.trackId === slot.trackId);
      const stat = {
        peerId: slot.peerId,
        trackId: slot.trackId,
        kind,
        source: def?.source ?? defaultSource(kind),
        mid: s.mid,
        packetsReceived: s.packetsReceived ?? 0,
        bytesReceived: s.bytesReceived ?? 0,
      };
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
      result[slot.trackId] = stat;
    });
    return result;
  },

  // ---------------------------------------------------------------------- remote streams

  _scheduleStreams() {
    // trackPublished events come in bursts (audio and video of one member): settle them first.
    if (this._streamUpdate) return;
    this._streamUpdate = setTimeout(() => {
      this._streamUpdate = null;
      if (!this.closed) this._updateStreams();
    }, 0);
  },

  /**
   * Hand the app one MediaStream per member (rebuilt when the member's track set changes) and
   * one `remoteTrack` event per track that starts arriving (`remoteTrackEnded` when it stops).
   */
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
    this._announceTracks(byMid);
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
  },

  /**
   * Receive statistics per member: { [peerId]: { audio: { packetsReceived, bytesReceived },
   * video: { packetsReceived, bytesReceived, framesReceived, framesDecoded, keyFramesDecoded, pliCount,
   * frameWidth, frameHeight, codec } } }, keyed on the server's trackPublished announcements.
   * With several tracks of one kind from a member, the per-track getTrackStats tells them apart.
   */
  async getPeerStats() {
    const result = {};
    for (const stat of Object.values(await this.getTrackStats())) {
      const entry = (result[stat.peerId] ??= {});
      const counters = { packetsReceived: stat.packetsReceived, bytesReceived: stat.bytesReceived };
      if (stat.kind === 'video') {
        for (const key of ['framesReceived', 'framesDecoded', 'keyFramesDecoded', 'pliCount', 'frameWidth', 'frameHeight', 'codec']) {
          counters[key] = stat[key];
        }
      }
      // One entry per kind: the member's busiest track of that kind.
      const current = entry[stat.kind];
      if (!current || counters.packetsReceived > current.packetsReceived) entry[stat.kind] = counters;
    }
    return result;
  },

  // ------------------------------------------------------------------ the server's news

  _upsertDefinition(peerId, track) {
    const info = this.peers.get(peerId);
    if (!info) return null;
    const t = trackInfo(track);
    const i = info.tracks.findIndex((x) => x.trackId === t.trackId);
    if (i >= 0) info.tracks[i] = t;
    else info.tracks.push(t);
    return t;
  },

  _onTrackDefined(peerId, track) {
    const t = this._upsertDefinition(peerId, track);
    if (t) this._emit('trackDefined', { peerId, ...t });
  },

  _onTrackRemoved(peerId, trackId) {
    const info = this.peers.get(peerId);
    if (info) info.tracks = info.tracks.filter((t) => t.trackId !== trackId);
    this._settleSubscription(trackId, new SwitchboardError('unknownTrack', `track ${trackId} was removed before it arrived`));
    this._emit('trackRemoved', { peerId, trackId });
  },

  _onTrackPublished(message) {
    this._slots.set(message.mid, {
      peerId: message.peerId,
      trackId: message.track.trackId,
      kind: message.track.kind,
      streamId: message.streamId,
    });
    const info = this.peers.get(message.peerId);
    if (info && !info.tracks.some((t) => t.trackId === message.track.trackId)) {
      info.tracks.push(trackInfo(message.track));
    }
    this._scheduleStreams();
  },

  _onTrackMuted(message) {
    const { peerId, trackId, muted } = message;
    const by = message.by ?? 'operator';
    const track = this.peers.get(peerId)?.tracks.find((t) => t.trackId === trackId);
    if (track) track.muted = muted;
    const own = peerId === this.peer.id ? this._local.get(trackId) : null;
    if (own && by === 'owner') own.muted = muted;
    const kind = message.kind ?? track?.kind ?? own?.kind;
    this._emit('trackMuted', { peerId, trackId, kind, muted, by });
  },

  _onMediaState(peerId, state) {
    const info = this.peers.get(peerId);
    const next = mediaStateOf(state);
    if (info) info.mediaState = next;
    this._emit('mediaState', { peerId, state: next });
  },

  /** `remoteTrack` for each track that started arriving on an m-line, `remoteTrackEnded` when it stopped. */
  _announceTracks(byMid) {
    for (const [mid, a] of [...this._announced]) {
      const slot = this._slots.get(mid);
      if (slot && slot.trackId === a.trackId && byMid.has(mid)) continue;
      this._announced.delete(mid);
      this._emit('remoteTrackEnded', { peerId: a.peerId, trackId: a.trackId, mid });
    }
    for (const [mid, slot] of this._slots) {
      const transceiver = byMid.get(mid);
      if (!transceiver || this._announced.get(mid)?.trackId === slot.trackId) continue;
      this._announced.set(mid, { peerId: slot.peerId, trackId: slot.trackId });
      const def = this.peers.get(slot.peerId)?.tracks.find((t) => t.trackId === slot.trackId);
      const track = transceiver.receiver.track;
      this._emit('remoteTrack', {
        peerId: slot.peerId,
        trackId: slot.trackId,
        kind: slot.kind,
        source: def?.source ?? defaultSource(slot.kind),
        description: def?.description ?? null,
        mid,
        track,
      });
      this._settleSubscription(slot.trackId, track);
    }
  },
};
