//! Joining and leaving: a participant enters a room with its prepared engine, hears who is
//! there, and its tracks and subscriptions go with it when it leaves.

use std::collections::VecDeque;

use switchboard_protocol::webhook::WebhookEvent;
use switchboard_protocol::{
    ActiveSpeaker, ErrorCode, LeaveReason, PeerInfo, ServerMessage, PROTOCOL_VERSION,
};
use tracing::info;

use super::engine::Engine;
use super::interface::Output;
use super::negotiation::error;
use super::participant::{Local, Negotiation, Participant, TrackRef};
use super::Shard;
use crate::hash::FastMap;
use crate::ids::ParticipantId;
use crate::rtc_template::NewRtc;

/// A `Command::Join`, unpacked.
pub(crate) struct JoinRequest {
    pub pid: ParticipantId,
    pub room: String,
    pub peer_id: String,
    pub name: String,
    pub new: NewRtc,
    pub auto_subscribe: bool,
    pub resume_token: Option<String>,
    pub server_offers: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Room {
    pub members: Vec<Local>,
    pub tracks: Vec<TrackRef>,
    /// The speakers last announced to the room (`speakers.rs`).
    pub speakers: Vec<ActiveSpeaker>,
}

impl Shard {
    pub(super) fn peer_info(&self, local: Local) -> Option<PeerInfo> {
        let p = self.members.get(local.0)?;
        let tracks = p
            .tracks
            .iter()
            .filter_map(|t| self.tracks.get(t.0))
            .map(|t| t.info())
            .collect();
        Some(PeerInfo {
            peer_id: p.peer_id.clone(),
            name: p.name.clone(),
            tracks,
            media_state: p.media_state,
        })
    }

    /// The member of `room` with `peer_id`, or what was not found ("room" or "peer").
    pub(super) fn find(&self, room: &str, peer_id: &str) -> Result<Local, &'static str> {
        let r = self.rooms.get(room).ok_or("room")?;
        r.members
            .iter()
            .copied()
            .find(|m| self.members.get(m.0).is_some_and(|p| p.peer_id == peer_id))
            .ok_or("peer")
    }

    pub(super) fn join(&mut self, join: JoinRequest) {
        let JoinRequest {
            pid,
            room,
            peer_id,
            name,
            new,
            auto_subscribe,
            resume_token,
            server_offers,
        } = join;
        let taken = self.ids.contains_key(&pid) || self.find(&room, &peer_id).is_ok();
        let limit = self.config.max_participants_per_room;
        let full = limit > 0
            && self
                .rooms
                .get(&room)
                .is_some_and(|r| r.members.len() >= limit);
        let refusal = if taken {
            Some((
                ErrorCode::PeerIdTaken,
                format!("peer id {peer_id:?} is already in room {room:?}"),
            ))
        } else if full {
            Some((
                ErrorCode::RoomFull,
                format!("room {room:?} has reached its limit of {limit} participants"),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            self.outputs.push_back(Output::Signal {
                participant: pid,
                message: error(code, message, "join"),
            });
            self.outputs.push_back(Output::Removed {
                participant: pid,
                reason: None,
            });
            // The refused engine is dropped under the guard like any other.
            Engine::new(new.rtc).close(pid);
            return;
        }
        let members: Vec<PeerInfo> = self
            .rooms
            .get(&room)
            .map(|r| {
                r.members
                    .iter()
                    .filter_map(|m| self.peer_info(*m))
                    .collect()
            })
            .unwrap_or_default();
        let participant = Participant {
            id: pid,
            peer_id: peer_id.clone(),
            name: name.clone(),
            room: room.clone(),
            engine: Engine::new(new.rtc),
            ufrag: new.ufrag.clone(),
            candidates: new.candidates,
            addrs: Vec::new(),
            deadline: None,
            dirty: false,
            slots: Default::default(),
            wanted: VecDeque::new(),
            tracks: Vec::new(),
            published: Vec::new(),
            publications: Vec::new(),
            auto_subscribe,
            server_offers,
            subscriptions: Vec::new(),
            detached: false,
            media_state: Default::default(),
            routes: FastMap::default(),
            negotiation: Negotiation::AwaitingFirstOffer,
            joined_at: self.now,
            connected: false,
            disconnected_since: None,
            ingress: super::ingress::IngressBudget::new(self.now),
            remote_candidates: 0,
            told_mline_limit: false,
            slot_counter: 0,
            feedback: FastMap::default(),
            channels: Vec::new(),
            data_budget: super::datachannel::budget(self.now),
            data_notice_at: None,
            preferences: Vec::new(),
            estimate: None,
            link: Default::default(),
        };
        let local = Local(self.members.insert(participant));
        self.ids.insert(pid, local);
        self.hold_ufrag(new.ufrag, local);
        if !self.rooms.contains_key(&room) {
            self.notify(WebhookEvent::RoomStarted { room: room.clone() });
        }
        self.notify(WebhookEvent::ParticipantJoined {
            room: room.clone(),
            peer_id: peer_id.clone(),
            name: name.clone(),
        });
        let room_state = self.rooms.entry(room.clone()).or_default();
        let others = room_state.members.clone();
        let tracks: Vec<TrackRef> = room_state.tracks.clone();
        let speakers = room_state.speakers.clone();
        room_state.members.push(local);
        info!(participant = %pid, %room, %peer_id, "joined");
        self.signal(
            local,
            ServerMessage::Joined {
                protocol_version: PROTOCOL_VERSION,
                room,
                peer_id: peer_id.clone(),
                members,
                resume_token,
                // The shard knows no TURN configuration: the control plane adds them.
                ice_servers: Vec::new(),
            },
        );
        let me = PeerInfo {
            peer_id,
            name,
            tracks: Vec::new(),
            media_state: Default::default(),
        };
        for other in others {
            self.signal(other, ServerMessage::PeerJoined { peer: me.clone() });
        }
        // The room's talk so far, so a newcomer does not wait for the next change.
        if !speakers.is_empty() {
            self.signal(local, ServerMessage::ActiveSpeakers { speakers });
        }
        // A member that takes every track subscribes to what the room has; the live ones wait
        // for slots until the first offer/answer is done.
        if auto_subscribe {
            let wanted: Vec<(TrackRef, _)> = tracks
                .iter()
                .filter_map(|t| self.tracks.get(t.0).map(|track| (*t, track)))
                .filter(|(_, track)| track.live())
                .map(|(t, track)| (t, track.kind))
                .collect();
            if let Some(p) = self.members.get_mut(local.0) {
                p.subscriptions = tracks;
                p.wanted.extend(wanted);
            }
        }
        self.drain_now(local);
    }

    /// Take a participant out: its tracks end for everyone, its subscriptions go, the room
    /// hears it left, and the demux forgets its addresses.
    pub(super) fn remove(&mut self, local: Local, reason: Option<LeaveReason>) {
        let Some(own) = self.members.get(local.0).map(|p| p.tracks.clone()) else {
            return;
        };
        for track in own {
            self.remove_track(track);
        }
        let Some(p) = self.members.remove(local.0) else {
            return;
        };
        self.ids.remove(&p.id);
        for (key, slot) in p.slots.iter() {
            if let Some(track) = slot.source.and_then(|t| self.tracks.get_mut(t.0)) {
                track
                    .subscribers
                    .retain(|s| *s != (local, super::participant::SlotId(key)));
            }
        }
        if let Some(reason) = reason {
            self.notify(WebhookEvent::ParticipantLeft {
                room: p.room.clone(),
                peer_id: p.peer_id.clone(),
                reason,
            });
        }
        if let Some(room) = self.rooms.get_mut(&p.room) {
            room.members.retain(|m| *m != local);
            let others = room.members.clone();
            if others.is_empty() {
                self.rooms.remove(&p.room);
                info!(room = %p.room, "room closed");
                self.notify(WebhookEvent::RoomFinished {
                    room: p.room.clone(),
                });
            }
            for other in others {
                self.signal(
                    other,
                    ServerMessage::PeerLeft {
                        peer_id: p.peer_id.clone(),
                    },
                );
            }
        }
        self.demux.forget(local, &p.ufrag, &p.addrs);
        self.release_ufrag(p.ufrag.clone());
        info!(participant = %p.id, peer_id = %p.peer_id, ?reason, "left");
        self.outputs.push_back(Output::Removed {
            participant: p.id,
            reason,
        });
        p.engine.close(p.id);
    }

    /// `ufrag` routes to `local` now; the runtime hears it (see `Output::IceUfrag`).
    pub(super) fn hold_ufrag(&mut self, ufrag: String, local: Local) {
        self.demux.add_ufrag(ufrag.clone(), local);
        self.outputs
            .push_back(Output::IceUfrag { ufrag, held: true });
    }

    pub(super) fn release_ufrag(&mut self, ufrag: String) {
        self.outputs
            .push_back(Output::IceUfrag { ufrag, held: false });
    }

    pub(super) fn notify(&mut self, event: WebhookEvent) {
        self.outputs
            .push_back(Output::Notify(super::interface::Notification::Event(event)));
    }
}
