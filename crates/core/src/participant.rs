//! One client in a room: its `Rtc`, the m-lines it receives on (slots), the tracks it waits for,
//! and where its SDP negotiation stands.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpPendingOffer;
use str0m::format::PayloadParams;
use str0m::media::{Mid, Pt, Rid};
use str0m::rtp::Ssrc;
use str0m::Rtc;
use switchboard_protocol::MediaKind;

use crate::forward::{Forwarder, OutCodec};
use crate::hash::FastMap;
use crate::ids::{ParticipantId, TrackKey};

const RTX_CACHE_PACKETS: usize = 1024;
const RTX_CACHE_AGE: Duration = Duration::from_secs(1);
/// str0m's default: drop queued resends when they exceed 15 % of what a stream sends.
const RTX_RATIO_CAP: f32 = 0.15;

/// An m-line the server sends on. Slots are reused: when the track behind one ends, the next
/// track of the same kind takes it over, so a subscriber's m-line count is bounded by the most
/// tracks it ever received at once, not by how many came and went.
#[derive(Debug)]
pub(crate) struct Slot {
    pub mid: Mid,
    pub kind: MediaKind,
    /// The msid stream id the client sees for this m-line.
    pub stream_id: String,
    /// Known once the m-line is negotiated.
    pub tx_ssrc: Option<Ssrc>,
    pub state: SlotState,
    pub source: Option<TrackKey>,
    pub forwarder: Forwarder,
    /// Publisher PT → this subscriber's codec, resolved lazily per source.
    pub codecs: Vec<(Pt, Option<OutCodec>)>,
}

impl Slot {
    pub fn new(mid: Mid, kind: MediaKind, stream_id: String, seed: u64) -> Self {
        Slot {
            mid,
            kind,
            stream_id,
            tx_ssrc: None,
            state: SlotState::Offered,
            source: None,
            forwarder: Forwarder::new(seed),
            codecs: Vec::new(),
        }
    }

    /// Bind the slot to the send stream str0m created for its m-line once negotiated: Ready when
    /// there is one, Stopped when the client refused the m-line.
    pub fn attach(&mut self, rtc: &mut Rtc) {
        let mut api = rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(self.mid, None) else {
            self.tx_ssrc = None;
            self.state = SlotState::Stopped;
            return;
        };
        if self.kind == MediaKind::Video {
            // Keep one second of video for NACKs instead of str0m's three: a retransmission
            // older than that misses any receiver's jitter buffer, and the cache holds every
            // packet of every subscriber's stream (it dominates memory per participant).
            tx.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(RTX_RATIO_CAP));
        }
        self.tx_ssrc = Some(tx.ssrc());
        self.state = SlotState::Ready;
    }

    pub fn is_free(&self, kind: MediaKind) -> bool {
        self.state == SlotState::Ready && self.kind == kind && self.source.is_none()
    }

    /// The subscriber's PT for a publisher PT, from the publisher's negotiated parameters.
    pub fn out_codec(
        &mut self,
        pt: Pt,
        publisher: &[PayloadParams],
        rtc: &Rtc,
    ) -> Option<OutCodec> {
        if let Some((_, codec)) = self.codecs.iter().find(|(p, _)| *p == pt) {
            return *codec;
        }
        let resolved = publisher.iter().find(|p| p.pt() == pt).and_then(|params| {
            rtc.codec_config()
                .match_params(*params)
                .map(|ours| OutCodec {
                    pt: ours.pt(),
                    clock_rate: ours.spec().clock_rate.get(),
                })
        });
        self.codecs.push((pt, resolved));
        resolved
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// In a server offer that is not answered yet.
    Offered,
    /// Negotiated, with a send SSRC: can carry a track.
    Ready,
    /// Refused or stopped by the client; never used again (a later offer may revive it).
    Stopped,
}

/// Where this participant's SDP negotiation stands. The client offers first; afterwards either
/// side may offer. The server is the polite peer: a client offer that crosses a server offer wins,
/// and the server re-offers what it still needs afterwards.
#[derive(Debug)]
pub(crate) enum Negotiation {
    /// No SDP yet: the client's first offer is expected.
    AwaitingFirstOffer,
    Stable,
    /// The server sent an offer adding the slots at the end of `slots` that are not yet usable.
    ServerOffer(SdpPendingOffer),
}

/// Ingress routing for one SSRC of this participant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    pub mid: Mid,
    pub rid: Option<Rid>,
}

#[derive(Debug)]
pub(crate) struct Participant {
    pub id: ParticipantId,
    pub peer_id: String,
    pub name: String,
    pub room: String,
    pub rtc: Rtc,
    pub ufrag: String,
    /// The server's ICE candidate line, trickled after the first answer.
    pub candidate: String,
    /// Remote addresses mapped to this participant in the shard's demux table.
    pub addrs: Vec<SocketAddr>,
    /// Next time str0m wants `Input::Timeout`, as last scheduled.
    pub deadline: Option<Instant>,
    /// Written to since the last drain: needs `Input::Timeout(now)` and a drain.
    pub dirty: bool,
    pub slots: Vec<Slot>,
    /// Tracks this participant should receive but has no free slot for yet.
    pub wanted: VecDeque<(TrackKey, MediaKind)>,
    /// Tracks this participant publishes (m-lines the server receives on).
    pub published: Vec<Mid>,
    pub routes: FastMap<Ssrc, Route>,
    pub negotiation: Negotiation,
    pub joined_at: Instant,
    pub connected: bool,
    pub disconnected_since: Option<Instant>,
    /// Counter for slot stream ids and forwarder seeds.
    pub slot_counter: u64,
    /// Last cumulative (NACK, keyframe request) counts per (mid, egress) from str0m's stats.
    pub feedback: FastMap<(Mid, bool), (u64, u64)>,
}

impl Participant {
    pub fn wanted_of(&self, kind: MediaKind) -> usize {
        self.wanted.iter().filter(|(_, k)| *k == kind).count()
    }

    pub fn next_slot_seed(&mut self) -> u64 {
        self.slot_counter += 1;
        // Spread start values between slots and participants (splitmix64 finaliser).
        let mut z = self
            .id
            .0
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(self.slot_counter);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Turn str0m's cumulative per-stream counters into increments since the last report.
    pub fn feedback_delta(&mut self, mid: Mid, egress: bool, nacks: u64, plis: u64) -> (u64, u64) {
        let last = self
            .feedback
            .insert((mid, egress), (nacks, plis))
            .unwrap_or((0, 0));
        (nacks.saturating_sub(last.0), plis.saturating_sub(last.1))
    }

    pub fn slot_by_mid(&self, mid: Mid) -> Option<usize> {
        self.slots.iter().position(|s| s.mid == mid)
    }

    pub fn free_slot(&self, kind: MediaKind) -> Option<usize> {
        self.slots.iter().position(|s| s.is_free(kind))
    }
}
