//! SIGTERM drains the real binary: `/readyz` turns 503, new joins are refused, connected
//! participants get `draining {deadlineMs}`, and the process exits 0 once they have left, when
//! the drain timeout has passed, or at a second signal.

mod common;
mod process;

use std::time::{Duration, Instant};

use common::RawWs;
use process::{http_status, Server, LOOPBACK};
use switchboard_protocol::{ErrorCode, LeaveReason, ServerMessage};

fn start(drain_timeout_s: &str) -> Server {
    let mut args = LOOPBACK.to_vec();
    args.extend(["--drain-timeout-s", drain_timeout_s]);
    Server::start(&args)
}

async fn join(server: &Server, peer: &str) -> RawWs {
    let mut ws = RawWs::connect(&server.url).await;
    ws.send(&format!(
        r#"{{"type":"join","room":"drain","peerId":"{peer}"}}"#
    ))
    .await;
    match ws.recv().await {
        Some(ServerMessage::Joined { .. }) => ws,
        other => panic!("{peer}: expected joined, got {other:?}"),
    }
}

async fn exit_ok(server: &mut Server, within: Duration) {
    let status = server
        .wait_exit(within)
        .await
        .unwrap_or_else(|| panic!("no exit within {within:?}; log:\n{}", server.log.join("\n")));
    assert!(status.success(), "clean exit, got {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_ends_when_the_last_participant_leaves() {
    let mut server = start("15");
    assert_eq!(http_status(server.http, "/readyz").await, 200);
    let mut alice = join(&server, "alice").await;

    server.signal("TERM");
    assert_eq!(
        alice.recv().await,
        Some(ServerMessage::Draining {
            deadline_ms: 15_000
        })
    );
    assert_eq!(http_status(server.http, "/readyz").await, 503);
    assert_eq!(http_status(server.http, "/healthz").await, 200);

    // Joins are refused while draining.
    let mut late = RawWs::connect(&server.url).await;
    late.send(r#"{"type":"join","room":"drain","peerId":"late"}"#)
        .await;
    let mut reply = late.recv().await;
    if let Some(ServerMessage::Draining { .. }) = reply {
        // The notice for a connection made during the drain; the join's answer follows.
        reply = late.recv().await;
    }
    let refused = match reply {
        Some(ServerMessage::Error { code, .. }) => code,
        other => panic!("expected the join refused, got {other:?}"),
    };
    assert_eq!(refused, ErrorCode::Draining);
    drop(late);

    // The server keeps waiting while alice stays...
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.wait_exit(Duration::ZERO).await.is_none());

    // ...and exits soon after she leaves, long before the 15 s timeout.
    let left_at = Instant::now();
    alice.send(r#"{"type":"leave"}"#).await;
    assert_eq!(
        alice.recv().await,
        Some(ServerMessage::Left {
            reason: LeaveReason::Requested
        })
    );
    exit_ok(&mut server, Duration::from_secs(10)).await;
    assert!(left_at.elapsed() < Duration::from_secs(10));
    server.wait_line("drained", Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_closes_the_remaining_sessions() {
    let mut server = start("1");
    let mut bob = join(&server, "bob").await;
    let signalled = Instant::now();
    server.signal("TERM");
    assert_eq!(
        bob.recv().await,
        Some(ServerMessage::Draining { deadline_ms: 1_000 })
    );
    assert_eq!(
        bob.recv().await,
        Some(ServerMessage::Left {
            reason: LeaveReason::ServerShutdown
        })
    );
    assert!(
        signalled.elapsed() >= Duration::from_millis(900),
        "the session was closed before the drain timeout"
    );
    exit_ok(&mut server, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_the_drain() {
    let mut server = start("600");
    let mut carol = join(&server, "carol").await;
    server.signal("INT");
    assert_eq!(
        carol.recv().await,
        Some(ServerMessage::Draining {
            deadline_ms: 600_000
        })
    );
    let second = Instant::now();
    server.signal("TERM");
    assert_eq!(
        carol.recv().await,
        Some(ServerMessage::Left {
            reason: LeaveReason::ServerShutdown
        })
    );
    exit_ok(&mut server, Duration::from_secs(10)).await;
    assert!(second.elapsed() < Duration::from_secs(10));
}

/// A shard that is stuck with a full command queue does not keep SIGTERM from ending the
/// process: the stop request travels beside the queue, and shutdown waits for a bounded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_with_a_stalled_shard_and_a_full_queue() {
    let mut args = LOOPBACK.to_vec();
    args.extend(["--drain-timeout-s", "1"]);
    let mut server = Server::start_env(&args, &[("SWITCHBOARD_TEST_STALL_SHARD_MS", "8000")]);
    // The key is printed before the ready line `start` waited for.
    let line = server
        .log
        .iter()
        .find(|l| l.contains("dev mode: API key"))
        .cloned()
        .expect("the dev key is logged at startup");
    let secret = line
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("the dev key line names the secret")
        .to_owned();
    // Admin requests queue up on the stalled shard until its queue refuses them.
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/rooms", server.http);
    let mut requests = Vec::new();
    for _ in 0..1500 {
        let (http, url, secret) = (http.clone(), url.clone(), secret.clone());
        requests.push(tokio::spawn(async move {
            match http.get(&url).bearer_auth(&secret).send().await {
                Ok(resp) => resp.status().as_u16(),
                Err(_) => 0,
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut busy = 0;
    for r in &mut requests {
        let left = deadline.saturating_duration_since(Instant::now());
        // Refused requests come back at once; queued ones wait for the stalled shard.
        if let Ok(Ok(503)) = tokio::time::timeout(left, r).await {
            busy += 1;
        }
    }
    assert!(busy > 0, "the shard's queue filled up and refused requests");
    server.signal("TERM");
    exit_ok(&mut server, Duration::from_secs(30)).await;
}
