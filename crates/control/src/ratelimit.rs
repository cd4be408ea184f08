//! Joins per client address: a token bucket per IP, refilled continuously.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use parking_lot::Mutex;

/// Addresses remembered at most; full buckets are forgotten first when it fills.
const MAX_TRACKED: usize = 65_536;

#[derive(Debug)]
pub(crate) struct JoinRate {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl JoinRate {
    pub fn new(per_minute: u32) -> Self {
        JoinRate {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one join from `ip`'s bucket. False: over the limit.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * per_sec < capacity
            });
            if buckets.len() >= MAX_TRACKED {
                return false;
            }
        }
        let (tokens, at) = buckets.entry(ip).or_insert((capacity, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * per_sec;
        *tokens = (*tokens + refill).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills() {
        let rate = JoinRate::new(3);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        assert!(rate.allow(ip, t0));
        assert!(rate.allow(ip, t0));
        assert!(rate.allow(ip, t0));
        assert!(!rate.allow(ip, t0), "fourth join in the same instant");
        assert!(
            rate.allow(other, t0),
            "other addresses have their own bucket"
        );
        // 3 per minute = one every 20 s.
        assert!(!rate.allow(ip, t0 + Duration::from_secs(19)));
        assert!(rate.allow(ip, t0 + Duration::from_secs(41)));
        assert!(JoinRate::new(0).allow(ip, t0), "0 = unlimited");
    }
}
