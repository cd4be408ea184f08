//! End to end over loopback: str0m clients join rooms through the WebSocket, connect with real
//! ICE/DTLS/SRTP to the shard sockets, publish synthetic audio and video, and check what they get.

mod common;

use std::time::{Duration, Instant};

use common::{wait_receives, TestServer, WAIT};
use switchboard_loadtest::{Client, MediaKind};

fn assert_clean(client: &Client) {
    let s = client.stats();
    assert_eq!(
        s.wrong_owner, 0,
        "{}: media on a mid from the wrong owner",
        s.peer_id
    );
    assert_eq!(s.total(|r| r.corrupt), 0, "{}: corrupt payloads", s.peer_id);
    assert!(
        s.errors.is_empty(),
        "{}: server errors {:?}",
        s.peer_id,
        s.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_publishers_a_late_joiner_and_a_leave() {
    let server = TestServer::start(2).await;
    let names = ["alice", "bob", "carol"];
    let mut clients = Vec::new();
    for name in names {
        clients.push(server.join("main", name).await);
    }
    for (i, c) in clients.iter().enumerate() {
        for (j, from) in names.iter().enumerate() {
            if i != j {
                wait_receives(c, from, 30).await;
            }
        }
    }

    // Forwarding rate over a quiet second of three-way media.
    let before = server.stats();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.stats();
    let rate = (after.rtp_forwarded - before.rtp_forwarded) as f64 / t0.elapsed().as_secs_f64();
    println!("forwarded {rate:.0} RTP packets/s with 3 participants");
    assert!(rate > 100.0, "forwarding rate {rate}");

    // A late joiner gets everything, and everybody gets it.
    let joined_at = Instant::now();
    let dave = server.join("main", "dave").await;
    let first = dave
        .wait_until("dave's first media", WAIT, |s| {
            s.received.values().any(|r| r.packets > 0)
        })
        .await
        .expect("dave receives media");
    let first_at = first
        .received
        .values()
        .filter_map(|r| r.first_packet_at)
        .min()
        .expect("a first packet");
    println!(
        "join-to-first-media: {} ms",
        first_at.saturating_duration_since(joined_at).as_millis()
    );
    for from in names {
        wait_receives(&dave, from, 30).await;
    }
    for c in &clients {
        wait_receives(c, "dave", 30).await;
    }

    // Bob leaves: the others see him go and his tracks end.
    let bob = clients.remove(1);
    bob.leave().await.expect("bob leaves cleanly");
    clients.push(dave);
    for c in &clients {
        let s = c
            .wait_until("bob gone", WAIT, |s| {
                s.peers_left.iter().any(|p| p == "bob")
                    && s.unpublished.iter().filter(|(_, p)| p == "bob").count() == 2
            })
            .await
            .expect("bob's departure is announced");
        assert!(!s.members.contains_key("bob"));
        assert!(
            s.slots.values().flatten().all(|t| t.peer_id != "bob"),
            "no slot still carries bob"
        );
        assert_clean(c);
    }
    // Media keeps flowing between the rest.
    let s = clients[0].stats();
    let carol_before = s.packets_from("carol", MediaKind::Video);
    clients[0]
        .wait_until("more video from carol", WAIT, |s| {
            s.packets_from("carol", MediaKind::Video) > carol_before + 30
        })
        .await
        .expect("media continues");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_never_see_each_other() {
    let server = TestServer::start(2).await;
    let a1 = server.join("red", "a1").await;
    let a2 = server.join("red", "a2").await;
    let b1 = server.join("blue", "b1").await;
    let b2 = server.join("blue", "b2").await;
    wait_receives(&a1, "a2", 40).await;
    wait_receives(&a2, "a1", 40).await;
    wait_receives(&b1, "b2", 40).await;
    wait_receives(&b2, "b1", 40).await;
    for (c, foreign) in [
        (&a1, ["b1", "b2"]),
        (&a2, ["b1", "b2"]),
        (&b1, ["a1", "a2"]),
        (&b2, ["a1", "a2"]),
    ] {
        let s = c.stats();
        for f in foreign {
            assert_eq!(s.packets_from(f, MediaKind::Audio), 0);
            assert_eq!(s.packets_from(f, MediaKind::Video), 0);
            assert!(!s.members.contains_key(f));
        }
        assert_clean(c);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_join_leave_cycles_keep_media_and_mlines_bounded() {
    // A guest that vanishes is removed once its resume grace is over: 1 s here, not the
    // default 20 s, so that ten vanished guests cost seconds, not minutes.
    let mut control = switchboard_control::ControlConfig::default();
    control.limits.resume_grace_s = 1;
    let server = TestServer::start_with(1, control).await;
    let alice = server.join("churn", "alice").await;
    let bob = server.join("churn", "bob").await;
    wait_receives(&alice, "bob", 20).await;
    wait_receives(&bob, "alice", 20).await;
    let mut mlines_after_first = 0;
    for i in 0..20 {
        let name = format!("guest{i}");
        let guest = server.join("churn", &name).await;
        wait_receives(&alice, &name, 10).await;
        wait_receives(&guest, "alice", 10).await;
        if i % 2 == 0 {
            guest.leave().await.expect("guest leaves");
        } else {
            // Vanish without `leave`: closing the WebSocket must take it out too.
            guest.kill();
        }
        alice
            .wait_until("guest gone", WAIT, |s| s.peers_left.contains(&name))
            .await
            .expect("departure announced");
        if i == 0 {
            mlines_after_first = alice.stats().mline_count;
        }
    }
    let s = alice.stats();
    // 2 published + 2 for bob + 2 reused by every guest.
    assert!(
        s.mline_count <= mlines_after_first && s.mline_count <= 6,
        "alice has {} m-lines (after the first guest: {mlines_after_first})",
        s.mline_count
    );
    let before = s.packets_from("bob", MediaKind::Video);
    alice
        .wait_until("bob's media still flowing", WAIT, |s| {
            s.packets_from("bob", MediaKind::Video) > before + 30
        })
        .await
        .expect("media flows after churn");
    assert_clean(&alice);
    assert_clean(&bob);
    let stats = server.stats();
    assert_eq!(stats.participants, 2);
    assert_eq!(stats.tracks, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframe_requests_reach_the_publisher_throttled() {
    let server = TestServer::start(1).await;
    let alice = server.join("kf", "alice").await;
    let bob = server.join("kf", "bob").await;
    let s = wait_receives(&bob, "alice", 30).await;
    let video_mid = s
        .slots
        .iter()
        .find_map(|(mid, t)| {
            t.as_ref()
                .filter(|t| t.peer_id == "alice" && t.kind == MediaKind::Video)
                .map(|_| mid.clone())
        })
        .expect("bob has alice's video on a mid");
    // Let the keyframe requests of the join settle past the throttle window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = alice.stats().keyframe_requests;
    let t0 = Instant::now();
    for _ in 0..20 {
        bob.request_keyframe(&video_mid);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let burst = t0.elapsed();
    let s = alice
        .wait_until("a keyframe request", WAIT, |s| s.keyframe_requests > before)
        .await
        .expect("bob's PLI reaches alice");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = alice.stats().keyframe_requests - before;
    // At most one per 300 ms window of the burst, plus the one deferred to its end.
    let allowed = (burst.as_millis() / 300) as u64 + 2;
    assert!(
        got >= 1 && got <= allowed,
        "alice got {got} keyframe requests for 20 PLIs in {burst:?} (allowed {allowed})"
    );
    assert!(s.keyframe_requests > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_peer_connection_leaves_the_room() {
    let server = TestServer::start(1).await;
    let alice = server.join("pc", "alice").await;
    let bob = server.join("pc", "bob").await;
    wait_receives(&alice, "bob", 20).await;
    // Bob closes his PeerConnection but keeps the WebSocket open.
    bob.close_media();
    let s = bob
        .wait_until("bob's session ends", WAIT, |s| s.left_reason.is_some())
        .await
        .expect("the server ends a session whose media connection closed");
    assert_eq!(
        s.left_reason,
        Some(switchboard_loadtest::LeaveReason::TransportClosed)
    );
    alice
        .wait_until("bob gone", WAIT, |s| {
            s.peers_left.iter().any(|p| p == "bob")
        })
        .await
        .expect("the others see him leave");
}

/// RED audio through the real path: alice publishes Opus as RED and skips every 10th packet (as
/// if the network lost it). Bob negotiated RED: he gets it as it was sent and recovers each
/// skipped frame from the next packet's copy. Carol did not: she gets plain Opus (the server
/// strips the redundancy), so the same packets stay lost. Both get alice's frames, no one else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_audio_is_recovered_by_red_subscribers_and_stripped_for_the_rest() {
    let server = TestServer::start(1).await;
    let before = server.stats();
    let mut alice = server.options("red", "alice");
    (alice.red, alice.drop_audio_every, alice.video) = (true, 10, None);
    let alice = Client::join(alice).await.expect("alice joins");
    let mut bob = server.options("red", "bob");
    (bob.red, bob.audio, bob.video, bob.recv_audio_slots) = (true, false, None, 1);
    let bob = Client::join(bob).await.expect("bob joins");
    let mut carol = server.options("red", "carol");
    (carol.audio, carol.video, carol.recv_audio_slots) = (false, None, 1);
    let carol = Client::join(carol).await.expect("carol joins");

    let enough = |s: &switchboard_loadtest::ClientStats| {
        s.recv("alice", MediaKind::Audio)
            .is_some_and(|r| r.lost >= 5)
    };
    let bob_saw = bob
        .wait_until("bob loses 5 of alice's packets", WAIT, enough)
        .await
        .expect("bob receives");
    let carol_saw = carol
        .wait_until("carol loses 5 of alice's packets", WAIT, enough)
        .await
        .expect("carol receives");
    let sent = alice.stats();
    assert!(sent.dropped_audio >= 5, "{}", sent.summary());

    let b = bob_saw
        .recv("alice", MediaKind::Audio)
        .expect("bob has audio");
    assert_eq!(
        b.red_packets,
        b.packets,
        "bob gets RED: {}",
        bob_saw.summary()
    );
    // Each skipped packet sits between two sent ones, so the next one's copy brings it back
    // (at most the newest hole is still waiting for its next packet).
    assert!(
        b.recovered + 1 >= b.lost && b.recovered >= 4,
        "bob recovered {} of {} lost",
        b.recovered,
        b.lost
    );
    assert_eq!((b.corrupt, b.bad_redundancy), (0, 0));

    let c = carol_saw
        .recv("alice", MediaKind::Audio)
        .expect("carol has audio");
    assert_eq!(
        (c.red_packets, c.recovered),
        (0, 0),
        "carol gets plain Opus"
    );
    assert!(c.lost >= 5 && c.corrupt == 0, "{}", carol_saw.summary());
    for s in [&bob_saw, &carol_saw] {
        assert_eq!(s.received.len(), 1, "only alice's audio: {}", s.summary());
        assert_eq!(s.wrong_owner, 0);
    }
    assert!(server.stats().red_in > before.red_in);
}
