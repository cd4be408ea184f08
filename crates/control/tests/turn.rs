//! TURN credentials on the wire: over a real WebSocket to a real control plane (with a real media
//! runtime on loopback), `joined` carries `iceServers` whose username expires at now + ttl and
//! whose credential verifies with the shared secret; `resumed` carries fresh ones; a server
//! without TURN settings sends no `iceServers` at all.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard_control::{serve, turn, AppState, ControlConfig, TurnConfig};
use switchboard_runtime::{MediaRuntime, RuntimeConfig};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "shared-with-coturn";
const TTL_S: u64 = 600;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Server {
    url: String,
    runtime: Arc<MediaRuntime>,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    async fn start(turn: TurnConfig) -> Server {
        let mut config = RuntimeConfig::localhost(1);
        config.ports = vec![0];
        let runtime = Arc::new(MediaRuntime::start(config).expect("media runtime starts"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind http");
        let url = format!("ws://{}/v1/ws", listener.local_addr().expect("addr"));
        let control = ControlConfig {
            turn,
            ..ControlConfig::default()
        };
        let state = AppState::new(runtime.clone(), control);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = serve(listener, state, async move {
                let _ = stopped.await;
            })
            .await;
        });
        Server {
            url,
            runtime,
            stop: Some(stop),
        }
    }

    async fn connect(&self) -> Ws {
        tokio_tungstenite::connect_async(&self.url)
            .await
            .expect("websocket connects")
            .0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let runtime = self.runtime.clone();
        std::thread::spawn(move || runtime.shutdown());
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The next server message of type `kind` as raw JSON (the wire names, not the Rust ones).
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    for _ in 0..100 {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the server answers in time")
            .expect("the connection stays open")
            .expect("a frame");
        let Message::Text(text) = frame else { continue };
        let message: Value = serde_json::from_str(text.as_str()).expect("JSON");
        if message["type"] == kind {
            return message;
        }
        assert_ne!(message["type"], "error", "waiting for {kind}: {message}");
    }
    panic!("no {kind} among 100 messages");
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::text(message.to_string()))
        .await
        .expect("send");
}

/// The one TURN entry of `message.iceServers`: checks its URLs, that its username expires within
/// [`from`, `to`] + ttl for `peer`, and that its credential verifies with the secret. Returns
/// the expiry.
fn check_turn_entry(message: &Value, peer: &str, from: u64, to: u64) -> u64 {
    let servers = message["iceServers"].as_array().expect("iceServers");
    assert_eq!(servers.len(), 2, "a TURN and a STUN entry: {message}");
    let turn_entry = &servers[0];
    assert_eq!(
        turn_entry["urls"],
        serde_json::json!([
            "turn:127.0.0.1:3478?transport=udp",
            "turns:turn.example.com:5349?transport=tcp"
        ])
    );
    let username = turn_entry["username"].as_str().expect("username");
    let credential = turn_entry["credential"].as_str().expect("credential");
    let (expiry, who) = username.split_once(':').expect("expiry:peerId");
    assert_eq!(who, peer);
    let expiry: u64 = expiry.parse().expect("Unix seconds");
    assert!(
        (from + TTL_S..=to + TTL_S).contains(&expiry),
        "expiry {expiry} is now + {TTL_S} s (now in {from}..={to})"
    );
    assert_eq!(
        turn::verify(SECRET, username, credential, to),
        Ok(peer.to_owned()),
        "the credential verifies with the shared secret"
    );
    assert_eq!(
        turn::verify("another-secret", username, credential, to),
        Err(turn::TurnCredentialError::Invalid)
    );
    assert_eq!(
        turn::verify(SECRET, username, credential, expiry + 1),
        Err(turn::TurnCredentialError::Expired)
    );
    assert_eq!(
        servers[1],
        serde_json::json!({"urls": ["stun:127.0.0.1:3478"]}),
        "STUN needs no credential"
    );
    expiry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_and_resumed_carry_fresh_turn_credentials() {
    let server = Server::start(TurnConfig {
        urls: vec![
            "turn:127.0.0.1:3478?transport=udp".into(),
            "stun:127.0.0.1:3478".into(),
            "turns:turn.example.com:5349?transport=tcp".into(),
        ],
        secret: SECRET.into(),
        ttl_s: TTL_S,
    })
    .await;

    let mut ws = server.connect().await;
    let before = unix_now();
    send(
        &mut ws,
        serde_json::json!({"type": "join", "room": "turn", "peerId": "ada"}),
    )
    .await;
    let joined = next_of(&mut ws, "joined").await;
    let first = check_turn_entry(&joined, "ada", before, unix_now());
    let token = joined["resumeToken"]
        .as_str()
        .expect("a resume token")
        .to_owned();

    // The connection drops; a new one resumes the session and gets credentials minted now.
    drop(ws);
    // Whole seconds: the fresh credential's expiry is visibly later than the first.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut back = server.connect().await;
    let before = unix_now();
    send(
        &mut back,
        serde_json::json!({"type": "resume", "token": token}),
    )
    .await;
    let resumed = next_of(&mut back, "resumed").await;
    let fresh = check_turn_entry(&resumed, "ada", before, unix_now());
    assert!(fresh > first, "resumed mints anew ({fresh} > {first})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_turn_settings_no_ice_servers() {
    let server = Server::start(TurnConfig::default()).await;
    let mut ws = server.connect().await;
    send(
        &mut ws,
        serde_json::json!({"type": "join", "room": "plain", "peerId": "bob"}),
    )
    .await;
    let joined = next_of(&mut ws, "joined").await;
    assert_eq!(joined["peerId"], "bob");
    assert!(
        joined.get("iceServers").is_none(),
        "absent, not empty: {joined}"
    );
}
