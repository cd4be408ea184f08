//! Every call transition and end reason, timers, busy, take-over.

use serde_json::json;
use switchboard_protocol::peer::{
    CallAction, CallEndReason, CallKind, CallMedia, CallState, HangupReason, PeerLeaveReason,
    PeerServerMessage, TransportState,
};
use switchboard_protocol::webhook::WebhookEvent;
use switchboard_protocol::ErrorCode;

use super::{ended, short_ring, World};
use crate::exchange::CallsConfig;
use crate::exchange::RegisterRequest;

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
