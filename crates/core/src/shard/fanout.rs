//! The fan-out map: every track and the slots it is forwarded to, and the per-packet path from
//! one publisher packet to all its subscriber copies. (Tracks come and go in `tracks.rs`;
//! removing one removes its subscriptions in the same call.)

use std::sync::Arc;
use std::time::Instant;

use str0m::format::{Codec, PayloadParams};
use str0m::media::{KeyframeRequestKind, Mid, Rid};
use str0m::rtp::{RtpPacket, RtpWrite};
use switchboard_protocol::{MediaKind, Quality, TrackInfo, TrackSource};

use super::allocation::PACKET_OVERHEAD;
use super::engine::Failed;
use super::layers::Layers;
use super::participant::{preference, Local, Participant, SlotId, TrackRef};
use super::slot::Admit;
use super::Shard;
use crate::forward::{Decision, DropReason, PacketMeta};
use crate::frame_size::keyframe_size;
use crate::level::LevelMeter;
use crate::red;
use crate::stats::Op;

/// A track of a member and who receives it: the fan-out map's entry. A track is *defined*
/// (discoverable, `mid` is `None`) or *live* (media arrives on the publisher's m-line `mid`).
#[derive(Debug)]
pub(crate) struct Track {
    pub publisher: Local,
    pub publisher_peer: String,
    /// The name the publisher gave it (default: its mid); `track_id` is `<peer>:<name>`.
    pub name: String,
    pub track_id: String,
    pub kind: MediaKind,
    pub source: TrackSource,
    pub description: Option<String>,
    /// The publisher's m-line while live.
    pub mid: Option<Mid>,
    /// Defined with `defineTrack`: the definition outlives its m-line (it goes back to defined
    /// when the m-line stops). Tracks made by an offer alone end with their m-line.
    pub explicit: bool,
    /// The publisher's negotiated codecs, to map its PTs to each subscriber's.
    pub params: Vec<PayloadParams>,
    /// The codec of each publisher PT, for keyframe detection without a search per packet.
    pub codec_of_pt: [Option<Codec>; 128],
    /// The PT the publisher's m-line lists first (what it sends), to check before binding that
    /// a subscriber accepted that codec. `None` until live, or when the m-line lists none.
    pub sent_pt: Option<str0m::media::Pt>,
    /// The publisher's RED (audio/red) payload type, when it negotiated one.
    pub red_pt: Option<str0m::media::Pt>,
    /// How loud the publisher is on this (audio) track, for the speaker ranking.
    pub level: LevelMeter,
    /// (subscriber, slot) pairs.
    pub subscribers: Vec<(Local, SlotId)>,
    /// Its encodings (one, rid `None`, without simulcast), each with a keyframe throttle.
    pub layers: Layers,
    /// Muted by its owner / by an operator: not forwarded while either holds.
    pub owner_muted: bool,
    pub operator_muted: bool,
}

impl Track {
    pub fn keyframe_due(&self) -> Option<Instant> {
        self.layers.keyframe_due()
    }

    /// The layer a subscriber starts on: the best flowing one its preference allows (the
    /// allocator lowers it if the link cannot carry it). `None` while nothing flows.
    pub fn initial_layer(&self, quality: Quality, now: Instant) -> Option<usize> {
        let ladder = self.layers.ranked(now);
        let top = ladder.len().checked_sub(1)?;
        ladder.get(quality_index(quality, top)).copied()
    }

    pub fn muted(&self) -> bool {
        self.owner_muted || self.operator_muted
    }

    pub fn live(&self) -> bool {
        self.mid.is_some()
    }

    /// How the room sees it.
    pub fn info(&self) -> TrackInfo {
        TrackInfo {
            track_id: self.track_id.clone(),
            kind: self.kind,
            source: Some(self.source),
            description: self.description.clone(),
            live: self.live(),
            muted: self.muted(),
        }
    }
}

/// About what a packet takes on the wire, to compare rates with the bandwidth estimate.
fn wire_size(packet: &RtpPacket) -> usize {
    packet.payload.len() + PACKET_OVERHEAD
}

/// The ladder position a preferred quality allows at most, on a ladder whose top is `top`.
pub(crate) fn quality_index(quality: Quality, top: usize) -> usize {
    match quality {
        Quality::Low => 0,
        Quality::Medium => top.min(1),
        Quality::High => top,
    }
}

/// Does this payload start a keyframe a decoder can begin with? For H264 a packet carrying the
/// SPS counts as the start (it precedes the IDR, and a decoder needs it first); for AV1 the
/// aggregation header's N bit (the first packet of a new coded video sequence).
fn starts_keyframe(codec: Option<Codec>, payload: &[u8]) -> bool {
    match codec {
        Some(Codec::Vp8) => str0m::format::detect_vp8_keyframe(payload),
        // The descriptor's B bit (0x08) marks a frame's first packet; str0m's check reads only
        // the P bit, which every packet of a keyframe has clear.
        Some(Codec::Vp9) => {
            payload.first().is_some_and(|b| b & 0x08 != 0)
                && str0m::format::detect_vp9_keyframe(payload)
        }
        Some(Codec::H264) => {
            str0m::format::detect_h264_nalu(payload, 7)
                || str0m::format::detect_h264_keyframe(payload)
        }
        Some(Codec::Av1) => str0m::format::detect_av1_keyframe(payload),
        _ => false,
    }
}

impl Shard {
    /// Fan one publisher packet out to every subscriber of its track.
    pub(super) fn forward(&mut self, track_ref: TrackRef, rid: Option<Rid>, packet: RtpPacket) {
        let now = self.now;
        let Shard {
            tracks,
            members,
            dirty,
            stats,
            failed,
            ..
        } = self;
        let Some(track) = tracks.get_mut(track_ref.0) else {
            stats.dropped_unrouted += 1;
            return;
        };
        if track.muted() {
            stats.dropped_muted += 1;
            return;
        }
        let Some(layer) = track.layers.count_packet(rid, wire_size(&packet), now) else {
            stats.dropped_unrouted += 1;
            return;
        };
        let video = track.kind == MediaKind::Video;
        if let (false, Some(dbov)) = (video, packet.header.ext_vals.audio_level) {
            track.level.observe(dbov);
        }
        let pt = packet.header.payload_type;
        if track.red_pt == Some(pt) {
            stats.red_in += 1;
        }
        let codec = track.codec_of_pt.get(usize::from(*pt)).copied().flatten();
        let keyframe_start = video && starts_keyframe(codec, &packet.payload);
        if keyframe_start {
            if let Some(size) = codec.and_then(|c| keyframe_size(c, &packet.payload)) {
                track.layers.set_size(layer, size);
            }
        }
        let meta = PacketMeta {
            seq: *packet.seq_no,
            ts: packet.header.timestamp,
            keyframe_start,
        };
        let mut ext = packet.header.ext_vals.clone();
        // These belong to the publisher's session; str0m writes the subscriber's own.
        ext.mid = None;
        ext.rid = None;
        ext.rid_repair = None;
        ext.transport_cc = None;
        ext.abs_send_time = None;

        let mut want_keyframe = false;
        // A subscriber waits to switch to this layer: ask it for a keyframe.
        let mut want_switch = false;
        // Subscribers that turn out not to decode this packet's codec (the publisher switched
        // codecs, or sends one its m-line did not list first): they lose the track after the
        // loop. Empty, and so without an allocation, on every ordinary packet.
        let mut undecodable = Vec::new();
        for &(sub, slot_id) in &track.subscribers {
            let Some(s) = members.get_mut(sub.0) else {
                continue;
            };
            let Participant {
                id,
                engine,
                slots,
                dirty: is_dirty,
                preferences,
                ..
            } = s;
            let Some(slot) = slots.get_mut(slot_id.0) else {
                continue;
            };
            if slot.target.is_none() && !slot.paused {
                let quality = preference(preferences, track_ref).quality;
                slot.target = track.initial_layer(quality, now).or(Some(layer));
            }
            match slot.admit(layer, keyframe_start) {
                Admit::Yes => {}
                Admit::Switched => stats.layer_switches += 1,
                Admit::AwaitingSwitch => {
                    want_switch = true;
                    continue;
                }
                Admit::OtherLayer => continue,
                Admit::Paused => {
                    stats.dropped_paused += 1;
                    continue;
                }
            }
            let codec = match slot.out_codec(pt, &track.params, engine, *id) {
                Ok(codec) => codec,
                Err(Failed) => {
                    failed.push(sub);
                    continue;
                }
            };
            match slot.forwarder.decide(&meta, codec, now) {
                Decision::Forward { seq, ts, pt } => {
                    let Some(ssrc) = slot.tx_ssrc else { continue };
                    let payload = match codec.and_then(|c| c.strip_red) {
                        None => packet.payload.clone(),
                        Some(primary_pt) => match red::primary(&packet.payload) {
                            Ok(p) if p.pt == primary_pt => Arc::from(p.data),
                            _ => {
                                stats.dropped_bad_red += 1;
                                continue;
                            }
                        },
                    };
                    let write = RtpWrite::new(pt, seq.into(), ts, now, payload)
                        .marker(packet.header.marker)
                        .ext_vals(ext.clone())
                        .nackable(video);
                    let written = engine.call(*id, Op::Forward, |rtc| {
                        let mut api = rtc.direct_api();
                        let tx = api.stream_tx(&ssrc)?;
                        tx.write_rtp(write);
                        Some(())
                    });
                    match written {
                        Ok(Some(())) => {
                            stats.rtp_forwarded += 1;
                            slot.sent_bytes += wire_size(&packet) as u64;
                            if !*is_dirty {
                                *is_dirty = true;
                                dirty.push(sub);
                            }
                        }
                        Ok(None) => {}
                        Err(Failed) => failed.push(sub),
                    }
                }
                Decision::Drop(DropReason::AwaitingKeyframe) => {
                    stats.dropped_awaiting_keyframe += 1;
                    want_keyframe = true;
                }
                Decision::Drop(DropReason::BeforeSwitch) => stats.dropped_before_switch += 1,
                Decision::Drop(DropReason::NoCodec) => {
                    stats.dropped_no_codec += 1;
                    // A PT of the publisher's own codecs (not one it never negotiated).
                    let known = track
                        .codec_of_pt
                        .get(usize::from(*pt))
                        .is_some_and(Option::is_some);
                    if codec.is_none() && known {
                        undecodable.push((sub, slot_id));
                    }
                }
            }
        }
        for (sub, slot_id) in undecodable {
            self.refuse_codec(sub, slot_id, track_ref, pt);
        }
        if want_keyframe || want_switch {
            // The request sent when the subscriber was bound (or retargeted) may have been
            // lost; ask again (throttled, so this costs nothing when a keyframe is on its way).
            self.request_keyframe(track_ref, layer, KeyframeRequestKind::Pli);
        }
    }

    /// Ask the publisher for a keyframe of one layer (throttled per layer: a request inside the
    /// interval is deferred, not lost).
    pub(super) fn request_keyframe(
        &mut self,
        track_ref: TrackRef,
        layer: usize,
        kind: KeyframeRequestKind,
    ) {
        let now = self.now;
        let Some(track) = self.tracks.get_mut(track_ref.0) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        let Some(l) = track.layers.get_mut(layer) else {
            return;
        };
        if l.keyframe.request(now) {
            let rid = l.rid;
            self.send_keyframe_request(track_ref, rid, kind);
        } else {
            self.stats.keyframe_requests_coalesced += 1;
            self.timers.defer_keyframe(track_ref);
        }
    }

    /// A keyframe of every layer (a track resumes for everyone at once).
    pub(super) fn request_keyframes(&mut self, track_ref: TrackRef, kind: KeyframeRequestKind) {
        let count = self.tracks.get(track_ref.0).map_or(0, |t| t.layers.len());
        for layer in 0..count {
            self.request_keyframe(track_ref, layer, kind);
        }
    }

    fn send_keyframe_request(
        &mut self,
        track_ref: TrackRef,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let Some(track) = self.tracks.get(track_ref.0) else {
            return;
        };
        let Some(mid) = track.mid else {
            return;
        };
        let publisher = track.publisher;
        let Some(p) = self.members.get_mut(publisher.0) else {
            return;
        };
        let sent = p.engine.call(p.id, Op::Keyframe, |rtc| {
            let mut api = rtc.direct_api();
            let rx = api.stream_rx_by_mid(mid, rid)?;
            rx.request_keyframe(kind);
            Some(())
        });
        match sent {
            Ok(Some(())) => {
                self.stats.keyframe_requests_sent += 1;
                self.mark_dirty(publisher);
            }
            Ok(None) => {}
            Err(Failed) => self.failed.push(publisher),
        }
    }

    pub(super) fn poll_keyframes(&mut self) {
        let now = self.now;
        for track_ref in self.timers.take_keyframes() {
            let Some(track) = self.tracks.get_mut(track_ref.0) else {
                continue;
            };
            let mut due = Vec::new();
            for layer in track.layers.iter_mut() {
                if layer.keyframe.poll(now) {
                    due.push(layer.rid);
                }
            }
            if track.layers.keyframe_due().is_some() {
                self.timers.defer_keyframe(track_ref);
            }
            for rid in due {
                self.send_keyframe_request(track_ref, rid, KeyframeRequestKind::Pli);
            }
        }
    }
}
