//! Operator actions on a shard (the admin REST API's backend), data messages, and the
//! notifications a shard emits for webhooks and metrics.

use std::time::Duration;

use switchboard_protocol::admin::{ParticipantDetail, RoomDetail, RoomSummary, TrackDetail};
use switchboard_protocol::webhook::WebhookEvent;
use switchboard_protocol::{ErrorCode, LeaveReason, MediaKind, ServerMessage};
use tracing::info;

use crate::ids::{ParticipantId, TrackKey};
use crate::shard::Shard;

/// What an operator asks a shard.
#[derive(Debug, Clone)]
pub enum AdminAction {
    ListRooms,
    Room {
        room: String,
    },
    Kick {
        room: String,
        peer_id: String,
    },
    SetMuted {
        room: String,
        peer_id: String,
        track_id: String,
        muted: bool,
    },
    CloseRoom {
        room: String,
    },
    Message {
        room: String,
        to: Option<String>,
        data: serde_json::Value,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminReply {
    Rooms(Vec<RoomSummary>),
    Room(RoomDetail),
    Done,
    /// Names what was not found: "room", "peer" or "track".
    NotFound(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    Event(WebhookEvent),
    /// ICE and DTLS came up `after` the join reached the shard.
    Connected {
        room: String,
        peer_id: String,
        after: Duration,
    },
}

impl Shard {
    pub(crate) fn admin(&mut self, action: AdminAction) -> AdminReply {
        match action {
            AdminAction::ListRooms => {
                let mut rooms: Vec<RoomSummary> = self
                    .rooms
                    .iter()
                    .map(|(name, r)| RoomSummary {
                        room: name.clone(),
                        participants: r.members.len(),
                        tracks: r.tracks.len(),
                    })
                    .collect();
                rooms.sort_by(|a, b| a.room.cmp(&b.room));
                AdminReply::Rooms(rooms)
            }
            AdminAction::Room { room } => match self.room_detail(&room) {
                Some(detail) => AdminReply::Room(detail),
                None => AdminReply::NotFound("room"),
            },
            AdminAction::Kick { room, peer_id } => match self.find(&room, &peer_id) {
                Ok(pid) => {
                    info!(%room, %peer_id, "kicked by an operator");
                    self.remove(pid, Some(LeaveReason::Kicked));
                    AdminReply::Done
                }
                Err(what) => AdminReply::NotFound(what),
            },
            AdminAction::SetMuted {
                room,
                peer_id,
                track_id,
                muted,
            } => self.set_muted(&room, &peer_id, &track_id, muted),
            AdminAction::CloseRoom { room } => {
                let Some(members) = self.rooms.get(&room).map(|r| r.members.clone()) else {
                    return AdminReply::NotFound("room");
                };
                info!(%room, "closed by an operator");
                for pid in members {
                    self.remove(pid, Some(LeaveReason::RoomClosed));
                }
                AdminReply::Done
            }
            AdminAction::Message { room, to, data } => {
                let Some(members) = self.rooms.get(&room).map(|r| r.members.clone()) else {
                    return AdminReply::NotFound("room");
                };
                match self.deliver(&members, None, to.as_deref(), data) {
                    true => AdminReply::Done,
                    false => AdminReply::NotFound("peer"),
                }
            }
        }
    }

    /// A participant's data message to its room or to one peer in it.
    pub(crate) fn participant_message(
        &mut self,
        pid: ParticipantId,
        to: Option<String>,
        data: serde_json::Value,
    ) {
        let Some(p) = self.participants.get(&pid) else {
            return;
        };
        let from = p.peer_id.clone();
        let members: Vec<ParticipantId> = self
            .rooms
            .get(&p.room)
            .map(|r| r.members.iter().copied().filter(|m| *m != pid).collect())
            .unwrap_or_default();
        if !self.deliver(&members, Some(from), to.as_deref(), data) {
            let to = to.unwrap_or_default();
            self.signal(
                pid,
                ServerMessage::Error {
                    code: ErrorCode::UnknownPeer,
                    message: format!("no peer {to:?} in this room"),
                    request: Some("message".into()),
                },
            );
        }
    }

    /// Send a data message to `members`, or only to the one with peer id `to`. False when `to`
    /// names nobody among them.
    fn deliver(
        &mut self,
        members: &[ParticipantId],
        from: Option<String>,
        to: Option<&str>,
        data: serde_json::Value,
    ) -> bool {
        let targets: Vec<ParticipantId> = members
            .iter()
            .copied()
            .filter(|m| match to {
                None => true,
                Some(peer) => self.participants.get(m).is_some_and(|p| p.peer_id == peer),
            })
            .collect();
        if to.is_some() && targets.is_empty() {
            return false;
        }
        for target in targets {
            self.signal(
                target,
                ServerMessage::Message {
                    from: from.clone(),
                    data: data.clone(),
                },
            );
        }
        true
    }

    fn find(&self, room: &str, peer_id: &str) -> Result<ParticipantId, &'static str> {
        let r = self.rooms.get(room).ok_or("room")?;
        r.members
            .iter()
            .copied()
            .find(|m| {
                self.participants
                    .get(m)
                    .is_some_and(|p| p.peer_id == peer_id)
            })
            .ok_or("peer")
    }

    fn room_detail(&self, room: &str) -> Option<RoomDetail> {
        let r = self.rooms.get(room)?;
        let participants = r
            .members
            .iter()
            .filter_map(|m| self.participants.get(m))
            .map(|p| ParticipantDetail {
                peer_id: p.peer_id.clone(),
                name: p.name.clone(),
                connected: p.connected,
                tracks: p
                    .published
                    .iter()
                    .filter_map(|mid| {
                        self.tracks.get(&TrackKey {
                            publisher: p.id,
                            mid: *mid,
                        })
                    })
                    .map(|t| TrackDetail {
                        track_id: t.track_id.clone(),
                        kind: t.kind,
                        muted: t.muted,
                        subscribers: t.subscribers.len(),
                    })
                    .collect(),
            })
            .collect();
        Some(RoomDetail {
            room: room.to_owned(),
            participants,
        })
    }

    fn set_muted(&mut self, room: &str, peer_id: &str, track_id: &str, muted: bool) -> AdminReply {
        let pid = match self.find(room, peer_id) {
            Ok(pid) => pid,
            Err(what) => return AdminReply::NotFound(what),
        };
        let Some(key) = self
            .tracks
            .iter()
            .find_map(|(key, t)| (key.publisher == pid && t.track_id == track_id).then_some(*key))
        else {
            return AdminReply::NotFound("track");
        };
        let Some(track) = self.tracks.get_mut(&key) else {
            return AdminReply::NotFound("track");
        };
        if track.muted == muted {
            return AdminReply::Done;
        }
        track.muted = muted;
        let kind = track.kind;
        let video = kind == MediaKind::Video;
        let subscribers = track.subscribers.clone();
        info!(%room, %peer_id, %track_id, muted, "track mute changed by an operator");
        if !muted {
            // Resume as a new source for every subscriber: continuous sequence numbers across
            // the silence, and video restarts at a keyframe.
            for (sid, idx) in &subscribers {
                if let Some(slot) = self
                    .participants
                    .get_mut(sid)
                    .and_then(|p| p.slots.get_mut(*idx))
                {
                    slot.forwarder.switch_source(video);
                }
            }
            if video {
                self.request_keyframe(key, str0m::media::KeyframeRequestKind::Pli);
            }
        }
        let members = self
            .rooms
            .get(room)
            .map(|r| r.members.clone())
            .unwrap_or_default();
        for m in members {
            self.signal(
                m,
                ServerMessage::TrackMuted {
                    track_id: track_id.to_owned(),
                    peer_id: peer_id.to_owned(),
                    kind,
                    muted,
                },
            );
        }
        AdminReply::Done
    }
}
