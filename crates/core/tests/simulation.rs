//! The shard with real str0m peers over an in-memory network and a virtual clock.

mod sim;

#[path = "cases/bandwidth.rs"]
mod bandwidth;
#[path = "cases/codecs.rs"]
mod codecs;
#[path = "cases/data_relay.rs"]
mod data_relay;
#[path = "cases/dynacast.rs"]
mod dynacast;
#[path = "cases/output_queue.rs"]
mod output_queue;
#[path = "cases/red.rs"]
mod red;
#[path = "cases/simulcast.rs"]
mod simulcast;
#[path = "cases/speakers.rs"]
mod speakers;

use std::collections::BTreeSet;
use std::time::Duration;

use sim::Sim;
use switchboard_core::screen::Refusal;
use switchboard_protocol::{ErrorCode, ServerMessage};

/// Every packet on a mid came from the owner announced for it, parsed intact, and the
/// sequence numbers the client saw on that mid have no holes.
fn assert_clean_streams(sim: &Sim, name: &str) {
    let c = sim.client(name);
    for (mid, r) in &c.received {
        assert_eq!(r.corrupt, 0, "{name}: corrupt payloads on mid {mid}");
        for (_, o, _, announced) in &r.packets {
            assert_eq!(
                Some(o),
                announced.as_ref(),
                "{name}: mid {mid} carried {o}'s media"
            );
        }
        let seqs: BTreeSet<u64> = r.packets.iter().map(|(s, _, _, _)| *s).collect();
        assert_eq!(
            seqs.len(),
            r.packets.len(),
            "{name}: duplicates on mid {mid}"
        );
        if let (Some(first), Some(last)) = (seqs.first(), seqs.last()) {
            assert_eq!(
                (last - first + 1) as usize,
                seqs.len(),
                "{name}: sequence numbers on mid {mid} have holes"
            );
        }
    }
}

fn assert_receives(sim: &Sim, name: &str, from: &str) {
    let c = sim.client(name);
    let audio = c.packets_of(from, false);
    let video = c.packets_of(from, true);
    assert!(
        audio.len() > 20,
        "{name} got {} audio packets from {from}",
        audio.len()
    );
    assert!(
        video.len() > 20,
        "{name} got {} video packets from {from}",
        video.len()
    );
    // The payload counters of what arrived are increasing without loss from the first one.
    let mut counters: Vec<u64> = audio.iter().map(|(_, c)| *c).collect();
    counters.sort_unstable();
    assert_eq!(
        counters.last().expect("some") - counters.first().expect("some") + 1,
        counters.len() as u64,
        "{name} lost audio from {from}"
    );
}

/// Alice and Bob publishing audio and video to each other for a second.
fn alice_and_bob_in_a_call() -> Sim {
    let mut sim = Sim::new();
    sim.join("r", "alice", true);
    sim.join("r", "bob", true);
    sim.run(Duration::from_secs(1));
    sim
}

#[test]
fn a_session_without_server_offers_gets_none_and_fills_only_its_own_slots() {
    let mut sim = alice_and_bob_in_a_call();
    // Carol's one offer has a single receive-only audio m-line, as a WHEP player's could.
    sim.server_offers = false;
    sim.join("r", "carol", false);
    sim.server_offers = true;
    sim.join("r", "dave", false);
    sim.run(Duration::from_secs(2));
    let offers = |name: &str| {
        sim.client(name)
            .signals
            .iter()
            .filter(|m| matches!(m, ServerMessage::Offer { .. }))
            .count()
    };
    assert_eq!(
        offers("carol"),
        0,
        "no server offer to a session that cannot renegotiate"
    );
    assert!(
        offers("dave") > 0,
        "an ordinary member is offered slots for the room's tracks"
    );
    // Carol's slot carries the first audio track of the room; the other three tracks wait.
    let carol = sim.client("carol");
    assert!(carol.packets_of("alice", false).len() > 20);
    assert!(carol.packets_of("bob", false).is_empty());
    assert!(carol.packets_of("alice", true).is_empty());
    assert_clean_streams(&sim, "carol");
    assert_receives(&sim, "dave", "alice");
    assert_receives(&sim, "dave", "bob");
}

#[test]
fn three_participants_receive_each_other() {
    let mut sim = Sim::new();
    for name in ["alice", "bob", "carol"] {
        sim.join("room1", name, true);
    }
    sim.run(Duration::from_secs(3));
    for name in ["alice", "bob", "carol"] {
        assert!(sim.client(name).connected, "{name} connected");
        for from in ["alice", "bob", "carol"] {
            if from != name {
                assert_receives(&sim, name, from);
            }
        }
        assert_clean_streams(&sim, name);
        // Own media never comes back.
        assert!(sim.client(name).packets_of(name, false).is_empty());
    }
    let stats = sim.shard.stats();
    assert_eq!(stats.participants, 3);
    assert_eq!(stats.tracks, 6);
    assert!(stats.rtp_forwarded > 0);
}

#[test]
fn late_joiner_gets_everything_and_leaving_ends_tracks() {
    let mut sim = Sim::new();
    sim.join("r", "alice", true);
    sim.join("r", "bob", true);
    sim.run(Duration::from_secs(2));
    sim.join("r", "dave", true);
    sim.run(Duration::from_secs(2));
    assert_receives(&sim, "dave", "alice");
    assert_receives(&sim, "dave", "bob");
    assert_receives(&sim, "alice", "dave");

    sim.leave("alice");
    sim.run(Duration::from_millis(500));
    for name in ["bob", "dave"] {
        let c = sim.client(name);
        let unpublished = c
            .signals
            .iter()
            .filter(|m| matches!(m, ServerMessage::TrackUnpublished { peer_id, .. } if peer_id == "alice"))
            .count();
        assert_eq!(unpublished, 2, "{name} sees alice's two tracks end");
        assert!(c
            .signals
            .iter()
            .any(|m| matches!(m, ServerMessage::PeerLeft { peer_id } if peer_id == "alice")));
        assert!(!c.slot_owner.values().any(|o| o == "alice"));
        assert_clean_streams(&sim, name);
    }
    assert!(sim.client("alice").removed.is_some());
}

#[test]
fn churn_reuses_slots() {
    let mut sim = Sim::new();
    sim.join("r", "alice", true);
    sim.run(Duration::from_millis(500));
    for i in 0..8 {
        let name = format!("guest{i}");
        sim.join("r", &name, true);
        sim.run(Duration::from_millis(700));
        assert_receives(&sim, "alice", &name);
        sim.leave(&name);
        sim.run(Duration::from_millis(100));
    }
    let alice = sim.client("alice").pid;
    // Two published m-lines plus one audio and one video slot, reused by every guest.
    assert_eq!(sim.shard.slot_count(alice), Some(2));
    assert_clean_streams(&sim, "alice");
}

#[test]
fn keyframe_requests_reach_the_publisher_throttled() {
    let mut sim = Sim::new();
    sim.join("r", "alice", true);
    sim.join("r", "bob", true);
    sim.run(Duration::from_secs(2));
    let video_mid = sim
        .client("bob")
        .signals
        .iter()
        .find_map(|m| match m {
            ServerMessage::TrackPublished { track, mid, .. }
                if track.kind == switchboard_protocol::MediaKind::Video =>
            {
                Some(mid.clone())
            }
            _ => None,
        })
        .expect("bob receives alice's video");
    let before = sim.client("alice").keyframe_requests;
    for _ in 0..20 {
        sim.send_pli("bob", &video_mid);
        sim.run(Duration::from_millis(5));
    }
    sim.run(Duration::from_millis(400));
    let got = sim.client("alice").keyframe_requests - before;
    // One right away and one coalesced after the 300 ms window: never twenty.
    assert!((1..=2).contains(&got), "alice got {got} keyframe requests");
    assert!(sim.shard.stats().keyframe_requests_coalesced >= 18);
}

#[test]
fn garbage_is_dropped_and_media_keeps_flowing() {
    let mut sim = alice_and_bob_in_a_call();
    let alice_addr = sim.client("alice").addr;
    let stranger = "127.0.0.1:9".parse().expect("address");
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 3],
        vec![0x80, 0x60, 0, 1],                   // truncated RTP header
        vec![0x80; 1500],                         // RTP-looking junk
        vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12], // truncated STUN
        vec![22, 254, 253, 0, 0, 0, 0],           // truncated DTLS record
        (0..=255).collect(),
    ];
    for g in &garbage {
        sim.inject(stranger, g);
        sim.inject(alice_addr, g);
    }
    let before = sim.client("bob").packets_of("alice", false).len();
    sim.run(Duration::from_secs(1));
    let after = sim.client("bob").packets_of("alice", false).len();
    assert!(
        after > before + 30,
        "media kept flowing: {before} -> {after}"
    );
    assert!(sim.client("alice").removed.is_none());
    let stats = sim.shard.stats();
    assert!(stats.dropped_unknown_source + stats.dropped_malformed >= garbage.len() as u64);
}

#[test]
fn bad_sdp_is_refused_without_harm() {
    let mut sim = alice_and_bob_in_a_call();
    let alice = sim.client("alice").pid;
    // Text that is not SDP never reaches the shard: the screen refuses it.
    assert!(matches!(
        sim.offer_text(alice, "this is not sdp"),
        Err(Refusal::Unparsable(_))
    ));
    assert!(sim.candidate_text(alice, "candidate:garbage").is_err());
    // Parsable SDP the shard cannot use: an answer while the server has no offer out, and an
    // offer str0m refuses (a data-only offer without ICE credentials).
    sim.answer_text(alice, "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
        .expect("minimal SDP parses");
    let codes: Vec<ErrorCode> = sim
        .client("alice")
        .signals
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(codes, vec![ErrorCode::NoPendingOffer]);
    let before = sim.client("bob").packets_of("alice", true).len();
    sim.run(Duration::from_secs(1));
    assert!(sim.client("bob").packets_of("alice", true).len() > before + 20);
    assert!(sim.client("alice").removed.is_none());
}

#[test]
fn duplicate_peer_id_is_refused() {
    let mut sim = Sim::new();
    sim.join("r", "alice", true);
    sim.join("r", "alice", true);
    let second = &sim.clients[1];
    assert!(matches!(
        second.signals.first(),
        Some(ServerMessage::Error {
            code: ErrorCode::PeerIdTaken,
            ..
        })
    ));
    assert_eq!(second.removed, Some(None));
    assert_eq!(sim.shard.stats().participants, 1);
}

#[test]
fn lost_video_is_repaired_by_retransmission_per_leg() {
    let mut sim = alice_and_bob_in_a_call();
    // From now on every 25th datagram towards a client is lost.
    sim.lossy_every = 25;
    sim.run(Duration::from_secs(3));
    sim.lossy_every = 0;
    sim.run(Duration::from_millis(500));
    let bob = sim.client("bob");
    let mut counters: Vec<u64> = bob
        .packets_of("alice", true)
        .iter()
        .map(|(_, c)| *c)
        .collect();
    counters.sort_unstable();
    counters.dedup();
    let first = *counters.first().expect("video arrived");
    let last = *counters.last().expect("video arrived");
    let missing = (last - first + 1) as usize - counters.len();
    // Video is NACKed by bob and resent from the server's cache: nothing stays lost.
    assert_eq!(
        missing,
        0,
        "bob misses {missing} video packets of {}",
        counters.len()
    );
    let audio = bob.packets_of("alice", false).len();
    assert!(audio > 100, "audio flows too ({audio})");
}

#[test]
fn a_client_offer_crossing_a_server_offer_keeps_every_stream_on_its_mid() {
    let mut sim = alice_and_bob_in_a_call();
    assert_receives(&sim, "alice", "bob");
    // Carol arrives: the server offers alice two more slots, which alice sits on while she
    // sends an offer of her own (glare).
    sim.client_mut("alice").hold_offers = true;
    sim.join("r", "carol", true);
    sim.run(Duration::from_millis(200));
    assert!(
        !sim.client("alice").held_offers.is_empty(),
        "a server offer is out"
    );
    // Alice never answers that offer (her own crosses it) but answers the ones that follow.
    let alice = sim.client_mut("alice");
    alice.hold_offers = false;
    alice.held_offers.clear();
    sim.client_offer("alice");
    sim.run(Duration::from_secs(2));
    for name in ["alice", "bob", "carol"] {
        for from in ["alice", "bob", "carol"] {
            if from != name {
                assert_receives(&sim, name, from);
            }
        }
        assert_clean_streams(&sim, name);
    }
    // Carol's tracks went to alice's new receive-only line and one more slot, not more.
    let alice = sim.client("alice").pid;
    assert!(sim.shard.slot_count(alice).expect("alice") <= 5);
}

#[test]
fn random_datagrams_never_hurt_a_call() {
    let mut sim = alice_and_bob_in_a_call();
    let alice_addr = sim.client("alice").addr;
    let stranger = "127.0.0.1:9".parse().expect("address");
    // xorshift64*: deterministic, so a failure reproduces.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    // First bytes that steer the demultiplexer into each protocol: STUN, DTLS, RTP/RTCP, junk.
    let leads = [0x00u8, 0x01, 20, 22, 23, 63, 0x80, 0x90, 0xc8, 0xc9, 0xff];
    for i in 0..20_000u32 {
        let len = (next() % 1500) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Some(first) = data.first_mut() {
            *first = leads[(next() as usize) % leads.len()];
        }
        if data.len() >= 8 && next() % 4 == 0 {
            // A STUN magic cookie, so the header parses and the attributes are the junk.
            data[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        }
        let source = if i % 2 == 0 { alice_addr } else { stranger };
        sim.inject(source, &data);
    }
    let before = sim.client("bob").packets_of("alice", true).len();
    sim.run(Duration::from_secs(1));
    let after = sim.client("bob").packets_of("alice", true).len();
    assert!(
        after > before + 20,
        "video kept flowing: {before} -> {after}"
    );
    assert!(sim.client("alice").removed.is_none());
    assert_eq!(sim.shard.stats().participant_failures, 0);
}

/// An offer in which one m-line's retransmission payload type is another m-line's H264: str0m
/// 0.25 panics applying it ("Pt locked multiple times: 102").
pub const PT_TWICE_OFFER: &str = "v=0\r\n\
o=- 1 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:f00d\r\n\
a=ice-pwd:0123456789abcdefghijklmn\r\n\
a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n\
a=setup:actpass\r\n\
a=rtcp-mux\r\n\
a=mid:0\r\n\
a=recvonly\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:102 rtx/90000\r\n\
a=fmtp:102 apt=96\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:f00d\r\n\
a=ice-pwd:0123456789abcdefghijklmn\r\n\
a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n\
a=setup:actpass\r\n\
a=rtcp-mux\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

#[test]
fn the_pt_declared_twice_offer_is_screened_and_the_patched_engine_survives_it() {
    let mut sim = alice_and_bob_in_a_call();
    let (i, _) = sim.join_quiet("r", "mallory", false);
    let mallory = sim.clients[i].pid;
    // The signalling task's screen refuses it: it never reaches a shard.
    assert!(matches!(
        sim.offer_text(mallory, PT_TWICE_OFFER),
        Err(Refusal::ConflictingPayloadType { pt: 102, .. })
    ));
    assert!(sim.client("mallory").removed.is_none());
    // Were it to reach the shard anyway: str0m 0.25 panicked on it ("Pt locked multiple
    // times"); with the vendored patch (vendor/patches/str0m-0.25.0-remote-pt-claimed-twice.patch)
    // the engine answers it and nothing fails. (The guard's containment of a panic is shown by
    // the injected engine panic in crates/server/tests/isolation.rs.)
    sim.client_mut("mallory").ignore_answers = true;
    let offer = str0m::change::SdpOffer::from_sdp_string(PT_TWICE_OFFER).expect("parses");
    sim.command(switchboard_core::Command::Offer {
        participant: mallory,
        offer: Box::new(offer),
        tracks: Vec::new(),
    });
    assert!(sim.client("mallory").removed.is_none());
    assert!(sim
        .client("mallory")
        .signals
        .iter()
        .any(|m| matches!(m, switchboard_protocol::ServerMessage::Answer { .. })));
    let stats = sim.shard.stats();
    assert_eq!(
        stats.failures.get(
            switchboard_core::FailureKind::Panic,
            switchboard_core::Op::Offer
        ),
        0,
        "{stats:?}"
    );
    let before = sim.client("bob").packets_of("alice", true).len();
    sim.run(Duration::from_secs(1));
    assert!(sim.client("bob").packets_of("alice", true).len() > before + 20);
    assert!(sim.client("alice").removed.is_none());
}

#[test]
fn an_ice_tcp_member_and_a_udp_member_share_a_room() {
    let mut sim = Sim::new();
    sim.join("r", "udp", true);
    sim.join_transport = sim::Transport::Tcp;
    sim.join("r", "tcp", true);
    sim.run(Duration::from_secs(2));
    for (name, other) in [("udp", "tcp"), ("tcp", "udp")] {
        assert!(sim.client(name).connected, "{name} connected");
        assert_receives(&sim, name, other);
        assert_clean_streams(&sim, name);
    }
    // Each client heard the server only over its own transport: the shard answered the TCP
    // member's checks over TCP (the simulated network delivers by address and transport).
    assert_eq!(sim.client("tcp").transport, sim::Transport::Tcp);
    // The runtime's ufrag directory follows joins and leaves.
    assert_eq!(sim.ufrags.len(), 2);
    sim.leave("tcp");
    assert_eq!(sim.ufrags.len(), 1);
}
