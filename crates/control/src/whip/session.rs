//! Creating a WHIP or WHEP session: the same admission steps as a WebSocket `join` (drain, rate,
//! names, credential, room bound, the application's check, placement), then the client's one
//! offer, answered by the shard. The participant joins with `server_offers: false`: it cannot
//! renegotiate, so the m-lines of that offer are all it ever has.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use switchboard_core::screen::{screen_offer, SdpLimits};
use switchboard_core::Command;
use switchboard_protocol::webhook::AdmissionRequest;
use switchboard_protocol::{
    validate_peer_id, validate_room_name, ErrorCode, LeaveReason, MediaKind, ServerMessage,
    TrackPublication,
};
use switchboard_runtime::{ParticipantEvent, RuntimeError};
use tokio::sync::mpsc;
use tracing::info;

use super::bearer::Identity;
use super::error::WhipError;
use super::resources::{Kind, Resource};
use super::sdp::{summarize, OfferSummary};
use super::watch::{spawn_watch, Watch};
use crate::webhooks::admission;
use crate::AppState;

/// Signalling events a shard may queue for one session before it counts as too slow.
const EVENT_QUEUE: usize = 256;
/// How long the `POST` waits for the shard to admit the participant and answer its offer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a `POST` asks for.
pub(crate) struct Start {
    pub kind: Kind,
    pub room: String,
    /// WHEP of one member: its peer id.
    pub member: Option<String>,
    pub identity: Identity,
    pub offer: String,
    pub remote: Option<SocketAddr>,
}

/// A session that now exists.
pub(crate) struct Created {
    pub id: String,
    pub answer: String,
    pub etag: String,
}

fn runtime_error(e: RuntimeError) -> WhipError {
    match e {
        RuntimeError::Busy => WhipError::Unavailable(
            ErrorCode::ServerBusy,
            "a media shard is saturated; retry shortly".into(),
        ),
        other => WhipError::Unavailable(ErrorCode::Internal, other.to_string()),
    }
}

/// What the session publishes: the offer's sending audio/video m-lines, the first of each kind
/// named `audio` and `video` (track ids `<peerId>:audio`, `<peerId>:video`), others after
/// their mids.
fn publications(summary: &OfferSummary) -> Vec<TrackPublication> {
    let mut named = (false, false);
    let mut out = Vec::new();
    for m in &summary.mlines {
        let (Some(kind), Some(mid)) = (m.kind, &m.mid) else {
            continue;
        };
        if !m.direction.sends() {
            continue;
        }
        let taken = match kind {
            MediaKind::Audio => &mut named.0,
            MediaKind::Video => &mut named.1,
        };
        let name = (!*taken).then(|| match kind {
            MediaKind::Audio => "audio".to_owned(),
            MediaKind::Video => "video".to_owned(),
        });
        *taken = true;
        out.push(TrackPublication {
            mid: mid.clone(),
            name,
            source: None,
            description: None,
        });
    }
    out
}

/// Check the offer fits the protocol: a WHIP offer publishes audio or video, a WHEP offer
/// receives some.
fn check_purpose(kind: Kind, summary: &OfferSummary) -> Result<(), WhipError> {
    let media = summary.mlines.iter().filter(|m| m.kind.is_some());
    match kind {
        Kind::Whip if !media.clone().any(|m| m.direction.sends()) => Err(WhipError::Unprocessable(
            "the offer publishes nothing: a WHIP offer needs a sendonly (or sendrecv) audio \
                 or video m-line"
                .into(),
        )),
        Kind::Whep if !media.clone().any(|m| m.direction.receives()) => {
            Err(WhipError::Unprocessable(
                "the offer receives nothing: a WHEP offer needs a recvonly audio or video m-line \
                 per track it wants to play"
                    .into(),
            ))
        }
        _ => Ok(()),
    }
}

fn random_peer_id(kind: Kind) -> String {
    format!("{}-{}", kind.prefix(), &crate::session::new_token()[..16])
}

/// The checks that need no shard: drain, rate, names, the offer, the room, the bounds. Returns
/// the parsed offer and what its m-lines do.
fn check(state: &AppState, start: &Start) -> Result<(SdpOffer, OfferSummary), WhipError> {
    if state.is_draining() {
        return Err(WhipError::Unavailable(
            ErrorCode::Draining,
            "the server is restarting and takes no new sessions; retry shortly".into(),
        ));
    }
    if let Some(addr) = start.remote {
        if !state.inner.join_rate.allow(addr.ip(), Instant::now()) {
            return Err(WhipError::TooManyRequests(
                "too many sessions from this address; wait a minute".into(),
            ));
        }
    }
    validate_room_name(&start.room).map_err(|e| {
        WhipError::BadName(format!(
            "room name {e} (letters, digits, '-', '_', '.'; 1-64 characters)"
        ))
    })?;
    if let Some(member) = &start.member {
        validate_peer_id(member).map_err(|e| {
            WhipError::BadName(format!(
                "peer id {e} (letters, digits, '-', '_', '.'; 1-64 characters)"
            ))
        })?;
    }
    let limits = &state.config().limits;
    let sdp_limits = SdpLimits {
        max_mlines: limits.max_mlines_per_session,
        max_tracks: limits.max_tracks_per_participant,
    };
    let offer = screen_offer(&start.offer, &sdp_limits)
        .map_err(|refusal| WhipError::BadSdp(format!("offer refused: {refusal}")))?;
    let summary = summarize(&start.offer);
    check_purpose(start.kind, &summary)?;
    let runtime = state.runtime().clone();
    if start.kind == Kind::Whep && runtime.shard_of(&start.room).is_none() {
        return Err(WhipError::NotFound(format!(
            "no room {:?} on this server: nothing to play",
            start.room
        )));
    }
    let max_rooms = limits.max_rooms;
    if max_rooms > 0 && runtime.shard_of(&start.room).is_none() && runtime.room_count() >= max_rooms
    {
        return Err(WhipError::Unavailable(
            ErrorCode::TooManyRooms,
            format!("this server hosts at most {max_rooms} rooms"),
        ));
    }
    let max_sessions = limits.max_connections;
    if max_sessions > 0 && state.inner.whip.len() >= max_sessions {
        return Err(WhipError::Unavailable(
            ErrorCode::ServerBusy,
            format!("this server holds at most {max_sessions} WHIP/WHEP sessions"),
        ));
    }
    Ok((offer, summary))
}

/// Admit the session, join its participant, apply its offer and register it.
pub(crate) async fn create(state: &AppState, start: Start) -> Result<Created, WhipError> {
    let (offer, summary) = check(state, &start)?;
    let runtime = state.runtime().clone();
    let max_sessions = state.config().limits.max_connections;
    let peer_id = start
        .identity
        .peer_id
        .clone()
        .unwrap_or_else(|| random_peer_id(start.kind));
    if let Some(check) = &state.config().admission {
        let request = AdmissionRequest {
            check: "join".into(),
            room: start.room.clone(),
            peer_id: peer_id.clone(),
            name: peer_id.clone(),
            remote_addr: start.remote.map(|a| a.to_string()).unwrap_or_default(),
            join: serde_json::json!({
                "type": "join",
                "room": start.room,
                "peerId": peer_id,
                "via": start.kind.prefix(),
            }),
        };
        admission(&state.inner.http, check, &request)
            .await
            .map_err(WhipError::Forbidden)?;
    }
    let shard = runtime.place(&start.room).map_err(runtime_error)?;
    let rtc = match runtime.build_rtc(shard).await {
        Ok(rtc) => rtc,
        Err(e) => {
            runtime.release(&start.room);
            return Err(runtime_error(e));
        }
    };
    let participant = runtime.next_participant_id();
    let (tx, mut events) = mpsc::channel(EVENT_QUEUE);
    let command = Command::Join {
        participant,
        room: start.room.clone(),
        peer_id: peer_id.clone(),
        name: peer_id.clone(),
        rtc: Box::new(rtc),
        // A room player takes every track; a member's player only that member's (subscribed
        // by the watch); a publisher takes none.
        auto_subscribe: start.kind == Kind::Whep && start.member.is_none(),
        resume_token: None,
        server_offers: false,
    };
    if let Err(e) = runtime.join(shard, command, tx) {
        runtime.release(&start.room);
        return Err(runtime_error(e));
    }
    state
        .inner
        .joined
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    info!(%participant, room = %start.room, %peer_id, shard, via = start.kind.prefix(), "HTTP session join requested");
    let mut watch = Watch::new(
        state.clone(),
        participant,
        shard,
        start.room.clone(),
        start.member.clone(),
        start.identity.expires_at,
    );
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    // 1. The shard admits the participant (or refuses: room full, peer id taken).
    let joined = wait_for(&mut events, &mut watch, deadline, |m| match m {
        ServerMessage::Joined { members, .. } => Some(Ok(members.clone())),
        ServerMessage::Error {
            code,
            message,
            request: Some(r),
        } if r == "join" => Some(Err(WhipError::from_code(*code, message.clone()))),
        _ => None,
    })
    .await;
    let members = match joined {
        Ok(Ok(members)) => members,
        Ok(Err(refusal)) => {
            // The shard's removal notice follows; the watch releases the room on it.
            spawn_watch(watch, events, None);
            return Err(refusal);
        }
        Err(gone) => return Err(abandon(watch, events, gone)),
    };
    if let Some(member) = &start.member {
        if !members.iter().any(|p| &p.peer_id == member) {
            let e = WhipError::NotFound(format!(
                "no member {member:?} in room {:?}: nothing to play",
                start.room
            ));
            return Err(abandon(watch, events, e));
        }
    }
    // 2. The offer, answered by the shard.
    let command = Command::Offer {
        participant,
        offer: Box::new(offer),
        tracks: publications(&summary),
    };
    if let Err(e) = runtime.command(shard, command) {
        return Err(abandon(watch, events, runtime_error(e)));
    }
    let answered = wait_for(&mut events, &mut watch, deadline, |m| match m {
        ServerMessage::Answer { sdp } => Some(Ok(sdp.clone())),
        ServerMessage::Error {
            code,
            message,
            request: Some(r),
        } if r == "offer" => Some(Err(WhipError::from_code(*code, message.clone()))),
        _ => None,
    })
    .await;
    let answer = match answered {
        Ok(Ok(sdp)) => sdp,
        Ok(Err(refusal)) => return Err(abandon(watch, events, refusal)),
        Err(gone) => return Err(abandon(watch, events, gone)),
    };
    // 3. Registered: PATCH and DELETE find it from here on.
    let etag = format!("\"{}\"", &crate::session::new_token()[..16]);
    let resource = Resource {
        kind: start.kind,
        room: start.room.clone(),
        peer_id: peer_id.clone(),
        participant,
        shard,
        etag: etag.clone(),
        remote_ufrag: summary.ufrag.clone().unwrap_or_default(),
    };
    let id = match state.inner.whip.insert(resource, max_sessions) {
        Ok(id) => id,
        Err(full) => {
            let e = WhipError::Unavailable(
                ErrorCode::ServerBusy,
                format!("this server holds at most {} WHIP/WHEP sessions", full.0),
            );
            return Err(abandon(watch, events, e));
        }
    };
    spawn_watch(watch, events, Some(id.clone()));
    Ok(Created { id, answer, etag })
}

/// The session cannot go on: its participant leaves, and the watch releases the room when the
/// shard confirms. Returns the error for the client.
fn abandon(watch: Watch, events: mpsc::Receiver<ParticipantEvent>, error: WhipError) -> WhipError {
    if !watch.is_done() {
        let _ = watch.state().runtime().command(
            watch.shard(),
            Command::Leave {
                participant: watch.participant(),
                reason: LeaveReason::Requested,
            },
        );
    }
    spawn_watch(watch, events, None);
    error
}

/// Read events until `pick` finds what the `POST` waits for. Every event also goes to the
/// watch (a member's tracks get subscribed meanwhile). `Err`: the participant is gone or the
/// shard did not answer in time.
async fn wait_for<T>(
    events: &mut mpsc::Receiver<ParticipantEvent>,
    watch: &mut Watch,
    deadline: tokio::time::Instant,
    mut pick: impl FnMut(&ServerMessage) -> Option<T>,
) -> Result<T, WhipError> {
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| {
                WhipError::Unavailable(
                    ErrorCode::ServerBusy,
                    "the media shard did not answer in time; retry".into(),
                )
            })?;
        match event {
            Some(ParticipantEvent::Signal(message)) => {
                let found = pick(&message);
                watch.on_signal(&message);
                if let Some(found) = found {
                    return Ok(found);
                }
            }
            Some(ParticipantEvent::Removed(reason)) => {
                watch.removed();
                let why = reason.map_or("the join was refused".to_owned(), |r| {
                    format!("the session ended at once ({r:?})")
                });
                return Err(WhipError::Unavailable(ErrorCode::Internal, why));
            }
            None => {
                watch.removed();
                return Err(WhipError::Unavailable(
                    ErrorCode::Internal,
                    "the media shard stopped".into(),
                ));
            }
        }
    }
}
