//! Switchboard's signalling protocol: the JSON messages a client and the server exchange over the
//! WebSocket at `/v1/ws`, and the rules that validate names.
//!
//! Every message is a JSON object with a `type` field; fields are camelCase. The server is the
//! single source of truth for this format: the golden fixtures in `tests/fixtures/` pin it, and
//! `docs/protocol.md` documents it for people writing clients in other languages.

pub mod admin;
mod client;
mod codes;
mod names;
mod payload;
pub mod peer;
pub mod relay;
mod server;
mod types;
pub mod webhook;

pub use client::{ClientMessage, Credential, RoomMode, TrackPublication};
pub use codes::{ErrorCode, LeaveReason};
pub use names::{validate_display_name, validate_peer_id, validate_room_name, NameError};
pub use payload::Payload;
pub use server::{ServerMessage, SlotInfo};
pub use types::{
    ActiveSpeaker, AudioLevel, IceServer, LayerWanted, MediaKind, MediaState, MuteOrigin,
    PauseReason, PeerInfo, Quality, TrackInfo, TrackSource, MAX_TRACK_DESCRIPTION,
};

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
                auto_subscribe: None,
            },
            ClientMessage::Resume {
                token: "t".into(),
                credential: None,
            },
            ClientMessage::Offer {
                sdp: "x".into(),
                tracks: Vec::new(),
            },
            ClientMessage::DefineTrack {
                name: "screen".into(),
                kind: MediaKind::Video,
                source: Some(TrackSource::Screen),
                description: None,
            },
            ClientMessage::RemoveTrack {
                track_id: "p:screen".into(),
            },
            ClientMessage::Subscribe {
                track_id: "p:screen".into(),
            },
            ClientMessage::Unsubscribe {
                track_id: "p:screen".into(),
            },
            ClientMessage::Mute {
                track_id: "p:screen".into(),
                muted: true,
            },
            ClientMessage::Answer { sdp: "x".into() },
            ClientMessage::Candidate {
                candidate: String::new(),
                sdp_mid: None,
                sdp_m_line_index: None,
            },
            ClientMessage::Ping {},
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
