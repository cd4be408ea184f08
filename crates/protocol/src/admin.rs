//! Bodies of the admin REST API (`docs/operations.md`, `/openapi.json`).

use serde::{Deserialize, Serialize};

use crate::MediaKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSummary {
    pub room: String,
    pub participants: usize,
    pub tracks: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomDetail {
    pub room: String,
    pub participants: Vec<ParticipantDetail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantDetail {
    pub peer_id: String,
    pub name: String,
    /// ICE and DTLS are up.
    pub connected: bool,
    pub tracks: Vec<TrackDetail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackDetail {
    pub track_id: String,
    pub kind: MediaKind,
    /// Muted by an operator: not forwarded.
    pub muted: bool,
    /// Participants currently receiving it.
    pub subscribers: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuteRequest {
    pub muted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRequest {
    pub data: crate::Payload,
    /// A peer id; absent = everyone in the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// `PUT .../participants/{peerId}/subscriptions`: track ids to start and to stop receiving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRequest {
    #[serde(default)]
    pub subscribe: Vec<String>,
    #[serde(default)]
    pub unsubscribe: Vec<String>,
}

/// The body of every admin error reply, with the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: String,
    pub message: String,
}

/// A peer registered on `/v1/peer` (`GET /v1/peers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSummary {
    pub peer_id: String,
    /// The id of the API key its credential was signed with ("" without a credential).
    pub key: String,
    /// False while its connection is gone and the reconnect grace runs.
    pub connected: bool,
    pub calls: Vec<String>,
    pub mesh_rooms: Vec<String>,
}
