//! Neither kind of input starves the other: a flood of signalling leaves media its latency, a
//! flood of datagrams leaves signalling answering. And a member that floods the room with data
//! messages is rate-limited without the others' media noticing.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{raw_join, wait_receives, RawWs, TestServer, WAIT};
use switchboard_core::{Command, ParticipantId};
use switchboard_protocol::{ErrorCode, LeaveReason, ServerMessage};
use switchboard_runtime::RuntimeError;

/// The longest silence the call's media may have during a flood.
const MAX_GAP: Duration = Duration::from_millis(200);
const FLOOD: Duration = Duration::from_secs(3);

fn assert_no_gap(client: &switchboard_loadtest::Client, from: &str, during: &str) {
    let gap = client.with_stats(|s| s.max_gap_from(from, Instant::now()));
    assert!(
        gap.is_some_and(|g| g <= MAX_GAP),
        "{} heard {from} with a gap of {gap:?} during {during}",
        client.peer_id()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_flood_at_a_shard_does_not_starve_media() {
    let server = TestServer::start(1).await;
    let alice = server.join("r", "alice").await;
    let bob = server.join("r", "bob").await;
    wait_receives(&bob, "alice", 30).await;
    bob.mark_gaps();
    // Keep the shard's queue full of cheap commands for a few seconds, straight through the
    // runtime (past the signalling plane's own rate limits).
    let runtime = server.runtime.clone();
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let until = Instant::now() + FLOOD;
            let mut n = 0u64;
            while Instant::now() < until {
                let stray = Command::Leave {
                    participant: ParticipantId(u64::MAX - (n % 1_000_000)),
                    reason: LeaveReason::Requested,
                };
                match runtime.command(0, stray) {
                    Ok(()) => n += 1,
                    Err(RuntimeError::Busy) => tokio::task::yield_now().await,
                    Err(e) => panic!("{e}"),
                }
            }
            sent.store(n, Ordering::Relaxed);
        })
    };
    flood.await.expect("flood task");
    let n = sent.load(Ordering::Relaxed);
    println!("{n} commands in {FLOOD:?}");
    assert!(n > 10_000, "the flood was a flood: {n}");
    assert_no_gap(&bob, "alice", "a command flood");
    assert_no_gap(&alice, "bob", "a command flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_flood_from_one_member_is_rate_limited() {
    let server = TestServer::start(1).await;
    let alice = server.join("r", "alice").await;
    let bob = server.join("r", "bob").await;
    let mut listener = raw_join(&server.url, "r", "listener").await;
    wait_receives(&bob, "alice", 30).await;
    bob.mark_gaps();

    let mut flooder = raw_join(&server.url, "r", "flooder").await;
    let started = Instant::now();
    let payload = format!(r#"{{"type":"message","data":"{}"}}"#, "x".repeat(900));
    for _ in 0..3000 {
        flooder.send(&payload).await;
    }
    // The flooder hears rateLimited (its messages beyond the rate were dropped).
    let mut limited = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(msg)) = tokio::time::timeout_at(until, flooder.recv()).await {
        if let ServerMessage::Error {
            code: ErrorCode::RateLimited,
            request,
            ..
        } = msg
        {
            assert_eq!(request.as_deref(), Some("message"));
            limited += 1;
            if limited > 100 {
                break;
            }
        }
    }
    assert!(limited > 100, "the flooder was told: {limited}");
    // The listener got at most the burst plus the rate over the flood, not 3000.
    let elapsed = started.elapsed().as_secs_f64();
    let mut got = 0;
    while let Ok(Some(msg)) =
        tokio::time::timeout(Duration::from_millis(300), listener.recv()).await
    {
        if matches!(msg, ServerMessage::Message { from: Some(ref f), .. } if f == "flooder") {
            got += 1;
        }
    }
    let allowed = 50.0 + 50.0 * (elapsed + 1.0);
    assert!(
        (1.0..=allowed).contains(&f64::from(got)),
        "the listener got {got} flooder messages in {elapsed:.1} s (allowed {allowed:.0})"
    );
    assert_no_gap(&bob, "alice", "a message flood");
    assert_no_gap(&alice, "bob", "a message flood");
    assert!(
        server
            .metric("switchboard_messages_rate_limited_total")
            .await
            > Some(100.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_flood_leaves_signalling_answering() {
    let server = TestServer::start(1).await;
    let key = server.state.dev_key().expect("dev key");
    let _alice = server.join("r", "alice").await;
    let shard = server.runtime.local_addr(0).expect("shard 0");
    // Four sockets send junk at the shard port as fast as they can, for a bounded time.
    let stop = Arc::new(AtomicBool::new(false));
    let mut floods = Vec::new();
    for i in 0..4u8 {
        let stop = stop.clone();
        floods.push(std::thread::spawn(move || {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            let junk = vec![0x80 | i; 1200];
            let until = Instant::now() + FLOOD + Duration::from_secs(2);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                let _ = socket.send_to(&junk, shard);
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While it lasts: admin requests are answered, a join completes, messages are delivered.
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/rooms/r", server.http);
    let deadline = Instant::now() + FLOOD;
    let mut answered = 0;
    let mut slowest = Duration::ZERO;
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let resp = tokio::time::timeout(
            Duration::from_secs(2),
            http.get(&url).bearer_auth(&key.secret).send(),
        )
        .await
        .expect("the shard answers an admin request within 2 s during the flood")
        .expect("admin request");
        assert_eq!(resp.status().as_u16(), 200);
        slowest = slowest.max(t0.elapsed());
        answered += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ws = RawWs::connect(&server.url).await;
    ws.send(r#"{"type":"join","room":"r","peerId":"late"}"#)
        .await;
    let joined = tokio::time::timeout(Duration::from_secs(2), ws.recv())
        .await
        .expect("joined within 2 s during the flood");
    assert!(
        matches!(joined, Some(ServerMessage::Joined { .. })),
        "{joined:?}"
    );
    stop.store(true, Ordering::Relaxed);
    let junk: u64 = floods
        .into_iter()
        .map(|t| t.join().expect("flood thread"))
        .sum();
    println!("{answered} admin answers (slowest {slowest:?}) during {junk} junk datagrams");
    assert!(answered >= 10);
    assert!(server.stats().dropped_unknown_source + server.stats().dropped_malformed > 1000);
    let _ = WAIT;
}
