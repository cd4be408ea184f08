//! The public face of the test client: options, errors and the [`Client`] handle. The work is
//! done by a spawned task (see `driver.rs`) that owns the `Rtc`, the UDP socket and the
//! WebSocket; the handle talks to it over a command channel and reads a shared stats snapshot.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use str0m::{Candidate, Rtc};
use switchboard_protocol::ErrorCode;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::driver::{Command, Driver};
use crate::stats::ClientStats;

/// How long [`Client::leave`] waits for the server's `left` (or the close of the WebSocket).
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often [`Client::wait_until`] re-checks its predicate.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What a client does in the room.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Signalling endpoint, e.g. `ws://127.0.0.1:7880/v1/ws`.
    pub url: String,
    pub room: String,
    pub name: Option<String>,
    pub peer_id: Option<String>,
    /// Publish a synthetic Opus track (50 packets/s of 160 bytes).
    pub audio: bool,
    /// Publish a synthetic VP8 track.
    pub video: Option<VideoOptions>,
    /// RecvOnly audio m-lines to pre-create in the first offer.
    pub recv_audio_slots: usize,
    /// RecvOnly video m-lines to pre-create in the first offer.
    pub recv_video_slots: usize,
    /// Local address the UDP socket binds to (port 0) and announces as host candidate.
    pub local_ip: IpAddr,
    /// Bound on [`Client::join`]: WebSocket connect, `joined` and the first `answer`.
    pub join_timeout: Duration,
    /// Credential for servers that require one (minted by the application server).
    pub credential: Option<switchboard_protocol::Credential>,
    /// Extra fields merged into the `join` message (for admission checks of the application).
    pub extra_join_fields: Option<serde_json::Value>,
}

/// Synthetic video shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoOptions {
    pub fps: u32,
    pub packets_per_frame: u32,
    /// Payload bytes per packet.
    pub packet_size: usize,
    /// A keyframe every this many frames (0: only the first frame and on request).
    pub keyframe_interval: u32,
}

impl Default for VideoOptions {
    fn default() -> Self {
        VideoOptions {
            fps: 30,
            packets_per_frame: 3,
            packet_size: 1200,
            keyframe_interval: 60,
        }
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            url: "ws://127.0.0.1:7880/v1/ws".into(),
            room: "loadtest".into(),
            name: None,
            peer_id: None,
            audio: true,
            video: Some(VideoOptions::default()),
            recv_audio_slots: 0,
            recv_video_slots: 0,
            local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            join_timeout: Duration::from_secs(10),
            credential: None,
            extra_join_fields: None,
        }
    }
}

impl ClientOptions {
    /// Options for `room` on `url`, publishing audio and video.
    pub fn new(url: impl Into<String>, room: impl Into<String>) -> Self {
        ClientOptions {
            url: url.into(),
            room: room.into(),
            ..Default::default()
        }
    }
}

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

/// The client's media engine settings: RTP mode (synthetic packets are written as RTP) and the
/// codecs Switchboard forwards. Shared by the client, its tests and the load tester.
pub fn rtc_config() -> str0m::RtcConfig {
    Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
}

/// One WebRTC participant driven by a background task. Dropping it stops the task (like
/// [`Client::kill`]).
#[derive(Debug)]
pub struct Client {
    peer_id: String,
    local_addr: SocketAddr,
    shared: Arc<Mutex<ClientStats>>,
    cmd: mpsc::UnboundedSender<Command>,
    task: Option<JoinHandle<()>>,
}

impl Client {
    /// Connect, join the room and negotiate the first offer. Returns once `joined` arrived and
    /// the server's first `answer` was applied; media starts by itself when ICE/DTLS connect.
    pub async fn join(opts: ClientOptions) -> Result<Client, ClientError> {
        let deadline = Instant::now() + opts.join_timeout;
        let connect = tokio_tungstenite::connect_async(opts.url.as_str());
        let (ws, _response) = tokio::time::timeout(opts.join_timeout, connect)
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("WebSocket connect to {}", opts.url),
                details: String::new(),
            })?
            .map_err(|e| ClientError::Connect(format!("{}: {e}", opts.url)))?;

        let udp = UdpSocket::bind(SocketAddr::new(opts.local_ip, 0))
            .await
            .map_err(|e| ClientError::Connect(format!("UDP bind on {}: {e}", opts.local_ip)))?;
        let local_addr = udp
            .local_addr()
            .map_err(|e| ClientError::Connect(format!("UDP local address: {e}")))?;

        let mut rtc = rtc_config().build(Instant::now());
        let candidate = Candidate::host(local_addr, "udp")
            .map_err(|e| ClientError::Connect(format!("host candidate {local_addr}: {e}")))?;
        if rtc.add_local_candidate(candidate).is_none() {
            return Err(ClientError::Connect(format!(
                "str0m refused the host candidate {local_addr}"
            )));
        }

        let shared = Arc::new(Mutex::new(ClientStats::default()));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let driver = Driver::new(rtc, udp, local_addr, ws, opts, shared.clone(), ready_tx);
        let task = tokio::spawn(driver.run(cmd_rx));
        // From here on the handle's Drop stops the task on every early return.
        let mut client = Client {
            peer_id: String::new(),
            local_addr,
            shared,
            cmd: cmd_tx,
            task: Some(task),
        };

        match tokio::time::timeout_at(deadline.into(), ready_rx).await {
            Ok(Ok(Ok(peer_id))) => {
                client.peer_id = peer_id;
                Ok(client)
            }
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout {
                what: "joined and the first answer".into(),
                details: client.stats().summary(),
            }),
        }
    }

    /// The peer id the server assigned.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// The client's UDP address (its ICE host candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A snapshot of everything observed so far.
    pub fn stats(&self) -> ClientStats {
        self.shared.lock().clone()
    }

    /// Read the live stats without cloning them (keep the closure short: it holds the lock
    /// the client task needs for every packet).
    pub fn with_stats<R>(&self, f: impl FnOnce(&ClientStats) -> R) -> R {
        f(&self.shared.lock())
    }

    /// The background task is still running (the session is not over).
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Poll the stats every ~20 ms until `pred` holds; on timeout the error names `what` and
    /// carries a short dump of the stats.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&ClientStats) -> bool,
    ) -> Result<ClientStats, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if pred(&stats) {
                return Ok(stats);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout {
                    what: format!("{what} (client {})", self.peer_id),
                    details: stats.summary(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }

    /// Send a PLI for the stream received on `mid` (recorded as a local error if there is none).
    pub fn request_keyframe(&self, mid: &str) {
        let _ = self.cmd.send(Command::RequestKeyframe(mid.to_owned()));
    }

    /// Close the PeerConnection (DTLS close_notify, media stops) but keep the WebSocket: the
    /// server must notice and end the session by itself.
    pub fn close_media(&self) {
        let _ = self.cmd.send(Command::CloseMedia);
    }

    /// Send any text frame on the WebSocket (for bad-input tests).
    pub fn send_raw(&self, text: String) {
        let _ = self.cmd.send(Command::SendRaw(text));
    }

    /// Send `leave`, wait (at most [`LEAVE_TIMEOUT`]) for `left` or the WebSocket's close, then
    /// stop the task.
    pub async fn leave(mut self) -> Result<(), ClientError> {
        let (done_tx, done_rx) = oneshot::channel();
        if self.cmd.send(Command::Leave(done_tx)).is_err() {
            return Err(ClientError::Closed);
        }
        let result =
            match tokio::time::timeout(LEAVE_TIMEOUT + Duration::from_secs(1), done_rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(ClientError::Closed),
                Err(_) => Err(ClientError::Timeout {
                    what: format!("left (client {})", self.peer_id),
                    details: self.stats().summary(),
                }),
            };
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(1), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        result
    }

    /// Stop abruptly: UDP socket and WebSocket are dropped without `leave` or a close frame.
    pub fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
