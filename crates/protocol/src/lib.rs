//! Switchboard's signalling protocol: the JSON messages a client and the server exchange over the
//! WebSocket at `/v1/ws`, and the rules that validate names.
//!
//! Every message is a JSON object with a `type` field; fields are camelCase. The server is the
//! single source of truth for this format: the golden fixtures in `tests/fixtures/` pin it, and
//! `docs/protocol.md` documents it for people writing clients in other languages.

pub mod admin;
mod names;
mod payload;
pub mod webhook;

pub use names::{validate_display_name, validate_peer_id, validate_room_name, NameError};
pub use payload::Payload;

use serde::{Deserialize, Serialize};

/// Bumped on every incompatible change to the messages below; sent in [`ServerMessage::Joined`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest text frame the server accepts on the signalling WebSocket. An SDP offer for a few dozen
/// m-lines is ~30 KiB; anything much larger is not signalling.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Most m-lines one session may negotiate (sent and received together): a member of a full
/// 100-person room receives 198 tracks. More make every packet of the session slower in the media
/// engine and are refused with [`ErrorCode::TooManyTracks`].
pub const MAX_MLINES_PER_SESSION: usize = 256;

/// Most tracks one participant may publish (camera, microphone, screen share and its audio, and
/// room to spare). More are refused with [`ErrorCode::TooManyTracks`].
pub const MAX_TRACKS_PER_PARTICIPANT: usize = 16;

/// Most remote ICE candidates one session keeps; later ones get [`ErrorCode::TooManyCandidates`].
pub const MAX_CANDIDATES_PER_SESSION: usize = 64;

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientMessage {
    /// First message on a connection: enter `room` (created on first join).
    #[serde(rename_all = "camelCase")]
    Join {
        room: String,
        /// Display name shown to the other members; defaults to the peer id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The id the client wants; the server assigns one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer_id: Option<String>,
        /// Room mode; only `sfu` exists today.
        #[serde(default)]
        mode: RoomMode,
        /// Proof from the application that this peer id may join (see `docs/operations.md`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<Credential>,
    },
    /// An SDP offer from the client (its first offer, or a renegotiation it starts).
    Offer { sdp: String },
    /// The client's answer to a server [`ServerMessage::Offer`].
    Answer { sdp: String },
    /// A trickled ICE candidate; an empty `candidate` means end of candidates.
    #[serde(rename_all = "camelCase")]
    Candidate {
        candidate: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_m_line_index: Option<u16>,
    },
    /// Leave the room; the server replies with [`ServerMessage::Left`] and closes.
    Leave {},
    /// Replace the credential before it expires; answered by `credentialUpdated` or an error.
    UpdateCredential { credential: Credential },
    /// A data message to everyone else in the room, or to one peer (`to`).
    #[serde(rename_all = "camelCase")]
    Message {
        data: Payload,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
}

/// The ECLWebRTC-style credential an application server mints for one peer id:
/// `authToken = base64(HMAC-SHA256(secret, "<timestamp>:<ttl>:<peerId>"))`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    /// Unix time (seconds) when the credential was minted.
    pub timestamp: u64,
    /// Lifetime in seconds from `timestamp`.
    pub ttl: u64,
    pub auth_token: String,
}

impl ClientMessage {
    /// The `type` tag, for error replies that name the request they refuse.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Join { .. } => "join",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Candidate { .. } => "candidate",
            ClientMessage::Leave {} => "leave",
            ClientMessage::UpdateCredential { .. } => "updateCredential",
            ClientMessage::Message { .. } => "message",
        }
    }
}

/// How a room moves media. Mesh rooms (signalling relay only) will come later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RoomMode {
    #[default]
    Sfu,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    /// Reply to `join`: who you are and who is already there (with their published tracks).
    #[serde(rename_all = "camelCase")]
    Joined {
        protocol_version: u32,
        room: String,
        peer_id: String,
        members: Vec<PeerInfo>,
    },
    /// The server's answer to a client offer.
    Answer { sdp: String },
    /// A server-initiated offer (new receive slots); the client answers with `answer`.
    Offer { sdp: String },
    /// A server ICE candidate (also present in every SDP the server sends).
    #[serde(rename_all = "camelCase")]
    Candidate {
        candidate: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_m_line_index: Option<u16>,
    },
    /// Somebody entered the room.
    PeerJoined { peer: PeerInfo },
    /// Somebody left the room; their tracks were unpublished just before.
    #[serde(rename_all = "camelCase")]
    PeerLeft { peer_id: String },
    /// A track of `peerId` now arrives on this connection's m-line `mid`, in the remote stream
    /// `streamId`. A mid is reused for other tracks over time: key remote media on `mid` and on
    /// the latest of these events, not on the browser's track or stream ids.
    #[serde(rename_all = "camelCase")]
    TrackPublished {
        track: TrackInfo,
        peer_id: String,
        mid: String,
        stream_id: String,
    },
    /// The track stopped arriving on `mid` (its owner unpublished it or left).
    #[serde(rename_all = "camelCase")]
    TrackUnpublished {
        track_id: String,
        peer_id: String,
        mid: String,
    },
    /// The server ended this participant's session; the WebSocket closes after it.
    Left { reason: LeaveReason },
    /// The credential was replaced; the session now lasts until `expiresAt` (Unix seconds).
    #[serde(rename_all = "camelCase")]
    CredentialUpdated { expires_at: u64 },
    /// A data message from another peer (`from`), or from the server's admin API (`from` absent).
    Message {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        data: Payload,
    },
    /// An operator muted or unmuted a track: the server stops (or resumes) forwarding it.
    #[serde(rename_all = "camelCase")]
    TrackMuted {
        track_id: String,
        peer_id: String,
        kind: MediaKind,
        muted: bool,
    },
    /// The server is shutting down: finish up; sessions still open after `deadlineMs`
    /// (milliseconds from now) are closed with `serverShutdown`.
    #[serde(rename_all = "camelCase")]
    Draining { deadline_ms: u64 },
    /// A request was refused, or something went wrong for this participant only.
    Error {
        code: ErrorCode,
        message: String,
        /// The `type` of the client message this answers, when it answers one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
    },
}

/// A member of a room as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub peer_id: String,
    pub name: String,
    pub tracks: Vec<TrackInfo>,
}

/// A published track: `trackId` is unique within the room while the track exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    pub track_id: String,
    pub kind: MediaKind,
    /// Muted by an operator (not forwarded); omitted when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub muted: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MediaKind {
    Audio,
    Video,
}

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
    /// A server fault; the session may continue, report it if it repeats.
    Internal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_matches_the_serialized_tag() {
        let all = [
            ClientMessage::Join {
                room: "r".into(),
                name: None,
                peer_id: None,
                mode: RoomMode::Sfu,
                credential: None,
            },
            ClientMessage::Offer { sdp: "x".into() },
            ClientMessage::Answer { sdp: "x".into() },
            ClientMessage::Candidate {
                candidate: String::new(),
                sdp_mid: None,
                sdp_m_line_index: None,
            },
            ClientMessage::Leave {},
            ClientMessage::UpdateCredential {
                credential: Credential {
                    timestamp: 1,
                    ttl: 2,
                    auth_token: "x".into(),
                },
            },
            ClientMessage::Message {
                data: serde_json::json!({"hello": 1}).into(),
                to: None,
            },
        ];
        for msg in all {
            let json = serde_json::to_value(&msg).expect("serializable");
            assert_eq!(json["type"], msg.kind());
        }
    }

    #[test]
    fn unknown_type_and_missing_fields_are_errors() {
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"offer"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"room":"a"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"[1,2]"#).is_err());
    }
}
