//! What the server tells the application's HTTP endpoints: signed event notifications and the
//! admission request for a join. See `docs/operations.md` for delivery and signatures.

use serde::{Deserialize, Serialize};

use crate::peer::{CallEndReason, CallKind, CallMedia};
use crate::{LeaveReason, MediaKind};

/// One room or participant event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum WebhookEvent {
    RoomStarted {
        room: String,
    },
    RoomFinished {
        room: String,
    },
    #[serde(rename_all = "camelCase")]
    ParticipantJoined {
        room: String,
        peer_id: String,
        name: String,
    },
    #[serde(rename_all = "camelCase")]
    ParticipantLeft {
        room: String,
        peer_id: String,
        reason: LeaveReason,
    },
    #[serde(rename_all = "camelCase")]
    TrackPublished {
        room: String,
        peer_id: String,
        track_id: String,
        kind: MediaKind,
    },
    #[serde(rename_all = "camelCase")]
    TrackUnpublished {
        room: String,
        peer_id: String,
        track_id: String,
    },
    /// A peer registered on `/v1/peer` (presence).
    #[serde(rename_all = "camelCase")]
    PeerOnline {
        peer_id: String,
    },
    /// A peer left, or stayed disconnected past the reconnect grace.
    #[serde(rename_all = "camelCase")]
    PeerOffline {
        peer_id: String,
    },
    #[serde(rename_all = "camelCase")]
    CallStarted {
        call_id: String,
        caller_id: String,
        callee_ids: Vec<String>,
        media: CallMedia,
        call_type: CallKind,
    },
    #[serde(rename_all = "camelCase")]
    CallEnded {
        call_id: String,
        end_reason: CallEndReason,
        duration_ms: u64,
    },
}

impl WebhookEvent {
    /// The `event` tag (also sent as the `X-Switchboard-Event` header).
    pub fn name(&self) -> &'static str {
        match self {
            WebhookEvent::RoomStarted { .. } => "roomStarted",
            WebhookEvent::RoomFinished { .. } => "roomFinished",
            WebhookEvent::ParticipantJoined { .. } => "participantJoined",
            WebhookEvent::ParticipantLeft { .. } => "participantLeft",
            WebhookEvent::TrackPublished { .. } => "trackPublished",
            WebhookEvent::TrackUnpublished { .. } => "trackUnpublished",
            WebhookEvent::PeerOnline { .. } => "peerOnline",
            WebhookEvent::PeerOffline { .. } => "peerOffline",
            WebhookEvent::CallStarted { .. } => "callStarted",
            WebhookEvent::CallEnded { .. } => "callEnded",
        }
    }
}

/// The body of one webhook POST. `id` is unique per event (retries reuse it: deduplicate on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    pub id: String,
    /// Unix time in milliseconds when the server saw the event.
    pub at_ms: u64,
    #[serde(flatten)]
    pub event: WebhookEvent,
}

/// The body of the admission POST made before a join is admitted (a 2xx reply admits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// `"join"`: tells this body from a [`SignalCheck`] at the same URL.
    #[serde(default = "join_check")]
    pub check: String,
    pub room: String,
    pub peer_id: String,
    pub name: String,
    /// The client's address as the server saw it.
    pub remote_addr: String,
    /// The complete `join` message, including any fields the application added to it.
    pub join: serde_json::Value,
}

fn join_check() -> String {
    "join".into()
}

/// With `admission.every_signal`, the POST made before each later client message is acted on
/// (a 2xx reply lets it through; anything else refuses that message with `admissionDenied`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalCheck {
    /// `"signal"`.
    pub check: String,
    pub room: String,
    pub peer_id: String,
    pub remote_addr: String,
    /// The message's `type`.
    pub signal_type: String,
    /// The complete message, including any fields the client added (rtc-cafe's
    /// `signalModifier` adds CSRF tokens this way).
    pub signal: serde_json::Value,
}
