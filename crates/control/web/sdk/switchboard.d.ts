// Type declarations for the Switchboard JavaScript SDK (/sdk/switchboard.js). Guide: docs/sdk.md.
// Calls, data connections and mesh rooms are declared in calls.d.ts, the errors in errors.d.ts;
// both are exported from here too.

import type {
  CallOptions, ConnectOptions, DataConnection, MediaConnection, MeshRoom, MeshRoomOptions,
} from './calls';
import type { SwitchboardError } from './errors';

export * from './calls';
export * from './errors';

/** The signalling protocol version this SDK speaks. */
export const PROTOCOL_VERSION: 1;

/**
 * Proof from your application server that a peer id may join, sent with every `join`:
 * authToken = base64(HMAC-SHA256(secret, `${timestamp}:${ttl}:${peerId}`)).
 */
export interface Credential {
  /** Unix time (seconds) when it was minted. */
  timestamp: number;
  /** Lifetime in seconds from `timestamp`. */
  ttl: number;
  authToken: string;
}

export interface PeerOptions {
  /**
   * The server: "host:port", or a ws://, wss://, http:// or https:// URL (path defaults to
   * /v1/ws). Defaults to the page's own host.
   */
  host?: string;
  /** Use wss:// for a bare "host:port". Defaults to true on https pages. */
  secure?: boolean;
  /** This peer's id in every room it joins: 1-64 of [A-Za-z0-9_.-]. Generated when absent. */
  id?: string;
  credential?: Credential;
  /** Milliseconds to wait for the WebSocket to open (default 10000). */
  connectTimeout?: number;
  /**
   * Extra RTCPeerConnection ICE servers. Switchboard needs none for itself (it is ICE-lite with a
   * host candidate); a server configured with TURN sends its TURN servers, with credentials
   * minted for this peer, in `joined` (and fresh ones in `resumed`), and the SDK uses those
   * after these.
   */
  iceServers?: RTCIceServer[];
  /**
   * 'relay': media only through a TURN server (needs one from the server's `joined` or from
   * `iceServers`), e.g. to test TURN or to hide the client's addresses. Default 'all'.
   */
  iceTransportPolicy?: RTCIceTransportPolicy;
  /** Log signalling to the console. */
  debug?: boolean;
  /** Applied to every message of every room of this peer (a room's own option wins). */
  signalModifier?: SignalModifier;
}

/** The name of a client message: its `type`. */
export type SignalName =
  | 'join' | 'resume' | 'offer' | 'answer' | 'candidate' | 'defineTrack' | 'removeTrack'
  | 'subscribe' | 'unsubscribe' | 'mute' | 'ping' | 'leave' | 'updateCredential' | 'message';

/**
 * Called with every client message before it is sent (rtc-cafe's signalModifier): add fields
 * (a CSRF token) that the application's admission check sees with `admission.every_signal`.
 * Mutate `payload` or return a new object; `type` cannot change. Must be synchronous.
 */
export type SignalModifier = (signalName: SignalName, payload: Record<string, unknown>) => Record<string, unknown> | void;

/** A member who talks: `level` is a linear amplitude from 0 to 1, smoothed over about a second. */
export interface ActiveSpeaker {
  peerId: string;
  level: number;
}

/** What `setTrackQuality` may ask for: the simulcast layer at most. */
export type Quality = 'low' | 'medium' | 'high';

/** What `videoCodec` may name: the video codecs the server forwards. */
export type VideoCodec = 'VP8' | 'H264' | 'VP9' | 'AV1';

/** What a track carries. */
export type TrackSource = 'camera' | 'microphone' | 'screen' | 'screenAudio' | 'other';

/** The room's state: see docs/sdk.md for the event sequence. */
export type RoomState = 'setup' | 'connected' | 'reconnecting' | 'closed';

/** What a member sends right now (LumenJS's media-changed). */
export interface MediaState {
  /** A live, unmuted microphone (or other audio) track. */
  audio: boolean;
  /** A live, unmuted camera (or other video) track. */
  video: boolean;
  /** A live, unmuted screen or screen-audio track. */
  screenShare: boolean;
}

export interface RoomOptions {
  /** 'sfu' (default); `{ mode: 'mesh' }` joins a MeshRoom instead (see MeshRoomOptions). */
  mode?: 'sfu';
  /** What to send: at most one audio and one video track. Omit or null to only receive. */
  stream?: MediaStream | null;
  /** Display name shown to the others (1-100 characters, no control characters). */
  name?: string;
  /** Upper limit for the video sender, in kbit/s (with simulcast: its top layer). */
  videoBandwidth?: number;
  /** Upper limit for the audio sender, in kbit/s. */
  audioBandwidth?: number;
  /**
   * Send camera video in three simulcast layers (rids q, h, f: a quarter, half and full
   * resolution); each subscriber gets the one it asks for (setTrackQuality) and that fits.
   */
  simulcast?: boolean;
  /** The codec to send video with. The server forwards VP8, H264, VP9 and AV1. */
  videoCodec?: VideoCodec;
  /** The codec to send audio with. */
  audioCodec?: 'opus';
  /**
   * Receive every track of the room as it is published (default true), or only what you ask
   * for with subscribe().
   */
  autoSubscribe?: boolean;
  /**
   * Open the two data channels the SFU relays (`sb-reliable`, `sb-lossy`) for sendData()
   * (default true). False saves the SCTP association when the app never uses them.
   */
  dataChannels?: boolean;
  /**
   * After the WebSocket drops, keep resuming for this long (ms; default 20000, the server's
   * default `limits.resume_grace_s`). 0: never resume, close at once.
   */
  reconnectTimeout?: number;
  /** A `ping` every `interval` ms; the WebSocket counts as dead after `timeout` ms of silence (2000 / 6000). */
  keepalive?: { interval?: number; timeout?: number };
  /**
   * Nothing received on the media transport for this long (ms, default 5000, at least 1000)
   * counts as a dead media path: the SDK restarts ICE.
   */
  mediaTimeout?: number;
  /** Applied to every message this room sends (overrides the Peer's). */
  signalModifier?: SignalModifier;
}

export interface PublishOptions {
  /** The second half of the track id (`<peerId>:<name>`); 1-64 of [A-Za-z0-9_.-]. Default: the source, made unique. */
  name?: string;
  /** Default: `screen`/`screenAudio` for a getDisplayMedia track, else `camera`/`microphone`. */
  source?: TrackSource;
  /** Free text for the others (at most 256 characters). */
  description?: string;
  /** The MediaStream the others receive the track in (default: a new one). */
  stream?: MediaStream;
}

export interface DefineTrackOptions {
  kind: 'audio' | 'video';
  name?: string;
  source?: TrackSource;
  description?: string;
}

export interface LocalTrackInfo {
  trackId: string;
  name: string;
  kind: 'audio' | 'video';
  source: TrackSource;
  description: string | null;
  /** Sent now (false: only defined). */
  live: boolean;
  /** Muted by you with setMuted. */
  muted: boolean;
  track: MediaStreamTrack | null;
}

/** One entry of getPeerTrackDefinitions. */
export interface TrackDefinition {
  /** The track id (rtc-cafe's `id`). */
  id: string;
  trackId: string;
  name: string;
  kind: 'audio' | 'video';
  source: TrackSource;
  description: string | null;
  live: boolean;
  muted: boolean;
}

export type Filter = string | string[] | ((value: string) => boolean);

export interface RemoteTrackEvent {
  peerId: string;
  trackId: string;
  kind: 'audio' | 'video';
  source: TrackSource;
  description: string | null;
  /** The receive m-line; it carries other tracks over time. */
  mid: string;
  track: MediaStreamTrack;
}

export interface TrackStats {
  peerId: string;
  trackId: string;
  kind: 'audio' | 'video';
  source: TrackSource;
  mid: string;
  packetsReceived: number;
  bytesReceived: number;
  framesReceived?: number;
  framesDecoded?: number;
  keyFramesDecoded?: number;
  pliCount?: number;
  frameWidth?: number;
  frameHeight?: number;
  codec?: string;
}

/** A remote stream: one per member that publishes something. */
export interface RemoteStream extends MediaStream {
  /** The member who sends it. */
  peerId: string;
}

export interface TrackInfo {
  trackId: string;
  kind: 'audio' | 'video';
  source: TrackSource;
  description: string | null;
  /** Media flows for it (false: defined only). */
  live: boolean;
  /** Muted by its owner or an operator: the server does not forward it. */
  muted: boolean;
}

export interface DataEvent {
  /** The sender's peer id; null for a message from the server's admin API. */
  src: string | null;
  /** send(): the JSON value. sendData(): a string or an ArrayBuffer. */
  data: unknown;
  /** Set for sendData() messages: the data channel they came on. Absent for send(). */
  channel?: 'reliable' | 'lossy';
}

export interface TrackMutedEvent {
  peerId: string;
  trackId: string;
  kind?: 'audio' | 'video';
  muted: boolean;
  /** Who did it: the track's owner (setMuted) or an operator (admin API). */
  by: 'owner' | 'operator';
}

export interface PeerInfo {
  peerId: string;
  name: string;
  /** The member's tracks, defined and live. */
  tracks: TrackInfo[];
  mediaState: MediaState;
  /** Between peerReconnecting and peerReconnected. */
  reconnecting?: boolean;
}

export interface PeerReceiveStats {
  audio?: { packetsReceived: number; bytesReceived: number };
  video?: {
    packetsReceived: number;
    bytesReceived: number;
    framesReceived: number;
    framesDecoded: number;
    keyFramesDecoded: number;
    pliCount: number;
    frameWidth: number;
    frameHeight: number;
    codec?: string;
  };
}

export interface Emitter<Events extends Record<string, (...args: any[]) => void>> {
  on<E extends keyof Events>(event: E, listener: Events[E]): this;
  once<E extends keyof Events>(event: E, listener: Events[E]): this;
  off<E extends keyof Events>(event: E, listener?: Events[E]): this;
}

export interface PeerEvents {
  /** The server is reachable; `id` is this peer's id. */
  open: (id: string) => void;
  /** Destroyed (by destroy(), or after the server could not be reached). */
  close: () => void;
  error: (error: SwitchboardError) => void;
  /** A signalling connection dropped; a later joinRoom connects again. */
  disconnected: (id: string) => void;
  /** The credential runs out in this many seconds (a minute ahead): call updateCredential. */
  expiresIn: (seconds: number) => void;
  /** Somebody is calling: answer(stream) or reject(). */
  call: (call: MediaConnection) => void;
  /** Somebody opened a DataConnection (accepted already). */
  connection: (connection: DataConnection) => void;
  /** The server is draining: the peer connection closes within this many ms. */
  draining: (deadlineMs: number) => void;
  [event: string]: (...args: any[]) => void;
}

export declare class Peer implements Emitter<PeerEvents> {
  /** Throws SwitchboardError('invalidArgument') on a bad option. */
  constructor(options?: PeerOptions);
  readonly id: string;
  /** The signalling endpoint, e.g. ws://127.0.0.1:7880/v1/ws. */
  readonly url: string;
  readonly credential?: Credential;
  readonly open: boolean;
  readonly destroyed: boolean;
  readonly disconnected: boolean;
  /** Rooms this peer is in, by name. */
  readonly rooms: Map<string, SfuRoom | MeshRoom>;
  /** True while registered on the peer connection (/v1/peer): callable. */
  readonly registered: boolean;
  /** Calls by the other side's peer id (SkyWay). */
  readonly connections: Record<string, MediaConnection[]>;
  /**
   * Join a room (one WebSocket per SFU room). Throws synchronously on invalid options; later
   * failures (refused room name, network) arrive as the room's `error` event.
   */
  joinRoom(roomName: string, options?: RoomOptions): SfuRoom;
  joinRoom(roomName: string, options: MeshRoomOptions): MeshRoom;
  /** Ring `peerId` (an array: a group call, 'sfu' only); `stream` is sent once one answers. */
  call(peerId: string | string[], stream?: MediaStream | null, options?: CallOptions): MediaConnection;
  /** A data channel to `peerId` (accepted by its SDK without ringing). */
  connect(peerId: string, options?: ConnectOptions): DataConnection;
  /** Every peer id online under the same API key, this one included. */
  listAllPeers(callback?: (peerIds: string[]) => void): Promise<string[]>;
  /** Go offline on the peer connection (calls end, mesh rooms close); SFU rooms stay. */
  disconnect(): void;
  /**
   * Register again after disconnect() or a lost registration (SkyWay's reconnect): same id,
   * a fresh registration; `open` fires again. Rejects (and emits `error`) when refused.
   */
  reconnect(): Promise<string>;
  /** Replace the credential (sent to every room, and used for later joins). */
  updateCredential(credential: Credential): void;
  /** Hang up every call, leave every room and close every connection. */
  destroy(): void;
  on<E extends keyof PeerEvents>(event: E, listener: PeerEvents[E]): this;
  once<E extends keyof PeerEvents>(event: E, listener: PeerEvents[E]): this;
  off<E extends keyof PeerEvents>(event: E, listener?: PeerEvents[E]): this;
}

export interface RoomEvents {
  /** Joined: `members` and `peers` are filled. */
  open: () => void;
  peerJoin: (peerId: string) => void;
  peerLeave: (peerId: string) => void;
  /**
   * A member's media, new or changed (a track added or removed): a new MediaStream object that
   * replaces any earlier one with the same `peerId`.
   */
  stream: (stream: RemoteStream) => void;
  /** The member publishes nothing any more, left, or the room closed. */
  removeStream: (stream: RemoteStream) => void;
  /** The media connection's state changed. */
  connectionState: (state: RTCPeerConnectionState) => void;
  /** The room's state changed (setup → connected ⇄ reconnecting → closed). */
  state: (state: RoomState, detail: { previous: RoomState; cause: string }) => void;
  /** The session is ours again on a new WebSocket, `downtimeMs` after it was lost. */
  resumed: (detail: { downtimeMs: number; attempts: number }) => void;
  /** The media path failed or stalled: new ICE credentials are negotiated. */
  iceRestart: (detail: { attempt: number; iceState: RTCIceConnectionState; reason: string }) => void;
  /** A member's signalling connection dropped; its session is kept for the grace period. */
  peerReconnecting: (peerId: string) => void;
  /** The member is back with the same peer id and tracks (rtc-cafe's reassignPeerSid, without a new id). */
  peerReconnected: (peerId: string) => void;
  /** A member's track exists or changed (defined, live, no longer live, muted). */
  trackDefined: (event: { peerId: string } & TrackInfo) => void;
  /** A member's track is gone from the room. */
  trackRemoved: (event: { peerId: string; trackId: string }) => void;
  /** A track you receive started arriving (rtc-cafe's peerTrackIdentified). */
  remoteTrack: (event: RemoteTrackEvent) => void;
  /** It stopped arriving (unsubscribed, unpublished, the member left). */
  remoteTrackEnded: (event: { peerId: string; trackId: string; mid: string }) => void;
  /** What a member sends changed (LumenJS's media-changed). */
  mediaState: (event: { peerId: string; state: MediaState }) => void;
  /** Who talks changed (or the order): loudest first, at most every 300 ms; [] when nobody does. */
  activeSpeakersChanged: (speakers: ActiveSpeaker[]) => void;
  /** The server stopped forwarding a track to you: it does not fit what may be sent to you. */
  trackPaused: (event: { peerId: string; trackId: string; reason: 'bandwidth' }) => void;
  /** A paused track flows again (from a keyframe). */
  trackResumed: (event: { peerId: string; trackId: string }) => void;
  /**
   * Dynacast: which encodings of one of your tracks anybody receives (the SDK already stopped
   * the others with setParameters, and starts them again when they are wanted).
   */
  layersWanted: (event: { trackId: string; layers: { rid: string | null; active: boolean }[] }) => void;
  /** A message from another member (room.send, sendData) or from the admin API. */
  data: (event: DataEvent) => void;
  /** A member (or an operator) muted or unmuted a track (also one of yours). */
  trackMuted: (event: TrackMutedEvent) => void;
  /** The reliable data channel opened (sendData() works from now on). */
  dataOpen: () => void;
  /** The server is shutting down; the session ends within `deadlineMs` unless it leaves first. */
  draining: (deadlineMs: number) => void;
  /** updateCredential was accepted: the session now lasts until `expiresAt` (Unix seconds). */
  credentialUpdated: (expiresAt: number) => void;
  close: () => void;
  error: (error: SwitchboardError) => void;
  [event: string]: (...args: any[]) => void;
}

export declare class SfuRoom implements Emitter<RoomEvents> {
  readonly name: string;
  readonly mode: 'sfu';
  readonly peer: Peer;
  readonly open: boolean;
  readonly closed: boolean;
  /** Peer ids of the other members. */
  readonly members: string[];
  /** The other members, by peer id. */
  readonly peers: Map<string, PeerInfo>;
  /** What this room sends. */
  readonly localStream: MediaStream | null;
  /** The current remote streams, one per publishing member. */
  readonly remoteStreams: RemoteStream[];
  readonly connectionState: RTCPeerConnectionState;
  readonly state: RoomState;
  /** Who talks, loudest first, as the server last announced (it may include you). */
  readonly activeSpeakers: ActiveSpeaker[];
  /** Ids of the received tracks the server paused for you. */
  readonly pausedTracks: Set<string>;
  /** ICE restarts and resumes done so far. */
  readonly iceRestarts: number;
  readonly resumes: number;
  /** Unix seconds when the session ends unless the credential is renewed, once the server said. */
  readonly expiresAt: number | null;
  /** The underlying connection (for stats and debugging; do not renegotiate it yourself). */
  readonly pc: RTCPeerConnection | null;
  /** A member's display name (also for one that just left); null when unknown. */
  getPeerName(peerId: string): string | null;
  getStream(peerId: string): RemoteStream | null;
  /**
   * Send another stream without rejoining: swaps tracks in place, publishes added kinds,
   * unpublishes missing ones. Resolves when applied.
   */
  replaceStream(stream: MediaStream | null): Promise<void>;
  /**
   * Send a JSON value to every other member, or to one. Returns false when the room is not open.
   * Throws invalidArgument for data JSON cannot carry or a malformed `to`.
   */
  send(data: unknown, options?: { to?: string }): boolean;
  /** rtc-cafe's sendMessage: send(data, { to }). */
  sendMessage(data: unknown, to?: string): boolean;
  /**
   * A string or binary data (at most 64 KiB) over the room's data channel, relayed by the SFU to
   * every other member or to `to`; `reliable: false` uses the unordered channel without
   * retransmissions. False when the channel is not open or too much is still unsent.
   */
  sendData(data: string | ArrayBuffer | ArrayBufferView, options?: { to?: string; reliable?: boolean }): boolean;
  /** The reliable (or lossy) data channel is open. */
  dataChannelOpen(reliable?: boolean): boolean;
  /** Publish a described track; resolves once negotiated. Several video tracks are fine (camera and screen). */
  publishTrack(track: MediaStreamTrack, options?: PublishOptions): Promise<LocalTrackInfo>;
  /** Stop sending one of your tracks and remove it from the room. */
  unpublishTrack(trackOrId: MediaStreamTrack | string): Promise<void>;
  /** Make a track discoverable before media flows; returns its track id. */
  defineTrack(options: DefineTrackOptions): string;
  getLocalTracks(): LocalTrackInfo[];
  /**
   * Receive a member's track (`trackId`: the full id or its name). Resolves with the track when
   * it arrives, null if unsubscribed first; rejects with unknownTrack or roomClosed.
   */
  subscribe(peerId: string, trackId: string): Promise<MediaStreamTrack | null>;
  unsubscribe(peerId: string, trackId: string): void;
  /** { [peerId]: { [trackId]: TrackDefinition } } for the members matching the filters. */
  getPeerTrackDefinitions(peerFilter?: Filter, idFilter?: Filter): Record<string, Record<string, TrackDefinition>>;
  getMediaState(peerId: string): MediaState;
  /**
   * Mute your own tracks: 'audio' | 'video' | 'screenShare' (by source), one track or its id.
   * Returns the track ids it applied to.
   */
  /**
   * Ask for a quality (the simulcast layer at most) and a priority (0–255, higher first when not
   * everything fits) for a track you receive; left-out fields keep their value.
   */
  setTrackQuality(peerId: string, trackId: string, options: { quality?: Quality; priority?: number }): void;
  /**
   * Keep a received track's quality matched to the size `element` renders it at (low up to 400
   * device pixels wide, medium up to 800, high above). Returns a function that stops it.
   */
  fitTrackTo(peerId: string, trackId: string, element: Element): () => void;
  setMuted(kindOrTrack: 'audio' | 'video' | 'screenShare' | MediaStreamTrack | string, muted: boolean): string[];
  /** The MediaStreamTrack a member's track arrives on now, or null. */
  getRemoteTrack(peerId: string, trackId: string): MediaStreamTrack | null;
  /** Receive statistics per remote track id. */
  getTrackStats(): Promise<Record<string, TrackStats>>;
  /** Receive statistics per member, keyed by peer id. */
  getPeerStats(): Promise<Record<string, PeerReceiveStats>>;
  getStats(): Promise<RTCStatsReport>;
  /** Leave the room; the local stream keeps running (it belongs to the app). */
  close(): void;
  on<E extends keyof RoomEvents>(event: E, listener: RoomEvents[E]): this;
  once<E extends keyof RoomEvents>(event: E, listener: RoomEvents[E]): this;
  off<E extends keyof RoomEvents>(event: E, listener?: RoomEvents[E]): this;
}

/** The signalling WebSocket URL for a `host` option. */
export function signallingUrl(host?: string, secure?: boolean): string;
