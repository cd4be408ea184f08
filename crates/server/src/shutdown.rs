//! SIGTERM/SIGINT: drain, then stop. The first signal stops new joins and waits (up to the drain
//! timeout) for participants to leave by themselves; a second signal ends that wait at once.
//! Then every remaining participant is told `serverShutdown` and the process exits 0.

use std::time::Duration;

use switchboard_control::AppState;
use tokio::time::Instant;
use tracing::{info, warn};

/// How often the drain looks at the participant count.
const POLL: Duration = Duration::from_millis(100);

/// The termination signals, registered when created: create this before telling anyone the
/// server is ready, so an early SIGTERM is a drain and not the default "die at once".
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// The next signal's name.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// Refuse new joins, tell the participants, and wait until none is left, `timeout` has passed,
/// or another signal arrives.
pub async fn drain(state: &AppState, timeout: Duration, signals: &mut Signals) {
    let deadline = Instant::now() + timeout;
    state.begin_drain();
    let joined = state.joined_participants();
    info!(
        participants = joined,
        timeout_s = timeout.as_secs(),
        "draining: new joins refused, waiting for participants to leave (signal again to stop now)"
    );
    loop {
        let joined = state.joined_participants();
        if joined == 0 {
            info!("drained: no participant left");
            return;
        }
        if Instant::now() >= deadline {
            info!(
                participants = joined,
                "drain timeout: closing the remaining sessions"
            );
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            signal = signals.recv() => {
                warn!(participants = joined, "{signal} during the drain: closing sessions now");
                return;
            }
        }
    }
}
