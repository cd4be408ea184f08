//! What participants do in a running call: relay signals to each other, report their media
//! connection (`connecting → connected ⇄ reconnecting`), announce what they send; and what a
//! peer's dropped or resumed connection does to its calls.

use switchboard_protocol::peer::{CallEndReason, CallState, PeerServerMessage, TransportState};
use switchboard_protocol::ErrorCode;

use super::{Exchange, Refusal};

impl Exchange {
    pub fn signal(
        &mut self,
        conn: u64,
        id: &str,
        to: &str,
        signal: serde_json::Value,
    ) -> Result<(), Refusal> {
        let (peer, call) = self.participant_in(conn, id)?;
        if !signal.is_object() {
            return Err((ErrorCode::BadMessage, "signal must be a JSON object".into()));
        }
        if to == peer || !call.is_participant(to) {
            return Err((
                ErrorCode::NotInCall,
                format!("{to} is not a participant of call {id}"),
            ));
        }
        self.send(
            to,
            PeerServerMessage::CallSignal {
                call_id: id.to_owned(),
                from: peer,
                signal,
            },
        );
        Ok(())
    }

    pub fn transport(&mut self, conn: u64, id: &str, state: TransportState) -> Result<(), Refusal> {
        let (peer, call) = self.participant_in(conn, id)?;
        let now = call.state;
        match state {
            TransportState::Connected => {
                if call.participants.len() >= 2
                    && matches!(now, CallState::Connecting | CallState::Reconnecting)
                {
                    if let Some(c) = self.calls.get_mut(id) {
                        c.before_reconnect = None;
                    }
                    self.set_state(id, CallState::Connected);
                }
            }
            TransportState::Disconnected => {
                if now == CallState::Connected {
                    if let Some(c) = self.calls.get_mut(id) {
                        c.before_reconnect = Some(CallState::Connected);
                    }
                    self.set_state(id, CallState::Reconnecting);
                }
            }
            TransportState::Failed => self.remove(id, &peer, CallEndReason::Failed),
        }
        Ok(())
    }

    pub fn media_toggle(
        &mut self,
        conn: u64,
        id: &str,
        audio: bool,
        video: bool,
        screen_share: bool,
    ) -> Result<(), Refusal> {
        let (peer, call) = self.participant_in(conn, id)?;
        for other in call.others(&peer) {
            self.send(
                &other,
                PeerServerMessage::CallMediaChanged {
                    call_id: id.to_owned(),
                    peer_id: peer.clone(),
                    audio,
                    video,
                    screen_share,
                },
            );
        }
        Ok(())
    }

    /// `peer`'s connection dropped: its running calls show `reconnecting`.
    pub(super) fn went_away(&mut self, peer: &str, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.is_participant(peer)
            && matches!(call.state, CallState::Connected | CallState::Connecting)
        {
            call.before_reconnect.get_or_insert(call.state);
            self.set_state(id, CallState::Reconnecting);
        }
    }

    /// `peer` took its registration back: calls it was rung for ring it again, calls it is in
    /// go back to where they were.
    pub(super) fn returned(&mut self, peer: &str, id: &str) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.ringing.contains_key(peer) {
            let info = call.info();
            self.send(peer, PeerServerMessage::CallIncoming { call: info });
            return;
        }
        if call.state == CallState::Reconnecting {
            if let Some(before) = call.before_reconnect.take() {
                self.set_state(id, before);
            }
        }
    }
}
