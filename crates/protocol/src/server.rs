//! Messages the server sends.

use serde::{Deserialize, Serialize};

use crate::{
    ActiveSpeaker, ErrorCode, IceServer, LayerWanted, LeaveReason, MediaKind, MediaState,
    MuteOrigin, PauseReason, Payload, PeerInfo, TrackInfo,
};

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    /// Reply to `join`: who you are and who is already there (with their tracks).
    #[serde(rename_all = "camelCase")]
    Joined {
        protocol_version: u32,
        room: String,
        peer_id: String,
        members: Vec<PeerInfo>,
        /// Present a new connection's `resume` with this if this one drops (absent when the
        /// server keeps no session for a dropped connection).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
        /// TURN/STUN servers for this client's `RTCPeerConnection`, with credentials minted for
        /// it now (absent when the server has none configured). The shard leaves it empty; the
        /// control plane fills it in on the way to the WebSocket.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// Reply to `resume`: the session is yours again. The state of the room as of now (your
    /// receive slots, the members and their tracks); what happened while you were away that
    /// this does not show (data messages) follows it.
    #[serde(rename_all = "camelCase")]
    Resumed {
        protocol_version: u32,
        room: String,
        peer_id: String,
        members: Vec<PeerInfo>,
        /// What arrives on each of your receive m-lines now.
        slots: Vec<SlotInfo>,
        /// For the next drop: tokens are single-use.
        resume_token: String,
        /// Fresh TURN/STUN credentials, as in `joined`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// The answer to `ping`.
    Pong {},
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
    /// Somebody left the room; their tracks were removed just before.
    #[serde(rename_all = "camelCase")]
    PeerLeft { peer_id: String },
    /// A member's signalling connection dropped; the server keeps its session (and forwards
    /// its media if any still flows) for the grace period. `peerReconnected` or `peerLeft`
    /// follows.
    #[serde(rename_all = "camelCase")]
    PeerReconnecting { peer_id: String },
    /// The member is back (same peer id, same tracks).
    #[serde(rename_all = "camelCase")]
    PeerReconnected { peer_id: String },
    /// A member's track exists (or changed: it went live, or stopped being live): for
    /// discovery. Sent to every other member, subscribed or not.
    #[serde(rename_all = "camelCase")]
    TrackDefined { peer_id: String, track: TrackInfo },
    /// A member's track is gone from the room.
    #[serde(rename_all = "camelCase")]
    TrackRemoved { peer_id: String, track_id: String },
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
    /// The track stopped arriving on `mid` (its owner unpublished it, left, or you
    /// unsubscribed).
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
    /// A track was muted or unmuted, by its owner or by an operator: the server stops (or
    /// resumes) forwarding it.
    #[serde(rename_all = "camelCase")]
    TrackMuted {
        track_id: String,
        peer_id: String,
        kind: MediaKind,
        muted: bool,
        #[serde(default)]
        by: MuteOrigin,
    },
    /// The server stopped forwarding a track to you (your link cannot carry it); it stays
    /// subscribed, on the same m-line, and `trackResumed` follows when it fits again.
    #[serde(rename_all = "camelCase")]
    TrackPaused {
        track_id: String,
        peer_id: String,
        mid: String,
        reason: PauseReason,
    },
    /// A track paused by `trackPaused` flows again (from a keyframe).
    #[serde(rename_all = "camelCase")]
    TrackResumed {
        track_id: String,
        peer_id: String,
        mid: String,
    },
    /// Dynacast: which encodings of one of your video tracks anybody receives, sent when that
    /// changes. Stop encoding the inactive ones (`RTCRtpSender.setParameters` with
    /// `encodings[i].active = false`) and start them again when they turn active: nobody pays
    /// for layers nobody watches. A layer turns active at once and inactive only after nobody
    /// wanted it for a few seconds.
    #[serde(rename_all = "camelCase")]
    LayersWanted {
        track_id: String,
        mid: String,
        layers: Vec<LayerWanted>,
    },
    /// What a member sends right now (LumenJS's `media-changed`): sent to the room when it
    /// changes.
    #[serde(rename_all = "camelCase")]
    MediaState { peer_id: String, state: MediaState },
    /// Who in the room is talking, loudest first (from the audio level each publisher's packets
    /// carry, RFC 6464): sent to the room at most every 300 ms, and only when the list or its
    /// order changed. An empty list: nobody talks.
    ActiveSpeakers { speakers: Vec<ActiveSpeaker> },
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

/// One receive m-line and the track on it (in `resumed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotInfo {
    pub mid: String,
    pub peer_id: String,
    pub stream_id: String,
    pub track: TrackInfo,
}
