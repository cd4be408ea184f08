//! One signalling WebSocket: join a room (credential, limits, admission) or resume a session,
//! relay SDP, candidates, track requests and messages to the participant's shard, relay the
//! shard's messages back, and leave — or park the session for a resume — when the connection
//! ends, the credential expires, or the server drains.
//!
//! | module | job |
//! |---|---|
//! | `mod.rs` | the connection's loop: socket, shard events, timers, keepalive, the end |
//! | `join.rs` | `join` and `resume` |
//! | `requests.rs` | every other client message: screening, validation, the signal check |
//! | `park.rs` | sessions that outlive their connection, and their take-over |

mod join;
mod park;
mod requests;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, WebSocket};
use switchboard_core::screen::SdpLimits;
use switchboard_core::{Command, ParticipantId};
use switchboard_protocol::{ErrorCode, LeaveReason, ServerMessage};
use switchboard_runtime::ParticipantEvent;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::client_socket::{ClientSocket, Written};
use crate::ratelimit::{ConnectionSlot, MessageRate};
use crate::{turn, AppState};

pub(crate) use park::{new_token, Resumable};
use park::{Handover, TakeOver};

/// Signalling messages a shard may queue for one connection before it counts as too slow.
const EVENT_QUEUE: usize = 1024;
/// The server pings this often (browsers answer WebSocket pings by themselves)...
const PING_EVERY: Duration = Duration::from_secs(5);
/// ...and counts a connection silent this long as dead (its session is parked).
const SILENT_LIMIT: Duration = Duration::from_secs(15);

/// A joined session.
struct Joined {
    participant: ParticipantId,
    room: String,
    peer_id: String,
    shard: usize,
    events: mpsc::Receiver<ParticipantEvent>,
    /// Unix seconds when the credential runs out (`None`: no credential in dev mode).
    expires_at: Option<u64>,
    /// The session's current resume token and where take-over requests for it arrive (`None`
    /// when resume is off).
    resume: Option<(String, mpsc::Receiver<TakeOver>)>,
}

enum Phase {
    Idle,
    /// A join (or resume) was sent to `shard`; the shard's replies arrive on `events`.
    Joined(Joined),
}

struct Session {
    socket: ClientSocket,
    state: AppState,
    remote: Option<SocketAddr>,
    phase: Phase,
    drain: tokio::sync::watch::Receiver<Option<u64>>,
    /// A connection that never joins is closed at this time.
    join_deadline: Instant,
    messages: MessageRate,
    sdp_limits: SdpLimits,
    /// The last time anything arrived from the client.
    last_heard: Instant,
    /// The client asked to leave: its session ends with the connection, no parking.
    leaving: bool,
    /// Data messages a resumed session missed, sent right after `resumed`.
    backlog: Vec<ServerMessage>,
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
        last_heard: now,
        leaving: false,
        backlog: Vec::new(),
        socket: ClientSocket::new(socket, Duration::from_secs(limits.send_timeout_s.max(1))),
        state,
        remote,
        phase: Phase::Idle,
        drain,
    };
    session.run().await;
    drop(slot);
    metrics.websocket_connections.dec();
}

pub(crate) fn unix_now() -> u64 {
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
pub(crate) fn expiry_instant(at: u64) -> Instant {
    Instant::now() + Duration::from_secs(at.saturating_sub(unix_now()))
}

/// A session left its room for good: the room's placement and the joined count drop.
pub(crate) fn left_room(state: &AppState, room: &str) {
    state.runtime().release(room);
    state
        .inner
        .joined
        .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
}

/// What ended the loop.
enum End {
    /// The connection is gone or unusable (the client closed it, it went silent, it stopped
    /// reading): the session is parked if it can be, or it leaves.
    Dropped,
    /// The session is over and the client was told (or it was taken over by a resume).
    Done,
}

impl Session {
    async fn run(&mut self) {
        let draining = *self.drain.borrow_and_update();
        if let Some(deadline_ms) = draining {
            self.send(ServerMessage::Draining { deadline_ms }).await;
        }
        let end = self.serve().await;
        if matches!(end, End::Dropped) {
            self.connection_dropped();
        }
    }

    async fn serve(&mut self) -> End {
        let mut drain_open = true;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.socket.is_unresponsive() {
                return End::Dropped;
            }
            let expiry = match &self.phase {
                Phase::Joined(Joined {
                    expires_at: Some(at),
                    ..
                }) => Some(expiry_instant(*at)),
                _ => None,
            };
            let join_deadline = match self.phase {
                Phase::Idle => Some(self.join_deadline),
                Phase::Joined(_) => None,
            };
            let join_timeout = async {
                match join_deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let expired = async {
                match expiry {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let (event, takeover) = match &mut self.phase {
                Phase::Joined(j) => (Some(&mut j.events), j.resume.as_mut().map(|r| &mut r.1)),
                Phase::Idle => (None, None),
            };
            let event = async {
                match event {
                    Some(events) => events.recv().await,
                    None => std::future::pending().await,
                }
            };
            let takeover = async {
                match takeover {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                incoming = self.socket.recv() => {
                    self.last_heard = Instant::now();
                    match incoming {
                        Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                        Some(Ok(Message::Binary(_))) => {
                            self.send(error(ErrorCode::BadMessage, "binary frames are not part of the protocol; send JSON text", None)).await;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | None => return End::Dropped,
                        Some(Err(e)) => {
                            debug!(error = %e, "websocket error");
                            return End::Dropped;
                        }
                    }
                }
                event = event => {
                    if !self.on_event(event).await {
                        return End::Done;
                    }
                }
                ask = takeover => {
                    if let Some(reply) = ask {
                        self.hand_over(reply).await;
                        return End::Done;
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
                    return End::Done;
                }
                _ = ping.tick() => {
                    if self.last_heard.elapsed() > SILENT_LIMIT {
                        info!(remote = ?self.remote, "connection silent; treating it as dropped");
                        return End::Dropped;
                    }
                    self.ping().await;
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
    }

    /// The connection ended without `left`: park the session for a resume, or take the
    /// participant out of its room.
    fn connection_dropped(&mut self) {
        let Phase::Joined(joined) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        let grace = Duration::from_secs(self.state.config().limits.resume_grace_s);
        match joined.resume {
            Some((token, takeovers)) if !self.leaving && !self.state.is_draining() => {
                let session = Handover {
                    participant: joined.participant,
                    room: joined.room,
                    peer_id: joined.peer_id,
                    shard: joined.shard,
                    events: joined.events,
                    expires_at: joined.expires_at,
                    backlog: std::mem::take(&mut self.backlog),
                };
                park::park(self.state.clone(), token, takeovers, session, grace);
            }
            resume => {
                if let Some((token, _)) = resume {
                    self.state.inner.resumable.forget(&token);
                }
                let _ = self.state.runtime().command(
                    joined.shard,
                    Command::Leave {
                        participant: joined.participant,
                        reason: LeaveReason::Requested,
                    },
                );
                left_room(&self.state, &joined.room);
            }
        }
    }

    /// A new connection resumes this session while this connection still holds it (it may be
    /// dead without us knowing): hand it over and end here.
    async fn hand_over(&mut self, reply: TakeOver) {
        let Phase::Joined(joined) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        info!(participant = %joined.participant, "session taken over by a resume");
        let _ = self.state.runtime().command(
            joined.shard,
            Command::Detach {
                participant: joined.participant,
            },
        );
        let handover = Handover {
            participant: joined.participant,
            room: joined.room,
            peer_id: joined.peer_id,
            shard: joined.shard,
            events: joined.events,
            expires_at: joined.expires_at,
            backlog: std::mem::take(&mut self.backlog),
        };
        if let Err(handover) = reply.send(handover) {
            // The resumer gave up before taking it: the session ends.
            let _ = self.state.runtime().command(
                handover.shard,
                Command::Leave {
                    participant: handover.participant,
                    reason: LeaveReason::ReconnectTimeout,
                },
            );
            left_room(&self.state, &handover.room);
        }
        self.close("resumed elsewhere").await;
    }

    fn credential_expired(&mut self) {
        if let Phase::Joined(Joined {
            participant,
            shard,
            expires_at,
            ..
        }) = &mut self.phase
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
            Some(ParticipantEvent::Signal(mut message)) => {
                match &mut message {
                    ServerMessage::Joined {
                        peer_id,
                        ice_servers,
                        ..
                    } => {
                        self.state
                            .metrics()
                            .join_outcomes
                            .with_label_values(&["ok"])
                            .inc();
                        // Minted now, for this peer id: the shard knows no TURN settings.
                        *ice_servers =
                            turn::ice_servers(&self.state.config().turn, peer_id, unix_now());
                    }
                    ServerMessage::Resumed {
                        peer_id,
                        ice_servers,
                        ..
                    } => {
                        // Fresh ones: the client's may have run out while it was away.
                        *ice_servers =
                            turn::ice_servers(&self.state.config().turn, peer_id, unix_now());
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
                        self.end_phase();
                    }
                    _ => {}
                }
                let resumed = matches!(message, ServerMessage::Resumed { .. });
                self.send(message).await;
                if resumed {
                    for missed in std::mem::take(&mut self.backlog) {
                        self.send(missed).await;
                    }
                }
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

    /// The joined phase ends here (removed, or a refused join): back to idle, room released.
    fn end_phase(&mut self) {
        if let Phase::Joined(joined) = std::mem::replace(&mut self.phase, Phase::Idle) {
            if let Some((token, _)) = &joined.resume {
                self.state.inner.resumable.forget(token);
            }
            left_room(&self.state, &joined.room);
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
        self.end_phase();
        let Some(reason) = reason else {
            // A refused join: the client may try again on this connection.
            return true;
        };
        self.send(ServerMessage::Left { reason }).await;
        self.close("left").await;
        false
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
        warn!(remote = ?self.remote, "client stopped reading; dropping the connection");
        self.state.metrics().slow_clients_dropped.inc();
    }

    /// Send one message. A client that does not take it within the send timeout is dropped:
    /// the session is parked or ends.
    async fn send(&mut self, message: ServerMessage) {
        if self.socket.send_json(&message).await == Written::StoppedReading {
            self.stopped_reading();
        }
    }
}
