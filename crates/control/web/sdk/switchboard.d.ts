// Type declarations for the Switchboard JavaScript SDK (/sdk/switchboard.js). Guide: docs/sdk.md.

/** The signalling protocol version this SDK speaks. */
export const PROTOCOL_VERSION: 1;

/** Error codes sent by the server (see docs/protocol.md). */
export type ServerErrorType =
  | 'badMessage'
  | 'messageTooLarge'
  | 'notJoined'
  | 'alreadyJoined'
  | 'invalidRoomName'
  | 'invalidPeerId'
  | 'invalidName'
  | 'peerIdTaken'
  | 'badSdp'
  | 'tooManyTracks'
  | 'noPendingOffer'
  | 'badCandidate'
  | 'tooManyCandidates'
  | 'serverBusy'
  | 'credentialRequired'
  | 'credentialInvalid'
  | 'credentialExpired'
  | 'credentialFuture'
  | 'admissionDenied'
  | 'roomFull'
  | 'tooManyRooms'
  | 'rateLimited'
  | 'joinTimeout'
  | 'draining'
  | 'unknownPeer'
  | 'internal';

/** Errors the SDK itself detects. */
export type SdkErrorType =
  /** A bad argument; thrown synchronously, never emitted. */
  | 'invalidArgument'
  /** The WebSocket to the server could not be opened (address, port, server down, timeout). */
  | 'serverUnreachable'
  /** An open signalling connection closed without the server saying why. */
  | 'connectionLost'
  /** The server did not answer in time. */
  | 'timeout'
  /** The server ended the session (`reason` says why). */
  | 'removed'
  /** An SDP step failed in the browser. */
  | 'negotiationFailed'
  /** The media connection (ICE/DTLS) failed. */
  | 'mediaFailed'
  /** The peer was destroyed. */
  | 'peerDestroyed'
  /** The room was closed. */
  | 'roomClosed';

export type SwitchboardErrorType = ServerErrorType | SdkErrorType;

/** Why the server ended a session. */
export type LeaveReason =
  | 'requested'
  | 'transportClosed'
  | 'mediaError'
  | 'tooSlow'
  | 'serverShutdown'
  | 'kicked'
  | 'roomClosed'
  | 'credentialExpired'
  | 'serverError';

export class SwitchboardError extends Error {
  readonly name: 'SwitchboardError';
  /** What happened, without parsing `message`. */
  readonly type: SwitchboardErrorType;
  /** Same as `type`. */
  readonly code: SwitchboardErrorType;
  /** For server errors: the client message type the server refused (`join`, `offer`, ...). */
  readonly request?: string;
  /** For `removed`: why the server ended the session. */
  readonly reason?: LeaveReason;
  /** For `serverUnreachable`: the address tried. */
  readonly url?: string;
}

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
  /** RTCPeerConnection ICE servers; Switchboard needs none (it is ICE-lite with a host candidate). */
  iceServers?: RTCIceServer[];
  /** Log signalling to the console. */
  debug?: boolean;
}

export interface RoomOptions {
  /** Only 'sfu' exists. Default 'sfu'. */
  mode?: 'sfu';
  /** What to send: at most one audio and one video track. Omit or null to only receive. */
  stream?: MediaStream | null;
  /** Display name shown to the others (1-100 characters, no control characters). */
  name?: string;
  /** Upper limit for the video sender, in kbit/s. */
  videoBandwidth?: number;
  /** Upper limit for the audio sender, in kbit/s. */
  audioBandwidth?: number;
  /** The codec to send video with. The server forwards VP8 and H264. */
  videoCodec?: 'VP8' | 'H264';
  /** The codec to send audio with. */
  audioCodec?: 'opus';
}

/** A remote stream: one per member that publishes something. */
export interface RemoteStream extends MediaStream {
  /** The member who sends it. */
  peerId: string;
}

export interface TrackInfo {
  trackId: string;
  kind: 'audio' | 'video';
  /** Muted by an operator: the server does not forward it. */
  muted: boolean;
}

export interface DataEvent {
  /** The sender's peer id; null for a message from the server's admin API. */
  src: string | null;
  data: unknown;
}

export interface TrackMutedEvent {
  peerId: string;
  trackId: string;
  kind?: 'audio' | 'video';
  muted: boolean;
}

export interface PeerInfo {
  peerId: string;
  name: string;
  tracks: TrackInfo[];
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

interface Emitter<Events extends Record<string, (...args: any[]) => void>> {
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
  readonly rooms: Map<string, SfuRoom>;
  /**
   * Join a room (one WebSocket per room). Throws synchronously on invalid options; later
   * failures (refused room name, network) arrive as the room's `error` event.
   */
  joinRoom(roomName: string, options?: RoomOptions): SfuRoom;
  /** Replace the credential (sent to every room, and used for later joins). */
  updateCredential(credential: Credential): void;
  /** Leave every room and close every connection. */
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
  /** A message from another member (room.send) or from the admin API. */
  data: (event: DataEvent) => void;
  /** An operator muted or unmuted a member's track (also one of yours). */
  trackMuted: (event: TrackMutedEvent) => void;
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
