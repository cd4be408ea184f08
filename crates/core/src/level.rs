//! Active speakers, the pure part: a level meter per audio track fed from the audio level
//! header extension (RFC 6464) of each packet, and the ranking of a room's speakers that the
//! shard announces (`shard/speakers.rs`). Nothing here looks at audio samples: the publisher's
//! encoder measured the level, and the server only reads one header byte per packet.
//!
//! The voice-activity flag of the same extension is not used: encoders set it from their own
//! voice detection, which differs between browsers and calls music or a tone silence.

use switchboard_protocol::{ActiveSpeaker, AudioLevel};

/// Weight of the previous interval in a smoothed level: a speaker at a usual voice level
/// (-30 dBov) who stops is dropped from the list three intervals (about a second) later, a
/// shout within two seconds, and one loud packet does not top the list.
const CARRY: f32 = 0.4;

/// A member quieter than this (-50 dBov as an amplitude) is not talking: background noise and
/// muted microphones stay below it, a quiet voice is above it.
pub const TALKING_MIN: f32 = 0.003_162;

/// At most this many speakers are named in one announcement.
pub const MAX_SPEAKERS: usize = 8;

/// The levels of one audio track's packets over the current interval, and the smoothed level
/// of the intervals before.
#[derive(Debug, Default, Clone, Copy)]
pub struct LevelMeter {
    sum: f32,
    packets: u32,
    smoothed: f32,
}

impl LevelMeter {
    /// One packet's level, in the extension's form: dBov from 0 (loudest) down to -127
    /// (silence), as str0m gives it. Positive values are treated as 0 dBov.
    pub fn observe(&mut self, dbov: i8) {
        let dbov = f32::from(dbov.clamp(-127, 0));
        self.sum += 10f32.powf(dbov / 20.0);
        self.packets += 1;
    }

    /// Close the interval: fold its mean amplitude into the smoothed level and return that. An
    /// interval without packets (a muted or stopped track) counts as silence.
    pub fn tick(&mut self) -> f32 {
        let mean = if self.packets == 0 {
            0.0
        } else {
            self.sum / self.packets as f32
        };
        self.smoothed = CARRY * self.smoothed + (1.0 - CARRY) * mean;
        if self.smoothed < TALKING_MIN / 100.0 {
            self.smoothed = 0.0;
        }
        self.sum = 0.0;
        self.packets = 0;
        self.smoothed
    }
}

/// The speakers of one room from (peer id, smoothed level) per audio track, loudest first (ties
/// by peer id, so the order is stable): members at or above [`TALKING_MIN`], each once with its
/// loudest track, at most [`MAX_SPEAKERS`].
pub fn rank<'a>(levels: impl IntoIterator<Item = (&'a str, f32)>) -> Vec<ActiveSpeaker> {
    let mut best: Vec<(&str, f32)> = Vec::new();
    for (peer, level) in levels {
        if level < TALKING_MIN {
            continue;
        }
        match best.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, l)) => *l = l.max(level),
            None => best.push((peer, level)),
        }
    }
    best.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    best.truncate(MAX_SPEAKERS);
    best.into_iter()
        .map(|(peer, level)| ActiveSpeaker {
            peer_id: peer.to_owned(),
            level: AudioLevel::from_amplitude(level),
        })
        .collect()
}

/// Whether an announcement is due: who talks, or in which order, differs from the last one.
/// (Levels alone moving does not count, so a steady conversation sends nothing.)
pub fn changed(last: &[ActiveSpeaker], now: &[ActiveSpeaker]) -> bool {
    last.len() != now.len() || last.iter().zip(now).any(|(a, b)| a.peer_id != b.peer_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter_at(dbov: i8, intervals: usize) -> LevelMeter {
        let mut m = LevelMeter::default();
        for _ in 0..intervals {
            for _ in 0..15 {
                m.observe(dbov);
            }
            m.tick();
        }
        m
    }

    #[test]
    fn a_steady_level_converges_to_its_amplitude() {
        let mut m = meter_at(-20, 10);
        for _ in 0..15 {
            m.observe(-20);
        }
        let level = m.tick();
        assert!((level - 0.1).abs() < 0.001, "-20 dBov is 0.1: {level}");
    }

    #[test]
    fn silence_and_missing_packets_decay_to_zero_within_a_few_intervals() {
        let mut m = meter_at(-10, 10);
        let mut ticks = 0;
        while m.tick() >= TALKING_MIN {
            ticks += 1;
            assert!(ticks < 10, "decays");
        }
        assert!(
            (3..=6).contains(&ticks),
            "below the threshold after {ticks} silent intervals"
        );
        let mut s = meter_at(-127, 5);
        assert!(s.tick() < TALKING_MIN, "-127 dBov is silence");
    }

    #[test]
    fn out_of_range_levels_are_clamped() {
        let mut m = LevelMeter::default();
        m.observe(40);
        assert!(
            (m.tick() - 0.6).abs() < 0.001,
            "a positive level counts as 0 dBov"
        );
    }

    #[test]
    fn ranking_orders_by_level_merges_a_peers_tracks_and_drops_the_quiet() {
        let ranked = rank([
            ("bob", 0.02),
            ("alice", 0.3),
            ("carol", 0.001),
            ("bob", 0.05),
            ("dave", 0.05),
        ]);
        let names: Vec<&str> = ranked.iter().map(|s| s.peer_id.as_str()).collect();
        assert_eq!(
            names,
            ["alice", "bob", "dave"],
            "ties by peer id; carol is below"
        );
        assert_eq!(ranked[0].level.thousandths(), 300);
        assert_eq!(
            ranked[1].level.thousandths(),
            50,
            "bob's louder track counts"
        );
    }

    #[test]
    fn ranking_keeps_at_most_the_loudest_eight() {
        let names: Vec<String> = (0..12).map(|i| format!("p{i:02}")).collect();
        let ranked = rank(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), 0.01 * (i + 1) as f32)),
        );
        assert_eq!(ranked.len(), MAX_SPEAKERS);
        assert_eq!(ranked[0].peer_id, "p11");
    }

    #[test]
    fn only_who_and_order_make_a_change() {
        let a = rank([("alice", 0.3), ("bob", 0.1)]);
        let louder = rank([("alice", 0.5), ("bob", 0.2)]);
        let swapped = rank([("alice", 0.1), ("bob", 0.3)]);
        assert!(!changed(&a, &louder));
        assert!(changed(&a, &swapped));
        assert!(changed(&a, &a[..1]));
        assert!(changed(&[], &a));
        assert!(!changed(&[], &[]));
    }
}
