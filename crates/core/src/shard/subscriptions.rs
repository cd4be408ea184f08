//! Which track goes to which receive slot. Tracks a subscriber should receive wait in its
//! `wanted` queue until a free slot of their kind exists; slots freed by a leaving track are
//! reused, and only when none is free does negotiation offer more (see
//! `docs/decisions/0001-slots.md`).

use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, Mid};
use switchboard_protocol::{MediaKind, ServerMessage};

use super::drive::kind_of;
use super::engine::Failed;
use super::participant::{Local, SlotId, TrackRef};
use super::slot::{Slot, SlotState};
use super::Shard;
use crate::stats::Op;

impl Shard {
    /// An m-line was added or changed direction: publish/unpublish, open/close a slot.
    pub(super) fn media_direction(
        &mut self,
        local: Local,
        mid: Mid,
        kind: Option<MediaKind>,
        direction: Direction,
    ) {
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        let kind = match kind {
            Some(kind) => Some(kind),
            None => match p.engine.call(p.id, Op::Query, |rtc| {
                rtc.media(mid).map(|m| kind_of(m.kind()))
            }) {
                Ok(kind) => kind,
                Err(Failed) => {
                    self.failed.push(local);
                    return;
                }
            },
        };
        let Some(kind) = kind else {
            return;
        };
        // Receiving side: the participant publishes on this m-line.
        match p.track_on(mid) {
            None if direction.is_receiving() => self.publish(local, mid, kind),
            Some(_) if !direction.is_receiving() => self.unpublish(local, mid),
            _ => {}
        }
        // Sending side: a slot the participant receives on.
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        let who = p.id;
        match p.slot_by_mid(mid) {
            None if direction.is_sending() => {
                let seed = p.next_slot_seed();
                let stream_id = match p.engine.call(who, Op::Query, |rtc| {
                    rtc.media(mid).map(|m| m.stream_id().to_owned())
                }) {
                    Ok(id) => id.unwrap_or_default(),
                    Err(Failed) => {
                        self.failed.push(local);
                        return;
                    }
                };
                let mut slot = Slot::new(mid, kind, stream_id, seed);
                if slot.attach(&mut p.engine, who).is_err() {
                    self.failed.push(local);
                    return;
                }
                p.slots.insert(slot);
            }
            Some(id) if !direction.is_sending() => {
                let ready = p
                    .slots
                    .get(id.0)
                    .is_some_and(|s| s.state == SlotState::Ready);
                if ready {
                    if let Some(slot) = p.slot_mut(id) {
                        slot.state = SlotState::Stopped;
                    }
                    if let Some(track) = self.unbind(local, id) {
                        // The track still exists: it waits for another slot.
                        if let Some(p) = self.members.get_mut(local.0) {
                            p.wanted.push_front((track, kind));
                        }
                    }
                }
            }
            Some(id) => {
                // The client turned a stopped m-line back on.
                let engine = &mut p.engine;
                if let Some(slot) = p.slots.get_mut(id.0) {
                    if slot.state == SlotState::Stopped && slot.attach(engine, who).is_err() {
                        self.failed.push(local);
                        return;
                    }
                }
            }
            None => {}
        }
        self.fill_slots(local);
        self.negotiate_later(local);
    }

    /// Give free slots to waiting tracks, in the order the tracks appeared.
    pub(super) fn fill_slots(&mut self, local: Local) {
        loop {
            let Some(p) = self.members.get(local.0) else {
                return;
            };
            let next =
                p.wanted.iter().enumerate().find_map(|(i, (track, kind))| {
                    p.free_slot(*kind).map(|slot| (i, *track, slot))
                });
            let Some((i, track, slot)) = next else {
                return;
            };
            if let Some(p) = self.members.get_mut(local.0) {
                p.wanted.remove(i);
            }
            match self.decodable(local, slot, track) {
                Ok(Ok(())) => self.bind(local, slot, track),
                // It stays subscribed: if the track goes live again (say in another codec),
                // it is tried again.
                Ok(Err(codec)) => self.tell_codec_unsupported(local, track, codec),
                Err(Failed) => {
                    self.failed.push(local);
                    return;
                }
            }
        }
    }

    /// Did the subscriber accept, on this slot's m-line, the codec the track's publisher sends?
    /// `Err(codec)` names the codec it did not accept. A track whose sent codec is not known
    /// yet counts as decodable: the first packet in a codec the slot lacks unbinds it.
    fn decodable(
        &mut self,
        local: Local,
        slot_id: SlotId,
        track_ref: TrackRef,
    ) -> Result<Result<(), Codec>, Failed> {
        let Some(track) = self.tracks.get(track_ref.0) else {
            return Ok(Ok(()));
        };
        let Some(pt) = track.sent_pt else {
            return Ok(Ok(()));
        };
        let Some(p) = self.members.get_mut(local.0) else {
            return Ok(Ok(()));
        };
        let who = p.id;
        let Some(slot) = p.slots.get_mut(slot_id.0) else {
            return Ok(Ok(()));
        };
        slot.codecs.clear();
        let out = slot.out_codec(pt, &track.params, &mut p.engine, who)?;
        let codec = track.codec_of_pt.get(usize::from(*pt)).copied().flatten();
        Ok(match (out, codec) {
            (None, Some(codec)) => Err(codec),
            _ => Ok(()),
        })
    }

    /// The subscriber's answer left out a codec a track in the room is sent in: tell it once
    /// per time the track is offered to it (the publisher and the others are not affected).
    fn tell_codec_unsupported(&mut self, local: Local, track_ref: TrackRef, codec: Codec) {
        let Some(track) = self.tracks.get(track_ref.0) else {
            return;
        };
        self.stats.codec_refusals += 1;
        let message = ServerMessage::Error {
            code: switchboard_protocol::ErrorCode::CodecUnsupported,
            message: format!(
                "track {:?} of {:?} is sent in {codec}, which this session's answer did not \
                 accept; it is not forwarded to you",
                track.track_id, track.publisher_peer
            ),
            request: None,
        };
        self.signal(local, message);
    }

    /// A packet showed that a bound subscriber does not decode the track's codec `pt`: it loses
    /// the track (`trackUnpublished`, then `codecUnsupported`), and its slot takes the next one.
    pub(super) fn refuse_codec(
        &mut self,
        local: Local,
        slot_id: SlotId,
        track_ref: TrackRef,
        pt: str0m::media::Pt,
    ) {
        let Some(codec) = self
            .tracks
            .get(track_ref.0)
            .and_then(|t| t.codec_of_pt.get(usize::from(*pt)).copied().flatten())
        else {
            return;
        };
        if self.unbind(local, slot_id) != Some(track_ref) {
            return;
        }
        self.tell_codec_unsupported(local, track_ref, codec);
        self.fill_slots(local);
        self.negotiate_later(local);
    }

    fn bind(&mut self, local: Local, slot_id: SlotId, track_ref: TrackRef) {
        let Some(track) = self.tracks.get_mut(track_ref.0) else {
            return;
        };
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        let who = p.id;
        let Some(slot) = p.slot_mut(slot_id) else {
            return;
        };
        let video = track.kind == MediaKind::Video;
        slot.source = Some(track_ref);
        slot.restart(video);
        track.subscribers.push((local, slot_id));
        let message = ServerMessage::TrackPublished {
            track: track.info(),
            peer_id: track.publisher_peer.clone(),
            mid: slot.mid.to_string(),
            stream_id: slot.stream_id.clone(),
        };
        self.outputs.push_back(super::interface::Output::Signal {
            participant: who,
            message,
        });
        if video {
            // Its layer is chosen by the first packets; ask every layer for a keyframe, so the
            // one chosen starts soon (the throttle keeps this to one request per interval).
            self.request_keyframes(track_ref, KeyframeRequestKind::Pli);
            // A layer it wants may be switched off: on again at once.
            self.dynacast_track(track_ref);
        }
    }

    /// Detach a slot from its source, telling the subscriber. Returns the track it carried.
    pub(super) fn unbind(&mut self, local: Local, slot_id: SlotId) -> Option<TrackRef> {
        self.flush_one(local);
        let p = self.members.get_mut(local.0)?;
        let who = p.id;
        let slot = p.slot_mut(slot_id)?;
        let track_ref = slot.source.take()?;
        let mid = slot.mid.to_string();
        let track = self.tracks.get_mut(track_ref.0)?;
        track.subscribers.retain(|s| *s != (local, slot_id));
        self.outputs.push_back(super::interface::Output::Signal {
            participant: who,
            message: ServerMessage::TrackUnpublished {
                track_id: track.track_id.clone(),
                peer_id: track.publisher_peer.clone(),
                mid,
            },
        });
        Some(track_ref)
    }

    /// A slot's track stopped (it went unlive or was removed): the subscriber hears it and the
    /// slot takes the next waiting track.
    pub(super) fn release_slot(&mut self, sub: Local, slot_id: SlotId, track_ref: TrackRef) {
        // Packets of the old track already written to the subscriber go out before the news
        // that its slot changed, so they do not arrive announced as the next track's.
        self.flush_one(sub);
        let Some(track) = self.tracks.get(track_ref.0) else {
            return;
        };
        let (track_id, peer_id) = (track.track_id.clone(), track.publisher_peer.clone());
        let Some(p) = self.members.get_mut(sub.0) else {
            return;
        };
        let who = p.id;
        let Some(slot) = p.slot_mut(slot_id) else {
            return;
        };
        if slot.source != Some(track_ref) {
            return;
        }
        slot.source = None;
        let mid = slot.mid.to_string();
        self.outputs.push_back(super::interface::Output::Signal {
            participant: who,
            message: ServerMessage::TrackUnpublished {
                track_id,
                peer_id,
                mid,
            },
        });
        self.fill_slots(sub);
    }

    /// `subscribe`: receive the track now if it is live (as soon as a slot is free), or when it
    /// goes live.
    pub(super) fn subscribe(&mut self, local: Local, track_id: &str, request: &str) -> bool {
        let Some(track_ref) = self.room_track(local, track_id) else {
            self.unknown_track(local, track_id, request);
            return false;
        };
        let Some(track) = self.tracks.get(track_ref.0) else {
            return false;
        };
        if track.publisher == local {
            return true; // your own media never comes back to you
        }
        let (live, kind) = (track.live(), track.kind);
        let Some(p) = self.members.get_mut(local.0) else {
            return false;
        };
        if p.subscriptions.contains(&track_ref) {
            return true;
        }
        p.subscriptions.push(track_ref);
        if live {
            p.wanted.push_back((track_ref, kind));
            self.fill_slots(local);
            self.negotiate_later(local);
        }
        true
    }

    /// `unsubscribe`: stop receiving the track; its slot takes the next waiting track.
    pub(super) fn unsubscribe(&mut self, local: Local, track_id: &str, request: &str) -> bool {
        let Some(track_ref) = self.room_track(local, track_id) else {
            self.unknown_track(local, track_id, request);
            return false;
        };
        let Some(p) = self.members.get_mut(local.0) else {
            return false;
        };
        p.subscriptions.retain(|t| *t != track_ref);
        p.wanted.retain(|(t, _)| *t != track_ref);
        let bound = p
            .slots
            .iter()
            .find(|(_, s)| s.source == Some(track_ref))
            .map(|(k, _)| SlotId(k));
        if let Some(slot_id) = bound {
            if let Some(track) = self.tracks.get_mut(track_ref.0) {
                track.subscribers.retain(|s| *s != (local, slot_id));
            }
            self.release_slot(local, slot_id, track_ref);
            // The slot is free for the next waiting track; it may need none of the offers.
            self.negotiate_later(local);
        }
        true
    }

    pub(super) fn negotiate_later(&mut self, local: Local) {
        if !self.negotiations.contains(&local) {
            self.negotiations.push(local);
        }
    }
}
