// Type declarations for the Switchboard JavaScript SDK: its errors (SwitchboardError and the
// codes in its `type`). Re-exported by switchboard.d.ts; import from there. Guide: docs/sdk.md
// "Errors".

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
  | 'unknownTrack'
  | 'invalidTrack'
  | 'resumeFailed'
  // The peer connection (docs/protocol-peer.md).
  | 'alreadyRegistered'
  | 'notRegistered'
  | 'unknownCall'
  | 'callIdTaken'
  | 'invalidCall'
  | 'tooManyCalls'
  | 'notInCall'
  | 'wrongRoomMode'
  | 'notInRoom'
  /** A message on a relayed data channel was not a relay frame (docs/protocol.md "Data channels"). */
  | 'badDataFrame'
  /** More data channels than the server relays (8). */
  | 'tooManyChannels'
  | 'codecUnsupported'
  | 'internal';

/** Errors the SDK itself detects. */
export type SdkErrorType =
  /** A bad argument; thrown synchronously, never emitted. */
  | 'invalidArgument'
  /** The WebSocket to the server could not be opened (address, port, server down, timeout). */
  | 'serverUnreachable'
  /**
   * The signalling connection closed without the server saying why, and the session could not
   * be resumed within `reconnectTimeout` (or the server keeps no session to resume).
   */
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
  | 'roomClosed'
  /** A call method used after the call ended. */
  | 'callEnded'
  /** A DataConnection with serialization 'json' received a message that is not JSON. */
  | 'invalidData';

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
  | 'serverError'
  | 'reconnectTimeout';

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
