//! When the shard must be woken: each participant's str0m deadline, deferred keyframe requests,
//! the periodic housekeeping, the speaker ranking and the bandwidth allocation.
//!
//! Deadlines sit in a binary heap with lazy deletion: a participant's entry is pushed only when
//! its deadline changes, and an entry that no longer matches the participant's current deadline
//! is skipped when it comes up. Only due participants are fed `Input::Timeout`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::participant::{Local, TrackRef};

/// How often the shard checks participants for connect and disconnect timeouts.
pub(crate) const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(500);
/// How often each room's speakers are ranked (and announced, when the list changed).
pub(crate) const SPEAKER_INTERVAL: Duration = Duration::from_millis(300);
/// How often each subscriber's bandwidth is allocated among the tracks it receives.
pub(crate) const ALLOCATION_INTERVAL: Duration = Duration::from_millis(500);

/// A deadline that recurs at a fixed interval.
#[derive(Debug)]
struct Periodic {
    next: Instant,
    interval: Duration,
}

impl Periodic {
    fn new(now: Instant, interval: Duration) -> Self {
        Periodic {
            next: now + interval,
            interval,
        }
    }

    /// True (once per interval) when it is due.
    fn due(&mut self, now: Instant) -> bool {
        if now >= self.next {
            self.next = now + self.interval;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Local)>>,
    housekeeping: Periodic,
    speakers: Periodic,
    allocation: Periodic,
    /// Tracks with a keyframe request deferred by the throttle.
    keyframe_pending: Vec<TrackRef>,
}

impl Timers {
    pub fn new(now: Instant) -> Self {
        Timers {
            heap: BinaryHeap::new(),
            housekeeping: Periodic::new(now, HOUSEKEEPING_INTERVAL),
            speakers: Periodic::new(now, SPEAKER_INTERVAL),
            allocation: Periodic::new(now, ALLOCATION_INTERVAL),
            keyframe_pending: Vec::new(),
        }
    }

    /// Record a participant's new deadline (the caller keeps the current one to compare).
    pub fn schedule(&mut self, local: Local, at: Instant) {
        self.heap.push(Reverse((at, local)));
    }

    /// Pop every entry due at `now` into `due` (the caller checks each against the participant's
    /// current deadline).
    pub fn pop_due(&mut self, now: Instant, due: &mut Vec<(Instant, Local)>) {
        while let Some(Reverse((at, local))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            due.push((at, local));
        }
    }

    /// True (once per interval) when housekeeping is due.
    pub fn housekeeping_due(&mut self, now: Instant) -> bool {
        self.housekeeping.due(now)
    }

    /// True (once per interval) when the rooms' speakers are due to be ranked.
    pub fn speakers_due(&mut self, now: Instant) -> bool {
        self.speakers.due(now)
    }

    /// True (once per interval) when the subscribers' bandwidth is due to be allocated.
    pub fn allocation_due(&mut self, now: Instant) -> bool {
        self.allocation.due(now)
    }

    pub fn defer_keyframe(&mut self, track: TrackRef) {
        if !self.keyframe_pending.contains(&track) {
            self.keyframe_pending.push(track);
        }
    }

    pub fn take_keyframes(&mut self) -> Vec<TrackRef> {
        std::mem::take(&mut self.keyframe_pending)
    }

    pub fn forget_keyframe(&mut self, track: TrackRef) {
        self.keyframe_pending.retain(|t| *t != track);
    }

    pub fn keyframes_pending(&self) -> &[TrackRef] {
        &self.keyframe_pending
    }

    /// The earliest of the periodic times and the first participant deadline
    /// (keyframe deadlines are added by the caller, which knows the throttles).
    pub fn next(&self) -> Instant {
        let periodic = self
            .housekeeping
            .next
            .min(self.speakers.next)
            .min(self.allocation.next);
        match self.heap.peek() {
            Some(Reverse((at, _))) => periodic.min(*at),
            None => periodic,
        }
    }
}
