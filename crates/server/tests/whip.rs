//! WHIP and WHEP over real HTTP and real UDP: a str0m publisher that speaks only WHIP joins a
//! room a WebSocket member is in, each receives the other's media (checked by the owner its
//! payloads name), WHEP players receive one member's or the whole room's tracks, PATCH trickles,
//! DELETE ends the session, and every refusal gets its status and a reason.

mod common;
mod http_peer;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{raw_join, wait_receives, RawWs, TestServer, WAIT};
use http_peer::{play, publish, request, Reply};
use reqwest::Method;
use switchboard_control::auth::mint;
use switchboard_control::{whip_bearer_token, ApiKey, AuthConfig, AuthMode, ControlConfig};
use switchboard_protocol::ServerMessage;
use switchboard_runtime::RuntimeConfig;

const SECRET: &str = "whip-test-secret";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Dev mode with a key: WebSocket members join without a credential, a bearer token (when
/// sent) is checked.
fn control(mode: AuthMode) -> ControlConfig {
    ControlConfig {
        auth: AuthConfig {
            mode,
            keys: vec![ApiKey {
                id: "app".into(),
                secret: SECRET.into(),
            }],
            ..AuthConfig::default()
        },
        ..ControlConfig::default()
    }
}

fn token(peer_id: &str) -> String {
    whip_bearer_token(peer_id, &mint(SECRET, peer_id, now(), 600))
}

fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.http)
}

/// Wait (bounded) for a message on a raw member's connection; others are skipped.
async fn wait_message(ws: &mut RawWs, what: &str, pred: impl Fn(&ServerMessage) -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        match ws.recv().await {
            Some(m) if pred(&m) => return,
            Some(_) => continue,
            None => panic!("the connection closed while waiting for {what}"),
        }
    }
    panic!("no {what} within {WAIT:?}");
}

fn fragment(ufrag: &str, port: u16) -> String {
    format!(
        "a=ice-ufrag:{ufrag}\r\na=ice-pwd:unused-in-a-trickle-fragment\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
         a=candidate:1 1 udp 2122260223 127.0.0.1 {port} typ host\r\na=end-of-candidates\r\n"
    )
}

async fn patch(location_url: &str, body: String, extra: &[(&str, &str)]) -> Reply {
    request(
        Method::PATCH,
        location_url,
        Some("application/trickle-ice-sdpfrag"),
        None,
        extra,
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_and_whep_players_share_a_room_with_a_websocket_member() {
    let server = TestServer::start_with(1, control(AuthMode::Dev)).await;
    let alice = server.join("stage", "alice").await;
    let mut watcher = raw_join(&server.url, "stage", "watcher").await;

    // The WHIP publisher: identity from its token, payloads signed "whip-cam".
    let publisher = publish(
        &url(&server, "/whip/stage"),
        Some(&token("whip-cam")),
        "whip-cam",
    )
    .await
    .unwrap_or_else(|r| panic!("WHIP POST refused: {:?}", r.0));
    assert!(
        publisher.location.starts_with("/whip/stage/"),
        "{}",
        publisher.location
    );
    assert!(
        publisher.answer.contains("a=candidate"),
        "the answer carries the server's candidate: {}",
        publisher.answer
    );
    wait_message(
        &mut watcher,
        "peerJoined whip-cam",
        |m| matches!(m, ServerMessage::PeerJoined { peer } if peer.peer_id == "whip-cam"),
    )
    .await;
    wait_message(&mut watcher, "whip-cam's video track defined", |m| {
        matches!(m, ServerMessage::TrackDefined { peer_id, track }
            if peer_id == "whip-cam" && track.track_id == "whip-cam:video")
    })
    .await;
    // The WebSocket member receives the WHIP publisher's media, announced as its own.
    alice
        .wait_until("a first video packet from whip-cam", WAIT, |s| {
            s.packets_from("whip-cam", switchboard_loadtest::MediaKind::Video) > 0
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "WHIP POST to the first video packet at a WebSocket member: {:?}",
        publisher.started.elapsed()
    );
    let s = wait_receives(&alice, "whip-cam", 20).await;
    assert_eq!(s.wrong_owner, 0, "{}", s.summary());

    // A WHEP player of one member gets that member only.
    let of_alice = play(&url(&server, "/whep/stage/alice"), None, 1, 1)
        .await
        .unwrap_or_else(|r| panic!("WHEP POST refused: {:?}", r.0));
    of_alice
        .wait_for("alice's audio and video over WHEP", WAIT, |p| {
            p.count("alice", false) > 20 && p.count("alice", true) > 20
        })
        .await;
    assert_eq!(of_alice.owners(), vec!["alice".to_owned()]);
    if let Some(first) = *of_alice.first_packet.lock() {
        println!(
            "WHEP POST to the first packet: {:?}",
            first.duration_since(of_alice.started)
        );
    }

    // A room player with two slots of each kind gets both publishers.
    let of_room = play(&url(&server, "/whep/stage"), Some(&token("viewer")), 2, 2)
        .await
        .unwrap_or_else(|r| panic!("WHEP POST refused: {:?}", r.0));
    of_room
        .wait_for("both publishers over WHEP", WAIT, |p| {
            ["alice", "whip-cam"]
                .iter()
                .all(|o| p.count(o, false) > 20 && p.count(o, true) > 20)
        })
        .await;

    // PATCH: trickle accepted; a stale ETag, an ICE restart and a wrong type are not.
    let resource = url(&server, &publisher.location);
    let body = fragment(&publisher.ufrag, publisher.local.port());
    let etag = publisher.etag.clone();
    let r = patch(&resource, body.clone(), &[("if-match", &etag)]).await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = patch(&resource, body.clone(), &[("if-match", "\"stale\"")]).await;
    assert_eq!(r.status, 412, "{r:?}");
    let r = patch(&resource, fragment("another-ufrag", 9), &[]).await;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.body.contains("ICE restart"), "{}", r.body);
    let r = request(
        Method::PATCH,
        &resource,
        Some("application/sdp"),
        None,
        &[],
        body.clone(),
    )
    .await;
    assert_eq!(r.status, 415, "{r:?}");
    // The session's media is untouched by all that.
    let before = alice
        .stats()
        .packets_from("whip-cam", switchboard_loadtest::MediaKind::Video);
    alice
        .wait_until("more video from whip-cam", WAIT, |s| {
            s.packets_from("whip-cam", switchboard_loadtest::MediaKind::Video) > before + 10
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // DELETE ends it: the room sees it leave, and the resource is gone.
    let r = request(Method::DELETE, &resource, None, None, &[], String::new()).await;
    assert_eq!(r.status, 200, "{r:?}");
    wait_message(
        &mut watcher,
        "peerLeft whip-cam",
        |m| matches!(m, ServerMessage::PeerLeft { peer_id } if peer_id == "whip-cam"),
    )
    .await;
    let r = request(Method::DELETE, &resource, None, None, &[], String::new()).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = patch(&resource, body, &[]).await;
    assert_eq!(r.status, 404, "{r:?}");

    // The players end too.
    for player in [&of_alice, &of_room] {
        let r = request(
            Method::DELETE,
            &url(&server, &player.location),
            None,
            None,
            &[],
            String::new(),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
}

/// A str0m offer that publishes audio and video (never answered by any media).
fn publishing_offer(direction: str0m::media::Direction) -> String {
    let mut rtc = switchboard_loadtest::rtc_config().build(std::time::Instant::now());
    let addr = "127.0.0.1:9".parse().expect("addr");
    rtc.add_local_candidate(str0m::Candidate::host(addr, "udp").expect("candidate"));
    let mut api = rtc.sdp_api();
    api.add_media(str0m::media::MediaKind::Audio, direction, None, None, None);
    api.add_media(str0m::media::MediaKind::Video, direction, None, None, None);
    let (offer, _) = api.apply().expect("offer");
    offer.to_sdp_string()
}

async fn post(
    server: &TestServer,
    path: &str,
    ct: &str,
    token: Option<&str>,
    body: String,
) -> Reply {
    request(Method::POST, &url(server, path), Some(ct), token, &[], body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_refusals_have_their_status_and_a_reason() {
    let server = TestServer::start_with(1, control(AuthMode::Dev)).await;
    let offer = publishing_offer(str0m::media::Direction::SendOnly);

    // Bad SDP: 400 with the screen's reason.
    let r = post(
        &server,
        "/whip/r1",
        "application/sdp",
        None,
        "v=0\r\nnonsense".into(),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.starts_with("badSdp: offer refused:"), "{}", r.body);
    // Wrong content type: 415.
    let r = post(&server, "/whip/r1", "application/json", None, offer.clone()).await;
    assert_eq!(r.status, 415, "{r:?}");
    assert!(r.body.contains("application/sdp"), "{}", r.body);
    // A forged token: 401, even in dev mode, with a challenge.
    let forged = whip_bearer_token("obs", &mint("not-the-secret", "obs", now(), 600));
    let r = post(
        &server,
        "/whip/r1",
        "application/sdp",
        Some(&forged),
        offer.clone(),
    )
    .await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.header("www-authenticate").is_some());
    assert!(r.body.contains("signature"), "{}", r.body);
    let expired = whip_bearer_token("obs", &mint(SECRET, "obs", now() - 1000, 60));
    let r = post(
        &server,
        "/whip/r1",
        "application/sdp",
        Some(&expired),
        offer.clone(),
    )
    .await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("expired"), "{}", r.body);
    // An offer that publishes nothing: 422.
    let recv = publishing_offer(str0m::media::Direction::RecvOnly);
    let r = post(&server, "/whip/r1", "application/sdp", None, recv.clone()).await;
    assert_eq!(r.status, 422, "{r:?}");
    // A bad room name: 400.
    let r = post(
        &server,
        "/whip/no%20spaces",
        "application/sdp",
        None,
        offer.clone(),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    // WHEP of a room that does not exist, or of a member not in it: 404.
    let r = post(
        &server,
        "/whep/nowhere",
        "application/sdp",
        None,
        recv.clone(),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    let _member = raw_join(&server.url, "r2", "somebody").await;
    let r = post(
        &server,
        "/whep/r2/nobody",
        "application/sdp",
        None,
        recv.clone(),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    // The token's peer id is already in the room: 409, and the refused join leaves nothing.
    let r = post(
        &server,
        "/whip/r2",
        "application/sdp",
        Some(&token("somebody")),
        offer.clone(),
    )
    .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.starts_with("peerIdTaken:"), "{}", r.body);
    // A body beyond the bound: 413.
    let huge = format!("{offer}{}", "a=x\r\n".repeat(70_000));
    let r = post(&server, "/whip/r1", "application/sdp", None, huge).await;
    assert_eq!(r.status, 413, "{r:?}");
    // Unknown resources: 404.
    let unknown = url(&server, "/whip/r1/00000000000000000000000000000000");
    let r = request(Method::DELETE, &unknown, None, None, &[], String::new()).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = patch(&unknown, fragment("u", 9), &[]).await;
    assert_eq!(r.status, 404, "{r:?}");
    // Methods the resource does not have: 405.
    let r = request(
        Method::GET,
        &url(&server, "/whip/r1"),
        None,
        None,
        &[],
        String::new(),
    )
    .await;
    assert_eq!(r.status, 405, "{r:?}");
    // CORS preflight.
    let r = request(
        Method::OPTIONS,
        &url(&server, "/whip/r1"),
        None,
        None,
        &[
            ("origin", "http://elsewhere.test"),
            ("access-control-request-method", "POST"),
        ],
        String::new(),
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert!(r
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("PATCH") && m.contains("DELETE")));
    assert!(r
        .header("access-control-allow-headers")
        .is_some_and(|m| m.contains("Authorization")));

    // Nothing refused left a participant or a session behind (the abandoned WHEP join of
    // r2 is released when its shard confirms): only r2's WebSocket member remains.
    let deadline = std::time::Instant::now() + WAIT;
    while server.state.joined_participants() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "refused sessions left {} participants",
            server.state.joined_participants()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server
            .metric("switchboard_http_sessions{protocol=\"whep\"}")
            .await
            .unwrap_or(0.0),
        0.0
    );
    let mut ws = raw_join(&server.url, "r1", "checker").await;
    let ok = post(&server, "/whip/r1", "application/sdp", None, offer).await;
    assert_eq!(ok.status, 201, "{ok:?}");
    assert!(ok
        .header("access-control-expose-headers")
        .is_some_and(|h| h.contains("Location") && h.contains("ETag")));
    wait_message(
        &mut ws,
        "the anonymous publisher joining",
        |m| matches!(m, ServerMessage::PeerJoined { peer } if peer.peer_id.starts_with("whip-")),
    )
    .await;
    assert_eq!(
        server
            .metric("switchboard_http_sessions{protocol=\"whip\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_whip_and_whep() {
    let server = TestServer::start(1).await;
    let (status, body) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    let spec: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    for (path, methods) in [
        ("/whip/{room}", &["post"][..]),
        ("/whip/{room}/{id}", &["patch", "delete"][..]),
        ("/whep/{room}", &["post"][..]),
        ("/whep/{room}/{id}", &["post", "patch", "delete"][..]),
    ] {
        for method in methods {
            assert!(
                spec["paths"][path][method].is_object(),
                "openapi documents {method} {path}"
            );
        }
    }
    assert!(
        spec["paths"]["/whip/{room}"]["post"]["responses"]["201"]["headers"]["Location"]
            .is_object()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_required_a_missing_token_is_refused() {
    let server = TestServer::start_with(1, control(AuthMode::Required)).await;
    let offer = publishing_offer(str0m::media::Direction::SendOnly);
    let r = post(&server, "/whip/r", "application/sdp", None, offer.clone()).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("Bearer"), "{}", r.body);
    let r = post(
        &server,
        "/whip/r",
        "application/sdp",
        Some(&token("obs")),
        offer,
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_media_never_connects_is_forgotten() {
    let mut config = RuntimeConfig::localhost(1);
    config.ports = vec![0];
    config.connect_timeout = Duration::from_secs(2);
    let server = TestServer::start_config(config, control(AuthMode::Dev)).await;
    // An offer whose sender never runs any media.
    let offer = publishing_offer(str0m::media::Direction::SendOnly);
    let r = post(
        &server,
        "/whip/quiet",
        "application/sdp",
        Some(&token("ghost")),
        offer,
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(server.state.joined_participants(), 1);
    let resource = url(&server, &r.header("location").expect("Location"));
    // The shard removes it after its connect timeout; the resource goes with it.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        // PATCH probes without ending anything (an empty trickle is a no-op).
        let r = patch(&resource, "a=end-of-candidates\r\n".into(), &[]).await;
        if r.status == 404 {
            break;
        }
        assert_eq!(r.status, 204, "{r:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "resource never forgotten: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...and the room with it.
    let deadline = std::time::Instant::now() + WAIT;
    while server.state.joined_participants() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the room was never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = request(
        Method::GET,
        &url(&server, "/v1/rooms/quiet"),
        None,
        Some(SECRET),
        &[],
        String::new(),
    )
    .await;
    assert_eq!(r.status, 404, "the room is gone: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_player_keeps_its_slots_and_later_tracks_wait_for_them() {
    let server = TestServer::start_with(1, control(AuthMode::Dev)).await;
    let alice = server.join("hall", "alice").await;
    let publisher = publish(&url(&server, "/whip/hall"), Some(&token("cam2")), "cam2")
        .await
        .unwrap_or_else(|r| panic!("WHIP POST refused: {:?}", r.0));
    wait_receives(&alice, "cam2", 20).await;
    // One slot of each kind, four tracks in the room: alice's came first and get the slots;
    // the server cannot offer more to a WHEP session, so cam2's wait.
    let player = play(&url(&server, "/whep/hall"), None, 1, 1)
        .await
        .unwrap_or_else(|r| panic!("WHEP POST refused: {:?}", r.0));
    player
        .wait_for("alice's media", WAIT, |p| {
            p.count("alice", false) > 20 && p.count("alice", true) > 20
        })
        .await;
    assert_eq!(player.owners(), vec!["alice".to_owned()]);
    // alice leaves: her slots go to the waiting tracks.
    alice.leave().await.expect("alice leaves");
    player
        .wait_for("cam2's media in the freed slots", WAIT, |p| {
            p.count("cam2", false) > 20 && p.count("cam2", true) > 20
        })
        .await;
    drop(publisher);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_session_ends_when_its_credential_expires() {
    let server = TestServer::start_with(1, control(AuthMode::Dev)).await;
    let mut watcher = raw_join(&server.url, "brief", "watcher").await;
    let short = whip_bearer_token("brief-cam", &mint(SECRET, "brief-cam", now(), 3));
    let publisher = publish(&url(&server, "/whip/brief"), Some(&short), "brief-cam")
        .await
        .unwrap_or_else(|r| panic!("WHIP POST refused: {:?}", r.0));
    wait_message(
        &mut watcher,
        "peerJoined brief-cam",
        |m| matches!(m, ServerMessage::PeerJoined { peer } if peer.peer_id == "brief-cam"),
    )
    .await;
    // No way to renew it over WHIP: the session ends when the credential does.
    wait_message(
        &mut watcher,
        "peerLeft brief-cam",
        |m| matches!(m, ServerMessage::PeerLeft { peer_id } if peer_id == "brief-cam"),
    )
    .await;
    let resource = url(&server, &publisher.location);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = patch(&resource, "a=end-of-candidates\r\n".into(), &[]).await;
        if r.status == 404 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "resource kept: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_answer_names_the_turn_servers_with_a_minted_credential() {
    let mut config = control(AuthMode::Dev);
    config.turn.urls = vec![
        "turn:127.0.0.1:3478?transport=udp".into(),
        "stun:127.0.0.1:3478".into(),
    ];
    config.turn.secret = "north-wind".into();
    let server = TestServer::start_with(1, config).await;
    let offer = publishing_offer(str0m::media::Direction::SendOnly);
    let r = post(
        &server,
        "/whip/linked",
        "application/sdp",
        Some(&token("linked-cam")),
        offer,
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let links: Vec<String> = r
        .headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    let turn = links
        .iter()
        .find(|l| l.starts_with("<turn:127.0.0.1:3478?transport=udp>; rel=\"ice-server\""))
        .unwrap_or_else(|| panic!("no TURN link in {links:?}"));
    let field = |name: &str| {
        let start = turn.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        turn[start..]
            .split('"')
            .next()
            .expect("closing quote")
            .to_owned()
    };
    let (username, password) = (field("username"), field("credential"));
    assert!(username.ends_with(":linked-cam"), "{username}");
    assert_eq!(
        switchboard_control::turn::verify("north-wind", &username, &password, now()),
        Ok("linked-cam".to_owned()),
        "coturn with the same secret accepts it"
    );
    assert!(links
        .iter()
        .any(|l| l == "<stun:127.0.0.1:3478>; rel=\"ice-server\""));
}
