//! A capped downlink: datagrams from the server to one client pass a bottleneck of a set rate
//! with a drop-tail queue and a fixed delay, as a congested access link does. Deterministic:
//! the same traffic gives the same drops.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use switchboard_core::Transport;

use super::Sim;

/// The longest a datagram may wait in the bottleneck's queue; later ones are dropped.
const QUEUE_LIMIT: Duration = Duration::from_millis(150);
/// One-way delay after the bottleneck.
const DELAY: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub struct Link {
    /// Bits per second; `None`: the cap is lifted (what is queued still drains).
    pub rate: Option<u64>,
    busy_until: Option<Instant>,
    queue: VecDeque<(Instant, Transport, Vec<u8>)>,
    pub dropped: u64,
    pub passed: u64,
}

impl Link {
    pub fn new(rate: u64) -> Self {
        Link {
            rate: Some(rate),
            busy_until: None,
            queue: VecDeque::new(),
            dropped: 0,
            passed: 0,
        }
    }

    /// A datagram enters the link now.
    pub fn push(&mut self, now: Instant, transport: Transport, data: Vec<u8>) {
        let Some(rate) = self.rate else {
            self.queue.push_back((now + DELAY, transport, data));
            self.passed += 1;
            return;
        };
        let start = self.busy_until.map_or(now, |b| b.max(now));
        if start.saturating_duration_since(now) > QUEUE_LIMIT {
            self.dropped += 1;
            return;
        }
        let bits = (data.len() as u64 + 28) * 8;
        let done = start + Duration::from_micros(bits * 1_000_000 / rate.max(1));
        self.busy_until = Some(done);
        self.queue.push_back((done + DELAY, transport, data));
        self.passed += 1;
    }

    /// Datagrams that leave the link by `now`, in order.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Transport, Vec<u8>)> {
        match self.queue.front() {
            Some((at, _, _)) if *at <= now => self.queue.pop_front().map(|(_, t, d)| (t, d)),
            _ => None,
        }
    }
}

impl Sim {
    /// Cap the downlink from the server to `name` at `rate` bits per second (`None`: no cap,
    /// only the link's delay).
    pub fn set_downlink(&mut self, name: &str, rate: Option<u64>) {
        let addr = self.client(name).addr;
        match self.links.get_mut(&addr) {
            Some(link) => link.rate = rate,
            None => {
                let mut link = Link::new(0);
                link.rate = rate;
                self.links.insert(addr, link);
            }
        }
    }

    pub fn downlink(&self, name: &str) -> Option<&Link> {
        self.links.get(&self.client(name).addr)
    }

    /// Move datagrams that left their links into the delivery queue.
    pub(super) fn release_links(&mut self) {
        let now = self.now;
        let mut out: Vec<(Transport, SocketAddr, Vec<u8>)> = Vec::new();
        for (addr, link) in self.links.iter_mut() {
            while let Some((transport, data)) = link.pop_due(now) {
                out.push((transport, *addr, data));
            }
        }
        for item in out {
            self.released.push_back(item);
        }
    }
}
