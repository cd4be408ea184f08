//! An m-line the server sends on: a slot. Slots are reused: when the track behind one ends, the
//! next track of the same kind takes it over, so a subscriber's m-line count is bounded by the
//! most tracks it ever received at once, not by how many came and went.

use std::time::Duration;

use str0m::format::PayloadParams;
use str0m::media::{Mid, Pt};
use str0m::rtp::Ssrc;
use switchboard_protocol::MediaKind;

use super::engine::{Engine, Failed};
use super::participant::TrackRef;
use tracing::debug;

use crate::forward::{Forwarder, OutCodec};
use crate::ids::ParticipantId;
use crate::stats::Op;

const RTX_CACHE_PACKETS: usize = 1024;
const RTX_CACHE_AGE: Duration = Duration::from_secs(1);
/// str0m's default: drop queued resends when they exceed 15 % of what a stream sends.
const RTX_RATIO_CAP: f32 = 0.15;

#[derive(Debug)]
pub(crate) struct Slot {
    pub mid: Mid,
    pub kind: MediaKind,
    /// The msid stream id the client sees for this m-line.
    pub stream_id: String,
    /// Known once the m-line is negotiated.
    pub tx_ssrc: Option<Ssrc>,
    pub state: SlotState,
    pub source: Option<TrackRef>,
    pub forwarder: Forwarder,
    /// Publisher PT → this subscriber's codec, resolved lazily per source.
    pub codecs: Vec<(Pt, Option<OutCodec>)>,
    /// The source's layer (index in its `Layers`) forwarded now; `None` before the first.
    pub layer: Option<usize>,
    /// The layer the allocator wants; the slot moves there at that layer's next keyframe and
    /// forwards `layer` until then. `None` with `paused` false: not chosen yet.
    pub target: Option<usize>,
    /// The allocator paused the source for this subscriber (it was told `trackPaused`).
    pub paused: bool,
    /// Bytes forwarded since the last allocation: what the subscriber's link carried.
    pub sent_bytes: u64,
}

/// Whether a packet of one layer of the slot's source goes to the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Yes,
    /// Yes, and it starts the target layer: numbering continues across the switch.
    Switched,
    /// The target layer's packet, but not a keyframe: waiting to switch.
    AwaitingSwitch,
    /// A layer the slot does not forward.
    OtherLayer,
    /// Paused by the allocator.
    Paused,
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
            layer: None,
            target: None,
            paused: false,
            sent_bytes: 0,
        }
    }

    /// A new source feeds the slot: no layer chosen yet.
    pub fn restart(&mut self, video: bool) {
        self.codecs.clear();
        self.forwarder.switch_source(video);
        self.layer = None;
        self.target = None;
        self.paused = false;
    }

    /// Does a packet of `layer` go out? Moves to the target layer at its keyframe.
    pub fn admit(&mut self, layer: usize, keyframe_start: bool) -> Admit {
        if self.paused {
            return Admit::Paused;
        }
        if self.target == Some(layer) {
            return match self.layer {
                Some(current) if current == layer => Admit::Yes,
                // The first layer of a source: the forwarder waits for its keyframe itself.
                None => {
                    self.layer = Some(layer);
                    Admit::Yes
                }
                Some(_) if keyframe_start => {
                    self.layer = Some(layer);
                    self.forwarder.switch_layer();
                    Admit::Switched
                }
                Some(_) => Admit::AwaitingSwitch,
            };
        }
        if self.layer == Some(layer) {
            Admit::Yes
        } else {
            Admit::OtherLayer
        }
    }

    /// Bind the slot to the send stream str0m created for its m-line once negotiated: Ready when
    /// there is one, Stopped when the client refused the m-line.
    pub fn attach(&mut self, engine: &mut Engine, who: ParticipantId) -> Result<(), Failed> {
        let (mid, video) = (self.mid, self.kind == MediaKind::Video);
        let ssrc = engine.call(who, Op::Query, |rtc| {
            let mut api = rtc.direct_api();
            let tx = api.stream_tx_by_mid(mid, None)?;
            if video {
                // Keep one second of video for NACKs instead of str0m's three: a retransmission
                // older than that misses any receiver's jitter buffer, and the cache holds every
                // packet of every subscriber's stream (it dominates memory per participant).
                tx.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(RTX_RATIO_CAP));
            }
            // With bandwidth estimation on, str0m paces what it sends at about its estimate.
            // Forwarded media is already paced by its publisher; held back again behind an
            // estimate that lags the link, it queues for a second and more. The allocator picks
            // layers that fit the estimate instead, so media goes out as it comes (padding and
            // probes stay paced).
            tx.set_unpaced(true);
            Some(tx.ssrc())
        })?;
        self.tx_ssrc = ssrc;
        self.state = match ssrc {
            Some(_) => SlotState::Ready,
            None => SlotState::Stopped,
        };
        Ok(())
    }

    pub fn is_free(&self, kind: MediaKind) -> bool {
        self.state == SlotState::Ready && self.kind == kind && self.source.is_none()
    }

    /// The subscriber's PT for a publisher PT, from the publisher's negotiated parameters;
    /// `None` when the subscriber's answer did not accept that codec on this m-line.
    /// Resolved once per (source, PT); the engine is asked only the first time.
    pub fn out_codec(
        &mut self,
        pt: Pt,
        publisher: &[PayloadParams],
        engine: &mut Engine,
        who: ParticipantId,
    ) -> Result<Option<OutCodec>, Failed> {
        if let Some((_, codec)) = self.codecs.iter().find(|(p, _)| *p == pt) {
            return Ok(*codec);
        }
        // `pt` is one of the publisher's codecs, or the RED PT folded onto one (Opus).
        let Some((params, red)) = publisher.iter().find_map(|p| {
            if p.pt() == pt {
                Some((*p, false))
            } else {
                (p.red() == Some(pt)).then_some((*p, true))
            }
        }) else {
            self.codecs.push((pt, None));
            return Ok(None);
        };
        let mid = self.mid;
        let resolved = engine.call(who, Op::Query, |rtc| {
            let ours = rtc.codec_config().match_params(params)?;
            // The subscriber's answer narrows the m-line to what it decodes (an m-line made
            // through the direct API has no answer, so nothing narrows it).
            let accepts = |pt: Pt| {
                rtc.media(mid)
                    .is_some_and(|m| m.remote_pts().is_empty() || m.remote_pts().contains(&pt))
            };
            let clock_rate = ours.spec().clock_rate.get();
            if !accepts(ours.pt()) {
                return None;
            }
            // RED goes on as RED to a subscriber that negotiated it, as its primary otherwise.
            // (str0m keeps a RED PT on the codec only when the remote has it too; the m-line's
            // PT list holds the main codecs only.)
            match ours.red().filter(|_| red) {
                Some(red_pt) => Some(OutCodec {
                    pt: red_pt,
                    clock_rate,
                    strip_red: None,
                }),
                None => Some(OutCodec {
                    pt: ours.pt(),
                    clock_rate,
                    strip_red: red.then(|| params.pt()),
                }),
            }
        })?;
        debug!(participant = %who, mid = %mid, from = ?pt, to = ?resolved, "codec resolved");
        self.codecs.push((pt, resolved));
        Ok(resolved)
    }
}
