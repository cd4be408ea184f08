//! Counters a shard keeps about its own work. Plain integers bumped on the shard's thread; the
//! runtime copies them out for metrics, so the packet path never touches a shared counter.

/// What the shard was doing with a participant's media engine when it failed: the `during`
/// label of `switchboard_participant_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// A datagram from the participant (`Rtc::handle_input` and the drain after it).
    Datagram,
    /// A timer or a batch of written packets (`Input::Timeout` and the drain).
    Timer,
    /// Authenticating a new path (`Rtc::accepts`).
    Demux,
    /// Applying the client's offer.
    Offer,
    /// Applying the client's answer to a server offer.
    Answer,
    /// Adding a remote candidate.
    Candidate,
    /// Making a server offer (new receive slots).
    Negotiate,
    /// Writing a forwarded packet to a subscriber (`StreamTx::write_rtp`).
    Forward,
    /// Asking a publisher for a keyframe.
    Keyframe,
    /// Reading engine state (streams, codecs, media lines).
    Query,
    /// Writing a relayed data-channel message to a receiver.
    Data,
    /// Shutting the engine down.
    Close,
}

impl Op {
    pub const ALL: [Op; 12] = [
        Op::Datagram,
        Op::Timer,
        Op::Demux,
        Op::Offer,
        Op::Answer,
        Op::Candidate,
        Op::Negotiate,
        Op::Forward,
        Op::Keyframe,
        Op::Query,
        Op::Data,
        Op::Close,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Op::Datagram => "datagram",
            Op::Timer => "timer",
            Op::Demux => "demux",
            Op::Offer => "offer",
            Op::Answer => "answer",
            Op::Candidate => "candidate",
            Op::Negotiate => "negotiate",
            Op::Forward => "forward",
            Op::Keyframe => "keyframe",
            Op::Query => "query",
            Op::Data => "data",
            Op::Close => "close",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How an engine failed: the `cause` label of `switchboard_participant_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// str0m panicked (caught by the engine guard).
    Panic,
    /// str0m returned an error it cannot continue from.
    Error,
}

impl FailureKind {
    pub const ALL: [FailureKind; 2] = [FailureKind::Panic, FailureKind::Error];

    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Panic => "panic",
            FailureKind::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub op: Op,
    pub kind: FailureKind,
}

/// Participants removed because their engine failed, by kind and operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts {
    panics: [u64; Op::ALL.len()],
    errors: [u64; Op::ALL.len()],
}

impl FailureCounts {
    pub fn record(&mut self, failure: Failure) {
        match failure.kind {
            FailureKind::Panic => self.panics[failure.op.index()] += 1,
            FailureKind::Error => self.errors[failure.op.index()] += 1,
        }
    }

    pub fn get(&self, kind: FailureKind, op: Op) -> u64 {
        match kind {
            FailureKind::Panic => self.panics[op.index()],
            FailureKind::Error => self.errors[op.index()],
        }
    }

    pub fn total(&self) -> u64 {
        self.panics.iter().chain(&self.errors).sum()
    }

    fn add(&mut self, other: &FailureCounts) {
        for i in 0..Op::ALL.len() {
            self.panics[i] += other.panics[i];
            self.errors[i] += other.errors[i];
        }
    }
}

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
    /// Authenticated STUN from a new address of a participant whose address slots all carry
    /// live traffic: the new path is not mapped (the paths in use are never evicted for it).
    pub dropped_path_limit: u64,
    /// Datagrams beyond their sender's ingress budget (a flooding participant).
    pub dropped_flood: u64,
    /// Subscriber copies held back until the source's next keyframe.
    pub dropped_awaiting_keyframe: u64,
    /// Stragglers of a previous source after a slot switched.
    pub dropped_before_switch: u64,
    /// Packets a subscriber could not decode (no matching codec negotiated).
    pub dropped_no_codec: u64,
    /// Tracks not bound to a subscriber (or unbound) because it did not accept their codec.
    pub codec_refusals: u64,
    /// RTP on an m-line that is not a published track (or a simulcast layer beyond the
    /// fourth).
    pub dropped_unrouted: u64,
    /// Subscriber copies not sent because the allocator paused the track for that subscriber.
    pub dropped_paused: u64,
    /// RED audio whose blocks did not parse (or whose primary was not the publisher's codec),
    /// not forwarded to a subscriber that gets plain Opus.
    pub dropped_bad_red: u64,
    /// RED (audio/red) packets received from publishers.
    pub red_in: u64,
    /// Subscriber slots that moved to another simulcast layer (at a keyframe of the new one).
    pub layer_switches: u64,
    /// Times the allocator paused a video track for a subscriber (`trackPaused`).
    pub bandwidth_pauses: u64,
    /// Encodings a publisher was told to stop / start because nobody (again somebody) receives
    /// them (dynacast, `layersWanted`).
    pub dynacast_stops: u64,
    pub dynacast_starts: u64,
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
    /// Data-channel messages from clients (relay frames or not).
    pub data_received: u64,
    /// Relayed copies written to receivers' data channels.
    pub data_relayed: u64,
    /// Messages that were not valid relay frames, or named an unknown receiver.
    pub data_dropped_invalid: u64,
    /// Messages beyond the sender's data budget.
    pub data_dropped_rate: u64,
    /// Copies for a receiver without an open channel of that label.
    pub data_dropped_no_channel: u64,
    /// Copies for a receiver whose channel had too much unsent data (a slow receiver).
    pub data_dropped_backpressure: u64,
    /// The same, by kind and operation.
    pub failures: FailureCounts,
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
            t.dropped_path_limit += s.dropped_path_limit;
            t.dropped_flood += s.dropped_flood;
            t.dropped_awaiting_keyframe += s.dropped_awaiting_keyframe;
            t.dropped_before_switch += s.dropped_before_switch;
            t.dropped_no_codec += s.dropped_no_codec;
            t.codec_refusals += s.codec_refusals;
            t.dropped_unrouted += s.dropped_unrouted;
            t.dropped_paused += s.dropped_paused;
            t.dropped_bad_red += s.dropped_bad_red;
            t.red_in += s.red_in;
            t.layer_switches += s.layer_switches;
            t.bandwidth_pauses += s.bandwidth_pauses;
            t.dynacast_stops += s.dynacast_stops;
            t.dynacast_starts += s.dynacast_starts;
            t.dropped_muted += s.dropped_muted;
            t.nacks_received += s.nacks_received;
            t.nacks_sent += s.nacks_sent;
            t.keyframe_requests_received += s.keyframe_requests_received;
            t.keyframe_requests_sent += s.keyframe_requests_sent;
            t.keyframe_requests_coalesced += s.keyframe_requests_coalesced;
            t.participant_failures += s.participant_failures;
            t.data_received += s.data_received;
            t.data_relayed += s.data_relayed;
            t.data_dropped_invalid += s.data_dropped_invalid;
            t.data_dropped_rate += s.data_dropped_rate;
            t.data_dropped_no_channel += s.data_dropped_no_channel;
            t.data_dropped_backpressure += s.data_dropped_backpressure;
            t.failures.add(&s.failures);
            t.participants += s.participants;
            t.rooms += s.rooms;
            t.tracks += s.tracks;
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_kind_and_op() {
        let mut a = ShardStats::default();
        a.failures.record(Failure {
            op: Op::Offer,
            kind: FailureKind::Panic,
        });
        let mut b = ShardStats::default();
        b.failures.record(Failure {
            op: Op::Offer,
            kind: FailureKind::Panic,
        });
        b.failures.record(Failure {
            op: Op::Datagram,
            kind: FailureKind::Error,
        });
        let t = ShardStats::sum([&a, &b]);
        assert_eq!(t.failures.get(FailureKind::Panic, Op::Offer), 2);
        assert_eq!(t.failures.get(FailureKind::Error, Op::Datagram), 1);
        assert_eq!(t.failures.total(), 3);
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(op.index(), i, "ALL is in declaration order");
        }
    }
}
