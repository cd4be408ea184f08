//! A participant whose media engine fails costs nobody else anything: the rooms next to it on
//! the same shard keep their media without a gap, and new joins go on working.

mod common;

use std::time::{Duration, Instant};

use common::{raw_join, wait_receives, TestServer, WAIT};
use switchboard_core::Fault;
use switchboard_protocol::{ErrorCode, LeaveReason};
use switchboard_runtime::RuntimeFault;

/// The longest silence a neighbour's media may have while another participant fails.
const MAX_GAP: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_panic_costs_one_participant() {
    // One shard: every room below shares it.
    let server = TestServer::start(1).await;
    let a1 = server.join("one", "a1").await;
    let a2 = server.join("one", "a2").await;
    let b1 = server.join("two", "b1").await;
    let b2 = server.join("two", "b2").await;
    let mallory = server.join("three", "mallory").await;
    let witness = server.join("three", "witness").await;
    for (me, from) in [(&a2, "a1"), (&b2, "b1"), (&witness, "mallory")] {
        wait_receives(me, from, 30).await;
    }
    a2.mark_gaps();
    b2.mark_gaps();

    // The next call into mallory's engine panics inside the guard, as a str0m bug would.
    server
        .runtime
        .inject_fault(
            0,
            RuntimeFault::Core(Fault::PanicInEngine {
                room: "three".into(),
                peer_id: "mallory".into(),
            }),
        )
        .expect("queued");
    mallory
        .wait_until("mallory left with mediaError", WAIT, |s| {
            s.left_reason == Some(LeaveReason::MediaError)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    witness
        .wait_until("the witness saw mallory leave", WAIT, |s| {
            s.peers_left.iter().any(|p| p == "mallory")
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Another second of the neighbours' media, then look at the whole window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let now = Instant::now();
    for (me, from) in [(&a2, "a1"), (&b2, "b1")] {
        let gap = me.with_stats(|s| s.max_gap_from(from, now));
        assert!(
            gap.is_some_and(|g| g <= MAX_GAP),
            "{} heard {from} with a gap of {gap:?} while mallory failed",
            me.peer_id()
        );
    }
    assert_eq!(server.stats().participant_failures, 1);
    // Counted as a panic, during whichever operation touched mallory's engine next.
    let (_, metrics) = server.get("/metrics").await;
    let panics: f64 = metrics
        .lines()
        .filter(|l| l.starts_with(r#"switchboard_participant_failures_total{cause="panic""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(panics, 1.0, "{metrics}");
    // New joins still work, on the same shard.
    let c1 = server.join("four", "c1").await;
    let c2 = server.join("four", "c2").await;
    wait_receives(&c2, "c1", 20).await;
    wait_receives(&c1, "c2", 20).await;
    for c in [&a1, &a2, &b1, &b2, &witness, &c1, &c2] {
        assert!(c.stats().left_reason.is_none(), "{}", c.peer_id());
    }
}

/// The offer that made str0m 0.25 panic ("Pt locked multiple times"): one m-line's rtx payload
/// type is another m-line's H264. The screen refuses it; `crates/core/tests/simulation.rs`
/// hands it to a shard anyway (the vendored, patched str0m answers it).
const PT_TWICE_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:f00d\r\n\
a=ice-pwd:0123456789abcdefghijklmn\r\na=setup:actpass\r\na=rtcp-mux\r\na=mid:0\r\na=recvonly\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:102 rtx/90000\r\na=fmtp:102 apt=96\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:f00d\r\n\
a=ice-pwd:0123456789abcdefghijklmn\r\na=setup:actpass\r\na=rtcp-mux\r\na=mid:1\r\na=recvonly\r\n\
a=rtpmap:102 H264/90000\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_known_panicking_offer_is_refused() {
    let server = TestServer::start(1).await;
    let alice = server.join("calm", "alice").await;
    let bob = server.join("calm", "bob").await;
    wait_receives(&bob, "alice", 20).await;
    let mut ws = raw_join(&server.url, "calm", "mallory").await;
    let offer = serde_json::json!({"type": "offer", "sdp": PT_TWICE_OFFER}).to_string();
    assert_eq!(ws.expect_error(&offer).await, ErrorCode::BadSdp);
    // The same connection goes on: it is still a member.
    ws.send(r#"{"type":"message","data":"still here","to":"alice"}"#)
        .await;
    let before = bob
        .stats()
        .packets_from("alice", switchboard_loadtest::MediaKind::Video);
    bob.wait_until("more video", WAIT, |s| {
        s.packets_from("alice", switchboard_loadtest::MediaKind::Video) > before + 30
    })
    .await
    .expect("media keeps flowing");
    assert_eq!(server.stats().participant_failures, 0);
    assert!(alice.stats().left_reason.is_none());
}
