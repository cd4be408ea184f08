//! SDP between the server and one participant: the client's offers (its first, and any
//! renegotiation it starts), the client's answers to server offers, trickled candidates, and
//! server offers that add receive slots when tracks wait for one.
//!
//! The client offers first; afterwards either side may. The server is the polite peer: a client
//! offer that crosses a server offer wins (str0m rolls ours back), the slots of the dropped offer
//! are forgotten, and the server offers again what it still needs.

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Direction;
use str0m::Candidate;
use switchboard_protocol::{ErrorCode, MediaKind, ServerMessage, TrackPublication};
use tracing::{debug, warn};

use super::engine::Failed;
use super::interface::Output;
use super::participant::{Local, Negotiation, SlotId};
use super::slot::{Slot, SlotState};
use super::Shard;
use crate::stats::Op;

pub(super) fn error(code: ErrorCode, message: impl Into<String>, request: &str) -> ServerMessage {
    ServerMessage::Error {
        code,
        message: message.into(),
        request: Some(request.to_owned()),
    }
}

fn str0m_kind(kind: MediaKind) -> str0m::media::MediaKind {
    match kind {
        MediaKind::Audio => str0m::media::MediaKind::Audio,
        MediaKind::Video => str0m::media::MediaKind::Video,
    }
}

impl Shard {
    pub(super) fn offer(&mut self, local: Local, offer: SdpOffer, tracks: Vec<TrackPublication>) {
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        // What this offer's sending m-lines publish; read as str0m reports the m-lines.
        p.publications = tracks;
        let first = matches!(p.negotiation, Negotiation::AwaitingFirstOffer);
        if matches!(p.negotiation, Negotiation::ServerOffer(..)) {
            // Glare: the client's offer wins; ours is rolled back by str0m and re-made later.
            self.drop_offered_slots(local);
        }
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        let result = p
            .engine
            .call(p.id, Op::Offer, |rtc| rtc.sdp_api().accept_offer(offer));
        match result {
            Ok(Ok(answer)) => {
                p.negotiation = Negotiation::Stable;
                // A client offer with new ICE credentials restarts ICE: str0m answers with new
                // local credentials, and new paths must find this participant by the new ufrag.
                match p.engine.call(p.id, Op::Query, |rtc| {
                    rtc.direct_api().local_ice_credentials()
                }) {
                    Ok(creds) if creds.ufrag != p.ufrag => {
                        debug!(participant = %p.id, "ICE restart");
                        self.demux.forget_ufrag(local, &p.ufrag);
                        self.demux.add_ufrag(creds.ufrag.clone(), local);
                        let old = std::mem::replace(&mut p.ufrag, creds.ufrag.clone());
                        self.outputs.push_back(Output::IceUfrag {
                            ufrag: old,
                            held: false,
                        });
                        self.outputs.push_back(Output::IceUfrag {
                            ufrag: creds.ufrag,
                            held: true,
                        });
                    }
                    Ok(_) => {}
                    Err(Failed) => {
                        self.failed.push(local);
                        return;
                    }
                }
                let sdp = answer.to_sdp_string();
                let candidates = if first {
                    p.candidates.clone()
                } else {
                    Vec::new()
                };
                self.signal(local, ServerMessage::Answer { sdp });
                for candidate in candidates {
                    self.signal(
                        local,
                        ServerMessage::Candidate {
                            candidate,
                            sdp_mid: None,
                            sdp_m_line_index: Some(0),
                        },
                    );
                }
            }
            Ok(Err(e)) => {
                if !first {
                    p.negotiation = Negotiation::Stable;
                }
                self.signal(
                    local,
                    error(ErrorCode::BadSdp, format!("offer refused: {e}"), "offer"),
                );
            }
            Err(Failed) => {
                self.failed.push(local);
                return;
            }
        }
        self.after_sdp(local);
    }

    pub(super) fn answer(&mut self, local: Local, answer: SdpAnswer) {
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        if !matches!(p.negotiation, Negotiation::ServerOffer(..)) {
            // Whatever the state was (awaiting the first offer, stable), it stays.
            self.signal(
                local,
                error(
                    ErrorCode::NoPendingOffer,
                    "the server has no offer waiting for an answer",
                    "answer",
                ),
            );
            return;
        }
        let Negotiation::ServerOffer(pending, _) =
            std::mem::replace(&mut p.negotiation, Negotiation::Stable)
        else {
            unreachable!("checked to be a server offer just above");
        };
        let who = p.id;
        let result = p.engine.call(who, Op::Answer, |rtc| {
            rtc.sdp_api().accept_answer(pending, answer)
        });
        match result {
            Ok(Ok(())) => {
                let engine = &mut p.engine;
                for (_, slot) in p.slots.iter_mut() {
                    if slot.state == SlotState::Offered && slot.attach(engine, who).is_err() {
                        self.failed.push(local);
                        return;
                    }
                }
            }
            Ok(Err(e)) => {
                // The offer is void; its slots never existed. Offer again below.
                self.drop_offered_slots(local);
                self.signal(
                    local,
                    error(ErrorCode::BadSdp, format!("answer refused: {e}"), "answer"),
                );
            }
            Err(Failed) => {
                self.failed.push(local);
                return;
            }
        }
        self.after_sdp(local);
    }

    pub(super) fn candidate(&mut self, local: Local, candidate: Option<Candidate>) {
        let Some(candidate) = candidate else {
            return; // end of candidates: nothing to do for an ICE-lite server
        };
        let max = self.config.max_candidates_per_session;
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        if p.remote_candidates >= max {
            self.signal(
                local,
                error(
                    ErrorCode::TooManyCandidates,
                    format!("a session keeps at most {max} remote candidates; this one is ignored"),
                    "candidate",
                ),
            );
            return;
        }
        p.remote_candidates += 1;
        match p.engine.call(p.id, Op::Candidate, |rtc| {
            rtc.add_remote_candidate(candidate)
        }) {
            Ok(()) => self.drain_now(local),
            Err(Failed) => self.failed.push(local),
        }
    }

    /// Forget the slots of a server offer that will never be answered. Slots are keyed by
    /// stable ids, so the others' subscriptions stay as they are.
    fn drop_offered_slots(&mut self, local: Local) {
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        let offered: Vec<SlotId> = p
            .slots
            .iter()
            .filter(|(_, s)| s.state == SlotState::Offered)
            .map(|(k, _)| SlotId(k))
            .collect();
        for id in offered {
            // Offered slots never carry a track (only ready ones are bound).
            p.slots.remove(id.0);
        }
    }

    /// After an SDP exchange step: emit what str0m produced, give new slots to waiting tracks,
    /// and offer more slots if some are still short.
    fn after_sdp(&mut self, local: Local) {
        self.drain_now(local);
        self.fill_slots(local);
        self.negotiate(local);
    }

    /// Offer new slots when tracks wait, no offer is outstanding, and the session has room.
    pub(super) fn negotiate(&mut self, local: Local) {
        let max = self.config.max_mlines_per_session;
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        if !matches!(p.negotiation, Negotiation::Stable) || !p.server_offers {
            // A session that cannot renegotiate keeps its tracks waiting for a free slot.
            return;
        }
        let mut room = max.saturating_sub(p.mline_count());
        let mut add = Vec::new();
        let mut short = 0;
        for kind in [MediaKind::Audio, MediaKind::Video] {
            for _ in 0..p.wanted_of(kind) {
                if room == 0 {
                    short += 1;
                } else {
                    room -= 1;
                    add.push(kind);
                }
            }
        }
        if short == 0 {
            p.told_mline_limit = false;
        } else if !p.told_mline_limit {
            p.told_mline_limit = true;
            let who = p.id;
            warn!(participant = %who, waiting = short, "session at its m-line limit");
            self.signal(
                local,
                ServerMessage::Error {
                    code: ErrorCode::TooManyTracks,
                    message: format!(
                        "this session has reached its limit of {max} m-lines; {short} tracks of \
                         the room are not delivered until others end"
                    ),
                    request: None,
                },
            );
        }
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        if add.is_empty() {
            return;
        }
        let seeds: Vec<u64> = add.iter().map(|_| p.next_slot_seed()).collect();
        let who = p.id;
        let made = p.engine.call(who, Op::Negotiate, |rtc| {
            let mut api = rtc.sdp_api();
            let mut new_slots = Vec::new();
            for (kind, seed) in add.iter().zip(&seeds) {
                let stream_id = format!("sb{}-{}", who.0, seed % 1_000_000);
                let mid = api.add_media(
                    str0m_kind(*kind),
                    Direction::SendOnly,
                    Some(stream_id.clone()),
                    Some(stream_id.clone()),
                    None,
                );
                new_slots.push(Slot::new(mid, *kind, stream_id, *seed));
            }
            api.apply().map(|offer| (offer, new_slots))
        });
        match made {
            Ok(Some(((offer, pending), new_slots))) => {
                let sdp = offer.to_sdp_string();
                p.negotiation = Negotiation::ServerOffer(pending, sdp.clone());
                for slot in new_slots {
                    p.slots.insert(slot);
                }
                debug!(participant = %who, slots = add.len(), "server offer");
                self.signal(local, ServerMessage::Offer { sdp });
                self.mark_dirty(local);
            }
            Ok(None) => warn!(participant = %who, "no SDP changes to offer"),
            Err(Failed) => self.failed.push(local),
        }
    }
}
