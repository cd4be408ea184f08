//! Running a soak: the initial ramp, then one loop that samples, churns and checks until the
//! duration is up, then a bounded leave and a last look at the server's descriptors. What the
//! samples and checks look at is in `observe.rs`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use switchboard_protocol::MediaKind;
use tokio::task::JoinSet;

use super::report::{SoakReport, SoakTotals};
use super::roster::{MediaCheck, Member, Roster};
use super::sample::{ServerSampler, SoakSample};
use super::{SoakError, SoakOptions};
use crate::client::Client;
use crate::error::ClientError;
use crate::options::LEAVE_TIMEOUT;
use crate::procstat::{self, ProcSample};
use crate::scenario::LEAVE_BUDGET;

/// How often pending media checks and ended sessions are looked at between samples.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// Problems kept verbatim in the report (the rest are only counted).
const MAX_PROBLEMS: usize = 20;
/// After everybody left, how long to wait for the server's descriptors to come back down.
const FD_SETTLE: Duration = Duration::from_secs(5);

/// Sample callback (the binary prints each row as it comes).
pub type SampleFn<'a> = &'a (dyn Fn(&SoakSample) + Send + Sync);

/// What a join task hands back: the seat, the outcome of the old client's leave (churn only)
/// and of the new client's join.
struct Joined {
    slot: usize,
    /// `room/name` of the new client, for the problem list.
    name: String,
    churn: bool,
    /// Joined after the initial ramp (a churn or a refill of a vacant seat): its media is
    /// checked.
    late: bool,
    left: Option<Result<(), ClientError>>,
    joined: Result<Client, ClientError>,
}

/// Run a soak on the current tokio runtime (a multi-threaded one: every client is a task).
/// `on_sample` sees every sample as it is taken.
pub async fn run_soak(
    opts: &SoakOptions,
    on_sample: Option<SampleFn<'_>>,
) -> Result<SoakReport, SoakError> {
    opts.validate()?;
    let server = opts
        .scenario
        .server_pid
        .map(|pid| {
            ServerSampler::new(pid).map_err(|e| SoakError::Server(format!("pid {pid}: {e}")))
        })
        .transpose()?;
    Soak::new(opts, on_sample, server).run().await
}

pub(super) struct Soak<'a> {
    pub(super) opts: &'a SoakOptions,
    pub(super) on_sample: Option<SampleFn<'a>>,
    pub(super) kinds: Vec<MediaKind>,
    pub(super) roster: Roster,
    /// Every publisher each room has had (for the foreign-media check).
    pub(super) history: HashMap<String, HashSet<String>>,
    tasks: JoinSet<Joined>,
    pub(super) started: Instant,
    pub(super) server: Option<ServerSampler>,
    pub(super) server_gone: bool,
    pub(super) client_prev: Option<ProcSample>,
    pub(super) totals: SoakTotals,
    problems: Vec<String>,
    pub(super) samples: Vec<SoakSample>,
    pub(super) last_sample: Instant,
    /// Joins and leaves since the last sample.
    pub(super) joins: u64,
    pub(super) leaves: u64,
    /// Streams already reported as never started, and foreign pairs already counted.
    pub(super) never_seen: HashSet<(String, String, MediaKind)>,
    pub(super) foreign_seen: HashSet<(String, String)>,
}

impl<'a> Soak<'a> {
    fn new(
        opts: &'a SoakOptions,
        on_sample: Option<SampleFn<'a>>,
        server: Option<ServerSampler>,
    ) -> Self {
        let sc = &opts.scenario;
        let roster = Roster::new(sc, &sc.room_prefix_or("soak"));
        let mut kinds = Vec::new();
        if sc.audio {
            kinds.push(MediaKind::Audio);
        }
        if sc.video.is_some() {
            kinds.push(MediaKind::Video);
        }
        let now = Instant::now();
        Soak {
            opts,
            on_sample,
            kinds,
            totals: SoakTotals {
                seats: roster.slots.len(),
                ..Default::default()
            },
            roster,
            history: HashMap::new(),
            tasks: JoinSet::new(),
            started: now,
            server,
            server_gone: false,
            client_prev: procstat::sample_process(None, false).ok(),
            problems: Vec::new(),
            samples: Vec::new(),
            last_sample: now,
            joins: 0,
            leaves: 0,
            never_seen: HashSet::new(),
            foreign_seen: HashSet::new(),
        }
    }

    async fn run(mut self) -> Result<SoakReport, SoakError> {
        let opts = self.opts;
        let sc = &opts.scenario;
        let end = self.started + opts.duration;
        let before = self.server.as_ref().and_then(ServerSampler::fds);
        self.sample(self.started);

        let ramp_gap = if sc.ramp_per_sec > 0.0 {
            Duration::from_secs_f64(1.0 / sc.ramp_per_sec)
        } else {
            Duration::ZERO
        };
        let seats = self.roster.slots.len();
        let mut next_seat = 0usize;
        let mut next_sample = self.started + opts.sample_every;
        // Churn starts one interval after the initial ramp is done.
        let mut next_churn: Option<Instant> = None;
        let churn = opts.churn_count();
        let mut next_check = self.started + CHECK_EVERY;

        loop {
            let now = Instant::now();
            if now >= end || self.server_gone {
                break;
            }
            if next_churn.is_none() && next_seat == seats && self.tasks.is_empty() && churn > 0 {
                next_churn = Some(now + opts.churn_every);
            }
            let ramp_at = self.started + ramp_gap * next_seat as u32;
            let churn_at = next_churn.unwrap_or(end);
            tokio::select! {
                _ = tokio::time::sleep_until(ramp_at.into()), if next_seat < seats => {
                    self.spawn_join(next_seat, None, false);
                    next_seat += 1;
                }
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    match done {
                        Ok(j) => self.on_joined(j),
                        Err(e) => self.problem(format!("join task: {e}")),
                    }
                }
                _ = tokio::time::sleep_until(next_sample.min(end).into()) => {
                    if Instant::now() >= next_sample {
                        self.sample(Instant::now());
                        next_sample += opts.sample_every;
                    }
                }
                _ = tokio::time::sleep_until(churn_at.into()), if next_churn.is_some() => {
                    self.churn_round(churn);
                    next_churn = Some(churn_at + opts.churn_every);
                }
                _ = tokio::time::sleep_until(next_check.into()) => {
                    self.check(Instant::now());
                    next_check = Instant::now() + CHECK_EVERY;
                }
            }
        }
        // The last interval, unless a sample was just taken.
        if !self.server_gone && self.last_sample.elapsed() >= Duration::from_secs(1) {
            self.sample(Instant::now());
        }
        self.finish(before).await
    }

    // ---------------------------------------------------------------- joins and churn

    /// Start a join for `slot`; with `old`, the seat's previous client leaves first. `late`:
    /// after the initial ramp.
    fn spawn_join(&mut self, slot: usize, old: Option<Client>, late: bool) {
        let sc = &self.opts.scenario;
        let s = &mut self.roster.slots[slot];
        let name = s.next_name();
        let opts = sc.client_options(&s.seat.room, &name, s.seat.publisher);
        let name = format!("{}/{name}", s.seat.room);
        s.generation += 1;
        s.busy = true;
        self.totals.join_attempts += 1;
        let churn = old.is_some();
        if churn {
            self.leaves += 1;
        }
        self.tasks.spawn(async move {
            let left = match old {
                Some(client) => Some(client.leave().await),
                None => None,
            };
            let joined = Client::join(opts).await;
            Joined {
                slot,
                name,
                churn,
                late,
                left,
                joined,
            }
        });
    }

    /// A churn round: `k` seats in rotation leave and rejoin; vacant seats are filled too.
    fn churn_round(&mut self, k: usize) {
        self.totals.churn_rounds += 1;
        // Decide the media checks that can be decided before their clients go: one still
        // pending when its client is churned out again is neither passed nor failed.
        self.check(Instant::now());
        for slot in self.roster.vacant() {
            self.spawn_join(slot, None, true);
        }
        for slot in self.roster.pick_churn(k) {
            if let Some(m) = self.roster.slots[slot].member.take() {
                self.retire(&m);
                self.totals.churned_out += 1;
                self.spawn_join(slot, Some(m.client), true);
            }
        }
    }

    fn on_joined(&mut self, j: Joined) {
        let now = Instant::now();
        self.roster.slots[j.slot].busy = false;
        if let Some(Err(e)) = &j.left {
            self.totals.leaves_failed += 1;
            self.problem(format!("leave before {} joined: {e}", j.name));
        }
        let client = match j.joined {
            Ok(client) => client,
            Err(e) => {
                self.totals.joins_failed += 1;
                self.problem(format!("join of {}: {e}", j.name));
                return;
            }
        };
        self.joins += 1;
        let seat = &self.roster.slots[j.slot].seat;
        let room = seat.room.clone();
        let publisher = seat.publisher;
        let check = j.late.then(|| MediaCheck {
            deadline: now + self.opts.scenario.settle_timeout,
            owners: self.publishers_in(&room),
        });
        if j.churn {
            self.totals.churned_in += 1;
        }
        let member = Member::new(client, now, check);
        if publisher {
            self.history
                .entry(room)
                .or_default()
                .insert(member.peer_id.clone());
        }
        self.roster.slots[j.slot].member = Some(member);
    }

    /// Peer ids of the publishers now in `room`.
    pub(super) fn publishers_in(&self, room: &str) -> Vec<String> {
        self.roster
            .slots
            .iter()
            .filter(|s| s.seat.publisher && s.seat.room == room)
            .filter_map(|s| s.member.as_ref().map(|m| m.peer_id.clone()))
            .collect()
    }

    /// Add a client's error counters to the totals (when it leaves the roster).
    pub(super) fn retire(&mut self, m: &Member) {
        let (server, local, wrong, examples, peer) = m.client.with_stats(|s| {
            (
                s.errors.len() as u64,
                s.local_error_count,
                (s.wrong_owner, s.early_new_owner, s.late_previous_owner),
                s.wrong_owner_examples.clone(),
                s.peer_id.clone(),
            )
        });
        self.totals.server_errors += server;
        self.totals.local_errors += local;
        self.totals.wrong_owner += wrong.0;
        self.totals.early_new_owner += wrong.1;
        self.totals.late_previous_owner += wrong.2;
        for (mid, announced, owner, since) in examples {
            self.problem(format!(
                "{peer} got {owner}'s media on mid {mid}, announced for {announced} {since:?} before"
            ));
        }
    }

    pub(super) fn problem(&mut self, p: String) {
        tracing::debug!("soak: {p}");
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        }
    }

    // ---------------------------------------------------------------- the end

    async fn finish(
        mut self,
        fds_before: Option<procstat::FdCount>,
    ) -> Result<SoakReport, SoakError> {
        // Joins and churns in flight: let them land (bounded), so their clients leave too.
        let in_flight = self.opts.scenario.join_timeout + LEAVE_TIMEOUT + Duration::from_secs(2);
        let deadline = tokio::time::Instant::now() + in_flight;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(Ok(j))) => self.on_joined(j),
                Ok(Some(Err(e))) => self.problem(format!("join task: {e}")),
                Ok(None) => break,
                Err(_) => {
                    self.problem("joins still in flight at the end were abandoned".into());
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        // A last look at the media checks that could still pass.
        self.check(Instant::now());

        let mut leaves = JoinSet::new();
        let members: Vec<Member> = self
            .roster
            .slots
            .iter_mut()
            .filter_map(|s| s.member.take())
            .collect();
        for m in members {
            self.retire(&m);
            leaves.spawn(async move { m.client.leave().await });
        }
        let leave_all = async {
            let mut failed = 0u64;
            while let Some(r) = leaves.join_next().await {
                if !matches!(r, Ok(Ok(()))) {
                    failed += 1;
                }
            }
            failed
        };
        match tokio::time::timeout(LEAVE_BUDGET, leave_all).await {
            Ok(failed) => self.totals.leaves_failed += failed,
            Err(_) => self.problem(format!("the final leave took longer than {LEAVE_BUDGET:?}")),
        }

        // The server closes a session's socket shortly after its `left`: wait for the count
        // to come back down to where it started (bounded).
        let mut after = None;
        if let Some(server) = &self.server {
            let settle_until = Instant::now() + FD_SETTLE;
            loop {
                after = server.fds();
                let settled = match (after, fds_before) {
                    (Some(a), Some(b)) => a.total <= b.total,
                    _ => true,
                };
                if settled || Instant::now() >= settle_until {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let opts = self.opts;
        let sc = &opts.scenario;
        let mut report = SoakReport {
            rooms: sc.rooms,
            publishers_per_room: sc.publishers_per_room,
            subscribers_per_room: sc.subscribers_per_room,
            duration_s: opts.duration.as_secs_f64(),
            churn_every_s: opts.churn_every.as_secs_f64(),
            churn_fraction: opts.churn_fraction,
            churn_per_round: opts.churn_count(),
            sample_every_s: opts.sample_every.as_secs_f64(),
            server_pid: sc.server_pid,
            samples: std::mem::take(&mut self.samples),
            fds_before: fds_before.map(|f| f.total),
            sockets_before: fds_before.map(|f| f.sockets),
            fds_after: after.map(|f| f.total),
            sockets_after: after.map(|f| f.sockets),
            totals: self.totals.clone(),
            problems: std::mem::take(&mut self.problems),
            ..Default::default()
        };
        report.summarise_steady();
        let gone = self.server_gone.then_some(sc.server_pid).flatten();
        report.judge(opts.max_failure_fraction, gone);
        Ok(report)
    }
}
