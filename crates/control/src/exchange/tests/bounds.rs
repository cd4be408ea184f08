//! Hostile requests, floods, and mesh rooms.

use serde_json::json;
use switchboard_protocol::peer::{CallAction, CallKind, CallMedia, PeerServerMessage};
use switchboard_protocol::ErrorCode;

use super::{short_ring, World};
use crate::exchange::CallsConfig;

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
