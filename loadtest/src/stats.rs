//! What a [`Client`](crate::Client) observed: room membership, slot assignments, received media
//! quality per publisher track, and errors. Snapshots are plain values (`Clone`), so tests can
//! poll them without holding any lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use switchboard_protocol::{ErrorCode, LeaveReason, MediaKind};

/// How many latency samples each [`RecvStats`] keeps (a ring of the most recent ones).
pub const LATENCY_SAMPLES: usize = 4096;

/// How many missing counters a receiver remembers per track to recognise late (reordered)
/// packets. Older holes stay counted as lost.
const MISSING_WINDOW: usize = 4096;

/// A packet whose counter is this far behind the highest one seen, and that fills no known hole,
/// means the publisher started counting again (a new session under the same peer id).
const RESTART_DISTANCE: u64 = 1000;

/// Everything one client observed; a cheap snapshot via [`Client::stats`](crate::Client::stats).
#[derive(Clone, Debug, Default)]
pub struct ClientStats {
    /// The peer id the server assigned (empty until `joined`).
    pub peer_id: String,
    /// The token to resume this session with (from `joined`, then each `resumed`).
    pub resume_token: Option<String>,
    /// Sessions resumed on a new connection.
    pub resumes: u64,
    /// `peerReconnecting` / `peerReconnected` events, in order.
    pub reconnecting: Vec<String>,
    pub reconnected: Vec<String>,
    /// `trackDefined` events: (peer, track), in order.
    pub tracks_defined: Vec<(String, switchboard_protocol::TrackInfo)>,
    /// `trackRemoved` events: (peer, track id).
    pub tracks_removed: Vec<(String, String)>,
    /// `trackMuted` events: (track id, muted, by whom).
    pub mutes: Vec<(String, bool, switchboard_protocol::MuteOrigin)>,
    /// The latest `mediaState` of each member.
    pub media_states: HashMap<String, switchboard_protocol::MediaState>,
    /// Data messages received, by sender (`""` for the admin API).
    pub messages_from: HashMap<String, u64>,
    /// `Event::Connected` was seen: ICE and DTLS are up.
    pub connected: bool,
    /// The last ICE connection state str0m reported (`Debug` form), empty before the first.
    pub ice_state: String,
    /// The WebSocket is closed and the client's task has stopped.
    pub closed: bool,
    /// The reason in the server's `left` message.
    pub left_reason: Option<LeaveReason>,
    /// Other members currently in the room: peer id -> display name.
    pub members: BTreeMap<String, String>,
    /// Peer ids from `peerLeft`, in order.
    pub peers_left: Vec<String>,
    /// My mid -> the track that currently arrives there (`None` after `trackUnpublished`).
    pub slots: BTreeMap<String, Option<TrackOnSlot>>,
    /// Every `trackPublished` in arrival order: (my mid, track).
    pub track_history: Vec<(String, TrackOnSlot)>,
    /// Every `trackUnpublished` in arrival order: (track id, peer id).
    pub unpublished: Vec<(String, String)>,
    /// Received media keyed by the owner named in the payload (for corrupt packets: the owner
    /// announced for the mid, or `"?"`) and the kind of the m-line it arrived on.
    pub received: HashMap<(String, MediaKind), RecvStats>,
    /// Packets per receiving mid (including corrupt ones).
    pub mid_packets: BTreeMap<String, u64>,
    /// Packets whose payload owner differs from the owner announced for that mid at arrival
    /// (only counted while an announcement exists for the mid).
    pub wrong_owner: u64,
    /// Packets of a mid's previous owner that arrived within [`SWITCH_GRACE`] after the mid
    /// was announced for a new one: sent before the switch, overtaken by the announcement
    /// (signalling and media travel separately), or resent from the retransmission history.
    pub late_previous_owner: u64,
    /// Packets of a mid's next owner that arrived before its `trackPublished` did, which then
    /// came within [`SWITCH_GRACE`]: the server sends a rebound slot's announcement before its
    /// first packet, but the two travel separately (WebSocket and UDP) and a busy client reads
    /// the datagram first. Counted as wrong owner on arrival and moved here when the
    /// announcement confirms them.
    pub early_new_owner: u64,
    /// Wrong-owner packets that a late announcement may still confirm: (mid, payload owner,
    /// first arrival, packets). Bounded by [`MAX_UNANNOUNCED`]; beyond it they stay wrong.
    pub unannounced: Vec<(String, String, Instant, u64)>,
    /// The first few wrong-owner packets, for the report: (mid, announced owner, payload
    /// owner, time since the mid's latest announcement).
    pub wrong_owner_examples: Vec<(String, String, String, Duration)>,
    /// When each mid was last announced.
    pub announced_at: HashMap<String, Instant>,
    /// Per mid: the owner before its latest announcement, and when that announcement came.
    pub previous_owner: HashMap<String, (String, Instant)>,
    /// RTP packets whose SSRC str0m could not map to an m-line.
    pub unknown_ssrc: u64,
    /// `Event::KeyframeRequest`s received as a publisher.
    pub keyframe_requests: u64,
    /// RTP packets handed to str0m for sending (audio and video).
    pub sent_packets: u64,
    /// Relayed data-channel messages written, and writes str0m refused (its buffer was full).
    pub data_sent: u64,
    pub data_refused: u64,
    /// Relayed data-channel messages received, by the sender the server named (packets,
    /// bytes, lost counters, latency; `corrupt`: not a relay frame or not our payload).
    pub data_received: HashMap<String, RecvStats>,
    /// Audio packets not sent on purpose (`ClientOptions::drop_audio_every`).
    pub dropped_audio: u64,
    /// Video frames sent, and how many of them were keyframes.
    pub sent_frames: u64,
    pub sent_keyframes: u64,
    /// m-lines in the session, counted in the latest SDP applied.
    pub mline_count: usize,
    /// `error` messages from the server, in order.
    pub errors: Vec<(ErrorCode, String)>,
    /// Problems found on this side: unparseable server messages, SDP the client refused, str0m
    /// errors. Bounded (the oldest are kept, later ones only counted in `local_error_count`).
    pub local_errors: Vec<String>,
    pub local_error_count: u64,
    /// Server `offer`s received (accepted or not).
    pub server_offers: u64,
    /// Server `offer`s ignored because the client's own offer was outstanding (glare).
    pub glare_ignored: u64,
    /// Answers the client sent to server offers.
    pub answers_sent: u64,
    /// When the current gap window started ([`ClientStats::mark_gaps`]); `None`: never marked,
    /// every track's window starts with its first packet.
    pub gaps_marked_at: Option<Instant>,
}

/// What arrives on one of my m-lines, as announced by `trackPublished`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackOnSlot {
    pub peer_id: String,
    pub track_id: String,
    pub kind: MediaKind,
    pub stream_id: String,
}

/// Receive quality of one publisher track, measured from the synthetic payloads.
#[derive(Clone, Debug, Default)]
pub struct RecvStats {
    /// Packets received (including corrupt ones).
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Payloads that did not parse as synthetic media.
    pub corrupt: u64,
    /// Counters skipped so far and not (yet) filled by a late packet.
    pub lost: u64,
    /// Late packets that filled a hole in the counter sequence.
    pub reordered: u64,
    /// Of `lost`, the packets whose frame came as the redundant block of a later RED packet: a
    /// RED receiver plays them, so `lost - recovered` is the loss a listener hears.
    pub recovered: u64,
    /// Packets that came as RED (`audio/red`), and redundant blocks that were not a copy of this
    /// publisher's audio (a server that mixed up or damaged the redundancy).
    pub red_packets: u64,
    pub bad_redundancy: u64,
    /// Packets whose counter was already seen (or too old to tell).
    pub duplicates: u64,
    /// The publisher's counter started over (it rejoined with the same peer id).
    pub restarts: u64,
    /// RTP sequence discontinuities on the receiving mid (header seq was not previous + 1).
    pub seq_gaps: u64,
    /// Packets that start a keyframe.
    pub keyframes: u64,
    /// One-way latency samples in microseconds (same-host clocks); a ring of the last
    /// [`LATENCY_SAMPLES`], where sample `n` is stored at `n % LATENCY_SAMPLES`.
    pub latency_us: Vec<u32>,
    /// Latency samples taken in total (the ring's write position).
    pub latency_total: u64,
    pub first_packet_at: Option<Instant>,
    pub last_packet_at: Option<Instant>,
    /// The longest time between two consecutive arrivals on this track since the gap window
    /// started ([`ClientStats::mark_gaps`], or the first packet). A gap that straddles the mark
    /// counts from the mark: only its part inside the window. A track that has gone quiet shows
    /// here only once its next packet arrives; [`RecvStats::max_gap_until`] counts the silence
    /// up to now as well.
    pub max_gap: Duration,
    /// Start of the gap window, until the first packet after it arrives (from then on the
    /// previous arrival is later than the mark and the mark no longer matters).
    pub gap_mark: Option<Instant>,
}

/// How long after a mid changes hands packets of its previous owner count as late, not wrong.
pub const SWITCH_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How many (mid, owner) pairs of not-yet-announced media are remembered at once.
pub const MAX_UNANNOUNCED: usize = 64;

impl ClientStats {
    /// A packet of `owner` arrived on `mid`, announced for someone else: count it as wrong and
    /// remember it, in case `owner`'s announcement for the mid is only late.
    pub(crate) fn note_unannounced(&mut self, mid: &str, owner: &str) {
        self.wrong_owner += 1;
        self.unannounced
            .retain(|(_, _, first, _)| first.elapsed() <= SWITCH_GRACE);
        if let Some(entry) = self
            .unannounced
            .iter_mut()
            .find(|(m, o, _, _)| m == mid && o == owner)
        {
            entry.3 += 1;
        } else if self.unannounced.len() < MAX_UNANNOUNCED {
            self.unannounced
                .push((mid.to_owned(), owner.to_owned(), Instant::now(), 1));
        }
    }

    /// `owner` was announced on `mid`: packets of theirs that arrived there within
    /// [`SWITCH_GRACE`] before it were early, not misrouted.
    pub(crate) fn confirm_announced(&mut self, mid: &str, owner: &str) {
        let Some(pos) = self
            .unannounced
            .iter()
            .position(|(m, o, first, _)| m == mid && o == owner && first.elapsed() <= SWITCH_GRACE)
        else {
            return;
        };
        let (_, _, _, packets) = self.unannounced.swap_remove(pos);
        self.wrong_owner = self.wrong_owner.saturating_sub(packets);
        self.early_new_owner += packets;
        self.wrong_owner_examples
            .retain(|(m, _, o, _)| !(m == mid && o == owner));
    }
}

impl RecvStats {
    /// Record one latency sample in the bounded ring.
    pub fn push_latency(&mut self, us: u32) {
        let pos = (self.latency_total % LATENCY_SAMPLES as u64) as usize;
        if self.latency_us.len() < LATENCY_SAMPLES {
            self.latency_us.push(us);
        } else {
            self.latency_us[pos] = us;
        }
        self.latency_total += 1;
    }

    /// Latency percentile over the kept samples (0 when there are none).
    pub fn latency_percentile(&self, p: f64) -> u32 {
        percentile(&self.latency_us, p)
    }

    /// Start a new gap window at `now`: [`RecvStats::max_gap`] counts from here.
    pub fn mark_gap(&mut self, now: Instant) {
        self.max_gap = Duration::ZERO;
        self.gap_mark = Some(now);
    }

    /// [`RecvStats::max_gap`], or the silence since the last arrival (or since the mark, if
    /// nothing arrived after it) if that is longer: what a window ending at `now` saw, including
    /// a track that stopped. Zero for a track that never delivered a packet.
    pub fn max_gap_until(&self, now: Instant) -> Duration {
        let Some(last) = self.last_packet_at else {
            return Duration::ZERO;
        };
        let from = self.gap_mark.map_or(last, |m| m.max(last));
        self.max_gap.max(now.saturating_duration_since(from))
    }
}

/// Nearest-rank percentile: `p` in 0..=100 (clamped); 0 for an empty slice.
pub fn percentile(samples: &[u32], p: f64) -> u32 {
    if samples.is_empty() {
        return 0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl ClientStats {
    /// The receive stats of one publisher's track, if anything arrived from it.
    pub fn recv(&self, owner: &str, kind: MediaKind) -> Option<&RecvStats> {
        self.received.get(&(owner.to_owned(), kind))
    }

    /// Packets received from `owner` of `kind` (0 when none).
    pub fn packets_from(&self, owner: &str, kind: MediaKind) -> u64 {
        self.recv(owner, kind).map_or(0, |r| r.packets)
    }

    /// Sum of one counter over every received track.
    pub fn total(&self, f: impl Fn(&RecvStats) -> u64) -> u64 {
        self.received.values().map(f).sum()
    }

    /// Start a gap window at `now` on every received track (see [`RecvStats::max_gap`]); tracks
    /// that first deliver after it start their window with their first packet.
    pub fn mark_gaps(&mut self, now: Instant) {
        self.gaps_marked_at = Some(now);
        for r in self.received.values_mut() {
            r.mark_gap(now);
        }
    }

    /// The longest gap in the current window on any track from `owner` (audio or video), up to
    /// `now` ([`RecvStats::max_gap_until`]); `None` when nothing came from `owner`.
    pub fn max_gap_from(&self, owner: &str, now: Instant) -> Option<Duration> {
        self.received
            .iter()
            .filter(|((o, _), _)| o == owner)
            .map(|(_, r)| r.max_gap_until(now))
            .max()
    }

    /// The mids that currently carry a track of `peer_id`.
    pub fn mids_of(&self, peer_id: &str) -> Vec<String> {
        self.slots
            .iter()
            .filter(|(_, t)| t.as_ref().is_some_and(|t| t.peer_id == peer_id))
            .map(|(mid, _)| mid.clone())
            .collect()
    }

    /// A short human-readable dump, for timeout messages.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "peer={} connected={} ice={} closed={} left={:?} mlines={} sent={} kf_req={} \
             server_offers={} glare_ignored={} wrong_owner={} early_new_owner={} unknown_ssrc={}",
            self.peer_id,
            self.connected,
            self.ice_state,
            self.closed,
            self.left_reason,
            self.mline_count,
            self.sent_packets,
            self.keyframe_requests,
            self.server_offers,
            self.glare_ignored,
            self.wrong_owner,
            self.early_new_owner,
            self.unknown_ssrc,
        );
        let _ = write!(s, "; members={:?}", self.members.keys().collect::<Vec<_>>());
        let slots: Vec<String> = self
            .slots
            .iter()
            .map(|(mid, t)| match t {
                Some(t) => format!("{mid}={}/{}", t.peer_id, t.track_id),
                None => format!("{mid}=-"),
            })
            .collect();
        let _ = write!(s, "; slots=[{}]", slots.join(" "));
        let mut recv: Vec<_> = self.received.iter().collect();
        recv.sort_by(|a, b| a.0 .0.cmp(&b.0 .0).then(kind_order(a.0 .1, b.0 .1)));
        let recv: Vec<String> = recv
            .iter()
            .map(|((owner, kind), r)| {
                format!(
                    "{owner}/{kind:?}: pkts={} lost={} reord={} corrupt={} gaps={} kf={}",
                    r.packets, r.lost, r.reordered, r.corrupt, r.seq_gaps, r.keyframes
                )
            })
            .collect();
        let _ = write!(s, "; received=[{}]", recv.join(", "));
        if !self.errors.is_empty() {
            let _ = write!(s, "; errors={:?}", self.errors);
        }
        if !self.local_errors.is_empty() {
            let _ = write!(
                s,
                "; local_errors({})={:?}",
                self.local_error_count, self.local_errors
            );
        }
        s
    }
}

fn kind_order(a: MediaKind, b: MediaKind) -> std::cmp::Ordering {
    let rank = |k| match k {
        MediaKind::Audio => 0,
        MediaKind::Video => 1,
    };
    rank(a).cmp(&rank(b))
}

/// One received packet, as the accounting sees it.
#[derive(Debug, Clone)]
pub(crate) struct PacketSample {
    /// The publisher's per-track counter from the payload.
    pub counter: u64,
    /// The RTP sequence number on the receiving mid was not previous + 1.
    pub seq_gap: bool,
    pub keyframe: bool,
    pub bytes: usize,
    pub latency_us: u32,
    pub at: Instant,
}

/// Per-track state behind [`RecvStats`]: the highest counter seen and the holes below it.
#[derive(Debug, Default)]
pub(crate) struct RecvTracker {
    highest: Option<u64>,
    missing: BTreeSet<u64>,
    /// The holes in `missing` whose frame a RED copy brought (a subset of it).
    recovered: BTreeSet<u64>,
}

impl RecvTracker {
    /// Account one packet that parsed as synthetic media.
    pub(crate) fn on_packet(&mut self, stats: &mut RecvStats, p: &PacketSample) {
        count_arrival(stats, p.bytes, p.seq_gap, p.at);
        if p.keyframe {
            stats.keyframes += 1;
        }
        stats.push_latency(p.latency_us);
        let c = p.counter;
        match self.highest {
            None => self.highest = Some(c),
            Some(h) if c > h => {
                let gap = c - h - 1;
                stats.lost += gap;
                // Remember at most the newest MISSING_WINDOW holes.
                let from = (h + 1).max(c.saturating_sub(MISSING_WINDOW as u64));
                self.missing.extend(from..c);
                while self.missing.len() > MISSING_WINDOW {
                    if let Some(old) = self.missing.pop_first() {
                        self.recovered.remove(&old);
                    }
                }
                self.highest = Some(c);
            }
            Some(h) => {
                if self.missing.remove(&c) {
                    stats.reordered += 1;
                    stats.lost = stats.lost.saturating_sub(1);
                    if self.recovered.remove(&c) {
                        // Not lost after all: neither is it recovered.
                        stats.recovered = stats.recovered.saturating_sub(1);
                    }
                } else if h - c > RESTART_DISTANCE {
                    stats.restarts += 1;
                    self.missing.clear();
                    self.recovered.clear();
                    self.highest = Some(c);
                } else {
                    stats.duplicates += 1;
                }
            }
        }
    }
}

impl RecvTracker {
    /// A RED packet carried a copy of frame `counter` (after its own primary was accounted): a
    /// hole it fills is recovered, once.
    pub(crate) fn on_redundant(&mut self, stats: &mut RecvStats, counter: u64) {
        if self.missing.contains(&counter) && self.recovered.insert(counter) {
            stats.recovered += 1;
        }
    }
}

/// Account a packet whose payload did not parse.
pub(crate) fn on_corrupt(stats: &mut RecvStats, bytes: usize, seq_gap: bool, at: Instant) {
    count_arrival(stats, bytes, seq_gap, at);
    stats.corrupt += 1;
}

fn count_arrival(stats: &mut RecvStats, bytes: usize, seq_gap: bool, at: Instant) {
    stats.packets += 1;
    stats.bytes += bytes as u64;
    if seq_gap {
        stats.seq_gaps += 1;
    }
    if let Some(prev) = stats.last_packet_at {
        // One compare per packet once the first packet after a mark has cleared it.
        let from = match stats.gap_mark.take() {
            Some(mark) if mark > prev => mark,
            _ => prev,
        };
        let gap = at.saturating_duration_since(from);
        if gap > stats.max_gap {
            stats.max_gap = gap;
        }
    }
    stats.first_packet_at.get_or_insert(at);
    stats.last_packet_at = Some(at);
}

/// Detects RTP sequence discontinuities on one receiving mid.
#[derive(Debug, Default)]
pub(crate) struct SeqWatch {
    last: Option<u16>,
}

impl SeqWatch {
    /// Returns true when `seq` does not directly follow the previous packet's.
    pub(crate) fn observe(&mut self, seq: u16) -> bool {
        let gap = self.last.is_some_and(|prev| seq != prev.wrapping_add(1));
        self.last = Some(seq);
        gap
    }
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
