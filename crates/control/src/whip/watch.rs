//! The life of a WHIP/WHEP session after its `POST`: a task reads the participant's events
//! (no WebSocket takes them), subscribes a member's player to that member's tracks as they
//! appear, ends the session when its credential runs out, and when the shard removes the
//! participant — DELETE, media that never connected or stayed disconnected past the grace, a
//! kick, a shutdown — forgets the resource and releases the room.

use switchboard_core::{Command, ParticipantId};
use switchboard_protocol::{LeaveReason, ServerMessage, TrackInfo};
use switchboard_runtime::ParticipantEvent;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::AppState;

/// One session's participant, as its watch knows it.
pub(crate) struct Watch {
    state: AppState,
    participant: ParticipantId,
    shard: usize,
    room: String,
    /// A member's player: the peer id whose tracks it plays.
    member: Option<String>,
    /// Unix second the credential runs out.
    expires_at: Option<u64>,
    /// The participant is gone and the room released (once).
    done: bool,
}

impl Watch {
    pub fn new(
        state: AppState,
        participant: ParticipantId,
        shard: usize,
        room: String,
        member: Option<String>,
        expires_at: Option<u64>,
    ) -> Watch {
        Watch {
            state,
            participant,
            shard,
            room,
            member,
            expires_at,
            done: false,
        }
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn shard(&self) -> usize {
        self.shard
    }

    pub fn participant(&self) -> ParticipantId {
        self.participant
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    fn subscribe(&self, track: &TrackInfo) {
        let _ = self.state.runtime().command(
            self.shard,
            Command::Subscribe {
                participant: self.participant,
                track_id: track.track_id.clone(),
            },
        );
    }

    /// A signalling message for the participant. Nobody reads them but this watch: the server
    /// never offers to such a session, and everything else is room news.
    pub fn on_signal(&mut self, message: &ServerMessage) {
        let Some(member) = self.member.as_deref() else {
            if let ServerMessage::Offer { .. } = message {
                warn!(participant = %self.participant, "a server offer for a WHIP/WHEP session");
            }
            return;
        };
        match message {
            ServerMessage::Joined { members, .. } => {
                for track in members
                    .iter()
                    .filter(|p| p.peer_id == member)
                    .flat_map(|p| &p.tracks)
                {
                    self.subscribe(track);
                }
            }
            ServerMessage::TrackDefined { peer_id, track } if peer_id == member => {
                self.subscribe(track);
            }
            _ => {}
        }
    }

    /// The shard removed the participant (or stopped): release the room, once.
    pub fn removed(&mut self) {
        if !self.done {
            self.done = true;
            crate::session::left_room(&self.state, &self.room);
        }
    }

    fn credential_expired(&mut self) {
        info!(participant = %self.participant, "WHIP/WHEP credential expired");
        self.expires_at = None;
        let _ = self.state.runtime().command(
            self.shard,
            Command::Leave {
                participant: self.participant,
                reason: LeaveReason::CredentialExpired,
            },
        );
    }
}

/// Watch the session until its participant is gone; then forget resource `id` (if it was
/// registered).
pub(crate) fn spawn_watch(
    mut watch: Watch,
    mut events: mpsc::Receiver<ParticipantEvent>,
    id: Option<String>,
) {
    if watch.done {
        if let Some(id) = &id {
            watch.state.inner.whip.forget(id);
        }
        return;
    }
    tokio::spawn(async move {
        loop {
            let expiry = watch.expires_at.map(crate::session::expiry_instant);
            let expired = async {
                match expiry {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = events.recv() => match event {
                    Some(ParticipantEvent::Signal(message)) => watch.on_signal(&message),
                    Some(ParticipantEvent::Removed(reason)) => {
                        info!(participant = %watch.participant, ?reason, "HTTP session ended");
                        break;
                    }
                    None => break,
                },
                () = expired => watch.credential_expired(),
            }
        }
        if let Some(id) = &id {
            watch.state.inner.whip.forget(id);
        }
        watch.removed();
    });
}
