//! Every client message after the first: parsed, bounded, validated and screened here (on the
//! signalling task, never on a media thread), optionally checked by the application, then
//! handed to the participant's shard as a command.

use std::time::Instant;

use switchboard_core::screen::{screen_answer, screen_candidate, screen_offer};
use switchboard_core::{Command, ParticipantId};
use switchboard_protocol::webhook::SignalCheck;
use switchboard_protocol::{
    validate_peer_id, ClientMessage, Credential, ErrorCode, LeaveReason, MediaKind, RoomMode,
    ServerMessage, TrackPublication, TrackSource, MAX_TRACK_DESCRIPTION,
};

use super::join::{runtime_error_parts, JoinRequest};
use super::{error, unix_now, Joined, Phase, Session};
use crate::auth;
use crate::webhooks::admission_signal;

/// A track's name follows the peer id rules (it is half of the track id).
fn check_track_name(name: &str) -> Result<(), String> {
    validate_peer_id(name)
        .map_err(|e| format!("track name {e} (letters, digits, '-', '_', '.'; 1-64 characters)"))
}

fn check_description(text: &str) -> Result<(), String> {
    if text.chars().count() > MAX_TRACK_DESCRIPTION {
        return Err(format!(
            "a track description is at most {MAX_TRACK_DESCRIPTION} characters"
        ));
    }
    if text.chars().any(|c| c.is_control()) {
        return Err("a track description must not contain control characters".into());
    }
    Ok(())
}

fn check_source(source: Option<TrackSource>, kind: Option<MediaKind>) -> Result<(), String> {
    match (source, kind) {
        (Some(source), Some(kind)) if !source.fits(kind) => {
            Err(format!("a {source:?} track cannot carry {kind:?}"))
        }
        _ => Ok(()),
    }
}

fn check_publications(tracks: &[TrackPublication], max: usize) -> Result<(), String> {
    if tracks.len() > max {
        return Err(format!("an offer describes at most {max} tracks"));
    }
    for t in tracks {
        if t.mid.is_empty() || t.mid.len() > 32 {
            return Err(format!("track mid {:?} is not an m-line id", t.mid));
        }
        if let Some(name) = &t.name {
            check_track_name(name)?;
        }
        if let Some(text) = &t.description {
            check_description(text)?;
        }
    }
    Ok(())
}

impl Session {
    pub(super) async fn on_text(&mut self, text: &str) {
        let limit = self.state.config().limits.max_message_bytes;
        if text.len() > limit {
            self.send(error(
                ErrorCode::MessageTooLarge,
                format!("messages are limited to {limit} bytes"),
                None,
            ))
            .await;
            return;
        }
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                // Say whether it was JSON at all, and which request it tried to be.
                let reply = match serde_json::from_str::<serde_json::Value>(text) {
                    Err(e) => error(ErrorCode::BadMessage, format!("not JSON: {e}"), None),
                    Ok(raw) => error(
                        ErrorCode::BadMessage,
                        format!("not a valid message: {e}"),
                        raw.get("type").and_then(|t| t.as_str()),
                    ),
                };
                self.send(reply).await;
                return;
            }
        };
        let kind = message.kind();
        match message {
            ClientMessage::Ping {} => {
                self.send(ServerMessage::Pong {}).await;
                return;
            }
            ClientMessage::Join {
                room,
                name,
                peer_id,
                mode,
                credential,
                auto_subscribe,
            } => {
                if mode == RoomMode::Mesh {
                    self.count_refusal(ErrorCode::WrongRoomMode);
                    self.send(error(
                        ErrorCode::WrongRoomMode,
                        "mesh rooms are joined on the peer connection (/v1/peer) with meshJoin",
                        Some("join"),
                    ))
                    .await;
                    return;
                }
                // The admission hook sees the join as the client sent it, custom fields too.
                let raw = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
                let request = JoinRequest {
                    room,
                    name,
                    peer_id,
                    credential,
                    auto_subscribe: auto_subscribe.unwrap_or(true),
                    raw,
                };
                if let Err((code, message)) = self.join(request).await {
                    self.count_refusal(code);
                    self.send(error(code, message, Some("join"))).await;
                }
                return;
            }
            ClientMessage::Resume { token, credential } => {
                if let Err((code, message)) = self.resume(&token, credential).await {
                    self.send(error(code, message, Some("resume"))).await;
                }
                return;
            }
            _ => {}
        }
        if !self.joined(kind).await {
            return;
        }
        if !self.signal_allowed(kind, text).await {
            return;
        }
        match message {
            ClientMessage::Offer { sdp, tracks } => {
                let max = self.state.config().limits.max_tracks_per_participant;
                if let Err(why) = check_publications(&tracks, max) {
                    self.send(error(ErrorCode::InvalidTrack, why, Some(kind)))
                        .await;
                    return;
                }
                match screen_offer(&sdp, &self.sdp_limits) {
                    Ok(offer) => {
                        self.forward(kind, |participant| Command::Offer {
                            participant,
                            offer: Box::new(offer),
                            tracks,
                        })
                        .await
                    }
                    Err(refusal) => {
                        let why = format!("offer refused: {refusal}");
                        self.send(error(refusal.code(), why, Some(kind))).await
                    }
                }
            }
            ClientMessage::Answer { sdp } => match screen_answer(&sdp, &self.sdp_limits) {
                Ok(answer) => {
                    self.forward(kind, |participant| Command::Answer {
                        participant,
                        answer: Box::new(answer),
                    })
                    .await
                }
                Err(refusal) => {
                    let why = format!("answer refused: {refusal}");
                    self.send(error(refusal.code(), why, Some(kind))).await
                }
            },
            ClientMessage::Candidate { candidate, .. } => match screen_candidate(&candidate) {
                Ok(candidate) => {
                    self.forward(kind, |participant| Command::Candidate {
                        participant,
                        candidate: candidate.map(Box::new),
                    })
                    .await
                }
                Err(refusal) => {
                    let why = format!("bad ICE candidate: {refusal}");
                    self.send(error(ErrorCode::BadCandidate, why, Some(kind)))
                        .await
                }
            },
            ClientMessage::DefineTrack {
                name,
                kind: media,
                source,
                description,
            } => {
                let valid = check_track_name(&name)
                    .and_then(|()| description.as_deref().map_or(Ok(()), check_description))
                    .and_then(|()| check_source(source, Some(media)));
                if let Err(why) = valid {
                    self.send(error(ErrorCode::InvalidTrack, why, Some(kind)))
                        .await;
                    return;
                }
                self.forward(kind, |participant| Command::DefineTrack {
                    participant,
                    name,
                    kind: media,
                    source,
                    description,
                })
                .await
            }
            ClientMessage::RemoveTrack { track_id } => {
                self.forward(kind, |participant| Command::RemoveTrack {
                    participant,
                    track_id,
                })
                .await
            }
            ClientMessage::Subscribe { track_id } => {
                self.forward(kind, |participant| Command::Subscribe {
                    participant,
                    track_id,
                })
                .await
            }
            ClientMessage::Unsubscribe { track_id } => {
                self.forward(kind, |participant| Command::Unsubscribe {
                    participant,
                    track_id,
                })
                .await
            }
            ClientMessage::Mute { track_id, muted } => {
                self.forward(kind, |participant| Command::Mute {
                    participant,
                    track_id,
                    muted,
                })
                .await
            }
            ClientMessage::SetTrackQuality {
                track_id,
                quality,
                priority,
            } => {
                self.forward(kind, |participant| Command::SetTrackQuality {
                    participant,
                    track_id,
                    quality,
                    priority,
                })
                .await
            }
            ClientMessage::Leave {} => {
                self.leaving = true;
                self.forward(kind, |participant| Command::Leave {
                    participant,
                    reason: LeaveReason::Requested,
                })
                .await
            }
            ClientMessage::Message { data, to } => {
                if !self.messages.allow(data.len(), Instant::now()) {
                    let limits = &self.state.config().limits;
                    let text = format!(
                        "data messages are limited to {} per second and {} bytes per second per \
                         connection; this one was dropped",
                        limits.messages_per_second, limits.message_bytes_per_second
                    );
                    self.state.metrics().messages_rate_limited.inc();
                    self.send(error(ErrorCode::RateLimited, text, Some(kind)))
                        .await;
                    return;
                }
                self.forward(kind, |participant| Command::Message {
                    participant,
                    to,
                    data,
                })
                .await
            }
            ClientMessage::UpdateCredential { credential } => {
                self.update_credential(credential).await
            }
            ClientMessage::Join { .. } | ClientMessage::Resume { .. } | ClientMessage::Ping {} => {}
        }
    }

    /// With `admission.every_signal`, ask the application before acting on this message.
    /// False: refused (the client was told).
    async fn signal_allowed(&mut self, kind: &str, text: &str) -> bool {
        let Some(check) = self.state.config().admission.clone() else {
            return true;
        };
        if !check.every_signal {
            return true;
        }
        let Phase::Joined(Joined { room, peer_id, .. }) = &self.phase else {
            return true;
        };
        let request = SignalCheck {
            check: "signal".into(),
            room: room.clone(),
            peer_id: peer_id.clone(),
            remote_addr: self.remote.map(|a| a.to_string()).unwrap_or_default(),
            signal_type: kind.to_owned(),
            signal: serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
        };
        match admission_signal(&self.state.inner.http, &check, &request).await {
            Ok(()) => true,
            Err(why) => {
                self.send(error(ErrorCode::AdmissionDenied, why, Some(kind)))
                    .await;
                false
            }
        }
    }

    async fn update_credential(&mut self, credential: Credential) {
        const REQ: Option<&str> = Some("updateCredential");
        let config = &self.state.config().auth;
        let Phase::Joined(Joined {
            peer_id,
            expires_at,
            ..
        }) = &mut self.phase
        else {
            return;
        };
        match auth::verify(config, &credential, peer_id, unix_now()) {
            Ok(at) => {
                *expires_at = Some(at);
                self.send(ServerMessage::CredentialUpdated { expires_at: at })
                    .await;
            }
            Err(e) => self.send(error(e.code(), e.message(), REQ)).await,
        }
    }

    /// True when joined; otherwise tells the client `notJoined` for this request.
    async fn joined(&mut self, kind: &str) -> bool {
        if matches!(self.phase, Phase::Joined(_)) {
            return true;
        }
        self.send(error(
            ErrorCode::NotJoined,
            format!("send join before {kind}"),
            Some(kind),
        ))
        .await;
        false
    }

    async fn forward(&mut self, kind: &str, make: impl FnOnce(ParticipantId) -> Command) {
        let Phase::Joined(Joined {
            participant, shard, ..
        }) = &self.phase
        else {
            return;
        };
        let result = self.state.runtime().command(*shard, make(*participant));
        if let Err(e) = result {
            let (code, message) = runtime_error_parts(e);
            self.send(error(code, message, Some(kind))).await;
        }
    }
}
