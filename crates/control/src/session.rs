//! One signalling WebSocket: join a room (credential, limits, admission), relay SDP, candidates
//! and messages to the participant's shard, relay the shard's messages back, and leave when
//! either side ends, the credential expires, or the server drains.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use switchboard_core::screen::{screen_answer, screen_candidate, screen_offer, SdpLimits};
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
use crate::ratelimit::{ConnectionSlot, MessageRate};
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
    /// A connection that never joins is closed at this time.
    join_deadline: Instant,
    messages: MessageRate,
    sdp_limits: SdpLimits,
    send_timeout: Duration,
    /// The client stopped reading (a send timed out): the connection is being dropped.
    unresponsive: bool,
}

pub(crate) async fn run(
    socket: WebSocket,
    state: AppState,
    remote: Option<SocketAddr>,
    slot: ConnectionSlot,
) {
    let metrics = state.metrics().clone();
    metrics.websocket_connections.inc();
    let drain = state.inner.drain.subscribe();
    let limits = &state.config().limits;
    let now = Instant::now();
    let mut session = Session {
        join_deadline: now + Duration::from_secs(limits.join_timeout_s.max(1)),
        messages: MessageRate::new(
            limits.messages_per_second,
            limits.message_bytes_per_second,
            now,
        ),
        sdp_limits: SdpLimits {
            max_mlines: limits.max_mlines_per_session,
            max_tracks: limits.max_tracks_per_participant,
        },
        send_timeout: Duration::from_secs(limits.send_timeout_s.max(1)),
        unresponsive: false,
        socket,
        state,
        remote,
        phase: Phase::Idle,
        drain,
    };
    session.run().await;
    drop(slot);
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
            if self.unresponsive {
                break;
            }
            let expiry = match &self.phase {
                Phase::Joined {
                    expires_at: Some(at),
                    ..
                } => Some(expiry_instant(*at)),
                _ => None,
            };
            let join_deadline = match self.phase {
                Phase::Idle => Some(self.join_deadline),
                Phase::Joined { .. } => None,
            };
            let join_timeout = async {
                match join_deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
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
                () = join_timeout => {
                    let secs = self.state.config().limits.join_timeout_s;
                    info!(remote = ?self.remote, "closing a connection that did not join in time");
                    self.send(error(
                        ErrorCode::JoinTimeout,
                        format!("no join within {secs} s of connecting; the connection is closed"),
                        None,
                    ))
                    .await;
                    self.close("join timeout").await;
                    return;
                }
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
            // The shard dropped our channel without a word: it stopped. That is a shutdown if
            // one is under way, otherwise the shard failed.
            None => {
                let reason = if self.state.runtime().is_stopping() {
                    LeaveReason::ServerShutdown
                } else {
                    LeaveReason::ServerError
                };
                self.removed(Some(reason)).await
            }
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
        self.close("left").await;
        false
    }

    async fn close(&mut self, why: &'static str) {
        if self.unresponsive {
            return;
        }
        let frame = Message::Close(Some(CloseFrame {
            code: 1000,
            reason: why.into(),
        }));
        let _ = tokio::time::timeout(self.send_timeout, self.socket.send(frame)).await;
    }

    /// Send one message. A client that does not take it within the send timeout (its TCP
    /// window stays shut: it stopped reading) is dropped: the session ends, its participant
    /// leaves, and the task is never pinned on a dead reader.
    async fn send(&mut self, message: ServerMessage) {
        if self.unresponsive {
            return;
        }
        let text = match serde_json::to_string(&message) {
            Ok(text) => text,
            Err(e) => {
                warn!(error = %e, "could not serialize a server message");
                return;
            }
        };
        match tokio::time::timeout(
            self.send_timeout,
            self.socket.send(Message::Text(text.into())),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(error = %e, "websocket send failed"),
            Err(_) => {
                warn!(remote = ?self.remote, "client stopped reading; dropping the connection");
                self.state.metrics().slow_clients_dropped.inc();
                self.unresponsive = true;
            }
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
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                // Say whether it was JSON at all, and which request it tried to be.
                let reply = match serde_json::from_str::<serde_json::Value>(text) {
                    Err(e) => error(ErrorCode::BadMessage, format!("not JSON: {e}"), None),
                    Ok(raw) => error(
                        ErrorCode::BadMessage,
                        format!("not a valid message: {e}"),
                        raw.get("type").and_then(|t| t.as_str()),
                    ),
                };
                self.send(reply).await;
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
                // The admission hook sees the join as the client sent it, custom fields too.
                let raw = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
                if let Err((code, message)) = self.join(room, name, peer_id, credential, raw).await
                {
                    self.count_refusal(code);
                    self.send(error(code, message, Some("join"))).await;
                }
            }
            ClientMessage::Offer { sdp } => {
                if !self.joined(kind).await {
                    return;
                }
                match screen_offer(&sdp, &self.sdp_limits) {
                    Ok(offer) => {
                        self.forward(kind, |participant| Command::Offer {
                            participant,
                            offer: Box::new(offer),
                        })
                        .await
                    }
                    Err(refusal) => {
                        self.send(error(
                            refusal.code(),
                            format!("offer refused: {refusal}"),
                            Some(kind),
                        ))
                        .await
                    }
                }
            }
            ClientMessage::Answer { sdp } => {
                if !self.joined(kind).await {
                    return;
                }
                match screen_answer(&sdp, &self.sdp_limits) {
                    Ok(answer) => {
                        self.forward(kind, |participant| Command::Answer {
                            participant,
                            answer: Box::new(answer),
                        })
                        .await
                    }
                    Err(refusal) => {
                        self.send(error(
                            refusal.code(),
                            format!("answer refused: {refusal}"),
                            Some(kind),
                        ))
                        .await
                    }
                }
            }
            ClientMessage::Candidate { candidate, .. } => {
                if !self.joined(kind).await {
                    return;
                }
                match screen_candidate(&candidate) {
                    Ok(candidate) => {
                        self.forward(kind, |participant| Command::Candidate {
                            participant,
                            candidate: candidate.map(Box::new),
                        })
                        .await
                    }
                    Err(refusal) => {
                        self.send(error(
                            ErrorCode::BadCandidate,
                            format!("bad ICE candidate: {refusal}"),
                            Some(kind),
                        ))
                        .await
                    }
                }
            }
            ClientMessage::Leave {} => {
                self.forward(kind, |participant| Command::Leave {
                    participant,
                    reason: LeaveReason::Requested,
                })
                .await
            }
            ClientMessage::Message { data, to } => {
                if !self.joined(kind).await {
                    return;
                }
                if !self.messages.allow(data.len(), Instant::now()) {
                    let limits = &self.state.config().limits;
                    let text = format!(
                        "data messages are limited to {} per second and {} bytes per second per \
                         connection; this one was dropped",
                        limits.messages_per_second, limits.message_bytes_per_second
                    );
                    self.state.metrics().messages_rate_limited.inc();
                    self.send(error(ErrorCode::RateLimited, text, Some(kind)))
                        .await;
                    return;
                }
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

    /// True when joined; otherwise tells the client `notJoined` for this request.
    async fn joined(&mut self, kind: &str) -> bool {
        if matches!(self.phase, Phase::Joined { .. }) {
            return true;
        }
        self.send(error(
            ErrorCode::NotJoined,
            format!("send join before {kind}"),
            Some(kind),
        ))
        .await;
        false
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
        let shard = runtime.place(&room).map_err(runtime_error_parts)?;
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
