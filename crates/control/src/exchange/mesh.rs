//! Mesh rooms: the server keeps the membership and relays signals and data messages between
//! members; the members connect to each other.

use switchboard_protocol::peer::{MeshMember, PeerServerMessage};
use switchboard_protocol::{validate_display_name, validate_room_name, ErrorCode, Payload};

use super::calls::ROOM_PREFIX;
use super::{Exchange, Refusal};

#[derive(Debug, Default)]
pub(crate) struct MeshRoom {
    /// In the order they came.
    members: Vec<MeshMember>,
}

impl MeshRoom {
    fn has(&self, peer: &str) -> bool {
        self.members.iter().any(|m| m.peer_id == peer)
    }

    fn others(&self, peer: &str) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.peer_id != peer)
            .map(|m| m.peer_id.clone())
            .collect()
    }
}

fn not_in_room(room: &str) -> Refusal {
    (
        ErrorCode::NotInRoom,
        format!("you are not in mesh room {room:?}; send meshJoin first"),
    )
}

impl Exchange {
    /// `meshJoin`. `sfu_exists`: the runtime hosts an SFU room of that name.
    pub fn mesh_join(
        &mut self,
        conn: u64,
        room: &str,
        name: Option<String>,
        sfu_exists: bool,
    ) -> Result<(), Refusal> {
        let peer = self.registered(conn)?;
        validate_room_name(room).map_err(|e| {
            (
                ErrorCode::InvalidRoomName,
                format!("room name {e} (letters, digits, '-', '_', '.'; 1-64 characters)"),
            )
        })?;
        if sfu_exists || room.starts_with(ROOM_PREFIX) {
            return Err((
                ErrorCode::WrongRoomMode,
                format!("{room} is an SFU room (call.* rooms are SFU rooms of calls); join it on /v1/ws"),
            ));
        }
        if let Some(n) = &name {
            validate_display_name(n).map_err(|e| (ErrorCode::InvalidName, format!("name {e}")))?;
        }
        let max = self.config.mesh_max_members;
        let entry = self.mesh.entry(room.to_owned()).or_default();
        if entry.has(&peer) {
            return Err((
                ErrorCode::AlreadyJoined,
                format!("you are in mesh room {room} already"),
            ));
        }
        if entry.members.len() >= max {
            return Err((
                ErrorCode::RoomFull,
                format!("a mesh room holds at most {max} members: use an SFU room for more"),
            ));
        }
        let me = MeshMember {
            peer_id: peer.clone(),
            name: name.unwrap_or_else(|| peer.clone()),
        };
        let members = entry.members.clone();
        entry.members.push(me.clone());
        if let Some(p) = self.peers.get_mut(&peer) {
            p.mesh.insert(room.to_owned());
        }
        self.send(
            &peer,
            PeerServerMessage::MeshJoined {
                room: room.to_owned(),
                members: members.clone(),
            },
        );
        for other in members {
            self.send(
                &other.peer_id,
                PeerServerMessage::MeshPeerJoined {
                    room: room.to_owned(),
                    peer: me.clone(),
                },
            );
        }
        Ok(())
    }

    pub fn mesh_leave(&mut self, conn: u64, room: &str) -> Result<(), Refusal> {
        let peer = self.registered(conn)?;
        if !self.mesh.get(room).is_some_and(|r| r.has(&peer)) {
            return Err(not_in_room(room));
        }
        self.mesh_remove(&peer, room);
        self.send(
            &peer,
            PeerServerMessage::MeshLeft {
                room: room.to_owned(),
            },
        );
        Ok(())
    }

    /// Take `peer` out of mesh room `room`; the last one out removes the room.
    pub(super) fn mesh_remove(&mut self, peer: &str, room: &str) {
        let Some(r) = self.mesh.get_mut(room) else {
            return;
        };
        r.members.retain(|m| m.peer_id != peer);
        let others = r.others(peer);
        if r.members.is_empty() {
            self.mesh.remove(room);
        }
        if let Some(p) = self.peers.get_mut(peer) {
            p.mesh.remove(room);
        }
        for other in others {
            self.send(
                &other,
                PeerServerMessage::MeshPeerLeft {
                    room: room.to_owned(),
                    peer_id: peer.to_owned(),
                },
            );
        }
    }

    fn mesh_member(&self, conn: u64, room: &str) -> Result<(String, &MeshRoom), Refusal> {
        let peer = self.registered(conn)?;
        match self.mesh.get(room) {
            Some(r) if r.has(&peer) => Ok((peer, r)),
            _ => Err(not_in_room(room)),
        }
    }

    pub fn mesh_signal(
        &mut self,
        conn: u64,
        room: &str,
        to: &str,
        signal: serde_json::Value,
    ) -> Result<(), Refusal> {
        let (peer, r) = self.mesh_member(conn, room)?;
        if !signal.is_object() {
            return Err((ErrorCode::BadMessage, "signal must be a JSON object".into()));
        }
        if to == peer || !r.has(to) {
            return Err((
                ErrorCode::UnknownPeer,
                format!("{to} is not another member of mesh room {room}"),
            ));
        }
        self.send(
            to,
            PeerServerMessage::MeshSignal {
                room: room.to_owned(),
                from: peer,
                signal,
            },
        );
        Ok(())
    }

    pub fn mesh_message(
        &mut self,
        conn: u64,
        room: &str,
        data: Payload,
        to: Option<&str>,
    ) -> Result<(), Refusal> {
        let (peer, r) = self.mesh_member(conn, room)?;
        let targets = match to {
            Some(t) if t != peer && r.has(t) => vec![t.to_owned()],
            Some(t) => {
                return Err((
                    ErrorCode::UnknownPeer,
                    format!("{t} is not another member of mesh room {room}"),
                ))
            }
            None => r.others(&peer),
        };
        for target in targets {
            self.send(
                &target,
                PeerServerMessage::MeshMessage {
                    room: room.to_owned(),
                    from: peer.clone(),
                    data: data.clone(),
                },
            );
        }
        Ok(())
    }
}
