//! The media runtime: N shard threads, each with its own UDP socket from the configured port
//! range, driving a `switchboard_core::Shard` with real time and real datagrams.
//!
//! The control plane talks to a shard only through [`MediaRuntime`]: it places a room on a
//! shard, builds a participant's `Rtc` off the media threads, and sends commands over a bounded
//! channel. What a shard says to a participant comes back on that participant's own bounded
//! event channel.

mod config;
mod egress;
mod health;
mod panic_hook;
mod placement;
mod shard_thread;
mod socket;
mod tcp;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;

use parking_lot::Mutex;
use switchboard_core::{
    AdminAction, AdminReply, Command, Fault, NewRtc, Notification, ParticipantId, RtcSetupError,
    RtcTemplate, ShardStats, Transport,
};
use switchboard_protocol::{LeaveReason, ServerMessage};
use tokio::sync::{mpsc, oneshot};

pub use config::{is_local_address, parse_port_list, PortListError, RuntimeConfig};
use egress::EgressCounters;
pub use egress::EgressStats;
use health::Health;
use placement::Placement;
pub use shard_thread::{COMMAND_BUDGET, DATAGRAM_BUDGET};
pub use tcp::MAX_TCP_CONNECTIONS;

/// How long [`MediaRuntime::shutdown`] waits for the shard threads before it gives up on them
/// (a stuck thread must not keep the process from exiting).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// What a shard tells one participant's signalling connection.
#[derive(Debug)]
pub enum ParticipantEvent {
    Signal(ServerMessage),
    /// The participant is gone from the shard. `None`: the join was refused (see the preceding
    /// error message) and the connection may try again.
    Removed(Option<LeaveReason>),
}

/// Why the runtime did not take a request.
#[derive(Debug)]
pub enum RuntimeError {
    /// No UDP port of the range could be bound for a shard. Free the ports or widen the range.
    NoPort { shard: usize, detail: String },
    /// The ICE-TCP port could not be bound. Free it, pick another, or turn ICE-TCP off.
    NoTcpPort(String),
    /// The shard's command queue is full: back-pressure. Tell the client to retry later.
    Busy,
    /// The shard thread is gone (shutting down, or failed). Retry: placement skips dead shards.
    Stopped,
    /// Building the participant's media engine failed (configuration problem).
    Setup(RtcSetupError),
    /// Creating a shard thread or its event loop failed.
    Thread(std::io::Error),
}

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuntimeError::NoPort { shard, detail } => {
                write!(
                    f,
                    "no UDP port of the range could be bound for shard {shard}: {detail}"
                )
            }
            RuntimeError::NoTcpPort(detail) => {
                write!(f, "the ICE-TCP port could not be bound: {detail}")
            }
            RuntimeError::Busy => write!(f, "the media shard is saturated; retry later"),
            RuntimeError::Stopped => write!(f, "the media shard has stopped"),
            RuntimeError::Setup(e) => write!(f, "media engine setup failed: {e}"),
            RuntimeError::Thread(e) => write!(f, "could not start a shard thread: {e}"),
        }
    }
}

impl std::error::Error for RuntimeError {}

#[derive(Debug)]
pub(crate) enum ShardMessage {
    Join {
        command: Command,
        events: mpsc::Sender<ParticipantEvent>,
    },
    Command(Command),
    Admin {
        action: AdminAction,
        reply: oneshot::Sender<AdminReply>,
    },
    Fault(RuntimeFault),
}

/// Failures a test can inject into a running shard ([`MediaRuntime::inject_fault`]). No network
/// request reaches this; it exists so that failure isolation is tested through the real threads,
/// sockets and queues.
#[derive(Debug, Clone)]
pub enum RuntimeFault {
    /// The shard thread blocks for this long, as a stuck shard would (its queue fills up).
    Stall(Duration),
    /// A failure inside the sans-IO shard (see [`Fault`]).
    Core(Fault),
}

/// Notifications (webhook events, connect times) waiting for the control plane.
const NOTIFICATION_QUEUE: usize = 16_384;

#[derive(Debug)]
struct ShardHandle {
    commands: mpsc::Sender<ShardMessage>,
    /// Its host candidates: UDP ones first, then ICE-TCP ones (never empty).
    candidates: Vec<(Transport, SocketAddr)>,
    local: SocketAddr,
    stats: Arc<Mutex<ShardStats>>,
    /// Nanoseconds the shard thread spent working (not waiting).
    busy_ns: Arc<AtomicU64>,
    egress: Arc<EgressCounters>,
    health: Arc<Health>,
}

/// The running media plane. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MediaRuntime {
    shards: Vec<ShardHandle>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    template: RtcTemplate,
    placement: Placement,
    /// The ICE-TCP listeners' addresses (empty when ICE-TCP is off).
    tcp: Vec<SocketAddr>,
    next_participant: AtomicU64,
    notifications: Mutex<Option<mpsc::Receiver<Notification>>>,
    notifications_dropped: Arc<AtomicU64>,
}

impl MediaRuntime {
    /// Bind one UDP socket per shard and start the shard threads.
    pub fn start(config: RuntimeConfig) -> Result<MediaRuntime, RuntimeError> {
        panic_hook::install();
        let mut template = RtcTemplate::new().map_err(RuntimeError::Setup)?;
        if config.bandwidth_estimation {
            template = template.with_bandwidth_estimation();
        }
        let shard_count = config.shards.max(1);
        let mut ports = config.ports.iter().copied();
        let binds = config.binds();
        let directory = Arc::new(tcp::UfragDirectory::default());
        let listeners = match config.tcp_port {
            Some(port) => tcp_listeners(&binds, port)?,
            None => Vec::new(),
        };
        let tcp_addrs: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let mut tcp_queues = Vec::new();
        let (notify_tx, notify_rx) = mpsc::channel(NOTIFICATION_QUEUE);
        let notifications_dropped = Arc::new(AtomicU64::new(0));
        let mut shards = Vec::with_capacity(shard_count);
        let mut threads = Vec::with_capacity(shard_count);
        for index in 0..shard_count {
            let mut sockets = Vec::with_capacity(binds.len());
            let mut candidates = Vec::new();
            for (bind, advertised) in &binds {
                // The second family's socket takes the first one's port when it is free.
                let same_port = sockets
                    .first()
                    .and_then(|s: &std::net::UdpSocket| s.local_addr().ok())
                    .map(|a| a.port());
                let socket = socket::bind_preferring(
                    *bind,
                    same_port,
                    &mut ports,
                    config.recv_buffer,
                    config.send_buffer,
                )
                .map_err(|detail| RuntimeError::NoPort {
                    shard: index,
                    detail,
                })?;
                let port = socket.local_addr().map_err(RuntimeError::Thread)?.port();
                candidates.extend(
                    advertised
                        .iter()
                        .map(|ip| (Transport::Udp, SocketAddr::new(*ip, port))),
                );
                sockets.push(socket);
            }
            for listener in &tcp_addrs {
                let advertised = binds
                    .iter()
                    .find(|(bind, _)| bind.is_ipv4() == listener.is_ipv4())
                    .map(|(_, advertised)| advertised.as_slice())
                    .unwrap_or_default();
                candidates.extend(
                    advertised
                        .iter()
                        .map(|ip| (Transport::Tcp, SocketAddr::new(*ip, listener.port()))),
                );
            }
            let local = sockets[0].local_addr().map_err(RuntimeError::Thread)?;
            let (tx, rx) = mpsc::channel(config.command_queue);
            let tcp_rx = if tcp_addrs.is_empty() {
                None
            } else {
                let (tcp_tx, tcp_rx) = mpsc::channel(tcp::SHARD_QUEUE);
                tcp_queues.push(tcp_tx);
                Some(tcp_rx)
            };
            let stats = Arc::new(Mutex::new(ShardStats::default()));
            let mut shard_config = switchboard_core::ShardConfig::new(local);
            shard_config.advertised = candidates.clone();
            shard_config.keyframe_interval = config.keyframe_interval;
            shard_config.connect_timeout = config.connect_timeout;
            shard_config.disconnect_grace = config.disconnect_grace;
            shard_config.max_participants_per_room = config.max_participants_per_room;
            shard_config.max_tracks_per_participant = config.max_tracks_per_participant;
            shard_config.max_mlines_per_session = config.max_mlines_per_session;
            shard_config.max_candidates_per_session = config.max_candidates_per_session;
            shard_config.max_subscriber_bitrate = config.max_subscriber_bitrate;
            shard_config.dynacast = config.dynacast;
            let busy_ns = Arc::new(AtomicU64::new(0));
            let egress = Arc::new(EgressCounters::default());
            let health = Arc::new(Health::new());
            let thread = shard_thread::spawn(shard_thread::Spawn {
                index,
                sockets,
                tcp: tcp_rx,
                directory: directory.clone(),
                config: shard_config,
                commands: rx,
                stats: stats.clone(),
                busy_ns: busy_ns.clone(),
                health: health.clone(),
                notifications: notify_tx.clone(),
                notifications_dropped: notifications_dropped.clone(),
                gso: config.udp_gso,
                egress: egress.clone(),
            })
            .map_err(RuntimeError::Thread)?;
            tracing::info!(shard = index, %local, advertised = ?candidates, "media shard listening");
            shards.push(ShardHandle {
                commands: tx,
                candidates,
                local,
                stats,
                busy_ns,
                egress,
                health,
            });
            threads.push(thread);
        }
        if !listeners.is_empty() {
            tracing::info!(addrs = ?tcp_addrs, "ICE-TCP listening");
            tcp::spawn(tcp::Acceptor {
                listeners,
                directory,
                shards: tcp_queues,
            })
            .map_err(RuntimeError::Thread)?;
        }
        Ok(MediaRuntime {
            shards,
            threads: Mutex::new(threads),
            template,
            placement: Placement::new(shard_count),
            tcp: tcp_addrs,
            next_participant: AtomicU64::new(1),
            notifications: Mutex::new(Some(notify_rx)),
            notifications_dropped,
        })
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The (first) UDP address clients send media to for a shard.
    pub fn advertised(&self, shard: usize) -> Option<SocketAddr> {
        self.shards
            .get(shard)
            .and_then(|s| s.candidates.first())
            .map(|(_, a)| *a)
    }

    /// Every host candidate of a shard: UDP ones first, then ICE-TCP ones.
    pub fn candidates(&self, shard: usize) -> Vec<(Transport, SocketAddr)> {
        self.shards
            .get(shard)
            .map(|s| s.candidates.clone())
            .unwrap_or_default()
    }

    /// The ICE-TCP listeners' bound addresses (empty when ICE-TCP is off).
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// The address a shard's socket is bound to.
    pub fn local_addr(&self, shard: usize) -> Option<SocketAddr> {
        self.shards.get(shard).map(|s| s.local)
    }

    pub fn next_participant_id(&self) -> ParticipantId {
        ParticipantId(self.next_participant.fetch_add(1, Ordering::Relaxed))
    }

    /// The shard hosting `room`, placing the room on the least loaded live shard if it is new
    /// (or if its shard died). Every successful `place` must be matched by one
    /// [`MediaRuntime::release`]. `Stopped` when no shard is alive.
    pub fn place(&self, room: &str) -> Result<usize, RuntimeError> {
        let alive: Vec<bool> = self.shards.iter().map(|s| s.health.is_alive()).collect();
        self.placement
            .place(room, &alive)
            .ok_or(RuntimeError::Stopped)
    }

    /// Is this shard's thread running?
    pub fn shard_alive(&self, shard: usize) -> bool {
        self.shards.get(shard).is_some_and(|s| s.health.is_alive())
    }

    /// Shards whose thread has died (a bug in the shard), for readiness and metrics.
    pub fn dead_shards(&self) -> Vec<usize> {
        self.shards
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.health.is_alive() && !s.health.stop_requested())
            .map(|(i, _)| i)
            .collect()
    }

    /// Has shutdown begun? (A closed participant channel then means `serverShutdown`, not a
    /// failed shard.)
    pub fn is_stopping(&self) -> bool {
        self.shards.iter().any(|s| s.health.stop_requested())
    }

    /// Inject a failure into a running shard (failure-isolation tests only).
    pub fn inject_fault(&self, shard: usize, fault: RuntimeFault) -> Result<(), RuntimeError> {
        self.send(shard, ShardMessage::Fault(fault))
    }

    pub fn release(&self, room: &str) {
        self.placement.release(room)
    }

    /// Build a participant's engine for `shard` on a blocking thread (it costs ~1.5 ms CPU).
    pub async fn build_rtc(&self, shard: usize) -> Result<NewRtc, RuntimeError> {
        let candidates = self.candidates(shard);
        if candidates.is_empty() {
            return Err(RuntimeError::Stopped);
        }
        let template = self.template.clone();
        tokio::task::spawn_blocking(move || template.build(Instant::now(), &candidates))
            .await
            .map_err(|_| RuntimeError::Stopped)?
            .map_err(RuntimeError::Setup)
    }

    /// Send a join; the shard answers on `events`.
    pub fn join(
        &self,
        shard: usize,
        command: Command,
        events: mpsc::Sender<ParticipantEvent>,
    ) -> Result<(), RuntimeError> {
        self.send(shard, ShardMessage::Join { command, events })
    }

    pub fn command(&self, shard: usize, command: Command) -> Result<(), RuntimeError> {
        self.send(shard, ShardMessage::Command(command))
    }

    fn send(&self, shard: usize, message: ShardMessage) -> Result<(), RuntimeError> {
        let handle = self.shards.get(shard).ok_or(RuntimeError::Stopped)?;
        handle.commands.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RuntimeError::Busy,
            mpsc::error::TrySendError::Closed(_) => RuntimeError::Stopped,
        })
    }

    /// The shard hosting `room` if the room exists (has placed participants).
    pub fn shard_of(&self, room: &str) -> Option<usize> {
        self.placement.shard_of(room)
    }

    /// Rooms with at least one placed participant.
    pub fn room_count(&self) -> usize {
        self.placement.room_count()
    }

    /// Ask a shard an operator question.
    pub async fn admin(
        &self,
        shard: usize,
        action: AdminAction,
    ) -> Result<AdminReply, RuntimeError> {
        let (reply, rx) = oneshot::channel();
        self.send(shard, ShardMessage::Admin { action, reply })?;
        rx.await.map_err(|_| RuntimeError::Stopped)
    }

    /// The notification stream (webhook events, connect times). Taken once, by the control
    /// plane; while nobody has taken it, shards drop notifications when the queue is full.
    pub fn take_notifications(&self) -> Option<mpsc::Receiver<Notification>> {
        self.notifications.lock().take()
    }

    /// Notifications lost because the queue was full.
    pub fn notifications_dropped(&self) -> u64 {
        self.notifications_dropped.load(Ordering::Relaxed)
    }

    /// Time each shard thread spent working since it started.
    pub fn busy_time(&self) -> Vec<Duration> {
        self.shards
            .iter()
            .map(|s| Duration::from_nanos(s.busy_ns.load(Ordering::Relaxed)))
            .collect()
    }

    /// Each shard's UDP sends: calls, datagrams, refused datagrams (live counters).
    pub fn egress(&self) -> Vec<EgressStats> {
        self.shards.iter().map(|s| s.egress.snapshot()).collect()
    }

    /// Counters of every shard, as of their last report (every ~100 ms).
    pub fn stats(&self) -> Vec<ShardStats> {
        self.shards.iter().map(|s| *s.stats.lock()).collect()
    }

    /// Tell every participant the server is going away, stop the shards and wait for them
    /// (at most [`SHUTDOWN_WAIT`]: a stuck shard thread is left behind, not waited for).
    ///
    /// The stop request bypasses the command queues, so a shard with a full queue still stops.
    pub fn shutdown(&self) {
        for shard in &self.shards {
            shard.health.request_stop();
        }
        let threads = std::mem::take(&mut *self.threads.lock());
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        for thread in threads {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                let name = thread.thread().name().unwrap_or("shard").to_owned();
                tracing::error!(thread = %name, "shard thread did not stop in time; leaving it");
            }
        }
    }
}

/// One ICE-TCP listener per bound address, all on `port` (0: the first one picks a free port and
/// the others take the same).
fn tcp_listeners(
    binds: &[(std::net::IpAddr, Vec<std::net::IpAddr>)],
    port: u16,
) -> Result<Vec<std::net::TcpListener>, RuntimeError> {
    let mut listeners: Vec<std::net::TcpListener> = Vec::with_capacity(binds.len());
    for (bind, _) in binds {
        let port = match listeners.first().and_then(|l| l.local_addr().ok()) {
            Some(first) if port == 0 => first.port(),
            _ => port,
        };
        let addr = SocketAddr::new(*bind, port);
        let listener = socket::listen_tcp(addr)
            .map_err(|e| RuntimeError::NoTcpPort(format!("{addr}: {e}")))?;
        listeners.push(listener);
    }
    Ok(listeners)
}
