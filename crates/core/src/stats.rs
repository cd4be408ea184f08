//! Counters a shard keeps about its own work. Plain integers bumped on the shard's thread; the
//! runtime copies them out for metrics, so the packet path never touches a shared counter.

/// Cumulative counters since the shard started (except the gauges at the end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Datagrams handed to the shard.
    pub datagrams_in: u64,
    pub bytes_in: u64,
    /// Datagrams the shard asked to send.
    pub datagrams_out: u64,
    pub bytes_out: u64,
    /// RTP packets received from publishers (after SRTP, de-duplicated by str0m).
    pub rtp_in: u64,
    /// RTP packets written to subscribers (one per subscriber copy).
    pub rtp_forwarded: u64,
    /// Datagrams that were neither STUN, DTLS, RTP nor RTCP.
    pub dropped_malformed: u64,
    /// Datagrams from an address no participant owns, without a STUN USERNAME we know.
    pub dropped_unknown_source: u64,
    /// STUN from a new address that named a participant but failed its integrity check.
    pub dropped_unauthenticated: u64,
    /// Subscriber copies held back until the source's next keyframe.
    pub dropped_awaiting_keyframe: u64,
    /// Stragglers of a previous source after a slot switched.
    pub dropped_before_switch: u64,
    /// Packets a subscriber could not decode (no matching codec negotiated).
    pub dropped_no_codec: u64,
    /// RTP on an m-line that is not a published track (or a simulcast layer not forwarded).
    pub dropped_unrouted: u64,
    /// Packets of operator-muted tracks not forwarded.
    pub dropped_muted: u64,
    /// NACKs received from subscribers (answered from str0m's RTX cache) and sent to publishers.
    pub nacks_received: u64,
    pub nacks_sent: u64,
    /// Keyframe requests (PLI/FIR) received from subscribers.
    pub keyframe_requests_received: u64,
    /// Keyframe requests (PLI/FIR) sent to publishers, and those coalesced away.
    pub keyframe_requests_sent: u64,
    pub keyframe_requests_coalesced: u64,
    /// Participants removed because their media engine failed (error or panic).
    pub participant_failures: u64,
    /// Gauges.
    pub participants: u64,
    pub rooms: u64,
    pub tracks: u64,
}

impl ShardStats {
    /// Totals over several shards (counters and gauges alike are sums).
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a ShardStats>) -> ShardStats {
        let mut t = ShardStats::default();
        for s in all {
            t.datagrams_in += s.datagrams_in;
            t.bytes_in += s.bytes_in;
            t.datagrams_out += s.datagrams_out;
            t.bytes_out += s.bytes_out;
            t.rtp_in += s.rtp_in;
            t.rtp_forwarded += s.rtp_forwarded;
            t.dropped_malformed += s.dropped_malformed;
            t.dropped_unknown_source += s.dropped_unknown_source;
            t.dropped_unauthenticated += s.dropped_unauthenticated;
            t.dropped_awaiting_keyframe += s.dropped_awaiting_keyframe;
            t.dropped_before_switch += s.dropped_before_switch;
            t.dropped_no_codec += s.dropped_no_codec;
            t.dropped_unrouted += s.dropped_unrouted;
            t.dropped_muted += s.dropped_muted;
            t.nacks_received += s.nacks_received;
            t.nacks_sent += s.nacks_sent;
            t.keyframe_requests_received += s.keyframe_requests_received;
            t.keyframe_requests_sent += s.keyframe_requests_sent;
            t.keyframe_requests_coalesced += s.keyframe_requests_coalesced;
            t.participant_failures += s.participant_failures;
            t.participants += s.participants;
            t.rooms += s.rooms;
            t.tracks += s.tracks;
        }
        t
    }
}
