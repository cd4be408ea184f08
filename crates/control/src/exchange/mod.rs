//! The exchange: who is online (presence), the calls between them and the mesh rooms, as one
//! sans-IO state machine. Every method takes the time and a request and returns what to do in
//! [`Out`]s; the peer connections (`connection.rs`) and the timer task own the sockets and the
//! clock. Tested on a virtual clock in `tests.rs`.
//!
//! | module | job |
//! |---|---|
//! | `mod.rs` | presence: register, take-over, drop and grace, offline; the outbox |
//! | `calls.rs` | each call's state machine, ringing timers, busy, the signal relay |
//! | `mesh.rs` | mesh rooms: membership and the signal and message relay |
//! | `handle.rs` | the lock around it, delivery to connections, the timer task |
//! | `connection.rs` | one `/v1/peer` WebSocket |

mod calls;
pub(crate) mod connection;
mod handle;
mod mesh;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

pub use crate::config::CallsConfig;

use switchboard_protocol::admin::PeerSummary;
use switchboard_protocol::peer::{CallEndReason, CallInfo, PeerLeaveReason, PeerServerMessage};
use switchboard_protocol::webhook::WebhookEvent;
use switchboard_protocol::{validate_peer_id, ErrorCode, PROTOCOL_VERSION};

pub(crate) use handle::ExchangeHandle;

pub(crate) use calls::Call;
use mesh::MeshRoom;

/// Most peer ids `listPeers` returns.
const MAX_LISTED: usize = 10_000;

/// What the exchange decided: messages to connections, connections to end, webhooks, SFU rooms
/// to close.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Out {
    Send {
        conn: u64,
        message: PeerServerMessage,
    },
    /// End this connection with `left {reason}`.
    Close {
        conn: u64,
        reason: PeerLeaveReason,
    },
    Webhook(WebhookEvent),
    /// The private room of an `sfu` call that ended.
    CloseRoom(String),
}

/// A refusal: the code and the text for the one who asked.
pub(crate) type Refusal = (ErrorCode, String);

/// A registered peer.
#[derive(Debug)]
struct Online {
    scope: String,
    /// The connection that holds the registration now.
    conn: u64,
    /// `Some(since)` while the connection is gone and the grace runs.
    away_since: Option<Instant>,
    resume_token: String,
    /// Calls it is in or rung for.
    calls: BTreeSet<String>,
    mesh: BTreeSet<String>,
    /// `callInitiate`s in the current minute: (minute start, count).
    initiated: (Instant, u32),
}

/// A `register`, validated and authenticated by the connection.
#[derive(Debug)]
pub(crate) struct RegisterRequest<'a> {
    pub peer_id: &'a str,
    /// The API key id that signed the credential: who may see and call this peer.
    pub scope: &'a str,
    pub resume: Option<&'a str>,
    /// The fresh resume token to hand out.
    pub token: String,
    pub ice_servers: Vec<switchboard_protocol::IceServer>,
}

/// What a successful `register` returns to the connection.
#[derive(Debug)]
pub(crate) struct Registration {
    pub peer_id: String,
    pub message: PeerServerMessage,
}

#[derive(Debug, Default)]
pub(crate) struct Exchange {
    config: CallsConfig,
    peers: HashMap<String, Online>,
    /// Which peer a connection holds.
    conns: HashMap<u64, String>,
    calls: HashMap<String, Call>,
    mesh: HashMap<String, MeshRoom>,
    out: Vec<Out>,
}

impl Exchange {
    pub fn new(config: CallsConfig) -> Exchange {
        Exchange {
            config,
            ..Exchange::default()
        }
    }

    /// Everything decided since the last call.
    pub fn drain(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }

    fn send(&mut self, peer: &str, message: PeerServerMessage) {
        if let Some(p) = self.peers.get(peer) {
            if p.away_since.is_none() {
                self.out.push(Out::Send {
                    conn: p.conn,
                    message,
                });
            }
        }
    }

    fn conn_peer(&self, conn: u64) -> Option<String> {
        self.conns.get(&conn).cloned()
    }

    /// `register` on connection `conn` as `peer_id` (validated and authenticated by the caller)
    /// in `scope`. `token` is the fresh resume token to hand out.
    pub fn register(
        &mut self,
        now: Instant,
        conn: u64,
        request: RegisterRequest<'_>,
    ) -> Result<Registration, Refusal> {
        let RegisterRequest {
            peer_id,
            scope,
            resume,
            token,
            ice_servers,
        } = request;
        if self.conns.contains_key(&conn) {
            return Err((
                ErrorCode::AlreadyRegistered,
                "this connection is registered already".into(),
            ));
        }
        validate_peer_id(peer_id).map_err(|e| {
            (
                ErrorCode::InvalidPeerId,
                format!("peer id {e} (letters, digits, '-', '_', '.'; 1-64 characters)"),
            )
        })?;
        let mut calls = Vec::new();
        if let Some(existing) = self.peers.get_mut(peer_id) {
            let matches = resume.is_some_and(|t| t == existing.resume_token);
            if !matches || existing.scope != scope {
                return Err((
                    ErrorCode::PeerIdTaken,
                    "this peer id is online on another connection; present that registration's \
                     resumeToken to take it over"
                        .into(),
                ));
            }
            let old = existing.conn;
            let was_away = existing.away_since.take().is_some();
            existing.conn = conn;
            existing.resume_token = token.clone();
            let ids: Vec<String> = existing.calls.iter().cloned().collect();
            self.conns.remove(&old);
            self.conns.insert(conn, peer_id.to_owned());
            if !was_away {
                self.out.push(Out::Close {
                    conn: old,
                    reason: PeerLeaveReason::TakenOver,
                });
            }
            for id in ids {
                self.returned(peer_id, &id);
                if let Some(call) = self.calls.get(&id) {
                    calls.push(call.info());
                }
            }
        } else {
            self.peers.insert(
                peer_id.to_owned(),
                Online {
                    scope: scope.to_owned(),
                    conn,
                    away_since: None,
                    resume_token: token.clone(),
                    calls: BTreeSet::new(),
                    mesh: BTreeSet::new(),
                    initiated: (now, 0),
                },
            );
            self.conns.insert(conn, peer_id.to_owned());
            self.out.push(Out::Webhook(WebhookEvent::PeerOnline {
                peer_id: peer_id.to_owned(),
            }));
        }
        Ok(Registration {
            peer_id: peer_id.to_owned(),
            message: PeerServerMessage::Registered {
                protocol_version: PROTOCOL_VERSION,
                peer_id: peer_id.to_owned(),
                resume_token: token,
                ice_servers,
                calls,
            },
        })
    }

    /// The registered peer on `conn`, or `notRegistered`.
    fn registered(&self, conn: u64) -> Result<String, Refusal> {
        self.conn_peer(conn).ok_or_else(|| {
            (
                ErrorCode::NotRegistered,
                "send register first (see docs/protocol-peer.md)".into(),
            )
        })
    }

    pub fn list_peers(&mut self, conn: u64) -> Result<(), Refusal> {
        let me = self.registered(conn)?;
        let scope = &self.peers[&me].scope;
        let mut ids: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| &p.scope == scope)
            .map(|(id, _)| id.clone())
            .take(MAX_LISTED)
            .collect();
        ids.sort();
        self.send(&me, PeerServerMessage::Peers { peer_ids: ids });
        Ok(())
    }

    /// The connection is gone without `leave`: the grace starts.
    pub fn dropped(&mut self, now: Instant, conn: u64) {
        let Some(peer) = self.conns.remove(&conn) else {
            return;
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.away_since = Some(now);
        let ids: Vec<String> = p.calls.iter().cloned().collect();
        for id in ids {
            self.went_away(&peer, &id);
        }
        if self.config.reconnect_grace_s == 0 {
            self.offline(&peer);
        }
    }

    /// `leave`, or the end of the registration for another reason (credential expired): the
    /// peer goes offline now.
    pub fn leave(&mut self, conn: u64) {
        if let Some(peer) = self.conns.remove(&conn) {
            self.offline(&peer);
        }
    }

    /// Take the peer out of everything.
    fn offline(&mut self, peer: &str) {
        let Some(p) = self.peers.get(peer) else {
            return;
        };
        let calls: Vec<String> = p.calls.iter().cloned().collect();
        let rooms: Vec<String> = p.mesh.iter().cloned().collect();
        let away = p.away_since.is_some();
        let reason = if away {
            CallEndReason::Failed
        } else {
            CallEndReason::Completed
        };
        for id in calls {
            self.depart(peer, &id, reason);
        }
        for room in rooms {
            self.mesh_remove(peer, &room);
        }
        self.peers.remove(peer);
        self.out.push(Out::Webhook(WebhookEvent::PeerOffline {
            peer_id: peer.to_owned(),
        }));
    }

    /// Timers: ring timeouts and reconnect graces that ran out by `now`.
    pub fn poll(&mut self, now: Instant) {
        let grace = Duration::from_secs(self.config.reconnect_grace_s);
        let expired: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| p.away_since.is_some_and(|t| now >= t + grace))
            .map(|(id, _)| id.clone())
            .collect();
        for peer in expired {
            self.offline(&peer);
        }
        self.ring_timeouts(now);
    }

    /// May `peer_id` join the SFU room `room` on `/v1/ws`? `call.<id>` rooms belong to their
    /// call's participants; mesh rooms are not SFU rooms.
    pub fn may_join_sfu(&self, room: &str, peer_id: &str) -> Result<(), Refusal> {
        if let Some(id) = room.strip_prefix(calls::ROOM_PREFIX) {
            return match self.calls.get(id) {
                Some(call) if call.may_join_room(peer_id) => Ok(()),
                _ => Err((
                    ErrorCode::NotInCall,
                    format!("{room} is the private room of a call; only its participants may join"),
                )),
            };
        }
        if self.mesh.contains_key(room) {
            return Err((
                ErrorCode::WrongRoomMode,
                format!("{room} is a mesh room; join it with meshJoin on /v1/peer"),
            ));
        }
        Ok(())
    }

    /// Every registered peer, for the admin API.
    pub fn peers(&self) -> Vec<PeerSummary> {
        let mut all: Vec<PeerSummary> = self
            .peers
            .iter()
            .map(|(id, p)| PeerSummary {
                peer_id: id.clone(),
                key: p.scope.clone(),
                connected: p.away_since.is_none(),
                calls: p.calls.iter().cloned().collect(),
                mesh_rooms: p.mesh.iter().cloned().collect(),
            })
            .collect();
        all.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        all
    }

    pub fn calls(&self) -> Vec<CallInfo> {
        let mut all: Vec<CallInfo> = self.calls.values().map(Call::info).collect();
        all.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        all
    }

    /// Connections the exchange knows (for the handle's bookkeeping in tests).
    #[cfg(test)]
    pub fn is_online(&self, peer: &str) -> bool {
        self.peers.get(peer).is_some_and(|p| p.away_since.is_none())
    }
}
