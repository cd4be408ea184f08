//! Dynacast: a publisher encodes only the simulcast layers somebody receives. This module is
//! the decision, free of IO: from the layers of one track (in quality order) and the best one
//! any subscriber wants, which layers the publisher should send, and when to tell it.
//!
//! A subscriber "wants" the layer its preference (`setTrackQuality`, default `high`) names, and
//! the publisher keeps every layer up to the best one wanted: a subscriber whose link cannot
//! carry its layer then still has lower ones to fall back to (the allocator picks among the
//! layers that flow). A layer turns on at once (someone waits for it) and off only after nobody
//! wanted it for [`HOLD`]: a subscriber that resizes a tile back and forth, or leaves and joins
//! again, does not make the encoder stop and start (each start costs a keyframe).

use std::time::{Duration, Instant};

/// How long a layer goes unwanted before the publisher is told to stop it.
pub const HOLD: Duration = Duration::from_secs(3);

/// Which layers to send (indexed like the track's layers), given the layers' indices in quality
/// order (lowest first) and the best quality rank any subscriber wants (`None`: nobody
/// subscribes, so nothing is sent).
pub fn wanted_layers(quality_order: &[usize], best_wanted: Option<usize>) -> Vec<bool> {
    let mut wanted = vec![false; quality_order.len()];
    if let Some(best) = best_wanted {
        for &index in quality_order.iter().take(best + 1) {
            if let Some(w) = wanted.get_mut(index) {
                *w = true;
            }
        }
    }
    wanted
}

/// What one track's publisher was told, and since when it sends more than is wanted.
#[derive(Debug, Default)]
pub struct Dynacast {
    /// The layers it was last told to send (`None`: told nothing, so it sends all of them).
    told: Option<Vec<bool>>,
    /// Since when some layer it sends is not wanted.
    unwanted_since: Option<Instant>,
    /// Tell it again at the next decision even if nothing changed (its connection was replaced
    /// and the last message may be lost).
    resend: bool,
}

impl Dynacast {
    /// Forget what was told: the publisher's m-line changed and its encoder starts afresh.
    pub fn reset(&mut self) {
        *self = Dynacast::default();
    }

    /// The layers it was last told to send (`None`: told nothing).
    pub fn told(&self) -> Option<&[bool]> {
        self.told.as_deref()
    }

    /// Tell the publisher the current state again at the next decision.
    pub fn resend(&mut self) {
        self.resend = self.told.is_some();
    }

    /// The layers the publisher should now be told to send, if that differs from what it was
    /// told (or a resend is due). `wanted` is [`wanted_layers`]'s answer.
    pub fn decide(&mut self, wanted: &[bool], now: Instant) -> Option<Vec<bool>> {
        let mut current = self.told.clone().unwrap_or_default();
        // Layers it was told nothing about (new, or nothing told yet) are sent.
        current.resize(wanted.len(), true);
        let lower = current.iter().zip(wanted).any(|(&c, &w)| c && !w);
        let raise = current.iter().zip(wanted).any(|(&c, &w)| !c && w);
        let since = match (lower, self.unwanted_since) {
            (false, _) => {
                self.unwanted_since = None;
                None
            }
            (true, Some(since)) => Some(since),
            (true, None) => {
                self.unwanted_since = Some(now);
                Some(now)
            }
        };
        let next = if since.is_some_and(|s| now.saturating_duration_since(s) >= HOLD) {
            self.unwanted_since = None;
            wanted.to_vec()
        } else if raise {
            current.iter().zip(wanted).map(|(&c, &w)| c || w).collect()
        } else {
            current
        };
        let changed = match &self.told {
            Some(told) => *told != next,
            // Untold, it sends everything: only a layer to stop is news.
            None => next.iter().any(|&on| !on),
        };
        if !changed && !std::mem::take(&mut self.resend) {
            return None;
        }
        self.resend = false;
        self.told = Some(next.clone());
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_layer_up_to_the_best_wanted() {
        // Layers stored as f, q, h (arrival order); quality order q, h, f.
        let order = [1, 2, 0];
        assert_eq!(wanted_layers(&order, None), vec![false, false, false]);
        assert_eq!(wanted_layers(&order, Some(0)), vec![false, true, false]);
        assert_eq!(wanted_layers(&order, Some(1)), vec![false, true, true]);
        assert_eq!(wanted_layers(&order, Some(2)), vec![true, true, true]);
        assert_eq!(wanted_layers(&order, Some(9)), vec![true, true, true]);
    }

    #[test]
    fn turns_layers_off_after_the_hold_and_on_at_once() {
        let t0 = Instant::now();
        let mut d = Dynacast::default();
        let all = [true, true, true];
        let low = [true, false, false];
        // Everything wanted, nothing told: the publisher already sends everything.
        assert_eq!(d.decide(&all, t0), None);
        // Only the low layer wanted: nothing until the hold has passed.
        assert_eq!(d.decide(&low, t0), None);
        assert_eq!(d.decide(&low, t0 + HOLD / 2), None);
        assert_eq!(d.decide(&low, t0 + HOLD), Some(low.to_vec()));
        assert_eq!(d.decide(&low, t0 + HOLD * 2), None);
        // Wanted again: at once.
        let t1 = t0 + HOLD * 3;
        assert_eq!(d.decide(&all, t1), Some(all.to_vec()));
        // A dip shorter than the hold changes nothing.
        assert_eq!(d.decide(&low, t1), None);
        assert_eq!(d.decide(&all, t1 + HOLD / 2), None);
        assert_eq!(d.decide(&low, t1 + HOLD * 2 / 3), None);
        assert_eq!(
            d.decide(&low, t1 + HOLD),
            None,
            "the hold restarted with the dip"
        );
    }

    #[test]
    fn raising_one_layer_does_not_wait_for_lowering_another() {
        let t0 = Instant::now();
        let mut d = Dynacast::default();
        assert_eq!(d.decide(&[true, false, false], t0), None);
        assert_eq!(
            d.decide(&[true, false, false], t0 + HOLD),
            Some(vec![true, false, false])
        );
        // Now the top is wanted and the bottom not (order changed under it): top on now, the
        // bottom stays until the hold.
        let t1 = t0 + HOLD * 2;
        assert_eq!(
            d.decide(&[false, false, true], t1),
            Some(vec![true, false, true])
        );
        assert_eq!(
            d.decide(&[false, false, true], t1 + HOLD),
            Some(vec![false, false, true])
        );
    }

    #[test]
    fn resend_repeats_what_was_told_and_reset_forgets_it() {
        let t0 = Instant::now();
        let mut d = Dynacast::default();
        d.resend();
        assert_eq!(
            d.decide(&[true, true], t0),
            None,
            "nothing told, nothing to repeat"
        );
        d.decide(&[true, false], t0);
        assert_eq!(d.decide(&[true, false], t0 + HOLD), Some(vec![true, false]));
        d.resend();
        assert_eq!(d.decide(&[true, false], t0 + HOLD), Some(vec![true, false]));
        assert_eq!(d.decide(&[true, false], t0 + HOLD), None);
        d.reset();
        assert_eq!(d.decide(&[true, true], t0 + HOLD), None);
    }
}
