//! The fan-out map: every track and the slots it is forwarded to, and the per-packet path from
//! one publisher packet to all its subscriber copies. (Tracks come and go in `tracks.rs`;
//! removing one removes its subscriptions in the same call.)

use std::time::Instant;

use str0m::format::{Codec, PayloadParams};
use str0m::media::{KeyframeRequestKind, Mid, Rid};
use str0m::rtp::{RtpPacket, RtpWrite};
use switchboard_protocol::{MediaKind, TrackInfo, TrackSource};

use super::engine::Failed;
use super::participant::{Local, Participant, SlotId, TrackRef};
use super::Shard;
use crate::forward::{Decision, DropReason, PacketMeta};
use crate::keyframe::KeyframeThrottle;
use crate::level::LevelMeter;
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
    /// How loud the publisher is on this (audio) track, for the speaker ranking.
    pub level: LevelMeter,
    /// (subscriber, slot) pairs.
    pub subscribers: Vec<(Local, SlotId)>,
    pub keyframe: KeyframeThrottle,
    /// Muted by its owner / by an operator: not forwarded while either holds.
    pub owner_muted: bool,
    pub operator_muted: bool,
    /// The simulcast layer forwarded (`Some(None)` for plain streams); chosen by the first
    /// packet. Layer switching by bandwidth is not built yet.
    pub layer: Option<Option<Rid>>,
}

impl Track {
    pub fn keyframe_due(&self) -> Option<Instant> {
        self.keyframe.due_at()
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
        match track.layer {
            None => track.layer = Some(rid),
            Some(layer) if layer != rid => {
                stats.dropped_unrouted += 1;
                return;
            }
            Some(_) => {}
        }
        let video = track.kind == MediaKind::Video;
        if let (false, Some(dbov)) = (video, packet.header.ext_vals.audio_level) {
            track.level.observe(dbov);
        }
        let pt = packet.header.payload_type;
        let keyframe_start = video && {
            let codec = track.codec_of_pt.get(usize::from(*pt)).copied().flatten();
            starts_keyframe(codec, &packet.payload)
        };
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
                ..
            } = s;
            let Some(slot) = slots.get_mut(slot_id.0) else {
                continue;
            };
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
                    let write = RtpWrite::new(pt, seq.into(), ts, now, packet.payload.clone())
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
        if want_keyframe {
            // The request sent when the subscriber was bound may have been lost; ask again
            // (throttled, so this costs nothing when a keyframe is already on its way).
            self.request_keyframe(track_ref, KeyframeRequestKind::Pli);
        }
    }

    pub(super) fn request_keyframe(&mut self, track_ref: TrackRef, kind: KeyframeRequestKind) {
        let now = self.now;
        let Some(track) = self.tracks.get_mut(track_ref.0) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        if track.keyframe.request(now) {
            let rid = track.layer.flatten();
            self.send_keyframe_request(track_ref, rid, kind);
        } else {
            self.stats.keyframe_requests_coalesced += 1;
            self.timers.defer_keyframe(track_ref);
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
            if track.keyframe.poll(now) {
                let rid = track.layer.flatten();
                self.send_keyframe_request(track_ref, rid, KeyframeRequestKind::Pli);
            } else if track.keyframe.due_at().is_some() {
                self.timers.defer_keyframe(track_ref);
            }
        }
    }
}
