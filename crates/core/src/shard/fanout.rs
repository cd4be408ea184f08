//! The fan-out map: every published track and the slots it is forwarded to, and the per-packet
//! path from one publisher packet to all its subscriber copies. Removing a track removes its
//! subscriptions in the same call.

use std::time::Instant;

use str0m::format::{Codec, PayloadParams};
use str0m::media::{KeyframeRequestKind, Mid, Rid};
use str0m::rtp::{RtpPacket, RtpWrite};
use switchboard_protocol::webhook::WebhookEvent;
use switchboard_protocol::{MediaKind, ServerMessage};
use tracing::info;

use super::engine::Failed;
use super::interface::Output;
use super::participant::{Local, Participant, SlotId, TrackRef};
use super::Shard;
use crate::forward::{Decision, DropReason, PacketMeta};
use crate::ids::TrackKey;
use crate::keyframe::KeyframeThrottle;
use crate::stats::Op;

/// A published track and who receives it: the fan-out map's entry.
#[derive(Debug)]
pub(crate) struct Track {
    pub key: TrackKey,
    pub publisher: Local,
    pub track_id: String,
    pub kind: MediaKind,
    pub publisher_peer: String,
    /// The publisher's negotiated codecs, to map its PTs to each subscriber's.
    pub params: Vec<PayloadParams>,
    /// The codec of each publisher PT, for keyframe detection without a search per packet.
    codec_of_pt: [Option<Codec>; 128],
    /// (subscriber, slot) pairs.
    pub subscribers: Vec<(Local, SlotId)>,
    keyframe: KeyframeThrottle,
    /// Muted by an operator: not forwarded.
    pub muted: bool,
    /// The simulcast layer forwarded (`Some(None)` for plain streams); chosen by the first
    /// packet. Layer switching by bandwidth is not built yet.
    layer: Option<Option<Rid>>,
}

impl Track {
    pub fn keyframe_due(&self) -> Option<Instant> {
        self.keyframe.due_at()
    }
}

/// Does this payload start a keyframe a decoder can begin with? For H264 a packet carrying the
/// SPS counts as the start (it precedes the IDR, and a decoder needs it first).
fn starts_keyframe(codec: Option<Codec>, payload: &[u8]) -> bool {
    match codec {
        Some(Codec::Vp8) => str0m::format::detect_vp8_keyframe(payload),
        Some(Codec::Vp9) => str0m::format::detect_vp9_keyframe(payload),
        Some(Codec::H264) => {
            str0m::format::detect_h264_nalu(payload, 7)
                || str0m::format::detect_h264_keyframe(payload)
        }
        Some(Codec::Av1) => str0m::format::detect_av1_keyframe(payload),
        _ => false,
    }
}

impl Shard {
    /// The participant publishes on `mid`: make a track and queue it for every other member.
    pub(super) fn publish(&mut self, local: Local, mid: Mid, kind: MediaKind) {
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        if p.published.len() >= self.config.max_tracks_per_participant {
            let max = self.config.max_tracks_per_participant;
            self.outputs.push_back(Output::Signal {
                participant: p.id,
                message: ServerMessage::Error {
                    code: switchboard_protocol::ErrorCode::TooManyTracks,
                    message: format!(
                        "a participant may publish at most {max} tracks; m-line {mid} is not forwarded"
                    ),
                    request: Some("offer".into()),
                },
            });
            return;
        }
        let Ok(params) = p
            .engine
            .call(p.id, Op::Query, |rtc| rtc.codec_config().params().to_vec())
        else {
            self.failed.push(local);
            return;
        };
        let mut codec_of_pt = [None; 128];
        for param in &params {
            if let Some(slot) = codec_of_pt.get_mut(usize::from(*param.pt())) {
                *slot = Some(param.spec().codec);
            }
        }
        let track_id = format!("{}:{}", p.peer_id, mid);
        let key = TrackKey {
            publisher: p.id,
            mid,
        };
        let track = Track {
            key,
            publisher: local,
            track_id: track_id.clone(),
            kind,
            publisher_peer: p.peer_id.clone(),
            params,
            codec_of_pt,
            subscribers: Vec::new(),
            keyframe: KeyframeThrottle::new(self.config.keyframe_interval),
            layer: None,
            muted: false,
        };
        let room_name = p.room.clone();
        let peer = p.peer_id.clone();
        let track_ref = TrackRef(self.tracks.insert(track));
        p.published.push((mid, track_ref));
        // Cached SSRC routes resolve to tracks when packets arrive; start them afresh.
        p.routes.clear();
        info!(participant = %p.id, room = %room_name, track = %track_id, ?kind, "track published");
        self.notify(WebhookEvent::TrackPublished {
            room: room_name.clone(),
            peer_id: peer,
            track_id,
            kind,
        });
        let Some(room) = self.rooms.get_mut(&room_name) else {
            return;
        };
        room.tracks.push(track_ref);
        let others: Vec<Local> = room
            .members
            .iter()
            .copied()
            .filter(|m| *m != local)
            .collect();
        for sub in others {
            if let Some(s) = self.members.get_mut(sub.0) {
                s.wanted.push_back((track_ref, kind));
            }
            self.fill_slots(sub);
            self.negotiate_later(sub);
        }
    }

    /// The track ends: every subscriber hears it, its slots become free for waiting tracks.
    pub(super) fn unpublish(&mut self, track_ref: TrackRef) {
        let Some(track) = self.tracks.remove(track_ref.0) else {
            return;
        };
        info!(participant = %track.key.publisher, track = %track.track_id, "track unpublished");
        self.timers.forget_keyframe(track_ref);
        let room_name = match self.members.get_mut(track.publisher.0) {
            Some(p) => {
                p.published.retain(|(_, t)| *t != track_ref);
                p.routes.clear();
                p.room.clone()
            }
            None => return,
        };
        self.notify(WebhookEvent::TrackUnpublished {
            room: room_name.clone(),
            peer_id: track.publisher_peer.clone(),
            track_id: track.track_id.clone(),
        });
        let mut affected = Vec::new();
        for (sub, slot_id) in track.subscribers {
            let Some(s) = self.members.get_mut(sub.0) else {
                continue;
            };
            let who = s.id;
            if let Some(slot) = s.slot_mut(slot_id) {
                if slot.source == Some(track_ref) {
                    slot.source = None;
                    let mid = slot.mid.to_string();
                    self.outputs.push_back(Output::Signal {
                        participant: who,
                        message: ServerMessage::TrackUnpublished {
                            track_id: track.track_id.clone(),
                            peer_id: track.publisher_peer.clone(),
                            mid,
                        },
                    });
                    affected.push(sub);
                }
            }
        }
        if let Some(room) = self.rooms.get_mut(&room_name) {
            room.tracks.retain(|t| *t != track_ref);
            for m in &room.members {
                if let Some(p) = self.members.get_mut(m.0) {
                    p.wanted.retain(|(t, _)| *t != track_ref);
                }
            }
        }
        for sub in affected {
            self.fill_slots(sub);
        }
    }

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
        if track.muted {
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
                Decision::Drop(DropReason::NoCodec) => stats.dropped_no_codec += 1,
            }
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
        let (publisher, mid) = (track.publisher, track.key.mid);
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
