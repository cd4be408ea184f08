//! Capacity search: run a scenario in growing steps (more subscribers per room, or more rooms)
//! until the delivery gets worse than the thresholds (loss, latency p99, failed joins, streams
//! that deliver nothing), and name the last good step: "this machine forwards N streams".

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scenario::{
    run_scenario, ProgressFn, Report, Scenario, ScenarioError, MAX_PARTICIPANTS,
};

/// Pause between steps, so the server has dropped the previous step's participants.
const BETWEEN_STEPS: Duration = Duration::from_secs(2);

/// What grows from step to step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    Subscribers,
    Rooms,
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dimension::Subscribers => "subscribers per room",
            Dimension::Rooms => "rooms",
        })
    }
}

/// How to search.
#[derive(Debug, Clone)]
pub struct CapacityOptions {
    /// The first step (its subscribers per room or rooms is the starting value; a starting
    /// value of 0 starts at `step`).
    pub base: Scenario,
    pub dimension: Dimension,
    /// Added per step.
    pub step: usize,
    /// At most this many steps.
    pub max_steps: usize,
    /// A step fails above this loss.
    pub max_loss_percent: f64,
    /// A step fails above this latency p99.
    pub max_p99_ms: f64,
}

/// One step's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    pub step: usize,
    /// Subscribers per room or rooms in this step.
    pub value: usize,
    pub participants: usize,
    /// Receive streams that delivered in the window.
    pub streams: usize,
    pub egress_pps: f64,
    pub egress_mbps: f64,
    pub loss_percent: f64,
    pub latency_ms_p99: f64,
    pub server_cpu_percent: Option<f64>,
    pub client_cpu_percent: f64,
    pub client_saturated: bool,
    pub ok: bool,
    /// Why the step failed.
    pub reason: Option<String>,
}

/// The result of [`run_capacity`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityReport {
    pub dimension: Dimension,
    pub max_loss_percent: f64,
    pub max_p99_ms: f64,
    pub steps: Vec<StepReport>,
    /// The last step that met the thresholds (every step before it did too).
    pub last_good: Option<StepReport>,
    pub verdict: String,
    /// The full report of every step.
    pub reports: Vec<Report>,
}

/// Judge one report against the thresholds.
pub fn judge(report: &Report, max_loss_percent: f64, max_p99_ms: f64) -> Result<(), String> {
    if report.failed > 0 {
        return Err(format!("{} participant(s) failed to join", report.failed));
    }
    if report.streams_received < report.streams_expected {
        return Err(format!(
            "{} of {} receive streams delivered nothing",
            report.streams_expected - report.streams_received,
            report.streams_expected
        ));
    }
    if report.loss_percent > max_loss_percent {
        return Err(format!(
            "loss {:.2} % > {max_loss_percent} %",
            report.loss_percent
        ));
    }
    if report.latency_ms_p99 > max_p99_ms {
        return Err(format!(
            "latency p99 {:.1} ms > {max_p99_ms} ms",
            report.latency_ms_p99
        ));
    }
    Ok(())
}

/// The scenario of step `k` (0-based).
pub fn step_scenario(opts: &CapacityOptions, k: usize) -> Scenario {
    let mut sc = opts.base.clone();
    let start = match opts.dimension {
        Dimension::Subscribers => sc.subscribers_per_room,
        Dimension::Rooms => sc.rooms,
    };
    let start = if start == 0 { opts.step } else { start };
    let value = start + k * opts.step;
    match opts.dimension {
        Dimension::Subscribers => sc.subscribers_per_room = value,
        Dimension::Rooms => sc.rooms = value,
    }
    sc
}

/// Run steps until one fails the thresholds, the participant limit is reached or `max_steps`
/// ran. `on_step` hears about every finished step.
pub async fn run_capacity(
    opts: &CapacityOptions,
    progress: Option<ProgressFn<'_>>,
    on_step: Option<&(dyn Fn(&StepReport) + Send + Sync)>,
) -> Result<CapacityReport, ScenarioError> {
    if opts.step == 0 || opts.max_steps == 0 {
        return Err(ScenarioError::Invalid(
            "capacity: step and max steps must be at least 1".into(),
        ));
    }
    opts.base.validate()?;
    let mut steps = Vec::new();
    let mut reports = Vec::new();
    let mut last_good = None;
    let mut stopped = None;
    for k in 0..opts.max_steps {
        let sc = step_scenario(opts, k);
        if sc.participants() > MAX_PARTICIPANTS {
            stopped = Some(format!(
                "the next step would need {} participants (limit {MAX_PARTICIPANTS})",
                sc.participants()
            ));
            break;
        }
        if k > 0 {
            tokio::time::sleep(BETWEEN_STEPS).await;
        }
        let report = run_scenario(&sc, progress).await?;
        let verdict = judge(&report, opts.max_loss_percent, opts.max_p99_ms);
        let step = StepReport {
            step: k,
            value: match opts.dimension {
                Dimension::Subscribers => sc.subscribers_per_room,
                Dimension::Rooms => sc.rooms,
            },
            participants: report.joined,
            streams: report.streams_received,
            egress_pps: report.egress_pps,
            egress_mbps: report.egress_mbps,
            loss_percent: report.loss_percent,
            latency_ms_p99: report.latency_ms_p99,
            server_cpu_percent: report.server.as_ref().map(|s| s.cpu_percent),
            client_cpu_percent: report.client_cpu_percent,
            client_saturated: report.client_saturated,
            ok: verdict.is_ok(),
            reason: verdict.clone().err(),
        };
        if let Some(f) = on_step {
            f(&step);
        }
        steps.push(step.clone());
        reports.push(report);
        match verdict {
            Ok(()) => last_good = Some(step),
            Err(why) => {
                stopped = Some(format!(
                    "step {k} ({} = {}): {why}",
                    opts.dimension, step.value
                ));
                break;
            }
        }
    }
    let verdict = match &last_good {
        Some(g) => format!(
            "this machine forwards {} streams ({:.0} pkt/s, {:.1} Mbit/s) with loss ≤ {} % and \
             p99 ≤ {} ms at {} = {}{}; {}",
            g.streams,
            g.egress_pps,
            g.egress_mbps,
            opts.max_loss_percent,
            opts.max_p99_ms,
            opts.dimension,
            g.value,
            if g.client_saturated {
                " (the load tester was saturated: a lower bound)"
            } else {
                ""
            },
            stopped.as_deref().unwrap_or("stopped after the last step")
        ),
        None => format!(
            "no step met the thresholds; {}",
            stopped.as_deref().unwrap_or("no step ran")
        ),
    };
    Ok(CapacityReport {
        dimension: opts.dimension,
        max_loss_percent: opts.max_loss_percent,
        max_p99_ms: opts.max_p99_ms,
        steps,
        last_good,
        verdict,
        reports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_grow_the_chosen_dimension() {
        let mut base = Scenario::new("ws://127.0.0.1:1/v1/ws");
        base.publishers_per_room = 1;
        base.subscribers_per_room = 0;
        let mut opts = CapacityOptions {
            base,
            dimension: Dimension::Subscribers,
            step: 25,
            max_steps: 4,
            max_loss_percent: 1.0,
            max_p99_ms: 50.0,
        };
        assert_eq!(step_scenario(&opts, 0).subscribers_per_room, 25);
        assert_eq!(step_scenario(&opts, 3).subscribers_per_room, 100);
        opts.dimension = Dimension::Rooms;
        opts.base.rooms = 2;
        assert_eq!(step_scenario(&opts, 2).rooms, 2 + 50);
        assert_eq!(step_scenario(&opts, 2).subscribers_per_room, 0);
    }
}
