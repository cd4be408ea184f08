//! Why the server ended a session, and what went wrong with a request.

use serde::{Deserialize, Serialize};

/// Why the server ended a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LeaveReason {
    /// The client asked to leave.
    Requested,
    /// ICE or DTLS failed or timed out: the PeerConnection is gone.
    TransportClosed,
    /// The media engine hit an error for this participant (bad SDP state, protocol violation).
    MediaError,
    /// The participant could not keep up with its own signalling events.
    TooSlow,
    /// The server is shutting down.
    ServerShutdown,
    /// An operator removed this participant (admin API).
    Kicked,
    /// An operator closed the room.
    RoomClosed,
    /// The credential expired and was not renewed with `updateCredential`.
    CredentialExpired,
    /// The media shard hosting the room failed (a server bug); the room is gone. Rejoin: the
    /// server places the room on a working shard.
    ServerError,
    /// The signalling connection dropped and no `resume` came within the grace period.
    ReconnectTimeout,
}

/// What went wrong, so a client can decide what to do without parsing `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    /// Not JSON, not an object with a known `type`, or fields of the wrong shape. Fix the client.
    BadMessage,
    /// The frame is larger than [`MAX_MESSAGE_BYTES`].
    MessageTooLarge,
    /// A message other than `join` arrived before `join` succeeded.
    NotJoined,
    /// A second `join` on the same connection. Open a new connection to join another room.
    AlreadyJoined,
    /// The room name breaks the naming rules (see `docs/protocol.md`).
    InvalidRoomName,
    /// The requested peer id breaks the naming rules.
    InvalidPeerId,
    /// The display name is empty, too long or has control characters.
    InvalidName,
    /// Another member of the room already uses this peer id.
    PeerIdTaken,
    /// The SDP could not be parsed or was refused by the media engine.
    BadSdp,
    /// An `answer` arrived while the server had no offer outstanding.
    NoPendingOffer,
    /// The ICE candidate could not be parsed.
    BadCandidate,
    /// The server cannot take this request now (a media shard is saturated); retry later.
    ServerBusy,
    /// The server requires a credential with `join` and none was given.
    CredentialRequired,
    /// The credential is malformed, forged, for another peer id, or for no known key.
    CredentialInvalid,
    /// The credential's lifetime is over (or `updateCredential` came too late): mint a new one.
    CredentialExpired,
    /// The credential's timestamp is in the future beyond the allowed clock skew: check clocks.
    CredentialFuture,
    /// The application's admission check refused (or could not be reached for) this join.
    AdmissionDenied,
    /// The room has reached its participant limit.
    RoomFull,
    /// The server has reached its room limit; this join would create a new room.
    TooManyRooms,
    /// Too many joins from this address, or data messages beyond the per-connection rate (count
    /// or bytes per second); slow down. The message was dropped; the session goes on.
    RateLimited,
    /// The offer has more m-lines or published tracks than a session may have (see
    /// `docs/robustness.md`); nothing of it was applied. Also sent once when tracks in the room
    /// cannot be delivered because this session reached its m-line limit.
    TooManyTracks,
    /// The participant sent more ICE candidates than a session may have; the rest are ignored.
    TooManyCandidates,
    /// The connection sent no successful `join` within the join timeout; it is closed.
    JoinTimeout,
    /// The server is draining for a restart and takes no new joins; reconnect shortly.
    Draining,
    /// A `message` named a `to` peer that is not in the room.
    UnknownPeer,
    /// `subscribe`, `unsubscribe`, `mute` or `removeTrack` named a track that does not exist
    /// (or is not yours, for `mute` and `removeTrack`), or that was removed meanwhile.
    UnknownTrack,
    /// A track's name, source or description breaks the rules, or the name is taken.
    InvalidTrack,
    /// `resume` with a token that is unknown, used, expired, or for a session that ended:
    /// join afresh.
    ResumeFailed,
    /// A second `register` on a peer connection.
    AlreadyRegistered,
    /// A peer-connection message other than `register` arrived before `register` succeeded.
    NotRegistered,
    /// The call does not exist, ended, or this peer is not (or no longer) part of it in the way
    /// the request needs (rung for it, to answer; in it, to hang up or signal).
    UnknownCall,
    /// `callInitiate` with a `callId` another call uses: pick another one.
    CallIdTaken,
    /// `callInitiate` or `callInvite` broke a rule: no callees, too many, yourself, duplicates,
    /// metadata too large, a `callType` the chosen `media` cannot carry.
    InvalidCall,
    /// This peer is in as many calls as the server allows; hang one up first.
    TooManyCalls,
    /// The room exists in the other mode (`sfu` or `mesh`); a room has one mode.
    WrongRoomMode,
    /// A `call.<id>` room is only for the participants of that `sfu` call.
    NotInCall,
    /// A mesh request for a room this peer has not joined.
    NotInRoom,
    /// A message on a data channel the SFU relays is not a relay frame (docs/protocol.md "Data
    /// channels"), or names a peer id that is not valid. The message is dropped; fix the client.
    BadDataFrame,
    /// The session opened more data channels than the server relays (8); the later ones carry
    /// nothing. Open fewer (one reliable and one lossy channel is what the SDK uses).
    TooManyChannels,
    /// A track in the room is encoded in a codec this session's answer did not accept (say VP9
    /// or AV1 to a client that decodes only VP8): it is not forwarded to this session, the
    /// others still get it. Accept the codec in the answer to receive it.
    CodecUnsupported,
    /// A server fault; the session may continue, report it if it repeats.
    Internal,
}
