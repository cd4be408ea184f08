//! Operator actions on a shard (the admin REST API's backend) and data messages between
//! members. A message is an opaque [`Payload`]: fanning it out to a room clones a pointer per
//! member, never the JSON.

use switchboard_protocol::admin::{ParticipantDetail, RoomDetail, RoomSummary, TrackDetail};
use switchboard_protocol::{ErrorCode, LeaveReason, MuteOrigin, Payload, ServerMessage};
use tracing::info;

use super::interface::{AdminAction, AdminReply};
use super::participant::Local;
use super::Shard;

impl Shard {
    pub(super) fn admin(&mut self, action: AdminAction) -> AdminReply {
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
                Ok(local) => {
                    info!(%room, %peer_id, "kicked by an operator");
                    self.remove(local, Some(LeaveReason::Kicked));
                    AdminReply::Done
                }
                Err(what) => AdminReply::NotFound(what),
            },
            AdminAction::SetMuted {
                room,
                peer_id,
                track_id,
                muted,
            } => self.operator_mute(&room, &peer_id, &track_id, muted),
            AdminAction::CloseRoom { room } => {
                let Some(members) = self.rooms.get(&room).map(|r| r.members.clone()) else {
                    return AdminReply::NotFound("room");
                };
                info!(%room, "closed by an operator");
                for local in members {
                    self.remove(local, Some(LeaveReason::RoomClosed));
                }
                AdminReply::Done
            }
            AdminAction::UpdateSubscriptions {
                room,
                peer_id,
                subscribe,
                unsubscribe,
            } => self.update_subscriptions(&room, &peer_id, &subscribe, &unsubscribe),
            AdminAction::Message { room, to, data } => {
                let Some(members) = self.rooms.get(&room).map(|r| r.members.clone()) else {
                    return AdminReply::NotFound("room");
                };
                match self.deliver(&members, None, to.as_deref(), &data) {
                    true => AdminReply::Done,
                    false => AdminReply::NotFound("peer"),
                }
            }
        }
    }

    /// A participant's data message to its room or to one peer in it.
    pub(super) fn participant_message(&mut self, local: Local, to: Option<String>, data: Payload) {
        let Some(p) = self.members.get(local.0) else {
            return;
        };
        let from = p.peer_id.clone();
        let members: Vec<Local> = self
            .rooms
            .get(&p.room)
            .map(|r| r.members.iter().copied().filter(|m| *m != local).collect())
            .unwrap_or_default();
        if !self.deliver(&members, Some(from), to.as_deref(), &data) {
            let to = to.unwrap_or_default();
            self.signal(
                local,
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
        members: &[Local],
        from: Option<String>,
        to: Option<&str>,
        data: &Payload,
    ) -> bool {
        let targets: Vec<Local> = members
            .iter()
            .copied()
            .filter(|m| match to {
                None => true,
                Some(peer) => self.members.get(m.0).is_some_and(|p| p.peer_id == peer),
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

    fn room_detail(&self, room: &str) -> Option<RoomDetail> {
        let r = self.rooms.get(room)?;
        let participants = r
            .members
            .iter()
            .filter_map(|m| self.members.get(m.0))
            .map(|p| ParticipantDetail {
                peer_id: p.peer_id.clone(),
                name: p.name.clone(),
                connected: p.connected,
                tracks: p
                    .tracks
                    .iter()
                    .filter_map(|t| self.tracks.get(t.0))
                    .map(|t| TrackDetail {
                        track_id: t.track_id.clone(),
                        kind: t.kind,
                        muted: t.muted(),
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

    fn operator_mute(
        &mut self,
        room: &str,
        peer_id: &str,
        track_id: &str,
        muted: bool,
    ) -> AdminReply {
        let local = match self.find(room, peer_id) {
            Ok(local) => local,
            Err(what) => return AdminReply::NotFound(what),
        };
        let Some(track_ref) = self.members.get(local.0).and_then(|p| {
            p.tracks
                .iter()
                .copied()
                .find(|t| self.tracks.get(t.0).is_some_and(|t| t.track_id == track_id))
        }) else {
            return AdminReply::NotFound("track");
        };
        info!(%room, %peer_id, %track_id, muted, "track mute changed by an operator");
        self.set_muted(track_ref, MuteOrigin::Operator, muted);
        AdminReply::Done
    }

    /// LiveKit's `UpdateSubscriptions`: every id is checked first, so a bad one changes nothing.
    fn update_subscriptions(
        &mut self,
        room: &str,
        peer_id: &str,
        subscribe: &[String],
        unsubscribe: &[String],
    ) -> AdminReply {
        let local = match self.find(room, peer_id) {
            Ok(local) => local,
            Err(what) => return AdminReply::NotFound(what),
        };
        let all_known = subscribe
            .iter()
            .chain(unsubscribe)
            .all(|id| self.room_track(local, id).is_some());
        if !all_known {
            return AdminReply::NotFound("track");
        }
        for id in unsubscribe {
            self.unsubscribe(local, id, "admin");
        }
        for id in subscribe {
            self.subscribe(local, id, "admin");
        }
        AdminReply::Done
    }
}
