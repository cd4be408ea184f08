//! A per-participant budget for the datagrams it sends: one client flooding its own path must
//! not take the shard's time from everybody else's media.
//!
//! A token bucket with integer arithmetic on the shard's clock: `RATE` datagrams a second with a
//! burst of `BURST`. A 2.5 Mbit/s video stream is ~260 packets/s and three simulcast layers with
//! audio stay under 1 000/s; a keyframe of a large screen share comes as a burst of a few
//! hundred. Datagrams beyond the budget are dropped before they reach the engine and counted;
//! the sender is told once per [`NOTICE_EVERY`].

use std::time::{Duration, Instant};

/// Datagrams per second a participant may send.
pub(crate) const RATE: u64 = 5_000;
/// Datagrams a participant may send at once after being quiet.
pub(crate) const BURST: u64 = 2_500;
/// At most one `rateLimited` notice per this interval.
pub(crate) const NOTICE_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct IngressBudget {
    /// Tokens a second, and the most that can be saved up.
    rate: u64,
    burst: u64,
    /// Tokens, in thousandths (so a refill every microsecond-ish adds up).
    milli_tokens: u64,
    at: Instant,
    last_notice: Option<Instant>,
    pub dropped: u64,
}

/// What to do with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    Drop,
    /// Drop, and tell the sender (first drop in a while).
    DropAndNotify,
}

impl IngressBudget {
    /// The datagram budget.
    pub fn new(now: Instant) -> Self {
        Self::with_rate(now, RATE, BURST)
    }

    /// A budget of `rate` tokens a second with a burst of `burst` (the data-channel relay counts
    /// bytes with it).
    pub fn with_rate(now: Instant, rate: u64, burst: u64) -> Self {
        IngressBudget {
            rate,
            burst,
            milli_tokens: burst * 1000,
            at: now,
            last_notice: None,
            dropped: 0,
        }
    }

    pub fn take(&mut self, now: Instant) -> Verdict {
        self.take_n(now, 1)
    }

    /// Charge `cost` tokens at once (all or nothing).
    pub fn take_n(&mut self, now: Instant, cost: u64) -> Verdict {
        let elapsed = now.saturating_duration_since(self.at);
        if !elapsed.is_zero() {
            // `rate` tokens per second = `rate` milli-tokens per millisecond.
            let refill = (elapsed.as_micros() as u64).saturating_mul(self.rate) / 1000;
            self.milli_tokens = (self.milli_tokens.saturating_add(refill)).min(self.burst * 1000);
            self.at = now;
        }
        let cost = cost.saturating_mul(1000);
        if self.milli_tokens >= cost {
            self.milli_tokens -= cost;
            return Verdict::Pass;
        }
        self.dropped += 1;
        match self.last_notice {
            Some(at) if now.saturating_duration_since(at) < NOTICE_EVERY => Verdict::Drop,
            _ => {
                self.last_notice = Some(now);
                Verdict::DropAndNotify
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_rate_and_noticed_once() {
        let t0 = Instant::now();
        let mut b = IngressBudget::new(t0);
        let passed = (0..BURST).filter(|_| b.take(t0) == Verdict::Pass).count() as u64;
        assert_eq!(passed, BURST, "a burst passes");
        assert_eq!(b.take(t0), Verdict::DropAndNotify);
        assert_eq!(b.take(t0), Verdict::Drop, "noticed once");
        // One second of flooding at 20 000/s lets RATE through.
        let mut passed = 0;
        for i in 1..=20_000u64 {
            if b.take(t0 + Duration::from_micros(i * 50)) == Verdict::Pass {
                passed += 1;
            }
        }
        assert!((RATE - 5..=RATE + 5).contains(&passed), "{passed}");
        // A steady legitimate stream never drops.
        let mut b = IngressBudget::new(t0);
        for i in 0..10_000u64 {
            assert_eq!(b.take(t0 + Duration::from_millis(i)), Verdict::Pass);
        }
    }
}
