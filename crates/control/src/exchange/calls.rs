//! Calls: the state machine of each (initiating → ringing → connecting → connected ⇄
//! reconnecting → ended), its ringing timers, `busy`, and the relay of signals between its
//! participants. The rules are in docs/protocol-peer.md.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchboard_protocol::peer::{
    CallAction, CallEndReason, CallInfo, CallKind, CallMedia, CallState, HangupReason,
    PeerServerMessage,
};
use switchboard_protocol::webhook::WebhookEvent;
use switchboard_protocol::{validate_peer_id, ErrorCode};

use super::{Exchange, Out, Refusal};

/// The SFU room of call `c1` is `call.c1`.
pub(crate) const ROOM_PREFIX: &str = "call.";
/// Call ids are shorter than peer ids so that `call.<id>` is a valid room name.
const MAX_CALL_ID: usize = 48;
const MAX_METADATA_BYTES: usize = 4096;
const MAX_CONVERSATION_ID: usize = 128;

/// What a `callInitiate` asks for.
#[derive(Debug, Clone)]
pub(crate) struct NewCall {
    pub call_id: String,
    pub callee_ids: Vec<String>,
    pub media: CallMedia,
    pub kind: CallKind,
    pub metadata: Option<serde_json::Value>,
    pub conversation_id: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Call {
    pub(super) id: String,
    pub(super) caller: String,
    pub(super) callees: Vec<String>,
    pub(super) media: CallMedia,
    pub(super) kind: CallKind,
    pub(super) metadata: Option<serde_json::Value>,
    pub(super) conversation_id: Option<String>,
    pub(super) state: CallState,
    /// In the call now, in the order they came.
    pub(super) participants: Vec<String>,
    /// Being rung, until when.
    pub(super) ringing: HashMap<String, Instant>,
    /// Somebody accepted once.
    pub(super) answered: bool,
    pub(super) created: Instant,
    /// The state to go back to when the participants that were away are back.
    pub(super) before_reconnect: Option<CallState>,
}

impl Call {
    pub fn info(&self) -> CallInfo {
        CallInfo {
            call_id: self.id.clone(),
            session: format!("call:{}", self.id),
            caller_id: self.caller.clone(),
            callee_ids: self.callees.clone(),
            media: self.media,
            kind: self.kind,
            state: self.state,
            room: (self.media == CallMedia::Sfu).then(|| format!("{ROOM_PREFIX}{}", self.id)),
            metadata: self.metadata.clone(),
            conversation_id: self.conversation_id.clone(),
            participants: self.participants.clone(),
        }
    }

    pub fn may_join_room(&self, peer: &str) -> bool {
        self.media == CallMedia::Sfu && self.participants.iter().any(|p| p == peer)
    }

    pub(super) fn is_participant(&self, peer: &str) -> bool {
        self.participants.iter().any(|p| p == peer)
    }

    /// Everyone who hears of the call's state: the participants and those being rung.
    pub(super) fn involved(&self) -> Vec<String> {
        let mut all = self.participants.clone();
        let mut rung: Vec<&String> = self.ringing.keys().collect();
        rung.sort();
        all.extend(rung.into_iter().cloned());
        all
    }

    pub(super) fn others(&self, peer: &str) -> Vec<String> {
        self.participants
            .iter()
            .filter(|p| *p != peer)
            .cloned()
            .collect()
    }
}

fn unknown_call(id: &str) -> Refusal {
    (
        ErrorCode::UnknownCall,
        format!("no call {id:?} that you can do this in (it ended, or you are not part of it)"),
    )
}

fn invalid(message: impl Into<String>) -> Refusal {
    (ErrorCode::InvalidCall, message.into())
}

impl Exchange {
    fn call_of(&self, id: &str, peer: &str) -> Result<&Call, Refusal> {
        self.calls
            .get(id)
            .filter(|c| c.is_participant(peer) || c.ringing.contains_key(peer))
            .ok_or_else(|| unknown_call(id))
    }

    /// The registered peer on `conn` and call `id`, which it must be a participant of.
    pub(super) fn participant_in(&self, conn: u64, id: &str) -> Result<(String, &Call), Refusal> {
        let peer = self.registered(conn)?;
        match self.calls.get(id) {
            Some(call) if call.is_participant(&peer) => Ok((peer, call)),
            _ => Err(unknown_call(id)),
        }
    }

    /// Is `peer` in (or rung for) a ringing-kind call other than `except`?
    fn is_busy(&self, peer: &str, except: &str) -> bool {
        let Some(p) = self.peers.get(peer) else {
            return false;
        };
        p.calls.iter().any(|id| {
            id != except
                && self
                    .calls
                    .get(id)
                    .is_some_and(|c| c.kind != CallKind::Data && c.state != CallState::Ended)
        })
    }

    /// Check callees: valid, not the caller, not twice, online in the caller's scope, not in
    /// the call already.
    fn check_callees(
        &self,
        caller: &str,
        callees: &[String],
        call: Option<&Call>,
    ) -> Result<(), Refusal> {
        if callees.is_empty() {
            return Err(invalid("calleeIds is empty: name at least one peer"));
        }
        let max = self.config.max_callees;
        let already = call.map_or(0, |c| c.callees.len());
        if callees.len() + already > max {
            return Err(invalid(format!("a call rings at most {max} peers")));
        }
        let scope = &self.peers[caller].scope;
        for (i, callee) in callees.iter().enumerate() {
            if validate_peer_id(callee).is_err() {
                return Err(invalid(format!("{callee:?} is not a peer id")));
            }
            if callee == caller {
                return Err(invalid("you cannot call yourself"));
            }
            if callees[..i].contains(callee) {
                return Err(invalid(format!("{callee} is named twice")));
            }
            if call.is_some_and(|c| c.is_participant(callee) || c.ringing.contains_key(callee)) {
                return Err(invalid(format!("{callee} is in this call already")));
            }
            match self.peers.get(callee) {
                Some(p) if &p.scope == scope => {}
                _ => {
                    return Err((
                        ErrorCode::UnknownPeer,
                        format!("{callee} is not online; nobody was rung"),
                    ))
                }
            }
        }
        Ok(())
    }

    pub fn initiate(&mut self, now: Instant, conn: u64, new: NewCall) -> Result<(), Refusal> {
        let caller = self.registered(conn)?;
        let NewCall {
            call_id,
            callee_ids,
            media,
            kind,
            metadata,
            conversation_id,
        } = new;
        if validate_peer_id(&call_id).is_err() || call_id.len() > MAX_CALL_ID {
            return Err(invalid(format!(
                "callId must be 1-{MAX_CALL_ID} letters, digits, '-', '_', '.'"
            )));
        }
        if self.calls.contains_key(&call_id) {
            return Err((
                ErrorCode::CallIdTaken,
                format!("a call {call_id:?} exists; choose another callId"),
            ));
        }
        if let Some(m) = &metadata {
            if serde_json::to_string(m).map_or(usize::MAX, |s| s.len()) > MAX_METADATA_BYTES {
                return Err(invalid(format!(
                    "metadata is at most {MAX_METADATA_BYTES} bytes of JSON"
                )));
            }
        }
        if conversation_id.as_ref().is_some_and(|c| {
            c.chars().count() > MAX_CONVERSATION_ID || c.chars().any(char::is_control)
        }) {
            return Err(invalid(format!(
                "conversationId is at most {MAX_CONVERSATION_ID} characters without control characters"
            )));
        }
        self.check_callees(&caller, &callee_ids, None)?;
        let minute = Duration::from_secs(60);
        let limit = self.config.initiate_per_minute;
        let max_calls = self.config.max_calls_per_peer;
        let p = self
            .peers
            .get_mut(&caller)
            .expect("registered peers are in the map");
        if p.calls.len() >= max_calls {
            return Err((
                ErrorCode::TooManyCalls,
                format!("you are in {max_calls} calls, the most this server allows"),
            ));
        }
        if now >= p.initiated.0 + minute {
            p.initiated = (now, 0);
        }
        if limit > 0 && p.initiated.1 >= limit {
            return Err((
                ErrorCode::RateLimited,
                format!("at most {limit} callInitiate per minute"),
            ));
        }
        p.initiated.1 += 1;
        p.calls.insert(call_id.clone());
        let call = Call {
            id: call_id.clone(),
            caller: caller.clone(),
            callees: Vec::new(),
            media,
            kind,
            metadata,
            conversation_id,
            state: CallState::Initiating,
            participants: vec![caller.clone()],
            ringing: HashMap::new(),
            answered: false,
            created: now,
            before_reconnect: None,
        };
        self.send(
            &caller,
            PeerServerMessage::CallCreated { call: call.info() },
        );
        self.calls.insert(call_id.clone(), call);
        self.out.push(Out::Webhook(WebhookEvent::CallStarted {
            call_id: call_id.clone(),
            caller_id: caller,
            callee_ids: callee_ids.clone(),
            media,
            call_type: kind,
        }));
        self.ring(now, &call_id, &callee_ids);
        Ok(())
    }

    pub fn invite(
        &mut self,
        now: Instant,
        conn: u64,
        id: &str,
        callees: Vec<String>,
    ) -> Result<(), Refusal> {
        let (peer, call) = self.participant_in(conn, id)?;
        self.check_callees(&peer, &callees, Some(call))?;
        self.ring(now, id, &callees);
        Ok(())
    }

    /// Ring `callees` (checked) for call `id`; busy ones are answered `busy` at once.
    fn ring(&mut self, now: Instant, id: &str, callees: &[String]) {
        let deadline = now + Duration::from_secs(self.config.ring_timeout_s);
        let mut busy = Vec::new();
        for callee in callees {
            let kind = self.calls[id].kind;
            let full = self
                .peers
                .get(callee)
                .is_some_and(|p| p.calls.len() >= self.config.max_calls_per_peer);
            let engaged =
                kind != CallKind::Data && !self.config.ring_when_busy && self.is_busy(callee, id);
            let call = self.calls.get_mut(id).expect("ringing a call that exists");
            call.callees.push(callee.clone());
            if full || engaged {
                busy.push(callee.clone());
                continue;
            }
            call.ringing.insert(callee.clone(), deadline);
            if let Some(p) = self.peers.get_mut(callee) {
                p.calls.insert(id.to_owned());
            }
        }
        let call = &self.calls[id];
        let info = call.info();
        let rung: Vec<String> = callees
            .iter()
            .filter(|c| call.ringing.contains_key(*c))
            .cloned()
            .collect();
        for callee in &rung {
            self.send(
                callee,
                PeerServerMessage::CallIncoming { call: info.clone() },
            );
        }
        for callee in busy {
            for other in self.calls[id].others(&callee) {
                self.send(
                    &other,
                    PeerServerMessage::CallParticipantLeft {
                        call_id: id.to_owned(),
                        peer_id: callee.clone(),
                        reason: CallEndReason::Busy,
                    },
                );
            }
            self.settle(id, CallEndReason::Busy);
        }
        if let Some(call) = self.calls.get(id) {
            if call.state == CallState::Initiating && !call.ringing.is_empty() {
                self.set_state(id, CallState::Ringing);
            }
        }
    }

    /// Tell everyone involved the call's new state.
    pub(super) fn set_state(&mut self, id: &str, state: CallState) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.state == state {
            return;
        }
        call.state = state;
        for peer in call.involved() {
            self.send(
                &peer,
                PeerServerMessage::CallStateChanged {
                    call_id: id.to_owned(),
                    state,
                    end_reason: None,
                },
            );
        }
    }

    /// The call ends if fewer than two participants remain and nobody is ringing; `reason` is
    /// what removed the last one out.
    fn settle(&mut self, id: &str, reason: CallEndReason) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        if call.participants.len() >= 2 || !call.ringing.is_empty() {
            return;
        }
        let end = if call.answered {
            match reason {
                CallEndReason::Failed => CallEndReason::Failed,
                _ => CallEndReason::Completed,
            }
        } else {
            reason
        };
        self.end(id, end);
    }

    fn end(&mut self, id: &str, reason: CallEndReason) {
        let Some(mut call) = self.calls.remove(id) else {
            return;
        };
        call.state = CallState::Ended;
        for peer in call.involved() {
            self.send(
                &peer,
                PeerServerMessage::CallStateChanged {
                    call_id: id.to_owned(),
                    state: CallState::Ended,
                    end_reason: Some(reason),
                },
            );
            if let Some(p) = self.peers.get_mut(&peer) {
                p.calls.remove(id);
            }
        }
        if call.media == CallMedia::Sfu {
            self.out.push(Out::CloseRoom(format!("{ROOM_PREFIX}{id}")));
        }
        let duration_ms = u64::try_from(call.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.out.push(Out::Webhook(WebhookEvent::CallEnded {
            call_id: id.to_owned(),
            end_reason: reason,
            duration_ms,
        }));
    }

    /// `peer` is out of call `id` (it was a participant or was being rung) for `reason`.
    pub(super) fn remove(&mut self, id: &str, peer: &str, reason: CallEndReason) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let was_rung = call.ringing.remove(peer).is_some();
        let was_in = if let Some(i) = call.participants.iter().position(|p| p == peer) {
            call.participants.remove(i);
            true
        } else {
            false
        };
        if !was_rung && !was_in {
            return;
        }
        let others = call.others(peer);
        if let Some(p) = self.peers.get_mut(peer) {
            p.calls.remove(id);
        }
        self.send(
            peer,
            PeerServerMessage::CallStateChanged {
                call_id: id.to_owned(),
                state: CallState::Ended,
                end_reason: Some(reason),
            },
        );
        for other in others {
            self.send(
                &other,
                PeerServerMessage::CallParticipantLeft {
                    call_id: id.to_owned(),
                    peer_id: peer.to_owned(),
                    reason,
                },
            );
        }
        self.settle(id, reason);
    }

    pub fn respond(&mut self, conn: u64, id: &str, action: CallAction) -> Result<(), Refusal> {
        let peer = self.registered(conn)?;
        let call = self
            .calls
            .get(id)
            .filter(|c| c.ringing.contains_key(&peer))
            .ok_or_else(|| unknown_call(id))?;
        if action == CallAction::Reject {
            self.remove(id, &peer, CallEndReason::Rejected);
            return Ok(());
        }
        let others = call.participants.clone();
        let call = self.calls.get_mut(id).expect("checked above");
        call.ringing.remove(&peer);
        call.participants.push(peer.clone());
        call.answered = true;
        let state = call.state;
        for other in others {
            self.send(
                &other,
                PeerServerMessage::CallParticipantJoined {
                    call_id: id.to_owned(),
                    peer_id: peer.clone(),
                },
            );
        }
        if matches!(state, CallState::Initiating | CallState::Ringing) {
            self.set_state(id, CallState::Connecting);
        } else {
            // Joining a call that runs: learn where it is.
            self.send(
                &peer,
                PeerServerMessage::CallStateChanged {
                    call_id: id.to_owned(),
                    state,
                    end_reason: None,
                },
            );
        }
        Ok(())
    }

    pub fn hangup(
        &mut self,
        conn: u64,
        id: &str,
        reason: Option<HangupReason>,
    ) -> Result<(), Refusal> {
        let peer = self.registered(conn)?;
        self.call_of(id, &peer)?;
        let reason = match reason {
            Some(HangupReason::Failed) => CallEndReason::Failed,
            _ => CallEndReason::Completed,
        };
        self.depart(&peer, id, reason);
        Ok(())
    }

    /// `peer` goes for `reason` (`completed`: it hung up or left; `failed`: its media failed or
    /// it stayed away past the grace). A ringing callee rejects (or misses, when it is gone);
    /// the caller of an unanswered call cancels it; a participant leaves.
    pub(super) fn depart(&mut self, peer: &str, id: &str, reason: CallEndReason) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        if call.ringing.contains_key(peer) {
            let reason = if reason == CallEndReason::Failed {
                CallEndReason::Missed
            } else {
                CallEndReason::Rejected
            };
            self.remove(id, peer, reason);
        } else if call.caller == peer && !call.answered {
            self.end(id, CallEndReason::Cancelled);
        } else {
            self.remove(id, peer, reason);
        }
    }

    /// Callees that did not answer in time are `missed`.
    pub(super) fn ring_timeouts(&mut self, now: Instant) {
        let mut due: Vec<(String, String)> = Vec::new();
        for (id, call) in &self.calls {
            for (peer, deadline) in &call.ringing {
                if now >= *deadline {
                    due.push((id.clone(), peer.clone()));
                }
            }
        }
        due.sort();
        for (id, peer) in due {
            self.remove(&id, &peer, CallEndReason::Missed);
        }
    }
}
