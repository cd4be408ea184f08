//! The `switchboard` binary itself: starts from flags, serves a room, and shuts down cleanly on
//! SIGTERM, telling connected participants why.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::RawWs;
use switchboard_protocol::{LeaveReason, ServerMessage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_serves_and_drains_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--http", "127.0.0.1:0", "--udp-ports", "0", "--shards", "1"])
        // No waiting for participants to leave (tests/drain.rs covers the drain).
        .args(["--drain-timeout-s", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("switchboard starts");
    let stdout = child.stdout.take().expect("piped stdout");
    // The ready line names the signalling URL; read lines on a thread (bounded by the deadline).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the server prints its ready line");
        if let Some(at) = line.find("ws://") {
            let rest = &line[at..];
            let end = rest.find("/v1/ws").expect("ready line has the ws path") + "/v1/ws".len();
            break rest[..end].to_owned();
        }
    };

    let mut ws = RawWs::connect(&url).await;
    ws.send(r#"{"type":"join","room":"bin","peerId":"solo"}"#)
        .await;
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::Joined { .. })
    ));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    // A `draining` notice may come first (or not: the drain ends at once).
    let mut message = ws.recv().await;
    if let Some(ServerMessage::Draining { deadline_ms }) = message {
        assert_eq!(deadline_ms, 0);
        message = ws.recv().await;
    }
    assert_eq!(
        message,
        Some(ServerMessage::Left {
            reason: LeaveReason::ServerShutdown
        })
    );
    let exit = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the server exits after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "clean exit, got {exit}");
}
