//! WHIP (RFC 9725) and WHEP: publishing into a room and playing it over plain HTTP, for tools
//! that speak no Switchboard protocol (OBS, GStreamer, FFmpeg, any `RTCPeerConnection` +
//! `fetch` page). See docs/whip.md.
//!
//! | route | |
//! |---|---|
//! | `POST /whip/{room}` | publish: `application/sdp` offer → `201` answer, `Location`, `ETag` |
//! | `POST /whep/{room}` | play every track of the room |
//! | `POST /whep/{room}/{peerId}` | play one member's tracks |
//! | `PATCH /whip/{room}/{id}`, `/whep/...` | trickle candidates (`application/trickle-ice-sdpfrag`) |
//! | `DELETE /whip/{room}/{id}`, `/whep/...` | end the session |
//! | `OPTIONS` on all of them | CORS preflight |
//!
//! | module | job |
//! |---|---|
//! | `mod.rs` | routes, content types, CORS |
//! | `bearer.rs` | the bearer token (credential + peer id) |
//! | `session.rs` | creating a session: admission, join, offer, answer |
//! | `watch.rs` | a session's life after the POST, and its end |
//! | `resources.rs` | the table of live sessions PATCH and DELETE look in |
//! | `sdp.rs` | offer m-lines and trickle-ice-sdpfrag bodies |
//! | `links.rs` | `Link: rel="ice-server"` headers |
//! | `error.rs` | every refusal and its status |

mod bearer;
mod error;
mod links;
mod resources;
mod sdp;
mod session;
mod watch;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use switchboard_core::screen::screen_candidate;
use switchboard_core::Command;
use switchboard_protocol::LeaveReason;
use tracing::info;

pub use bearer::encode as bearer_token;
use error::WhipError;
use resources::Kind;
pub(crate) use resources::Resources;
use session::{create, Start};

use crate::AppState;

const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
const ACCEPT_PATCH: header::HeaderName = header::HeaderName::from_static("accept-patch");
/// Largest SDP or fragment body read (an offer of the most m-lines a session may have fits).
const MAX_BODY: usize = 256 * 1024;
const ALLOW_METHODS: &str = "POST, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, If-Match";
const EXPOSE_HEADERS: &str = "Location, ETag, Link, Accept-Patch";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/whip/{room}", post(whip_post).options(preflight))
        .route(
            "/whip/{room}/{id}",
            axum::routing::patch(whip_patch)
                .delete(whip_delete)
                .options(preflight),
        )
        .route("/whep/{room}", post(whep_post).options(preflight))
        .route(
            "/whep/{room}/{id}",
            post(whep_member_post)
                .patch(whep_patch)
                .delete(whep_delete)
                .options(preflight),
        )
        .layer(axum::middleware::map_response(cors))
}

/// Every WHIP/WHEP response may be read by a page of any origin: the bearer token travels in a
/// header (never a cookie), so nothing ambient is exposed.
async fn cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    response
}

async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
            (ACCEPT_PATCH, SDPFRAG),
        ],
    )
        .into_response()
}

/// Is the body declared as `expected` (parameters and case aside)?
fn content_type_is(headers: &HeaderMap, expected: &'static str) -> Result<(), WhipError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if declared.as_deref() == Some(expected) {
        Ok(())
    } else {
        Err(WhipError::UnsupportedMediaType { expected })
    }
}

/// The request's headers, client address and body as text.
async fn read(request: Request) -> Result<(HeaderMap, Option<SocketAddr>, String), WhipError> {
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| WhipError::TooLarge(MAX_BODY))?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| WhipError::BadSdp("the body is not UTF-8 text".into()))?;
    Ok((parts.headers, remote, text))
}

async fn start(
    state: AppState,
    kind: Kind,
    room: String,
    member: Option<String>,
    request: Request,
) -> Result<Response, WhipError> {
    // The media type first: a client that sends the wrong kind of body learns that before
    // anything else.
    content_type_is(request.headers(), SDP)?;
    let (headers, remote, offer) = read(request).await?;
    let identity = bearer::identify(&state.config().auth, &headers, crate::session::unix_now())?;
    let peer_hint = identity.peer_id.clone().unwrap_or_default();
    let start = Start {
        kind,
        room: room.clone(),
        member,
        identity,
        offer,
        remote,
    };
    // On a task of its own: a client that hangs up mid-request drops this handler, and a join
    // cut off half-way would leave a participant nobody watches. Finished, the session lives
    // on until its media times out (or it is DELETEd).
    let task_state = state.clone();
    let created = tokio::spawn(async move { create(&task_state, start).await })
        .await
        .map_err(|_| {
            WhipError::Unavailable(
                switchboard_protocol::ErrorCode::Internal,
                "the session could not be created (an internal error; see the server log)".into(),
            )
        })??;
    let location = format!("/{}/{room}/{}", kind.prefix(), created.id);
    info!(%room, via = kind.prefix(), %location, "HTTP session created");
    let mut response = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, SDP.to_owned()),
            (header::LOCATION, location),
            (header::ETAG, created.etag),
            (ACCEPT_PATCH, SDPFRAG.to_owned()),
        ],
        created.answer,
    )
        .into_response();
    for server in links::ice_servers(state.config(), &peer_hint) {
        if let Ok(value) = HeaderValue::from_str(&links::link(&server)) {
            response.headers_mut().append(header::LINK, value);
        }
    }
    Ok(response)
}

async fn whip_post(
    State(state): State<AppState>,
    Path(room): Path<String>,
    request: Request,
) -> Response {
    start(state, Kind::Whip, room, None, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn whep_post(
    State(state): State<AppState>,
    Path(room): Path<String>,
    request: Request,
) -> Response {
    start(state, Kind::Whep, room, None, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn whep_member_post(
    State(state): State<AppState>,
    Path((room, peer_id)): Path<(String, String)>,
    request: Request,
) -> Response {
    start(state, Kind::Whep, room, Some(peer_id), request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `PATCH`: trickled candidates (204). A new ICE username fragment is an ICE restart, which a
/// session of this server cannot do (its one offer is final): 422, as RFC 9725 §4.3.1 says for
/// a session that supports trickle but not restarts.
async fn patch(
    state: AppState,
    kind: Kind,
    room: String,
    id: String,
    request: Request,
) -> Result<Response, WhipError> {
    content_type_is(request.headers(), SDPFRAG)?;
    let (headers, _, body) = read(request).await?;
    let Some(resource) = state.inner.whip.get(kind, &room, &id) else {
        return Err(unknown(kind, &room));
    };
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    let wildcard = if_match.is_some_and(|v| v.trim() == "*");
    if let Some(tag) = if_match {
        if !wildcard && tag.trim() != resource.etag {
            return Err(WhipError::PreconditionFailed);
        }
    }
    let max = state.config().limits.max_candidates_per_session;
    let fragment = sdp::fragment(&body, max)
        .map_err(|e| WhipError::BadSdp(format!("SDP fragment refused: {e}")))?;
    let restart = wildcard
        || fragment
            .ufrag
            .as_ref()
            .is_some_and(|u| *u != resource.remote_ufrag);
    if restart {
        return Err(WhipError::Unprocessable(
            "ICE restarts are not supported: DELETE this session and POST a new offer".into(),
        ));
    }
    let mut parsed = Vec::with_capacity(fragment.candidates.len());
    for line in &fragment.candidates {
        if is_mdns(line) {
            // A browser hiding its address behind an mDNS name: this server cannot resolve it
            // and does not need to (it is ICE-lite: it learns the address from the client's
            // own checks), so the candidate is skipped, not refused.
            continue;
        }
        match screen_candidate(line) {
            Ok(Some(c)) => parsed.push(c),
            Ok(None) => {}
            Err(refusal) => {
                return Err(WhipError::BadSdp(format!("bad ICE candidate: {refusal}")));
            }
        }
    }
    for candidate in parsed {
        let command = Command::Candidate {
            participant: resource.participant,
            candidate: Some(Box::new(candidate)),
        };
        if state.runtime().command(resource.shard, command).is_err() {
            return Err(WhipError::Unavailable(
                switchboard_protocol::ErrorCode::ServerBusy,
                "the media shard did not take the candidates; retry".into(),
            ));
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn whip_patch(
    State(state): State<AppState>,
    Path((room, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    patch(state, Kind::Whip, room, id, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn whep_patch(
    State(state): State<AppState>,
    Path((room, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    patch(state, Kind::Whep, room, id, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Is the candidate's address an mDNS name (`<uuid>.local`)?
fn is_mdns(candidate: &str) -> bool {
    candidate
        .split_whitespace()
        .nth(4)
        .is_some_and(|address| address.to_ascii_lowercase().ends_with(".local"))
}

fn unknown(kind: Kind, room: &str) -> WhipError {
    WhipError::NotFound(format!(
        "no {} session with this id in room {room:?} (it ended, or never existed)",
        kind.prefix().to_ascii_uppercase()
    ))
}

/// `DELETE`: the participant leaves (the room sees `peerLeft`); the resource is gone at once.
fn delete(state: &AppState, kind: Kind, room: &str, id: &str) -> Result<Response, WhipError> {
    let resource = state
        .inner
        .whip
        .take(kind, room, id)
        .ok_or_else(|| unknown(kind, room))?;
    info!(%room, peer_id = %resource.peer_id, via = kind.prefix(), "HTTP session deleted");
    // A shard that is gone has removed the participant already.
    let _ = state.runtime().command(
        resource.shard,
        Command::Leave {
            participant: resource.participant,
            reason: LeaveReason::Requested,
        },
    );
    Ok(StatusCode::OK.into_response())
}

async fn whip_delete(
    State(state): State<AppState>,
    Path((room, id)): Path<(String, String)>,
) -> Response {
    delete(&state, Kind::Whip, &room, &id).unwrap_or_else(IntoResponse::into_response)
}

async fn whep_delete(
    State(state): State<AppState>,
    Path((room, id)): Path<(String, String)>,
) -> Response {
    delete(&state, Kind::Whep, &room, &id).unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdns_candidates() {
        assert!(is_mdns(
            "candidate:1 1 udp 2122260223 4f1c7a3e-5d2b-4c9e-8a11-0123456789ab.local 50000 typ host"
        ));
        assert!(!is_mdns(
            "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"
        ));
        assert!(!is_mdns("candidate:1"));
    }
}
