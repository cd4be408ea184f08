//! A Switchboard server running inside the test process on loopback, with real UDP sockets and
//! a real HTTP/WebSocket listener, plus small helpers for raw signalling.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_control::{serve, AppState, ControlConfig};
use switchboard_core::ShardStats;
use switchboard_loadtest::{Client, ClientOptions, ClientStats, MediaKind};
use switchboard_protocol::ServerMessage;
use switchboard_runtime::{MediaRuntime, RuntimeConfig};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

/// Generous: CI machines are slow and shared; waits return as soon as their condition holds.
pub const WAIT: Duration = Duration::from_secs(30);

pub struct TestServer {
    pub http: SocketAddr,
    pub url: String,
    pub runtime: Arc<MediaRuntime>,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start(shards: usize) -> TestServer {
        TestServer::start_with(shards, ControlConfig::default()).await
    }

    pub async fn start_with(shards: usize, control: ControlConfig) -> TestServer {
        let mut config = RuntimeConfig::localhost(shards);
        config.ports = vec![0; shards];
        TestServer::start_config(config, control).await
    }

    /// A server from explicit runtime settings (ports, addresses, limits).
    pub async fn start_config(mut config: RuntimeConfig, control: ControlConfig) -> TestServer {
        config.max_participants_per_room = control.limits.max_participants_per_room;
        config.max_tracks_per_participant = control.limits.max_tracks_per_participant;
        config.max_mlines_per_session = control.limits.max_mlines_per_session;
        config.max_candidates_per_session = control.limits.max_candidates_per_session;
        let runtime = Arc::new(MediaRuntime::start(config).expect("media runtime starts"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind http");
        let http = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState::new(runtime.clone(), control);
        let app_state = state.clone();
        tokio::spawn(async move {
            let _ = serve(listener, state, async move {
                let _ = rx.await;
            })
            .await;
        });
        TestServer {
            http,
            url: format!("ws://{http}/v1/ws"),
            runtime,
            state: app_state,
            shutdown: Some(tx),
        }
    }

    pub fn options(&self, room: &str, name: &str) -> ClientOptions {
        let mut opts = ClientOptions::new(self.url.clone(), room);
        opts.name = Some(name.to_owned());
        opts.peer_id = Some(name.to_owned());
        opts
    }

    pub async fn join(&self, room: &str, name: &str) -> Client {
        Client::join(self.options(room, name))
            .await
            .unwrap_or_else(|e| panic!("{name} joins {room}: {e}"))
    }

    /// Sum of all shards' counters (refreshed every ~100 ms by the shards).
    pub fn stats(&self) -> ShardStats {
        ShardStats::sum(&self.runtime.stats())
    }

    /// `GET path` on the HTTP listener: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.http);
        let resp = reqwest::get(&url).await.expect("HTTP request");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    /// The value of one Prometheus sample line (`name{labels} value`) from `/metrics`.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
    }
}

/// Join a raw connection to `room` as `peer`: the `joined` reply.
pub async fn raw_join(url: &str, room: &str, peer: &str) -> RawWs {
    let mut ws = RawWs::connect(url).await;
    ws.send(&format!(
        r#"{{"type":"join","room":"{room}","peerId":"{peer}"}}"#
    ))
    .await;
    match ws.recv().await {
        Some(ServerMessage::Joined { .. }) => ws,
        other => panic!("{peer} expected joined, got {other:?}"),
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let runtime = self.runtime.clone();
        std::thread::spawn(move || runtime.shutdown());
    }
}

/// Both kinds of media from `from` arrived (more than `min` packets each).
pub fn receives(stats: &ClientStats, from: &str, min: u64) -> bool {
    stats.packets_from(from, MediaKind::Audio) > min
        && stats.packets_from(from, MediaKind::Video) > min
}

pub async fn wait_receives(client: &Client, from: &str, min: u64) -> ClientStats {
    let what = format!(
        "{} to receive audio and video from {from}",
        client.peer_id()
    );
    client
        .wait_until(&what, WAIT, |s| receives(s, from, min))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A raw signalling connection, for protocol-level tests.
pub struct RawWs {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawWs {
    pub async fn connect(url: &str) -> RawWs {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        RawWs { ws }
    }

    pub async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.ws.send(Message::binary(data)).await.expect("send");
    }

    /// The next server message, or `None` when the server closed the connection.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        self.recv_as().await
    }

    /// The next text frame parsed as `T` (a `/v1/ws` or a `/v1/peer` message), or `None` when
    /// the server closed the connection.
    pub async fn recv_as<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("server answers in time");
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).expect("server JSON parses"))
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Send `text` and return the error it gets (room events arriving meanwhile are skipped).
    pub async fn expect_error(&mut self, text: &str) -> switchboard_protocol::ErrorCode {
        self.send(text).await;
        loop {
            match self.recv().await {
                Some(ServerMessage::Error { code, .. }) => return code,
                Some(
                    ServerMessage::PeerJoined { .. }
                    | ServerMessage::PeerLeft { .. }
                    | ServerMessage::TrackPublished { .. }
                    | ServerMessage::TrackUnpublished { .. }
                    | ServerMessage::Draining { .. },
                ) => continue,
                other => panic!("expected an error reply to {text:?}, got {other:?}"),
            }
        }
    }
}
