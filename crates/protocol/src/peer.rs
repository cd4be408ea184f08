//! Messages of the peer connection (`/v1/peer`): presence, ringing calls and mesh rooms.
//!
//! A peer connection is how a client stays reachable while it is in no room. It carries the
//! peer's calls (ringing, answering, the signals of peer-to-peer calls) and its mesh rooms; SFU
//! rooms, including the private rooms of `sfu` calls, keep their own `/v1/ws` connection each.
//! `docs/protocol-peer.md` is the spec.

use serde::{Deserialize, Serialize};

use crate::{Credential, ErrorCode, IceServer, Payload};

/// Messages a client sends on its peer connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum PeerClientMessage {
    /// First message: be reachable as `peerId` (assigned when absent). With the `resumeToken`
    /// of an earlier `registered`, take over that registration (a reconnect that keeps the
    /// identity and the calls).
    #[serde(rename_all = "camelCase")]
    Register {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<Credential>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
    },
    /// The ids of every peer online under the same API key (this one included).
    ListPeers {},
    /// Ring `calleeIds` (one for a 1:1 call, more for a group call).
    #[serde(rename_all = "camelCase")]
    CallInitiate {
        /// Chosen by the caller (peer id rules); unique while the call exists.
        call_id: String,
        callee_ids: Vec<String>,
        #[serde(default)]
        media: CallMedia,
        #[serde(default, rename = "callType")]
        kind: CallKind,
        /// Anything the application wants the callees to see (at most 4 KiB as JSON).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<serde_json::Value>,
        /// The application's conversation this call belongs to (LumenJS), passed through.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
    },
    /// Ring more peers into a call you are in.
    #[serde(rename_all = "camelCase")]
    CallInvite {
        call_id: String,
        callee_ids: Vec<String>,
    },
    /// Accept or reject a call you are being rung for.
    #[serde(rename_all = "camelCase")]
    CallRespond {
        call_id: String,
        action: CallAction,
    },
    /// Leave a call (the caller hanging up while it rings cancels it). `reason: failed` says the
    /// media connection could not be made or kept.
    #[serde(rename_all = "camelCase")]
    CallHangup {
        call_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<HangupReason>,
    },
    /// Relay `signal` (an offer, answer or candidate: any JSON object) to `to`, another
    /// participant of the call. The server does not look inside.
    #[serde(rename_all = "camelCase")]
    CallSignal {
        call_id: String,
        to: String,
        signal: serde_json::Value,
    },
    /// How this participant's media connection for the call is doing: drives `connecting →
    /// connected ⇄ reconnecting`.
    #[serde(rename_all = "camelCase")]
    CallTransport {
        call_id: String,
        state: TransportState,
    },
    /// What this participant sends now (LumenJS `call:media-toggle`).
    #[serde(rename_all = "camelCase")]
    CallMediaToggle {
        call_id: String,
        audio: bool,
        video: bool,
        #[serde(default)]
        screen_share: bool,
    },
    /// Enter a mesh room (created on first join): the server relays signals between members.
    MeshJoin {
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    MeshLeave {
        room: String,
    },
    /// Relay `signal` to `to`, another member of the mesh room.
    MeshSignal {
        room: String,
        to: String,
        signal: serde_json::Value,
    },
    /// A data message to every other member of the mesh room, or to one (`to`).
    MeshMessage {
        room: String,
        data: Payload,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    UpdateCredential {
        credential: Credential,
    },
    Ping {},
    /// Go offline: every call is left, every mesh room too; answered by `left`.
    Leave {},
}

impl PeerClientMessage {
    /// The `type` tag, for error replies.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerClientMessage::Register { .. } => "register",
            PeerClientMessage::ListPeers {} => "listPeers",
            PeerClientMessage::CallInitiate { .. } => "callInitiate",
            PeerClientMessage::CallInvite { .. } => "callInvite",
            PeerClientMessage::CallRespond { .. } => "callRespond",
            PeerClientMessage::CallHangup { .. } => "callHangup",
            PeerClientMessage::CallSignal { .. } => "callSignal",
            PeerClientMessage::CallTransport { .. } => "callTransport",
            PeerClientMessage::CallMediaToggle { .. } => "callMediaToggle",
            PeerClientMessage::MeshJoin { .. } => "meshJoin",
            PeerClientMessage::MeshLeave { .. } => "meshLeave",
            PeerClientMessage::MeshSignal { .. } => "meshSignal",
            PeerClientMessage::MeshMessage { .. } => "meshMessage",
            PeerClientMessage::UpdateCredential { .. } => "updateCredential",
            PeerClientMessage::Ping {} => "ping",
            PeerClientMessage::Leave {} => "leave",
        }
    }
}

/// How a call moves its media.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallMedia {
    /// A private SFU room (`call.<callId>`): works without TURN behind hostile NATs and for
    /// group calls. The default.
    #[default]
    Sfu,
    /// The participants connect to each other; the server relays their signals only.
    P2p,
}

/// What a call is for: ringing UIs ring `audio` and `video` calls; `data` calls are SkyWay
/// `DataConnection`s, accepted by the SDK without ringing and never `busy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallKind {
    Audio,
    #[default]
    Video,
    Data,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallAction {
    Accept,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HangupReason {
    /// The user hung up (the default).
    Completed,
    /// The media connection failed.
    Failed,
}

/// A participant's media connection for a call, as its client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransportState {
    Connected,
    /// Lost for now (ICE `disconnected`, a dropped SFU connection being resumed).
    Disconnected,
    /// Gone for good: the participant leaves the call with `failed`.
    Failed,
}

/// A call's state (LumenJS's state machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallState {
    Initiating,
    Ringing,
    Connecting,
    Connected,
    Reconnecting,
    Ended,
}

/// Why a call ended (for everyone), or why one participant is out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallEndReason {
    /// Hung up after it was answered.
    Completed,
    Rejected,
    /// Nobody answered within the ring timeout.
    Missed,
    /// The callee was in another call.
    Busy,
    /// The media connection failed, or a participant stayed offline past the grace period.
    Failed,
    /// The caller hung up before anybody answered.
    Cancelled,
}

/// A call as its participants see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallInfo {
    pub call_id: String,
    /// Artico's session name: `call:<callId>`.
    pub session: String,
    pub caller_id: String,
    /// Everyone rung so far (invited later too).
    pub callee_ids: Vec<String>,
    pub media: CallMedia,
    #[serde(rename = "callType")]
    pub kind: CallKind,
    pub state: CallState,
    /// The SFU room that carries an `sfu` call's media (join it on `/v1/ws` after accepting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Who is in the call now (the caller and everyone who accepted and has not left).
    pub participants: Vec<String>,
}

/// A mesh room member as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshMember {
    pub peer_id: String,
    pub name: String,
}

/// Messages the server sends on a peer connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum PeerServerMessage {
    #[serde(rename_all = "camelCase")]
    Registered {
        protocol_version: u32,
        peer_id: String,
        /// Present it with `register` on a new connection if this one drops.
        resume_token: String,
        /// STUN/TURN for `p2p` calls and mesh rooms, with credentials minted now.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
        /// Calls this peer is in or rung for (after a take-over).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        calls: Vec<CallInfo>,
    },
    #[serde(rename_all = "camelCase")]
    Peers {
        peer_ids: Vec<String>,
    },
    /// Reply to `callInitiate`: the call exists and rings.
    CallCreated {
        call: CallInfo,
    },
    /// You are being rung.
    CallIncoming {
        call: CallInfo,
    },
    #[serde(rename_all = "camelCase")]
    CallStateChanged {
        call_id: String,
        state: CallState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_reason: Option<CallEndReason>,
    },
    #[serde(rename_all = "camelCase")]
    CallParticipantJoined {
        call_id: String,
        peer_id: String,
    },
    /// Somebody is out of the call: they hung up, rejected, did not answer, were busy.
    #[serde(rename_all = "camelCase")]
    CallParticipantLeft {
        call_id: String,
        peer_id: String,
        reason: CallEndReason,
    },
    #[serde(rename_all = "camelCase")]
    CallMediaChanged {
        call_id: String,
        peer_id: String,
        audio: bool,
        video: bool,
        screen_share: bool,
    },
    #[serde(rename_all = "camelCase")]
    CallSignal {
        call_id: String,
        from: String,
        signal: serde_json::Value,
    },
    MeshJoined {
        room: String,
        members: Vec<MeshMember>,
    },
    MeshLeft {
        room: String,
    },
    MeshPeerJoined {
        room: String,
        peer: MeshMember,
    },
    #[serde(rename_all = "camelCase")]
    MeshPeerLeft {
        room: String,
        peer_id: String,
    },
    MeshSignal {
        room: String,
        from: String,
        signal: serde_json::Value,
    },
    MeshMessage {
        room: String,
        from: String,
        data: Payload,
    },
    #[serde(rename_all = "camelCase")]
    CredentialUpdated {
        expires_at: u64,
    },
    Pong {},
    #[serde(rename_all = "camelCase")]
    Draining {
        deadline_ms: u64,
    },
    /// The registration ended; the connection closes after it.
    Left {
        reason: PeerLeaveReason,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
    },
}

/// Why the server ended a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PeerLeaveReason {
    Requested,
    /// Another connection registered with this registration's resume token.
    TakenOver,
    CredentialExpired,
    ServerShutdown,
    /// An operator removed the peer.
    Kicked,
    TooSlow,
}
