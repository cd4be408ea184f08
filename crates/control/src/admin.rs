//! The admin REST API under `/v1/rooms`, authenticated with an API secret as a bearer token.
//! Documented in `/openapi.json` and docs/operations.md.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use switchboard_core::{AdminAction, AdminReply};
use switchboard_protocol::admin::{
    ApiErrorBody, MessageRequest, MuteRequest, ParticipantDetail, PeerSummary, RoomDetail,
    RoomSummary, SubscriptionRequest,
};
use switchboard_protocol::peer::CallInfo;
use switchboard_runtime::RuntimeError;

use crate::auth::is_admin_secret;
use crate::AppState;

/// Every way an admin request fails; the HTTP status is decided here and nowhere else.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// No or wrong bearer secret.
    Unauthorized,
    NotFound(&'static str),
    BadRequest(String),
    /// A shard's queue is full; retry.
    Busy,
    Unavailable,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, message) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send `Authorization: Bearer <API secret>`".to_owned(),
            ),
            ApiError::NotFound(what) => {
                (StatusCode::NOT_FOUND, "notFound", format!("no such {what}"))
            }
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "badRequest", m),
            ApiError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "serverBusy",
                "a media shard is saturated; retry".to_owned(),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the media runtime is stopping".to_owned(),
            ),
        };
        let mut resp = (
            status,
            Json(ApiErrorBody {
                error: error.to_owned(),
                message,
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Busy => ApiError::Busy,
            _ => ApiError::Unavailable,
        }
    }
}

/// Proof that the request carried an API secret.
pub(crate) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        if is_admin_secret(state.keys(), presented.trim()) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/rooms", get(list_rooms))
        .route("/v1/peers", get(list_peers))
        .route("/v1/calls", get(list_calls))
        .route("/v1/rooms/{room}", get(get_room).delete(close_room))
        .route("/v1/rooms/{room}/participants", get(list_participants))
        .route(
            "/v1/rooms/{room}/participants/{peer_id}",
            axum::routing::delete(kick),
        )
        .route(
            "/v1/rooms/{room}/participants/{peer_id}/tracks/{track_id}/mute",
            put(set_mute),
        )
        .route(
            "/v1/rooms/{room}/messages",
            axum::routing::post(send_message),
        )
        .route(
            "/v1/rooms/{room}/participants/{peer_id}/subscriptions",
            put(update_subscriptions),
        )
}

/// LiveKit's `UpdateSubscriptions`: which tracks one member receives. Every id is checked
/// first: an unknown one is a 404 and changes nothing.
async fn update_subscriptions(
    _: Admin,
    State(state): State<AppState>,
    Path((room, peer_id)): Path<(String, String)>,
    body: Result<Json<SubscriptionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(SubscriptionRequest {
        subscribe,
        unsubscribe,
    }) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    const MAX_IDS: usize = 1024;
    if subscribe.len() + unsubscribe.len() > MAX_IDS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_IDS} track ids per request"
        )));
    }
    ask(
        &state,
        &room,
        AdminAction::UpdateSubscriptions {
            room: room.clone(),
            peer_id,
            subscribe,
            unsubscribe,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn ask(state: &AppState, room: &str, action: AdminAction) -> Result<AdminReply, ApiError> {
    let shard = state
        .runtime()
        .shard_of(room)
        .ok_or(ApiError::NotFound("room"))?;
    let reply = state.runtime().admin(shard, action).await?;
    match reply {
        AdminReply::NotFound(what) => Err(ApiError::NotFound(what)),
        other => Ok(other),
    }
}

/// Every peer registered on `/v1/peer` (presence), with its calls and mesh rooms.
async fn list_peers(_: Admin, State(state): State<AppState>) -> Json<Vec<PeerSummary>> {
    Json(state.exchange().with(|e| e.peers()))
}

/// Every call that has not ended.
async fn list_calls(_: Admin, State(state): State<AppState>) -> Json<Vec<CallInfo>> {
    Json(state.exchange().with(|e| e.calls()))
}

async fn list_rooms(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<RoomSummary>>, ApiError> {
    let mut rooms = Vec::new();
    for shard in 0..state.runtime().shard_count() {
        if !state.runtime().shard_alive(shard) {
            continue; // a dead shard hosts no rooms any more
        }
        if let AdminReply::Rooms(mut r) =
            state.runtime().admin(shard, AdminAction::ListRooms).await?
        {
            rooms.append(&mut r);
        }
    }
    rooms.sort_by(|a, b| a.room.cmp(&b.room));
    Ok(Json(rooms))
}

async fn room_detail(state: &AppState, room: String) -> Result<RoomDetail, ApiError> {
    match ask(state, &room, AdminAction::Room { room: room.clone() }).await? {
        AdminReply::Room(detail) => Ok(detail),
        _ => Err(ApiError::NotFound("room")),
    }
}

async fn get_room(
    _: Admin,
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> Result<Json<RoomDetail>, ApiError> {
    room_detail(&state, room).await.map(Json)
}

async fn list_participants(
    _: Admin,
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> Result<Json<Vec<ParticipantDetail>>, ApiError> {
    room_detail(&state, room)
        .await
        .map(|d| Json(d.participants))
}

async fn kick(
    _: Admin,
    State(state): State<AppState>,
    Path((room, peer_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ask(
        &state,
        &room,
        AdminAction::Kick {
            room: room.clone(),
            peer_id,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_mute(
    _: Admin,
    State(state): State<AppState>,
    Path((room, peer_id, track_id)): Path<(String, String, String)>,
    body: Result<Json<MuteRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(MuteRequest { muted }) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let action = AdminAction::SetMuted {
        room: room.clone(),
        peer_id,
        track_id,
        muted,
    };
    ask(&state, &room, action).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn close_room(
    _: Admin,
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    ask(&state, &room, AdminAction::CloseRoom { room: room.clone() }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn send_message(
    _: Admin,
    State(state): State<AppState>,
    Path(room): Path<String>,
    body: Result<Json<MessageRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(MessageRequest { data, to }) =
        body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    ask(
        &state,
        &room,
        AdminAction::Message {
            room: room.clone(),
            to,
            data,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
