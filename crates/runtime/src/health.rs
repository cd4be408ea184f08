//! What the runtime knows about each shard thread: is it alive, and has it been asked to stop.
//!
//! The stop request does not travel through the shard's command queue: a full queue must never
//! keep a shard from hearing that the server is shutting down.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Debug)]
pub(crate) struct Health {
    alive: AtomicBool,
    stop: AtomicBool,
    wake: Notify,
}

impl Health {
    pub fn new() -> Self {
        Health {
            alive: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub fn mark_dead(&self) {
        self.alive.store(false, Ordering::Release);
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        // `notify_one` stores a permit when nobody waits yet, so the request is never missed.
        self.wake.notify_one();
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub async fn stopped(&self) {
        self.wake.notified().await;
    }
}

/// Marks the shard dead when its thread ends for any reason, a panic included.
pub(crate) struct DeadOnDrop<'a>(pub &'a Health);

impl Drop for DeadOnDrop<'_> {
    fn drop(&mut self) {
        self.0.mark_dead();
    }
}
