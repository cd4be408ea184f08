//! Soak: one scenario kept running for a long time with periodic churn, sampled at a fixed
//! interval, to find what a short run cannot — memory that grows, sockets that are not released,
//! streams that stop after the hundredth rejoin.
//!
//! Every [`SoakOptions::churn_every`] a fraction of the clients (rotating through all seats, so
//! over time every seat is rejoined) leave and as many fresh clients join the same seats. Every
//! [`SoakOptions::sample_every`] a [`SoakSample`] records the server's RSS, open descriptors and
//! sockets and per-thread CPU, and what the clients received in the interval. The
//! [`SoakReport`] ends with the RSS slope (least squares over the second half of the run) and
//! the descriptor growth.
//!
//! What is checked as it runs (see `checks.rs`): each client that joins after the initial ramp
//! (churned in, or filling a seat left empty) must receive every publisher present in its room
//! within the scenario's settle timeout; a stream that had started must not go silent for a
//! whole sample interval while both ends stay; no client may receive media of a peer that never
//! published in its room. The run fails ([`SoakReport::failed`]) when the server process goes
//! away, when no client joined, or when more than [`SoakOptions::max_failure_fraction`] of the
//! joins ended in a failure: a join refused or timed out, a session that ended without being
//! asked to, a leave the server did not confirm, or a late joiner that did not get its media.
//! Silent streams and foreign media are reported as warnings (the test suite asserts on them).
//!
//! Bounded like every run of this tool: at most [`MAX_SOAK`] long, at most
//! [`MAX_PARTICIPANTS`](crate::scenario::MAX_PARTICIPANTS) clients at a time, a join and a leave
//! per seat per churn round, and a bounded leave at the end. Loopback targets only.

mod checks;
mod observe;
mod report;
mod roster;
mod runner;
mod sample;

use std::fmt;
use std::time::Duration;

pub use report::{rss_slope_kib_per_min, SoakReport, SoakTotals};
pub use runner::{run_soak, SampleFn};
pub use sample::SoakSample;

use crate::scenario::{Scenario, ScenarioError};

/// Longest soak this tool runs.
pub const MAX_SOAK: Duration = Duration::from_secs(24 * 3600);
/// Shortest churn and sample interval: below it the intervals measure scheduling noise.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What to soak and how.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Rooms, publishers, subscribers, media, URL, ramp, join and settle timeouts and the
    /// server's pid. Its `duration` (a plain run's measurement window) is not used.
    pub scenario: Scenario,
    /// How long the soak runs, ramp included; then everybody leaves.
    pub duration: Duration,
    /// Time between churn rounds (the first one this long after the initial ramp).
    pub churn_every: Duration,
    /// Share of the seats rejoined per round, 0..=1 (0: no churn). At least one seat per round
    /// when above 0.
    pub churn_fraction: f64,
    /// Time between samples (the first at the start, before anybody joined).
    pub sample_every: Duration,
    /// The run fails when more than this share of its joins failed (see the module docs).
    pub max_failure_fraction: f64,
}

impl SoakOptions {
    /// Soak `scenario` for `duration`: churn 10 % of the seats every 10 s, sample every 10 s.
    pub fn new(scenario: Scenario, duration: Duration) -> Self {
        SoakOptions {
            scenario,
            duration,
            churn_every: Duration::from_secs(10),
            churn_fraction: 0.1,
            sample_every: Duration::from_secs(10),
            max_failure_fraction: 0.1,
        }
    }

    /// Seats rejoined per churn round.
    pub fn churn_count(&self) -> usize {
        let seats = self.scenario.participants();
        if self.churn_fraction <= 0.0 || seats == 0 {
            return 0;
        }
        ((self.churn_fraction * seats as f64).round() as usize).clamp(1, seats)
    }

    /// Check the soak is something this tool should run.
    pub fn validate(&self) -> Result<(), SoakError> {
        self.scenario.validate().map_err(SoakError::Scenario)?;
        let invalid = |m: String| Err(SoakError::Invalid(m));
        if self.duration < MIN_INTERVAL || self.duration > MAX_SOAK {
            return invalid(format!(
                "the soak must last between {MIN_INTERVAL:?} and {} h",
                MAX_SOAK.as_secs() / 3600
            ));
        }
        if self.churn_every < MIN_INTERVAL || self.sample_every < MIN_INTERVAL {
            return invalid(format!(
                "churn and sample intervals must be at least {MIN_INTERVAL:?}"
            ));
        }
        if !(0.0..=1.0).contains(&self.churn_fraction) {
            return invalid("the churn fraction must be between 0 and 1".into());
        }
        if !(0.0..=1.0).contains(&self.max_failure_fraction) {
            return invalid("the failure fraction must be between 0 and 1".into());
        }
        Ok(())
    }
}

/// Why a soak did not run (a soak that ran and went wrong is a [`SoakReport`] with
/// [`SoakReport::failed`] set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoakError {
    /// The scenario itself is not runnable: fix its flags.
    Scenario(ScenarioError),
    /// The soak's own settings are out of range: fix them.
    Invalid(String),
    /// The server's pid was given but its `/proc` entry cannot be read: is it running?
    Server(String),
}

impl fmt::Display for SoakError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SoakError::Scenario(e) => write!(f, "{e}"),
            SoakError::Invalid(m) => write!(f, "invalid soak: {m}"),
            SoakError::Server(m) => write!(f, "cannot watch the server: {m}"),
        }
    }
}

impl std::error::Error for SoakError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SoakOptions {
        let mut sc = Scenario::new("ws://127.0.0.1:7880/v1/ws");
        sc.rooms = 2;
        sc.publishers_per_room = 2;
        sc.subscribers_per_room = 1;
        SoakOptions::new(sc, Duration::from_secs(60))
    }

    #[test]
    fn churn_count_rounds_and_keeps_at_least_one() {
        let mut o = opts();
        assert_eq!(o.churn_count(), 1, "10 % of 6 rounds to 1");
        o.churn_fraction = 0.34;
        assert_eq!(o.churn_count(), 2);
        o.churn_fraction = 0.01;
        assert_eq!(o.churn_count(), 1);
        o.churn_fraction = 1.0;
        assert_eq!(o.churn_count(), 6);
        o.churn_fraction = 0.0;
        assert_eq!(o.churn_count(), 0);
    }

    #[test]
    fn validation() {
        assert!(opts().validate().is_ok());
        let mut o = opts();
        o.duration = MAX_SOAK + Duration::from_secs(1);
        assert!(matches!(o.validate(), Err(SoakError::Invalid(_))));
        let mut o = opts();
        o.churn_every = Duration::from_millis(100);
        assert!(o.validate().is_err());
        let mut o = opts();
        o.churn_fraction = 1.5;
        assert!(o.validate().is_err());
        let mut o = opts();
        o.scenario.url = "ws://192.0.2.1/v1/ws".into();
        assert!(matches!(o.validate(), Err(SoakError::Scenario(_))));
    }
}
