//! What changed in a client's counters since the collector last looked: packets, bytes, loss,
//! new latency samples and packets sent. The scenario runner and the soak both tick through
//! their clients with a [`Tally`] each and sum the [`Delta`]s.

use std::collections::HashMap;

use switchboard_protocol::MediaKind;

use crate::stats::{ClientStats, RecvStats, LATENCY_SAMPLES};

/// Counters of one received track at the last tick.
#[derive(Debug, Default, Clone, Copy)]
struct Cursor {
    packets: u64,
    bytes: u64,
    lost: u64,
    recovered: u64,
    latency_total: u64,
}

/// What the collector has already counted of one client.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    cursors: HashMap<(String, MediaKind), Cursor>,
    sent: u64,
    data_sent: u64,
    /// Relayed data messages counted so far, by sender.
    data: HashMap<String, Cursor>,
    /// Window totals per track: (packets, lost), summed while `in_window`.
    pub(crate) window: HashMap<(String, MediaKind), (u64, u64)>,
}

/// What changed since the last tick.
#[derive(Debug, Default)]
pub(crate) struct Delta {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) lost: u64,
    /// Of `lost`, what RED redundancy brought back.
    pub(crate) recovered: u64,
    pub(crate) sent: u64,
    pub(crate) latency_us: Vec<u32>,
    /// Relayed data-channel messages: sent, received (copies), lost, latency samples.
    pub(crate) data_sent: u64,
    pub(crate) data_received: u64,
    pub(crate) data_lost: u64,
    pub(crate) data_latency_us: Vec<u32>,
}

impl Tally {
    /// Add the change in `s` since last time to `into` (call it under the client's stats lock,
    /// see [`Client::with_stats`](crate::Client::with_stats)); with `in_window` also to the
    /// per-track window totals.
    pub(crate) fn collect(&mut self, s: &ClientStats, into: &mut Delta, in_window: bool) {
        for (key, r) in &s.received {
            let cur = match self.cursors.get_mut(key) {
                Some(c) => c,
                None => self.cursors.entry(key.clone()).or_default(),
            };
            let packets = r.packets.saturating_sub(cur.packets);
            let lost = r.lost.saturating_sub(cur.lost);
            into.packets += packets;
            into.bytes += r.bytes.saturating_sub(cur.bytes);
            into.lost += lost;
            into.recovered += r.recovered.saturating_sub(cur.recovered);
            new_samples(r, cur.latency_total, &mut into.latency_us);
            if in_window {
                let w = self.window.entry(key.clone()).or_default();
                w.0 += packets;
                w.1 += lost;
            }
            *cur = Cursor {
                packets: r.packets,
                bytes: r.bytes,
                lost: r.lost,
                recovered: r.recovered,
                latency_total: r.latency_total,
            };
        }
        into.sent += s.sent_packets.saturating_sub(self.sent);
        self.sent = s.sent_packets;
        into.data_sent += s.data_sent.saturating_sub(self.data_sent);
        self.data_sent = s.data_sent;
        for (sender, r) in &s.data_received {
            let cur = self.data.entry(sender.clone()).or_default();
            into.data_received += r.packets.saturating_sub(cur.packets);
            into.data_lost += r.lost.saturating_sub(cur.lost);
            new_samples(r, cur.latency_total, &mut into.data_latency_us);
            *cur = Cursor {
                packets: r.packets,
                bytes: r.bytes,
                lost: r.lost,
                recovered: 0,
                latency_total: r.latency_total,
            };
        }
    }
}

/// The latency samples of `r` taken since its total was `since`. Sample n sits at
/// n % LATENCY_SAMPLES of the ring; older ones than the ring holds are gone.
fn new_samples(r: &RecvStats, since: u64, into: &mut Vec<u32>) {
    let new = r.latency_total.saturating_sub(since);
    let keep = new.min(r.latency_us.len() as u64);
    for n in (r.latency_total - keep)..r.latency_total {
        if let Some(v) = r.latency_us.get((n % LATENCY_SAMPLES as u64) as usize) {
            into.push(*v);
        }
    }
}

pub(crate) fn rate(x: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        x / secs
    } else {
        0.0
    }
}

/// Lost as a percentage of (received + lost).
pub fn loss_percent(received: u64, lost: u64) -> f64 {
    let all = received + lost;
    if all == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / all as f64
    }
}

/// Nearest-rank percentile of sorted values (0 for none).
pub(crate) fn pct_f64(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_helpers() {
        assert_eq!(loss_percent(0, 0), 0.0);
        assert_eq!(loss_percent(99, 1), 1.0);
        assert_eq!(pct_f64(&[], 50.0), 0.0);
        assert_eq!(pct_f64(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(pct_f64(&[1.0, 2.0, 3.0, 4.0], 99.0), 4.0);
    }
}
