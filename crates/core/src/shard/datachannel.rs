//! The data-channel relay: a member's message on one of its data channels goes to the channels
//! of the same label of the other members of its room (or of the one member its frame names).
//!
//! Every message is a relay frame (`switchboard_protocol::relay`): the server reads the header,
//! never the payload, and rewrites the peer id from receiver to sender. Clients open the channels
//! they want to send and receive on (the server opens none), so a label means what the
//! application says: the SDK opens `sb-reliable` (ordered, reliable) and `sb-lossy` (unordered,
//! no retransmissions), and str0m keeps each receiver's channel settings.
//!
//! Bounds, so that one member cannot hurt the others: a sender has a byte budget
//! ([`DATA_RATE`] a second); a receiver whose channel holds more than [`MAX_BUFFERED`] unsent
//! bytes misses copies until it catches up (a slow receiver costs the server no more memory);
//! at most [`MAX_CHANNELS`] channels of a session are relayed. The sender of a dropped message is
//! told why (at most once a second); receivers are never told about others' mistakes.

use std::time::{Duration, Instant};

use str0m::channel::ChannelId;
use switchboard_protocol::relay::RelayFrame;
use switchboard_protocol::{ErrorCode, ServerMessage};
use tracing::debug;

use super::engine::Failed;
use super::ingress::{IngressBudget, Verdict};
use super::participant::Local;
use super::Shard;
use crate::stats::Op;

/// Data channels of one session the relay reads and writes.
pub(crate) const MAX_CHANNELS: usize = 8;
/// Bytes a second one member may have relayed (before fan-out), and the burst it may save up.
pub(crate) const DATA_RATE: u64 = 512 * 1024;
pub(crate) const DATA_BURST: u64 = 1024 * 1024;
/// Unsent bytes on a receiver's channel beyond which it misses copies.
pub(crate) const MAX_BUFFERED: usize = 1024 * 1024;
const NOTICE_EVERY: Duration = Duration::from_secs(1);

pub(crate) fn budget(now: Instant) -> IngressBudget {
    IngressBudget::with_rate(now, DATA_RATE, DATA_BURST)
}

/// Why one copy was not written.
enum Miss {
    NoChannel,
    Backpressure,
}

impl Shard {
    /// The client opened a data channel (or the server's limit refuses to relay it).
    pub(super) fn channel_opened(&mut self, local: Local, channel: ChannelId, label: String) {
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        if p.channels.len() >= MAX_CHANNELS {
            debug!(participant = %p.id, %label, "data channel beyond the limit is not relayed");
            self.notice_data(
                local,
                ErrorCode::TooManyChannels,
                format!("at most {MAX_CHANNELS} data channels of a session are relayed; {label:?} is not"),
            );
            return;
        }
        debug!(participant = %p.id, %label, "data channel open");
        p.channels.push((channel, label));
    }

    pub(super) fn channel_closed(&mut self, local: Local, channel: ChannelId) {
        if let Some(p) = self.members.get_mut(local.0) {
            p.channels.retain(|(c, _)| *c != channel);
        }
    }

    /// One message from `from` on its channel `channel`: check it and write a copy to each
    /// receiver's channel of the same label.
    pub(super) fn relay_data(
        &mut self,
        from: Local,
        channel: ChannelId,
        binary: bool,
        data: Vec<u8>,
    ) {
        self.stats.data_received += 1;
        let now = self.now;
        let Some(p) = self.members.get_mut(from.0) else {
            return;
        };
        let Some(label) = p
            .channels
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, l)| l.clone())
        else {
            // A channel beyond the limit: refused when it opened.
            self.stats.data_dropped_invalid += 1;
            return;
        };
        let frame = match binary {
            false => Err("relay frames are binary messages".to_owned()),
            true => RelayFrame::parse(&data).map_err(|e| e.to_string()),
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(why) => {
                self.stats.data_dropped_invalid += 1;
                self.notice_data(
                    from,
                    ErrorCode::BadDataFrame,
                    format!("on {label:?}: {why}; dropped"),
                );
                return;
            }
        };
        if p.data_budget.take_n(now, data.len() as u64) != Verdict::Pass {
            self.stats.data_dropped_rate += 1;
            self.notice_data(
                from,
                ErrorCode::RateLimited,
                format!("data-channel messages beyond {DATA_RATE} bytes a second are dropped"),
            );
            return;
        }
        let sender = p.peer_id.clone();
        let Some(room) = self.rooms.get(&p.room) else {
            return;
        };
        let receivers: Vec<Local> = match frame.peer {
            None => room
                .members
                .iter()
                .copied()
                .filter(|m| *m != from)
                .collect(),
            Some(to) => room
                .members
                .iter()
                .copied()
                .filter(|m| self.members.get(m.0).is_some_and(|r| r.peer_id == to))
                .collect(),
        };
        if let (Some(to), true) = (frame.peer, receivers.is_empty()) {
            self.stats.data_dropped_invalid += 1;
            let message = format!("no member {to:?} in this room; the data message is dropped");
            self.notice_data(from, ErrorCode::UnknownPeer, message);
            return;
        }
        let mut out = Vec::with_capacity(frame.encoded_len() + sender.len());
        RelayFrame {
            text: frame.text,
            peer: Some(&sender),
            payload: frame.payload,
        }
        .write(&mut out);
        for receiver in receivers {
            match self.write_copy(receiver, &label, &out) {
                Ok(()) => self.stats.data_relayed += 1,
                Err(Miss::NoChannel) => self.stats.data_dropped_no_channel += 1,
                Err(Miss::Backpressure) => self.stats.data_dropped_backpressure += 1,
            }
        }
    }

    fn write_copy(&mut self, receiver: Local, label: &str, frame: &[u8]) -> Result<(), Miss> {
        let Some(r) = self.members.get_mut(receiver.0) else {
            return Err(Miss::NoChannel);
        };
        let Some(channel) = r.channels.iter().find(|(_, l)| l == label).map(|(c, _)| *c) else {
            return Err(Miss::NoChannel);
        };
        let written = r.engine.call(r.id, Op::Data, |rtc| {
            let mut ch = rtc.channel(channel)?;
            if ch.buffered_amount() > MAX_BUFFERED {
                return Some(Ok(false));
            }
            Some(ch.write(true, frame))
        });
        match written {
            Ok(Some(Ok(true))) => {
                self.mark_dirty(receiver);
                Ok(())
            }
            // Over our limit, or str0m's send buffer is full: a receiver that does not keep up.
            Ok(Some(Ok(false))) => Err(Miss::Backpressure),
            // str0m refuses writes to a channel that is closing or an association that is
            // going away: for this receiver the channel is as good as gone.
            Ok(Some(Err(e))) => {
                debug!(participant = %r.id, error = %e, "data channel write refused");
                Err(Miss::NoChannel)
            }
            Ok(None) => Err(Miss::NoChannel),
            Err(Failed) => {
                self.failed.push(receiver);
                Err(Miss::NoChannel)
            }
        }
    }

    /// Tell a sender why its data message was dropped, at most once per [`NOTICE_EVERY`].
    fn notice_data(&mut self, local: Local, code: ErrorCode, message: String) {
        let now = self.now;
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        if p.data_notice_at
            .is_some_and(|at| now.saturating_duration_since(at) < NOTICE_EVERY)
        {
            return;
        }
        p.data_notice_at = Some(now);
        self.signal(
            local,
            ServerMessage::Error {
                code,
                message,
                request: None,
            },
        );
    }
}
