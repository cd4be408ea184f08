//! The operator's side against a running server: credentials, renewal and expiry, admission,
//! limits, the admin REST API with real participants, webhooks with retries, and metrics.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{wait_receives, RawWs, TestServer, WAIT};
use parking_lot::Mutex;
use switchboard_control::auth::mint;
use switchboard_control::{AdmissionConfig, ApiKey, AuthMode, ControlConfig};
use switchboard_loadtest::{LeaveReason, MediaKind};
use switchboard_protocol::{ErrorCode, ServerMessage};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn required_auth() -> ControlConfig {
    let mut c = ControlConfig::default();
    c.auth.mode = AuthMode::Required;
    c.auth.keys = vec![ApiKey {
        id: "app".into(),
        secret: "app-secret".into(),
    }];
    c
}

fn join_json(room: &str, peer: &str, credential: Option<serde_json::Value>) -> String {
    let mut msg = serde_json::json!({"type": "join", "room": room, "peerId": peer});
    if let Some(c) = credential {
        msg["credential"] = c;
    }
    msg.to_string()
}

fn cred(secret: &str, peer: &str, timestamp: u64, ttl: u64) -> serde_json::Value {
    serde_json::to_value(mint(secret, peer, timestamp, ttl)).expect("serializable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked_on_join() {
    let server = TestServer::start_with(1, required_auth()).await;
    let t = now();
    let cases = [
        (None, "ada", ErrorCode::CredentialRequired),
        (
            Some(cred("app-secret", "ada", t - 100, 50)),
            "ada",
            ErrorCode::CredentialExpired,
        ),
        (
            Some(cred("app-secret", "ada", t + 3600, 60)),
            "ada",
            ErrorCode::CredentialFuture,
        ),
        (
            Some(cred("wrong", "ada", t, 60)),
            "ada",
            ErrorCode::CredentialInvalid,
        ),
        (
            Some(cred("app-secret", "eve", t, 60)),
            "ada",
            ErrorCode::CredentialInvalid,
        ),
        (
            Some({
                let mut c = cred("app-secret", "ada", t, 60);
                c["ttl"] = 6000.into();
                c
            }),
            "ada",
            ErrorCode::CredentialInvalid,
        ),
        (
            Some(serde_json::json!({"timestamp": t, "ttl": 60, "authToken": "%%%"})),
            "ada",
            ErrorCode::CredentialInvalid,
        ),
    ];
    let mut ws = RawWs::connect(&server.url).await;
    for (credential, peer, code) in cases {
        let msg = join_json("secure", peer, credential);
        assert_eq!(ws.expect_error(&msg).await, code, "{msg}");
    }
    ws.send(&join_json(
        "secure",
        "ada",
        Some(cred("app-secret", "ada", t, 60)),
    ))
    .await;
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::Joined { .. })
    ));
    // Without a peer id a credential cannot be bound.
    let mut other = RawWs::connect(&server.url).await;
    let msg = serde_json::json!({"type": "join", "room": "secure", "credential": cred("app-secret", "x", t, 60)});
    assert_eq!(
        other.expect_error(&msg.to_string()).await,
        ErrorCode::CredentialInvalid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_outlives_the_first_expiry_and_silence_expires() {
    let server = TestServer::start_with(1, required_auth()).await;
    let t = now();
    let mut renewing = RawWs::connect(&server.url).await;
    renewing
        .send(&join_json(
            "ttl",
            "keeper",
            Some(cred("app-secret", "keeper", t, 2)),
        ))
        .await;
    assert!(matches!(
        renewing.recv().await,
        Some(ServerMessage::Joined { .. })
    ));
    let mut lapsing = RawWs::connect(&server.url).await;
    lapsing
        .send(&join_json(
            "ttl",
            "lapser",
            Some(cred("app-secret", "lapser", t, 2)),
        ))
        .await;
    assert!(matches!(
        lapsing.recv().await,
        Some(ServerMessage::Joined { .. })
    ));

    // A forged renewal is refused and changes nothing.
    let bad = serde_json::json!({"type": "updateCredential", "credential": cred("nope", "keeper", t, 60)});
    assert_eq!(
        renewing.expect_error(&bad.to_string()).await,
        ErrorCode::CredentialInvalid
    );
    let good = serde_json::json!({"type": "updateCredential", "credential": cred("app-secret", "keeper", now(), 60)});
    renewing.send(&good.to_string()).await;
    loop {
        match renewing.recv().await {
            Some(ServerMessage::CredentialUpdated { expires_at }) => {
                assert!(expires_at >= t + 60);
                break;
            }
            Some(ServerMessage::PeerJoined { .. }) => continue,
            other => panic!("expected credentialUpdated, got {other:?}"),
        }
    }
    // The one that did not renew is sent away once its two seconds are over.
    loop {
        match lapsing.recv().await {
            Some(ServerMessage::Left { reason }) => {
                assert_eq!(reason, LeaveReason::CredentialExpired);
                break;
            }
            Some(_) => continue,
            None => panic!("closed without left"),
        }
    }
    // The renewed one is still in the room past its first expiry, and sees the other leave.
    loop {
        match renewing.recv().await {
            Some(ServerMessage::PeerLeft { peer_id }) => {
                assert_eq!(peer_id, "lapser");
                break;
            }
            Some(ServerMessage::Left { reason }) => panic!("renewed session ended: {reason:?}"),
            Some(_) => continue,
            None => panic!("renewed session closed"),
        }
    }
    assert!(now() >= t + 2);
    let detail = admin(
        &server,
        "app-secret",
        reqwest::Method::GET,
        "/v1/rooms/ttl",
        None,
    )
    .await;
    assert_eq!(detail.0, StatusCode::OK);
    assert_eq!(detail.1["participants"].as_array().map(Vec::len), Some(1));
}

async fn admin(
    server: &TestServer,
    secret: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method, format!("http://{}{path}", server.http))
        .bearer_auth(secret);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("admin request");
    let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
    let text = resp.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_manages_a_live_room() {
    let server = TestServer::start(1).await;
    let secret = server.state.dev_key().expect("dev mode has a key").secret;
    let alice = server.join("ops", "alice").await;
    let bob = server.join("ops", "bob").await;
    let carol = server.join("ops", "carol").await;
    wait_receives(&alice, "bob", 20).await;
    wait_receives(&alice, "carol", 20).await;
    let mut observer = RawWs::connect(&server.url).await;
    observer
        .send(r#"{"type":"join","room":"ops","peerId":"observer"}"#)
        .await;
    assert!(matches!(
        observer.recv().await,
        Some(ServerMessage::Joined { .. })
    ));

    // Authentication.
    let (status, body) = admin(&server, "wrong", reqwest::Method::GET, "/v1/rooms", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");

    // Listing.
    let (status, rooms) = admin(&server, &secret, reqwest::Method::GET, "/v1/rooms", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rooms[0]["room"], "ops");
    assert_eq!(rooms[0]["participants"], 4);
    assert_eq!(rooms[0]["tracks"], 6);
    let (_, people) = admin(
        &server,
        &secret,
        reqwest::Method::GET,
        "/v1/rooms/ops/participants",
        None,
    )
    .await;
    let bob_info = people
        .as_array()
        .and_then(|a| a.iter().find(|p| p["peerId"] == "bob"))
        .expect("bob listed");
    assert_eq!(bob_info["connected"], true);
    let bob_video = bob_info["tracks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["kind"] == "video"))
        .and_then(|t| t["trackId"].as_str())
        .expect("bob's video track")
        .to_owned();
    let (status, _) = admin(
        &server,
        &secret,
        reqwest::Method::GET,
        "/v1/rooms/nope",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Mute bob's video: it stops reaching alice, everyone is told, unmute brings it back.
    let mute_path = format!("/v1/rooms/ops/participants/bob/tracks/{bob_video}/mute");
    let (status, _) = admin(
        &server,
        &secret,
        reqwest::Method::PUT,
        &mute_path,
        Some(serde_json::json!({"muted": true})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    wait_for(
        &mut observer,
        |m| matches!(m, ServerMessage::TrackMuted { peer_id, muted: true, .. } if peer_id == "bob"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frozen = alice.stats().packets_from("bob", MediaKind::Video);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        alice.stats().packets_from("bob", MediaKind::Video),
        frozen,
        "muted video stopped"
    );
    assert!(alice.stats().packets_from("bob", MediaKind::Audio) > 0);
    let (status, _) = admin(
        &server,
        &secret,
        reqwest::Method::PUT,
        &mute_path,
        Some(serde_json::json!({"muted": false})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    alice
        .wait_until("bob's video resumes", WAIT, |s| {
            s.packets_from("bob", MediaKind::Video) > frozen + 20
        })
        .await
        .expect("unmuted video flows again");
    let (status, _) = admin(
        &server,
        &secret,
        reqwest::Method::PUT,
        &mute_path,
        Some(serde_json::json!({"quiet": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Messages from the operator.
    let (status, _) = admin(
        &server,
        &secret,
        reqwest::Method::POST,
        "/v1/rooms/ops/messages",
        Some(serde_json::json!({"data": {"notice": "5 minutes left"}, "to": "observer"})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    wait_for(&mut observer, |m| {
        matches!(m, ServerMessage::Message { from: None, data } if data.to_value()["notice"] == "5 minutes left")
    })
    .await;
    let (status, _) = admin(
        &server,
        &secret,
        reqwest::Method::POST,
        "/v1/rooms/ops/messages",
        Some(serde_json::json!({"data": 1, "to": "nobody"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Kick carol: she is told, and her media ends for the others.
    let (status, _) = admin(
        &server,
        &secret,
        reqwest::Method::DELETE,
        "/v1/rooms/ops/participants/carol",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    carol
        .wait_until("carol kicked", WAIT, |s| {
            s.left_reason == Some(LeaveReason::Kicked)
        })
        .await
        .expect("carol learns she was kicked");
    alice
        .wait_until("carol gone", WAIT, |s| {
            s.peers_left.iter().any(|p| p == "carol")
                && s.slots.values().flatten().all(|t| t.peer_id != "carol")
        })
        .await
        .expect("carol's tracks end for alice");
    let after_kick = alice.stats().packets_from("carol", MediaKind::Video);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        alice.stats().packets_from("carol", MediaKind::Video),
        after_kick
    );

    // Close the room: everybody is sent away.
    let (status, _) = admin(
        &server,
        &secret,
        reqwest::Method::DELETE,
        "/v1/rooms/ops",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for c in [&alice, &bob] {
        c.wait_until("room closed", WAIT, |s| {
            s.left_reason == Some(LeaveReason::RoomClosed)
        })
        .await
        .expect("room closure reaches everyone");
    }
    let (_, rooms) = admin(&server, &secret, reqwest::Method::GET, "/v1/rooms", None).await;
    assert_eq!(rooms, serde_json::json!([]));
}

async fn wait_for(ws: &mut RawWs, pred: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
    loop {
        match ws.recv().await {
            Some(m) if pred(&m) => return m,
            Some(_) => continue,
            None => panic!("connection closed while waiting"),
        }
    }
}

/// What a local HTTP receiver saw.
#[derive(Default)]
struct Received {
    hooks: Vec<(HeaderMap, Vec<u8>)>,
    admissions: Vec<serde_json::Value>,
}

async fn receiver(refuse_first: bool) -> (String, Arc<Mutex<Received>>) {
    let seen = Arc::new(Mutex::new(Received::default()));
    let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let hooks = {
        let seen = seen.clone();
        move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            let attempts = attempts.clone();
            async move {
                let id = headers
                    .get("x-switchboard-delivery")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().hooks.push((headers, body.to_vec()));
                let mut a = attempts.lock();
                let n = a.entry(id).or_insert(0);
                *n += 1;
                if refuse_first && *n == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }
    };
    let admit = {
        let seen = seen.clone();
        move |axum::Json(body): axum::Json<serde_json::Value>| {
            let seen = seen.clone();
            async move {
                let ok = body["join"]["ticket"] == "valid";
                seen.lock().admissions.push(body);
                if ok {
                    StatusCode::NO_CONTENT
                } else {
                    StatusCode::FORBIDDEN
                }
            }
        }
    };
    let app = axum::Router::new()
        .route("/hooks", post(hooks))
        .route("/admit", post(admit));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_and_admission_is_asked() {
    let (base, seen) = receiver(true).await;
    let mut control = ControlConfig::default();
    control.auth.keys = vec![ApiKey {
        id: "app".into(),
        secret: "app-secret".into(),
    }];
    control.webhooks.urls = vec![format!("{base}/hooks")];
    control.webhooks.secret = "hook-secret".into();
    control.admission = Some(AdmissionConfig {
        url: format!("{base}/admit"),
        timeout_ms: 5000,
        every_signal: false,
    });
    let server = TestServer::start_with(1, control).await;

    // Admission: the app refuses a join without its ticket and admits one with it.
    let mut ws = RawWs::connect(&server.url).await;
    let refused = r#"{"type":"join","room":"hooked","peerId":"mallory","ticket":"forged"}"#;
    assert_eq!(ws.expect_error(refused).await, ErrorCode::AdmissionDenied);
    let mut opts = server.options("hooked", "ada");
    opts.extra_join_fields = Some(serde_json::json!({"ticket": "valid"}));
    let ada = switchboard_loadtest::Client::join(opts)
        .await
        .expect("admitted");
    ada.wait_until("connected", WAIT, |s| s.connected)
        .await
        .expect("media up");
    ada.leave().await.expect("leaves");

    // Events arrive, each first refused (500) and then delivered on a retry.
    let expected = [
        "roomStarted",
        "participantJoined",
        "trackPublished",
        "trackUnpublished",
        "participantLeft",
        "roomFinished",
    ];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let names: Vec<String> = seen
            .lock()
            .hooks
            .iter()
            .filter_map(|(h, _)| {
                h.get("x-switchboard-event")?
                    .to_str()
                    .ok()
                    .map(str::to_owned)
            })
            .collect();
        let delivered_twice = expected
            .iter()
            .all(|e| names.iter().filter(|n| n == e).count() >= 2);
        if delivered_twice {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhooks seen: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = seen.lock();
    for (headers, body) in &received.hooks {
        let ts: u64 = headers["x-switchboard-timestamp"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("number");
        assert_eq!(
            headers["x-switchboard-signature"].to_str().expect("ascii"),
            switchboard_control::webhook_signature("hook-secret", ts, body),
            "signature verifies"
        );
        let json: serde_json::Value = serde_json::from_slice(body).expect("json body");
        assert!(json["id"].is_string() && json["atMs"].is_u64());
    }
    let joined = received
        .hooks
        .iter()
        .map(|(_, b)| serde_json::from_slice::<serde_json::Value>(b).expect("json"))
        .find(|j| j["event"] == "participantJoined")
        .expect("participantJoined delivered");
    assert_eq!(joined["peerId"], "ada");
    assert_eq!(joined["room"], "hooked");
    assert_eq!(received.admissions.len(), 2);
    assert_eq!(received.admissions[0]["join"]["ticket"], "forged");
    assert_eq!(received.admissions[1]["peerId"], "ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_webhook_endpoint_stalls_nothing() {
    let mut control = ControlConfig::default();
    // Nothing listens on port 9 (discard): every delivery fails and is retried with backoff.
    control.webhooks.urls = vec!["http://127.0.0.1:9/hooks".into()];
    let server = TestServer::start_with(1, control).await;
    let a = server.join("dead-hooks", "a").await;
    let b = server.join("dead-hooks", "b").await;
    wait_receives(&a, "b", 30).await;
    wait_receives(&b, "a", 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_with_clear_errors() {
    let mut control = ControlConfig::default();
    control.limits.max_participants_per_room = 2;
    control.limits.max_rooms = 1;
    control.limits.joins_per_ip_per_minute = 4;
    let server = TestServer::start_with(1, control).await;
    let mut a = RawWs::connect(&server.url).await;
    a.send(r#"{"type":"join","room":"small","peerId":"a"}"#)
        .await;
    assert!(matches!(a.recv().await, Some(ServerMessage::Joined { .. })));
    let mut b = RawWs::connect(&server.url).await;
    b.send(r#"{"type":"join","room":"small","peerId":"b"}"#)
        .await;
    assert!(matches!(b.recv().await, Some(ServerMessage::Joined { .. })));
    let mut c = RawWs::connect(&server.url).await;
    assert_eq!(
        c.expect_error(r#"{"type":"join","room":"small","peerId":"c"}"#)
            .await,
        ErrorCode::RoomFull
    );
    assert_eq!(
        c.expect_error(r#"{"type":"join","room":"another","peerId":"c"}"#)
            .await,
        ErrorCode::TooManyRooms
    );
    // Four joins this minute from 127.0.0.1 are used up.
    assert_eq!(
        c.expect_error(r#"{"type":"join","room":"small","peerId":"c"}"#)
            .await,
        ErrorCode::RateLimited
    );
    let big = format!(
        r#"{{"type":"message","data":"{}"}}"#,
        "x".repeat(300 * 1024)
    );
    assert_eq!(a.expect_error(&big).await, ErrorCode::MessageTooLarge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_when_media_flows() {
    let server = TestServer::start(1).await;
    let scrape = || async {
        reqwest::get(format!("http://{}/metrics", server.http))
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("text")
    };
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let before = scrape().await;
    let a = server.join("metered", "a").await;
    let b = server.join("metered", "b").await;
    wait_receives(&a, "b", 30).await;
    wait_receives(&b, "a", 30).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = scrape().await;
    assert_eq!(value(&after, "switchboard_participants"), 2.0);
    assert_eq!(value(&after, "switchboard_rooms"), 1.0);
    assert_eq!(value(&after, "switchboard_tracks"), 4.0);
    assert_eq!(value(&after, "switchboard_websocket_connections"), 2.0);
    let forwarded = "switchboard_rtp_forwarded_total";
    assert!(
        value(&after, forwarded) > value(&before, forwarded) + 100.0,
        "{after}"
    );
    assert!(value(&after, "switchboard_join_to_media_seconds_count") >= 2.0);
    assert!(after.contains("switchboard_joins_total{outcome=\"ok\"} 2"));
    assert!(after.contains("switchboard_shard_busy_microseconds_total{shard=\"0\"}"));
    let calls = value(&after, "switchboard_udp_send_calls_total{shard=\"0\"}");
    let sent = value(&after, "switchboard_udp_datagrams_sent_total{shard=\"0\"}");
    assert!(
        calls > 0.0 && sent >= calls,
        "{calls} calls, {sent} datagrams"
    );
    assert!(after.contains("switchboard_udp_send_dropped_total{shard=\"0\"}"));
    assert!(after.contains("switchboard_dropped_packets_total{reason=\"malformed\"}"));
    // Every metric the shipped Grafana dashboard plots exists.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana-dashboard.json"
    ))
    .expect("dashboard file");
    let mut rest = dashboard.as_str();
    while let Some(at) = rest.find("switchboard_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        assert!(
            after.contains(&format!("# TYPE {name} "))
                || after.contains(&format!("# TYPE {} ", name.trim_end_matches("_bucket"))),
            "dashboard metric {name} is exported"
        );
    }
    let health = reqwest::get(format!("http://{}/readyz", server.http))
        .await
        .expect("readyz");
    assert_eq!(health.status().as_u16(), 200);
    let spec: serde_json::Value = reqwest::get(format!("http://{}/openapi.json", server.http))
        .await
        .expect("openapi")
        .json()
        .await
        .expect("openapi is JSON");
    for path in [
        "/v1/rooms",
        "/v1/rooms/{room}",
        "/v1/rooms/{room}/participants",
        "/v1/rooms/{room}/participants/{peerId}",
        "/v1/rooms/{room}/participants/{peerId}/tracks/{trackId}/mute",
        "/v1/rooms/{room}/messages",
        "/v1/rooms/{room}/participants/{peerId}/subscriptions",
    ] {
        assert!(spec["paths"][path].is_object(), "openapi documents {path}");
    }
}
