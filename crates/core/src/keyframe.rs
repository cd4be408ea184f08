//! Keyframe-request coalescing per published track.
//!
//! Every subscriber of a video track may ask for a keyframe (loss, a new subscriber, a decoder
//! reset). Passing each request on would make the publisher's encoder emit a keyframe storm, so
//! requests are passed at most once per `interval`; requests inside the interval are remembered
//! and sent when it ends, so nobody's request is lost.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    interval: Duration,
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyframeThrottle {
    pub fn new(interval: Duration) -> Self {
        KeyframeThrottle {
            interval,
            last_sent: None,
            pending: false,
        }
    }

    /// A subscriber asks. True: send a request to the publisher now.
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last_sent {
            Some(at) if now < at + self.interval => {
                self.pending = true;
                false
            }
            _ => {
                self.last_sent = Some(now);
                self.pending = false;
                true
            }
        }
    }

    /// When a deferred request becomes due, if one is waiting.
    pub fn due_at(&self) -> Option<Instant> {
        if !self.pending {
            return None;
        }
        // `pending` is only set while `last_sent` is known.
        self.last_sent.map(|at| at + self.interval)
    }

    /// Time passes. True: a deferred request is due and must be sent now.
    pub fn poll(&mut self, now: Instant) -> bool {
        match self.due_at() {
            Some(due) if now >= due => {
                self.last_sent = Some(now);
                self.pending = false;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_collapses_to_two_requests() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::new(Duration::from_millis(300));
        assert!(k.request(t0));
        for ms in 1..50 {
            assert!(!k.request(t0 + Duration::from_millis(ms)));
        }
        assert_eq!(k.due_at(), Some(t0 + Duration::from_millis(300)));
        assert!(!k.poll(t0 + Duration::from_millis(299)));
        assert!(k.poll(t0 + Duration::from_millis(300)));
        assert!(!k.poll(t0 + Duration::from_millis(900)));
        assert_eq!(k.due_at(), None);
        assert!(k.request(t0 + Duration::from_millis(601)));
    }
}
