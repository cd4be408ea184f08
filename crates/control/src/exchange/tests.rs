//! The exchange on a virtual clock: every call transition and end reason, ringing and grace
//! timers, busy, take-over, and hostile requests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_protocol::peer::{
    CallAction, CallEndReason, CallKind, CallMedia, CallState, HangupReason, PeerLeaveReason,
    PeerServerMessage, TransportState,
};
use switchboard_protocol::webhook::WebhookEvent;
use switchboard_protocol::ErrorCode;

use super::calls::NewCall;
use super::{CallsConfig, Exchange, Out, RegisterRequest};

/// An exchange with peers registered on connections 1, 2, 3, … and their inboxes.
struct World {
    ex: Exchange,
    t0: Instant,
    conn_of: HashMap<String, u64>,
    tokens: HashMap<String, String>,
    inbox: HashMap<u64, Vec<PeerServerMessage>>,
    closed: Vec<(u64, PeerLeaveReason)>,
    hooks: Vec<WebhookEvent>,
    rooms_closed: Vec<String>,
    next: u64,
}

impl World {
    fn new(config: CallsConfig) -> World {
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

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    fn collect(&mut self) {
        for out in self.ex.drain() {
            match out {
                Out::Send { conn, message } => self.inbox.entry(conn).or_default().push(message),
                Out::Close { conn, reason } => self.closed.push((conn, reason)),
                Out::Webhook(e) => self.hooks.push(e),
                Out::CloseRoom(r) => self.rooms_closed.push(r),
            }
        }
    }

    fn register_in(&mut self, peer: &str, scope: &str) -> u64 {
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

    fn register(&mut self, peer: &str) -> u64 {
        self.register_in(peer, "app")
    }

    fn conn(&self, peer: &str) -> u64 {
        self.conn_of[peer]
    }

    /// What `peer` received since the last look.
    fn take(&mut self, peer: &str) -> Vec<PeerServerMessage> {
        self.collect();
        let conn = self.conn(peer);
        self.inbox.remove(&conn).unwrap_or_default()
    }

    /// The call states `peer` was told of, in order.
    fn states(&mut self, peer: &str) -> Vec<(CallState, Option<CallEndReason>)> {
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

    fn call(&mut self, caller: &str, id: &str, callees: &[&str]) -> Result<(), ErrorCode> {
        self.call_with(caller, id, callees, CallMedia::P2p, CallKind::Video)
    }

    fn call_with(
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

    fn respond(&mut self, peer: &str, id: &str, action: CallAction) -> Result<(), ErrorCode> {
        let conn = self.conn(peer);
        let r = self.ex.respond(conn, id, action).map_err(|e| e.0);
        self.collect();
        r
    }

    fn hangup(&mut self, peer: &str, id: &str) -> Result<(), ErrorCode> {
        let conn = self.conn(peer);
        let r = self.ex.hangup(conn, id, None).map_err(|e| e.0);
        self.collect();
        r
    }

    fn transport(&mut self, peer: &str, id: &str, state: TransportState) {
        let conn = self.conn(peer);
        self.ex.transport(conn, id, state).expect("a participant");
        self.collect();
    }
}

fn ended(reason: CallEndReason) -> (CallState, Option<CallEndReason>) {
    (CallState::Ended, Some(reason))
}

fn short_ring() -> CallsConfig {
    CallsConfig {
        ring_timeout_s: 10,
        reconnect_grace_s: 5,
        ..CallsConfig::default()
    }
}

#[test]
fn a_p2p_call_rings_connects_relays_signals_and_completes() {
    let mut w = World::new(short_ring());
    w.register("alice");
    w.register("bob");
    w.call("alice", "c1", &["bob"]).expect("call");
    let alice = w.take("alice");
    assert!(
        matches!(&alice[0], PeerServerMessage::CallCreated { call } if call.state == CallState::Initiating && call.session == "call:c1" && call.room.is_none())
    );
    assert!(matches!(
        &alice[1],
        PeerServerMessage::CallStateChanged {
            state: CallState::Ringing,
            ..
        }
    ));
    let bob = w.take("bob");
    assert!(
        matches!(&bob[0], PeerServerMessage::CallIncoming { call } if call.caller_id == "alice" && call.metadata == Some(json!({"topic": "standup"})))
    );
    assert!(matches!(
        &bob[1],
        PeerServerMessage::CallStateChanged {
            state: CallState::Ringing,
            ..
        }
    ));

    w.respond("bob", "c1", CallAction::Accept).expect("accept");
    let alice = w.take("alice");
    assert!(
        matches!(&alice[0], PeerServerMessage::CallParticipantJoined { peer_id, .. } if peer_id == "bob")
    );
    assert!(matches!(
        &alice[1],
        PeerServerMessage::CallStateChanged {
            state: CallState::Connecting,
            ..
        }
    ));
    assert_eq!(w.states("bob"), vec![(CallState::Connecting, None)]);

    // Signals reach the other participant, named by who sent them.
    let conn = w.conn("alice");
    w.ex.signal(
        conn,
        "c1",
        "bob",
        json!({"type": "offer", "sdp": "v=0 alice"}),
    )
    .expect("relayed");
    let bob = w.take("bob");
    assert!(
        matches!(&bob[0], PeerServerMessage::CallSignal { from, signal, .. } if from == "alice" && signal["sdp"] == "v=0 alice")
    );
    assert!(
        w.take("alice").is_empty(),
        "a signal goes to its addressee only"
    );

    w.transport("bob", "c1", TransportState::Connected);
    assert_eq!(w.states("alice"), vec![(CallState::Connected, None)]);
    assert_eq!(w.states("bob"), vec![(CallState::Connected, None)]);
    w.transport("alice", "c1", TransportState::Disconnected);
    w.transport("alice", "c1", TransportState::Connected);
    assert_eq!(
        w.states("bob"),
        vec![
            (CallState::Reconnecting, None),
            (CallState::Connected, None)
        ]
    );
    w.take("alice");

    w.hangup("alice", "c1").expect("hangup");
    assert_eq!(w.states("alice"), vec![ended(CallEndReason::Completed)]);
    assert_eq!(w.states("bob"), vec![ended(CallEndReason::Completed)]);
    assert!(w.ex.calls().is_empty());
    assert!(w.hooks.iter().any(|h| matches!(
        h,
        WebhookEvent::CallEnded {
            end_reason: CallEndReason::Completed,
            ..
        }
    )));
    assert_eq!(w.hangup("bob", "c1"), Err(ErrorCode::UnknownCall));
}

#[test]
fn reject_missed_cancelled_and_failed_end_the_call_with_their_reason() {
    let mut w = World::new(short_ring());
    for p in ["alice", "bob"] {
        w.register(p);
    }
    w.call("alice", "r", &["bob"]).expect("call");
    w.respond("bob", "r", CallAction::Reject).expect("reject");
    assert_eq!(
        w.states("alice").last(),
        Some(&ended(CallEndReason::Rejected))
    );
    assert_eq!(
        w.states("bob").last(),
        Some(&ended(CallEndReason::Rejected))
    );

    w.call("alice", "m", &["bob"]).expect("call");
    w.take("alice");
    w.take("bob");
    w.ex.poll(w.at(9.5));
    assert!(
        w.states("bob").is_empty(),
        "still ringing before the timeout"
    );
    w.ex.poll(w.at(10.0));
    assert_eq!(w.states("alice"), vec![ended(CallEndReason::Missed)]);
    assert_eq!(w.states("bob"), vec![ended(CallEndReason::Missed)]);

    w.call("alice", "x", &["bob"]).expect("call");
    w.take("bob");
    w.hangup("alice", "x").expect("cancel");
    assert_eq!(w.states("bob"), vec![ended(CallEndReason::Cancelled)]);
    assert_eq!(
        w.respond("bob", "x", CallAction::Accept),
        Err(ErrorCode::UnknownCall)
    );

    w.call("alice", "f", &["bob"]).expect("call");
    w.respond("bob", "f", CallAction::Accept).expect("accept");
    w.take("alice");
    w.transport("bob", "f", TransportState::Failed);
    assert_eq!(w.states("alice"), vec![ended(CallEndReason::Failed)]);

    w.call("alice", "h", &["bob"]).expect("call");
    w.respond("bob", "h", CallAction::Accept).expect("accept");
    w.take("alice");
    let conn = w.conn("bob");
    w.ex.hangup(conn, "h", Some(HangupReason::Failed))
        .expect("hangup");
    assert_eq!(w.states("alice"), vec![ended(CallEndReason::Failed)]);
}

#[test]
fn a_callee_in_another_call_is_busy_unless_call_waiting_is_on() {
    let mut w = World::new(short_ring());
    for p in ["alice", "bob", "carol"] {
        w.register(p);
    }
    w.call("alice", "a", &["bob"]).expect("call");
    w.respond("bob", "a", CallAction::Accept).expect("accept");
    w.take("bob");
    w.call("carol", "b", &["bob"]).expect("call");
    let carol = w.take("carol");
    assert!(carol.iter().any(|m| matches!(m, PeerServerMessage::CallParticipantLeft { peer_id, reason: CallEndReason::Busy, .. } if peer_id == "bob")));
    assert!(carol.iter().any(|m| matches!(
        m,
        PeerServerMessage::CallStateChanged {
            state: CallState::Ended,
            end_reason: Some(CallEndReason::Busy),
            ..
        }
    )));
    assert!(!w
        .take("bob")
        .iter()
        .any(|m| matches!(m, PeerServerMessage::CallIncoming { .. })));
    // A data connection is never busy.
    w.call_with("carol", "d", &["bob"], CallMedia::P2p, CallKind::Data)
        .expect("data call");
    assert!(w
        .take("bob")
        .iter()
        .any(|m| matches!(m, PeerServerMessage::CallIncoming { call } if call.call_id == "d")));

    let mut w = World::new(CallsConfig {
        ring_when_busy: true,
        ..short_ring()
    });
    for p in ["alice", "bob", "carol"] {
        w.register(p);
    }
    w.call("alice", "a", &["bob"]).expect("call");
    w.respond("bob", "a", CallAction::Accept).expect("accept");
    w.call("carol", "b", &["bob"]).expect("call");
    assert!(w
        .take("bob")
        .iter()
        .any(|m| matches!(m, PeerServerMessage::CallIncoming { call } if call.call_id == "b")));
}

#[test]
fn a_group_call_survives_a_rejection_and_the_caller_leaving_and_takes_a_late_invitee() {
    let mut w = World::new(short_ring());
    for p in ["alice", "bob", "carol", "dave"] {
        w.register(p);
    }
    w.call_with(
        "alice",
        "g",
        &["bob", "carol"],
        CallMedia::Sfu,
        CallKind::Video,
    )
    .expect("call");
    w.respond("bob", "g", CallAction::Reject).expect("reject");
    assert!(w.take("alice").iter().any(|m| matches!(m, PeerServerMessage::CallParticipantLeft { peer_id, reason: CallEndReason::Rejected, .. } if peer_id == "bob")));
    assert_eq!(w.ex.calls().len(), 1, "carol still rings");
    w.respond("carol", "g", CallAction::Accept).expect("accept");
    assert!(w.ex.may_join_sfu("call.g", "carol").is_ok());
    assert!(w.ex.may_join_sfu("call.g", "alice").is_ok());
    assert_eq!(
        w.ex.may_join_sfu("call.g", "bob").expect_err("refused").0,
        ErrorCode::NotInCall
    );
    assert_eq!(
        w.ex.may_join_sfu("call.g", "dave").expect_err("refused").0,
        ErrorCode::NotInCall
    );

    let conn = w.conn("carol");
    w.ex.invite(w.t0, conn, "g", vec!["dave".into()])
        .expect("invite");
    w.collect();
    let dave = w.take("dave");
    assert!(
        matches!(&dave[0], PeerServerMessage::CallIncoming { call } if call.participants == ["alice", "carol"] && call.room.as_deref() == Some("call.g"))
    );
    w.respond("dave", "g", CallAction::Accept).expect("accept");
    assert_eq!(w.states("dave"), vec![(CallState::Connecting, None)]);
    w.hangup("alice", "g").expect("alice leaves");
    assert!(w.take("carol").iter().any(|m| matches!(m, PeerServerMessage::CallParticipantLeft { peer_id, reason: CallEndReason::Completed, .. } if peer_id == "alice")));
    assert_eq!(w.ex.calls()[0].participants, ["carol", "dave"]);
    w.hangup("dave", "g").expect("dave leaves");
    assert_eq!(
        w.states("carol").last(),
        Some(&ended(CallEndReason::Completed))
    );
    assert_eq!(w.rooms_closed, ["call.g"]);
    assert_eq!(
        w.ex.may_join_sfu("call.g", "carol").expect_err("refused").0,
        ErrorCode::NotInCall
    );
}

#[test]
fn a_dropped_peer_reconnects_within_the_grace_or_fails_the_call_after_it() {
    let mut w = World::new(short_ring());
    w.register("alice");
    w.register("bob");
    w.call("alice", "c", &["bob"]).expect("call");
    w.respond("bob", "c", CallAction::Accept).expect("accept");
    w.transport("alice", "c", TransportState::Connected);
    w.take("alice");
    let old = w.conn("bob");
    w.ex.dropped(w.at(1.0), old);
    assert_eq!(w.states("alice"), vec![(CallState::Reconnecting, None)]);

    // A stranger cannot take the id; the token can, and the call is back.
    let stolen = w.ex.register(
        w.at(2.0),
        90,
        RegisterRequest {
            peer_id: "bob",
            scope: "app",
            resume: Some("guess"),
            token: "t".into(),
            ice_servers: Vec::new(),
        },
    );
    assert_eq!(stolen.expect_err("refused").0, ErrorCode::PeerIdTaken);
    let token = w.tokens["bob"].clone();
    let back =
        w.ex.register(
            w.at(2.0),
            91,
            RegisterRequest {
                peer_id: "bob",
                scope: "app",
                resume: Some(&token),
                token: "t2".into(),
                ice_servers: Vec::new(),
            },
        )
        .expect("taken back");
    assert!(
        matches!(back.message, PeerServerMessage::Registered { calls, .. } if calls.len() == 1 && calls[0].state == CallState::Connected)
    );
    w.conn_of.insert("bob".into(), 91);
    assert_eq!(w.states("alice"), vec![(CallState::Connected, None)]);

    // Gone past the grace: the call fails, the peer is offline.
    w.ex.dropped(w.at(3.0), 91);
    w.ex.poll(w.at(7.9));
    assert!(w
        .ex
        .peers()
        .iter()
        .any(|p| p.peer_id == "bob" && !p.connected));
    w.ex.poll(w.at(8.0));
    w.collect();
    assert_eq!(
        w.states("alice"),
        vec![
            (CallState::Reconnecting, None),
            ended(CallEndReason::Failed)
        ]
    );
    assert!(!w.ex.peers().iter().any(|p| p.peer_id == "bob"));
    assert!(w
        .hooks
        .iter()
        .any(|h| matches!(h, WebhookEvent::PeerOffline { peer_id } if peer_id == "bob")));
}

#[test]
fn a_live_registration_taken_over_by_its_token_closes_the_old_connection() {
    let mut w = World::new(short_ring());
    let old = w.register("alice");
    let token = w.tokens["alice"].clone();
    w.ex.register(
        w.t0,
        50,
        RegisterRequest {
            peer_id: "alice",
            scope: "app",
            resume: Some(&token),
            token: "n".into(),
            ice_servers: Vec::new(),
        },
    )
    .expect("take-over");
    w.collect();
    assert_eq!(w.closed, vec![(old, PeerLeaveReason::TakenOver)]);
    // The old connection's later drop changes nothing.
    w.ex.dropped(w.at(1.0), old);
    assert!(w.ex.is_online("alice"));
}

#[test]
fn hostile_requests_are_refused_to_their_sender_only() {
    let mut w = World::new(short_ring());
    for p in ["alice", "bob", "carol"] {
        w.register(p);
    }
    w.register_in("mallory", "other-app");
    assert_eq!(
        w.call("alice", "c", &["nobody"]),
        Err(ErrorCode::UnknownPeer)
    );
    assert_eq!(
        w.call("alice", "c", &["mallory"]),
        Err(ErrorCode::UnknownPeer),
        "another key's peer"
    );
    assert_eq!(
        w.call("mallory", "c", &["alice"]),
        Err(ErrorCode::UnknownPeer)
    );
    assert_eq!(
        w.call("alice", "c", &["alice"]),
        Err(ErrorCode::InvalidCall)
    );
    assert_eq!(w.call("alice", "c", &[]), Err(ErrorCode::InvalidCall));
    assert_eq!(
        w.call("alice", "c", &["bob", "bob"]),
        Err(ErrorCode::InvalidCall)
    );
    assert_eq!(
        w.call("alice", "call:x", &["bob"]),
        Err(ErrorCode::InvalidCall)
    );
    assert_eq!(
        w.call_with("alice", "d", &["bob"], CallMedia::Sfu, CallKind::Data),
        Err(ErrorCode::InvalidCall)
    );
    assert!(
        w.take("bob").is_empty(),
        "nobody was rung by a refused call"
    );

    w.call("alice", "c", &["bob"]).expect("call");
    assert_eq!(w.call("carol", "c", &["bob"]), Err(ErrorCode::CallIdTaken));
    // Carol was not rung: she can neither answer nor signal nor hang up.
    assert_eq!(
        w.respond("carol", "c", CallAction::Accept),
        Err(ErrorCode::UnknownCall)
    );
    assert_eq!(w.hangup("carol", "c"), Err(ErrorCode::UnknownCall));
    let carol = w.conn("carol");
    assert_eq!(
        w.ex.signal(carol, "c", "bob", json!({"type": "offer"}))
            .expect_err("refused")
            .0,
        ErrorCode::UnknownCall
    );
    // A ringing callee is not a participant yet: no signals to it.
    let alice = w.conn("alice");
    assert_eq!(
        w.ex.signal(alice, "c", "bob", json!({"type": "offer"}))
            .expect_err("refused")
            .0,
        ErrorCode::NotInCall
    );
    w.respond("bob", "c", CallAction::Accept).expect("accept");
    assert_eq!(
        w.ex.signal(alice, "c", "carol", json!({"type": "offer"}))
            .expect_err("refused")
            .0,
        ErrorCode::NotInCall,
        "relaying to a peer outside the call"
    );
    assert_eq!(
        w.ex.signal(alice, "c", "bob", json!("not an object"))
            .expect_err("refused")
            .0,
        ErrorCode::BadMessage
    );
    assert!(w.take("carol").is_empty());
    // An unregistered connection gets nothing done.
    assert_eq!(
        w.ex.list_peers(999).expect_err("refused").0,
        ErrorCode::NotRegistered
    );
}

#[test]
fn a_flood_of_call_initiate_is_bounded_per_peer_and_per_minute() {
    let mut w = World::new(CallsConfig {
        initiate_per_minute: 5,
        max_calls_per_peer: 3,
        ..short_ring()
    });
    w.register("alice");
    for i in 0..20 {
        w.register(&format!("p{i}"));
    }
    let mut codes = Vec::new();
    for i in 0..20 {
        let id = format!("c{i}");
        let callee = format!("p{i}");
        codes.push(w.call("alice", &id, &[&callee]));
        // Hang up at once so the per-peer bound is not what stops it.
        let _ = w.hangup("alice", &id);
    }
    assert_eq!(codes.iter().filter(|c| c.is_ok()).count(), 5);
    assert!(codes[5..].iter().all(|c| *c == Err(ErrorCode::RateLimited)));

    let mut w = World::new(CallsConfig {
        max_calls_per_peer: 3,
        ..short_ring()
    });
    w.register("alice");
    for i in 0..5 {
        w.register(&format!("p{i}"));
    }
    for i in 0..3 {
        w.call_with(
            "alice",
            &format!("c{i}"),
            &[&format!("p{i}")],
            CallMedia::P2p,
            CallKind::Data,
        )
        .expect("within the bound");
    }
    assert_eq!(w.call("alice", "c9", &["p4"]), Err(ErrorCode::TooManyCalls));
}

#[test]
fn mesh_rooms_relay_between_members_and_keep_one_mode() {
    let mut w = World::new(CallsConfig {
        mesh_max_members: 3,
        ..short_ring()
    });
    for p in ["alice", "bob", "carol", "dave"] {
        w.register(p);
    }
    let (a, b, c, d) = (
        w.conn("alice"),
        w.conn("bob"),
        w.conn("carol"),
        w.conn("dave"),
    );
    w.ex.mesh_join(a, "m", None, false).expect("join");
    w.ex.mesh_join(b, "m", Some("Bob".into()), false)
        .expect("join");
    w.ex.mesh_join(c, "m", None, false).expect("join");
    assert_eq!(
        w.ex.mesh_join(d, "m", None, false).expect_err("refused").0,
        ErrorCode::RoomFull
    );
    assert_eq!(
        w.ex.mesh_join(d, "sfu-room", None, true)
            .expect_err("refused")
            .0,
        ErrorCode::WrongRoomMode
    );
    assert_eq!(
        w.ex.mesh_join(d, "call.x", None, false)
            .expect_err("refused")
            .0,
        ErrorCode::WrongRoomMode
    );
    assert_eq!(
        w.ex.may_join_sfu("m", "dave").expect_err("refused").0,
        ErrorCode::WrongRoomMode
    );
    w.collect();
    let carol = w.take("carol");
    assert!(
        matches!(&carol[0], PeerServerMessage::MeshJoined { members, .. } if members.len() == 2 && members[1].name == "Bob")
    );
    let alice = w.take("alice");
    assert_eq!(
        alice
            .iter()
            .filter(|m| matches!(m, PeerServerMessage::MeshPeerJoined { .. }))
            .count(),
        2
    );

    w.take("bob");
    w.ex.mesh_signal(c, "m", "alice", json!({"type": "offer", "sdp": "carol"}))
        .expect("signal");
    assert_eq!(
        w.ex.mesh_signal(c, "m", "dave", json!({}))
            .expect_err("refused")
            .0,
        ErrorCode::UnknownPeer
    );
    assert_eq!(
        w.ex.mesh_signal(d, "m", "alice", json!({}))
            .expect_err("refused")
            .0,
        ErrorCode::NotInRoom
    );
    w.ex.mesh_message(b, "m", json!("from bob").into(), None)
        .expect("message");
    w.collect();
    let alice = w.take("alice");
    assert!(
        matches!(&alice[0], PeerServerMessage::MeshSignal { from, signal, .. } if from == "carol" && signal["sdp"] == "carol")
    );
    assert!(matches!(&alice[1], PeerServerMessage::MeshMessage { from, .. } if from == "bob"));
    assert_eq!(
        w.take("carol").len(),
        1,
        "carol gets bob's message, not her own signal"
    );
    assert!(w.take("bob").is_empty(), "no echo to the sender");

    w.ex.mesh_leave(b, "m").expect("leave");
    w.collect();
    assert!(w
        .take("alice")
        .iter()
        .any(|m| matches!(m, PeerServerMessage::MeshPeerLeft { peer_id, .. } if peer_id == "bob")));
    w.ex.leave(a);
    w.ex.leave(c);
    assert!(
        w.ex.may_join_sfu("m", "dave").is_ok(),
        "the last one out removes the room"
    );
}
