//! Dynacast: a publisher is told to stop the layers nobody receives, after a hold, and to start
//! them again at once when somebody wants them; the simulated publisher obeys as the SDK does.

use std::time::Duration;

use switchboard_core::{dynacast::HOLD, Shard};
use switchboard_protocol::{Quality, ServerMessage};

use super::simulcast::{set_quality, settled_layer, video, video_track_of, F, H, Q};
use crate::sim::{three_layers, Sim};

/// Which of `pub`'s encodings (q, h, f) it sends now.
fn sending(sim: &Sim) -> [bool; 3] {
    let layers = &sim.client("pub").simulcast;
    [layers[Q].active, layers[H].active, layers[F].active]
}

fn told(sim: &Sim) -> usize {
    sim.client("pub")
        .signals
        .iter()
        .filter(|m| matches!(m, ServerMessage::LayersWanted { .. }))
        .count()
}

fn room() -> Sim {
    let mut sim = Sim::new();
    sim.join_simulcast = three_layers();
    sim.join("r", "pub", true);
    sim.join_simulcast = Vec::new();
    sim.join("r", "a", false);
    sim.join("r", "b", false);
    sim.run(Duration::from_secs(3));
    sim
}

#[test]
fn layers_nobody_wants_stop_after_the_hold_and_start_at_once_when_wanted() {
    let mut sim = room();
    let track = &video_track_of(&sim, "a");
    assert_eq!(told(&sim), 0, "everything is wanted: nothing to tell");

    // a wants low, b still high: every layer stays.
    set_quality(&mut sim, "a", track, Quality::Low);
    sim.run(HOLD + Duration::from_secs(1));
    assert_eq!(sending(&sim), [true, true, true]);
    assert_eq!(settled_layer(&video(&sim, "a", "pub"), 30), Some(Q));
    assert_eq!(settled_layer(&video(&sim, "b", "pub"), 100), Some(F));

    // b wants medium too: nobody wants f, which stops only after the hold.
    set_quality(&mut sim, "b", track, Quality::Medium);
    sim.run(HOLD / 2);
    assert_eq!(sending(&sim), [true, true, true], "not before the hold");
    sim.run(HOLD);
    assert_eq!(sending(&sim), [true, true, false], "f stopped");
    sim.run(Duration::from_secs(1));
    assert_eq!(settled_layer(&video(&sim, "b", "pub"), 60), Some(H));
    assert_eq!(settled_layer(&video(&sim, "a", "pub"), 30), Some(Q));

    // b wants high again: f starts at once and b climbs to it, in one stream.
    set_quality(&mut sim, "b", track, Quality::High);
    sim.run(Duration::from_millis(20));
    assert_eq!(sending(&sim), [true, true, true], "f started at once");
    sim.run(Duration::from_secs(2));
    let b = video(&sim, "b", "pub");
    assert_eq!(settled_layer(&b, 100), Some(F));
    let seqs: Vec<u64> = b.iter().map(|p| p.0).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "one stream");

    // Everybody leaves: nothing is sent after the hold.
    sim.leave("a");
    sim.leave("b");
    sim.run(HOLD + Duration::from_secs(1));
    assert_eq!(sending(&sim), [false, false, false]);

    // Someone joins: the layers start as it subscribes, and it gets the top one.
    sim.join("r", "c", false);
    sim.run(Duration::from_secs(2));
    assert_eq!(sending(&sim), [true, true, true]);
    assert_eq!(settled_layer(&video(&sim, "c", "pub"), 100), Some(F));

    let stats = sim.shard.stats();
    assert_eq!(stats.dynacast_stops, 4, "f, then q, h and f: {stats:?}");
    assert_eq!(stats.dynacast_starts, 4, "f, then q, h and f: {stats:?}");
}

#[test]
fn dynacast_off_tells_publishers_nothing() {
    let mut sim = Sim::new();
    let mut config = sim.shard.config().clone();
    config.dynacast = false;
    sim.shard = Shard::new(config, sim.now);
    sim.join_simulcast = three_layers();
    sim.join("r", "pub", true);
    sim.join_simulcast = Vec::new();
    sim.join("r", "a", false);
    sim.run(Duration::from_secs(2));
    let track = &video_track_of(&sim, "a");
    set_quality(&mut sim, "a", track, Quality::Low);
    sim.run(HOLD + Duration::from_secs(1));
    assert_eq!(told(&sim), 0);
    assert_eq!(sending(&sim), [true, true, true]);
    assert_eq!(settled_layer(&video(&sim, "a", "pub"), 30), Some(Q));
}
