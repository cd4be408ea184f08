//! Which participant a datagram belongs to.
//!
//! A known source address maps straight to its participant. A new address must be STUN whose
//! USERNAME names one of our ICE ufrags (`stun.rs`), and it is mapped only after that
//! participant's engine has checked the message integrity (`Rtc::accepts`, done by the caller).
//! No scan over participants, ever.
//!
//! A participant may be reached on a few addresses at once (candidate pairs, NAT rebinding, a
//! Wi-Fi to cellular move). When its table is full, a new path may only take the place of one that
//! has been silent for [`STALE_AFTER`]: a path that carries traffic is never evicted. A burst of
//! STUN replayed from spoofed source addresses therefore fills at most the free places and then
//! bounces off, while the path the participant actually uses keeps working.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::interface::Transport;
use super::participant::Local;
use crate::hash::FastMap;

/// One way a participant is reached: a UDP address, or a TCP connection (named by its remote
/// address; a UDP and a TCP path may share an address and still be two paths).
pub(crate) type Remote = (Transport, SocketAddr);

/// Most remote addresses one participant may be reached on at once.
pub(crate) const MAX_ADDRS_PER_PARTICIPANT: usize = 8;

/// A mapped path with no datagram for this long may be replaced by a new one. Every live
/// WebRTC peer sends something at least every few seconds (RTCP reports every 1-5 s, ICE consent
/// checks every 5 s), so this is well above the quiet time of a live path.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Path {
    local: Local,
    last_seen: Instant,
}

/// What became of a new path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Mapped, in a free place.
    Mapped,
    /// Mapped in place of a silent path, which is forgotten.
    Replaced(Remote),
    /// Every place carries live traffic; the new path is not mapped.
    Full,
}

#[derive(Debug, Default)]
pub(crate) struct Demux {
    by_addr: FastMap<Remote, Path>,
    /// Attacker-chosen strings are hashed here, so this map keeps std's keyed SipHash.
    by_ufrag: HashMap<String, Local>,
}

impl Demux {
    /// The participant a known address belongs to; refreshes the path's activity.
    pub fn lookup(&mut self, source: Remote, now: Instant) -> Option<Local> {
        let path = self.by_addr.get_mut(&source)?;
        path.last_seen = now;
        Some(path.local)
    }

    pub fn by_ufrag(&self, ufrag: &str) -> Option<Local> {
        self.by_ufrag.get(ufrag).copied()
    }

    pub fn add_ufrag(&mut self, ufrag: String, local: Local) {
        self.by_ufrag.insert(ufrag, local);
    }

    /// After an ICE restart the old ufrag names nobody.
    pub fn forget_ufrag(&mut self, local: Local, ufrag: &str) {
        if self.by_ufrag.get(ufrag) == Some(&local) {
            self.by_ufrag.remove(ufrag);
        }
    }

    /// Map an authenticated new path of `local`, whose current paths are `addrs` (updated).
    pub fn admit(
        &mut self,
        local: Local,
        source: Remote,
        addrs: &mut Vec<Remote>,
        now: Instant,
    ) -> Admit {
        let mut outcome = Admit::Mapped;
        if addrs.len() >= MAX_ADDRS_PER_PARTICIPANT {
            let quietest = addrs
                .iter()
                .enumerate()
                .min_by_key(|(_, a)| self.by_addr.get(a).map(|p| p.last_seen))
                .map(|(i, a)| (i, *a));
            let Some((i, old)) = quietest else {
                return Admit::Full;
            };
            let silent = self
                .by_addr
                .get(&old)
                .is_none_or(|p| now.saturating_duration_since(p.last_seen) >= STALE_AFTER);
            if !silent {
                return Admit::Full;
            }
            addrs.swap_remove(i);
            self.by_addr.remove(&old);
            outcome = Admit::Replaced(old);
        }
        addrs.push(source);
        self.by_addr.insert(
            source,
            Path {
                local,
                last_seen: now,
            },
        );
        outcome
    }

    /// Forget everything of a participant that is leaving.
    pub fn forget(&mut self, local: Local, ufrag: &str, addrs: &[Remote]) {
        if self.by_ufrag.get(ufrag) == Some(&local) {
            self.by_ufrag.remove(ufrag);
        }
        for addr in addrs {
            if self.by_addr.get(addr).is_some_and(|p| p.local == local) {
                self.by_addr.remove(addr);
            }
        }
    }

    #[cfg(test)]
    pub fn paths(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::slab::Slab;

    fn addr(port: u16) -> Remote {
        (Transport::Udp, SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn a_tcp_path_and_a_udp_path_on_one_address_are_two_paths() {
        let mut slab = Slab::default();
        let (me, other) = (Local(slab.insert(())), Local(slab.insert(())));
        let mut demux = Demux::default();
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        let t0 = Instant::now();
        let (_, a) = addr(5);
        assert_eq!(
            demux.admit(me, (Transport::Udp, a), &mut mine, t0),
            Admit::Mapped
        );
        assert_eq!(
            demux.admit(other, (Transport::Tcp, a), &mut theirs, t0),
            Admit::Mapped
        );
        assert_eq!(demux.lookup((Transport::Udp, a), t0), Some(me));
        assert_eq!(demux.lookup((Transport::Tcp, a), t0), Some(other));
        demux.forget(other, "u", &theirs);
        assert_eq!(demux.lookup((Transport::Tcp, a), t0), None);
        assert_eq!(demux.lookup((Transport::Udp, a), t0), Some(me));
    }

    #[test]
    fn a_spoofed_burst_never_evicts_the_live_path() {
        let mut slab = Slab::default();
        let me = Local(slab.insert(()));
        let mut demux = Demux::default();
        let mut addrs = Vec::new();
        let t0 = Instant::now();
        assert_eq!(demux.admit(me, addr(1), &mut addrs, t0), Admit::Mapped);
        // A thousand spoofed, replayed STUN checks from fresh addresses, while the real path
        // keeps sending.
        let mut now = t0;
        for port in 1000..2000 {
            now += Duration::from_millis(1);
            assert_eq!(demux.lookup(addr(1), now), Some(me));
            demux.admit(me, addr(port), &mut addrs, now);
        }
        assert_eq!(
            demux.lookup(addr(1), now),
            Some(me),
            "the live path survives"
        );
        assert_eq!(addrs.len(), MAX_ADDRS_PER_PARTICIPANT);
        assert_eq!(demux.paths(), MAX_ADDRS_PER_PARTICIPANT);

        // Later the participant really moves: once the spoofed paths have gone silent, the new
        // path takes one of their places.
        now += STALE_AFTER;
        assert_eq!(demux.lookup(addr(1), now), Some(me));
        assert!(matches!(
            demux.admit(me, addr(7), &mut addrs, now),
            Admit::Replaced(old) if old != addr(1)
        ));
        assert_eq!(demux.lookup(addr(7), now), Some(me));
        demux.forget(me, "u", &addrs);
        assert_eq!(demux.paths(), 0);
    }
}
