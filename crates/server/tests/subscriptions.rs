//! Selective subscription, described tracks and client mute, through real sockets: a member
//! that does not take every track receives exactly what it subscribes to, races between
//! subscriptions and negotiation or unpublishing leave a clean state, and an owner's mute stops
//! and restarts forwarding.

mod common;

use std::time::{Duration, Instant};

use common::{raw_join, wait_receives, TestServer, WAIT};
use switchboard_loadtest::{Client, ClientStats, MediaKind};
use switchboard_protocol::{ErrorCode, MuteOrigin, ServerMessage, TrackSource};

/// Publishers whose tracks are named `mic` and `camera` (ids `<peer>:mic`, `<peer>:camera`).
async fn publisher(server: &TestServer, room: &str, name: &str) -> Client {
    let mut opts = server.options(room, name);
    opts.audio_track_name = Some("mic".into());
    opts.video_track_name = Some("camera".into());
    Client::join(opts).await.expect("publisher joins")
}

/// A member that takes only what it subscribes to, with one receive slot of each kind ready.
async fn selective(server: &TestServer, room: &str, name: &str) -> Client {
    let mut opts = server.options(room, name);
    opts.audio = false;
    opts.video = None;
    opts.recv_audio_slots = 1;
    opts.recv_video_slots = 1;
    opts.auto_subscribe = Some(false);
    Client::join(opts).await.expect("subscriber joins")
}

fn packets(s: &ClientStats, from: &str) -> (u64, u64) {
    (
        s.packets_from(from, MediaKind::Audio),
        s.packets_from(from, MediaKind::Video),
    )
}

fn subscribe(client: &Client, track_id: &str) {
    client.send_raw(format!(r#"{{"type":"subscribe","trackId":"{track_id}"}}"#));
}

fn unsubscribe(client: &Client, track_id: &str) {
    client.send_raw(format!(
        r#"{{"type":"unsubscribe","trackId":"{track_id}"}}"#
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selective_member_receives_exactly_what_it_subscribes_to() {
    let server = TestServer::start(1).await;
    let alice = publisher(&server, "sel", "alice").await;
    let bob = publisher(&server, "sel", "bob").await;
    let carol = selective(&server, "sel", "carol").await;
    // The room's tracks are discoverable, but nothing arrives unasked.
    wait_receives(&bob, "alice", 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = carol.stats();
    assert_eq!(packets(&s, "alice"), (0, 0), "{}", s.summary());
    assert_eq!(packets(&s, "bob"), (0, 0));

    let asked = Instant::now();
    subscribe(&carol, "alice:camera");
    carol
        .wait_until("alice's camera only", WAIT, |s| {
            s.packets_from("alice", MediaKind::Video) > 20
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!("subscription latency: {:?}", asked.elapsed());
    let s = carol.stats();
    assert_eq!(s.packets_from("alice", MediaKind::Audio), 0);
    assert_eq!(packets(&s, "bob"), (0, 0));
    assert_eq!(s.wrong_owner, 0);

    // Unsubscribe: the slot is released and the packets stop.
    unsubscribe(&carol, "alice:camera");
    carol
        .wait_until("the camera's slot released", WAIT, |s| {
            s.unpublished.iter().any(|(t, _)| t == "alice:camera")
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = carol.stats().packets_from("alice", MediaKind::Video);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        carol.stats().packets_from("alice", MediaKind::Video),
        stopped,
        "no packets after unsubscribing"
    );
    // The freed slot serves the next subscription (bob's camera) without a new m-line.
    let mlines = carol.stats().mline_count;
    subscribe(&carol, "bob:camera");
    wait_until_video(&carol, "bob").await;
    assert_eq!(carol.stats().mline_count, mlines, "the slot was reused");

    // Unknown tracks are refused with their code.
    subscribe(&carol, "nobody:camera");
    carol
        .wait_until("unknownTrack", WAIT, |s| {
            s.errors.iter().any(|(c, _)| *c == ErrorCode::UnknownTrack)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(alice);
}

async fn wait_until_video(client: &Client, from: &str) {
    let from = from.to_owned();
    client
        .wait_until("video arrives", WAIT, move |s| {
            s.packets_from(&from, MediaKind::Video) > 20
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_races_leave_a_clean_state() {
    let server = TestServer::start(1).await;
    let alice = publisher(&server, "race", "alice").await;
    // No receive slots at all: a subscription needs a server offer.
    let mut opts = server.options("race", "dave");
    opts.audio = true;
    opts.video = None;
    opts.auto_subscribe = Some(false);
    let dave = Client::join(opts).await.expect("dave joins");

    // Unsubscribe while the server's offer for the subscription is outstanding.
    subscribe(&dave, "alice:camera");
    unsubscribe(&dave, "alice:camera");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = dave.stats();
    assert_eq!(
        s.packets_from("alice", MediaKind::Video),
        0,
        "{}",
        s.summary()
    );
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    // The slot that offer made is there and free: a new subscription uses it.
    subscribe(&dave, "alice:camera");
    wait_until_video(&dave, "alice").await;

    // Subscribe to a track while its publisher leaves.
    let erin = publisher(&server, "race", "erin").await;
    wait_receives(&alice, "erin", 10).await;
    subscribe(&dave, "erin:camera");
    erin.leave().await.expect("erin leaves");
    dave.wait_until("erin gone", WAIT, |s| {
        s.peers_left.iter().any(|p| p == "erin")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = dave.stats();
    // Either it never went through (unknownTrack) or it went and came back: nothing dangles.
    assert!(
        s.slots.values().flatten().all(|t| t.peer_id != "erin"),
        "no slot still carries erin's track: {:?}",
        s.slots
    );
    assert!(s.errors.iter().all(|(c, _)| *c == ErrorCode::UnknownTrack));
    // Alice's camera kept flowing to dave through all of it.
    let before = dave.stats().packets_from("alice", MediaKind::Video);
    dave.wait_until("more of alice", WAIT, |s| {
        s.packets_from("alice", MediaKind::Video) > before + 30
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_are_described_and_discoverable_before_media() {
    let server = TestServer::start(1).await;
    let alice = publisher(&server, "desc", "alice").await;
    let mut watcher = raw_join(&server.url, "desc", "watcher").await;
    alice.send_raw(
        r#"{"type":"defineTrack","name":"screen","kind":"video","source":"screen","description":"quarterly slides"}"#
            .into(),
    );
    loop {
        match watcher.recv().await {
            Some(ServerMessage::TrackDefined { peer_id, track })
                if track.track_id == "alice:screen" =>
            {
                assert_eq!(peer_id, "alice");
                assert_eq!(track.source, Some(TrackSource::Screen));
                assert_eq!(track.description.as_deref(), Some("quarterly slides"));
                assert!(!track.live, "defined before any media flows");
                break;
            }
            Some(_) => continue,
            None => panic!("the watcher was disconnected"),
        }
    }
    // A late joiner sees it in the member list, with the live tracks and the media state.
    let mut late = common::RawWs::connect(&server.url).await;
    late.send(r#"{"type":"join","room":"desc","peerId":"late","autoSubscribe":false}"#)
        .await;
    let Some(ServerMessage::Joined {
        members,
        resume_token,
        ..
    }) = late.recv().await
    else {
        panic!("joined");
    };
    assert!(resume_token.is_some());
    let a = members
        .iter()
        .find(|m| m.peer_id == "alice")
        .expect("alice");
    let ids: Vec<&str> = a.tracks.iter().map(|t| t.track_id.as_str()).collect();
    assert!(
        ids.contains(&"alice:mic")
            && ids.contains(&"alice:camera")
            && ids.contains(&"alice:screen"),
        "{ids:?}"
    );
    assert!(a.media_state.audio && a.media_state.video && !a.media_state.screen_share);
    // Bad definitions get their code; removing the definition tells the room.
    alice.send_raw(r#"{"type":"defineTrack","name":"screen","kind":"video"}"#.into());
    alice.send_raw(r#"{"type":"defineTrack","name":"x","kind":"audio","source":"camera"}"#.into());
    alice
        .wait_until("two invalidTrack errors", WAIT, |s| {
            s.errors
                .iter()
                .filter(|(c, _)| *c == ErrorCode::InvalidTrack)
                .count()
                >= 2
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    alice.send_raw(r#"{"type":"removeTrack","trackId":"alice:screen"}"#.into());
    loop {
        match watcher.recv().await {
            Some(ServerMessage::TrackRemoved { track_id, .. }) if track_id == "alice:screen" => {
                break
            }
            Some(_) => continue,
            None => panic!("the watcher was disconnected"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_mute_stops_forwarding_and_unmute_restarts_at_a_keyframe() {
    let server = TestServer::start(1).await;
    let alice = publisher(&server, "mute", "alice").await;
    let bob = publisher(&server, "mute", "bob").await;
    wait_receives(&bob, "alice", 20).await;
    alice.send_raw(r#"{"type":"mute","trackId":"alice:camera","muted":true}"#.into());
    bob.wait_until("the mute, by the owner", WAIT, |s| {
        s.mutes
            .iter()
            .any(|(t, m, by)| t == "alice:camera" && *m && *by == MuteOrigin::Owner)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    bob.wait_until("alice's media state: no video", WAIT, |s| {
        s.media_states
            .get("alice")
            .is_some_and(|m| m.audio && !m.video)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frozen = bob.stats().packets_from("alice", MediaKind::Video);
    let audio = bob.stats().packets_from("alice", MediaKind::Audio);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = bob.stats();
    assert_eq!(
        s.packets_from("alice", MediaKind::Video),
        frozen,
        "muted video is not forwarded"
    );
    assert!(
        s.packets_from("alice", MediaKind::Audio) > audio + 20,
        "audio goes on"
    );
    // Only the owner can mute its tracks.
    bob.send_raw(r#"{"type":"mute","trackId":"alice:mic","muted":true}"#.into());
    bob.wait_until("unknownTrack for someone else's track", WAIT, |s| {
        s.errors.iter().any(|(c, _)| *c == ErrorCode::UnknownTrack)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let keyframes = bob
        .stats()
        .recv("alice", MediaKind::Video)
        .map_or(0, |r| r.keyframes);
    alice.send_raw(r#"{"type":"mute","trackId":"alice:camera","muted":false}"#.into());
    bob.wait_until("video again, from a keyframe", WAIT, |s| {
        s.recv("alice", MediaKind::Video)
            .is_some_and(|r| r.packets > frozen + 20 && r.keyframes > keyframes)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let s = bob.stats();
    assert_eq!(s.wrong_owner, 0);
    assert_eq!(s.total(|r| r.corrupt), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_changes_subscriptions() {
    let server = TestServer::start(1).await;
    let key = server.state.dev_key().expect("dev key");
    let _alice = publisher(&server, "adm", "alice").await;
    let carol = selective(&server, "adm", "carol").await;
    // Alice's tracks went live when her offer was answered, before `join` returned.
    let http = reqwest::Client::new();
    let url = format!(
        "http://{}/v1/rooms/adm/participants/carol/subscriptions",
        server.http
    );
    let put = |body: serde_json::Value| {
        let (http, url, secret) = (http.clone(), url.clone(), key.secret.clone());
        async move {
            http.put(&url)
                .bearer_auth(&secret)
                .json(&body)
                .send()
                .await
                .expect("admin request")
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        put(serde_json::json!({"subscribe": ["alice:mic"]})).await,
        204
    );
    carol
        .wait_until("alice's audio", WAIT, |s| {
            s.packets_from("alice", MediaKind::Audio) > 20
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(carol.stats().packets_from("alice", MediaKind::Video), 0);
    assert_eq!(
        put(serde_json::json!({"subscribe": ["alice:nothing"]})).await,
        404
    );
    assert_eq!(
        put(serde_json::json!({"unsubscribe": ["alice:mic"]})).await,
        204
    );
    carol
        .wait_until("the audio slot released", WAIT, |s| {
            s.unpublished.iter().any(|(t, _)| t == "alice:mic")
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
