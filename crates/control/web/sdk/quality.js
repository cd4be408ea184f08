// Switchboard JavaScript SDK: media quality. Sending video in simulcast layers (the `simulcast`
// room option), capping each sender (videoBandwidth, audioBandwidth), asking the server for a
// quality and priority per received track (setTrackQuality), and the tracks the server paused
// for this member (trackPaused, trackResumed), and dynacast: stopping the encodings nobody
// receives (layersWanted). Installed on SfuRoom by room.js; see docs/sdk.md and docs/media-quality.md.

import { SwitchboardError, invalid } from './core.js';

/** The layers a simulcast camera sends, lowest first: a quarter, half and full resolution. */
export const SIMULCAST_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4 },
  { rid: 'h', scaleResolutionDownBy: 2 },
  { rid: 'f', scaleResolutionDownBy: 1 },
];
export const QUALITIES = ['low', 'medium', 'high'];
/**
 * Rendered widths (device pixels) up to which fitTrackTo asks for `low` and `medium`: a 1280-wide
 * camera's quarter and half layers (320, 640) with some room, so a frame is scaled down, never up
 * by more than a quarter.
 */
export const FIT_WIDTHS = { low: 400, medium: 800 };

/** The quality whose layer fills an element `width` × `height` CSS pixels wide at `ratio`. */
export function qualityForSize(width, height, ratio = 1) {
  // Sized by its larger side: a portrait element of a landscape video shows the height.
  const px = Math.max(width, (height * 16) / 9) * ratio;
  if (px <= FIT_WIDTHS.low) return 'low';
  if (px <= FIT_WIDTHS.medium) return 'medium';
  return 'high';
}

export const QualityMethods = {
  /** The send encodings for a new video transceiver of `entry` (none without simulcast). */
  _sendEncodings(entry) {
    if (entry.kind !== 'video' || !this._options.simulcast || entry.source === 'screen') return undefined;
    const kbps = this._options.videoBandwidth;
    return SIMULCAST_ENCODINGS.map((e, i) => {
      const encoding = { ...e };
      // videoBandwidth caps the top layer; the lower ones stay below it on their own.
      if (kbps && i === SIMULCAST_ENCODINGS.length - 1) encoding.maxBitrate = Math.round(kbps * 1000);
      return encoding;
    });
  },

  /** Apply videoBandwidth/audioBandwidth to every sender (with simulcast, to its top layer). */
  async _applyBandwidth() {
    for (const entry of this._local.values()) {
      const kbps = entry.kind === 'video' ? this._options.videoBandwidth : this._options.audioBandwidth;
      const transceiver = entry.transceiver;
      if (!kbps || !transceiver || !transceiver.sender.track) continue;
      const params = transceiver.sender.getParameters();
      if (!params.encodings || params.encodings.length === 0) continue;
      const bps = Math.round(kbps * 1000);
      // With simulcast the cap is the top layer's (the lower ones stay below it on their own).
      const capped = params.encodings.length > 1 ? [params.encodings[params.encodings.length - 1]] : params.encodings;
      if (capped.every((e) => e.maxBitrate === bps)) continue;
      for (const e of capped) e.maxBitrate = bps;
      try {
        await transceiver.sender.setParameters(params);
      } catch (err) {
        this._emit('error', new SwitchboardError('negotiationFailed', `could not limit ${entry.kind} to ${kbps} kbit/s: ${err.message}`));
      }
    }
  },

  /**
   * Ask the server for a quality (`'low'`, `'medium'`, `'high'`: the simulcast layer at most) and
   * a priority (0–255, higher first when your link cannot carry everything) for one track you
   * receive. Either may be left out to keep its value.
   */
  setTrackQuality(peerId, trackId, { quality, priority } = {}) {
    const id = this._trackIdOf(peerId, trackId);
    if (quality !== undefined && !QUALITIES.includes(quality)) {
      throw invalid(`quality must be one of ${QUALITIES.join(', ')}`);
    }
    if (priority !== undefined && (!Number.isInteger(priority) || priority < 0 || priority > 255)) {
      throw invalid('priority must be an integer from 0 to 255');
    }
    const message = { type: 'setTrackQuality', trackId: id };
    if (quality !== undefined) message.quality = quality;
    if (priority !== undefined) message.priority = priority;
    this._send(message);
  },

  /**
   * Keep a received track's quality matched to the size `element` renders it at (a `<video>` or
   * any element; observed with ResizeObserver): `low` for thumbnails, `medium` for half-size
   * tiles, `high` above. A hidden (0×0) element asks for `low`. Sends setTrackQuality only when
   * the quality changes. Returns a function that stops following the element.
   */
  fitTrackTo(peerId, trackId, element) {
    const id = this._trackIdOf(peerId, trackId);
    if (!element || typeof element.getBoundingClientRect !== 'function') {
      throw invalid('fitTrackTo needs an element to follow');
    }
    let last = null;
    const apply = () => {
      const box = element.getBoundingClientRect();
      const quality = qualityForSize(box.width, box.height, window.devicePixelRatio || 1);
      if (quality === last || this.closed) return;
      last = quality;
      this._send({ type: 'setTrackQuality', trackId: id, quality });
    };
    const observer = new ResizeObserver(apply);
    observer.observe(element);
    apply();
    const stop = () => observer.disconnect();
    this.once('close', stop);
    return stop;
  },

  /**
   * Dynacast: the server says which encodings of one of your tracks anybody receives. Stop
   * encoding the others (`encodings[i].active`), start them again when they are wanted. Applied
   * one at a time per sender, the newest message last (setParameters is asynchronous).
   */
  _onLayersWanted(message) {
    const entry = this._local.get(message.trackId);
    if (!entry || !Array.isArray(message.layers)) return;
    entry.layersWanted = message.layers;
    const apply = async () => {
      const sender = entry.transceiver?.sender;
      if (!sender || entry.layersWanted !== message.layers) return; // a newer message follows
      const params = sender.getParameters();
      if (!params.encodings || params.encodings.length === 0) return;
      let changed = false;
      for (const [i, e] of params.encodings.entries()) {
        const wanted = message.layers.find((l) => (l.rid ?? null) === (e.rid ?? null) || (!l.rid && i === 0));
        if (wanted && e.active !== wanted.active) {
          e.active = wanted.active;
          changed = true;
        }
      }
      if (!changed) return;
      try {
        await sender.setParameters(params);
      } catch (err) {
        this._emit('error', new SwitchboardError('negotiationFailed', `could not switch encodings of ${entry.trackId}: ${err.message}`));
      }
    };
    entry.layersChain = (entry.layersChain ?? Promise.resolve()).then(apply);
    this._emit('layersWanted', {
      trackId: message.trackId,
      layers: message.layers.map((l) => ({ rid: l.rid ?? null, active: !!l.active })),
    });
  },

  _onTrackPaused(message) {
    this.pausedTracks.add(message.trackId);
    this._emit('trackPaused', { peerId: message.peerId, trackId: message.trackId, reason: message.reason });
  },

  _onTrackResumed(message) {
    this.pausedTracks.delete(message.trackId);
    this._emit('trackResumed', { peerId: message.peerId, trackId: message.trackId });
  },
};
