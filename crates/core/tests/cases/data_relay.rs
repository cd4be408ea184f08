//! The data-channel relay, through real str0m SCTP on both sides.

use std::time::Duration;

use switchboard_protocol::relay::RelayFrame;
use switchboard_protocol::{ErrorCode, ServerMessage};

use crate::sim::Sim;

fn frame(text: bool, peer: Option<&str>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    RelayFrame {
        text,
        peer,
        payload,
    }
    .write(&mut out);
    out
}

/// (label, sender, text, payload) of everything `name` received.
fn received(sim: &Sim, name: &str) -> Vec<(String, String, bool, Vec<u8>)> {
    sim.client(name)
        .data_in
        .iter()
        .map(|(label, binary, bytes)| {
            assert!(*binary, "{name}: relayed messages are binary frames");
            let f = RelayFrame::parse(bytes).expect("the server writes valid frames");
            let sender = f.peer.expect("the server names the sender").to_owned();
            (label.clone(), sender, f.text, f.payload.to_vec())
        })
        .collect()
}

fn errors(sim: &Sim, name: &str) -> Vec<ErrorCode> {
    sim.client(name)
        .signals
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

fn room_with_channels(names: &[&str], labels: &[&str]) -> Sim {
    let mut sim = Sim::new();
    sim.join_channels = labels.iter().map(|l| l.to_string()).collect();
    for name in names {
        sim.join("r", name, false);
    }
    sim.run(Duration::from_secs(2));
    for name in names {
        let c = sim.client(name);
        assert!(c.connected, "{name} connected");
        assert_eq!(c.channels.len(), labels.len(), "{name}'s channels are open");
    }
    sim
}

#[test]
fn a_message_reaches_the_others_on_the_same_label_with_its_sender_named() {
    let mut sim = room_with_channels(&["alice", "bob", "carol"], &["sb-reliable", "sb-lossy"]);
    assert!(sim.send_data(
        "alice",
        "sb-reliable",
        true,
        &frame(true, None, b"hi from alice")
    ));
    assert!(sim.send_data(
        "bob",
        "sb-lossy",
        true,
        &frame(false, Some("carol"), &[0xb0, 0xb])
    ));
    sim.run(Duration::from_millis(300));

    let alice_to_all = (
        "sb-reliable".to_owned(),
        "alice".to_owned(),
        true,
        b"hi from alice".to_vec(),
    );
    let bob_to_carol = (
        "sb-lossy".to_owned(),
        "bob".to_owned(),
        false,
        vec![0xb0, 0xb],
    );
    assert_eq!(received(&sim, "bob"), vec![alice_to_all.clone()]);
    let mut carol = received(&sim, "carol");
    carol.sort();
    let mut want = vec![alice_to_all, bob_to_carol];
    want.sort();
    assert_eq!(carol, want);
    assert_eq!(
        received(&sim, "alice"),
        vec![],
        "nobody hears itself or others' private messages"
    );
    let stats = sim.shard.stats();
    assert_eq!((stats.data_received, stats.data_relayed), (2, 3));
    for name in ["alice", "bob", "carol"] {
        assert_eq!(errors(&sim, name), vec![], "{name}");
    }
}

#[test]
fn bad_frames_are_refused_to_their_sender_and_nobody_else_notices() {
    let mut sim = room_with_channels(&["alice", "bob"], &["sb-reliable"]);
    // A string message, not a frame.
    assert!(sim.send_data("alice", "sb-reliable", false, b"plain text"));
    sim.run(Duration::from_millis(1100));
    // A frame of an unknown version.
    assert!(sim.send_data("alice", "sb-reliable", true, &[9, 0, 0, 1, 2]));
    sim.run(Duration::from_millis(1100));
    // A receiver that is not in the room.
    assert!(sim.send_data(
        "alice",
        "sb-reliable",
        true,
        &frame(false, Some("mallory"), b"x")
    ));
    sim.run(Duration::from_millis(1100));
    assert_eq!(
        errors(&sim, "alice"),
        vec![
            ErrorCode::BadDataFrame,
            ErrorCode::BadDataFrame,
            ErrorCode::UnknownPeer
        ]
    );
    assert_eq!(received(&sim, "bob"), vec![]);
    assert_eq!(errors(&sim, "bob"), vec![]);
    // A good one still goes through afterwards, both ways.
    assert!(sim.send_data("alice", "sb-reliable", true, &frame(false, None, b"ok")));
    assert!(sim.send_data("bob", "sb-reliable", true, &frame(true, None, b"ok too")));
    sim.run(Duration::from_millis(300));
    assert_eq!(received(&sim, "bob").len(), 1);
    assert_eq!(received(&sim, "alice").len(), 1);
    assert_eq!(sim.shard.stats().data_dropped_invalid, 3);
}

#[test]
fn a_flood_is_cut_to_the_budget_and_a_member_without_the_channel_is_skipped() {
    let mut sim = room_with_channels(&["alice", "bob"], &["sb-reliable"]);
    // Dave has no data channel at all.
    sim.join_channels.clear();
    sim.join("r", "dave", false);
    sim.run(Duration::from_secs(1));
    // 3 MiB in one second of 32 KiB messages: the budget is 1 MiB of burst + 512 KiB/s.
    let payload = vec![7u8; 32 * 1024];
    let message = frame(false, None, &payload);
    let mut sent = 0;
    for _ in 0..96 {
        if sim.send_data("alice", "sb-reliable", true, &message) {
            sent += 1;
        }
        sim.run(Duration::from_millis(10));
    }
    sim.run(Duration::from_secs(2));
    let stats = sim.shard.stats();
    assert!(sent > 60, "alice's engine accepted {sent} messages");
    assert_eq!(stats.data_received, sent);
    assert!(stats.data_dropped_rate > 0, "{stats:?}");
    let got = received(&sim, "bob").len() as u64;
    assert_eq!(got, stats.data_relayed, "every relayed copy arrived");
    assert_eq!(got + stats.data_dropped_rate, sent);
    // 1 MiB of burst and ~1 s of refill, in 32 KiB messages (and no more).
    assert!((40..=52).contains(&got), "{got} relayed");
    assert_eq!(
        stats.data_dropped_no_channel, got,
        "dave had no channel for each copy"
    );
    assert!(errors(&sim, "alice").contains(&ErrorCode::RateLimited));
    assert_eq!(errors(&sim, "bob"), vec![]);
}
