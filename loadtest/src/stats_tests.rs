//! Tests of the receive accounting in `stats.rs` (a file of their own: the accounting is
//! long enough without them).
use super::*;

fn sample(counter: u64) -> PacketSample {
    PacketSample {
        counter,
        seq_gap: false,
        keyframe: false,
        bytes: 100,
        latency_us: counter as u32,
        at: Instant::now(),
    }
}

fn feed(counters: &[u64]) -> RecvStats {
    let mut t = RecvTracker::default();
    let mut s = RecvStats::default();
    for &c in counters {
        t.on_packet(&mut s, &sample(c));
    }
    s
}

#[test]
fn in_order_has_no_loss() {
    let s = feed(&[5, 6, 7, 8]);
    assert_eq!(s.packets, 4);
    assert_eq!(s.bytes, 400);
    assert_eq!(
        (s.lost, s.reordered, s.duplicates, s.restarts),
        (0, 0, 0, 0)
    );
    assert!(s.first_packet_at.is_some());
}

#[test]
fn gaps_count_as_loss() {
    let s = feed(&[0, 1, 4, 5, 9]);
    assert_eq!(s.lost, 2 + 3);
    assert_eq!(s.reordered, 0);
}

#[test]
fn late_packets_are_reordered_not_lost() {
    let s = feed(&[0, 2, 3, 1, 6, 5]);
    assert_eq!(s.reordered, 2);
    assert_eq!(s.lost, 1, "counter 4 is still missing");
    assert_eq!(s.duplicates, 0);
}

#[test]
fn duplicates_and_restarts() {
    let s = feed(&[0, 1, 2, 2, 1]);
    assert_eq!(s.duplicates, 2);
    assert_eq!(s.lost, 0);
    let s = feed(&[5000, 5001, 0, 1, 2]);
    assert_eq!(s.restarts, 1);
    assert_eq!((s.lost, s.duplicates), (0, 0));
}

#[test]
fn huge_gap_is_counted_without_remembering_every_hole() {
    let s = feed(&[0, 1_000_000, 999_990, 500]);
    assert_eq!(s.lost, 999_998);
    // 999_990 was a remembered hole; 500 is far behind and no hole was remembered for it.
    assert_eq!(s.reordered, 1);
    assert_eq!(s.restarts, 1);
}

#[test]
fn seq_watch_flags_discontinuities() {
    let mut w = SeqWatch::default();
    let gaps: Vec<bool> = [65534u16, 65535, 0, 1, 3, 2, 3]
        .iter()
        .map(|&s| w.observe(s))
        .collect();
    assert_eq!(gaps, [false, false, false, false, true, true, false]);

    let mut t = RecvTracker::default();
    let mut s = RecvStats::default();
    for (i, gap) in gaps.iter().enumerate() {
        let mut p = sample(i as u64);
        p.seq_gap = *gap;
        p.keyframe = i == 0;
        t.on_packet(&mut s, &p);
    }
    assert_eq!(s.seq_gaps, 2);
    assert_eq!(s.keyframes, 1);
    on_corrupt(&mut s, 10, true, Instant::now());
    assert_eq!((s.packets, s.corrupt, s.seq_gaps), (8, 1, 3));
}

fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

#[test]
fn gaps_between_arrivals_and_their_window() {
    let t0 = Instant::now();
    let mut t = RecvTracker::default();
    let mut s = RecvStats::default();
    let mut feed_at = |s: &mut RecvStats, counter: u64, ms: u64| {
        let mut p = sample(counter);
        p.at = at(t0, ms);
        t.on_packet(s, &p);
    };
    feed_at(&mut s, 0, 0);
    assert_eq!(s.max_gap, Duration::ZERO, "one packet is no gap");
    feed_at(&mut s, 1, 20);
    feed_at(&mut s, 2, 270);
    feed_at(&mut s, 3, 290);
    assert_eq!(s.max_gap, Duration::from_millis(250));

    // A window marked at 300 ms forgets the 250 ms gap; the gap across the mark counts
    // from the mark (310 − 300), not from the last packet (310 − 290).
    s.mark_gap(at(t0, 300));
    assert_eq!(s.max_gap, Duration::ZERO);
    feed_at(&mut s, 4, 310);
    assert_eq!(s.max_gap, Duration::from_millis(10));
    assert_eq!(
        s.gap_mark, None,
        "the first packet after the mark clears it"
    );
    feed_at(&mut s, 5, 350);
    assert_eq!(s.max_gap, Duration::from_millis(40));

    // Silence up to now counts in max_gap_until, not in max_gap.
    assert_eq!(s.max_gap_until(at(t0, 360)), Duration::from_millis(40));
    assert_eq!(s.max_gap_until(at(t0, 600)), Duration::from_millis(250));
    assert_eq!(s.max_gap, Duration::from_millis(40));
    // A mark after the last packet: the silence counts from the mark.
    s.mark_gap(at(t0, 500));
    assert_eq!(s.max_gap_until(at(t0, 600)), Duration::from_millis(100));
    assert_eq!(
        RecvStats::default().max_gap_until(at(t0, 600)),
        Duration::ZERO
    );

    // Corrupt packets are arrivals too.
    on_corrupt(&mut s, 10, false, at(t0, 800));
    assert_eq!(s.max_gap, Duration::from_millis(300));
}

#[test]
fn client_gap_windows_cover_every_track_of_an_owner() {
    let t0 = Instant::now();
    let mut st = ClientStats::default();
    for (kind, gap_ms) in [(MediaKind::Audio, 20), (MediaKind::Video, 90)] {
        let r = st.received.entry(("alice".into(), kind)).or_default();
        count_arrival(r, 100, false, at(t0, 0));
        count_arrival(r, 100, false, at(t0, gap_ms));
    }
    let now = at(t0, 100);
    assert_eq!(
        st.max_gap_from("alice", now),
        Some(Duration::from_millis(90))
    );
    assert_eq!(st.max_gap_from("bob", now), None);
    st.mark_gaps(now);
    assert_eq!(st.gaps_marked_at, Some(now));
    assert_eq!(st.max_gap_from("alice", now), Some(Duration::ZERO));
    assert_eq!(
        st.max_gap_from("alice", at(t0, 150)),
        Some(Duration::from_millis(50)),
        "silence since the mark"
    );
}

#[test]
fn latency_ring_is_bounded() {
    let mut s = RecvStats::default();
    for i in 0..(LATENCY_SAMPLES as u32 + 10) {
        s.push_latency(i);
    }
    assert_eq!(s.latency_us.len(), LATENCY_SAMPLES);
    assert_eq!(s.latency_total, LATENCY_SAMPLES as u64 + 10);
    // The oldest ten were overwritten by the newest ten.
    assert_eq!(s.latency_us[0], LATENCY_SAMPLES as u32);
    assert_eq!(s.latency_us[9], LATENCY_SAMPLES as u32 + 9);
    assert_eq!(s.latency_us[10], 10);
}

#[test]
fn percentiles() {
    assert_eq!(percentile(&[], 50.0), 0);
    assert_eq!(percentile(&[7], 0.0), 7);
    assert_eq!(percentile(&[7], 100.0), 7);
    let v: Vec<u32> = (1..=100).rev().collect();
    assert_eq!(percentile(&v, 50.0), 50);
    assert_eq!(percentile(&v, 99.0), 99);
    assert_eq!(percentile(&v, 100.0), 100);
    assert_eq!(percentile(&v, 0.0), 1);
    assert_eq!(percentile(&v, 150.0), 100);
    assert_eq!(percentile(&v, f64::NAN), 1);
    assert_eq!(percentile(&[10, 20, 30, 40], 50.0), 20);
    assert_eq!(percentile(&[10, 20, 30, 40], 51.0), 30);
}

#[test]
fn summary_mentions_the_essentials() {
    let mut st = ClientStats {
        peer_id: "me".into(),
        ..Default::default()
    };
    st.received.insert(
        ("alice".into(), MediaKind::Video),
        feed(&[0, 2]), // one lost
    );
    st.slots.insert("3".into(), None);
    let s = st.summary();
    assert!(s.contains("peer=me"), "{s}");
    assert!(s.contains("alice/Video: pkts=2 lost=1"), "{s}");
    assert!(s.contains("3=-"), "{s}");
    assert_eq!(st.packets_from("alice", MediaKind::Video), 2);
    assert_eq!(st.packets_from("alice", MediaKind::Audio), 0);
    assert_eq!(st.total(|r| r.lost), 1);
}

#[test]
fn early_packets_of_a_new_owner_are_moved_out_of_wrong_owner_by_its_announcement() {
    let mut s = ClientStats::default();
    s.note_unannounced("3", "bob");
    s.note_unannounced("3", "bob");
    s.note_unannounced("4", "carol");
    assert_eq!(s.wrong_owner, 3);
    // Bob's announcement for mid 3 confirms his two packets; Carol's stays wrong.
    s.confirm_announced("3", "bob");
    assert_eq!((s.wrong_owner, s.early_new_owner), (1, 2));
    // An announcement for another mid or owner confirms nothing.
    s.confirm_announced("3", "carol");
    s.confirm_announced("5", "carol");
    assert_eq!((s.wrong_owner, s.early_new_owner), (1, 2));
}

#[test]
fn red_copies_recover_holes_once_and_late_packets_undo_it() {
    let mut t = RecvTracker::default();
    let mut s = RecvStats::default();
    // Each packet carries the previous counter as its redundant copy.
    let red = |t: &mut RecvTracker, s: &mut RecvStats, c: u64| {
        t.on_packet(s, &sample(c));
        t.on_redundant(s, c - 1);
    };
    t.on_packet(&mut s, &sample(0));
    red(&mut t, &mut s, 1);
    // 2 and 3 lost: 4's copy brings 3 back, 2 stays lost.
    red(&mut t, &mut s, 4);
    assert_eq!((s.lost, s.recovered), (2, 1));
    // A second copy of 3 counts nothing; a copy of a frame that arrived counts nothing.
    t.on_redundant(&mut s, 3);
    t.on_redundant(&mut s, 4);
    assert_eq!((s.lost, s.recovered), (2, 1));
    // 3 itself arrives late: neither lost nor recovered any more.
    t.on_packet(&mut s, &sample(3));
    assert_eq!((s.lost, s.recovered, s.reordered), (1, 0, 1));
    // A restart forgets the holes: their copies recover nothing.
    t.on_packet(&mut s, &sample(5000));
    t.on_packet(&mut s, &sample(2));
    t.on_redundant(&mut s, 1);
    assert_eq!(s.recovered, 0);
}
