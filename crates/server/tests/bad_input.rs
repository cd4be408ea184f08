//! Hostile and broken input gets an error or is dropped; nothing panics; others keep flowing.

mod common;

use std::time::Duration;

use common::{wait_receives, RawWs, TestServer};
use switchboard_loadtest::MediaKind;
use switchboard_protocol::{ErrorCode, ServerMessage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_everywhere_while_a_call_goes_on() {
    let server = TestServer::start(1).await;
    let alice = server.join("calm", "alice").await;
    let bob = server.join("calm", "bob").await;
    wait_receives(&bob, "alice", 20).await;

    // UDP garbage at the shard port, from a socket no participant owns.
    let shard = server.runtime.local_addr(0).expect("shard 0");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut stun = vec![0x00, 0x01, 0x00, 0x20, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[1; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x40, b'x']); // USERNAME longer than the packet
    let datagrams: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 1400],
        vec![0x80, 0x60, 0x00],             // truncated RTP
        vec![0x80, 0xc8, 0x00, 0x06, 1, 2], // truncated RTCP SR
        stun,
        vec![22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], // DTLS record, bad length
        (0..=255u8).cycle().take(2000).collect(),
    ];
    for _ in 0..20 {
        for d in &datagrams {
            let _ = udp.send_to(d, shard);
        }
    }
    // The same garbage from alice's own address (its mapping exists): str0m drops it.
    let from_alice = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    for d in &datagrams {
        let _ = from_alice.send_to(d, shard);
    }

    // Signalling garbage on separate connections.
    let mut ws = RawWs::connect(&server.url).await;
    assert_eq!(
        ws.expect_error("this is not json").await,
        ErrorCode::BadMessage
    );
    assert_eq!(
        ws.expect_error("{\"type\":\"dance\"}").await,
        ErrorCode::BadMessage
    );
    assert_eq!(
        ws.expect_error("{\"type\":\"offer\"}").await,
        ErrorCode::BadMessage
    );
    assert_eq!(ws.expect_error("[]").await, ErrorCode::BadMessage);
    ws.send_binary(vec![1, 2, 3]).await;
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::Error {
            code: ErrorCode::BadMessage,
            ..
        })
    ));
    // Wrong order: offer, answer, candidate, leave before join.
    for msg in [
        r#"{"type":"offer","sdp":"v=0"}"#,
        r#"{"type":"answer","sdp":"v=0"}"#,
        r#"{"type":"candidate","candidate":""}"#,
        r#"{"type":"leave"}"#,
    ] {
        assert_eq!(ws.expect_error(msg).await, ErrorCode::NotJoined, "{msg}");
    }
    // Invalid names.
    for (msg, code) in [
        (r#"{"type":"join","room":""}"#, ErrorCode::InvalidRoomName),
        (
            r#"{"type":"join","room":"a room"}"#,
            ErrorCode::InvalidRoomName,
        ),
        (
            r#"{"type":"join","room":"ok","peerId":"x/y"}"#,
            ErrorCode::InvalidPeerId,
        ),
        (
            r#"{"type":"join","room":"ok","name":""}"#,
            ErrorCode::InvalidName,
        ),
    ] {
        assert_eq!(ws.expect_error(msg).await, code, "{msg}");
    }
    let huge = format!(
        r#"{{"type":"offer","sdp":"{}"}}"#,
        "x".repeat(switchboard_protocol::MAX_MESSAGE_BYTES)
    );
    assert_eq!(ws.expect_error(&huge).await, ErrorCode::MessageTooLarge);

    // A joined connection that sends SDP that is not SDP, and a duplicate peer id.
    let mut ws2 = RawWs::connect(&server.url).await;
    ws2.send(r#"{"type":"join","room":"calm","peerId":"alice"}"#)
        .await;
    assert!(matches!(
        ws2.recv().await,
        Some(ServerMessage::Error {
            code: ErrorCode::PeerIdTaken,
            ..
        })
    ));
    ws2.send(r#"{"type":"join","room":"calm","peerId":"mallory"}"#)
        .await;
    let reply = ws2.recv().await;
    assert!(
        matches!(reply, Some(ServerMessage::Joined { .. })),
        "{reply:?}"
    );
    assert_eq!(
        ws2.expect_error(r#"{"type":"join","room":"calm"}"#).await,
        ErrorCode::AlreadyJoined
    );
    assert_eq!(
        ws2.expect_error(r#"{"type":"offer","sdp":"hello, I am not SDP"}"#)
            .await,
        ErrorCode::BadSdp
    );
    // Text that is not SDP is refused by the signalling task's screen; SDP that parses but
    // answers nothing is refused by the shard.
    assert_eq!(
        ws2.expect_error(r#"{"type":"answer","sdp":"v=0"}"#).await,
        ErrorCode::BadSdp
    );
    assert_eq!(
        ws2.expect_error(
            r#"{"type":"answer","sdp":"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}"#
        )
        .await,
        ErrorCode::NoPendingOffer
    );
    assert_eq!(
        ws2.expect_error(r#"{"type":"candidate","candidate":"candidate:1 1 bogus"}"#)
            .await,
        ErrorCode::BadCandidate
    );
    drop(ws2);

    // The call went on through all of it.
    let before = bob.stats().packets_from("alice", MediaKind::Video);
    bob.wait_until("more video after the garbage", common::WAIT, |s| {
        s.packets_from("alice", MediaKind::Video) > before + 30
    })
    .await
    .expect("media keeps flowing");
    let s = alice.stats();
    assert!(!s.closed && s.left_reason.is_none());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = server.stats();
    assert!(stats.dropped_unknown_source + stats.dropped_malformed >= 100);
    assert_eq!(stats.participant_failures, 0);
    // mallory left when its WebSocket closed.
    alice
        .wait_until("mallory gone", common::WAIT, |s| {
            s.peers_left.iter().any(|p| p == "mallory")
        })
        .await
        .expect("closing the socket leaves the room");
}
