//! Entering a room: `join` (credential, limits, admission, placement, the media engine) and
//! `resume` (taking back a session whose connection dropped).

use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use switchboard_core::Command;
use switchboard_protocol::webhook::AdmissionRequest;
use switchboard_protocol::{
    validate_display_name, validate_peer_id, validate_room_name, Credential, ErrorCode,
};
use switchboard_runtime::RuntimeError;
use tokio::sync::mpsc;
use tracing::info;

use super::park::{new_token, Handover};
use super::{left_room, unix_now, Joined, Phase, Session, EVENT_QUEUE};
use crate::auth;
use crate::webhooks::admission;

/// Random enough for ids that only need to be unique in a room (std's SipHash keys are seeded
/// from the OS per `RandomState`).
fn random_peer_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    format!("peer-{:016x}", h.finish())
}

pub(super) fn runtime_error_parts(e: RuntimeError) -> (ErrorCode, String) {
    let code = match e {
        RuntimeError::Busy => ErrorCode::ServerBusy,
        _ => ErrorCode::Internal,
    };
    (code, e.to_string())
}

/// What a `join` asks for.
pub(super) struct JoinRequest {
    pub room: String,
    pub name: Option<String>,
    pub peer_id: Option<String>,
    pub credential: Option<Credential>,
    pub auto_subscribe: bool,
    /// The message as the client sent it, for the admission check.
    pub raw: serde_json::Value,
}

impl Session {
    pub(super) async fn join(&mut self, request: JoinRequest) -> Result<(), (ErrorCode, String)> {
        let JoinRequest {
            room,
            name,
            peer_id,
            credential,
            auto_subscribe,
            raw,
        } = request;
        if matches!(self.phase, Phase::Joined(_)) {
            return Err((
                ErrorCode::AlreadyJoined,
                "this connection is already in a room; open another connection to join another"
                    .into(),
            ));
        }
        if self.state.is_draining() {
            return Err((
                ErrorCode::Draining,
                "the server is restarting and takes no new joins; reconnect shortly".into(),
            ));
        }
        if let Some(addr) = self.remote {
            if !self.state.inner.join_rate.allow(addr.ip(), Instant::now()) {
                return Err((
                    ErrorCode::RateLimited,
                    "too many joins from this address; wait a minute".into(),
                ));
            }
        }
        validate_room_name(&room).map_err(|e| {
            (
                ErrorCode::InvalidRoomName,
                format!("room name {e} (letters, digits, '-', '_', '.'; 1-64 characters)"),
            )
        })?;
        if let Some(id) = &peer_id {
            validate_peer_id(id).map_err(|e| {
                (
                    ErrorCode::InvalidPeerId,
                    format!("peer id {e} (letters, digits, '-', '_', '.'; 1-64 characters)"),
                )
            })?;
        }
        if let Some(name) = &name {
            validate_display_name(name)
                .map_err(|e| (ErrorCode::InvalidName, format!("name {e}")))?;
        }
        // A credential is bound to a peer id, so the client must name it.
        let expires_at = match (&peer_id, &credential) {
            (None, Some(_)) => {
                return Err((
                    ErrorCode::CredentialInvalid,
                    "a credential is bound to a peer id: send peerId with it".into(),
                ))
            }
            (None, None) => auth::admit(&self.state.config().auth, None, "", unix_now()),
            (Some(id), c) => auth::admit(&self.state.config().auth, c.as_ref(), id, unix_now()),
        }
        .map_err(|e| (e.code(), e.message()))?;
        let peer_id = peer_id.unwrap_or_else(random_peer_id);
        // `call.<id>` rooms are their call's; mesh rooms are not joined here.
        self.state
            .exchange()
            .with(|e| e.may_join_sfu(&room, &peer_id))?;
        let name = name.unwrap_or_else(|| peer_id.clone());
        let runtime = self.state.runtime().clone();
        let max_rooms = self.state.config().limits.max_rooms;
        if max_rooms > 0 && runtime.shard_of(&room).is_none() && runtime.room_count() >= max_rooms {
            return Err((
                ErrorCode::TooManyRooms,
                format!("this server hosts at most {max_rooms} rooms"),
            ));
        }
        if let Some(check) = &self.state.config().admission {
            let request = AdmissionRequest {
                check: "join".into(),
                room: room.clone(),
                peer_id: peer_id.clone(),
                name: name.clone(),
                remote_addr: self.remote.map(|a| a.to_string()).unwrap_or_default(),
                join: raw,
            };
            admission(&self.state.inner.http, check, &request)
                .await
                .map_err(|m| (ErrorCode::AdmissionDenied, m))?;
        }
        let shard = runtime.place(&room).map_err(runtime_error_parts)?;
        let rtc = match runtime.build_rtc(shard).await {
            Ok(rtc) => rtc,
            Err(e) => {
                runtime.release(&room);
                return Err(runtime_error_parts(e));
            }
        };
        let participant = runtime.next_participant_id();
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let resume = (self.state.config().limits.resume_grace_s > 0).then(|| {
            let token = new_token();
            let takeovers = self.state.inner.resumable.register(&token);
            (token, takeovers)
        });
        let command = Command::Join {
            participant,
            room: room.clone(),
            peer_id: peer_id.clone(),
            name,
            rtc: Box::new(rtc),
            auto_subscribe,
            resume_token: resume.as_ref().map(|(token, _)| token.clone()),
            server_offers: true,
        };
        if let Err(e) = runtime.join(shard, command, tx) {
            if let Some((token, _)) = &resume {
                self.state.inner.resumable.forget(token);
            }
            runtime.release(&room);
            return Err(runtime_error_parts(e));
        }
        info!(%participant, %room, %peer_id, shard, "join requested");
        self.state
            .inner
            .joined
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.phase = Phase::Joined(Joined {
            participant,
            room,
            peer_id,
            shard,
            events: rx,
            expires_at,
            resume,
        });
        Ok(())
    }

    /// `resume`: take back the session `token` names, wherever it is held.
    pub(super) async fn resume(
        &mut self,
        token: &str,
        credential: Option<Credential>,
    ) -> Result<(), (ErrorCode, String)> {
        if matches!(self.phase, Phase::Joined(_)) {
            return Err((
                ErrorCode::AlreadyJoined,
                "this connection is already in a room".into(),
            ));
        }
        let failed = || {
            (
                ErrorCode::ResumeFailed,
                "no session to resume for this token (unknown, used, or the session ended): \
                 join again"
                    .to_owned(),
            )
        };
        let Some(Handover {
            participant,
            room,
            peer_id,
            shard,
            events,
            expires_at,
            backlog,
        }) = self.state.inner.resumable.take_over(token).await
        else {
            return Err(failed());
        };
        // A new credential (for the same peer id) may come with the resume; without one the
        // session keeps the old one's expiry.
        let expires_at = match &credential {
            None => expires_at,
            Some(c) => match auth::verify(&self.state.config().auth, c, &peer_id, unix_now()) {
                Ok(at) => Some(at),
                Err(e) => {
                    self.abandon(participant, shard, &room);
                    return Err((e.code(), e.message()));
                }
            },
        };
        let token = new_token();
        let takeovers = self.state.inner.resumable.register(&token);
        let command = Command::Resume {
            participant,
            resume_token: token.clone(),
        };
        if let Err(e) = self.state.runtime().command(shard, command) {
            self.state.inner.resumable.forget(&token);
            self.abandon(participant, shard, &room);
            return Err(runtime_error_parts(e));
        }
        info!(%participant, %room, %peer_id, "session resumed on a new connection");
        self.backlog = backlog;
        self.phase = Phase::Joined(Joined {
            participant,
            room,
            peer_id,
            shard,
            events,
            expires_at,
            resume: Some((token, takeovers)),
        });
        Ok(())
    }

    /// A taken-over session that cannot go on: it leaves.
    fn abandon(&self, participant: switchboard_core::ParticipantId, shard: usize, room: &str) {
        let _ = self.state.runtime().command(
            shard,
            Command::Leave {
                participant,
                reason: switchboard_protocol::LeaveReason::ReconnectTimeout,
            },
        );
        left_room(&self.state, room);
    }
}
