//! Simulcast: each subscriber gets one layer at a time, the one its preference and its link
//! allow, with one continuous stream across switches; a layer that stops is replaced.

use std::time::Duration;

use switchboard_core::{Command, Shard};
use switchboard_protocol::{Quality, ServerMessage};

use crate::sim::{layer_of, three_layers, Sim};

pub const Q: usize = 0;
pub const H: usize = 1;
pub const F: usize = 2;

/// (seq, layer) of the video `name` received from `owner`, in arrival order.
pub fn video(sim: &Sim, name: &str, owner: &str) -> Vec<(u64, usize)> {
    sim.client(name)
        .packets_of(owner, true)
        .into_iter()
        .map(|(seq, counter)| (seq, layer_of(counter)))
        .collect()
}

/// The layer of the last `n` packets, if they all share one.
pub fn settled_layer(packets: &[(u64, usize)], n: usize) -> Option<usize> {
    let tail = &packets[packets.len().saturating_sub(n)..];
    let first = tail.first()?.1;
    tail.iter().all(|p| p.1 == first).then_some(first)
}

/// The id of the (first) video track `name` was told of.
pub fn video_track_of(sim: &Sim, name: &str) -> String {
    video_track_from(sim, name, "")
}

/// The id of the video track of `owner` (any owner when empty) `name` was told of.
fn video_track_from(sim: &Sim, name: &str, owner: &str) -> String {
    sim.client(name)
        .signals
        .iter()
        .find_map(|m| match m {
            ServerMessage::TrackPublished { track, peer_id, .. }
                if track.kind == switchboard_protocol::MediaKind::Video
                    && (owner.is_empty() || peer_id == owner) =>
            {
                Some(track.track_id.clone())
            }
            _ => None,
        })
        .expect("a video track was published")
}

pub fn set_quality(sim: &mut Sim, name: &str, track: &str, quality: Quality) {
    let participant = sim.client(name).pid;
    sim.command(Command::SetTrackQuality {
        participant,
        track_id: track.to_owned(),
        quality: Some(quality),
        priority: None,
    });
}

#[test]
fn each_subscriber_gets_the_layer_it_asks_for_in_one_continuous_stream() {
    let mut sim = Sim::new();
    sim.join_simulcast = three_layers();
    sim.join("r", "pub", true);
    sim.join_simulcast = Vec::new();
    sim.join("r", "best", false);
    sim.join("r", "small", false);
    sim.run(Duration::from_secs(2));
    let video_track = &video_track_of(&sim, "small");
    set_quality(&mut sim, "small", video_track, Quality::Low);
    sim.run(Duration::from_secs(3));

    let best = video(&sim, "best", "pub");
    let small = video(&sim, "small", "pub");
    assert_eq!(
        settled_layer(&best, 200),
        Some(F),
        "best gets the top layer"
    );
    assert_eq!(settled_layer(&small, 60), Some(Q), "small asked for low");
    // One stream: the switch from f to q leaves no hole and no repeat in the numbering.
    let seqs: Vec<u64> = small.iter().map(|p| p.0).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous sequence numbers across the switch"
    );
    assert!(
        small.iter().any(|p| p.1 == F),
        "small started on the top layer"
    );

    // Medium is the middle layer; back to high climbs again.
    set_quality(&mut sim, "small", video_track, Quality::Medium);
    sim.run(Duration::from_secs(2));
    assert_eq!(settled_layer(&video(&sim, "small", "pub"), 100), Some(H));
    set_quality(&mut sim, "small", video_track, Quality::High);
    sim.run(Duration::from_secs(2));
    assert_eq!(settled_layer(&video(&sim, "small", "pub"), 200), Some(F));

    // An unknown track is refused to the asker alone.
    set_quality(&mut sim, "small", "nobody:1", Quality::Low);
    sim.run(Duration::from_millis(50));
    let refused = sim.client("small").signals.iter().any(|m| {
        matches!(m, ServerMessage::Error { code, request: Some(r), .. }
            if *code == switchboard_protocol::ErrorCode::UnknownTrack && r == "setTrackQuality")
    });
    assert!(refused, "setTrackQuality on an unknown track is refused");
    let stats = sim.shard.stats();
    assert!(stats.layer_switches >= 3, "{stats:?}");
}

#[test]
fn a_layer_that_stops_is_replaced_by_the_next_within_a_second_or_so() {
    let mut sim = Sim::new();
    sim.join_simulcast = three_layers();
    sim.join("r", "pub", true);
    sim.join_simulcast = Vec::new();
    sim.join("r", "sub", false);
    sim.run(Duration::from_secs(3));
    assert_eq!(settled_layer(&video(&sim, "sub", "pub"), 100), Some(F));

    // The publisher stops its top encoding (a browser short of CPU does).
    sim.client_mut("pub").simulcast[F].active = false;
    let mut longest = Duration::ZERO;
    let mut gap = Duration::ZERO;
    let mut count = video(&sim, "sub", "pub").len();
    for _ in 0..40 {
        sim.run(Duration::from_millis(50));
        let now = video(&sim, "sub", "pub").len();
        if now == count {
            gap += Duration::from_millis(50);
            longest = longest.max(gap);
        } else {
            gap = Duration::ZERO;
        }
        count = now;
    }
    let packets = video(&sim, "sub", "pub");
    assert_eq!(settled_layer(&packets, 60), Some(H), "falls back to h");
    assert!(
        longest <= Duration::from_millis(1300),
        "video froze for {longest:?}"
    );
    let seqs: Vec<u64> = packets.iter().map(|p| p.0).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "one stream");

    // It comes back: the subscriber climbs to it again.
    sim.client_mut("pub").simulcast[F].active = true;
    sim.client_mut("pub").simulcast[F].keyframe_due = true;
    sim.run(Duration::from_secs(3));
    assert_eq!(settled_layer(&video(&sim, "sub", "pub"), 100), Some(F));
}

/// Two simulcast publishers and one subscriber, with every subscriber capped at `cap` bits per
/// second, after 4 s.
fn capped_room(cap: u64) -> Sim {
    let mut sim = Sim::new();
    let mut config = sim.shard.config().clone();
    config.max_subscriber_bitrate = Some(cap);
    sim.shard = Shard::new(config, sim.now);
    sim.join_simulcast = three_layers();
    sim.join("r", "pub", true);
    sim.join("r", "pub2", true);
    sim.join_simulcast = Vec::new();
    sim.join("r", "sub", false);
    sim.run(Duration::from_secs(4));
    sim
}

#[test]
fn the_configured_cap_per_subscriber_holds_layers_down_in_priority_order() {
    // Audio (~90 kbit/s) and the middle layer (~430) fit; the top (~1 160) does not.
    let mut sim = capped_room(700_000);

    let from_pub = video(&sim, "sub", "pub");
    let from_pub2 = video(&sim, "sub", "pub2");
    // Two tracks: audio twice (~180) and both lowest layers (~180) fit, one upgrade to h
    // (+~340) fits too, the second does not: the first track in order gets it.
    assert_eq!(
        settled_layer(&from_pub, 60),
        Some(H),
        "{:?}",
        layers_seen(&from_pub)
    );
    assert_eq!(
        settled_layer(&from_pub2, 30),
        Some(Q),
        "{:?}",
        layers_seen(&from_pub2)
    );
    assert!(
        sim.client("sub").packets_of("pub", false).len() > 150,
        "audio is always served"
    );

    // Priority: the second track is pinned; it takes the upgrade.
    let track2 = video_track_from(&sim, "sub", "pub2");
    let participant = sim.client("sub").pid;
    sim.command(Command::SetTrackQuality {
        participant,
        track_id: track2,
        quality: None,
        priority: Some(10),
    });
    sim.run(Duration::from_secs(2));
    assert_eq!(settled_layer(&video(&sim, "sub", "pub2"), 60), Some(H));
    assert_eq!(settled_layer(&video(&sim, "sub", "pub"), 30), Some(Q));
    for owner in ["pub", "pub2"] {
        let seqs: Vec<u64> = video(&sim, "sub", owner).iter().map(|p| p.0).collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "{owner}: one stream"
        );
    }
}

#[test]
fn a_track_that_does_not_fit_is_paused_and_resumed_with_notice() {
    // Room for audio and one lowest layer, not two.
    let mut sim = capped_room(300_000);
    let paused: Vec<String> = sim
        .client("sub")
        .signals
        .iter()
        .filter_map(|m| match m {
            ServerMessage::TrackPaused {
                peer_id, reason, ..
            } => {
                assert_eq!(*reason, switchboard_protocol::PauseReason::Bandwidth);
                Some(peer_id.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(paused, vec!["pub2".to_owned()], "the second track pauses");
    let before = video(&sim, "sub", "pub2").len();
    sim.run(Duration::from_secs(1));
    assert_eq!(
        video(&sim, "sub", "pub2").len(),
        before,
        "nothing while paused"
    );
    assert!(video(&sim, "sub", "pub").len() > 50);

    // The first publisher leaves: the paused track fits again and resumes at a keyframe.
    sim.leave("pub");
    sim.run(Duration::from_secs(2));
    let resumed = sim
        .client("sub")
        .signals
        .iter()
        .any(|m| matches!(m, ServerMessage::TrackResumed { peer_id, .. } if peer_id == "pub2"));
    assert!(resumed, "trackResumed for pub2");
    assert!(
        video(&sim, "sub", "pub2").len() > before + 20,
        "pub2 flows again"
    );
    assert!(sim.shard.stats().bandwidth_pauses >= 1);
}

/// The layers of `packets` in order, each run once (for messages).
pub fn layers_seen(packets: &[(u64, usize)]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for p in packets {
        match runs.last_mut() {
            Some((layer, n)) if *layer == p.1 => *n += 1,
            _ => runs.push((p.1, 1)),
        }
    }
    runs
}
