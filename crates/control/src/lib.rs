//! Switchboard's control plane: HTTP health, and the signalling WebSocket where clients join
//! rooms and exchange SDP with the media shards.
//!
//! [`app`] builds the router without binding anything (tests call it directly); [`serve`] runs it
//! on a listener the caller bound, until `shutdown` resolves.

mod session;
mod web;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use switchboard_runtime::MediaRuntime;

/// Frames above this are refused by the WebSocket layer itself (the connection closes); frames
/// between `switchboard_protocol::MAX_MESSAGE_BYTES` and this get an error reply.
const HARD_FRAME_LIMIT: usize = 1024 * 1024;

/// Shared by every request handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub runtime: Arc<MediaRuntime>,
}

impl AppState {
    pub fn new(runtime: Arc<MediaRuntime>) -> Self {
        AppState { runtime }
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/ws", get(signalling))
        .merge(web::router())
        .with_state(state)
}

/// Serve `app` on an already bound listener until `shutdown` completes and every connection
/// has closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn signalling(ws: WebSocketUpgrade, State(state): State<AppState>) -> impl IntoResponse {
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| session::run(socket, state))
}
