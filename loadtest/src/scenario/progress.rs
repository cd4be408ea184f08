//! The progress line a running scenario reports about once a second.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a scenario is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Participants are joining.
    Ramp,
    /// Everybody joined; waiting for media to reach every receiver.
    Settle,
    /// The measurement window.
    Measure,
}

/// One progress line (about once a second), computed over the last interval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    pub elapsed_s: f64,
    pub planned: usize,
    pub joined: usize,
    pub failed: usize,
    pub connected: usize,
    pub egress_pps: f64,
    pub egress_mbps: f64,
    pub loss_percent: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub client_cpu_percent: f64,
    pub server_cpu_percent: Option<f64>,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.phase {
            Phase::Ramp => "ramp",
            Phase::Settle => "settle",
            Phase::Measure => "measure",
        };
        write!(
            f,
            "[{:6.1}s {phase:>7}] joined {}/{} (failed {}, connected {}) | egress {:8.0} pkt/s \
             {:7.1} Mbit/s | loss {:5.2} % | latency p50 {:6.2} ms p99 {:7.2} ms | cpu client \
             {:5.1} %",
            self.elapsed_s,
            self.joined,
            self.planned,
            self.failed,
            self.connected,
            self.egress_pps,
            self.egress_mbps,
            self.loss_percent,
            self.latency_ms_p50,
            self.latency_ms_p99,
            self.client_cpu_percent,
        )?;
        if let Some(s) = self.server_cpu_percent {
            write!(f, " server {s:5.1} %")?;
        }
        Ok(())
    }
}

/// Progress callback.
pub type ProgressFn<'a> = &'a (dyn Fn(&Progress) + Send + Sync);
