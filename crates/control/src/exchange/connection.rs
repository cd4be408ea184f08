//! One peer connection (`/v1/peer`): `register`, then every presence, call and mesh request
//! handed to the exchange, and the exchange's deliveries sent back. The rules: docs/protocol-peer.md.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use switchboard_protocol::peer::{PeerClientMessage, PeerLeaveReason, PeerServerMessage};
use switchboard_protocol::{validate_peer_id, Credential, ErrorCode};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::calls::NewCall;
use super::handle::Delivery;
use super::{Refusal, RegisterRequest};
use crate::client_socket::{ClientSocket, Written};
use crate::ratelimit::{ConnectionSlot, MessageRate};
use crate::session::{expiry_instant, new_token, unix_now};
use crate::{auth, turn, AppState};

const PING_EVERY: Duration = Duration::from_secs(5);
const SILENT_LIMIT: Duration = Duration::from_secs(15);
/// The scope of peers that registered without a credential (dev mode).
const NO_KEY_SCOPE: &str = "";

struct PeerConnection {
    socket: ClientSocket,
    state: AppState,
    remote: Option<SocketAddr>,
    conn: u64,
    deliveries: mpsc::Receiver<Delivery>,
    /// Set once `register` succeeded.
    peer_id: Option<String>,
    expires_at: Option<u64>,
    messages: MessageRate,
    last_heard: Instant,
    /// The connection ended with `leave` (or the server ended the registration).
    left: bool,
}

pub(crate) async fn run(
    socket: WebSocket,
    state: AppState,
    remote: Option<SocketAddr>,
    slot: ConnectionSlot,
) {
    let metrics = state.metrics().clone();
    metrics.websocket_connections.inc();
    let limits = &state.config().limits;
    let now = Instant::now();
    let (conn, deliveries) = state.exchange().connect();
    let mut pc = PeerConnection {
        messages: MessageRate::new(
            limits.messages_per_second,
            limits.message_bytes_per_second,
            now,
        ),
        socket: ClientSocket::new(socket, Duration::from_secs(limits.send_timeout_s.max(1))),
        state: state.clone(),
        remote,
        conn,
        deliveries,
        peer_id: None,
        expires_at: None,
        last_heard: now,
        left: false,
    };
    pc.serve().await;
    state.exchange().disconnect(conn, pc.left);
    drop(slot);
    metrics.websocket_connections.dec();
}

fn error(code: ErrorCode, message: impl Into<String>, request: &str) -> PeerServerMessage {
    PeerServerMessage::Error {
        code,
        message: message.into(),
        request: Some(request.to_owned()),
    }
}

impl PeerConnection {
    async fn serve(&mut self) {
        let mut drain = self.state.inner.drain.subscribe();
        let draining = *drain.borrow_and_update();
        if let Some(deadline_ms) = draining {
            self.send(PeerServerMessage::Draining { deadline_ms }).await;
        }
        let mut drain_open = true;
        let register_by =
            Instant::now() + Duration::from_secs(self.state.config().limits.join_timeout_s.max(1));
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.socket.is_unresponsive() {
                return;
            }
            let deadline = match (&self.peer_id, self.expires_at) {
                (None, _) => Some(register_by),
                (Some(_), Some(at)) => Some(expiry_instant(at)),
                (Some(_), None) => None,
            };
            let timer = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                incoming = self.socket.recv() => {
                    self.last_heard = Instant::now();
                    match incoming {
                        Some(Ok(Message::Text(text))) => {
                            if !self.on_text(text.as_str()).await {
                                return;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            self.send(PeerServerMessage::Error {
                                code: ErrorCode::BadMessage,
                                message: "binary frames are not part of the protocol; send JSON text".into(),
                                request: None,
                            }).await;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | None => return,
                        Some(Err(e)) => {
                            debug!(error = %e, "peer websocket error");
                            return;
                        }
                    }
                }
                delivery = self.deliveries.recv() => match delivery {
                    Some(Delivery::Message(m)) => self.send(*m).await,
                    Some(Delivery::Close(reason)) => {
                        self.finish(reason).await;
                        return;
                    }
                    None => {
                        warn!(remote = ?self.remote, "peer connection could not keep up with its events");
                        self.state.metrics().slow_clients_dropped.inc();
                        self.close("too slow").await;
                        return;
                    }
                },
                () = timer => {
                    if self.peer_id.is_none() {
                        let secs = self.state.config().limits.join_timeout_s;
                        self.send(PeerServerMessage::Error {
                            code: ErrorCode::JoinTimeout,
                            message: format!("no register within {secs} s of connecting; the connection is closed"),
                            request: None,
                        }).await;
                        self.close("register timeout").await;
                        return;
                    }
                    info!(peer = ?self.peer_id, "peer credential expired");
                    self.state.exchange().with(|e| e.leave(self.conn));
                    self.finish(PeerLeaveReason::CredentialExpired).await;
                    return;
                }
                _ = ping.tick() => {
                    if self.last_heard.elapsed() > SILENT_LIMIT {
                        info!(remote = ?self.remote, "peer connection silent; treating it as dropped");
                        return;
                    }
                    self.ping().await;
                }
                changed = drain.changed(), if drain_open => {
                    let deadline = *drain.borrow_and_update();
                    match (changed, deadline) {
                        (Ok(()), Some(deadline_ms)) => self.send(PeerServerMessage::Draining { deadline_ms }).await,
                        (Ok(()), None) => {}
                        (Err(_), _) => drain_open = false,
                    }
                }
            }
        }
    }

    /// Returns false when the connection is over.
    async fn on_text(&mut self, text: &str) -> bool {
        let limit = self.state.config().limits.max_message_bytes;
        if text.len() > limit {
            self.send(PeerServerMessage::Error {
                code: ErrorCode::MessageTooLarge,
                message: format!("messages are limited to {limit} bytes"),
                request: None,
            })
            .await;
            return true;
        }
        let message: PeerClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                let request = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned));
                self.send(PeerServerMessage::Error {
                    code: ErrorCode::BadMessage,
                    message: format!("not a valid message: {e}"),
                    request,
                })
                .await;
                return true;
            }
        };
        let kind = message.kind();
        if !matches!(message, PeerClientMessage::Ping {})
            && !self.messages.allow(text.len(), Instant::now())
        {
            self.send(error(
                ErrorCode::RateLimited,
                "too many messages on this connection; slow down",
                kind,
            ))
            .await;
            return true;
        }
        match self.handle(message).await {
            Ok(more) => more,
            Err((code, message)) => {
                self.send(error(code, message, kind)).await;
                true
            }
        }
    }

    async fn handle(&mut self, message: PeerClientMessage) -> Result<bool, Refusal> {
        let conn = self.conn;
        let exchange = self.state.exchange().clone();
        let now = Instant::now();
        match message {
            PeerClientMessage::Ping {} => self.send(PeerServerMessage::Pong {}).await,
            PeerClientMessage::Register {
                peer_id,
                credential,
                resume_token,
            } => self.register(peer_id, credential, resume_token).await?,
            PeerClientMessage::ListPeers {} => exchange.with(|e| e.list_peers(conn))?,
            PeerClientMessage::CallInitiate {
                call_id,
                callee_ids,
                media,
                kind,
                metadata,
                conversation_id,
            } => {
                let new = NewCall {
                    call_id,
                    callee_ids,
                    media,
                    kind,
                    metadata,
                    conversation_id,
                };
                exchange.with(|e| e.initiate(now, conn, new))?;
            }
            PeerClientMessage::CallInvite {
                call_id,
                callee_ids,
            } => exchange.with(|e| e.invite(now, conn, &call_id, callee_ids))?,
            PeerClientMessage::CallRespond { call_id, action } => {
                exchange.with(|e| e.respond(conn, &call_id, action))?;
            }
            PeerClientMessage::CallHangup { call_id, reason } => {
                exchange.with(|e| e.hangup(conn, &call_id, reason))?;
            }
            PeerClientMessage::CallSignal {
                call_id,
                to,
                signal,
            } => exchange.with(|e| e.signal(conn, &call_id, &to, signal))?,
            PeerClientMessage::CallTransport { call_id, state } => {
                exchange.with(|e| e.transport(conn, &call_id, state))?;
            }
            PeerClientMessage::CallMediaToggle {
                call_id,
                audio,
                video,
                screen_share,
            } => exchange.with(|e| e.media_toggle(conn, &call_id, audio, video, screen_share))?,
            PeerClientMessage::MeshJoin { room, name } => {
                let runtime = self.state.runtime().clone();
                // Under the exchange's lock, so an SFU join of the same name (which checks the
                // exchange) cannot slip between the check and the join.
                exchange.with(|e| {
                    let sfu = runtime.shard_of(&room).is_some();
                    e.mesh_join(conn, &room, name, sfu)
                })?;
            }
            PeerClientMessage::MeshLeave { room } => {
                exchange.with(|e| e.mesh_leave(conn, &room))?
            }
            PeerClientMessage::MeshSignal { room, to, signal } => {
                exchange.with(|e| e.mesh_signal(conn, &room, &to, signal))?;
            }
            PeerClientMessage::MeshMessage { room, data, to } => {
                exchange.with(|e| e.mesh_message(conn, &room, data, to.as_deref()))?;
            }
            PeerClientMessage::UpdateCredential { credential } => {
                let Some(peer) = self.peer_id.clone() else {
                    return Err(not_registered());
                };
                let at = auth::verify(&self.state.config().auth, &credential, &peer, unix_now())
                    .map_err(|e| (e.code(), e.message()))?;
                self.expires_at = Some(at);
                self.send(PeerServerMessage::CredentialUpdated { expires_at: at })
                    .await;
            }
            PeerClientMessage::Leave {} => {
                if self.peer_id.is_none() {
                    return Err(not_registered());
                }
                exchange.with(|e| e.leave(conn));
                self.finish(PeerLeaveReason::Requested).await;
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn register(
        &mut self,
        peer_id: Option<String>,
        credential: Option<Credential>,
        resume_token: Option<String>,
    ) -> Result<(), Refusal> {
        if self.peer_id.is_some() {
            return Err((
                ErrorCode::AlreadyRegistered,
                "this connection is registered already".into(),
            ));
        }
        if self.state.is_draining() {
            return Err((
                ErrorCode::Draining,
                "the server is restarting and takes no new registrations; reconnect shortly".into(),
            ));
        }
        if let Some(addr) = self.remote {
            if !self.state.inner.join_rate.allow(addr.ip(), Instant::now()) {
                return Err((
                    ErrorCode::RateLimited,
                    "too many joins and registrations from this address; wait a minute".into(),
                ));
            }
        }
        if let Some(id) = &peer_id {
            validate_peer_id(id).map_err(|e| {
                (
                    ErrorCode::InvalidPeerId,
                    format!("peer id {e} (letters, digits, '-', '_', '.'; 1-64 characters)"),
                )
            })?;
        }
        let config = &self.state.config().auth;
        let (expires_at, scope) = match (&peer_id, &credential) {
            (None, Some(_)) => {
                return Err((
                    ErrorCode::CredentialInvalid,
                    "a credential is bound to a peer id: send peerId with it".into(),
                ))
            }
            (None, None) => (
                auth::admit(config, None, "", unix_now()).map_err(|e| (e.code(), e.message()))?,
                NO_KEY_SCOPE.to_owned(),
            ),
            (Some(id), c) => {
                let at = auth::admit(config, c.as_ref(), id, unix_now())
                    .map_err(|e| (e.code(), e.message()))?;
                let scope = c
                    .as_ref()
                    .and_then(|c| auth::signing_key(config, c, id))
                    .unwrap_or(NO_KEY_SCOPE)
                    .to_owned();
                (at, scope)
            }
        };
        let peer_id = peer_id.unwrap_or_else(|| format!("peer-{}", &new_token()[..16]));
        let ice = turn::ice_servers(&self.state.config().turn, &peer_id, unix_now());
        let now = Instant::now();
        let conn = self.conn;
        let registration = self.state.exchange().with(|e| {
            e.register(
                now,
                conn,
                RegisterRequest {
                    peer_id: &peer_id,
                    scope: &scope,
                    resume: resume_token.as_deref(),
                    token: new_token(),
                    ice_servers: ice,
                },
            )
        })?;
        info!(peer = %registration.peer_id, "peer registered");
        self.peer_id = Some(registration.peer_id);
        self.expires_at = expires_at;
        // Sent through the connection's queue would reorder it after messages the registration
        // already queued (a take-over's `callIncoming`): send it first, then the queue follows.
        self.send(registration.message).await;
        Ok(())
    }

    async fn finish(&mut self, reason: PeerLeaveReason) {
        self.left = true;
        self.send(PeerServerMessage::Left { reason }).await;
        self.close("left").await;
    }

    async fn ping(&mut self) {
        if self.socket.ping().await == Written::StoppedReading {
            self.stopped_reading();
        }
    }

    async fn close(&mut self, why: &'static str) {
        self.socket.close(why).await;
    }

    fn stopped_reading(&mut self) {
        warn!(remote = ?self.remote, "peer client stopped reading; dropping the connection");
        self.state.metrics().slow_clients_dropped.inc();
    }

    async fn send(&mut self, message: PeerServerMessage) {
        if self.socket.send_json(&message).await == Written::StoppedReading {
            self.stopped_reading();
        }
    }
}

fn not_registered() -> Refusal {
    (
        ErrorCode::NotRegistered,
        "send register first (see docs/protocol-peer.md)".into(),
    )
}
