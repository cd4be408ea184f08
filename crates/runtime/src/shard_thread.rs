//! One shard's thread: a single-threaded tokio loop around a sans-IO `Shard`.
//!
//! # Scheduling
//!
//! The loop sleeps until a command arrives, the socket becomes readable, the shard's deadline
//! passes, or a stop is requested. Then it runs *turns*: each turn serves at most
//! [`COMMAND_BUDGET`] commands and at most [`DATAGRAM_BUDGET`] datagrams (read with one clock
//! reading), feeds a due timeout, and flushes what the shard produced. It keeps running turns,
//! yielding between them, while either source had more than its budget waiting. Neither source
//! can starve the other: a flood of signalling gets 64 commands a turn while media gets its 256
//! datagrams, and a datagram flood leaves commands their share.
//!
//! # Supervision
//!
//! Every call into the shard runs under `catch_unwind`. Participants' engine failures are
//! contained inside the shard; a panic that reaches this loop is a bug in the shard itself, whose
//! state can no longer be trusted. The loop then tells every participant it hosted
//! `left {reason: "serverError"}`, marks the shard dead (placement stops using it, `/readyz`
//! reports it, `switchboard_shard_up` drops to 0) and ends; the other shards carry on.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchboard_core::{
    AdminAction, AdminReply, Command, Input, Notification, Output, ParticipantId, Shard,
    ShardConfig, ShardStats, Transport,
};
use switchboard_protocol::LeaveReason;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::egress::{Egress, EgressCounters};
use crate::health::{DeadOnDrop, Health};
use crate::tcp::{TcpEvent, UfragDirectory};
use crate::{ParticipantEvent, RuntimeFault, ShardMessage};

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

/// Commands served per turn at most.
pub const COMMAND_BUDGET: usize = 64;
/// Datagrams read per turn at most.
pub const DATAGRAM_BUDGET: usize = 256;
/// Largest datagram we read; anything larger is truncated by the kernel and fails to parse.
const MAX_DATAGRAM: usize = 2048;
const STATS_EVERY: Duration = Duration::from_millis(100);

/// Everything a shard thread starts with.
pub(crate) struct Spawn {
    pub index: usize,
    /// One UDP socket per address family the node binds (one or two).
    pub sockets: Vec<std::net::UdpSocket>,
    /// ICE-TCP connections routed to this shard, when the node has a TCP port.
    pub tcp: Option<mpsc::Receiver<TcpEvent>>,
    pub directory: Arc<UfragDirectory>,
    pub config: ShardConfig,
    pub commands: mpsc::Receiver<ShardMessage>,
    pub stats: Arc<Mutex<ShardStats>>,
    pub busy_ns: Arc<AtomicU64>,
    pub health: Arc<Health>,
    pub notifications: mpsc::Sender<Notification>,
    pub notifications_dropped: Arc<AtomicU64>,
    /// Send runs of datagrams to one destination with UDP GSO.
    pub gso: bool,
    pub egress: Arc<EgressCounters>,
}

pub(crate) fn spawn(spawn: Spawn) -> std::io::Result<JoinHandle<()>> {
    let index = spawn.index;
    std::thread::Builder::new()
        .name(format!("{}{index}", crate::panic_hook::SHARD_THREAD_PREFIX))
        .spawn(move || {
            let health = spawn.health.clone();
            let _dead = DeadOnDrop(&health);
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    error!(shard = index, error = %e, "could not build the shard's event loop");
                    return;
                }
            };
            runtime.block_on(run(spawn));
        })
}

async fn run(spawn: Spawn) {
    let Spawn {
        index,
        sockets,
        tcp,
        directory,
        config,
        commands,
        stats,
        busy_ns,
        health,
        notifications,
        notifications_dropped,
        gso,
        egress,
    } = spawn;
    let mut registered = Vec::with_capacity(sockets.len());
    for socket in sockets {
        match UdpSocket::from_std(socket) {
            Ok(s) => registered.push(s),
            Err(e) => {
                error!(shard = index, error = %e, "could not register the shard socket");
                return;
            }
        }
    }
    let mut worker = Worker {
        index,
        shard: Shard::new(config, Instant::now()),
        egress: Egress::new(index, &registered, gso, egress),
        sockets: registered,
        tcp,
        tcp_writers: HashMap::new(),
        directory,
        commands,
        events: HashMap::new(),
        stats,
        next_stats: Instant::now(),
        busy_ns,
        health,
        notifications,
        notifications_dropped,
        next_admin: 0,
        admin: HashMap::new(),
        broken: false,
        buf: vec![0u8; MAX_DATAGRAM],
    };
    worker.run().await;
}

struct Worker {
    index: usize,
    shard: Shard,
    /// One per address family, never empty.
    sockets: Vec<UdpSocket>,
    egress: Egress,
    tcp: Option<mpsc::Receiver<TcpEvent>>,
    /// Open ICE-TCP connections of this shard's participants, by remote address.
    tcp_writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    directory: Arc<UfragDirectory>,
    commands: mpsc::Receiver<ShardMessage>,
    events: HashMap<ParticipantId, mpsc::Sender<ParticipantEvent>>,
    stats: Arc<Mutex<ShardStats>>,
    next_stats: Instant,
    busy_ns: Arc<AtomicU64>,
    health: Arc<Health>,
    notifications: mpsc::Sender<Notification>,
    notifications_dropped: Arc<AtomicU64>,
    next_admin: u64,
    admin: HashMap<u64, oneshot::Sender<AdminReply>>,
    /// The shard panicked: its state is not to be trusted any more.
    broken: bool,
    buf: Vec<u8>,
}

/// What one turn found.
struct Turn {
    /// A source had more waiting than its budget: run another turn right away.
    more: bool,
    /// The shard must stop (shutdown, or the command channel closed).
    stop: bool,
}

impl Worker {
    async fn run(&mut self) {
        let mut deadline = self.flush();
        loop {
            if self.broken {
                self.die();
                return;
            }
            if self.health.stop_requested() {
                self.stop();
                return;
            }
            let woke;
            let mut first = None;
            let mut first_tcp = None;
            {
                let sleep = tokio::time::sleep_until(deadline.into());
                tokio::select! {
                    message = self.commands.recv() => match message {
                        Some(message) => first = Some(message),
                        None => {
                            self.stop();
                            return;
                        }
                    },
                    ready = any_readable(&self.sockets) => {
                        if let Err(e) = ready {
                            error!(shard = self.index, error = %e, "socket failed");
                            self.die();
                            return;
                        }
                    }
                    event = next_tcp(&mut self.tcp) => first_tcp = event,
                    () = sleep => {}
                    () = self.health.stopped() => {}
                }
                woke = Instant::now();
            }
            loop {
                if let Some(event) = first_tcp.take() {
                    self.tcp_event(Instant::now(), event);
                }
                let turn = self.turn(first.take());
                deadline = self.flush();
                if turn.stop {
                    self.stop();
                    return;
                }
                if self.broken || !turn.more {
                    break;
                }
                // Let the removal deliveries spawned on this thread make progress.
                tokio::task::yield_now().await;
            }
            self.busy_ns
                .fetch_add(woke.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }

    /// Serve both sources within their budgets, then a due timeout.
    fn turn(&mut self, first: Option<ShardMessage>) -> Turn {
        let mut turn = Turn {
            more: false,
            stop: false,
        };
        let mut served = 0;
        if let Some(message) = first {
            served += 1;
            if !self.handle_message(message) {
                turn.stop = true;
                return turn;
            }
        }
        while served < COMMAND_BUDGET && !self.broken {
            match self.commands.try_recv() {
                Ok(message) => {
                    served += 1;
                    if !self.handle_message(message) {
                        turn.stop = true;
                        return turn;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    turn.stop = true;
                    return turn;
                }
            }
        }
        if served >= COMMAND_BUDGET {
            turn.more = true;
        }
        let now = Instant::now();
        let mut read = 0;
        for i in 0..self.sockets.len() {
            while read < DATAGRAM_BUDGET && !self.broken {
                match self.sockets[i].try_recv_from(&mut self.buf) {
                    Ok((n, source)) => {
                        read += 1;
                        let (shard, buf) = (&mut self.shard, &self.buf);
                        let ok = guarded(|| {
                            shard.handle_input(Input::Datagram {
                                now,
                                transport: Transport::Udp,
                                source,
                                contents: &buf[..n],
                            })
                        });
                        self.broken |= !ok;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // ICMP errors (port unreachable from a gone client) surface here on Linux;
                    // they concern one peer, not the socket.
                    Err(e) => {
                        debug!(shard = self.index, error = %e, "recv error");
                        break;
                    }
                }
            }
        }
        // ICE-TCP frames share the datagram budget.
        while read < DATAGRAM_BUDGET && !self.broken {
            let Some(rx) = self.tcp.as_mut() else { break };
            match rx.try_recv() {
                Ok(event) => {
                    read += 1;
                    self.tcp_event(now, event);
                }
                Err(_) => break,
            }
        }
        if read >= DATAGRAM_BUDGET {
            turn.more = true;
        }
        if !self.broken {
            let now = Instant::now();
            let shard = &mut self.shard;
            self.broken |= !guarded(|| shard.handle_input(Input::Timeout(now)));
        }
        turn
    }

    /// Returns false when the shard must stop (nothing asks that through the queue today; the
    /// stop request travels beside it, see `Health`).
    fn handle_message(&mut self, message: ShardMessage) -> bool {
        let now = Instant::now();
        match message {
            ShardMessage::Join { command, events } => {
                if let Command::Join { participant, .. } = &command {
                    self.events.insert(*participant, events);
                }
                self.input_command(now, command);
            }
            ShardMessage::Command(command) => self.input_command(now, command),
            ShardMessage::Admin { action, reply } => self.admin(now, action, reply),
            ShardMessage::Fault(RuntimeFault::Stall(time)) => {
                warn!(
                    shard = self.index,
                    ?time,
                    "stalling the shard (injected fault)"
                );
                std::thread::sleep(time);
            }
            ShardMessage::Fault(RuntimeFault::Core(fault)) => {
                self.input_command(now, Command::InjectFault(fault))
            }
        }
        true
    }

    fn tcp_event(&mut self, now: Instant, event: TcpEvent) {
        match event {
            TcpEvent::Open { remote, writer } => {
                self.tcp_writers.insert(remote, writer);
            }
            TcpEvent::Frame { remote, frame } => {
                let shard = &mut self.shard;
                let ok = guarded(|| {
                    shard.handle_input(Input::Datagram {
                        now,
                        transport: Transport::Tcp,
                        source: remote,
                        contents: &frame,
                    })
                });
                self.broken |= !ok;
            }
            TcpEvent::Closed { remote } => {
                self.tcp_writers.remove(&remote);
            }
        }
    }

    fn input_command(&mut self, now: Instant, command: Command) {
        let shard = &mut self.shard;
        self.broken |= !guarded(|| shard.handle_input(Input::Command { now, command }));
    }

    fn admin(&mut self, now: Instant, action: AdminAction, reply: oneshot::Sender<AdminReply>) {
        let id = self.next_admin;
        self.next_admin += 1;
        self.admin.insert(id, reply);
        self.input_command(now, Command::Admin { id, action });
    }

    /// Stop on request: every participant hears `serverShutdown`.
    fn stop(&mut self) {
        if !self.broken {
            let shard = &mut self.shard;
            let now = Instant::now();
            self.broken |= !guarded(|| shard.close_all(now, LeaveReason::ServerShutdown));
            self.flush();
        }
        if self.broken {
            self.die();
            return;
        }
        info!(shard = self.index, "shard stopping");
    }

    /// The shard panicked: tell everyone it hosted, and end.
    fn die(&mut self) {
        self.health.mark_dead();
        let hosted = self.events.len();
        error!(
            shard = self.index,
            participants = hosted,
            "media shard failed; its rooms are gone"
        );
        for (_, tx) in self.events.drain() {
            deliver_removal(tx, Some(LeaveReason::ServerError));
        }
        self.admin.clear();
        *self.stats.lock() = ShardStats::default();
    }

    /// Send and route everything the shard produced; return when to wake up next.
    fn flush(&mut self) -> Instant {
        loop {
            let mut too_slow = Vec::new();
            // One guard for the whole drain, not one per output: the outputs (large enums) are
            // then not moved out of a closure each, which a flush of a fan-out to hundreds of
            // subscribers paid per packet. A panic in `poll_output` still only marks the shard
            // broken; what was sent before it is sent.
            let deadline = if self.broken {
                None
            } else {
                match catch_unwind(AssertUnwindSafe(|| self.drain_outputs(&mut too_slow))) {
                    Ok(deadline) => Some(deadline),
                    Err(_) => {
                        self.broken = true;
                        None
                    }
                }
            };
            // What was gathered leaves now, also when the drain panicked part way.
            self.egress.flush(&self.sockets);
            let deadline = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            let now = Instant::now();
            if now >= self.next_stats && !self.broken {
                self.next_stats = now + STATS_EVERY;
                *self.stats.lock() = self.shard.stats();
            }
            if too_slow.is_empty() || self.broken {
                return deadline;
            }
            for participant in too_slow {
                warn!(shard = self.index, %participant, "signalling queue full; disconnecting");
                self.input_command(
                    now,
                    Command::Leave {
                        participant,
                        reason: LeaveReason::TooSlow,
                    },
                );
            }
        }
    }

    /// Route the shard's outputs until it asks for a timeout; returns that time. Participants
    /// whose signalling queue is full are collected in `too_slow`.
    fn drain_outputs(&mut self, too_slow: &mut Vec<ParticipantId>) -> Instant {
        loop {
            match self.shard.poll_output() {
                Output::Transmit {
                    transport: Transport::Udp,
                    destination,
                    contents,
                } => self.egress.send(&self.sockets, destination, contents),
                Output::Transmit {
                    transport: Transport::Tcp,
                    destination,
                    contents,
                } => self.send_tcp(destination, contents),
                Output::IceUfrag { ufrag, held } => {
                    if held {
                        self.directory.hold(ufrag, self.index);
                    } else {
                        self.directory.release(&ufrag, self.index);
                    }
                }
                Output::Signal {
                    participant,
                    message,
                } => {
                    if let Some(tx) = self.events.get(&participant) {
                        match tx.try_send(ParticipantEvent::Signal(message)) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => too_slow.push(participant),
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
                Output::Timeout(at) => return at,
            }
        }
    }

    /// Frames for a connection that closed, or whose queue is full, are dropped (UDP semantics:
    /// NACK/RTX and the next keyframe repair media, ICE retransmits its checks).
    fn send_tcp(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        let Some(writer) = self.tcp_writers.get(&destination) else {
            self.egress.count_dropped();
            return;
        };
        if writer.try_send(contents).is_err() {
            self.egress.count_dropped();
        }
    }
}

/// Readable on any of the shard's sockets (one or two).
async fn any_readable(sockets: &[UdpSocket]) -> std::io::Result<()> {
    match sockets {
        [] => std::future::pending().await,
        [only] => only.readable().await,
        [a, b, ..] => tokio::select! {
            r = a.readable() => r,
            r = b.readable() => r,
        },
    }
}

/// The next ICE-TCP event, or never when the node has no TCP port.
async fn next_tcp(tcp: &mut Option<mpsc::Receiver<TcpEvent>>) -> Option<TcpEvent> {
    match tcp {
        Some(rx) => {
            let event = rx.recv().await;
            if event.is_none() {
                // The ICE-TCP thread is gone; stop polling its closed channel.
                *tcp = None;
            }
            event
        }
        None => std::future::pending().await,
    }
}

/// Run one call into the shard; false when it panicked.
fn guarded(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_ok()
}
