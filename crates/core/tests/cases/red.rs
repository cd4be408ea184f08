//! RED audio (RFC 2198): forwarded as RED to subscribers that negotiated it, stripped to its
//! primary Opus frame for the rest; what a RED subscriber can recover under loss.

use std::collections::BTreeSet;
use std::time::Duration;

use str0m::format::Codec;
use str0m::media::{MediaKind, Mid};

use crate::sim::{Sim, SimClient};

/// What `c` received of `owner`'s audio: packets that arrived as RED, all packets, corrupt
/// payloads, the frame counters it got as primaries, and the counters RED blocks carried.
struct Audio {
    red: u64,
    packets: usize,
    corrupt: u64,
    codecs: Vec<Codec>,
    primaries: BTreeSet<u64>,
    recoverable: BTreeSet<u64>,
}

fn audio_of(c: &SimClient, owner: &str) -> Audio {
    let mut a = Audio {
        red: 0,
        packets: 0,
        corrupt: 0,
        codecs: Vec::new(),
        primaries: BTreeSet::new(),
        recoverable: BTreeSet::new(),
    };
    for (mid, r) in &c.received {
        let audio =
            c.rtc.media(Mid::from(mid.as_str())).map(|m| m.kind()) == Some(MediaKind::Audio);
        if !audio || !r.packets.iter().any(|(_, o, _, _)| o == owner) {
            continue;
        }
        a.red += r.red;
        a.corrupt += r.corrupt;
        a.codecs.extend(r.codecs.iter().copied());
        a.recoverable.extend(r.red_recoverable.iter().copied());
        for (_, o, counter, _) in &r.packets {
            if o == owner {
                a.packets += 1;
                a.primaries.insert(*counter);
            }
        }
    }
    a
}

/// A RED publisher, a plain one, a RED subscriber and a plain one.
fn red_room() -> Sim {
    let mut sim = Sim::new();
    sim.join_red = true;
    sim.join("r", "pub", true);
    sim.join("r", "redsub", false);
    sim.join_red = false;
    sim.join("r", "plainpub", true);
    sim.join("r", "plain", false);
    sim.run(Duration::from_secs(3));
    sim
}

#[test]
fn red_goes_on_as_red_to_who_negotiated_it_and_as_its_primary_to_the_rest() {
    let sim = red_room();
    let red = audio_of(sim.client("redsub"), "pub");
    assert!(
        red.packets > 100,
        "redsub got {} of pub's audio",
        red.packets
    );
    assert_eq!(red.red as usize, red.packets, "every packet arrived as RED");
    assert_eq!(red.corrupt, 0);
    // Each RED packet after the first carries the frame before it.
    let carried = red
        .primaries
        .iter()
        .filter(|n| red.recoverable.contains(n))
        .count();
    assert!(
        carried + 2 >= red.packets,
        "redundancy carried {carried} of {}",
        red.packets
    );

    let plain = audio_of(sim.client("plain"), "pub");
    assert!(
        plain.packets > 100,
        "plain got {} of pub's audio",
        plain.packets
    );
    assert_eq!(plain.red, 0, "plain never sees RED");
    assert_eq!(
        plain.corrupt, 0,
        "the primary is a whole Opus frame of pub's"
    );
    assert_eq!(plain.codecs, vec![Codec::Opus]);
    // The frames plain got are pub's frames as the RED subscriber got them (no gap in the
    // counters either: stripping loses nothing).
    assert!(plain.primaries.is_subset(&red.primaries) || red.primaries.is_subset(&plain.primaries));
    let (first, last) = (plain.primaries.first(), plain.primaries.last());
    assert_eq!(
        plain.primaries.len() as u64,
        last.zip(first).map_or(0, |(l, f)| l - f + 1),
        "contiguous frames"
    );

    // A plain publisher reaches the RED subscriber as plain Opus.
    let from_plain = audio_of(sim.client("redsub"), "plainpub");
    assert!(from_plain.packets > 100);
    assert_eq!(from_plain.red, 0);
    assert_eq!(from_plain.corrupt, 0);
}

#[test]
fn a_malformed_red_payload_is_dropped_for_plain_subscribers_only() {
    let mut sim = red_room();
    let before = audio_of(sim.client("plain"), "pub").packets;
    // A redundant-block header cut short, then a block longer than the payload.
    sim.send_raw_audio("pub", vec![0x80 | 111, 0x0f], true);
    sim.send_raw_audio("pub", vec![0x80 | 111, 0, 0x03, 0xff, 111, 1, 2, 3], true);
    sim.run(Duration::from_secs(1));
    // Two packets, each dropped for the two members that get plain Opus (plain and plainpub).
    assert_eq!(sim.shard.stats().dropped_bad_red, 4);
    let plain = audio_of(sim.client("plain"), "pub");
    assert_eq!(plain.corrupt, 0, "plain got none of them");
    assert!(
        plain.packets > before + 40,
        "and keeps receiving pub's audio"
    );
    let red = audio_of(sim.client("redsub"), "pub");
    assert_eq!(
        red.corrupt, 2,
        "redsub got them as sent (its decoder's call)"
    );
}

#[test]
fn under_loss_red_leaves_almost_nothing_unrecoverable() {
    let mut sim = red_room();
    let start = |sim: &Sim, who: &str| audio_of(sim.client(who), "pub").primaries.last().copied();
    let (from_red, from_plain) = (start(&sim, "redsub"), start(&sim, "plain"));
    // Every 20th datagram to a client is lost (5 %).
    sim.lossy_every = 20;
    sim.run(Duration::from_secs(10));
    sim.lossy_every = 0;
    sim.run(Duration::from_millis(500));

    let lost = |a: &Audio, from: u64, with_red: bool| {
        let to = *a.primaries.last().expect("audio") - 5;
        let missing = (from + 1..=to)
            .filter(|n| !(a.primaries.contains(n) || with_red && a.recoverable.contains(n)))
            .count();
        missing as f64 / (to - from) as f64
    };
    let plain = audio_of(sim.client("plain"), "pub");
    let red = audio_of(sim.client("redsub"), "pub");
    let plain_lost = lost(&plain, from_plain.expect("plain had audio"), false);
    let red_on_wire = lost(&red, from_red.expect("redsub had audio"), false);
    let red_lost = lost(&red, from_red.expect("redsub had audio"), true);
    eprintln!(
        "audio lost: plain {:.2} %, RED on the wire {:.2} %, RED after recovery {:.2} %",
        plain_lost * 100.0,
        red_on_wire * 100.0,
        red_lost * 100.0
    );
    assert!(plain_lost > 0.02, "the loss reached plain ({plain_lost})");
    assert!(
        red_on_wire > 0.02,
        "the loss reached redsub ({red_on_wire})"
    );
    assert!(red_lost < 0.01, "RED left {red_lost} unrecoverable");
}
