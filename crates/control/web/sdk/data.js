// Switchboard JavaScript SDK: an SfuRoom's data: room messages on the signalling socket (send)
// and the data channels the SFU relays to the other members (sendData; docs/protocol.md "Data
// channels"). Two channels per session: `sb-reliable` (ordered,
// retransmitted: chat, state, file pieces) and `sb-lossy` (unordered, never retransmitted:
// cursors, game state, where a late message is worthless). Every message is a relay frame: a
// 3-byte header and the peer id of the receiver (on the way up; none = everyone) or the sender
// (on the way down), then the payload. room.send() stays on the signalling socket (JSON values,
// and the server sees them); sendData() is this path (strings and binary, opaque to the server).

import { SwitchboardError, TOKEN, TOKEN_RULE, invalid } from './core.js';

export const RELIABLE = 'sb-reliable';
export const LOSSY = 'sb-lossy';
const VERSION = 1;
const FLAG_TEXT = 1;
/** The server relays frames of at most this many bytes. */
export const MAX_FRAME = 64 * 1024;
/** Unsent bytes on a channel beyond which sendData() reports false instead of queueing more. */
const MAX_BUFFERED = 1024 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The receiver option of send() and sendData(): absent (everyone else) or a peer id. */
function checkTo(to) {
  if (to !== undefined && (typeof to !== 'string' || !TOKEN.test(to))) throw invalid(`to must be a peer id (${TOKEN_RULE})`);
  return to;
}

/** A relay frame for `data` (string or binary) to `to` (undefined: everyone else). */
export function encodeFrame(data, to) {
  const text = typeof data === 'string';
  let payload;
  if (text) payload = encoder.encode(data);
  else if (data instanceof ArrayBuffer) payload = new Uint8Array(data);
  else if (ArrayBuffer.isView(data)) payload = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  else throw invalid('data must be a string, an ArrayBuffer or a typed array');
  const peer = to === undefined ? new Uint8Array(0) : encoder.encode(to);
  const frame = new Uint8Array(3 + peer.length + payload.length);
  frame[0] = VERSION;
  frame[1] = text ? FLAG_TEXT : 0;
  frame[2] = peer.length;
  frame.set(peer, 3);
  frame.set(payload, 3 + peer.length);
  return frame;
}

/** { peer, data } of a frame from the server (data: string or ArrayBuffer), or null. */
export function decodeFrame(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 3 || bytes[0] !== VERSION || (bytes[1] & ~FLAG_TEXT) !== 0) return null;
  const end = 3 + bytes[2];
  if (bytes.length < end) return null;
  try {
    const peer = decoder.decode(bytes.subarray(3, end));
    const payload = bytes.slice(end);
    const data = bytes[1] & FLAG_TEXT ? decoder.decode(payload) : payload.buffer;
    return { peer, data };
  } catch {
    return null;
  }
}

/** Mixed into SfuRoom (room.js). */
export const DataMethods = {
  /**
   * Send `data` (anything JSON can carry) to every other member, or to one (`{ to: peerId }`).
   * They receive it as a `data` event { src, data }. Returns false when the room is not open
   * or its signalling connection is being resumed (the message is not sent).
   */
  send(data, options = {}) {
    if (data === undefined || typeof data === 'function' || typeof data === 'symbol') {
      throw invalid('data must be a JSON value');
    }
    const to = checkTo(options?.to);
    if (!this.open) return false;
    const message = { type: 'message', data };
    if (to !== undefined) message.to = to;
    return Boolean(this._send(message));
  },

  /** rtc-cafe's name for send(): to everyone, or to the member `to`. */
  sendMessage(data, to) {
    return this.send(data, to === undefined || to === null ? {} : { to });
  },

  /** Open both channels on a new RTCPeerConnection, before its first offer. */
  _openDataChannels(pc) {
    this._dataChannels = new Map();
    if (!this._options.dataChannels) return;
    for (const [label, init] of [[RELIABLE, { ordered: true }], [LOSSY, { ordered: false, maxRetransmits: 0 }]]) {
      const channel = pc.createDataChannel(label, init);
      channel.binaryType = 'arraybuffer';
      channel.onopen = () => {
        this._log(`data channel ${label} open`);
        if (label === RELIABLE && !this.closed) this._emit('dataOpen');
      };
      channel.onmessage = (event) => this._onDataFrame(label, event.data);
      channel.onerror = (event) => this._log(`data channel ${label} error`, event.error?.message ?? '');
      this._dataChannels.set(label, channel);
    }
  },

  /** The reliable (or lossy) channel can carry sendData() now. */
  dataChannelOpen(reliable = true) {
    return this._dataChannels?.get(reliable ? RELIABLE : LOSSY)?.readyState === 'open';
  },

  /**
   * Send a string or binary data over the room's data channel, relayed by the SFU to every other
   * member (or to `to`). `reliable: false` uses the lossy channel. Returns false when the channel
   * is not open or too much is still unsent (a slow link): the message is not sent.
   */
  sendData(data, options = {}) {
    const to = checkTo(options?.to);
    const reliable = options?.reliable ?? true;
    if (typeof reliable !== 'boolean') throw invalid('reliable must be true or false');
    const frame = encodeFrame(data, to);
    if (frame.length > MAX_FRAME) throw invalid(`a data message is at most ${MAX_FRAME - 3 - (to?.length ?? 0)} bytes here`);
    const channel = this._dataChannels?.get(reliable ? RELIABLE : LOSSY);
    if (!channel || channel.readyState !== 'open' || channel.bufferedAmount > MAX_BUFFERED) return false;
    channel.send(frame);
    return true;
  },

  _onDataFrame(label, raw) {
    if (this.closed) return;
    if (typeof raw === 'string') {
      this._log(`data channel ${label}: a string, not a relay frame; ignored`);
      return;
    }
    const frame = decodeFrame(raw);
    if (!frame) {
      this._emit('error', new SwitchboardError('badDataFrame', `a message on ${label} was not a relay frame`));
      return;
    }
    this._emit('data', { src: frame.peer, data: frame.data, channel: label === RELIABLE ? 'reliable' : 'lossy' });
  },
};
