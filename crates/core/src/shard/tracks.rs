//! How tracks come and go: defined (discoverable, no media yet), live (media arrives on the
//! publisher's m-line), back to defined when the m-line stops, removed. Each change is told to
//! the room (`trackDefined`, `trackRemoved`, `mediaState`), reaches the subscriptions, and
//! removing a track removes its subscriptions in the same call.

use str0m::media::{KeyframeRequestKind, Mid};
use switchboard_protocol::webhook::WebhookEvent;
use switchboard_protocol::{
    ErrorCode, MediaKind, MediaState, MuteOrigin, ServerMessage, TrackPublication, TrackSource,
};
use tracing::info;

use super::fanout::Track;
use super::layers::Layers;
use super::participant::{Local, TrackRef};
use super::Shard;
use crate::stats::Op;

/// Why a track could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TrackRefusal {
    /// The participant has its maximum of tracks.
    TooMany(usize),
    /// Another of its tracks has this name.
    NameTaken(String),
    /// The source cannot carry this kind of media.
    SourceMismatch(TrackSource, MediaKind),
}

impl TrackRefusal {
    fn code(&self) -> ErrorCode {
        match self {
            TrackRefusal::TooMany(_) => ErrorCode::TooManyTracks,
            TrackRefusal::NameTaken(_) | TrackRefusal::SourceMismatch(..) => {
                ErrorCode::InvalidTrack
            }
        }
    }

    fn message(&self) -> String {
        match self {
            TrackRefusal::TooMany(max) => format!("a participant may have at most {max} tracks"),
            TrackRefusal::NameTaken(name) => format!("you already have a track named {name:?}"),
            TrackRefusal::SourceMismatch(source, kind) => {
                format!("a {source:?} track cannot carry {kind:?}")
            }
        }
    }
}

/// What a new track is.
pub(crate) struct TrackSpec {
    pub name: String,
    pub kind: MediaKind,
    pub source: Option<TrackSource>,
    pub description: Option<String>,
    pub explicit: bool,
}

impl Shard {
    /// A new track of `local`, not live yet. Every member that takes every track subscribes.
    pub(super) fn define_track(
        &mut self,
        local: Local,
        spec: TrackSpec,
    ) -> Result<TrackRef, TrackRefusal> {
        let max = self.config.max_tracks_per_participant;
        let Some(p) = self.members.get(local.0) else {
            return Err(TrackRefusal::TooMany(0));
        };
        if p.tracks.len() >= max {
            return Err(TrackRefusal::TooMany(max));
        }
        let source = spec
            .source
            .unwrap_or_else(|| TrackSource::default_for(spec.kind));
        if !source.fits(spec.kind) {
            return Err(TrackRefusal::SourceMismatch(source, spec.kind));
        }
        let taken = p
            .tracks
            .iter()
            .filter_map(|t| self.tracks.get(t.0))
            .any(|t| t.name == spec.name);
        if taken {
            return Err(TrackRefusal::NameTaken(spec.name));
        }
        let (peer, room) = (p.peer_id.clone(), p.room.clone());
        let track = Track {
            publisher: local,
            publisher_peer: peer.clone(),
            track_id: format!("{peer}:{}", spec.name),
            name: spec.name,
            kind: spec.kind,
            source,
            description: spec.description,
            mid: None,
            explicit: spec.explicit,
            params: Vec::new(),
            codec_of_pt: [None; 128],
            sent_pt: None,
            red_pt: None,
            level: Default::default(),
            subscribers: Vec::new(),
            layers: Layers::new(self.config.keyframe_interval),
            owner_muted: false,
            operator_muted: false,
        };
        let info = track.info();
        let track_ref = TrackRef(self.tracks.insert(track));
        if let Some(p) = self.members.get_mut(local.0) {
            p.tracks.push(track_ref);
        }
        let others = self.room_members_except(&room, local);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.tracks.push(track_ref);
        }
        for other in others {
            if let Some(m) = self.members.get_mut(other.0) {
                if m.auto_subscribe {
                    m.subscriptions.push(track_ref);
                }
            }
            self.signal(
                other,
                ServerMessage::TrackDefined {
                    peer_id: peer.clone(),
                    track: info.clone(),
                },
            );
        }
        Ok(track_ref)
    }

    /// Media of `track_ref` arrives on the publisher's m-line `mid` from now on.
    fn go_live(&mut self, track_ref: TrackRef, mid: Mid) {
        let Some(track) = self.tracks.get(track_ref.0) else {
            return;
        };
        let publisher = track.publisher;
        let Some(p) = self.members.get_mut(publisher.0) else {
            return;
        };
        let Ok((params, sent_pt)) = p.engine.call(p.id, Op::Query, |rtc| {
            let sent = rtc.media(mid).and_then(|m| m.remote_pts().first().copied());
            (rtc.codec_config().params().to_vec(), sent)
        }) else {
            self.failed.push(publisher);
            return;
        };
        p.published.push((mid, track_ref));
        // Cached SSRC routes resolve to tracks when packets arrive; start them afresh.
        p.routes.clear();
        let (pid, room) = (p.id, p.room.clone());
        let Some(track) = self.tracks.get_mut(track_ref.0) else {
            return;
        };
        let mut codec_of_pt = [None; 128];
        for param in &params {
            if let Some(slot) = codec_of_pt.get_mut(usize::from(*param.pt())) {
                *slot = Some(param.spec().codec);
            }
            // RED (audio/red) carries this codec's frames.
            if let Some(slot) = param
                .red()
                .and_then(|r| codec_of_pt.get_mut(usize::from(*r)))
            {
                *slot = Some(param.spec().codec);
            }
        }
        track.red_pt = params.iter().find_map(|p| p.red());
        track.params = params;
        track.codec_of_pt = codec_of_pt;
        track.sent_pt = sent_pt;
        track.mid = Some(mid);
        track.layers.clear();
        let (kind, track_id, peer, info) = (
            track.kind,
            track.track_id.clone(),
            track.publisher_peer.clone(),
            track.info(),
        );
        info!(participant = %pid, %room, track = %track_id, ?kind, %mid, "track live");
        self.notify(WebhookEvent::TrackPublished {
            room: room.clone(),
            peer_id: peer.clone(),
            track_id,
            kind,
        });
        for other in self.room_members_except(&room, publisher) {
            self.signal(
                other,
                ServerMessage::TrackDefined {
                    peer_id: peer.clone(),
                    track: info.clone(),
                },
            );
            let subscribed = self
                .members
                .get(other.0)
                .is_some_and(|m| m.subscriptions.contains(&track_ref));
            if subscribed {
                if let Some(m) = self.members.get_mut(other.0) {
                    m.wanted.push_back((track_ref, kind));
                }
                self.fill_slots(other);
                self.negotiate_later(other);
            }
        }
        self.update_media_state(publisher);
    }

    /// The publisher's m-line for the track stopped: no more media. Subscribers' slots free up;
    /// an explicitly defined track stays discoverable, any other is removed.
    fn go_unlive(&mut self, track_ref: TrackRef) {
        let Some(track) = self.tracks.get_mut(track_ref.0) else {
            return;
        };
        let Some(mid) = track.mid.take() else {
            return;
        };
        let subscribers = std::mem::take(&mut track.subscribers);
        let (publisher, explicit, info) = (track.publisher, track.explicit, track.info());
        let (track_id, peer) = (track.track_id.clone(), track.publisher_peer.clone());
        self.timers.forget_keyframe(track_ref);
        let room = match self.members.get_mut(publisher.0) {
            Some(p) => {
                p.published.retain(|(m, _)| *m != mid);
                p.routes.clear();
                p.room.clone()
            }
            None => return,
        };
        info!(track = %track_id, "track no longer live");
        self.notify(WebhookEvent::TrackUnpublished {
            room: room.clone(),
            peer_id: peer.clone(),
            track_id: track_id.clone(),
        });
        for (sub, slot_id) in subscribers {
            self.release_slot(sub, slot_id, track_ref);
        }
        for m in self.room_members_except(&room, publisher) {
            if let Some(member) = self.members.get_mut(m.0) {
                member.wanted.retain(|(t, _)| *t != track_ref);
            }
            if explicit {
                self.signal(
                    m,
                    ServerMessage::TrackDefined {
                        peer_id: peer.clone(),
                        track: info.clone(),
                    },
                );
            }
        }
        if explicit {
            self.update_media_state(publisher);
        } else {
            self.remove_track(track_ref);
        }
    }

    /// The track leaves the room: subscriptions, slots and the definition go.
    pub(super) fn remove_track(&mut self, track_ref: TrackRef) {
        self.go_unlive(track_ref);
        let Some(track) = self.tracks.remove(track_ref.0) else {
            return;
        };
        let room = match self.members.get_mut(track.publisher.0) {
            Some(p) => {
                p.tracks.retain(|t| *t != track_ref);
                p.room.clone()
            }
            None => return,
        };
        if let Some(r) = self.rooms.get_mut(&room) {
            r.tracks.retain(|t| *t != track_ref);
        }
        for m in self.room_members_except(&room, track.publisher) {
            if let Some(member) = self.members.get_mut(m.0) {
                member.subscriptions.retain(|t| *t != track_ref);
                member.wanted.retain(|(t, _)| *t != track_ref);
            }
            self.signal(
                m,
                ServerMessage::TrackRemoved {
                    peer_id: track.publisher_peer.clone(),
                    track_id: track.track_id.clone(),
                },
            );
        }
        self.update_media_state(track.publisher);
    }

    /// The participant publishes on `mid` (str0m reported the m-line receiving): the track its
    /// offer described for that m-line, or one named after the mid.
    pub(super) fn publish(&mut self, local: Local, mid: Mid, kind: MediaKind) {
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        let mid_text = mid.to_string();
        let publication = p
            .publications
            .iter()
            .position(|t| t.mid == mid_text)
            .map(|i| p.publications.swap_remove(i))
            .unwrap_or(TrackPublication {
                mid: mid_text.clone(),
                name: None,
                source: None,
                description: None,
            });
        let name = publication.name.clone().unwrap_or(mid_text);
        // A name given to `defineTrack` before: that definition goes live.
        let defined = p.tracks.iter().copied().find(|t| {
            self.tracks
                .get(t.0)
                .is_some_and(|t| t.name == name && !t.live() && t.kind == kind)
        });
        let track_ref = match defined {
            Some(track_ref) => {
                if let Some(t) = self.tracks.get_mut(track_ref.0) {
                    if let Some(source) = publication.source.filter(|s| s.fits(kind)) {
                        t.source = source;
                    }
                    if publication.description.is_some() {
                        t.description = publication.description;
                    }
                }
                track_ref
            }
            None => {
                let spec = TrackSpec {
                    name,
                    kind,
                    source: publication.source,
                    description: publication.description,
                    explicit: false,
                };
                match self.define_track(local, spec) {
                    Ok(track_ref) => track_ref,
                    Err(refusal) => {
                        self.signal(
                            local,
                            ServerMessage::Error {
                                code: refusal.code(),
                                message: format!(
                                    "m-line {mid} is not forwarded: {}",
                                    refusal.message()
                                ),
                                request: Some("offer".into()),
                            },
                        );
                        return;
                    }
                }
            }
        };
        self.go_live(track_ref, mid);
    }

    /// The participant stopped sending on `mid`.
    pub(super) fn unpublish(&mut self, local: Local, mid: Mid) {
        if let Some(track) = self.members.get(local.0).and_then(|p| p.track_on(mid)) {
            self.go_unlive(track);
        }
    }

    /// `defineTrack` from the client.
    pub(super) fn define_command(&mut self, local: Local, spec: TrackSpec) {
        if let Err(refusal) = self.define_track(local, spec) {
            self.signal(
                local,
                ServerMessage::Error {
                    code: refusal.code(),
                    message: refusal.message(),
                    request: Some("defineTrack".into()),
                },
            );
        } else {
            self.update_media_state(local);
        }
    }

    /// One of `local`'s own tracks by its id.
    fn own_track(&self, local: Local, track_id: &str) -> Option<TrackRef> {
        let p = self.members.get(local.0)?;
        p.tracks
            .iter()
            .copied()
            .find(|t| self.tracks.get(t.0).is_some_and(|t| t.track_id == track_id))
    }

    /// Any track of `local`'s room by its id.
    pub(super) fn room_track(&self, local: Local, track_id: &str) -> Option<TrackRef> {
        let p = self.members.get(local.0)?;
        let room = self.rooms.get(&p.room)?;
        room.tracks
            .iter()
            .copied()
            .find(|t| self.tracks.get(t.0).is_some_and(|t| t.track_id == track_id))
    }

    /// Refuse a request naming a track that is not in the sender's room, to the sender alone.
    pub(super) fn unknown_track(&mut self, local: Local, track_id: &str, request: &str) {
        self.signal(
            local,
            ServerMessage::Error {
                code: ErrorCode::UnknownTrack,
                message: format!("no track {track_id:?} in your room (for {request})"),
                request: Some(request.into()),
            },
        );
    }

    /// `removeTrack` from the client: only its own.
    pub(super) fn remove_command(&mut self, local: Local, track_id: &str) {
        match self.own_track(local, track_id) {
            Some(track) => self.remove_track(track),
            None => self.unknown_track(local, track_id, "removeTrack"),
        }
    }

    /// `mute` from the client: only its own tracks.
    pub(super) fn mute_command(&mut self, local: Local, track_id: &str, muted: bool) {
        match self.own_track(local, track_id) {
            Some(track) => self.set_muted(track, MuteOrigin::Owner, muted),
            None => self.unknown_track(local, track_id, "mute"),
        }
    }

    /// Mute or unmute a track on behalf of `by`. Forwarding stops while its owner or an
    /// operator holds a mute; resuming starts every subscriber at a keyframe with continuous
    /// sequence numbers. The room hears every change of either mute.
    pub(super) fn set_muted(&mut self, track_ref: TrackRef, by: MuteOrigin, muted: bool) {
        let Some(track) = self.tracks.get_mut(track_ref.0) else {
            return;
        };
        let was = track.muted();
        let flag = match by {
            MuteOrigin::Owner => &mut track.owner_muted,
            MuteOrigin::Operator => &mut track.operator_muted,
        };
        if *flag == muted {
            return;
        }
        *flag = muted;
        let now_muted = track.muted();
        if now_muted {
            // A muted member stops talking at once, not when its smoothed level has decayed.
            track.level = Default::default();
        }
        let (kind, publisher) = (track.kind, track.publisher);
        let (track_id, peer) = (track.track_id.clone(), track.publisher_peer.clone());
        let subscribers = track.subscribers.clone();
        info!(track = %track_id, muted, ?by, "track mute changed");
        if was && !now_muted {
            let video = kind == MediaKind::Video;
            for (sub, slot_id) in &subscribers {
                if let Some(slot) = self
                    .members
                    .get_mut(sub.0)
                    .and_then(|p| p.slot_mut(*slot_id))
                {
                    slot.forwarder.switch_source(video);
                    slot.layer = None;
                }
            }
            if video {
                self.request_keyframes(track_ref, KeyframeRequestKind::Pli);
            }
        }
        let room = self
            .members
            .get(publisher.0)
            .map(|p| p.room.clone())
            .unwrap_or_default();
        let members = self
            .rooms
            .get(&room)
            .map(|r| r.members.clone())
            .unwrap_or_default();
        for m in members {
            self.signal(
                m,
                ServerMessage::TrackMuted {
                    track_id: track_id.clone(),
                    peer_id: peer.clone(),
                    kind,
                    muted,
                    by,
                },
            );
        }
        self.update_media_state(publisher);
    }

    /// What `local` sends right now, from its live unmuted tracks.
    pub(super) fn media_state_of(&self, local: Local) -> MediaState {
        let mut state = MediaState::default();
        let Some(p) = self.members.get(local.0) else {
            return state;
        };
        for track in p.tracks.iter().filter_map(|t| self.tracks.get(t.0)) {
            if !track.live() || track.muted() {
                continue;
            }
            match track.source {
                TrackSource::Microphone => state.audio = true,
                TrackSource::Camera => state.video = true,
                TrackSource::Screen | TrackSource::ScreenAudio => state.screen_share = true,
                TrackSource::Other => {}
            }
        }
        state
    }

    /// Tell the room when what `local` sends changed.
    fn update_media_state(&mut self, local: Local) {
        let state = self.media_state_of(local);
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        if p.media_state == state {
            return;
        }
        p.media_state = state;
        let (peer, room) = (p.peer_id.clone(), p.room.clone());
        for m in self.room_members_except(&room, local) {
            self.signal(
                m,
                ServerMessage::MediaState {
                    peer_id: peer.clone(),
                    state,
                },
            );
        }
    }

    pub(super) fn room_members_except(&self, room: &str, except: Local) -> Vec<Local> {
        self.rooms
            .get(room)
            .map(|r| r.members.iter().copied().filter(|m| *m != except).collect())
            .unwrap_or_default()
    }
}
