//! Rate and count limits of the signalling plane: joins per client address, WebSocket
//! connections per address and in total, and data messages per connection.
//!
//! Client addresses are keyed by [`client_key`]: an IPv4 address as it is, an IPv6 address by
//! its /64 prefix (one subscriber line or host usually gets a whole /64, so counting single IPv6
//! addresses would let one client take 2^64 of them).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// The key limits count a client under.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// A token bucket refilled continuously: `capacity` tokens, `per_sec` back each second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(capacity: f64, now: Instant) -> Self {
        Bucket {
            tokens: capacity,
            at: now,
        }
    }

    /// Take `cost` tokens if there are that many.
    pub fn take(&mut self, cost: f64, capacity: f64, per_sec: f64, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * per_sec;
        self.tokens = (self.tokens + refill).min(capacity);
        self.at = now;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// Addresses remembered per generation of the join limiter.
const GENERATION: usize = 32_768;

/// Joins per client address: a token bucket per address.
///
/// The buckets live in two generations: when the current one holds [`GENERATION`] addresses it
/// becomes the previous one and the older is dropped, so memory is bounded and every join costs
/// O(1) however many addresses come (no scan for full buckets). An address seen in the previous
/// generation carries its bucket over. Forgetting an old bucket only ever gives that address its
/// full allowance back, never less.
#[derive(Debug)]
pub(crate) struct JoinRate {
    per_minute: u32,
    inner: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<IpAddr, Bucket>,
    previous: HashMap<IpAddr, Bucket>,
}

impl JoinRate {
    pub fn new(per_minute: u32) -> Self {
        JoinRate {
            per_minute,
            inner: Mutex::new(Generations::default()),
        }
    }

    /// Take one join from `ip`'s bucket. False: over the limit.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let key = client_key(ip);
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let mut g = self.inner.lock();
        if !g.current.contains_key(&key) {
            let carried = g.previous.remove(&key);
            if g.current.len() >= GENERATION {
                // Dropping the older generation is O(its size), once per GENERATION new
                // addresses: O(1) per join on average.
                g.previous = std::mem::take(&mut g.current);
            }
            g.current
                .insert(key, carried.unwrap_or_else(|| Bucket::full(capacity, now)));
        }
        let Some(bucket) = g.current.get_mut(&key) else {
            return false;
        };
        bucket.take(1.0, capacity, per_sec, now)
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        let g = self.inner.lock();
        g.current.len() + g.previous.len()
    }
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionRefusal {
    /// The server holds its maximum of signalling connections.
    Total(usize),
    /// This client address (IPv6: its /64) holds its maximum.
    PerAddress(usize),
}

/// Open signalling connections, in total and per client address.
#[derive(Debug)]
pub(crate) struct Connections {
    max_total: usize,
    max_per_address: usize,
    inner: Mutex<ConnectionCounts>,
}

#[derive(Debug, Default)]
struct ConnectionCounts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    owner: Arc<Connections>,
    key: Option<IpAddr>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.owner.inner.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(key) = self.key {
            if let Some(n) = c.by_address.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    c.by_address.remove(&key);
                }
            }
        }
    }
}

impl Connections {
    /// 0 means unlimited for either bound.
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Connections {
            max_total,
            max_per_address,
            inner: Mutex::new(ConnectionCounts::default()),
        })
    }

    pub fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
    ) -> Result<ConnectionSlot, ConnectionRefusal> {
        let key = ip.map(client_key);
        let mut c = self.inner.lock();
        if self.max_total > 0 && c.total >= self.max_total {
            return Err(ConnectionRefusal::Total(self.max_total));
        }
        if let Some(key) = key {
            let n = c.by_address.entry(key).or_insert(0);
            if self.max_per_address > 0 && *n >= self.max_per_address {
                return Err(ConnectionRefusal::PerAddress(self.max_per_address));
            }
            *n += 1;
        }
        c.total += 1;
        Ok(ConnectionSlot {
            owner: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.inner.lock().total
    }
}

/// Data messages of one connection: a count bucket and a byte bucket, each a second's worth
/// deep (a short burst passes, a sustained flood does not).
#[derive(Debug)]
pub(crate) struct MessageRate {
    per_sec: f64,
    bytes_per_sec: f64,
    count: Bucket,
    bytes: Bucket,
}

impl MessageRate {
    /// 0 means unlimited for either rate.
    pub fn new(per_sec: u32, bytes_per_sec: u64, now: Instant) -> Self {
        MessageRate {
            per_sec: f64::from(per_sec),
            bytes_per_sec: bytes_per_sec as f64,
            count: Bucket::full(f64::from(per_sec), now),
            bytes: Bucket::full(bytes_per_sec as f64, now),
        }
    }

    /// May a message of `len` bytes pass now? A refused message costs nothing.
    pub fn allow(&mut self, len: usize, now: Instant) -> bool {
        let count_ok = self.per_sec == 0.0 || {
            let mut probe = self.count;
            probe.take(1.0, self.per_sec, self.per_sec, now)
        };
        let bytes_ok = self.bytes_per_sec == 0.0 || {
            let mut probe = self.bytes;
            probe.take(len as f64, self.bytes_per_sec, self.bytes_per_sec, now)
        };
        if !(count_ok && bytes_ok) {
            return false;
        }
        if self.per_sec > 0.0 {
            self.count.take(1.0, self.per_sec, self.per_sec, now);
        }
        if self.bytes_per_sec > 0.0 {
            self.bytes
                .take(len as f64, self.bytes_per_sec, self.bytes_per_sec, now);
        }
        true
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

    #[test]
    fn ipv6_counts_per_64_and_memory_is_bounded() {
        let rate = JoinRate::new(2);
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert!(rate.allow(a, t0));
        assert!(rate.allow(b, t0), "same /64, second join");
        assert!(!rate.allow(a, t0), "the /64 is out of joins");
        assert!(rate.allow(c, t0), "another /64");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(client_key(mapped), IpAddr::from([10, 0, 0, 1]));

        // A flood of distinct addresses: every call is O(1) and memory stays bounded.
        for i in 0..(3 * GENERATION as u32) {
            rate.allow(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(rate.remembered() <= 2 * GENERATION);
    }

    #[test]
    fn connections_per_address_and_total() {
        let c = Connections::new(3, 2);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let a = c.admit(Some(ip)).expect("first");
        let _b = c.admit(Some(ip)).expect("second");
        assert_eq!(
            c.admit(Some(ip)).map(|_| ()),
            Err(ConnectionRefusal::PerAddress(2))
        );
        let _other = c
            .admit(Some([10, 0, 0, 2].into()))
            .expect("another address");
        assert_eq!(
            c.admit(Some([10, 0, 0, 3].into())).map(|_| ()),
            Err(ConnectionRefusal::Total(3))
        );
        drop(a);
        assert_eq!(c.open(), 2);
        assert!(
            c.admit(Some(ip)).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn message_rate_counts_messages_and_bytes() {
        let t0 = Instant::now();
        let mut r = MessageRate::new(5, 1000, t0);
        for _ in 0..5 {
            assert!(r.allow(10, t0));
        }
        assert!(!r.allow(10, t0), "sixth message in the same second");
        let t1 = t0 + Duration::from_secs(1);
        assert!(!r.allow(2000, t1), "larger than a second of bytes");
        assert!(r.allow(900, t1), "a refused message cost nothing");
        assert!(!r.allow(200, t1), "bytes ran out");
        let mut unlimited = MessageRate::new(0, 0, t0);
        assert!((0..10_000).all(|_| unlimited.allow(1 << 20, t0)));
    }
}
