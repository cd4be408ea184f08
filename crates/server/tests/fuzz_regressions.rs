//! Every input the fuzzers (`fuzz/`, see docs/robustness.md "Fuzzing") found, replayed through
//! the real path: a WebSocket to a running server, or UDP to its media port. The inputs are
//! files in `fuzz/regressions/`, named `<target>-<what>`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use common::{raw_join, wait_receives, RawWs, TestServer, WAIT};
use parking_lot::Mutex;
use switchboard_control::{AdmissionConfig, ControlConfig};
use switchboard_loadtest::Client;
use switchboard_protocol::{ErrorCode, ServerMessage};

fn regression(name: &str) -> String {
    let path = format!(
        "{}/../../fuzz/regressions/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // Fuzzer output need not be UTF-8; the WebSocket carries text, as the fuzz target did.
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `sdp_offer`: an offer whose audio m-line carries `a=rtpmap` lines for payload types it does
/// not list (the video m-line's VP8 and H264). str0m 0.25 took them as offered codecs and
/// panicked ("Pt locked multiple times") when the video m-line claimed the same PTs; the engine
/// guard would have cost the sender its session. The screen now refuses it with `badSdp`
/// before any engine sees it, and the sender stays a member; a call on the same shard is
/// untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtpmap_for_an_unlisted_payload_type_is_refused_before_the_engine() {
    let sdp = regression("sdp_offer-rtpmap-for-unlisted-pt.sdp");
    let (server, alice, bob) = a_call().await;
    let mut ws = raw_join(&server.url, "calm", "mallory").await;
    let offer = serde_json::json!({"type": "offer", "sdp": sdp}).to_string();
    assert_eq!(ws.expect_error(&offer).await, ErrorCode::BadSdp);
    // Mallory is still a member: the refusal cost her that offer, not the session.
    nobody_hurt(&server, &alice, &bob, &mut ws).await;
}

/// Alice and Bob in a call in room "calm", Bob receiving Alice: what a bad input must not touch.
async fn a_call() -> (TestServer, Client, Client) {
    let server = TestServer::start(1).await;
    let alice = server.join("calm", "alice").await;
    let bob = server.join("calm", "bob").await;
    wait_receives(&bob, "alice", 20).await;
    (server, alice, bob)
}

/// After mallory's input: no engine failed, Alice's video still reaches Bob, Alice is still in,
/// and mallory (on `ws`) is still a member who can message Alice.
async fn nobody_hurt(server: &TestServer, alice: &Client, bob: &Client, ws: &mut RawWs) {
    assert_eq!(server.stats().participant_failures, 0, "no engine failed");
    assert!(alice.stats().left_reason.is_none());
    let kind = switchboard_loadtest::MediaKind::Video;
    let before = bob.stats().packets_from("alice", kind);
    bob.wait_until("more video from alice", WAIT, |s| {
        s.packets_from("alice", kind) > before + 30
    })
    .await
    .expect("the call goes on");
    ws.send(r#"{"type":"message","data":"still here","to":"alice"}"#)
        .await;
    alice
        .wait_until("mallory's message", WAIT, |s| {
            s.messages_from.get("mallory").copied().unwrap_or(0) >= 1
        })
        .await
        .expect("mallory is still in the room");
}

/// An admission endpoint that admits everything and keeps the raw bodies it was sent.
async fn admission_recorder() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let admit = {
        let seen = seen.clone();
        move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                seen.lock().push(body.to_vec());
                StatusCode::NO_CONTENT
            }
        }
    };
    let app = axum::Router::new().route("/admit", post(admit));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the admission endpoint");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/admit"), seen)
}

/// `client_message`: a number the JSON parser read imprecisely (51 significant digits) reached
/// the application's admission hook as a different number than the client sent. serde_json's
/// default float parsing is fast but not always correctly rounded; the server now builds it
/// with `float_roundtrip`, so what the hook sees is the nearest double to what was sent, as
/// any correct JSON reader (and Rust's own `f64::from_str`) would read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_number_reaches_the_admission_hook_unchanged() {
    let digits = regression("client_message-float-not-roundtrip.txt");
    let digits = digits.trim();
    let expected: f64 = digits.parse().expect("the regression is a decimal number");

    let (url, seen) = admission_recorder().await;
    let control = ControlConfig {
        admission: Some(AdmissionConfig {
            url,
            timeout_ms: 5000,
            every_signal: true,
        }),
        ..ControlConfig::default()
    };
    let server = TestServer::start_with(1, control).await;
    let mut ws = RawWs::connect(&server.url).await;
    let join = format!(r#"{{"type":"join","room":"numbers","peerId":"ada","ticket":{digits}}}"#);
    ws.send(&join).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::time::timeout_at(deadline, ws.recv())
            .await
            .expect("an answer to the join");
        match message {
            Some(ServerMessage::Joined { .. }) => break,
            Some(ServerMessage::Error { code, message, .. }) => {
                panic!("join refused: {code:?} {message}")
            }
            Some(_) => continue,
            None => panic!("the server closed the connection"),
        }
    }
    // A signal after the join goes to the hook as well (every_signal): the same number again.
    let message = format!(r#"{{"type":"message","data":"hello","ticket":{digits}}}"#);
    ws.send(&message).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the admission hook saw {} request(s), expected the join and the message",
            seen.lock().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bodies = seen.lock().clone();
    for body in &bodies {
        let value: serde_json::Value = serde_json::from_slice(body).expect("the hook is sent JSON");
        let sent = ["join", "signal"]
            .iter()
            .find_map(|k| value.get(k).and_then(|m| m.get("ticket")))
            .unwrap_or_else(|| panic!("no ticket in what the hook got: {value}"));
        assert_eq!(
            sent.as_f64(),
            Some(expected),
            "the hook got {sent} for {digits}; the nearest double is {expected:e}"
        );
    }
}

/// `sdp_offer`: a Chrome offer mutated so that two of its H264 formats collapse to the same
/// parameters (one without an `fmtp`, one whose `packetization-mode` key is misspelled). Two of
/// str0m's H264 configs then matched one remote payload type and str0m 0.25 panicked claiming
/// it twice ("Pt locked multiple times"), costing the sender its session. With the vendored
/// patch (vendor/patches/str0m-0.25.0-remote-pt-claimed-twice.patch) the offer is answered,
/// the sender stays, and nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_formats_matching_one_codec_are_answered_not_panicked_on() {
    let sdp = regression("sdp_offer-two-h264-formats-one-match.sdp");
    let (server, alice, bob) = a_call().await;
    let mut ws = raw_join(&server.url, "calm", "mallory").await;
    ws.send(&serde_json::json!({"type": "offer", "sdp": sdp}).to_string())
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, ws.recv())
            .await
            .expect("a reply to the offer");
        match message {
            Some(ServerMessage::Answer { sdp }) => {
                assert!(sdp.contains("m=video"), "the answer has the video m-line");
                break;
            }
            Some(ServerMessage::Error { code, message, .. }) => {
                panic!("the offer was refused: {code:?} {message}")
            }
            Some(ServerMessage::Left { reason }) => panic!("the sender was removed: {reason:?}"),
            Some(_) => continue,
            None => panic!("the server closed the sender's connection"),
        }
    }
    nobody_hurt(&server, &alice, &bob, &mut ws).await;
}
