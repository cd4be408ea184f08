//! Smoke test against a running Switchboard server (ignored by default):
//! `SWITCHBOARD_URL=ws://127.0.0.1:7880/v1/ws cargo test -p switchboard-loadtest --test live_server -- --ignored --nocapture`

use std::time::Duration;

use switchboard_loadtest::{Client, ClientOptions, MediaKind};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running server"]
async fn two_clients_exchange_media() {
    let url =
        std::env::var("SWITCHBOARD_URL").unwrap_or_else(|_| "ws://127.0.0.1:7880/v1/ws".into());
    let room = format!(
        "smoke-{}",
        switchboard_loadtest::synth::now_us() % 1_000_000
    );
    let opts = |name: &str| ClientOptions {
        name: Some(name.into()),
        recv_audio_slots: 1,
        recv_video_slots: 1,
        ..ClientOptions::new(url.clone(), room.clone())
    };
    let alice = Client::join(opts("alice")).await.expect("alice joins");
    let bob = Client::join(opts("bob")).await.expect("bob joins");
    let (a, b) = (alice.peer_id().to_owned(), bob.peer_id().to_owned());

    for (me, other) in [(&alice, &b), (&bob, &a)] {
        let s = me
            .wait_until("media from the other", WAIT, |s| {
                s.packets_from(other, MediaKind::Audio) >= 25
                    && s.packets_from(other, MediaKind::Video) >= 45
            })
            .await
            .expect("media flows");
        eprintln!("{}", s.summary());
        let v = s.recv(other, MediaKind::Video).expect("video");
        eprintln!(
            "latency p50={}us p99={}us",
            v.latency_percentile(50.0),
            v.latency_percentile(99.0)
        );
        assert_eq!(s.wrong_owner, 0);
    }

    bob.leave().await.expect("bob leaves");
    alice
        .wait_until("bob left", WAIT, |s| s.peers_left.contains(&b))
        .await
        .expect("peerLeft");
    alice.leave().await.expect("alice leaves");
}
