//! Control-plane settings: authentication, admission, webhooks, limits. The server binary
//! fills these from its config file, environment and flags.

use serde::{Deserialize, Serialize};

/// How joins and the admin API are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthMode {
    /// Joins without a credential are admitted (a credential, when given, is still checked).
    /// For trying Switchboard on one machine; never for real users.
    Dev,
    /// Every join needs a valid credential bound to its peer id.
    Required,
}

/// An application's API key: `id` is public, `secret` signs credentials and admin requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub keys: Vec<ApiKey>,
    /// Longest credential lifetime accepted (seconds).
    pub max_ttl_s: u64,
    /// Clock difference tolerated between the app server that minted a credential and us.
    pub clock_skew_s: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::Dev,
            keys: Vec::new(),
            max_ttl_s: 24 * 3600,
            clock_skew_s: 30,
        }
    }
}

/// Ask the application before admitting a join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct AdmissionConfig {
    pub url: String,
    pub timeout_ms: u64,
    /// Also ask before acting on every later client message (`docs/operations.md`).
    pub every_signal: bool,
}

/// Signed event notifications to the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct WebhookConfig {
    pub urls: Vec<String>,
    /// HMAC-SHA256 key for the `X-Switchboard-Signature` header; defaults to the first API key's
    /// secret when empty.
    pub secret: String,
    /// Delivery attempts per event (first try included).
    pub max_attempts: u32,
    /// Events waiting for delivery; beyond it new events are dropped (and counted).
    pub queue: usize,
    pub timeout_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            urls: Vec::new(),
            secret: String::new(),
            max_attempts: 6,
            queue: 10_000,
            timeout_ms: 5_000,
        }
    }
}

/// Every bound of the signalling plane (the media plane's are in the runtime config); each is
/// listed with its error code in `docs/robustness.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Limits {
    /// 0 = unlimited.
    pub max_participants_per_room: usize,
    /// 0 = unlimited.
    pub max_rooms: usize,
    /// Largest signalling message accepted (bytes).
    pub max_message_bytes: usize,
    /// Joins one IP address (IPv6: one /64) may attempt per minute; 0 = unlimited.
    pub joins_per_ip_per_minute: u32,
    /// Data messages (`message`) one connection may send per second; 0 = unlimited.
    pub messages_per_second: u32,
    /// Bytes of data messages one connection may send per second; 0 = unlimited.
    pub message_bytes_per_second: u64,
    /// Open signalling WebSocket connections in total; 0 = unlimited.
    pub max_connections: usize,
    /// Open signalling connections from one IP address (IPv6: one /64); 0 = unlimited.
    pub max_connections_per_ip: usize,
    /// A connection that has not joined a room this long after opening is closed (s).
    pub join_timeout_s: u64,
    /// A client that does not read a message within this long is dropped (s).
    pub send_timeout_s: u64,
    /// Tracks one participant may publish.
    pub max_tracks_per_participant: usize,
    /// m-lines one session may negotiate (sent and received).
    pub max_mlines_per_session: usize,
    /// Remote ICE candidates one session may send.
    pub max_candidates_per_session: usize,
    /// How long a session whose signalling connection dropped waits for a `resume` (s);
    /// 0 = no resume (a drop ends the session, as a `leave` would).
    pub resume_grace_s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_participants_per_room: 100,
            max_rooms: 0,
            max_message_bytes: switchboard_protocol::MAX_MESSAGE_BYTES,
            joins_per_ip_per_minute: 120,
            messages_per_second: 50,
            message_bytes_per_second: 256 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            join_timeout_s: 10,
            send_timeout_s: 10,
            max_tracks_per_participant: switchboard_protocol::MAX_TRACKS_PER_PARTICIPANT,
            max_mlines_per_session: switchboard_protocol::MAX_MLINES_PER_SESSION,
            max_candidates_per_session: switchboard_protocol::MAX_CANDIDATES_PER_SESSION,
            resume_grace_s: 20,
        }
    }
}

/// The TURN (and STUN) servers handed to clients in `joined` and `resumed`, with credentials
/// minted per participant (see [`crate::turn`]). Nothing is handed out while `urls` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct TurnConfig {
    /// `turn:`/`turns:` URLs get the minted username and credential; `stun:` URLs are handed
    /// out without them (STUN needs none).
    pub urls: Vec<String>,
    /// Shared with the TURN server: coturn's `static-auth-secret`.
    pub secret: String,
    /// How long a minted credential stays valid (s).
    pub ttl_s: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            urls: Vec::new(),
            secret: String::new(),
            ttl_s: 86_400,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ControlConfig {
    pub auth: AuthConfig,
    pub admission: Option<AdmissionConfig>,
    pub webhooks: WebhookConfig,
    pub limits: Limits,
    pub turn: TurnConfig,
    pub calls: CallsConfig,
}

/// The `[calls]` settings: ringing calls and mesh rooms on `/v1/peer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct CallsConfig {
    /// A callee that does not answer within this is `missed` (s).
    pub ring_timeout_s: u64,
    /// A peer whose connection dropped stays registered, and in its calls, this long (s).
    pub reconnect_grace_s: u64,
    /// Ring a peer that is in another call (call waiting) instead of answering `busy`.
    pub ring_when_busy: bool,
    /// Most callees one call rings (invited later included).
    pub max_callees: usize,
    /// Most calls one peer is in or rung for at once.
    pub max_calls_per_peer: usize,
    /// `callInitiate`s one peer may send per minute; 0 = unlimited.
    pub initiate_per_minute: u32,
    /// Most members of a mesh room.
    pub mesh_max_members: usize,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            ring_timeout_s: 30,
            reconnect_grace_s: 20,
            ring_when_busy: false,
            max_callees: 8,
            max_calls_per_peer: 4,
            initiate_per_minute: 30,
            mesh_max_members: 8,
        }
    }
}
