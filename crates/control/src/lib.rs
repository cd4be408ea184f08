//! Switchboard's control plane: the signalling WebSocket where clients join rooms and exchange
//! SDP with the media shards, the admin REST API, health/readiness, Prometheus metrics, webhook
//! delivery, and the demo page with the JS SDK.
//!
//! [`app`] builds the router without binding anything (tests call it directly); [`serve`] runs it
//! on a listener the caller bound, until `shutdown` resolves.

mod admin;
pub mod auth;
mod client_socket;
mod config;
mod exchange;
mod metrics;
mod ratelimit;
mod session;
pub mod turn;
mod web;
mod webhooks;
mod whip;

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use switchboard_runtime::MediaRuntime;
use tokio::sync::watch;

pub use config::{
    AdmissionConfig, ApiKey, AuthConfig, AuthMode, CallsConfig, ControlConfig, Limits, TurnConfig,
    WebhookConfig,
};
pub use metrics::Metrics;
pub use webhooks::signature as webhook_signature;
pub use whip::bearer_token as whip_bearer_token;

use ratelimit::{ConnectionRefusal, Connections, JoinRate};

/// Frames above this are refused by the WebSocket layer itself (the connection closes); frames
/// between the configured message limit and this get an error reply.
const HARD_FRAME_LIMIT: usize = 4 * 1024 * 1024;
/// The WebSocket's initial read buffer and the most one read asks the socket for. tungstenite's
/// 128 KiB stayed allocated for every connection (about a sixth of a participant's memory in a
/// 10-person room); signalling messages are a few hundred bytes, and an offer of tens of KiB is
/// read in a few more calls into a buffer reserved for its announced length.
const READ_BUFFER: usize = 8 * 1024;

const OPENAPI: &str = include_str!("../openapi.json");

/// Shared by every request handler. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    runtime: Arc<MediaRuntime>,
    config: ControlConfig,
    /// Keys accepted for credentials and the admin API (configured, or the generated dev key).
    keys: Vec<ApiKey>,
    dev_key: Option<ApiKey>,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    join_rate: JoinRate,
    connections: Arc<Connections>,
    /// Sessions a `resume` may take over, by token.
    resumable: session::Resumable,
    draining: AtomicBool,
    drain_timeout: Mutex<Duration>,
    /// `Some(deadline in ms from the start of the drain)` once draining.
    drain: watch::Sender<Option<u64>>,
    joined: AtomicUsize,
    /// Live WHIP and WHEP sessions, by resource id.
    whip: whip::Resources,
    /// Presence, calls and mesh rooms (`/v1/peer`).
    exchange: Arc<exchange::ExchangeHandle>,
}

fn random_secret() -> String {
    let mut out = String::new();
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

impl AppState {
    /// Must be called inside a tokio runtime: it starts the notification/webhook tasks.
    pub fn new(runtime: Arc<MediaRuntime>, config: ControlConfig) -> AppState {
        let dev_key =
            (config.auth.mode == AuthMode::Dev && config.auth.keys.is_empty()).then(|| ApiKey {
                id: "dev".into(),
                secret: random_secret(),
            });
        let mut keys = config.auth.keys.clone();
        keys.extend(dev_key.clone());
        let mut auth = config.auth.clone();
        auth.keys = keys.clone();
        let config = ControlConfig { auth, ..config };
        let metrics = Arc::new(Metrics::new());
        let http = reqwest::Client::builder()
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let secret = if config.webhooks.secret.is_empty() {
            keys.first().map(|k| k.secret.clone()).unwrap_or_default()
        } else {
            config.webhooks.secret.clone()
        };
        let hooks = webhooks::start(
            config.webhooks.clone(),
            secret,
            http.clone(),
            metrics.clone(),
        );
        if let Some(notifications) = runtime.take_notifications() {
            webhooks::spawn_notifications(notifications, hooks.clone());
        }
        let exchange = exchange::ExchangeHandle::start(
            config.calls.clone(),
            hooks,
            runtime.clone(),
            metrics.clone(),
        );
        let (drain, _) = watch::channel(None);
        let whip = whip::Resources::new(metrics.http_sessions.clone());
        AppState {
            inner: Arc::new(Inner {
                join_rate: JoinRate::new(config.limits.joins_per_ip_per_minute),
                connections: Connections::new(
                    config.limits.max_connections,
                    config.limits.max_connections_per_ip,
                ),
                resumable: session::Resumable::default(),
                runtime,
                config,
                keys,
                dev_key,
                metrics,
                http,
                draining: AtomicBool::new(false),
                drain_timeout: Mutex::new(Duration::from_secs(30)),
                drain,
                joined: AtomicUsize::new(0),
                whip,
                exchange,
            }),
        }
    }

    /// The key generated for dev mode (no keys configured): print it so the admin API and
    /// credentials can be tried.
    pub fn dev_key(&self) -> Option<ApiKey> {
        self.inner.dev_key.clone()
    }

    pub fn runtime(&self) -> &Arc<MediaRuntime> {
        &self.inner.runtime
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub(crate) fn config(&self) -> &ControlConfig {
        &self.inner.config
    }

    pub(crate) fn exchange(&self) -> &Arc<exchange::ExchangeHandle> {
        &self.inner.exchange
    }

    pub(crate) fn keys(&self) -> &[ApiKey] {
        &self.inner.keys
    }

    /// How long clients are told they have when a drain starts.
    pub fn set_drain_timeout(&self, timeout: Duration) {
        *self.inner.drain_timeout.lock() = timeout;
    }

    /// Stop taking joins, turn `/readyz` to 503, and tell every connected client.
    pub fn begin_drain(&self) {
        if self.inner.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        let deadline = self.inner.drain_timeout.lock().as_millis() as u64;
        self.inner.drain.send_replace(Some(deadline));
        tracing::info!(deadline_ms = deadline, "draining: no new joins");
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Signalling sessions currently in a room.
    pub fn joined_participants(&self) -> usize {
        self.inner.joined.load(Ordering::SeqCst)
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .route("/v1/ws", get(signalling))
        .route("/v1/peer", get(peer_connection))
        .merge(admin::router())
        .merge(whip::router())
        .merge(web::router())
        .with_state(state)
}

/// Serve `app` on an already bound listener until `shutdown` completes and every connection
/// has closed. Peer addresses are recorded for per-address join limits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 while the server takes joins and every media shard runs; 503 while draining, or when a
/// shard thread died (the process still serves the other shards, but it is degraded and
/// should be replaced).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n".to_owned());
    }
    let dead = state.runtime().dead_shards();
    if !dead.is_empty() {
        let list: Vec<String> = dead.iter().map(|s| s.to_string()).collect();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("degraded: media shard {} stopped\n", list.join(", ")),
        );
    }
    (StatusCode::OK, "ready\n".to_owned())
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.inner.metrics.render(&state.inner.runtime);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn signalling(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
) -> impl IntoResponse {
    upgrade(ws, state, parts, |socket, state, remote, slot| {
        session::run(socket, state, remote, slot)
    })
}

/// `/v1/peer`: a peer connection (presence, calls, mesh rooms).
async fn peer_connection(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
) -> impl IntoResponse {
    upgrade(ws, state, parts, |socket, state, remote, slot| {
        exchange::connection::run(socket, state, remote, slot)
    })
}

/// Admit a WebSocket (connection limits, counted before the upgrade: a refused client costs
/// an HTTP response, not a task) and hand it to `serve`.
fn upgrade<F, Fut>(
    ws: WebSocketUpgrade,
    state: AppState,
    parts: axum::http::request::Parts,
    serve: F,
) -> axum::response::Response
where
    F: FnOnce(
            axum::extract::ws::WebSocket,
            AppState,
            Option<SocketAddr>,
            ratelimit::ConnectionSlot,
        ) -> Fut
        + Send
        + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let remote = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let slot = match state.inner.connections.admit(remote.map(|a| a.ip())) {
        Ok(slot) => slot,
        Err(refusal) => {
            state.metrics().connections_refused.inc();
            let (status, text) = match refusal {
                ConnectionRefusal::Total(max) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("tooManyConnections: this server holds at most {max} connections\n"),
                ),
                ConnectionRefusal::PerAddress(max) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("tooManyConnections: at most {max} connections per client address\n"),
                ),
            };
            return (status, text).into_response();
        }
    };
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| serve(socket, state, remote, slot))
        .into_response()
}
