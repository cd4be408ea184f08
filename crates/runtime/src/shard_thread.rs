//! One shard's thread: a single-threaded tokio loop around a sans-IO `Shard`.
//!
//! Each wake-up handles a batch: every datagram the socket has (up to `RECV_BATCH`), or every
//! queued command, read with one clock reading; then all outputs are flushed (datagrams sent,
//! signalling routed to each participant's channel) and the loop sleeps until the shard's next
//! deadline, the socket becomes readable, or a command arrives.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use switchboard_core::{
    AdminAction, AdminReply, Command, Input, Notification, Output, ParticipantId, Shard,
    ShardConfig, ShardStats,
};
use switchboard_protocol::LeaveReason;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::{ParticipantEvent, ShardMessage};

/// The connection releases its room placement when it hears of the removal, so the removal must
/// arrive even when the participant's channel is full of signals it is too slow to read.
fn deliver_removal(tx: mpsc::Sender<ParticipantEvent>, reason: Option<LeaveReason>) {
    match tx.try_send(ParticipantEvent::Removed(reason)) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(event)) => {
            tokio::spawn(async move {
                let _ = tx.send(event).await;
            });
        }
    }
}

const RECV_BATCH: usize = 64;
const COMMAND_BATCH: usize = 64;
/// Largest datagram we read; anything larger is truncated by the kernel and fails to parse.
const MAX_DATAGRAM: usize = 2048;
const STATS_EVERY: Duration = Duration::from_millis(100);

/// Everything a shard thread starts with.
pub(crate) struct Spawn {
    pub index: usize,
    pub socket: std::net::UdpSocket,
    pub config: ShardConfig,
    pub commands: mpsc::Receiver<ShardMessage>,
    pub stats: Arc<Mutex<ShardStats>>,
    pub busy_ns: Arc<AtomicU64>,
    pub notifications: mpsc::Sender<Notification>,
    pub notifications_dropped: Arc<AtomicU64>,
}

pub(crate) fn spawn(spawn: Spawn) -> std::io::Result<JoinHandle<()>> {
    let Spawn {
        index,
        socket,
        config,
        commands,
        stats,
        busy_ns,
        notifications,
        notifications_dropped,
    } = spawn;
    std::thread::Builder::new()
        .name(format!("shard-{index}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    warn!(shard = index, error = %e, "could not build the shard's event loop");
                    return;
                }
            };
            runtime.block_on(async move {
                let socket = match UdpSocket::from_std(socket) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(shard = index, error = %e, "could not register the shard socket");
                        return;
                    }
                };
                let mut worker = Worker {
                    index,
                    shard: Shard::new(config, Instant::now()),
                    socket,
                    events: HashMap::new(),
                    stats,
                    next_stats: Instant::now(),
                    send_errors: 0,
                    busy_ns,
                    notifications,
                    notifications_dropped,
                    next_admin: 0,
                    admin: HashMap::new(),
                };
                worker.run(commands).await;
            });
        })
}

struct Worker {
    index: usize,
    shard: Shard,
    socket: UdpSocket,
    events: HashMap<ParticipantId, mpsc::Sender<ParticipantEvent>>,
    stats: Arc<Mutex<ShardStats>>,
    next_stats: Instant,
    send_errors: u64,
    busy_ns: Arc<AtomicU64>,
    notifications: mpsc::Sender<Notification>,
    notifications_dropped: Arc<AtomicU64>,
    next_admin: u64,
    admin: HashMap<u64, oneshot::Sender<AdminReply>>,
}

impl Worker {
    async fn run(&mut self, mut commands: mpsc::Receiver<ShardMessage>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut woke = Instant::now();
        loop {
            let deadline = self.flush();
            let busy = woke.elapsed();
            self.busy_ns
                .fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
            let sleep = tokio::time::sleep_until(deadline.into());
            tokio::select! {
                biased;
                message = commands.recv() => {
                    let Some(message) = message else { break };
                    if !self.handle_message(message) {
                        break;
                    }
                    for _ in 1..COMMAND_BATCH {
                        match commands.try_recv() {
                            Ok(message) => {
                                if !self.handle_message(message) {
                                    self.flush();
                                    return;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                ready = self.socket.readable() => {
                    if let Err(e) = ready {
                        warn!(shard = self.index, error = %e, "socket failed");
                        break;
                    }
                    let now = Instant::now();
                    for _ in 0..RECV_BATCH {
                        match self.socket.try_recv_from(&mut buf) {
                            Ok((n, source)) => self.shard.handle_input(Input::Datagram {
                                now,
                                source,
                                contents: &buf[..n],
                            }),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            // ICMP errors (port unreachable from a gone client) surface here on
                            // Linux; they concern one peer, not the socket.
                            Err(e) => {
                                debug!(shard = self.index, error = %e, "recv error");
                                break;
                            }
                        }
                    }
                }
                _ = sleep => {
                    self.shard.handle_input(Input::Timeout(Instant::now()));
                }
            }
            woke = Instant::now();
        }
        info!(shard = self.index, "shard stopping");
    }

    /// Returns false when the shard must stop.
    fn handle_message(&mut self, message: ShardMessage) -> bool {
        let now = Instant::now();
        match message {
            ShardMessage::Join { command, events } => {
                if let Command::Join { participant, .. } = &command {
                    self.events.insert(*participant, events);
                }
                self.shard.handle_input(Input::Command { now, command });
            }
            ShardMessage::Command(command) => {
                self.shard.handle_input(Input::Command { now, command });
            }
            ShardMessage::Admin { action, reply } => self.admin(now, action, reply),
            ShardMessage::Shutdown => {
                self.shard.close_all(now, LeaveReason::ServerShutdown);
                self.flush();
                return false;
            }
        }
        true
    }

    fn admin(&mut self, now: Instant, action: AdminAction, reply: oneshot::Sender<AdminReply>) {
        let id = self.next_admin;
        self.next_admin += 1;
        self.admin.insert(id, reply);
        self.shard.handle_input(Input::Command {
            now,
            command: Command::Admin { id, action },
        });
    }

    /// Send and route everything the shard produced; return when to wake up next.
    fn flush(&mut self) -> Instant {
        loop {
            let mut too_slow = Vec::new();
            let deadline = loop {
                match self.shard.poll_output() {
                    Output::Transmit {
                        destination,
                        contents,
                    } => self.send(destination, &contents),
                    Output::Signal {
                        participant,
                        message,
                    } => {
                        if let Some(tx) = self.events.get(&participant) {
                            match tx.try_send(ParticipantEvent::Signal(message)) {
                                Ok(()) => {}
                                Err(mpsc::error::TrySendError::Full(_)) => {
                                    too_slow.push(participant)
                                }
                                // The connection is gone; its Leave command is on the way.
                                Err(mpsc::error::TrySendError::Closed(_)) => {}
                            }
                        }
                    }
                    Output::Removed {
                        participant,
                        reason,
                    } => {
                        if let Some(tx) = self.events.remove(&participant) {
                            deliver_removal(tx, reason);
                        }
                    }
                    Output::Reply { id, reply } => {
                        if let Some(tx) = self.admin.remove(&id) {
                            let _ = tx.send(reply);
                        }
                    }
                    Output::Notify(note) => {
                        if self.notifications.try_send(note).is_err() {
                            self.notifications_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Output::Timeout(at) => break at,
                }
            };
            let now = Instant::now();
            if now >= self.next_stats {
                self.next_stats = now + STATS_EVERY;
                *self.stats.lock() = self.shard.stats();
            }
            if too_slow.is_empty() {
                return deadline;
            }
            for participant in too_slow {
                warn!(shard = self.index, %participant, "signalling queue full; disconnecting");
                self.shard.handle_input(Input::Command {
                    now,
                    command: Command::Leave {
                        participant,
                        reason: LeaveReason::TooSlow,
                    },
                });
            }
        }
    }

    fn send(&mut self, destination: SocketAddr, contents: &[u8]) {
        match self.socket.try_send_to(contents, destination) {
            Ok(_) => {}
            Err(e) => {
                // A full send buffer drops the datagram (UDP semantics); NACK/RTX and the next
                // keyframe repair it. Log the first few, then every thousandth.
                self.send_errors += 1;
                if self.send_errors < 10 || self.send_errors.is_multiple_of(1000) {
                    debug!(shard = self.index, %destination, error = %e, count = self.send_errors, "send failed");
                }
            }
        }
    }
}
