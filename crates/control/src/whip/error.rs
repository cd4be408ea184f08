//! Every way a WHIP or WHEP request fails, and the HTTP status each gets (decided here and
//! nowhere else). The body is `text/plain`: `<code>: <reason>`, so a publishing tool that only
//! shows the body (OBS logs it) still tells its user what to fix.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use switchboard_protocol::ErrorCode;

/// Why a WHIP/WHEP request was refused. Each variant says what the client should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WhipError {
    /// The body is not of the media type this request takes: send `expected`.
    UnsupportedMediaType { expected: &'static str },
    /// No, a malformed, a forged or an expired bearer token: mint a new one.
    Unauthorized(String),
    /// The offer (or the SDP fragment) cannot be used: fix the client's SDP.
    BadSdp(String),
    /// A room or peer name breaks the naming rules.
    BadName(String),
    /// No such session, room or member.
    NotFound(String),
    /// The offer is valid SDP but publishes (WHIP) or receives (WHEP) nothing, or the PATCH asks
    /// for an ICE restart, which this server does not do: create a new session instead.
    Unprocessable(String),
    /// `If-Match` names another version of the session's ICE state.
    PreconditionFailed,
    /// The room refuses the session (full, the peer id is already in it): retry later or use
    /// another id.
    Conflict(ErrorCode, String),
    /// The application's admission check refused the session.
    Forbidden(String),
    /// The body is larger than this many bytes.
    TooLarge(usize),
    /// Too many sessions from this address in the last minute.
    TooManyRequests(String),
    /// The server cannot take sessions now (draining, saturated, at its session bound).
    Unavailable(ErrorCode, String),
}

impl WhipError {
    /// The protocol's name for the failure, first word of the body.
    fn code(&self) -> &'static str {
        match self {
            WhipError::UnsupportedMediaType { .. } => "unsupportedMediaType",
            WhipError::Unauthorized(_) => "unauthorized",
            WhipError::BadSdp(_) => "badSdp",
            WhipError::BadName(_) => "badName",
            WhipError::NotFound(_) => "notFound",
            WhipError::Unprocessable(_) => "unprocessable",
            WhipError::PreconditionFailed => "preconditionFailed",
            WhipError::Conflict(code, _) | WhipError::Unavailable(code, _) => {
                error_code_name(*code)
            }
            WhipError::Forbidden(_) => "admissionDenied",
            WhipError::TooManyRequests(_) => "rateLimited",
            WhipError::TooLarge(_) => "tooLarge",
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            WhipError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WhipError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WhipError::BadSdp(_) | WhipError::BadName(_) => StatusCode::BAD_REQUEST,
            WhipError::NotFound(_) => StatusCode::NOT_FOUND,
            WhipError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WhipError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            WhipError::Conflict(..) => StatusCode::CONFLICT,
            WhipError::Forbidden(_) => StatusCode::FORBIDDEN,
            WhipError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            WhipError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WhipError::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn reason(&self) -> String {
        match self {
            WhipError::UnsupportedMediaType { expected } => {
                format!("send the body as Content-Type: {expected}")
            }
            WhipError::TooLarge(max) => format!("bodies are limited to {max} bytes"),
            WhipError::PreconditionFailed => {
                "If-Match does not match the session's current ETag".to_owned()
            }
            WhipError::Unauthorized(m)
            | WhipError::BadSdp(m)
            | WhipError::BadName(m)
            | WhipError::NotFound(m)
            | WhipError::Unprocessable(m)
            | WhipError::Conflict(_, m)
            | WhipError::Forbidden(m)
            | WhipError::TooManyRequests(m)
            | WhipError::Unavailable(_, m) => m.clone(),
        }
    }

    /// A refusal the media shard or the runtime reported with a protocol error code.
    pub(crate) fn from_code(code: ErrorCode, message: String) -> WhipError {
        match code {
            ErrorCode::RoomFull | ErrorCode::PeerIdTaken => WhipError::Conflict(code, message),
            ErrorCode::BadSdp => WhipError::BadSdp(message),
            ErrorCode::TooManyTracks => WhipError::BadSdp(message),
            ErrorCode::InvalidRoomName | ErrorCode::InvalidPeerId => WhipError::BadName(message),
            ErrorCode::RateLimited => WhipError::TooManyRequests(message),
            ErrorCode::AdmissionDenied => WhipError::Forbidden(message),
            ErrorCode::CredentialRequired
            | ErrorCode::CredentialInvalid
            | ErrorCode::CredentialExpired
            | ErrorCode::CredentialFuture => WhipError::Unauthorized(message),
            _ => WhipError::Unavailable(code, message),
        }
    }
}

/// The wire name (as in `docs/protocol.md`) of the codes a WHIP/WHEP refusal can carry.
fn error_code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::RoomFull => "roomFull",
        ErrorCode::PeerIdTaken => "peerIdTaken",
        ErrorCode::Draining => "draining",
        ErrorCode::ServerBusy => "serverBusy",
        ErrorCode::TooManyRooms => "tooManyRooms",
        _ => "unavailable",
    }
}

impl IntoResponse for WhipError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = format!("{}: {}\n", self.code(), self.reason());
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"switchboard\""),
            );
        }
        resp
    }
}
