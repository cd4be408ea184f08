//! Media in: datagrams handed to str0m, the events it raises, and the accounting of every
//! received RTP packet (owner, loss, latency, gaps) into the shared [`ClientStats`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpPacket;
use str0m::{Event, Input};
use switchboard_protocol::MediaKind;

use super::Driver;
use crate::stats::{on_corrupt, PacketSample, RecvTracker, SeqWatch};
use crate::{red, synth};

/// Owner recorded for corrupt packets on a mid without an announcement.
const UNKNOWN_OWNER: &str = "?";

/// Receive state of one of my m-lines.
#[derive(Debug)]
pub(super) struct RxMid {
    mid_str: String,
    kind: MediaKind,
    seq: SeqWatch,
}

impl Driver {
    pub(super) fn on_datagram(
        &mut self,
        proto: Protocol,
        buf: &[u8],
        source: SocketAddr,
        at: Instant,
    ) {
        if self.rtc_dead {
            return;
        }
        let Ok(receive) = Receive::new(proto, source, self.local_addr, buf) else {
            return; // not STUN/DTLS/RTP: the network's noise, not str0m's business
        };
        if let Err(e) = self.rtc.handle_input(Input::Receive(at, receive)) {
            self.local_error(format!("str0m receive: {e}"));
        }
        self.drain();
    }

    pub(super) fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                self.connected = true;
                self.stats().connected = true;
            }
            Event::IceConnectionStateChange(state) => {
                self.stats().ice_state = format!("{state:?}");
            }
            Event::RtpPacket(p) => self.on_rtp(p),
            Event::ChannelOpen(id, label) => self.on_channel_open(id, label),
            Event::ChannelData(d) => self.on_channel_data(d),
            Event::KeyframeRequest(r) => {
                self.stats().keyframe_requests += 1;
                self.force_keyframe(r.mid);
            }
            _ => {}
        }
    }

    pub(super) fn on_rtp(&mut self, p: RtpPacket) {
        let ssrc = p.header.ssrc;
        let mid = match self.rx_ssrcs.get(&ssrc) {
            Some(mid) => Some(*mid),
            None => {
                let mid = self.rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid());
                if let Some(mid) = mid {
                    self.rx_ssrcs.insert(ssrc, mid);
                }
                mid
            }
        };
        let Some(mid) = mid else {
            self.stats().unknown_ssrc += 1;
            return;
        };
        if !self.rx_mids.contains_key(&mid) {
            let Some(kind) = self.rtc.media(mid).map(|m| m.kind()) else {
                self.stats().unknown_ssrc += 1;
                return;
            };
            let kind = match kind {
                str0m::media::MediaKind::Audio => MediaKind::Audio,
                str0m::media::MediaKind::Video => MediaKind::Video,
            };
            let rx = RxMid {
                mid_str: mid.to_string(),
                kind,
                seq: SeqWatch::default(),
            };
            self.rx_mids.insert(mid, rx);
        }
        let Some(rx) = self.rx_mids.get_mut(&mid) else {
            return;
        };
        let seq_gap = rx.seq.observe(p.header.sequence_number);
        let kind = rx.kind;
        let video = kind == MediaKind::Video;
        // RED audio: the primary frame is the packet; the redundant copies may fill holes.
        let red = !video && self.red_rx_pt == Some(p.header.payload_type);
        let (body, redundant) = if red {
            match red::unwrap(&p.payload) {
                Some(parts) => (parts.primary, parts.redundant),
                None => (&[][..], Vec::new()),
            }
        } else {
            (&p.payload[..], Vec::new())
        };
        let parsed = synth::parse_payload(body, video);

        let mut guard = self.shared.lock();
        let s = &mut *guard;
        match s.mid_packets.get_mut(&rx.mid_str) {
            Some(n) => *n += 1,
            None => {
                s.mid_packets.insert(rx.mid_str.clone(), 1);
            }
        }
        let announced = s
            .slots
            .get(&rx.mid_str)
            .and_then(|t| t.as_ref())
            .map(|t| t.peer_id.as_str());
        match parsed {
            Ok(info) => {
                if announced.is_some_and(|a| a != info.owner) {
                    let late = s.previous_owner.get(&rx.mid_str).is_some_and(|(prev, at)| {
                        *prev == info.owner && at.elapsed() <= crate::stats::SWITCH_GRACE
                    });
                    if late {
                        s.late_previous_owner += 1;
                    } else {
                        let announced = announced.unwrap_or_default().to_owned();
                        s.note_unannounced(&rx.mid_str, &info.owner);
                        if s.wrong_owner_examples.len() < 8 {
                            let since = s
                                .announced_at
                                .get(&rx.mid_str)
                                .map_or(Duration::ZERO, |at| at.elapsed());
                            let example =
                                (rx.mid_str.clone(), announced, info.owner.to_owned(), since);
                            s.wrong_owner_examples.push(example);
                        }
                    }
                }
                let now_us = synth::now_us();
                let sample = PacketSample {
                    counter: info.counter,
                    seq_gap,
                    keyframe: info.keyframe,
                    bytes: p.payload.len(),
                    latency_us: now_us.saturating_sub(info.sent_us).min(u32::MAX as u64) as u32,
                    at: p.timestamp,
                };
                let key = (info.owner, kind);
                // Look up before inserting: the key is cloned only for a new track.
                if !s.received.contains_key(&key) {
                    s.received.insert(key.clone(), Default::default());
                }
                if !self.trackers.contains_key(&key) {
                    self.trackers.insert(key.clone(), RecvTracker::default());
                }
                if let (Some(stats), Some(tracker)) =
                    (s.received.get_mut(&key), self.trackers.get_mut(&key))
                {
                    tracker.on_packet(stats, &sample);
                    if red {
                        stats.red_packets += 1;
                        for block in &redundant {
                            match synth::parse_payload(block, false) {
                                Ok(copy) if copy.owner == key.0 => {
                                    tracker.on_redundant(stats, copy.counter)
                                }
                                _ => stats.bad_redundancy += 1,
                            }
                        }
                    }
                }
            }
            Err(_) => {
                let owner = announced.unwrap_or(UNKNOWN_OWNER).to_owned();
                let stats = s.received.entry((owner, kind)).or_default();
                on_corrupt(stats, p.payload.len(), seq_gap, p.timestamp);
            }
        }
    }
}
