//! Running a scenario: the ramp (joins at a bounded rate), the settle phase (until media reaches
//! every receiver), the measurement window (a tick a second), and the bounded leave.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::collect::{loss_percent, rate, Delta, Tally};
use super::config::{Scenario, ScenarioError};
use super::progress::{Phase, Progress, ProgressFn};
use super::report::Report;
use crate::client::Client;
use crate::error::ClientError;
use crate::options::ClientOptions;
use crate::procstat::{self, ProcSample};
use crate::stats::percentile;

/// Latency samples kept per measurement window; beyond it, ticks are thinned evenly.
const MAX_WINDOW_SAMPLES: usize = 4_000_000;
/// How many join errors are kept verbatim in the report.
const MAX_JOIN_ERRORS: usize = 10;
/// Bound on the final `leave` of every participant.
pub(crate) const LEAVE_BUDGET: Duration = Duration::from_secs(8);

/// One participant to be.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) room: String,
    pub(super) name: String,
    pub(super) publisher: bool,
    pub(super) tracks_expected: usize,
}

/// A joined participant and what the collector has already counted of it.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) plan: usize,
    pub(super) client: Client,
    pub(super) tally: Tally,
}

impl Member {
    /// Walk the client's live stats (under its lock) and add the change since last time.
    fn collect(&mut self, into: &mut Delta, in_window: bool) {
        let tally = &mut self.tally;
        self.client
            .with_stats(|s| tally.collect(s, into, in_window));
    }
}

/// Runs one scenario on the current tokio runtime (use a multi-threaded one: every client is a
/// task). `progress` is called about once a second.
pub async fn run_scenario(
    scenario: &Scenario,
    progress: Option<ProgressFn<'_>>,
) -> Result<Report, ScenarioError> {
    scenario.validate()?;
    Runner::new(scenario, progress).run().await
}

/// [`run_scenario`] on a fresh multi-threaded runtime with `scenario.threads` workers.
pub fn run_scenario_blocking(
    scenario: &Scenario,
    progress: Option<ProgressFn<'_>>,
) -> Result<Report, ScenarioError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(scenario.threads.max(1))
        .thread_name("loadtest")
        .enable_all()
        .build()
        .map_err(|e| ScenarioError::Runtime(e.to_string()))?;
    let report = rt.block_on(run_scenario(scenario, progress));
    rt.shutdown_timeout(Duration::from_secs(2));
    report
}

pub(super) struct Runner<'a> {
    pub(super) sc: &'a Scenario,
    pub(super) progress: Option<ProgressFn<'a>>,
    pub(super) plans: Vec<Plan>,
    pub(super) members: Vec<Member>,
    pub(super) join_ms: Vec<f64>,
    pub(super) join_errors: Vec<String>,
    pub(super) failed: usize,
    pub(super) started: Instant,
    pub(super) next_tick: Instant,
    pub(super) last_tick: Instant,
    pub(super) client_prev: Option<ProcSample>,
    pub(super) server_prev: Option<ProcSample>,
}

impl<'a> Runner<'a> {
    fn new(sc: &'a Scenario, progress: Option<ProgressFn<'a>>) -> Self {
        let prefix = sc.room_prefix_or("lt");
        let tracks = sc.tracks_per_publisher();
        let plans = sc
            .seats(&prefix)
            .into_iter()
            .map(|seat| Plan {
                tracks_expected: sc.receives_from(seat.publisher) * tracks,
                room: seat.room,
                name: seat.name,
                publisher: seat.publisher,
            })
            .collect();
        let now = Instant::now();
        Runner {
            sc,
            progress,
            plans,
            members: Vec::new(),
            join_ms: Vec::new(),
            join_errors: Vec::new(),
            failed: 0,
            started: now,
            next_tick: now + Duration::from_secs(1),
            last_tick: now,
            client_prev: None,
            server_prev: None,
        }
    }

    fn options(&self, plan: &Plan) -> ClientOptions {
        self.sc
            .client_options(&plan.room, &plan.name, plan.publisher)
    }

    async fn run(mut self) -> Result<Report, ScenarioError> {
        let sc = self.sc;
        let server_before = sc
            .server_pid
            .map(|pid| procstat::sample_process(Some(pid), false))
            .transpose()
            .map_err(|e| ScenarioError::Runtime(format!("server pid: {e}")))?;
        self.client_prev = procstat::sample_process(None, false).ok();
        self.server_prev = server_before.clone();

        // ---- ramp
        let mut joins: JoinSet<(usize, f64, Result<Client, ClientError>)> = JoinSet::new();
        let gap = if sc.ramp_per_sec > 0.0 {
            Duration::from_secs_f64(1.0 / sc.ramp_per_sec)
        } else {
            Duration::ZERO
        };
        let mut next = 0usize;
        let ramp_start = Instant::now();
        while next < self.plans.len() || !joins.is_empty() {
            let spawn_at = ramp_start + gap * next as u32;
            let more = next < self.plans.len();
            tokio::select! {
                _ = tokio::time::sleep_until(spawn_at.into()), if more => {
                    let opts = self.options(&self.plans[next]);
                    let idx = next;
                    joins.spawn(async move {
                        let t0 = Instant::now();
                        let r = Client::join(opts).await;
                        (idx, t0.elapsed().as_secs_f64() * 1000.0, r)
                    });
                    next += 1;
                }
                Some(done) = joins.join_next(), if !joins.is_empty() => match done {
                    Ok((idx, ms, Ok(client))) => {
                        self.join_ms.push(ms);
                        self.members.push(Member {
                            plan: idx,
                            client,
                            tally: Tally::default(),
                        });
                    }
                    Ok((idx, _, Err(e))) => {
                        self.failed += 1;
                        if self.join_errors.len() < MAX_JOIN_ERRORS {
                            let p = &self.plans[idx];
                            self.join_errors.push(format!("{}/{}: {e}", p.room, p.name));
                        }
                    }
                    Err(e) => {
                        self.failed += 1;
                        if self.join_errors.len() < MAX_JOIN_ERRORS {
                            self.join_errors.push(format!("join task: {e}"));
                        }
                    }
                },
                _ = tokio::time::sleep_until(self.next_tick.into()) => {
                    self.tick(Phase::Ramp, false);
                }
            }
        }
        let ramp_s = ramp_start.elapsed().as_secs_f64();

        // ---- settle: every joined participant connected and receiving every expected track
        let settle_start = Instant::now();
        let settle_deadline = settle_start + sc.settle_timeout;
        let mut settled = false;
        while Instant::now() < settle_deadline {
            if self.all_flowing() {
                settled = true;
                break;
            }
            let at = (Instant::now() + Duration::from_millis(100)).min(settle_deadline);
            tokio::time::sleep_until(at.into()).await;
            if Instant::now() >= self.next_tick {
                self.tick(Phase::Settle, false);
            }
        }
        let settle_s = settle_start.elapsed().as_secs_f64();

        // ---- measure
        // Reset the cursors: the window counts from here.
        let mut discard = Delta::default();
        for m in &mut self.members {
            m.collect(&mut discard, false);
        }
        let window_start = Instant::now();
        let client_start = procstat::sample_process(None, false).ok();
        let machine_start = procstat::sample_machine();
        let server_start = sc
            .server_pid
            .and_then(|pid| procstat::sample_process(Some(pid), true).ok());
        self.client_prev = client_start.clone();
        self.server_prev = server_start.clone();
        self.last_tick = window_start;
        self.next_tick = window_start + Duration::from_secs(1);
        let window_end = window_start + sc.duration;
        let mut total = Delta::default();
        let mut thin = 1usize;
        loop {
            let now = Instant::now();
            if now >= window_end {
                break;
            }
            tokio::time::sleep_until(self.next_tick.min(window_end).into()).await;
            let final_tick = Instant::now() >= window_end;
            let delta = self.tick(Phase::Measure, true);
            total.packets += delta.packets;
            total.bytes += delta.bytes;
            total.lost += delta.lost;
            total.recovered += delta.recovered;
            total.sent += delta.sent;
            total.data_sent += delta.data_sent;
            total.data_received += delta.data_received;
            total.data_lost += delta.data_lost;
            if total.data_latency_us.len() < MAX_WINDOW_SAMPLES {
                total.data_latency_us.extend(&delta.data_latency_us);
            }
            if total.latency_us.len() + delta.latency_us.len() > MAX_WINDOW_SAMPLES {
                thin = thin.max(2);
            }
            total
                .latency_us
                .extend(delta.latency_us.iter().step_by(thin).copied());
            if final_tick {
                break;
            }
        }
        let window_s = window_start.elapsed().as_secs_f64();
        let client_end = procstat::sample_process(None, false).ok();
        let machine_end = procstat::sample_machine();
        let server_end = sc
            .server_pid
            .and_then(|pid| procstat::sample_process(Some(pid), true).ok());

        // ---- report (before leaving, while the participants still exist)
        let report = self.report(
            ramp_s,
            settle_s,
            settled,
            window_s,
            &total,
            client_start.zip(client_end),
            machine_start.zip(machine_end),
            server_before,
            server_start.zip(server_end),
        );

        // ---- leave, bounded
        let mut leaves = JoinSet::new();
        for m in self.members.drain(..) {
            leaves.spawn(async move {
                let _ = m.client.leave().await;
            });
        }
        let _ = tokio::time::timeout(LEAVE_BUDGET, async {
            while leaves.join_next().await.is_some() {}
        })
        .await;
        leaves.abort_all();
        Ok(report)
    }

    /// Every joined participant is connected and got something from every expected track.
    fn all_flowing(&self) -> bool {
        self.members.iter().all(|m| {
            let want = self.plans[m.plan].tracks_expected;
            m.client.with_stats(|s| {
                s.connected && s.received.values().filter(|r| r.packets > 0).count() >= want
            })
        })
    }

    /// Collect from every member, report progress, return the delta.
    pub(super) fn tick(&mut self, phase: Phase, in_window: bool) -> Delta {
        let now = Instant::now();
        let mut delta = Delta::default();
        let mut connected = 0;
        for m in &mut self.members {
            m.collect(&mut delta, in_window);
            if m.client.with_stats(|s| s.connected) {
                connected += 1;
            }
        }
        let secs = now.saturating_duration_since(self.last_tick).as_secs_f64();
        self.last_tick = now;
        while self.next_tick <= now {
            self.next_tick += Duration::from_secs(1);
        }
        let client_now = procstat::sample_process(None, false).ok();
        let client_cpu = match (&self.client_prev, &client_now) {
            (Some(a), Some(b)) => procstat::cpu_between(a, b).cpu_percent,
            _ => 0.0,
        };
        self.client_prev = client_now;
        let server_now = self
            .sc
            .server_pid
            .and_then(|pid| procstat::sample_process(Some(pid), false).ok());
        let server_cpu = match (&self.server_prev, &server_now) {
            (Some(a), Some(b)) => Some(procstat::cpu_between(a, b).cpu_percent),
            _ => None,
        };
        self.server_prev = server_now;
        if let Some(progress) = self.progress {
            let mut lat = delta.latency_us.clone();
            lat.sort_unstable();
            let p = Progress {
                phase,
                elapsed_s: self.started.elapsed().as_secs_f64(),
                planned: self.plans.len(),
                joined: self.members.len(),
                failed: self.failed,
                connected,
                egress_pps: rate(delta.packets as f64, secs),
                egress_mbps: rate(delta.bytes as f64 * 8.0 / 1e6, secs),
                loss_percent: loss_percent(delta.packets, delta.lost),
                latency_ms_p50: f64::from(percentile(&lat, 50.0)) / 1000.0,
                latency_ms_p99: f64::from(percentile(&lat, 99.0)) / 1000.0,
                client_cpu_percent: client_cpu,
                server_cpu_percent: server_cpu,
            };
            progress(&p);
        }
        delta
    }
}
