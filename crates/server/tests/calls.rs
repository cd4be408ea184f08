//! Calls, presence and mesh rooms through the real `/v1/peer` WebSocket, and `sfu` calls whose
//! private room carries real media (real UDP, DTLS, SRTP) between exactly its participants.

mod common;

use std::time::Duration;

use common::{receives, wait_receives, RawWs, TestServer, WAIT};
use serde_json::json;
use switchboard_control::{CallsConfig, ControlConfig};
use switchboard_protocol::peer::{CallEndReason, CallState, PeerLeaveReason, PeerServerMessage};
use switchboard_protocol::{ErrorCode, ServerMessage};

/// A raw peer connection.
struct PeerWs {
    ws: RawWs,
}

impl PeerWs {
    async fn connect(server: &TestServer) -> PeerWs {
        PeerWs {
            ws: RawWs::connect(&format!("ws://{}/v1/peer", server.http)).await,
        }
    }

    /// Connect and register as `peer`: the connection and its resume token.
    async fn register(server: &TestServer, peer: &str) -> (PeerWs, String) {
        let mut ws = PeerWs::connect(server).await;
        ws.send(json!({"type": "register", "peerId": peer})).await;
        match ws.recv().await {
            Some(PeerServerMessage::Registered {
                peer_id,
                resume_token,
                ..
            }) => {
                assert_eq!(peer_id, peer);
                (ws, resume_token)
            }
            other => panic!("{peer} expected registered, got {other:?}"),
        }
    }

    async fn send(&mut self, message: serde_json::Value) {
        self.ws.send(&message.to_string()).await;
    }

    async fn recv(&mut self) -> Option<PeerServerMessage> {
        self.ws.recv_as().await
    }

    /// Skip messages until one matches.
    async fn until(
        &mut self,
        what: &str,
        pred: impl Fn(&PeerServerMessage) -> bool,
    ) -> PeerServerMessage {
        loop {
            match self.recv().await {
                Some(m) if pred(&m) => return m,
                Some(_) => continue,
                None => panic!("connection closed while waiting for {what}"),
            }
        }
    }

    async fn state(&mut self, want: CallState) -> Option<CallEndReason> {
        match self
            .until(&format!("{want:?}"), |m| {
                matches!(m, PeerServerMessage::CallStateChanged { state, .. } if *state == want)
            })
            .await
        {
            PeerServerMessage::CallStateChanged { end_reason, .. } => end_reason,
            _ => unreachable!("until returns a match"),
        }
    }

    async fn error(&mut self) -> ErrorCode {
        match self
            .until("an error", |m| matches!(m, PeerServerMessage::Error { .. }))
            .await
        {
            PeerServerMessage::Error { code, .. } => code,
            _ => unreachable!("until returns a match"),
        }
    }
}

async fn admin_get(server: &TestServer, path: &str) -> serde_json::Value {
    let key = server.state.dev_key().expect("dev mode has a key");
    reqwest::Client::new()
        .get(format!("http://{}{path}", server.http))
        .bearer_auth(key.secret)
        .send()
        .await
        .expect("admin request")
        .json()
        .await
        .expect("JSON body")
}

#[tokio::test]
async fn a_p2p_call_over_real_websockets_rings_relays_signals_and_completes() {
    let server = TestServer::start(1).await;
    let (mut alice, _) = PeerWs::register(&server, "alice").await;
    let (mut bob, _) = PeerWs::register(&server, "bob").await;
    alice.send(json!({"type": "listPeers"})).await;
    match alice.recv().await {
        Some(PeerServerMessage::Peers { peer_ids }) => assert_eq!(peer_ids, ["alice", "bob"]),
        other => panic!("expected peers, got {other:?}"),
    }
    let peers = admin_get(&server, "/v1/peers").await;
    assert_eq!(peers.as_array().map(Vec::len), Some(2));
    assert_eq!(
        server.metric("switchboard_peers_registered").await,
        Some(2.0)
    );

    alice
        .send(
            json!({"type": "callInitiate", "callId": "c1", "calleeIds": ["bob"], "media": "p2p",
                      "callType": "audio", "metadata": {"from": "alice's app"}}),
        )
        .await;
    match alice.recv().await {
        Some(PeerServerMessage::CallCreated { call }) => assert_eq!(call.session, "call:c1"),
        other => panic!("expected callCreated, got {other:?}"),
    }
    match bob.recv().await {
        Some(PeerServerMessage::CallIncoming { call }) => {
            assert_eq!(call.caller_id, "alice");
            assert_eq!(call.metadata, Some(json!({"from": "alice's app"})));
        }
        other => panic!("expected callIncoming, got {other:?}"),
    }
    alice.state(CallState::Ringing).await;
    let calls = admin_get(&server, "/v1/calls").await;
    assert_eq!(calls[0]["state"], "ringing");
    assert_eq!(server.metric("switchboard_calls_active").await, Some(1.0));

    bob.send(json!({"type": "callRespond", "callId": "c1", "action": "accept"}))
        .await;
    alice
        .until("bob joined", |m| matches!(m, PeerServerMessage::CallParticipantJoined { peer_id, .. } if peer_id == "bob"))
        .await;
    alice.state(CallState::Connecting).await;
    bob.state(CallState::Connecting).await;

    alice
        .send(json!({"type": "callSignal", "callId": "c1", "to": "bob",
                      "signal": {"type": "offer", "sdp": "v=0 from alice"}}))
        .await;
    bob.send(json!({"type": "callSignal", "callId": "c1", "to": "alice",
                    "signal": {"type": "answer", "sdp": "v=0 from bob"}}))
        .await;
    match bob
        .until("alice's offer", |m| {
            matches!(m, PeerServerMessage::CallSignal { .. })
        })
        .await
    {
        PeerServerMessage::CallSignal { from, signal, .. } => {
            assert_eq!(from, "alice");
            assert_eq!(signal["sdp"], "v=0 from alice");
        }
        _ => unreachable!(),
    }
    match alice
        .until("bob's answer", |m| {
            matches!(m, PeerServerMessage::CallSignal { .. })
        })
        .await
    {
        PeerServerMessage::CallSignal { from, signal, .. } => {
            assert_eq!(from, "bob");
            assert_eq!(signal["sdp"], "v=0 from bob");
        }
        _ => unreachable!(),
    }
    bob.send(json!({"type": "callTransport", "callId": "c1", "state": "connected"}))
        .await;
    alice.state(CallState::Connected).await;
    alice
        .send(json!({"type": "callHangup", "callId": "c1"}))
        .await;
    assert_eq!(
        alice.state(CallState::Ended).await,
        Some(CallEndReason::Completed)
    );
    assert_eq!(
        bob.state(CallState::Ended).await,
        Some(CallEndReason::Completed)
    );
}

#[tokio::test]
async fn an_sfu_call_room_carries_media_between_its_participants_only() {
    let server = TestServer::start(1).await;
    let (mut alice, _) = PeerWs::register(&server, "alice").await;
    let (mut bob, _) = PeerWs::register(&server, "bob").await;
    alice
        .send(json!({"type": "callInitiate", "callId": "s1", "calleeIds": ["bob"]}))
        .await;
    bob.until("the ring", |m| matches!(m, PeerServerMessage::CallIncoming { call } if call.room.as_deref() == Some("call.s1")))
        .await;
    // Nobody but the participants gets in, not even the callee before it accepts.
    let mut early = RawWs::connect(&server.url).await;
    early
        .send(r#"{"type":"join","room":"call.s1","peerId":"bob"}"#)
        .await;
    assert!(matches!(
        early.recv().await,
        Some(ServerMessage::Error {
            code: ErrorCode::NotInCall,
            ..
        })
    ));
    bob.send(json!({"type": "callRespond", "callId": "s1", "action": "accept"}))
        .await;
    bob.state(CallState::Connecting).await;

    let a = server.join("call.s1", "alice").await;
    let b = server.join("call.s1", "bob").await;
    let mut carol = RawWs::connect(&server.url).await;
    carol
        .send(r#"{"type":"join","room":"call.s1","peerId":"carol"}"#)
        .await;
    assert!(matches!(
        carol.recv().await,
        Some(ServerMessage::Error {
            code: ErrorCode::NotInCall,
            ..
        })
    ));
    let got = wait_receives(&b, "alice", 20).await;
    assert!(receives(&got, "alice", 20));
    let got = wait_receives(&a, "bob", 20).await;
    assert!(receives(&got, "bob", 20));

    // Hanging up ends the call and closes its room.
    bob.send(json!({"type": "callHangup", "callId": "s1"}))
        .await;
    assert_eq!(
        alice.state(CallState::Ended).await,
        Some(CallEndReason::Completed)
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.runtime.shard_of("call.s1").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call's room was not closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((a, b));
}

#[tokio::test]
async fn a_dropped_peer_connection_resumes_its_call_with_the_token() {
    let control = ControlConfig {
        calls: CallsConfig {
            reconnect_grace_s: 30,
            ..CallsConfig::default()
        },
        ..ControlConfig::default()
    };
    let server = TestServer::start_with(1, control).await;
    let (mut alice, _) = PeerWs::register(&server, "alice").await;
    let (bob, token) = PeerWs::register(&server, "bob").await;
    let mut bob = bob;
    alice
        .send(json!({"type": "callInitiate", "callId": "r1", "calleeIds": ["bob"], "media": "p2p"}))
        .await;
    bob.until("the ring", |m| {
        matches!(m, PeerServerMessage::CallIncoming { .. })
    })
    .await;
    bob.send(json!({"type": "callRespond", "callId": "r1", "action": "accept"}))
        .await;
    bob.send(json!({"type": "callTransport", "callId": "r1", "state": "connected"}))
        .await;
    alice.state(CallState::Connected).await;
    drop(bob);
    alice.state(CallState::Reconnecting).await;

    // Without the token the id is taken; with it the call is back.
    let mut thief = PeerWs::connect(&server).await;
    thief
        .send(json!({"type": "register", "peerId": "bob"}))
        .await;
    assert_eq!(thief.error().await, ErrorCode::PeerIdTaken);
    let mut back = PeerWs::connect(&server).await;
    back.send(json!({"type": "register", "peerId": "bob", "resumeToken": token}))
        .await;
    match back.recv().await {
        Some(PeerServerMessage::Registered { calls, .. }) => {
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].call_id, "r1");
        }
        other => panic!("expected registered, got {other:?}"),
    }
    alice.state(CallState::Connected).await;
    back.send(json!({"type": "leave"})).await;
    assert!(matches!(
        back.until("left", |m| matches!(m, PeerServerMessage::Left { .. }))
            .await,
        PeerServerMessage::Left {
            reason: PeerLeaveReason::Requested
        }
    ));
    assert_eq!(
        alice.state(CallState::Ended).await,
        Some(CallEndReason::Completed)
    );
}

#[tokio::test]
async fn hostile_input_on_the_peer_connection_is_refused_to_its_sender_only() {
    let control = ControlConfig {
        calls: CallsConfig {
            initiate_per_minute: 3,
            ..CallsConfig::default()
        },
        ..ControlConfig::default()
    };
    let server = TestServer::start_with(1, control).await;
    let (mut bob, _) = PeerWs::register(&server, "bob").await;

    let mut anon = PeerWs::connect(&server).await;
    anon.send(json!({"type": "callInitiate", "callId": "x", "calleeIds": ["bob"]}))
        .await;
    assert_eq!(anon.error().await, ErrorCode::NotRegistered);
    anon.ws.send("{not json").await;
    assert_eq!(anon.error().await, ErrorCode::BadMessage);
    anon.send(json!({"type": "register", "peerId": "bad id!"}))
        .await;
    assert_eq!(anon.error().await, ErrorCode::InvalidPeerId);

    let (mut eve, _) = PeerWs::register(&server, "eve").await;
    eve.send(json!({"type": "register", "peerId": "eve2"}))
        .await;
    assert_eq!(eve.error().await, ErrorCode::AlreadyRegistered);
    eve.send(json!({"type": "callInitiate", "callId": "x", "calleeIds": ["offline-peer"]}))
        .await;
    assert_eq!(eve.error().await, ErrorCode::UnknownPeer);
    eve.send(json!({"type": "callRespond", "callId": "nope", "action": "accept"}))
        .await;
    assert_eq!(eve.error().await, ErrorCode::UnknownCall);
    eve.send(json!({"type": "callSignal", "callId": "nope", "to": "bob", "signal": {"sdp": "x"}}))
        .await;
    assert_eq!(eve.error().await, ErrorCode::UnknownCall);
    // A flood of calls: the first three ring (and are cancelled at once), the rest are refused.
    for i in 0..10 {
        eve.send(json!({"type": "callInitiate", "callId": format!("f{i}"), "calleeIds": ["bob"], "media": "p2p"})).await;
        eve.send(json!({"type": "callHangup", "callId": format!("f{i}")}))
            .await;
    }
    // Each refused call's hangup names a call that does not exist.
    let (mut refused, mut unknown) = (0, 0);
    while refused < 7 || unknown < 7 {
        match eve.error().await {
            ErrorCode::RateLimited => refused += 1,
            ErrorCode::UnknownCall => unknown += 1,
            other => panic!("unexpected refusal {other:?}"),
        }
    }
    // Mesh and SFU rooms keep their modes.
    let _sfu = common::raw_join(&server.url, "lobby", "zed").await;
    eve.send(json!({"type": "meshJoin", "room": "lobby"})).await;
    assert_eq!(eve.error().await, ErrorCode::WrongRoomMode);
    eve.send(json!({"type": "meshJoin", "room": "mesh1"})).await;
    eve.until("meshJoined", |m| {
        matches!(m, PeerServerMessage::MeshJoined { .. })
    })
    .await;
    let mut ws = RawWs::connect(&server.url).await;
    ws.send(r#"{"type":"join","room":"mesh1","peerId":"yan"}"#)
        .await;
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::Error {
            code: ErrorCode::WrongRoomMode,
            ..
        })
    ));
    ws.send(r#"{"type":"join","room":"other","peerId":"yan","mode":"mesh"}"#)
        .await;
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::Error {
            code: ErrorCode::WrongRoomMode,
            ..
        })
    ));

    // Bob saw three rings and their cancellations, and is fine.
    bob.send(json!({"type": "ping"})).await;
    let mut rings = 0;
    loop {
        match bob.recv().await {
            Some(PeerServerMessage::CallIncoming { .. }) => rings += 1,
            Some(PeerServerMessage::Pong {}) => break,
            Some(_) => {}
            None => panic!("bob's connection closed"),
        }
    }
    assert_eq!(rings, 3);
}
