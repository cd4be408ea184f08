//! The relayed data channel (docs/protocol.md "Data channels"): the client opens `sb-reliable`
//! with its first offer, sends relay frames to everyone on a schedule, and accounts for what
//! arrives by the sender the server names: counters for loss, a send time for latency.

use std::collections::HashMap;
use std::time::Duration;

use str0m::channel::{ChannelData, ChannelId};
use switchboard_protocol::relay::RelayFrame;

use super::Driver;
use crate::stats::RecvStats;
use crate::synth;

/// The label the SDK uses for its reliable channel.
pub(super) const LABEL: &str = "sb-reliable";
/// Send time (µs) and counter at the start of every payload.
pub(super) const HEADER: usize = 16;

/// This client's side of the channel.
#[derive(Debug, Default)]
pub(super) struct DataTx {
    pub(super) channel: Option<ChannelId>,
    counter: u64,
    frame: Vec<u8>,
    /// The next counter expected from each sender.
    expected: HashMap<String, u64>,
}

/// Time between two messages at `per_second` (0: never).
pub(super) fn period(per_second: u32) -> Duration {
    Duration::from_secs(1) / per_second.max(1)
}

impl Driver {
    pub(super) fn sending_data(&self) -> bool {
        self.connected
            && !self.rtc_dead
            && !self.left
            && self.data.channel.is_some()
            && self.opts.data.is_some_and(|d| d.per_second > 0)
    }

    pub(super) fn on_channel_open(&mut self, id: ChannelId, label: String) {
        if label == LABEL {
            self.data.channel = Some(id);
        }
    }

    /// One message to everyone else.
    pub(super) fn send_data(&mut self) {
        let (Some(id), Some(opts)) = (self.data.channel, self.opts.data) else {
            return;
        };
        let mut payload = vec![0u8; opts.size.max(HEADER)];
        payload[..8].copy_from_slice(&synth::now_us().to_be_bytes());
        payload[8..16].copy_from_slice(&self.data.counter.to_be_bytes());
        self.data.frame.clear();
        RelayFrame {
            text: false,
            peer: None,
            payload: &payload,
        }
        .write(&mut self.data.frame);
        let written = match self.rtc.channel(id) {
            Some(mut ch) => ch.write(true, &self.data.frame),
            None => Ok(false),
        };
        match written {
            Ok(true) => {
                self.data.counter += 1;
                self.stats().data_sent += 1;
            }
            Ok(false) => self.stats().data_refused += 1,
            Err(e) => self.local_error(format!("data channel write: {e}")),
        }
        self.drain();
    }

    pub(super) fn on_channel_data(&mut self, d: ChannelData) {
        let now_us = synth::now_us();
        let parsed = RelayFrame::parse(&d.data).ok().and_then(|f| {
            let sender = f.peer?.to_owned();
            let p = f.payload;
            let sent = u64::from_be_bytes(p.get(..8)?.try_into().ok()?);
            let counter = u64::from_be_bytes(p.get(8..16)?.try_into().ok()?);
            Some((sender, sent, counter))
        });
        let Some((sender, sent, counter)) = parsed else {
            self.stats()
                .data_received
                .entry("?".into())
                .or_default()
                .corrupt += 1;
            return;
        };
        // Reliable and ordered: every counter in turn. A jump is what the relay dropped.
        let next = self.data.expected.entry(sender.clone()).or_insert(0);
        let lost = counter.saturating_sub(*next);
        *next = (*next).max(counter + 1);
        let mut stats = self.stats();
        let r: &mut RecvStats = stats.data_received.entry(sender).or_default();
        r.packets += 1;
        r.bytes += d.data.len() as u64;
        r.lost += lost;
        r.push_latency(now_us.saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
    }
}
