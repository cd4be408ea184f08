//! The public face of the test client: the [`Client`] handle. The work is done by a spawned task
//! (see `driver/`) that owns the `Rtc`, the UDP socket and the WebSocket; the handle talks to it
//! over a command channel and reads a shared stats snapshot. Options and errors live in
//! `options.rs` and `error.rs`, which the driver uses too: dependencies point from here to the
//! driver, never back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use str0m::Candidate;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::driver::{Command, Driver};
use crate::error::ClientError;
use crate::options::{rtc_config, ClientOptions, LEAVE_TIMEOUT};
use crate::stats::ClientStats;

/// How often [`Client::wait_until`] re-checks its predicate.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

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

        let config = rtc_config().enable_opus(true, opts.red);
        let config = match opts.forged_twcc {
            Some(_) => crate::forged::forging_config(config),
            None => config,
        };
        let mut rtc = config.build(Instant::now());
        let candidate = if opts.ice_tcp {
            // The address only names the candidate (an active one never listens); frames from the
            // server are handed to str0m as arriving on it.
            Candidate::builder()
                .tcp()
                .host(local_addr)
                .tcptype(str0m::net::TcpType::Active)
                .build()
        } else {
            Candidate::host(local_addr, "udp")
        }
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

    /// Start a gap window now: from here, each received track's [`RecvStats::max_gap`] is the
    /// longest time between two of its packets (the gap across the mark counts from the mark).
    /// A test asserts on a window like this:
    ///
    /// ```no_run
    /// # fn demo(client: &switchboard_loadtest::Client) {
    /// # use std::time::{Duration, Instant};
    /// client.mark_gaps();
    /// // ... the part under test: a rejoin, a shard move, churn ...
    /// let worst = client.with_stats(|s| s.max_gap_from("alice", Instant::now()));
    /// assert!(worst.is_some_and(|g| g <= Duration::from_millis(200)), "{worst:?}");
    /// # }
    /// ```
    ///
    /// Cheap: the driver compares one timestamp per packet. Returns the mark's instant.
    ///
    /// [`RecvStats::max_gap`]: crate::RecvStats::max_gap
    pub fn mark_gaps(&self) -> Instant {
        let now = Instant::now();
        self.shared.lock().mark_gaps(now);
        now
    }

    /// Change the live stats under their lock, for collectors that read and reset in one step
    /// (the soak's per-interval gap window). Keep the closure short, as for [`Client::with_stats`].
    pub(crate) fn with_stats_mut<R>(&self, f: impl FnOnce(&mut ClientStats) -> R) -> R {
        f(&mut self.shared.lock())
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

    /// Lose the signalling connection abruptly (no close frame, no `leave`) while the media
    /// goes on, as a network blip would; [`Client::resume`] reconnects.
    pub fn drop_signalling(&self) {
        let _ = self.cmd.send(Command::DropSignalling);
    }

    /// Open a new signalling connection and `resume` the session on it. Resolves when
    /// `resumed` arrived, or with the server's refusal.
    pub async fn resume(&self) -> Result<(), ClientError> {
        let (done, result) = oneshot::channel();
        self.cmd
            .send(Command::Resume(done))
            .map_err(|_| ClientError::Closed)?;
        result.await.map_err(|_| ClientError::Closed)?
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
