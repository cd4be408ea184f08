// Type declarations for the Switchboard JavaScript SDK: calls (MediaConnection, DataConnection)
// and mesh rooms, on the peer connection (docs/protocol-peer.md). Re-exported by switchboard.d.ts;
// import from there. Guide: docs/sdk.md "Calls".

import type { Emitter, RemoteStream, SfuRoom, SwitchboardError, VideoCodec } from './switchboard';

/** A call's state, owned by the server (LumenJS's state machine). */
export type CallState = 'initiating' | 'ringing' | 'connecting' | 'connected' | 'reconnecting' | 'ended';

/** Why a call ended, or why one participant is out of it. */
export type CallEndReason = 'completed' | 'rejected' | 'missed' | 'busy' | 'failed' | 'cancelled';

export interface CallOptions {
  /** Your own call id (peer id rules); random when absent. */
  callId?: string;
  /** Kept on this side only (SkyWay's label); put what the callee should see in `metadata`. */
  label?: string;
  /** Any JSON value (at most 4 KiB) the callee sees as `call.metadata`. */
  metadata?: unknown;
  /** 'sfu' (default): through the private SFU room `call.<callId>`; 'p2p': browser to browser. */
  media?: 'sfu' | 'p2p';
  /** Default: 'audio' for a stream without video, else 'video'. */
  callType?: 'audio' | 'video';
  /** Passed through to the callee and webhooks (LumenJS). */
  conversationId?: string;
  videoBandwidth?: number;
  audioBandwidth?: number;
  videoCodec?: VideoCodec;
  audioCodec?: 'opus';
}

export interface ConnectOptions {
  callId?: string;
  label?: string;
  metadata?: unknown;
  /** 'binary' (default): ArrayBuffer/typed arrays and strings as they are, other values as JSON text; 'json': JSON both ways; 'none': what the data channel takes. */
  serialization?: 'binary' | 'json' | 'none';
  /** 'p2p' (default): browser to browser; 'sfu': through the call's room, relayed by the server. */
  media?: 'sfu' | 'p2p';
}

export interface MediaConnectionEvents {
  /** The server moved the call (initiating → ringing → connecting → connected ⇄ reconnecting → ended). */
  stateChanged: (event: { state: CallState; endReason: CallEndReason | null }) => void;
  /** The call's data channel is open: p2p, the one between both; sfu, the call room's relayed one. */
  open: () => void;
  /** The other side's media (a MediaStream with `peerId`). */
  stream: (stream: RemoteStream) => void;
  removestream: (stream: RemoteStream) => void;
  track: (track: MediaStreamTrack, stream: RemoteStream | null) => void;
  removetrack: (track: MediaStreamTrack | { peerId: string; trackId: string; mid: string }, stream?: RemoteStream) => void;
  /** What another participant sent with send() (strings that parse as JSON arrive parsed), and who. */
  data: (data: unknown, src: string) => void;
  participantJoined: (peerId: string) => void;
  participantLeft: (event: { peerId: string; reason: CallEndReason }) => void;
  /** The other side's callMediaToggle (LumenJS media-changed). */
  mediaChanged: (event: { peerId: string; audio: boolean; video: boolean; screenShare: boolean }) => void;
  /** The call ended (after stateChanged `ended`). */
  close: () => void;
  error: (error: SwitchboardError) => void;
  [event: string]: (...args: any[]) => void;
}

/**
 * One call (SkyWay's MediaConnection, Artico's call, LumenJS's call): 1:1, or a group call
 * through the SFU (peer.call with an array of callees, invite() later).
 */
export declare class MediaConnection implements Emitter<MediaConnectionEvents> {
  readonly type: 'media' | 'data';
  /** The call id; also `callId` and `connectionId`. */
  readonly id: string;
  readonly callId: string;
  readonly connectionId: string;
  /** Artico's session: "call:<callId>". */
  readonly session: string;
  readonly metadata: unknown;
  readonly label: string;
  /** True on the caller's side. */
  readonly initiator: boolean;
  /** The other side's peer id (also `peerId`). */
  readonly remoteId: string;
  readonly peerId: string;
  /** The others in the call who accepted and have not left. */
  readonly participants: ReadonlySet<string>;
  readonly media: 'sfu' | 'p2p';
  readonly callType: 'audio' | 'video' | 'data';
  readonly state: CallState;
  readonly endReason: CallEndReason | null;
  readonly open: boolean;
  readonly closed: boolean;
  readonly localStream: MediaStream | null;
  /** The first remote stream received, or null. */
  readonly remoteStream: RemoteStream | null;
  /** The RTCPeerConnection carrying the call (its own, or its SFU room's). */
  readonly pc: RTCPeerConnection | null;
  /** The SfuRoom of an 'sfu' call, once joined. */
  readonly room: SfuRoom | null;
  /** Callee: accept, sending `stream` (absent: receive only). */
  answer(stream?: MediaStream | null, options?: { videoBandwidth?: number; audioBandwidth?: number; videoCodec?: VideoCodec; audioCodec?: 'opus' }): void;
  /** Callee: decline (the caller sees `rejected`). */
  reject(): void;
  /** Hang up ('failed': the media could not be kept). The caller hanging up while it rings cancels the call. */
  close(reason?: 'completed' | 'failed'): void;
  /** Artico's name for close(). */
  hangup(): void;
  /**
   * Strings and binary as they are, other values as JSON: p2p over the call's data channel, sfu
   * over the call room's channel (relayed to every other participant). False when not open.
   */
  send(data: unknown): boolean;
  /** Ring more peers into an sfu call (group call); refusals arrive as `error`. */
  invite(peerIds: string | string[]): boolean;
  addStream(stream: MediaStream): Promise<void>;
  /** Send one more track (voice-only → video): renegotiates. */
  addTrack(track: MediaStreamTrack, stream?: MediaStream): Promise<unknown>;
  removeTrack(track: MediaStreamTrack): Promise<unknown>;
  /** Enable/disable the local tracks and tell the other side (mediaChanged). */
  toggleMedia(state: { audio?: boolean; video?: boolean; screenShare?: boolean }): void;
  getStats(): Promise<RTCStatsReport | Map<string, unknown>>;
  on<E extends keyof MediaConnectionEvents>(event: E, listener: MediaConnectionEvents[E]): this;
  once<E extends keyof MediaConnectionEvents>(event: E, listener: MediaConnectionEvents[E]): this;
  off<E extends keyof MediaConnectionEvents>(event: E, listener?: MediaConnectionEvents[E]): this;
}

/** A data-only call (SkyWay's DataConnection), p2p or relayed by the SFU: events open, data, close, error. */
export declare class DataConnection extends MediaConnection {
  readonly type: 'data';
  readonly serialization: 'binary' | 'json' | 'none';
  readonly dataChannel: RTCDataChannel | null;
  send(data: unknown): boolean;
}

export interface MeshRoomOptions {
  mode: 'mesh';
  stream?: MediaStream | null;
  name?: string;
}

export interface MeshRoomEvents {
  open: () => void;
  peerJoin: (peerId: string) => void;
  peerLeave: (peerId: string) => void;
  stream: (stream: RemoteStream) => void;
  removeStream: (stream: RemoteStream) => void;
  track: (track: MediaStreamTrack, stream: RemoteStream) => void;
  data: (message: { src: string; data: unknown }) => void;
  connectionState: (event: { peerId: string; state: RTCPeerConnectionState }) => void;
  close: () => void;
  error: (error: SwitchboardError) => void;
  [event: string]: (...args: any[]) => void;
}

/** A mesh room: one RTCPeerConnection per other member, signals relayed by the server. */
export declare class MeshRoom implements Emitter<MeshRoomEvents> {
  readonly name: string;
  readonly mode: 'mesh';
  readonly open: boolean;
  readonly closed: boolean;
  readonly localStream: MediaStream | null;
  readonly members: string[];
  readonly remoteStreams: RemoteStream[];
  getPeerName(peerId: string): string | null;
  getStream(peerId: string): RemoteStream | null;
  getPeerConnection(peerId: string): RTCPeerConnection | null;
  /** Any JSON value to everyone, or to `to`, over the peer connection. */
  send(data: unknown, options?: { to?: string }): boolean;
  replaceStream(stream: MediaStream | null): Promise<void>;
  close(): void;
  on<E extends keyof MeshRoomEvents>(event: E, listener: MeshRoomEvents[E]): this;
  once<E extends keyof MeshRoomEvents>(event: E, listener: MeshRoomEvents[E]): this;
  off<E extends keyof MeshRoomEvents>(event: E, listener?: MeshRoomEvents[E]): this;
}
