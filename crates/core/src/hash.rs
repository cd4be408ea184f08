//! A fast, non-cryptographic hasher for the per-packet lookup maps.
//!
//! The standard `HashMap` uses SipHash, which is built to resist hash flooding and costs tens of
//! nanoseconds per lookup. The keys hashed here are chosen by the server (participant ids, SSRCs
//! owned by our own `Rtc`s) or are socket addresses, where a hostile client can only pick its own
//! port; so the per-packet maps use this multiply-rotate hash (the "Fx" scheme used by rustc).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn distinct_addresses_spread() {
        let mut map: FastMap<SocketAddr, u32> = FastMap::default();
        for port in 1000..3000u16 {
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            map.insert(addr, u32::from(port));
        }
        assert_eq!(map.len(), 2000);
        let probe: SocketAddr = ([127, 0, 0, 1], 2500).into();
        assert_eq!(map.get(&probe), Some(&2500));
    }
}
