//! The exchange on a virtual clock: `calls.rs` has every call transition and end reason,
//! ringing and grace timers, busy and take-over; `bounds.rs` hostile requests, floods and mesh
//! rooms. This file holds the simulated world they share.

mod bounds;
mod calls;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_protocol::peer::{
    CallAction, CallEndReason, CallKind, CallMedia, CallState, PeerLeaveReason, PeerServerMessage,
    TransportState,
};
use switchboard_protocol::webhook::WebhookEvent;
use switchboard_protocol::ErrorCode;

use super::calls::NewCall;
use super::{CallsConfig, Exchange, Out, RegisterRequest};

/// An exchange with peers registered on connections 1, 2, 3, … and their inboxes.
pub(super) struct World {
    pub(super) ex: Exchange,
    pub(super) t0: Instant,
    pub(super) conn_of: HashMap<String, u64>,
    pub(super) tokens: HashMap<String, String>,
    pub(super) inbox: HashMap<u64, Vec<PeerServerMessage>>,
    pub(super) closed: Vec<(u64, PeerLeaveReason)>,
    pub(super) hooks: Vec<WebhookEvent>,
    pub(super) rooms_closed: Vec<String>,
    pub(super) next: u64,
}

impl World {
    pub(super) fn new(config: CallsConfig) -> World {
        World {
            ex: Exchange::new(config),
            t0: Instant::now(),
            conn_of: HashMap::new(),
            tokens: HashMap::new(),
            inbox: HashMap::new(),
            closed: Vec::new(),
            hooks: Vec::new(),
            rooms_closed: Vec::new(),
            next: 1,
        }
    }

    pub(super) fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    pub(super) fn collect(&mut self) {
        for out in self.ex.drain() {
            match out {
                Out::Send { conn, message } => self.inbox.entry(conn).or_default().push(message),
                Out::Close { conn, reason } => self.closed.push((conn, reason)),
                Out::Webhook(e) => self.hooks.push(e),
                Out::CloseRoom(r) => self.rooms_closed.push(r),
            }
        }
    }

    pub(super) fn register_in(&mut self, peer: &str, scope: &str) -> u64 {
        let conn = self.next;
        self.next += 1;
        let token = format!("token-{conn}");
        let reg = self
            .ex
            .register(
                self.t0,
                conn,
                RegisterRequest {
                    peer_id: peer,
                    scope,
                    resume: None,
                    token: token.clone(),
                    ice_servers: Vec::new(),
                },
            )
            .expect("registers");
        assert_eq!(reg.peer_id, peer);
        self.conn_of.insert(peer.into(), conn);
        self.tokens.insert(peer.into(), token);
        self.collect();
        conn
    }

    pub(super) fn register(&mut self, peer: &str) -> u64 {
        self.register_in(peer, "app")
    }

    pub(super) fn conn(&self, peer: &str) -> u64 {
        self.conn_of[peer]
    }

    /// What `peer` received since the last look.
    pub(super) fn take(&mut self, peer: &str) -> Vec<PeerServerMessage> {
        self.collect();
        let conn = self.conn(peer);
        self.inbox.remove(&conn).unwrap_or_default()
    }

    /// The call states `peer` was told of, in order.
    pub(super) fn states(&mut self, peer: &str) -> Vec<(CallState, Option<CallEndReason>)> {
        self.take(peer)
            .into_iter()
            .filter_map(|m| match m {
                PeerServerMessage::CallStateChanged {
                    state, end_reason, ..
                } => Some((state, end_reason)),
                _ => None,
            })
            .collect()
    }

    pub(super) fn call(
        &mut self,
        caller: &str,
        id: &str,
        callees: &[&str],
    ) -> Result<(), ErrorCode> {
        self.call_with(caller, id, callees, CallMedia::P2p, CallKind::Video)
    }

    pub(super) fn call_with(
        &mut self,
        caller: &str,
        id: &str,
        callees: &[&str],
        media: CallMedia,
        kind: CallKind,
    ) -> Result<(), ErrorCode> {
        let conn = self.conn(caller);
        let new = NewCall {
            call_id: id.into(),
            callee_ids: callees.iter().map(|c| (*c).to_owned()).collect(),
            media,
            kind,
            metadata: Some(json!({"topic": "standup"})),
            conversation_id: None,
        };
        let r = self.ex.initiate(self.t0, conn, new).map_err(|e| e.0);
        self.collect();
        r
    }

    pub(super) fn respond(
        &mut self,
        peer: &str,
        id: &str,
        action: CallAction,
    ) -> Result<(), ErrorCode> {
        let conn = self.conn(peer);
        let r = self.ex.respond(conn, id, action).map_err(|e| e.0);
        self.collect();
        r
    }

    pub(super) fn hangup(&mut self, peer: &str, id: &str) -> Result<(), ErrorCode> {
        let conn = self.conn(peer);
        let r = self.ex.hangup(conn, id, None).map_err(|e| e.0);
        self.collect();
        r
    }

    pub(super) fn transport(&mut self, peer: &str, id: &str, state: TransportState) {
        let conn = self.conn(peer);
        self.ex.transport(conn, id, state).expect("a participant");
        self.collect();
    }
}

pub(super) fn ended(reason: CallEndReason) -> (CallState, Option<CallEndReason>) {
    (CallState::Ended, Some(reason))
}

pub(super) fn short_ring() -> CallsConfig {
    CallsConfig {
        ring_timeout_s: 10,
        reconnect_grace_s: 5,
        ..CallsConfig::default()
    }
}
