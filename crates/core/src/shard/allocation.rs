//! Running the bandwidth allocator (`crate::allocate`) for every subscriber on a timer: measure
//! each layer's rate, decide the subscriber's budget from its link's bandwidth estimate, apply
//! the decisions to its slots (retarget, pause, resume) and tell str0m's estimator what to
//! probe for.
//!
//! str0m's send-side estimate grows to well above what a healthy link is asked to carry (about
//! 1.5× the acknowledged rate), so it says nothing about the link's limit until congestion shows.
//! A subscriber's link is therefore *unconstrained* (everything at its preferred quality) until
//! the estimate falls clearly below what it is sent; it is then *constrained* (the budget is the
//! lowest recent estimate, with headroom) until everything fits at its preferred quality again.

use std::collections::VecDeque;
use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::media::{KeyframeRequestKind, Mid, Rid};
use switchboard_protocol::{MediaKind, PauseReason, ServerMessage};
use tracing::debug;

use super::fanout::quality_index;
use super::participant::{preference, Local, Preference, SlotId, TrackRef};
use super::Shard;
use crate::allocate::{allocate, Budget, Demand};
use crate::stats::Op;

/// Use this share of the estimate: the rest absorbs estimate error and retransmissions.
pub(crate) const HEADROOM: f64 = 0.9;
/// The link counts as congested when the estimate falls below this share of what it is sent.
pub(crate) const CONGESTED: f64 = 0.85;
/// How many allocations' estimates the budgets look back over (the newest and three before it,
/// 1.5 s at 500 ms): the lowest of them for growing, the highest for keeping (`LinkState::budget`).
const ESTIMATE_WINDOW: usize = 4;
/// Below this send rate the link's estimate is not judged (too few packets to tell).
const MIN_JUDGED_RATE: u64 = 100_000;
/// A layer whose rate is not measured yet counts as this much.
const MIN_LAYER_RATE: u64 = 30_000;
/// Per-packet bytes beyond the payload (RTP header and extensions, SRTP tag, UDP/IP), counted
/// in layer and link rates so that they compare with the estimate.
pub(crate) const PACKET_OVERHEAD: usize = 60;
/// Preferences one participant may hold; older ones for tracks that are gone are dropped first.
pub(crate) const MAX_PREFERENCES: usize = 256;

/// What the allocator remembers of one subscriber's link.
#[derive(Debug, Default)]
pub(crate) struct LinkState {
    constrained: bool,
    estimates: VecDeque<u64>,
    measured_at: Option<Instant>,
    /// What str0m was last told to probe for.
    desired: u64,
}

impl LinkState {
    /// The budgets for this allocation, given the newest estimate and the rate sent since the
    /// last one. While constrained, upgrades and resumes get the lowest recent estimate (one
    /// optimistic estimate does not bring back a layer the link then drops) and keeping a
    /// forwarded track's lowest layer gets the highest (one pessimistic estimate does not freeze
    /// a picture: it pauses only when every estimate of the window says it does not fit). The
    /// configured cap bounds both, and is the hard limit.
    fn budget(&mut self, estimate: Option<u64>, sent: u64, cap: Option<u64>) -> Budget {
        if let Some(e) = estimate {
            if self.estimates.len() == ESTIMATE_WINDOW {
                self.estimates.pop_front();
            }
            self.estimates.push_back(e);
            if !self.constrained && sent >= MIN_JUDGED_RATE && (e as f64) < CONGESTED * sent as f64
            {
                self.constrained = true;
            }
        }
        let share = |bps: u64| (bps as f64 * HEADROOM) as u64;
        let capped = |limit: Option<u64>| match (limit, cap) {
            (Some(l), Some(c)) => Some(l.min(c)),
            (l, c) => l.or(c),
        };
        let (grow, keep) = match (self.constrained, self.estimates.iter().min()) {
            (true, Some(&low)) => (
                Some(share(low)),
                self.estimates.iter().max().copied().map(share),
            ),
            _ => (None, None),
        };
        Budget {
            grow: capped(grow),
            keep: capped(keep),
            hard: cap,
        }
    }
}

/// One slot's share of an allocation: its slot, track and ladder (layer indices, low to high).
struct Entry {
    slot: SlotId,
    track: TrackRef,
    ladder: Vec<usize>,
    audio: bool,
}

impl Shard {
    /// Allocate every subscriber's bandwidth; `measure`: close the layer-rate measurement first
    /// (the periodic run; an allocation brought forward by an event uses the last rates).
    pub(super) fn allocate_all(&mut self, measure: bool) {
        let now = self.now;
        if measure {
            for (_, track) in self.tracks.iter_mut() {
                track.layers.measure(now);
            }
        }
        for key in self.members.keys() {
            self.allocate_for(Local(key), measure);
        }
    }

    fn allocate_for(&mut self, local: Local, measure: bool) {
        let now = self.now;
        let cap = self.config.max_subscriber_bitrate;
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        let mut entries = Vec::new();
        let mut demands = Vec::new();
        let mut sent_bytes = 0u64;
        let mut unmeasured = false;
        for (key, slot) in p.slots.iter_mut() {
            if measure {
                sent_bytes += std::mem::take(&mut slot.sent_bytes);
            }
            let Some(track_ref) = slot.source else {
                continue;
            };
            let Some(track) = self.tracks.get(track_ref.0) else {
                continue;
            };
            if track.muted() {
                continue;
            }
            let ladder = track.layers.ranked(now);
            let Some(top) = ladder.len().checked_sub(1) else {
                continue;
            };
            let pref = preference(&p.preferences, track_ref);
            let audio = track.kind == MediaKind::Audio;
            demands.push(Demand {
                ladder: ladder
                    .iter()
                    .map(|&i| {
                        let rate = track.layers.get(i).map_or(0, |l| l.bitrate);
                        unmeasured |= rate == 0;
                        rate.max(MIN_LAYER_RATE)
                    })
                    .collect(),
                max: if audio {
                    0
                } else {
                    quality_index(pref.quality, top)
                },
                priority: pref.priority,
                audio,
                forwarded: !slot.paused,
            });
            entries.push(Entry {
                slot: SlotId(key),
                track: track_ref,
                ladder,
                audio,
            });
        }
        // Only the periodic run closes the measurement window (the bytes are taken only then).
        let since = if measure {
            p.link.measured_at.replace(now)
        } else {
            None
        };
        let sent = match since {
            Some(since) => {
                let secs = now.saturating_duration_since(since).as_secs_f64();
                if secs > 0.0 {
                    (sent_bytes as f64 * 8.0 / secs) as u64
                } else {
                    0
                }
            }
            None => 0,
        };
        let estimate = if measure { p.estimate } else { None };
        let budget = p.link.budget(estimate, sent, cap);
        let allocation = allocate(budget, &demands);
        if p.link.constrained && allocation.next_step.is_none() {
            p.link.constrained = false;
        }
        if measure && entries.iter().any(|e| !e.audio) {
            debug!(participant = %p.id, ?budget, sent, ?estimate, constrained = p.link.constrained,
                choices = ?allocation.choices, "allocation");
        }
        // Probe for the next step when constrained (a gentle climb), for everything otherwise.
        let desired = match (p.link.constrained, allocation.next_step) {
            (true, Some(step)) => allocation.allocated + step,
            _ => allocation.desired,
        };
        // str0m's first probes are capped at twice the desired rate and their result replaces
        // the starting estimate: a desired rate made of guesses for layers not measured yet
        // (audio alone, say, while video starts) would pin the estimate far below the link.
        // Wait until every layer has a measured rate.
        let steer = desired != p.link.desired && !entries.is_empty() && !unmeasured;
        p.link.desired = desired;
        if steer {
            let who = p.id;
            let steered = p.engine.call(who, Op::Query, |rtc| {
                rtc.bwe()
                    .set_bitrate(Bitrate::bps(0), Bitrate::bps(desired.max(1)));
            });
            if steered.is_err() {
                self.failed.push(local);
                return;
            }
        }
        for (entry, choice) in entries.iter().zip(allocation.choices) {
            if entry.audio {
                continue;
            }
            self.apply_choice(
                local,
                entry,
                choice.and_then(|c| entry.ladder.get(c).copied()),
            );
        }
    }

    /// Move one slot to the layer the allocator chose (`None`: pause it).
    fn apply_choice(&mut self, local: Local, entry: &Entry, layer: Option<usize>) {
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        let Some(slot) = p.slot_mut(entry.slot) else {
            return;
        };
        let mid = slot.mid.to_string();
        let (message, keyframe) = match layer {
            None if slot.paused => return,
            None => {
                slot.paused = true;
                slot.target = None;
                self.stats.bandwidth_pauses += 1;
                (Some(true), None)
            }
            Some(layer) if slot.paused => {
                slot.paused = false;
                slot.layer = None;
                slot.target = Some(layer);
                slot.forwarder.resume();
                (Some(false), Some(layer))
            }
            Some(layer) if slot.target == Some(layer) => return,
            Some(layer) => {
                slot.target = Some(layer);
                let switch = slot.layer != Some(layer);
                (None, switch.then_some(layer))
            }
        };
        if let Some(paused) = message {
            if let Some(track) = self.tracks.get(entry.track.0) {
                let (track_id, peer_id) = (track.track_id.clone(), track.publisher_peer.clone());
                let message = if paused {
                    ServerMessage::TrackPaused {
                        track_id,
                        peer_id,
                        mid,
                        reason: PauseReason::Bandwidth,
                    }
                } else {
                    ServerMessage::TrackResumed {
                        track_id,
                        peer_id,
                        mid,
                    }
                };
                self.signal(local, message);
            }
        }
        if let Some(layer) = keyframe {
            self.request_keyframe(entry.track, layer, KeyframeRequestKind::Pli);
        }
    }

    /// str0m saw one of `publisher`'s encodings stop or start: subscribers of that track are
    /// reallocated at once (a stopped layer's subscribers fall back without waiting a tick).
    pub(super) fn layer_paused(
        &mut self,
        publisher: Local,
        mid: Mid,
        rid: Option<Rid>,
        paused: bool,
    ) {
        let Some(track_ref) = self.members.get(publisher.0).and_then(|p| p.track_on(mid)) else {
            return;
        };
        let Some(track) = self.tracks.get_mut(track_ref.0) else {
            return;
        };
        track.layers.set_paused(rid, paused);
        let subscribers: Vec<Local> = track.subscribers.iter().map(|(s, _)| *s).collect();
        for sub in subscribers {
            self.allocate_for(sub, false);
        }
    }

    /// `setTrackQuality`: remember the subscriber's wish for one track of its room and apply it.
    pub(super) fn set_track_quality(
        &mut self,
        local: Local,
        track_id: &str,
        quality: Option<switchboard_protocol::Quality>,
        priority: Option<u8>,
    ) {
        let Some(track_ref) = self.room_track(local, track_id) else {
            self.unknown_track(local, track_id, "setTrackQuality");
            return;
        };
        let Shard {
            members, tracks, ..
        } = self;
        let Some(p) = members.get_mut(local.0) else {
            return;
        };
        p.preferences.retain(|(t, _)| tracks.get(t.0).is_some());
        let at = match p.preferences.iter().position(|(t, _)| *t == track_ref) {
            Some(at) => at,
            None => {
                if p.preferences.len() >= MAX_PREFERENCES {
                    p.preferences.remove(0);
                }
                p.preferences.push((track_ref, Preference::default()));
                p.preferences.len() - 1
            }
        };
        let pref = &mut p.preferences[at].1;
        if let Some(q) = quality {
            pref.quality = q;
        }
        if let Some(pr) = priority {
            pref.priority = pr;
        }
        debug!(participant = %p.id, track = track_id, ?pref, "track preference");
        self.allocate_for(local, false);
        self.dynacast_track(track_ref);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_low_estimate_lowers_growing_but_not_keeping() {
        let mut link = LinkState::default();
        let unlimited = Budget::fixed(None);
        assert_eq!(link.budget(Some(5_000_000), 1_000_000, None), unlimited);
        // Below 0.85 × sent: constrained from here on.
        let b = link.budget(Some(700_000), 1_000_000, None);
        assert_eq!(b.grow, Some(630_000));
        assert_eq!((b.keep, b.hard), (Some(4_500_000), None));
        // One dip: growing answers to it, keeping to the best of the window.
        link.budget(Some(700_000), 600_000, None);
        let b = link.budget(Some(100_000), 600_000, None);
        assert_eq!(b.grow, Some(90_000));
        assert_eq!(b.keep, Some(4_500_000));
        // Once the window holds only low estimates, keeping answers to them too.
        for _ in 0..ESTIMATE_WINDOW {
            link.budget(Some(120_000), 200_000, None);
        }
        let b = link.budget(None, 0, Some(100_000));
        assert_eq!(b.grow, Some(100_000));
        assert_eq!((b.keep, b.hard), (Some(100_000), Some(100_000)));
        let b = link.budget(None, 0, None);
        assert_eq!((b.grow, b.keep), (Some(108_000), Some(108_000)));
    }
}
