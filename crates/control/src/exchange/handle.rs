//! The exchange's IO: one lock around the state machine, the queues to the peer connections,
//! the timer task, and what its decisions do outside (webhooks, closing call rooms).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchboard_core::AdminAction;
use switchboard_protocol::peer::{PeerLeaveReason, PeerServerMessage};
use switchboard_runtime::MediaRuntime;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::{CallsConfig, Exchange, Out};
use crate::webhooks::WebhookSink;

/// Messages one peer connection may have waiting before it counts as too slow.
const QUEUE: usize = 256;
/// How often ring timeouts and reconnect graces are checked: the precision of those timers.
const TICK: Duration = Duration::from_millis(250);

/// What reaches a peer connection from the exchange.
#[derive(Debug)]
pub(crate) enum Delivery {
    Message(Box<PeerServerMessage>),
    /// Send `left {reason}` and close.
    Close(PeerLeaveReason),
}

#[derive(Debug)]
struct Locked {
    exchange: Exchange,
    queues: HashMap<u64, mpsc::Sender<Delivery>>,
}

#[derive(Debug)]
pub(crate) struct ExchangeHandle {
    locked: Mutex<Locked>,
    next_conn: AtomicU64,
    hooks: WebhookSink,
    runtime: Arc<MediaRuntime>,
}

impl ExchangeHandle {
    /// Must run inside a tokio runtime: it starts the timer task.
    pub fn start(
        config: CallsConfig,
        hooks: WebhookSink,
        runtime: Arc<MediaRuntime>,
    ) -> Arc<ExchangeHandle> {
        let handle = Arc::new(ExchangeHandle {
            locked: Mutex::new(Locked {
                exchange: Exchange::new(config),
                queues: HashMap::new(),
            }),
            next_conn: AtomicU64::new(1),
            hooks,
            runtime,
        });
        tokio::spawn(tick(Arc::downgrade(&handle)));
        handle
    }

    /// A new peer connection: its id and where its deliveries arrive.
    pub fn connect(&self) -> (u64, mpsc::Receiver<Delivery>) {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        self.locked.lock().queues.insert(conn, tx);
        (conn, rx)
    }

    /// Run `f` on the exchange and carry out what it decided.
    pub fn with<R>(&self, f: impl FnOnce(&mut Exchange) -> R) -> R {
        let mut locked = self.locked.lock();
        let result = f(&mut locked.exchange);
        let outs = locked.exchange.drain();
        let mut slow = Vec::new();
        for out in outs {
            match out {
                Out::Send { conn, message } => {
                    if let Some(q) = locked.queues.get(&conn) {
                        if let Err(mpsc::error::TrySendError::Full(_)) =
                            q.try_send(Delivery::Message(Box::new(message)))
                        {
                            slow.push(conn);
                        }
                    }
                }
                Out::Close { conn, reason } => {
                    if let Some(q) = locked.queues.remove(&conn) {
                        let _ = q.try_send(Delivery::Close(reason));
                    }
                }
                Out::Webhook(event) => self.hooks.fire(event),
                Out::CloseRoom(room) => self.close_room(room),
            }
        }
        for conn in slow {
            // Dropping its queue ends the connection (it sees the channel close) as too slow;
            // its registration then goes through the usual drop and grace.
            info!(conn, "peer connection too slow for its events; closing it");
            locked.queues.remove(&conn);
        }
        result
    }

    /// The connection `conn` ended: `gone` without `leave` (the grace starts), or after one.
    pub fn disconnect(&self, conn: u64, left: bool) {
        let now = Instant::now();
        self.with(|e| {
            if left {
                e.leave(conn);
            } else {
                e.dropped(now, conn);
            }
        });
        self.locked.lock().queues.remove(&conn);
    }

    fn close_room(&self, room: String) {
        let runtime = self.runtime.clone();
        let Some(shard) = runtime.shard_of(&room) else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = runtime
                .admin(shard, AdminAction::CloseRoom { room: room.clone() })
                .await
            {
                debug!(%room, error = %e, "could not close an ended call's room");
            }
        });
    }
}

async fn tick(handle: Weak<ExchangeHandle>) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(handle) = handle.upgrade() else {
            return;
        };
        let now = Instant::now();
        handle.with(|e| e.poll(now));
    }
}
