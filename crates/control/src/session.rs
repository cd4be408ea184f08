//! One signalling WebSocket: join a room (credential, limits, admission), relay SDP, candidates
//! and messages to the participant's shard, relay the shard's messages back, and leave when
//! either side ends, the credential expires, or the server drains.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use switchboard_core::{Command, ParticipantId};
use switchboard_protocol::webhook::AdmissionRequest;
use switchboard_protocol::{
    validate_display_name, validate_peer_id, validate_room_name, ClientMessage, Credential,
    ErrorCode, LeaveReason, ServerMessage,
};
use switchboard_runtime::{ParticipantEvent, RuntimeError};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::auth;
use crate::webhooks::admission;
use crate::AppState;

/// Signalling messages a shard may queue for one connection before it counts as too slow.
const EVENT_QUEUE: usize = 1024;

enum Phase {
    Idle,
    /// A join was sent to `shard`; the shard's replies arrive on `events`.
    Joined {
        participant: ParticipantId,
        room: String,
        peer_id: String,
        shard: usize,
        events: mpsc::Receiver<ParticipantEvent>,
        /// Unix seconds when the credential runs out (`None`: no credential in dev mode).
        expires_at: Option<u64>,
    },
}

struct Session {
    socket: WebSocket,
    state: AppState,
    remote: Option<SocketAddr>,
    phase: Phase,
    drain: tokio::sync::watch::Receiver<Option<u64>>,
}

pub(crate) async fn run(socket: WebSocket, state: AppState, remote: Option<SocketAddr>) {
    let metrics = state.metrics().clone();
    metrics.websocket_connections.inc();
    let drain = state.inner.drain.subscribe();
    let mut session = Session {
        socket,
        state,
        remote,
        phase: Phase::Idle,
        drain,
    };
    session.run().await;
    metrics.websocket_connections.dec();
}

/// Random enough for ids that only need to be unique in a room (std's SipHash keys are seeded
/// from the OS per `RandomState`).
fn random_peer_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    format!("peer-{:016x}", h.finish())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn error(code: ErrorCode, message: impl Into<String>, request: Option<&str>) -> ServerMessage {
    ServerMessage::Error {
        code,
        message: message.into(),
        request: request.map(str::to_owned),
    }
}

/// When a credential expiring at Unix second `at` runs out, on the monotonic clock.
fn expiry_instant(at: u64) -> Instant {
    Instant::now() + Duration::from_secs(at.saturating_sub(unix_now()))
}

impl Session {
    async fn run(&mut self) {
        let draining = *self.drain.borrow_and_update();
        if let Some(deadline_ms) = draining {
            self.send(ServerMessage::Draining { deadline_ms }).await;
        }
        let mut drain_open = true;
        loop {
            let expiry = match &self.phase {
                Phase::Joined {
                    expires_at: Some(at),
                    ..
                } => Some(expiry_instant(*at)),
                _ => None,
            };
            let event = async {
                match &mut self.phase {
                    Phase::Joined { events, .. } => events.recv().await,
                    Phase::Idle => std::future::pending().await,
                }
            };
            let expired = async {
                match expiry {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                incoming = self.socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
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
                () = expired => self.credential_expired(),
                changed = self.drain.changed(), if drain_open => {
                    let deadline = *self.drain.borrow_and_update();
                    match (changed, deadline) {
                        (Ok(()), Some(deadline_ms)) => {
                            self.send(ServerMessage::Draining { deadline_ms }).await;
                        }
                        (Ok(()), None) => {}
                        // The application state is gone: no drain notice can come any more;
                        // stop watching (the session itself goes on until the shard ends it).
                        (Err(_), _) => drain_open = false,
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
            let _ = self.state.runtime().command(
                shard,
                Command::Leave {
                    participant,
                    reason: LeaveReason::Requested,
                },
            );
            self.left_room(&room);
        }
    }

    fn left_room(&self, room: &str) {
        self.state.runtime().release(room);
        self.state
            .inner
            .joined
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn credential_expired(&mut self) {
        if let Phase::Joined {
            participant,
            shard,
            expires_at,
            ..
        } = &mut self.phase
        {
            info!(%participant, "credential expired");
            // Once: the shard answers with the removal, which ends the session.
            *expires_at = None;
            let _ = self.state.runtime().command(
                *shard,
                Command::Leave {
                    participant: *participant,
                    reason: LeaveReason::CredentialExpired,
                },
            );
        }
    }

    /// Returns false when the connection is over.
    async fn on_event(&mut self, event: Option<ParticipantEvent>) -> bool {
        match event {
            Some(ParticipantEvent::Signal(message)) => {
                match &message {
                    ServerMessage::Joined { .. } => {
                        self.state
                            .metrics()
                            .join_outcomes
                            .with_label_values(&["ok"])
                            .inc();
                    }
                    ServerMessage::Error {
                        code,
                        request: Some(r),
                        ..
                    } if r == "join" => {
                        // The shard refused the join (its removal notice follows). Go back to
                        // idle before the client hears of it, so an immediate retry on this
                        // connection is a fresh join, not `alreadyJoined`.
                        self.count_refusal(*code);
                        if let Phase::Joined { room, .. } =
                            std::mem::replace(&mut self.phase, Phase::Idle)
                        {
                            self.left_room(&room);
                        }
                    }
                    _ => {}
                }
                self.send(message).await;
                true
            }
            Some(ParticipantEvent::Removed(reason)) => self.removed(reason).await,
            // The shard dropped our channel: it stopped.
            None => self.removed(Some(LeaveReason::ServerShutdown)).await,
        }
    }

    fn count_refusal(&self, code: ErrorCode) {
        let label = serde_json::to_value(code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
        self.state
            .metrics()
            .join_outcomes
            .with_label_values(&[&label])
            .inc();
    }

    async fn removed(&mut self, reason: Option<LeaveReason>) -> bool {
        if let Phase::Joined { room, .. } = std::mem::replace(&mut self.phase, Phase::Idle) {
            self.left_room(&room);
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

    async fn on_text(&mut self, text: &str) {
        let limit = self.state.config().limits.max_message_bytes;
        if text.len() > limit {
            self.send(error(
                ErrorCode::MessageTooLarge,
                format!("messages are limited to {limit} bytes"),
                None,
            ))
            .await;
            return;
        }
        let raw: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.send(error(ErrorCode::BadMessage, format!("not JSON: {e}"), None))
                    .await;
                return;
            }
        };
        let message: ClientMessage = match serde_json::from_value(raw.clone()) {
            Ok(m) => m,
            Err(e) => {
                self.send(error(
                    ErrorCode::BadMessage,
                    format!("not a valid message: {e}"),
                    raw.get("type").and_then(|t| t.as_str()),
                ))
                .await;
                return;
            }
        };
        let kind = message.kind();
        match message {
            ClientMessage::Join {
                room,
                name,
                peer_id,
                mode: _,
                credential,
            } => {
                if let Err((code, message)) = self.join(room, name, peer_id, credential, raw).await
                {
                    self.count_refusal(code);
                    self.send(error(code, message, Some("join"))).await;
                }
            }
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
            ClientMessage::Message { data, to } => {
                self.forward(kind, |participant| Command::Message {
                    participant,
                    to,
                    data,
                })
                .await
            }
            ClientMessage::UpdateCredential { credential } => {
                self.update_credential(credential).await
            }
        }
    }

    async fn update_credential(&mut self, credential: Credential) {
        const REQ: Option<&str> = Some("updateCredential");
        let config = &self.state.config().auth;
        let Phase::Joined {
            peer_id,
            expires_at,
            ..
        } = &mut self.phase
        else {
            self.send(error(
                ErrorCode::NotJoined,
                "join before updateCredential",
                REQ,
            ))
            .await;
            return;
        };
        match auth::verify(config, &credential, peer_id, unix_now()) {
            Ok(at) => {
                *expires_at = Some(at);
                self.send(ServerMessage::CredentialUpdated { expires_at: at })
                    .await;
            }
            Err(e) => self.send(error(e.code(), e.message(), REQ)).await,
        }
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
        let result = self.state.runtime().command(*shard, make(*participant));
        if let Err(e) = result {
            self.send(runtime_error(e, kind)).await;
        }
    }

    async fn join(
        &mut self,
        room: String,
        name: Option<String>,
        peer_id: Option<String>,
        credential: Option<Credential>,
        raw: serde_json::Value,
    ) -> Result<(), (ErrorCode, String)> {
        if matches!(self.phase, Phase::Joined { .. }) {
            return Err((
                ErrorCode::AlreadyJoined,
                "this connection is already in a room; open another connection to join another"
                    .into(),
            ));
        }
        if self.state.is_draining() {
            return Err((
                ErrorCode::Draining,
                "the server is restarting and takes no new joins; reconnect shortly".into(),
            ));
        }
        if let Some(addr) = self.remote {
            if !self.state.inner.join_rate.allow(addr.ip(), Instant::now()) {
                return Err((
                    ErrorCode::RateLimited,
                    "too many joins from this address; wait a minute".into(),
                ));
            }
        }
        validate_room_name(&room).map_err(|e| {
            (
                ErrorCode::InvalidRoomName,
                format!("room name {e} (letters, digits, '-', '_', '.'; 1-64 characters)"),
            )
        })?;
        if let Some(id) = &peer_id {
            validate_peer_id(id).map_err(|e| {
                (
                    ErrorCode::InvalidPeerId,
                    format!("peer id {e} (letters, digits, '-', '_', '.'; 1-64 characters)"),
                )
            })?;
        }
        if let Some(name) = &name {
            validate_display_name(name)
                .map_err(|e| (ErrorCode::InvalidName, format!("name {e}")))?;
        }
        // A credential is bound to a peer id, so the client must name it.
        let expires_at = match (&peer_id, &credential) {
            (None, Some(_)) => {
                return Err((
                    ErrorCode::CredentialInvalid,
                    "a credential is bound to a peer id: send peerId with it".into(),
                ))
            }
            (None, None) => auth::admit(&self.state.config().auth, None, "", unix_now()),
            (Some(id), c) => auth::admit(&self.state.config().auth, c.as_ref(), id, unix_now()),
        }
        .map_err(|e| (e.code(), e.message()))?;
        let peer_id = peer_id.unwrap_or_else(random_peer_id);
        let name = name.unwrap_or_else(|| peer_id.clone());
        let runtime = self.state.runtime().clone();
        let max_rooms = self.state.config().limits.max_rooms;
        if max_rooms > 0 && runtime.shard_of(&room).is_none() && runtime.room_count() >= max_rooms {
            return Err((
                ErrorCode::TooManyRooms,
                format!("this server hosts at most {max_rooms} rooms"),
            ));
        }
        if let Some(check) = &self.state.config().admission {
            let request = AdmissionRequest {
                room: room.clone(),
                peer_id: peer_id.clone(),
                name: name.clone(),
                remote_addr: self.remote.map(|a| a.to_string()).unwrap_or_default(),
                join: raw,
            };
            admission(&self.state.inner.http, check, &request)
                .await
                .map_err(|m| (ErrorCode::AdmissionDenied, m))?;
        }
        let shard = runtime.place(&room);
        let rtc = match runtime.build_rtc(shard).await {
            Ok(rtc) => rtc,
            Err(e) => {
                runtime.release(&room);
                return Err(runtime_error_parts(e));
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
            return Err(runtime_error_parts(e));
        }
        info!(%participant, %room, %peer_id, shard, "join requested");
        self.state
            .inner
            .joined
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.phase = Phase::Joined {
            participant,
            room,
            peer_id,
            shard,
            events: rx,
            expires_at,
        };
        Ok(())
    }
}

fn runtime_error_parts(e: RuntimeError) -> (ErrorCode, String) {
    let code = match e {
        RuntimeError::Busy => ErrorCode::ServerBusy,
        _ => ErrorCode::Internal,
    };
    (code, e.to_string())
}

fn runtime_error(e: RuntimeError, request: &str) -> ServerMessage {
    let (code, message) = runtime_error_parts(e);
    error(code, message, Some(request))
}
