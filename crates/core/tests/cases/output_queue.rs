//! The shard hands out a fan-out subscriber by subscriber.

use std::time::Duration;

use crate::sim::{OutputPeak, Sim};

/// One publisher's packets fan out to eight subscribers. The shard drives one written-to
/// participant per `poll_output` turn, so what waits in it is about one subscriber's share of a
/// poll, not the whole fan-out: draining every subscriber first held a 1 → 200 room's encrypted
/// datagrams by the thousand (17 MB) and made the first subscriber wait for the last.
#[test]
fn a_fan_out_is_handed_out_one_subscriber_at_a_time() {
    let mut sim = Sim::new();
    sim.join("webinar", "speaker", true);
    let listeners: Vec<String> = (1..=8).map(|i| format!("listener{i}")).collect();
    for name in &listeners {
        sim.join("webinar", name, false);
    }
    sim.run(Duration::from_secs(2));
    for name in &listeners {
        assert!(sim.client(name).connected, "{name} connected");
        assert!(
            sim.client(name).packets_of("speaker", true).len() > 20,
            "{name} got the speaker's video"
        );
    }
    // Measure the steady fan-out only, not the joins' negotiation.
    sim.output_peak = OutputPeak::default();
    sim.run(Duration::from_secs(1));
    let peak = sim.output_peak;
    assert!(
        peak.per_poll >= 8 * 2,
        "the fan-out reached every listener in one poll: {peak:?}"
    );
    // About one subscriber's datagrams (timeouts that come due together add a few reports),
    // far from the fan-out's.
    assert!(
        peak.queued <= 2 * peak.per_destination + 4 && peak.queued * 2 < peak.per_poll,
        "the shard held more than one subscriber's share: {peak:?}"
    );
}
