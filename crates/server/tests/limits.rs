//! Every input is bounded, and reaching a bound gets its error code: oversized offers, too many
//! candidates, idle connections that never join, clients that stop reading, too many
//! connections from one address.

mod common;

use std::time::Duration;

use common::{raw_join, RawWs, TestServer, WAIT};
use futures_util::StreamExt;
use switchboard_control::ControlConfig;
use switchboard_protocol::{ErrorCode, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

/// An offer with `recv` receive-only audio m-lines and `send` send-only video m-lines. Only the
/// counts matter: the screen refuses before anything parses the rest.
fn offer_with(recv: usize, send: usize) -> String {
    let mut sdp = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    for i in 0..recv + send {
        let (kind, pt, codec, dir) = if i < recv {
            ("audio", 111, "opus/48000/2", "recvonly")
        } else {
            ("video", 96, "VP8/90000", "sendonly")
        };
        sdp.push_str(&format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=mid:{i}\r\na={dir}\r\na=rtpmap:{pt} {codec}\r\n"
        ));
    }
    serde_json::to_string(&serde_json::json!({"type": "offer", "sdp": sdp})).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_offers_and_candidate_floods_get_their_codes() {
    let server = TestServer::start(1).await;
    let mut ws = raw_join(&server.url, "big", "hoarder").await;
    assert_eq!(
        ws.expect_error(&offer_with(300, 0)).await,
        ErrorCode::TooManyTracks
    );
    assert_eq!(
        ws.expect_error(&offer_with(2, 20)).await,
        ErrorCode::TooManyTracks
    );

    // 64 candidates are kept; the 65th and later are refused one by one.
    let max = switchboard_protocol::MAX_CANDIDATES_PER_SESSION;
    for i in 0..max {
        let line = format!(
            "candidate:{i} 1 udp 2130706431 127.0.0.1 {} typ host",
            20000 + i
        );
        ws.send(&serde_json::json!({"type": "candidate", "candidate": line}).to_string())
            .await;
    }
    let extra = "candidate:999 1 udp 2130706431 127.0.0.1 30999 typ host";
    assert_eq!(
        ws.expect_error(&serde_json::json!({"type": "candidate", "candidate": extra}).to_string())
            .await,
        ErrorCode::TooManyCandidates
    );
    // Still in the room: the bounds refuse requests, they do not end the session.
    ws.send(r#"{"type":"message","data":"still here"}"#).await;
    let mut other = raw_join(&server.url, "big", "witness").await;
    other
        .send(r#"{"type":"message","data":"ping","to":"hoarder"}"#)
        .await;
    loop {
        match ws.recv().await {
            Some(ServerMessage::Message { from, .. }) => {
                assert_eq!(from.as_deref(), Some("witness"));
                break;
            }
            Some(ServerMessage::Error { .. } | ServerMessage::PeerJoined { .. }) => continue,
            other => panic!("expected the witness's message, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_sockets_are_closed_after_the_join_timeout() {
    let mut control = ControlConfig::default();
    control.limits.join_timeout_s = 2;
    control.limits.max_connections_per_ip = 2000;
    let server = TestServer::start_with(1, control).await;
    const IDLE: usize = 1000;
    let mut tasks = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        let url = server.url.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url)
                .await
                .expect("websocket connects");
            let mut told = false;
            let mut seen = Vec::new();
            // Never send anything; read until the server closes.
            loop {
                match tokio::time::timeout(WAIT, ws.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) => {
                        let msg: ServerMessage =
                            serde_json::from_str(text.as_str()).expect("server JSON");
                        told |= matches!(
                            msg,
                            ServerMessage::Error {
                                code: ErrorCode::JoinTimeout,
                                ..
                            }
                        );
                        seen.push(format!("{msg:?}"));
                    }
                    Ok(Some(Ok(Message::Close(frame)))) => {
                        seen.push(format!("close {frame:?}"));
                        return (told, seen);
                    }
                    Ok(None) => {
                        seen.push("end of stream".into());
                        return (told, seen);
                    }
                    Ok(Some(Err(e))) => {
                        seen.push(format!("error {e}"));
                        return (told, seen);
                    }
                    Ok(Some(Ok(_))) => {}
                    Err(_) => panic!("an idle socket was not closed within {WAIT:?}"),
                }
            }
        }));
    }
    let mut closed_with_code = 0;
    let mut untold = Vec::new();
    for t in tasks {
        let (told, seen) = t.await.expect("task");
        if told {
            closed_with_code += 1;
        } else if untold.len() < 5 {
            untold.push(seen);
        }
    }
    assert_eq!(
        closed_with_code, IDLE,
        "every idle socket hears joinTimeout, then closes; some heard only: {untold:?}"
    );
    // The server's side of them is gone too.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let open = server.metric("switchboard_websocket_connections").await;
        if open == Some(0.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions still open: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped() {
    let mut control = ControlConfig::default();
    control.limits.send_timeout_s = 1;
    let server = TestServer::start_with(1, control).await;
    let key = server.state.dev_key().expect("dev mode has a key");
    // The lazy client joins, then never reads again.
    let _lazy = raw_join(&server.url, "slow", "lazy").await;
    let mut witness = raw_join(&server.url, "slow", "witness").await;
    // Operator messages of 100 KiB each, far more than the socket buffers hold.
    let http = reqwest::Client::new();
    let body = serde_json::json!({"data": "x".repeat(100 * 1024), "to": "lazy"});
    let url = format!("http://{}/v1/rooms/slow/messages", server.http);
    for _ in 0..400 {
        let resp = http
            .post(&url)
            .bearer_auth(&key.secret)
            .json(&body)
            .send()
            .await
            .expect("admin request");
        if resp.status().as_u16() == 404 {
            break; // the lazy client is already gone
        }
    }
    // The session gives up on it: the room hears it left, the connection count drops.
    loop {
        match witness.recv().await {
            Some(ServerMessage::PeerLeft { peer_id }) if peer_id == "lazy" => break,
            Some(_) => continue,
            None => panic!("the witness was disconnected"),
        }
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.metric("switchboard_websocket_connections").await != Some(1.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lazy client's session is still pinned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server
            .metric("switchboard_slow_clients_dropped_total")
            .await
            >= Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_bounded() {
    let mut control = ControlConfig::default();
    control.limits.max_connections_per_ip = 3;
    let server = TestServer::start_with(1, control).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(RawWs::connect(&server.url).await);
    }
    let refused = tokio_tungstenite::connect_async(&server.url).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 429)
        }
        other => panic!("the fourth connection must be refused with 429, got {other:?}"),
    }
    drop(open.pop());
    // A closed connection frees its place (the server notices the close promptly).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if tokio_tungstenite::connect_async(&server.url).await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.metric("switchboard_connections_refused_total").await >= Some(1.0));
}
