//! Bandwidth estimation: a subscriber whose downlink is capped below the top layer is moved to
//! a layer its link carries, and back up once the cap is lifted.

use std::time::Duration;

use crate::sim::Sim;
use crate::simulcast::{layers_seen, settled_layer, video, F};

/// Share of the numbers from `packets[from]`'s up to the newest received that never arrived,
/// late repairs included (numbers are the subscriber's, continuous across layer switches). The
/// newest `IN_FLIGHT` numbers are left out: their repairs may still be on the way.
fn residual_loss(packets: &[(u64, usize)], from: usize) -> f64 {
    const IN_FLIGHT: u64 = 30;
    let Some(&(first, _)) = packets.get(from) else {
        return 1.0;
    };
    let last = packets.iter().map(|p| p.0).max().unwrap_or(first);
    let end = last.saturating_sub(IN_FLIGHT);
    if end <= first {
        return 1.0;
    }
    let got: std::collections::BTreeSet<u64> = packets
        .iter()
        .map(|p| p.0)
        .filter(|s| (first..end).contains(s))
        .collect();
    1.0 - got.len() as f64 / (end - first) as f64
}

#[test]
fn a_capped_downlink_settles_on_a_lower_layer_and_climbs_back_when_lifted() {
    let mut sim = Sim::new();
    sim.estimate_bandwidth();
    sim.join_simulcast = crate::sim::three_layers();
    sim.join("r", "pub", true);
    sim.join_simulcast = Vec::new();
    sim.join("r", "sub", false);
    sim.set_downlink("sub", None);
    sim.run(Duration::from_secs(4));
    let before = video(&sim, "sub", "pub");
    assert_eq!(
        settled_layer(&before, 100),
        Some(F),
        "{:?}",
        layers_seen(&before)
    );

    // 800 kbit/s: audio and the middle layer (~500 kbit/s with overhead) fit, the top does not.
    sim.set_downlink("sub", Some(800_000));
    let capped_at = sim.now;
    let mut settled = None;
    for _ in 0..100 {
        sim.run(Duration::from_millis(100));
        let packets = video(&sim, "sub", "pub");
        if matches!(settled_layer(&packets, 60), Some(l) if l < F) {
            settled = Some(sim.now - capped_at);
            break;
        }
    }
    let packets = video(&sim, "sub", "pub");
    eprintln!(
        "down after {settled:?}: {:?}",
        layers_seen(&packets[before.len()..])
    );
    let down = settled.expect("settles on a lower layer");
    // Residual loss once settled: what NACK could not repair.
    let from = packets.len();
    sim.run(Duration::from_secs(5));
    let packets = video(&sim, "sub", "pub");
    let loss = residual_loss(&packets, from);
    let link = sim.downlink("sub").expect("a link");
    eprintln!(
        "residual loss {:.3} % after settling; link dropped {} of {}; {:?}",
        loss * 100.0,
        link.dropped,
        link.passed,
        layers_seen(&packets[from..])
    );

    sim.set_downlink("sub", None);
    let lifted_at = sim.now;
    let mut climbed = None;
    for _ in 0..200 {
        sim.run(Duration::from_millis(100));
        if settled_layer(&video(&sim, "sub", "pub"), 100) == Some(F) {
            climbed = Some(sim.now - lifted_at);
            break;
        }
    }
    let packets = video(&sim, "sub", "pub");
    eprintln!("up after {climbed:?}: {:?}", layers_seen(&packets[from..]));
    assert!(down <= Duration::from_secs(5), "down after {down:?}");
    assert!(loss < 0.01, "residual loss {loss}");
    let up = climbed.expect("climbs back to the top layer");
    assert!(up <= Duration::from_secs(15), "up after {up:?}");
}
