//! Why a client operation failed: [`ClientError`], shared by the handle and its driver task.

use std::fmt;

use switchboard_protocol::ErrorCode;

/// Why a client operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The WebSocket or the UDP socket could not be set up.
    Connect(String),
    /// The server (or the client's own state) broke the protocol: bad SDP, unexpected message.
    Protocol(String),
    /// The server refused the request with an `error` message.
    Rejected { code: ErrorCode, message: String },
    /// Something did not happen in time; `details` is a short dump of the client's stats.
    Timeout { what: String, details: String },
    /// The session ended (WebSocket closed, client task stopped).
    Closed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect failed: {e}"),
            ClientError::Protocol(e) => write!(f, "protocol error: {e}"),
            ClientError::Rejected { code, message } => {
                write!(f, "rejected by the server: {code:?}: {message}")
            }
            ClientError::Timeout { what, details } => {
                write!(f, "timed out waiting for {what}; {details}")
            }
            ClientError::Closed => write!(f, "the session is closed"),
        }
    }
}

impl std::error::Error for ClientError {}
