//! What a panic on a shard thread prints.
//!
//! The engine guard catches str0m panics and logs them with the participant; the process-wide
//! panic hook still runs first, and the default one captures and symbolizes a backtrace when
//! `RUST_BACKTRACE` is set — hundreds of milliseconds during which the shard forwards nothing
//! for anybody. On shard threads this hook writes one line (message and location) instead and
//! leaves every other thread to the previous hook.

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Thread names of shard threads start with this (`shard-0`, `shard-1`, ...).
pub(crate) const SHARD_THREAD_PREFIX: &str = "shard-";

pub(crate) fn install() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            match thread.name() {
                Some(name) if name.starts_with(SHARD_THREAD_PREFIX) => {
                    let message = info
                        .payload()
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| info.payload().downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string panic".to_owned());
                    let location = info
                        .location()
                        .map(|l| format!("{}:{}", l.file(), l.line()))
                        .unwrap_or_default();
                    tracing::warn!(thread = name, %location, panic = %message, "panic on a shard thread");
                }
                _ => previous(info),
            }
        }));
    });
}
