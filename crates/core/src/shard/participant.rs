//! One client in a room: its guarded media engine, the m-lines it receives on (slots), the
//! tracks it waits for, where its SDP negotiation stands, and the paths it is reached on.

use std::collections::VecDeque;
use std::time::Instant;

use str0m::change::SdpPendingOffer;
use str0m::channel::ChannelId;
use str0m::media::{Mid, Rid};
use str0m::rtp::Ssrc;
use switchboard_protocol::{MediaKind, MediaState, Quality, TrackPublication};

use super::engine::Engine;
use super::ingress::IngressBudget;
use super::slab::{Key, Slab};
use super::slot::Slot;
use crate::hash::FastMap;
use crate::ids::ParticipantId;

/// A participant's place in the shard (its slab key): what the packet path uses instead of
/// hashing the [`ParticipantId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Local(pub Key);

/// A published track's place in the shard's fan-out slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TrackRef(pub Key);

/// A slot's place in its participant's slot slab: stable for the slot's life, whatever happens
/// to the other slots (a dropped server offer removes its slots without renumbering anyone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SlotId(pub Key);

/// Where this participant's SDP negotiation stands. The client offers first; afterwards either
/// side may offer. The server is the polite peer: a client offer that crosses a server offer wins,
/// and the server re-offers what it still needs afterwards.
#[derive(Debug)]
pub(crate) enum Negotiation {
    /// No SDP yet: the client's first offer is expected.
    AwaitingFirstOffer,
    Stable,
    /// The server sent an offer (its SDP kept, to send again after a resume) adding the slots
    /// in state `Offered`.
    ServerOffer(SdpPendingOffer, String),
}

/// Ingress routing for one SSRC of this participant, cached from str0m's stream table.
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
    pub engine: Engine,
    pub ufrag: String,
    /// The server's ICE candidate lines, trickled after the first answer.
    pub candidates: Vec<String>,
    /// Remote paths mapped to this participant in the shard's demux table.
    pub addrs: Vec<super::demux::Remote>,
    /// Next time str0m wants `Input::Timeout`, as last scheduled.
    pub deadline: Option<Instant>,
    /// Written to since the last drain: needs `Input::Timeout(now)` and a drain.
    pub dirty: bool,
    pub slots: Slab<Slot>,
    /// Tracks this participant should receive but has no free slot for yet.
    pub wanted: VecDeque<(TrackRef, MediaKind)>,
    /// Every track of this participant, defined or live.
    pub tracks: Vec<TrackRef>,
    /// Its live tracks by the m-line they arrive on (the ingress routing table).
    pub published: Vec<(Mid, TrackRef)>,
    /// What the m-lines of the client's latest offer publish (names, sources, descriptions),
    /// used when str0m reports those m-lines.
    pub publications: Vec<TrackPublication>,
    /// Gets every track of the room as it appears (else only what it subscribes to).
    pub auto_subscribe: bool,
    /// The server may offer it new receive slots (false: a WHIP/WHEP session, whose one offer
    /// fixed its m-lines for good).
    pub server_offers: bool,
    /// The tracks it receives, or will as soon as they are live.
    pub subscriptions: Vec<TrackRef>,
    /// Its signalling connection dropped; the session waits for a resume.
    pub detached: bool,
    /// What it sends right now, as last told to the room.
    pub media_state: MediaState,
    pub routes: FastMap<Ssrc, Route>,
    pub negotiation: Negotiation,
    pub joined_at: Instant,
    pub connected: bool,
    pub disconnected_since: Option<Instant>,
    /// How many datagrams it may still send now (flood protection for everyone else).
    pub ingress: IngressBudget,
    /// Remote candidates added so far (bounded by the shard's limit).
    pub remote_candidates: usize,
    /// Told once that tracks wait because the session reached its m-line limit.
    pub told_mline_limit: bool,
    /// Counter for slot stream ids and forwarder seeds.
    pub slot_counter: u64,
    /// Last cumulative (NACK, keyframe request) counts per (mid, egress) from str0m's stats.
    pub feedback: FastMap<(Mid, bool), (u64, u64)>,
    /// The data channels the client opened on this session, by str0m's id, with their labels
    /// (at most `datachannel::MAX_CHANNELS`; later ones are not relayed).
    pub channels: Vec<(ChannelId, String)>,
    /// Bytes of data-channel messages it may still have relayed now.
    pub data_budget: IngressBudget,
    /// When it was last told that a data message of its was dropped (at most one a second).
    pub data_notice_at: Option<Instant>,
    /// What it asked of the tracks it receives (`setTrackQuality`), at most one entry per
    /// track of its room.
    pub preferences: Vec<(TrackRef, Preference)>,
    /// Its link's latest send-side bandwidth estimate (bits per second), from str0m's TWCC.
    pub estimate: Option<u64>,
    /// What the allocator knows of its link across ticks.
    pub link: super::allocation::LinkState,
}

/// How a subscriber wants one track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Preference {
    pub quality: Quality,
    pub priority: u8,
}

/// What a subscriber asked of one track (the default when it asked nothing).
pub(crate) fn preference(preferences: &[(TrackRef, Preference)], track: TrackRef) -> Preference {
    preferences
        .iter()
        .find(|(t, _)| *t == track)
        .map(|(_, p)| *p)
        .unwrap_or_default()
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

    pub fn slot_by_mid(&self, mid: Mid) -> Option<SlotId> {
        self.slots
            .iter()
            .find(|(_, s)| s.mid == mid)
            .map(|(k, _)| SlotId(k))
    }

    pub fn free_slot(&self, kind: MediaKind) -> Option<SlotId> {
        self.slots
            .iter()
            .find(|(_, s)| s.is_free(kind))
            .map(|(k, _)| SlotId(k))
    }

    pub fn slot_mut(&mut self, id: SlotId) -> Option<&mut Slot> {
        self.slots.get_mut(id.0)
    }

    /// m-lines of this session the server knows of: the ones it publishes on and the receive
    /// slots (stopped ones included: str0m keeps them in every later SDP).
    pub fn mline_count(&self) -> usize {
        self.slots.len() + self.published.len()
    }

    pub fn track_on(&self, mid: Mid) -> Option<TrackRef> {
        self.published
            .iter()
            .find(|(m, _)| *m == mid)
            .map(|(_, t)| *t)
    }
}
