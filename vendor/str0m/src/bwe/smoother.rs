use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rtp_::Bitrate;

/// Time window for averaging estimate changes.
const ESTIMATE_WINDOW: Duration = Duration::from_secs(3);

/// Estimates recorded this close after the newest bucket's start join that bucket.
///
/// Estimates change with every feedback report and timeout, well over a thousand times a
/// second on a busy session: one entry each held 3 s of them, about 100 KB per session, which
/// an SFU pays for every participant. Buckets of 25 ms hold at most 121 entries (4 KB); the
/// average is the same (every estimate still counts once), and an estimate leaves the window
/// at most 25 ms early.
const BUCKET: Duration = Duration::from_millis(25);

const TOLERANCE: f64 = 0.05;

/// The estimates recorded in one bucket's 10 ms.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    start: Instant,
    sum: f64,
    count: u32,
    last: Bitrate,
}

/// Smooths BWE estimates by averaging over a time window.
pub struct EstimateSmoother {
    buckets: VecDeque<Bucket>,
    /// Sum of the window's estimates, kept as buckets come and go: `poll` runs on every
    /// `poll_output`, and summing the window there cost an SFU 3 % of its time.
    total: f64,
    /// How many estimates the window holds.
    count: u64,
    maybe_emit: bool,
    emitted: Option<Bitrate>,
}

impl EstimateSmoother {
    pub fn new() -> Self {
        Self {
            buckets: VecDeque::new(),
            total: 0.0,
            count: 0,
            maybe_emit: false,
            emitted: None,
        }
    }

    /// Record a new estimate and update the smoothed average.
    pub fn record(&mut self, now: Instant, estimate: Bitrate) {
        // Did value change from previous?
        let do_update = self.buckets.back().map(|b| b.last) != Some(estimate);

        if do_update {
            self.maybe_emit = true;
            self.total += estimate.as_f64();
            self.count += 1;
            match self.buckets.back_mut() {
                Some(b) if now >= b.start && now - b.start < BUCKET => {
                    b.sum += estimate.as_f64();
                    b.count += 1;
                    b.last = estimate;
                }
                _ => self.buckets.push_back(Bucket {
                    start: now,
                    sum: estimate.as_f64(),
                    count: 1,
                    last: estimate,
                }),
            }
        }

        // Remove entries older than the window.
        let mut len = self.buckets.len();
        while let Some(front) = self.buckets.front_mut() {
            if now.duration_since(front.start) <= ESTIMATE_WINDOW {
                break;
            }
            if len == 1 {
                // Keep the last estimate, alone.
                if front.count > 1 {
                    *front = Bucket {
                        sum: front.last.as_f64(),
                        count: 1,
                        ..*front
                    };
                    self.maybe_emit = true;
                }
                break;
            }
            self.maybe_emit = true;
            if let Some(gone) = self.buckets.pop_front() {
                self.total -= gone.sum;
                self.count -= u64::from(gone.count);
                len -= 1;
            }
        }

        // Rounding in the running sum must not build up: exact again whenever one bucket is left.
        if let (Some(only), 1) = (self.buckets.front(), self.buckets.len()) {
            self.total = only.sum;
            self.count = u64::from(only.count);
        }
    }

    /// Poll for an estimate to emit. Returns Some only when there's a new value to emit.
    pub fn poll(&mut self) -> Option<Bitrate> {
        if !self.maybe_emit {
            return None;
        }

        if self.count == 0 {
            return None;
        }

        let avg = self.total / self.count as f64;
        let rate: Bitrate = avg.into();

        // This forces emitting if we have the first ever value, or a last
        // where the rest of the window is gone (estimates stop coming).
        let force = self.count == 1 && self.emitted != Some(rate);

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

    /// The estimates a per-estimate window would hold at `now`, given every one recorded.
    fn window_of(recorded: &[(Instant, u64)], now: Instant) -> Vec<u64> {
        let kept: Vec<u64> = recorded
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= ESTIMATE_WINDOW)
            .map(|(_, v)| *v)
            .collect();
        if kept.is_empty() {
            recorded.last().map(|(_, v)| *v).into_iter().collect()
        } else {
            kept
        }
    }

    #[test]
    fn running_total_matches_the_window() {
        let mut s = EstimateSmoother::new();
        let t0 = Instant::now();
        let mut last = None;
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_millis(7 * i);
            s.record(now, Bitrate::bps(1_000_000 + (i * 7919) % 500_000));
            let naive: f64 = s.buckets.iter().map(|b| b.sum).sum();
            assert!((s.total - naive).abs() < 1e-3, "{} vs {naive}", s.total);
            let counted: u64 = s.buckets.iter().map(|b| u64::from(b.count)).sum();
            assert_eq!(s.count, counted);
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
        assert_eq!((s.buckets.len(), s.count), (1, 1));
        assert_eq!(
            s.poll().map(|b| b.as_u64()),
            Some(1_000_000 + (9_999 * 7919) % 500_000)
        );
    }

    #[test]
    fn buckets_average_like_single_estimates() {
        let mut s = EstimateSmoother::new();
        let t0 = Instant::now();
        let mut recorded = vec![];
        // Two estimates a millisecond, each different: 6 000 in the window at once.
        for i in 0..20_000u64 {
            let now = t0 + Duration::from_micros(500 * i);
            let v = 2_000_000 + (i * 104_729) % 1_000_000;
            s.record(now, Bitrate::bps(v));
            recorded.push((now, v));
            assert!(s.buckets.len() <= 122, "{} buckets", s.buckets.len());
            if i % 997 == 0 {
                let window = window_of(&recorded, now);
                let exact = window.iter().sum::<u64>() as f64 / window.len() as f64;
                let ours = s.total / s.count as f64;
                // At most 25 ms of estimates leave early: 50 of 6 000.
                assert!(
                    (ours - exact).abs() / exact < 0.005,
                    "{ours} against {exact} at {i}"
                );
            }
        }
    }

    #[test]
    fn a_bucket_left_alone_keeps_only_its_last_estimate() {
        let mut s = EstimateSmoother::new();
        let t0 = Instant::now();
        s.record(t0, Bitrate::bps(1_000_000));
        s.record(t0 + Duration::from_millis(1), Bitrate::bps(3_000_000));
        assert_eq!(s.poll().map(|b| b.as_u64()), Some(2_000_000));
        // Nothing new for longer than the window: the last estimate stands alone.
        s.record(t0 + Duration::from_secs(5), Bitrate::bps(3_000_000));
        assert_eq!((s.buckets.len(), s.count), (1, 1));
        assert_eq!(s.poll().map(|b| b.as_u64()), Some(3_000_000));
    }
}
