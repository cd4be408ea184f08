//! When str0m is next owed an `Input::Timeout`: at the deadline it asked for, and in any case
//! [`TIMEOUT_FLOOR`] after the last one it got.
//!
//! The floor exists because str0m may answer `poll_output` with a far-future `Output::Timeout`
//! while it still has work that only a timeout starts (ICE checks once the remote candidates
//! are in, for one). A loop that waits for that deadline never sends those checks: a peer SFU
//! never got ICE going with this client until the loop fed a timeout at least once a second.

use std::time::{Duration, Instant};

/// Longest time without an `Input::Timeout`, whatever str0m asked for.
pub(super) const TIMEOUT_FLOOR: Duration = Duration::from_secs(1);

/// The deadline str0m asked for and the time it was last given a timeout.
#[derive(Debug, Clone, Copy)]
pub(super) struct TimeoutClock {
    requested: Instant,
    last_fed: Instant,
}

impl TimeoutClock {
    /// A clock that is due at once (a fresh `Rtc` wants its first timeout now).
    pub(super) fn new(now: Instant) -> Self {
        TimeoutClock {
            requested: now,
            last_fed: now,
        }
    }

    /// str0m's `Output::Timeout(at)` (or "now" when the drain stopped with output left).
    pub(super) fn request(&mut self, at: Instant) {
        self.requested = at;
    }

    /// An `Input::Timeout(now)` was handed to str0m.
    pub(super) fn fed(&mut self, now: Instant) {
        self.last_fed = now;
    }

    /// When the next `Input::Timeout` is due: str0m's deadline, or the floor, whichever is first.
    pub(super) fn due_at(&self) -> Instant {
        self.requested.min(self.last_fed + TIMEOUT_FLOOR)
    }

    pub(super) fn is_due(&self, now: Instant) -> bool {
        self.due_at() <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_far_deadline_is_cut_to_the_floor() {
        let t0 = Instant::now();
        let mut c = TimeoutClock::new(t0);
        assert!(c.is_due(t0), "a fresh clock is due");
        c.fed(t0);
        // What str0m says when it has nothing scheduled.
        c.request(t0 + Duration::from_secs(3600));
        assert_eq!(c.due_at(), t0 + TIMEOUT_FLOOR);
        assert!(!c.is_due(t0 + Duration::from_millis(999)));
        assert!(c.is_due(t0 + TIMEOUT_FLOOR));
        // Feeding one moves the floor on; str0m's own deadline still wins when earlier.
        let t1 = t0 + TIMEOUT_FLOOR;
        c.fed(t1);
        assert_eq!(c.due_at(), t1 + TIMEOUT_FLOOR);
        c.request(t1 + Duration::from_millis(20));
        assert_eq!(c.due_at(), t1 + Duration::from_millis(20));
    }

    #[test]
    fn other_input_does_not_postpone_the_floor() {
        // Only `fed` moves the floor: a stream of received datagrams (which also drain str0m
        // and re-request a far deadline) must not keep the timeout away for ever.
        let t0 = Instant::now();
        let mut c = TimeoutClock::new(t0);
        c.fed(t0);
        for ms in (0..1500).step_by(100) {
            c.request(t0 + Duration::from_millis(ms) + Duration::from_secs(3600));
        }
        assert!(c.is_due(t0 + TIMEOUT_FLOOR));
    }
}
