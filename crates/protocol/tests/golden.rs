//! Golden fixtures pin the wire format: each file in `fixtures/` must parse into the message
//! built here, and that message must serialize back to the same JSON. Changing a name or a
//! field breaks this test: bump `PROTOCOL_VERSION` and update `docs/protocol.md` with it.

use std::path::Path;

use serde_json::Value;
use switchboard_protocol::*;

fn fixture(path: &str) -> Value {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{full:?}: {e}"))
}

fn check_client(path: &str, expected: ClientMessage) {
    let json = fixture(path);
    let parsed: ClientMessage = serde_json::from_value(json.clone()).expect("fixture parses");
    assert_eq!(parsed, expected, "{path}");
    let mut back = serde_json::to_value(&expected).expect("serializes");
    // `mode` is optional on input (defaults to sfu) and always written on output.
    if json.get("mode").is_none() {
        back.as_object_mut().expect("object").remove("mode");
    }
    assert_eq!(back, json, "{path}");
}

fn check_server(path: &str, expected: ServerMessage) {
    let json = fixture(path);
    let parsed: ServerMessage = serde_json::from_value(json.clone()).expect("fixture parses");
    assert_eq!(parsed, expected, "{path}");
    assert_eq!(
        serde_json::to_value(&expected).expect("serializes"),
        json,
        "{path}"
    );
}

fn sdp(origin: &str) -> String {
    format!("v=0\r\no=- {origin} IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
}

#[test]
fn client_messages() {
    check_client(
        "client/join.json",
        ClientMessage::Join {
            room: "standup".into(),
            name: Some("Ada Lovelace".into()),
            peer_id: Some("ada".into()),
            mode: RoomMode::Sfu,
            credential: None,
            auto_subscribe: None,
        },
    );
    check_client(
        "client/join_minimal.json",
        ClientMessage::Join {
            room: "standup".into(),
            name: None,
            peer_id: None,
            mode: RoomMode::Sfu,
            credential: None,
            auto_subscribe: None,
        },
    );
    check_client(
        "client/join_selective.json",
        ClientMessage::Join {
            room: "standup".into(),
            name: None,
            peer_id: Some("ada".into()),
            mode: RoomMode::Sfu,
            credential: None,
            auto_subscribe: Some(false),
        },
    );
    check_client(
        "client/offer.json",
        ClientMessage::Offer {
            sdp: sdp("1 1"),
            tracks: vec![],
        },
    );
    check_client(
        "client/offer_with_tracks.json",
        ClientMessage::Offer {
            sdp: sdp("4 1"),
            tracks: vec![
                TrackPublication {
                    mid: "0".into(),
                    name: Some("mic".into()),
                    source: None,
                    description: None,
                },
                TrackPublication {
                    mid: "1".into(),
                    name: Some("screen".into()),
                    source: Some(TrackSource::Screen),
                    description: Some("slides".into()),
                },
            ],
        },
    );
    check_client(
        "client/define_track.json",
        ClientMessage::DefineTrack {
            name: "screen".into(),
            kind: MediaKind::Video,
            source: Some(TrackSource::Screen),
            description: Some("slides".into()),
        },
    );
    check_client(
        "client/remove_track.json",
        ClientMessage::RemoveTrack {
            track_id: "ada:screen".into(),
        },
    );
    check_client(
        "client/subscribe.json",
        ClientMessage::Subscribe {
            track_id: "grace:screen".into(),
        },
    );
    check_client(
        "client/unsubscribe.json",
        ClientMessage::Unsubscribe {
            track_id: "grace:screen".into(),
        },
    );
    check_client(
        "client/mute.json",
        ClientMessage::Mute {
            track_id: "ada:mic".into(),
            muted: true,
        },
    );
    check_client(
        "client/resume.json",
        ClientMessage::Resume {
            token: "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
            credential: None,
        },
    );
    check_client("client/ping.json", ClientMessage::Ping {});
    check_client(
        "client/answer.json",
        ClientMessage::Answer { sdp: sdp("2 1") },
    );
    check_client(
        "client/candidate.json",
        ClientMessage::Candidate {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 54321 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
        },
    );
    check_client(
        "client/end_of_candidates.json",
        ClientMessage::Candidate {
            candidate: String::new(),
            sdp_mid: None,
            sdp_m_line_index: None,
        },
    );
    check_client("client/leave.json", ClientMessage::Leave {});
    check_client(
        "client/join_with_credential.json",
        ClientMessage::Join {
            room: "standup".into(),
            name: None,
            peer_id: Some("ada".into()),
            mode: RoomMode::Sfu,
            credential: Some(Credential {
                timestamp: 1_700_000_000,
                ttl: 3600,
                auth_token: "uVuiQNsH1nseYIKg64+Q2MI+2l6vDejbN+0LA8Qcgog=".into(),
            }),
            auto_subscribe: None,
        },
    );
    check_client(
        "client/update_credential.json",
        ClientMessage::UpdateCredential {
            credential: Credential {
                timestamp: 1_700_003_000,
                ttl: 3600,
                auth_token: "c2lnbmF0dXJl".into(),
            },
        },
    );
    check_client(
        "client/set_track_quality.json",
        ClientMessage::SetTrackQuality {
            track_id: "ada:cam".into(),
            quality: Some(Quality::Low),
            priority: Some(5),
        },
    );
    check_client(
        "client/message.json",
        ClientMessage::Message {
            data: serde_json::json!({"chat": "hello"}).into(),
            to: Some("grace".into()),
        },
    );
}

#[test]
fn join_without_mode_means_sfu_and_extra_fields_are_tolerated() {
    let msg: ClientMessage =
        serde_json::from_str(r#"{"type":"join","room":"r","ticket":{"ttl":60},"myAppField":1}"#)
            .expect("unknown fields are ignored, for forward compatibility");
    assert!(matches!(
        msg,
        ClientMessage::Join {
            mode: RoomMode::Sfu,
            ..
        }
    ));
}

#[test]
fn server_messages() {
    let grace_audio = TrackInfo {
        track_id: "grace:0".into(),
        kind: MediaKind::Audio,
        source: Some(TrackSource::Microphone),
        description: None,
        live: true,
        muted: false,
    };
    check_server(
        "server/joined.json",
        ServerMessage::Joined {
            protocol_version: 1,
            room: "standup".into(),
            peer_id: "ada".into(),
            members: vec![PeerInfo {
                peer_id: "grace".into(),
                name: "Grace Hopper".into(),
                tracks: vec![
                    grace_audio.clone(),
                    TrackInfo {
                        track_id: "grace:screen".into(),
                        kind: MediaKind::Video,
                        source: Some(TrackSource::Screen),
                        description: Some("slides".into()),
                        live: true,
                        muted: false,
                    },
                    TrackInfo {
                        track_id: "grace:notes".into(),
                        kind: MediaKind::Video,
                        source: Some(TrackSource::Other),
                        description: None,
                        live: false,
                        muted: false,
                    },
                ],
                media_state: MediaState {
                    audio: true,
                    video: false,
                    screen_share: true,
                },
            }],
            resume_token: Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0".into()),
            ice_servers: vec![IceServer {
                urls: vec![
                    "turn:turn.example.com:3478?transport=udp".into(),
                    "turns:turn.example.com:5349?transport=tcp".into(),
                ],
                username: Some("1767225600:ada".into()),
                credential: Some("H19j/bOMZt2ipNSLYCn1zfWLXho=".into()),
            }],
        },
    );
    check_server(
        "server/resumed.json",
        ServerMessage::Resumed {
            protocol_version: 1,
            room: "standup".into(),
            peer_id: "ada".into(),
            members: vec![PeerInfo {
                peer_id: "grace".into(),
                name: "Grace Hopper".into(),
                tracks: vec![grace_audio.clone()],
                media_state: MediaState {
                    audio: true,
                    ..MediaState::default()
                },
            }],
            slots: vec![SlotInfo {
                mid: "2".into(),
                peer_id: "grace".into(),
                stream_id: "sb3-77".into(),
                track: grace_audio,
            }],
            resume_token: "a1b2c3d4e5f60718293a4b5c6d7e8f90".into(),
            ice_servers: Vec::new(),
        },
    );
    check_server(
        "server/track_defined.json",
        ServerMessage::TrackDefined {
            peer_id: "grace".into(),
            track: TrackInfo {
                track_id: "grace:screen".into(),
                kind: MediaKind::Video,
                source: Some(TrackSource::Screen),
                description: Some("slides".into()),
                live: false,
                muted: false,
            },
        },
    );
    check_server(
        "server/track_removed.json",
        ServerMessage::TrackRemoved {
            peer_id: "grace".into(),
            track_id: "grace:screen".into(),
        },
    );
    check_server(
        "server/media_state.json",
        ServerMessage::MediaState {
            peer_id: "grace".into(),
            state: MediaState {
                audio: true,
                ..MediaState::default()
            },
        },
    );
    check_server(
        "server/peer_reconnecting.json",
        ServerMessage::PeerReconnecting {
            peer_id: "grace".into(),
        },
    );
    check_server(
        "server/peer_reconnected.json",
        ServerMessage::PeerReconnected {
            peer_id: "grace".into(),
        },
    );
    check_server("server/pong.json", ServerMessage::Pong {});
    check_server(
        "server/answer.json",
        ServerMessage::Answer { sdp: sdp("3 1") },
    );
    check_server(
        "server/offer.json",
        ServerMessage::Offer { sdp: sdp("3 2") },
    );
    check_server(
        "server/candidate.json",
        ServerMessage::Candidate {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into(),
            sdp_mid: None,
            sdp_m_line_index: Some(0),
        },
    );
    check_server(
        "server/peer_joined.json",
        ServerMessage::PeerJoined {
            peer: PeerInfo {
                peer_id: "linus".into(),
                name: "Linus".into(),
                tracks: vec![],
                media_state: MediaState::default(),
            },
        },
    );
    check_server(
        "server/peer_left.json",
        ServerMessage::PeerLeft {
            peer_id: "linus".into(),
        },
    );
    check_server(
        "server/track_published.json",
        ServerMessage::TrackPublished {
            track: TrackInfo {
                track_id: "grace:1".into(),
                kind: MediaKind::Video,
                source: Some(TrackSource::Camera),
                description: None,
                live: true,
                muted: false,
            },
            peer_id: "grace".into(),
            mid: "3".into(),
            stream_id: "sb7-123456".into(),
        },
    );
    check_server(
        "server/track_unpublished.json",
        ServerMessage::TrackUnpublished {
            track_id: "grace:1".into(),
            peer_id: "grace".into(),
            mid: "3".into(),
        },
    );
    check_server(
        "server/left.json",
        ServerMessage::Left {
            reason: LeaveReason::TransportClosed,
        },
    );
    check_server(
        "server/credential_updated.json",
        ServerMessage::CredentialUpdated {
            expires_at: 1_700_006_600,
        },
    );
    check_server(
        "server/message.json",
        ServerMessage::Message {
            from: Some("grace".into()),
            data: serde_json::json!({"chat": "hi"}).into(),
        },
    );
    check_server(
        "server/track_muted.json",
        ServerMessage::TrackMuted {
            track_id: "grace:1".into(),
            peer_id: "grace".into(),
            kind: MediaKind::Video,
            muted: true,
            by: MuteOrigin::Owner,
        },
    );
    check_server(
        "server/track_paused.json",
        ServerMessage::TrackPaused {
            track_id: "ada:cam".into(),
            peer_id: "ada".into(),
            mid: "3".into(),
            reason: PauseReason::Bandwidth,
        },
    );
    check_server(
        "server/track_resumed.json",
        ServerMessage::TrackResumed {
            track_id: "ada:cam".into(),
            peer_id: "ada".into(),
            mid: "3".into(),
        },
    );
    check_server(
        "server/draining.json",
        ServerMessage::Draining { deadline_ms: 30000 },
    );
    check_server(
        "server/error.json",
        ServerMessage::Error {
            code: ErrorCode::InvalidRoomName,
            message: "room name must not be empty".into(),
            request: Some("join".into()),
        },
    );
}

/// Messages in the shape servers sent before tracks had sources and members a media state
/// still parse (clients written against them keep working, and so does this SDK against them).
#[test]
fn earlier_shapes_still_parse() {
    let joined: ServerMessage = serde_json::from_str(
        r#"{"type":"joined","protocolVersion":1,"room":"r","peerId":"a",
            "members":[{"peerId":"g","name":"G","tracks":[{"trackId":"g:0","kind":"audio"}]}]}"#,
    )
    .expect("parses");
    let ServerMessage::Joined {
        members,
        resume_token,
        ..
    } = joined
    else {
        panic!("joined");
    };
    assert_eq!(resume_token, None);
    assert_eq!(members[0].media_state, MediaState::default());
    assert_eq!(members[0].tracks[0].source, None);
    assert!(
        members[0].tracks[0].live,
        "a track of an older server is live"
    );
    let muted: ServerMessage = serde_json::from_str(
        r#"{"type":"trackMuted","trackId":"g:1","peerId":"g","kind":"video","muted":true}"#,
    )
    .expect("parses");
    assert!(matches!(
        muted,
        ServerMessage::TrackMuted {
            by: MuteOrigin::Operator,
            ..
        }
    ));
}
