use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rtp_::Bitrate;

/// Time window for averaging estimate changes.
const ESTIMATE_WINDOW: Duration = Duration::from_secs(3);

type TimeBitrate = (Instant, Bitrate);

const TOLERANCE: f64 = 0.05;

/// Smooths BWE estimates by averaging over a time window.
pub struct EstimateSmoother {
    estimates: VecDeque<TimeBitrate>,
    /// Sum of the window's estimates, kept as entries come and go: `poll` runs on every
    /// `poll_output`, and summing the window there cost an SFU 3 % of its time.
    total: f64,
    maybe_emit: bool,
    emitted: Option<Bitrate>,
}

impl EstimateSmoother {
    pub fn new() -> Self {
        Self {
            estimates: VecDeque::new(),
            total: 0.0,
            maybe_emit: false,
            emitted: None,
        }
    }

    /// Record a new estimate and update the smoothed average.
    pub fn record(&mut self, now: Instant, estimate: Bitrate) {
        // Did value change from previous?
        let do_update = self.estimates.back().map(|b| b.1) != Some(estimate);

        if do_update {
            self.maybe_emit = true;
            self.estimates.push_back((now, estimate));
            self.total += estimate.as_f64();
        }

        // Remove entries older than the window.
        while let Some((time, _)) = self.estimates.front() {
            if now.duration_since(*time) > ESTIMATE_WINDOW {
                // Keep last entry
                if self.estimates.len() == 1 {
                    break;
                }

                self.maybe_emit = true;
                if let Some((_, gone)) = self.estimates.pop_front() {
                    self.total -= gone.as_f64();
                }
            } else {
                break;
            }
        }

        // Rounding in the running sum must not build up: exact again whenever one entry is left.
        if self.estimates.len() == 1 {
            self.total = self.estimates.iter().map(|b| b.1.as_f64()).sum();
        }
    }

    /// Poll for an estimate to emit. Returns Some only when there's a new value to emit.
    pub fn poll(&mut self) -> Option<Bitrate> {
        if !self.maybe_emit {
            return None;
        }

        if self.estimates.is_empty() {
            return None;
        }

        let avg = self.total / self.estimates.len() as f64;
        let rate: Bitrate = avg.into();

        // This forces emitting if we have the first ever value, or a last
        // where the rest of the window is gone (estimates stop coming).
        let force = self.estimates.len() == 1 && self.emitted != Some(rate);

        // Emit if we deviate enough from previously emitted.
        let deviate = if let Some(emitted) = self.emitted {
            !in_tolerance(emitted, rate)
        } else {
            true
        };

        self.maybe_emit = false;

        // Are we not to emit?
        if !force && !deviate {
            return None;
        }

        self.emitted = Some(rate);
        Some(rate)
    }
}

fn in_tolerance(b1: Bitrate, b2: Bitrate) -> bool {
    let min = b1 * (1.0 - TOLERANCE);
    let max = b1 * (1.0 + TOLERANCE);
    b2 > min && b2 < max
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn running_total_matches_the_window() {
        let mut s = EstimateSmoother::new();
        let t0 = Instant::now();
        let mut last = None;
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_millis(7 * i);
            s.record(now, Bitrate::bps(1_000_000 + (i * 7919) % 500_000));
            let naive: f64 = s.estimates.iter().map(|b| b.1.as_f64()).sum();
            assert!((s.total - naive).abs() < 1e-3, "{} vs {naive}", s.total);
            if let Some(rate) = s.poll() {
                last = Some(rate);
            }
        }
        assert!(last.is_some());
        // Estimates stop: the window empties to its last entry, which is emitted.
        s.record(
            t0 + Duration::from_secs(200),
            Bitrate::bps(1_000_000 + (9_999 * 7919) % 500_000),
        );
        assert_eq!(s.estimates.len(), 1);
        assert_eq!(
            s.poll().map(|b| b.as_u64()),
            Some(1_000_000 + (9_999 * 7919) % 500_000)
        );
    }
}
