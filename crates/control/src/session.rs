//! One signalling WebSocket: join a room, relay SDP and candidates to the participant's shard,
//! relay the shard's messages back, and leave when either side ends.

use std::hash::{BuildHasher, Hasher};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use switchboard_core::{Command, ParticipantId};
use switchboard_protocol::{
    validate_display_name, validate_peer_id, validate_room_name, ClientMessage, ErrorCode,
    LeaveReason, ServerMessage, MAX_MESSAGE_BYTES,
};
use switchboard_runtime::{ParticipantEvent, RuntimeError};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::AppState;

/// Signalling messages a shard may queue for one connection before it counts as too slow.
const EVENT_QUEUE: usize = 1024;

enum Phase {
    Idle,
    /// A join was sent to `shard`; the shard's replies arrive on `events`.
    Joined {
        participant: ParticipantId,
        room: String,
        shard: usize,
        events: mpsc::Receiver<ParticipantEvent>,
    },
}

struct Session {
    socket: WebSocket,
    state: AppState,
    phase: Phase,
}

pub(crate) async fn run(socket: WebSocket, state: AppState) {
    let mut session = Session {
        socket,
        state,
        phase: Phase::Idle,
    };
    session.run().await;
}

/// Random enough for ids that only need to be unique in a room (std's SipHash keys are seeded
/// from the OS per `RandomState`).
fn random_peer_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    format!("peer-{:016x}", h.finish())
}

fn error(code: ErrorCode, message: impl Into<String>, request: Option<&str>) -> ServerMessage {
    ServerMessage::Error {
        code,
        message: message.into(),
        request: request.map(str::to_owned),
    }
}

impl Session {
    async fn run(&mut self) {
        loop {
            let event = async {
                match &mut self.phase {
                    Phase::Joined { events, .. } => events.recv().await,
                    Phase::Idle => std::future::pending().await,
                }
            };
            tokio::select! {
                incoming = self.socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if !self.on_text(text.as_str()).await {
                            break;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        self.send(error(ErrorCode::BadMessage, "binary frames are not part of the protocol; send JSON text", None)).await;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        debug!(error = %e, "websocket error");
                        break;
                    }
                },
                event = event => {
                    if !self.on_event(event).await {
                        return;
                    }
                }
            }
        }
        // The client went away without waiting for `left`: take it out of its room.
        if let Phase::Joined {
            participant,
            room,
            shard,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Idle)
        {
            let _ = self.state.runtime.command(
                shard,
                Command::Leave {
                    participant,
                    reason: LeaveReason::Requested,
                },
            );
            self.state.runtime.release(&room);
        }
    }

    /// Returns false when the connection is over.
    async fn on_event(&mut self, event: Option<ParticipantEvent>) -> bool {
        match event {
            Some(ParticipantEvent::Signal(message)) => {
                self.send(message).await;
                true
            }
            Some(ParticipantEvent::Removed(reason)) => self.removed(reason).await,
            // The shard dropped our channel: it stopped.
            None => self.removed(Some(LeaveReason::ServerShutdown)).await,
        }
    }

    async fn removed(&mut self, reason: Option<LeaveReason>) -> bool {
        if let Phase::Joined { room, .. } = std::mem::replace(&mut self.phase, Phase::Idle) {
            self.state.runtime.release(&room);
        }
        let Some(reason) = reason else {
            // A refused join: the client may try again on this connection.
            return true;
        };
        self.send(ServerMessage::Left { reason }).await;
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "left".into(),
            })))
            .await;
        false
    }

    async fn send(&mut self, message: ServerMessage) {
        match serde_json::to_string(&message) {
            Ok(text) => {
                if let Err(e) = self.socket.send(Message::Text(text.into())).await {
                    debug!(error = %e, "websocket send failed");
                }
            }
            Err(e) => warn!(error = %e, "could not serialize a server message"),
        }
    }

    /// Returns false when the connection must close.
    async fn on_text(&mut self, text: &str) -> bool {
        if text.len() > MAX_MESSAGE_BYTES {
            self.send(error(
                ErrorCode::MessageTooLarge,
                format!("messages are limited to {MAX_MESSAGE_BYTES} bytes"),
                None,
            ))
            .await;
            return true;
        }
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                self.send(error(
                    ErrorCode::BadMessage,
                    format!("not a valid message: {e}"),
                    None,
                ))
                .await;
                return true;
            }
        };
        let kind = message.kind();
        match message {
            ClientMessage::Join {
                room,
                name,
                peer_id,
                mode: _,
            } => self.join(room, name, peer_id).await,
            ClientMessage::Offer { sdp } => {
                self.forward(kind, |participant| Command::Offer { participant, sdp })
                    .await
            }
            ClientMessage::Answer { sdp } => {
                self.forward(kind, |participant| Command::Answer { participant, sdp })
                    .await
            }
            ClientMessage::Candidate { candidate, .. } => {
                self.forward(kind, |participant| Command::Candidate {
                    participant,
                    candidate,
                })
                .await
            }
            ClientMessage::Leave {} => {
                self.forward(kind, |participant| Command::Leave {
                    participant,
                    reason: LeaveReason::Requested,
                })
                .await
            }
        }
        true
    }

    async fn forward(&mut self, kind: &str, make: impl FnOnce(ParticipantId) -> Command) {
        let Phase::Joined {
            participant, shard, ..
        } = &self.phase
        else {
            self.send(error(
                ErrorCode::NotJoined,
                format!("send join before {kind}"),
                Some(kind),
            ))
            .await;
            return;
        };
        let result = self.state.runtime.command(*shard, make(*participant));
        if let Err(e) = result {
            self.send(runtime_error(e, kind)).await;
        }
    }

    async fn join(&mut self, room: String, name: Option<String>, peer_id: Option<String>) {
        const REQ: Option<&str> = Some("join");
        if matches!(self.phase, Phase::Joined { .. }) {
            self.send(error(
                ErrorCode::AlreadyJoined,
                "this connection is already in a room; open another connection to join another",
                REQ,
            ))
            .await;
            return;
        }
        if let Err(e) = validate_room_name(&room) {
            self.send(error(
                ErrorCode::InvalidRoomName,
                format!("room name {e} (letters, digits, '-', '_', '.'; 1-64 characters)"),
                REQ,
            ))
            .await;
            return;
        }
        let peer_id = match peer_id {
            Some(id) => {
                if let Err(e) = validate_peer_id(&id) {
                    self.send(error(
                        ErrorCode::InvalidPeerId,
                        format!("peer id {e} (letters, digits, '-', '_', '.'; 1-64 characters)"),
                        REQ,
                    ))
                    .await;
                    return;
                }
                id
            }
            None => random_peer_id(),
        };
        let name = match name {
            Some(name) => {
                if let Err(e) = validate_display_name(&name) {
                    self.send(error(ErrorCode::InvalidName, format!("name {e}"), REQ))
                        .await;
                    return;
                }
                name
            }
            None => peer_id.clone(),
        };
        let runtime = self.state.runtime.clone();
        let shard = runtime.place(&room);
        let rtc = match runtime.build_rtc(shard).await {
            Ok(rtc) => rtc,
            Err(e) => {
                runtime.release(&room);
                self.send(runtime_error(e, "join")).await;
                return;
            }
        };
        let participant = runtime.next_participant_id();
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let command = Command::Join {
            participant,
            room: room.clone(),
            peer_id: peer_id.clone(),
            name,
            rtc: Box::new(rtc),
        };
        if let Err(e) = runtime.join(shard, command, tx) {
            runtime.release(&room);
            self.send(runtime_error(e, "join")).await;
            return;
        }
        info!(%participant, %room, %peer_id, shard, "join requested");
        self.phase = Phase::Joined {
            participant,
            room,
            shard,
            events: rx,
        };
    }
}

fn runtime_error(e: RuntimeError, request: &str) -> ServerMessage {
    let code = match e {
        RuntimeError::Busy => ErrorCode::ServerBusy,
        _ => ErrorCode::Internal,
    };
    error(code, e.to_string(), Some(request))
}
