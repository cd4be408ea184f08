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
