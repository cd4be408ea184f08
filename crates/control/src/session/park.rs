//! Sessions that outlive their connection.
//!
//! Every joined session with a resume token is registered here under its token. A `resume` on
//! a new connection *takes over* the session: from the connection that still holds it (the old
//! socket may be dead without either side having noticed yet) or from its parking place once
//! the old connection ended. A parked session keeps its room membership and its shard's event
//! channel; while parked it keeps the data messages addressed to it (bounded) and drops the
//! rest (the `resumed` snapshot replaces them), and it ends by itself after the grace period
//! (`left {reason: "reconnectTimeout"}`), when its credential expires, or when the shard ends
//! it.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use parking_lot::Mutex;
use switchboard_core::{Command, ParticipantId};
use switchboard_protocol::{LeaveReason, ServerMessage};
use switchboard_runtime::ParticipantEvent;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::AppState;

/// Data messages a parked session keeps for its resumer; older ones are dropped first.
pub(crate) const PARKED_MESSAGES: usize = 256;

/// What a session hands to the connection that resumes it.
#[derive(Debug)]
pub(crate) struct Handover {
    pub participant: ParticipantId,
    pub room: String,
    pub peer_id: String,
    pub shard: usize,
    pub events: mpsc::Receiver<ParticipantEvent>,
    pub expires_at: Option<u64>,
    /// Data messages that arrived while nobody was connected, oldest first.
    pub backlog: Vec<ServerMessage>,
}

/// A request to hand the session over; answered on the oneshot.
pub(crate) type TakeOver = oneshot::Sender<Handover>;

/// Resume tokens → the current holder of each session.
#[derive(Debug, Default)]
pub(crate) struct Resumable {
    holders: Mutex<HashMap<String, mpsc::Sender<TakeOver>>>,
}

impl Resumable {
    /// Register the holder of the session `token` names; returns where take-overs arrive.
    pub fn register(&self, token: &str) -> mpsc::Receiver<TakeOver> {
        let (tx, rx) = mpsc::channel(1);
        self.holders.lock().insert(token.to_owned(), tx);
        rx
    }

    pub fn forget(&self, token: &str) {
        self.holders.lock().remove(token);
    }

    /// Take over the session `token` names (the token is used up). `None`: unknown or used.
    pub async fn take_over(&self, token: &str) -> Option<Handover> {
        let holder = self.holders.lock().remove(token)?;
        let (reply, handed) = oneshot::channel();
        holder.send(reply).await.ok()?;
        tokio::time::timeout(Duration::from_secs(5), handed)
            .await
            .ok()?
            .ok()
    }
}

/// A random, unguessable token (128 bits).
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // Not expected on any supported system; std's hash keys come from the OS RNG too.
        for half in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0);
            half.copy_from_slice(&h.finish().to_be_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Park a session whose connection ended: wait for a take-over, the grace period, the
/// credential's expiry or the shard's removal, whichever comes first.
pub(crate) fn park(
    state: AppState,
    token: String,
    mut takeovers: mpsc::Receiver<TakeOver>,
    session: Handover,
    grace: Duration,
) {
    let Handover {
        participant,
        room,
        peer_id,
        shard,
        mut events,
        expires_at,
        backlog,
    } = session;
    let _ = state
        .runtime()
        .command(shard, Command::Detach { participant });
    info!(%participant, %room, %peer_id, grace_s = grace.as_secs(), "session parked");
    tokio::spawn(async move {
        let mut kept: VecDeque<ServerMessage> = backlog.into();
        let give_up = tokio::time::sleep(grace);
        tokio::pin!(give_up);
        let expiry = async {
            match expires_at {
                Some(at) => tokio::time::sleep_until(super::expiry_instant(at).into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expiry);
        let end = loop {
            tokio::select! {
                ask = takeovers.recv() => {
                    let Some(reply) = ask else { break Some(LeaveReason::ReconnectTimeout) };
                    let handover = Handover {
                        participant,
                        room: room.clone(),
                        peer_id: peer_id.clone(),
                        shard,
                        events,
                        expires_at,
                        backlog: kept.into(),
                    };
                    match reply.send(handover) {
                        Ok(()) => return,
                        // The resumer went away in the meantime: the session ends.
                        Err(_) => break Some(LeaveReason::ReconnectTimeout),
                    }
                }
                event = events.recv() => match event {
                    Some(ParticipantEvent::Signal(message @ ServerMessage::Message { .. })) => {
                        if kept.len() == PARKED_MESSAGES {
                            kept.pop_front();
                        }
                        kept.push_back(message);
                    }
                    // State messages are replaced by the `resumed` snapshot.
                    Some(ParticipantEvent::Signal(_)) => {}
                    // The shard ended the session (kicked, room closed, shutdown, ...).
                    Some(ParticipantEvent::Removed(_)) | None => break None,
                },
                () = &mut give_up => break Some(LeaveReason::ReconnectTimeout),
                () = &mut expiry => break Some(LeaveReason::CredentialExpired),
            }
        };
        state.inner.resumable.forget(&token);
        if let Some(reason) = end {
            info!(%participant, %room, ?reason, "parked session ends");
            let _ = state.runtime().command(
                shard,
                Command::Leave {
                    participant,
                    reason,
                },
            );
        }
        super::left_room(&state, &room);
    });
}
