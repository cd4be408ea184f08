//! A shard that dies is noticed: its participants hear `left {reason: "serverError"}`, placement
//! stops using it, `/readyz` and `switchboard_shard_up` report it, and the other shard keeps
//! serving. Shutdown never hangs on a full shard queue.

mod common;

use std::time::{Duration, Instant};

use common::{wait_receives, TestServer, WAIT};
use switchboard_core::{Command, Fault, ParticipantId};
use switchboard_protocol::LeaveReason;
use switchboard_runtime::{RuntimeError, RuntimeFault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_shard_costs_only_its_rooms() {
    let server = TestServer::start(2).await;
    let alice = server.join("doomed", "alice").await;
    let bob = server.join("doomed", "bob").await;
    let carol = server.join("safe", "carol").await;
    let dave = server.join("safe", "dave").await;
    let doomed = server.runtime.shard_of("doomed").expect("placed");
    let safe = server.runtime.shard_of("safe").expect("placed");
    assert_ne!(doomed, safe, "two rooms on two idle shards");
    wait_receives(&bob, "alice", 20).await;
    wait_receives(&dave, "carol", 20).await;
    assert_eq!(server.get("/readyz").await.0, 200);

    server
        .runtime
        .inject_fault(doomed, RuntimeFault::Core(Fault::PanicInShard))
        .expect("queued");

    for c in [&alice, &bob] {
        c.wait_until("left with serverError", WAIT, |s| {
            s.left_reason == Some(LeaveReason::ServerError)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    // The other shard did not notice.
    let before = dave
        .stats()
        .packets_from("carol", switchboard_loadtest::MediaKind::Video);
    dave.wait_until("more video from carol", WAIT, |s| {
        s.packets_from("carol", switchboard_loadtest::MediaKind::Video) > before + 30
    })
    .await
    .expect("the other shard keeps forwarding");
    assert!(carol.stats().left_reason.is_none());

    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&format!("shard {doomed} stopped")), "{body}");
    let up = |shard: usize| format!("switchboard_shard_up{{shard=\"{shard}\"}}");
    assert_eq!(server.metric(&up(doomed)).await, Some(0.0));
    assert_eq!(server.metric(&up(safe)).await, Some(1.0));
    assert_eq!(server.runtime.dead_shards(), vec![doomed]);

    // The room name is usable again, on the live shard; its members get media.
    let erin = server.join("doomed", "erin").await;
    let frank = server.join("doomed", "frank").await;
    assert_eq!(server.runtime.shard_of("doomed"), Some(safe));
    wait_receives(&frank, "erin", 20).await;
    wait_receives(&erin, "frank", 20).await;
    // Commands to the dead shard fail fast instead of vanishing.
    let stray = Command::Leave {
        participant: ParticipantId(u64::MAX),
        reason: LeaveReason::Requested,
    };
    assert!(matches!(
        server.runtime.command(doomed, stray),
        Err(RuntimeError::Stopped)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_with_a_stalled_shard_and_a_full_queue() {
    let server = TestServer::start(1).await;
    let alice = server.join("r", "alice").await;
    server
        .runtime
        .inject_fault(0, RuntimeFault::Stall(Duration::from_secs(3)))
        .expect("queued");
    // Fill the stalled shard's queue until it pushes back.
    let mut queued = 0;
    loop {
        let stray = Command::Leave {
            participant: ParticipantId(u64::MAX - queued),
            reason: LeaveReason::Requested,
        };
        match server.runtime.command(0, stray) {
            Ok(()) => queued += 1,
            Err(RuntimeError::Busy) => break,
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(queued < 100_000, "the queue is bounded");
    }
    let runtime = server.runtime.clone();
    let started = Instant::now();
    let done = tokio::task::spawn_blocking(move || runtime.shutdown());
    tokio::time::timeout(WAIT, done)
        .await
        .expect("shutdown returns")
        .expect("no panic");
    println!(
        "shutdown with {queued} queued commands took {:?}",
        started.elapsed()
    );
    alice
        .wait_until("left with serverShutdown", WAIT, |s| {
            s.left_reason == Some(LeaveReason::ServerShutdown)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
