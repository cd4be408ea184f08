//! Golden fixtures of the peer connection (`/v1/peer`, docs/protocol-peer.md): each file in
//! `fixtures/peer/` parses into the message built here and serializes back to the same JSON.

use std::path::Path;

use serde_json::{json, Value};
use switchboard_protocol::peer::*;
use switchboard_protocol::{Credential, IceServer, PROTOCOL_VERSION};

fn fixture(name: &str) -> Value {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/peer")
        .join(name);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{full:?}: {e}"))
}

fn check_client(name: &str, expected: PeerClientMessage) {
    let json = fixture(name);
    let parsed: PeerClientMessage = serde_json::from_value(json.clone()).expect("parses");
    assert_eq!(parsed, expected, "{name}");
    assert_eq!(
        serde_json::to_value(&expected).expect("serializes"),
        json,
        "{name}"
    );
    assert_eq!(json["type"], expected.kind(), "{name}");
}

fn check_server(name: &str, expected: PeerServerMessage) {
    let json = fixture(name);
    let parsed: PeerServerMessage = serde_json::from_value(json.clone()).expect("parses");
    assert_eq!(parsed, expected, "{name}");
    assert_eq!(
        serde_json::to_value(&expected).expect("serializes"),
        json,
        "{name}"
    );
}

#[test]
fn client_messages() {
    check_client(
        "register.json",
        PeerClientMessage::Register {
            peer_id: Some("bob".into()),
            credential: Some(Credential {
                timestamp: 1_764_680_000,
                ttl: 3600,
                auth_token: "c2lnbmVk".into(),
            }),
            resume_token: Some("9f2c".into()),
        },
    );
    check_client(
        "call_initiate.json",
        PeerClientMessage::CallInitiate {
            call_id: "c1".into(),
            callee_ids: vec!["bob".into(), "carol".into()],
            media: CallMedia::P2p,
            kind: CallKind::Audio,
            metadata: Some(json!({"topic": "standup"})),
            conversation_id: Some("conv-7".into()),
        },
    );
    check_client(
        "call_signal_client.json",
        PeerClientMessage::CallSignal {
            call_id: "c1".into(),
            to: "bob".into(),
            signal: json!({"type": "candidate",
                           "candidate": "candidate:1 1 udp 2122260223 10.0.0.2 50000 typ host",
                           "sdpMid": "0"}),
        },
    );
    check_client(
        "mesh_message_client.json",
        PeerClientMessage::MeshMessage {
            room: "huddle".into(),
            data: json!({"text": "hi"}).into(),
            to: Some("bob".into()),
        },
    );
}

#[test]
fn defaults_of_call_initiate() {
    let m: PeerClientMessage =
        serde_json::from_value(json!({"type": "callInitiate", "callId": "c", "calleeIds": ["b"]}))
            .expect("parses");
    assert!(matches!(
        m,
        PeerClientMessage::CallInitiate {
            media: CallMedia::Sfu,
            kind: CallKind::Video,
            ..
        }
    ));
}

#[test]
fn server_messages() {
    check_server(
        "registered.json",
        PeerServerMessage::Registered {
            protocol_version: PROTOCOL_VERSION,
            peer_id: "bob".into(),
            resume_token: "a1b2".into(),
            ice_servers: vec![IceServer {
                urls: vec!["stun:stun.example.com:3478".into()],
                username: None,
                credential: None,
            }],
            calls: Vec::new(),
        },
    );
    check_server(
        "call_incoming.json",
        PeerServerMessage::CallIncoming {
            call: CallInfo {
                call_id: "c1".into(),
                session: "call:c1".into(),
                caller_id: "alice".into(),
                callee_ids: vec!["bob".into()],
                media: CallMedia::Sfu,
                kind: CallKind::Video,
                state: CallState::Initiating,
                room: Some("call.c1".into()),
                metadata: Some(json!({"topic": "standup"})),
                conversation_id: None,
                participants: vec!["alice".into()],
            },
        },
    );
    check_server(
        "call_ended.json",
        PeerServerMessage::CallStateChanged {
            call_id: "c1".into(),
            state: CallState::Ended,
            end_reason: Some(CallEndReason::Missed),
        },
    );
    check_server(
        "mesh_peer_joined.json",
        PeerServerMessage::MeshPeerJoined {
            room: "huddle".into(),
            peer: MeshMember {
                peer_id: "carol".into(),
                name: "Carol".into(),
            },
        },
    );
}
