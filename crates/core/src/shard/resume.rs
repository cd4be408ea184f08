//! A member whose signalling connection dropped keeps its session for a while (the control
//! plane holds the grace timer): the room hears `peerReconnecting`, media that still flows
//! keeps flowing, and a new connection that resumes gets the state of the room in one
//! `resumed` message (plus the server offer it may have missed) without anybody renegotiating.

use switchboard_protocol::{ServerMessage, SlotInfo, PROTOCOL_VERSION};
use tracing::info;

use super::participant::{Local, Negotiation};
use super::Shard;

impl Shard {
    pub(super) fn detach(&mut self, local: Local) {
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        if p.detached {
            return;
        }
        p.detached = true;
        let (peer, room) = (p.peer_id.clone(), p.room.clone());
        info!(participant = %p.id, %room, "signalling connection dropped; session kept");
        for m in self.room_members_except(&room, local) {
            self.signal(
                m,
                ServerMessage::PeerReconnecting {
                    peer_id: peer.clone(),
                },
            );
        }
    }

    pub(super) fn resume(&mut self, local: Local, resume_token: String) {
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        let was_detached = std::mem::replace(&mut p.detached, false);
        let (peer, room) = (p.peer_id.clone(), p.room.clone());
        let slots: Vec<SlotInfo> = p
            .slots
            .iter()
            .filter_map(|(_, slot)| {
                let track = self.tracks.get(slot.source?.0)?;
                Some(SlotInfo {
                    mid: slot.mid.to_string(),
                    peer_id: track.publisher_peer.clone(),
                    stream_id: slot.stream_id.clone(),
                    track: track.info(),
                })
            })
            .collect();
        let pending_offer = match &p.negotiation {
            Negotiation::ServerOffer(_, sdp) => Some(sdp.clone()),
            _ => None,
        };
        info!(participant = %p.id, %room, "session resumed");
        let members = self
            .room_members_except(&room, local)
            .into_iter()
            .filter_map(|m| self.peer_info(m))
            .collect();
        self.signal(
            local,
            ServerMessage::Resumed {
                protocol_version: PROTOCOL_VERSION,
                room: room.clone(),
                peer_id: peer.clone(),
                members,
                slots,
                resume_token,
                // Filled in by the control plane, as in `joined`.
                ice_servers: Vec::new(),
            },
        );
        // What it was told of its layers may be lost with the old connection.
        let own: Vec<_> = self
            .members
            .get(local.0)
            .map(|p| p.tracks.clone())
            .unwrap_or_default();
        for track in own {
            if let Some(t) = self.tracks.get_mut(track.0) {
                t.layers.dynacast.resend();
            }
            self.dynacast_track(track);
        }
        if let Some(sdp) = pending_offer {
            // It may have been lost with the old connection; answering it twice is harmless
            // (the second answer gets `noPendingOffer`).
            self.signal(local, ServerMessage::Offer { sdp });
        }
        if was_detached {
            for m in self.room_members_except(&room, local) {
                self.signal(
                    m,
                    ServerMessage::PeerReconnected {
                        peer_id: peer.clone(),
                    },
                );
            }
        }
    }
}
