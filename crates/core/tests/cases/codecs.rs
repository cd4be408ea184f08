//! VP9 and AV1 are forwarded as they come, and only to subscribers whose answer accepted them.

use std::time::Duration;

use str0m::format::Codec;
use str0m::media::{MediaKind, Mid};
use switchboard_protocol::{ErrorCode, ServerMessage};

use crate::sim::{Sim, SimClient};

/// The messages of `code` that `name` received.
fn errors_of(c: &SimClient, code: ErrorCode) -> Vec<String> {
    c.signals
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Error {
                code: got, message, ..
            } if *got == code => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// The codecs `c` received `owner`'s video in, and the counters of those packets, in order.
fn video_from(c: &SimClient, owner: &str) -> (Vec<Codec>, Vec<u64>) {
    let mut codecs = Vec::new();
    for (mid, r) in &c.received {
        let video =
            c.rtc.media(Mid::from(mid.as_str())).map(|m| m.kind()) == Some(MediaKind::Video);
        if video && r.packets.iter().any(|(_, o, _, _)| o == owner) {
            codecs.extend(r.codecs.iter().copied());
        }
    }
    let counters = c
        .packets_of(owner, true)
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    (codecs, counters)
}

/// A run of counters without gaps or repeats (every packet once, in order).
fn contiguous(counters: &[u64]) -> bool {
    counters.windows(2).all(|w| w[1] == w[0] + 1)
}

fn join_with(sim: &mut Sim, name: &str, publish: bool, codecs: &[Codec]) {
    sim.join_video_codecs = codecs.to_vec();
    sim.join("r", name, publish);
}

#[test]
fn vp9_and_av1_reach_the_subscribers_that_accept_them_and_nobody_else() {
    let mut sim = Sim::new();
    join_with(&mut sim, "nine", true, &[Codec::Vp9]);
    join_with(&mut sim, "av1", true, &[Codec::Av1]);
    join_with(&mut sim, "eight", true, &[Codec::Vp8]);
    join_with(
        &mut sim,
        "all",
        false,
        &[Codec::Vp8, Codec::Vp9, Codec::Av1],
    );
    sim.run(Duration::from_secs(4));

    // The member that decodes everything gets every video, each in its publisher's codec,
    // whole and in order from the first keyframe on.
    let all = sim.client("all");
    for (owner, codec) in [
        ("nine", Codec::Vp9),
        ("av1", Codec::Av1),
        ("eight", Codec::Vp8),
    ] {
        let (codecs, counters) = video_from(all, owner);
        assert_eq!(
            codecs,
            vec![codec],
            "all receives {owner}'s video in {codec}"
        );
        assert!(
            counters.len() > 150,
            "all receives {owner}'s video: {} packets",
            counters.len()
        );
        assert!(
            contiguous(&counters),
            "{owner}'s video reaches all without gaps"
        );
        assert_eq!(all.received.values().map(|r| r.corrupt).sum::<u64>(), 0);
    }
    assert!(errors_of(all, ErrorCode::CodecUnsupported).is_empty());

    // Each single-codec member gets none of the others' video, is told which track and codec
    // once each, and still gets their audio.
    for (name, others) in [
        ("nine", [("av1", "AV1"), ("eight", "VP8")]),
        ("av1", [("nine", "VP9"), ("eight", "VP8")]),
        ("eight", [("nine", "VP9"), ("av1", "AV1")]),
    ] {
        let c = sim.client(name);
        let told = errors_of(c, ErrorCode::CodecUnsupported);
        assert_eq!(
            told.len(),
            2,
            "{name} is told of both undecodable tracks: {told:?}"
        );
        for (other, codec) in others {
            let (_, counters) = video_from(c, other);
            assert!(counters.is_empty(), "{name} gets no video of {other}");
            assert!(
                told.iter()
                    .any(|m| m.contains(&format!("{other}:")) && m.contains(codec)),
                "{name} is told that {other}'s video is {codec}: {told:?}"
            );
            assert!(
                c.packets_of(other, false).len() > 100,
                "{name} gets {other}'s audio"
            );
            let announced = c.signals.iter().any(|m| {
                matches!(m,
                ServerMessage::TrackPublished { peer_id, track, .. }
                    if peer_id == other && track.kind == switchboard_protocol::MediaKind::Video)
            });
            assert!(!announced, "{name} is never offered {other}'s video");
        }
    }
    let stats = sim.shard.stats();
    assert_eq!(
        stats.codec_refusals, 6,
        "six (track, subscriber) pairs refused"
    );
}

#[test]
fn a_publisher_that_switches_to_a_codec_a_subscriber_lacks_loses_only_that_subscriber() {
    let mut sim = Sim::new();
    // The publisher lists VP8 first, so subscribers that decode only VP8 are bound...
    join_with(&mut sim, "pub", true, &[Codec::Vp8, Codec::Vp9]);
    join_with(&mut sim, "old", false, &[Codec::Vp8]);
    join_with(&mut sim, "new", false, &[Codec::Vp8, Codec::Vp9]);
    sim.run(Duration::from_secs(2));
    for name in ["old", "new"] {
        let (codecs, counters) = video_from(sim.client(name), "pub");
        assert_eq!(codecs, vec![Codec::Vp8], "{name} gets VP8 first");
        assert!(counters.len() > 60, "{name} gets video: {}", counters.len());
    }
    // ...then it sends VP9 on the same m-line (as a renegotiated sender would).
    sim.client_mut("pub").video_codec = Codec::Vp9;
    let before_old = sim.client("old").packets_of("pub", true).len();
    sim.run(Duration::from_secs(2));

    let old = sim.client("old");
    let told = errors_of(old, ErrorCode::CodecUnsupported);
    assert_eq!(told.len(), 1, "old is told once: {told:?}");
    assert!(told[0].contains("VP9"), "{told:?}");
    let unpublished = old.signals.iter().any(|m| {
        matches!(m,
        ServerMessage::TrackUnpublished { peer_id, .. } if peer_id == "pub")
    });
    assert!(unpublished, "old's slot for pub's video is released");
    assert_eq!(
        old.packets_of("pub", true).len(),
        before_old,
        "old gets no VP9 packet"
    );
    assert!(
        old.packets_of("pub", false).len() > 150,
        "old keeps pub's audio"
    );

    let new = sim.client("new");
    let (codecs, counters) = video_from(new, "pub");
    assert_eq!(
        codecs,
        vec![Codec::Vp8, Codec::Vp9],
        "new follows the switch"
    );
    assert!(
        counters.len() > 150,
        "new keeps getting video: {}",
        counters.len()
    );
    assert!(errors_of(new, ErrorCode::CodecUnsupported).is_empty());
    assert!(errors_of(sim.client("pub"), ErrorCode::CodecUnsupported).is_empty());
}
