//! Sequence-number and timestamp rewriting for one outgoing stream (a slot).
//!
//! A slot keeps one SSRC for its whole life while the source behind it changes (a new publisher
//! reuses a freed slot). The subscriber must see one continuous stream, so both counters are
//! rebased when the source changes and then follow the source with a fixed offset. An offset
//! (not a "next counter") keeps upstream gaps as gaps, so a late or retransmitted packet lands in
//! its hole instead of shifting everything after it.

use std::time::{Duration, Instant};

/// Extended (64-bit) RTP sequence numbers, as str0m hands them out and takes them in.
#[derive(Debug, Clone)]
pub struct SeqRewriter {
    /// First output after a rebase: `last_out + 1`, or `start` for a slot's first source.
    base_out: u64,
    /// The input sequence number that maps to `base_out`.
    base_in: u64,
    last_out: Option<u64>,
    rebase_pending: bool,
    start: u64,
}

impl SeqRewriter {
    /// `start` must be below 65 536: a new receiver's SRTP rollover counter starts at 0.
    pub fn new(start: u16) -> Self {
        SeqRewriter {
            base_out: u64::from(start),
            base_in: 0,
            last_out: None,
            rebase_pending: true,
            start: u64::from(start),
        }
    }

    /// The next packet starts a new source; it continues right after the last one written.
    pub fn rebase(&mut self) {
        self.rebase_pending = true;
    }

    /// Output sequence number for `input`, or `None` when the packet predates the current source
    /// (it belongs to the stretch before the last rebase, which the subscriber must not see).
    pub fn rewrite(&mut self, input: u64) -> Option<u64> {
        if self.rebase_pending {
            self.base_out = self.last_out.map_or(self.start, |last| last + 1);
            self.base_in = input;
            self.rebase_pending = false;
        }
        let delta = input.checked_sub(self.base_in)?;
        let out = self.base_out + delta;
        if self.last_out.is_none_or(|last| out > last) {
            self.last_out = Some(out);
        }
        Some(out)
    }
}

/// 32-bit RTP timestamps in the codec's clock rate.
#[derive(Debug, Clone)]
pub struct TsRewriter {
    offset: u32,
    /// Newest timestamp written and when, to continue after a rebase at "about now".
    last_out: Option<(u32, Instant)>,
    rebase_pending: bool,
    start: u32,
}

impl TsRewriter {
    pub fn new(start: u32) -> Self {
        TsRewriter {
            offset: 0,
            last_out: None,
            rebase_pending: true,
            start,
        }
    }

    pub fn rebase(&mut self) {
        self.rebase_pending = true;
    }

    pub fn rewrite(&mut self, input: u32, now: Instant, clock_rate: u32) -> u32 {
        if self.rebase_pending {
            let next = match self.last_out {
                None => self.start,
                Some((ts, at)) => {
                    let ticks = ticks(now.saturating_duration_since(at), clock_rate).max(1);
                    ts.wrapping_add(ticks)
                }
            };
            self.offset = next.wrapping_sub(input);
            self.rebase_pending = false;
        }
        let out = input.wrapping_add(self.offset);
        let newer = match self.last_out {
            None => true,
            Some((last, _)) => (out.wrapping_sub(last) as i32) > 0,
        };
        if newer {
            self.last_out = Some((out, now));
        }
        out
    }
}

fn ticks(elapsed: Duration, clock_rate: u32) -> u32 {
    let ticks = elapsed.as_micros() * u128::from(clock_rate) / 1_000_000;
    u32::try_from(ticks).unwrap_or(u32::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_follows_source_with_gaps_and_late_packets() {
        let mut r = SeqRewriter::new(1000);
        assert_eq!(r.rewrite(70_000), Some(1000));
        assert_eq!(r.rewrite(70_001), Some(1001));
        assert_eq!(r.rewrite(70_004), Some(1004)); // upstream gap stays a gap
        assert_eq!(r.rewrite(70_002), Some(1002)); // late packet fills its hole
        assert_eq!(r.rewrite(69_999), None); // before this source started for us
    }

    #[test]
    fn seq_continues_across_source_switch() {
        let mut r = SeqRewriter::new(10);
        assert_eq!(r.rewrite(500), Some(10));
        assert_eq!(r.rewrite(501), Some(11));
        r.rebase();
        assert_eq!(r.rewrite(9_000_000), Some(12));
        assert_eq!(r.rewrite(9_000_001), Some(13));
        // A straggler of the old source must not be written into the new source's range.
        assert_eq!(r.rewrite(502), None);
    }

    #[test]
    fn ts_continues_by_wall_time_across_switch() {
        let t0 = Instant::now();
        let mut r = TsRewriter::new(5000);
        assert_eq!(r.rewrite(1_000_000, t0, 90_000), 5000);
        assert_eq!(r.rewrite(1_003_000, t0, 90_000), 8000);
        r.rebase();
        let t1 = t0 + Duration::from_millis(100);
        // 100 ms at 90 kHz = 9000 ticks after the newest output.
        assert_eq!(r.rewrite(42, t1, 90_000), 17_000);
        assert_eq!(r.rewrite(42 + 3000, t1, 90_000), 20_000);
    }

    #[test]
    fn ts_wraps() {
        let t0 = Instant::now();
        let mut r = TsRewriter::new(u32::MAX - 10);
        assert_eq!(r.rewrite(0, t0, 48_000), u32::MAX - 10);
        assert_eq!(r.rewrite(960, t0, 48_000), 949);
        r.rebase();
        // Rebase right away still moves forward by at least one tick.
        assert_eq!(r.rewrite(7, t0, 48_000), 950);
    }
}
