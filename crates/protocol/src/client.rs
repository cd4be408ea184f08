//! Messages a client sends.

use serde::{Deserialize, Serialize};

use crate::{MediaKind, Payload, Quality, TrackSource};

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
        /// Receive every track of the room as it is published (the default), or only the ones
        /// asked for with `subscribe`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auto_subscribe: Option<bool>,
    },
    /// Instead of `join` on a new connection: take back the session a dropped connection left,
    /// with the token from `joined` (or the latest `resumed`).
    Resume {
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<Credential>,
    },
    /// An SDP offer from the client (its first offer, or a renegotiation it starts). `tracks`
    /// describes the m-lines on which the client sends: each becomes a named, described track.
    Offer {
        sdp: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tracks: Vec<TrackPublication>,
    },
    /// The client's answer to a server [`crate::ServerMessage::Offer`].
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
    /// Make a track discoverable before any media flows for it (rtc-cafe's `addTrack`). An
    /// offer whose `tracks` names it later makes it live.
    DefineTrack {
        name: String,
        kind: MediaKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<TrackSource>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// Take one of your tracks (defined or live) out of the room.
    #[serde(rename_all = "camelCase")]
    RemoveTrack { track_id: String },
    /// Receive this track (any member's), now or as soon as it goes live.
    #[serde(rename_all = "camelCase")]
    Subscribe { track_id: String },
    /// Stop receiving this track.
    #[serde(rename_all = "camelCase")]
    Unsubscribe { track_id: String },
    /// Mute or unmute one of your own tracks: the server stops (or resumes) forwarding it and
    /// tells the room.
    #[serde(rename_all = "camelCase")]
    Mute { track_id: String, muted: bool },
    /// How you want one track you receive: the quality (simulcast layer) at most, and its
    /// priority when your link cannot carry everything (higher first; default 0). Fields left
    /// out keep their value. Applies from the next allocation (within half a second).
    #[serde(rename_all = "camelCase")]
    SetTrackQuality {
        track_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quality: Option<Quality>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<u8>,
    },
    /// Keepalive: the server answers `pong`. A client that hears nothing for a while knows its
    /// connection is dead (browsers cannot send WebSocket pings), and the server counts any
    /// message as a sign of life.
    Ping {},
    /// Leave the room; the server replies with [`crate::ServerMessage::Left`] and closes.
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

/// What one sending m-line of an offer publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackPublication {
    /// The m-line (`a=mid`) in the offer's SDP.
    pub mid: String,
    /// The track's name (its `trackId` is `<peerId>:<name>`): a name given to `defineTrack`
    /// makes that track live. Default: the mid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Default: `microphone` for audio, `camera` for video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TrackSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
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
            ClientMessage::Resume { .. } => "resume",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Candidate { .. } => "candidate",
            ClientMessage::DefineTrack { .. } => "defineTrack",
            ClientMessage::RemoveTrack { .. } => "removeTrack",
            ClientMessage::Subscribe { .. } => "subscribe",
            ClientMessage::Unsubscribe { .. } => "unsubscribe",
            ClientMessage::Mute { .. } => "mute",
            ClientMessage::SetTrackQuality { .. } => "setTrackQuality",
            ClientMessage::Ping {} => "ping",
            ClientMessage::Leave {} => "leave",
            ClientMessage::UpdateCredential { .. } => "updateCredential",
            ClientMessage::Message { .. } => "message",
        }
    }
}

/// How a room moves media. `/v1/ws` joins `sfu` rooms; mesh rooms (the server relays signals,
/// the members connect to each other) are joined on the peer connection with `meshJoin`, and a
/// `join` naming `mesh` is refused with `wrongRoomMode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RoomMode {
    #[default]
    Sfu,
    Mesh,
}
