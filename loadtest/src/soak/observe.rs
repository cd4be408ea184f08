//! Looking at the clients while the soak runs: every check tick (sessions that ended by
//! themselves, the media checks of late joiners) and every sample (the interval's counters
//! and gap window, the stream and foreign-media checks, the server's `/proc` reading).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::checks::{check_streams, foreign_owners, media_verdict, Got, MediaVerdict, Presence};
use super::runner::Soak;
use super::sample::SoakSample;
use crate::procstat;
use crate::scenario::{loss_percent, rate, Delta};
use crate::stats::percentile;

impl Soak<'_> {
    /// Ended sessions and pending media checks.
    pub(super) fn check(&mut self, now: Instant) {
        for slot in 0..self.roster.slots.len() {
            let ended = self.roster.slots[slot]
                .member
                .as_ref()
                .is_some_and(|m| !m.client.is_running());
            if ended {
                if let Some(m) = self.roster.slots[slot].member.take() {
                    self.retire(&m);
                    self.totals.sessions_ended += 1;
                    let summary = m.client.stats().summary();
                    self.problem(format!("session of {} ended: {summary}", m.peer_id));
                }
            }
        }
        if !self
            .roster
            .slots
            .iter()
            .any(|s| s.member.as_ref().is_some_and(|m| m.check.is_some()))
        {
            return;
        }
        let mut present: HashMap<String, HashSet<String>> = HashMap::new();
        for s in &self.roster.slots {
            if let (true, Some(m)) = (s.seat.publisher, &s.member) {
                present
                    .entry(s.seat.room.clone())
                    .or_default()
                    .insert(m.peer_id.clone());
            }
        }
        let empty = HashSet::new();
        let mut problems = Vec::new();
        for s in &mut self.roster.slots {
            let Some(m) = s.member.as_mut() else {
                continue;
            };
            let Some(check) = &m.check else {
                continue;
            };
            let got: Got = m.client.with_stats(|st| {
                st.received
                    .iter()
                    .map(|(k, r)| (k.clone(), (r.packets, 0)))
                    .collect()
            });
            let here = present.get(&s.seat.room).unwrap_or(&empty);
            match media_verdict(check, &got, |o| here.contains(o), &self.kinds, now) {
                MediaVerdict::Pending => {}
                MediaVerdict::Passed => {
                    m.check = None;
                    self.totals.media_ok += 1;
                }
                MediaVerdict::Missing(missing) => {
                    m.check = None;
                    self.totals.media_missing += 1;
                    problems.push(format!(
                        "{}: {}, joined late, got nothing of {} within {:?}",
                        s.seat.room,
                        m.peer_id,
                        missing.join(", "),
                        self.opts.scenario.settle_timeout
                    ));
                }
            }
        }
        for p in problems {
            self.problem(p);
        }
    }

    pub(super) fn sample(&mut self, now: Instant) {
        let interval_start = self.last_sample;
        let secs = now.saturating_duration_since(interval_start).as_secs_f64();
        self.last_sample = now;
        let server = match self.server.as_mut() {
            Some(s) => match s.read() {
                Some(r) => Some(r),
                None => {
                    self.server_gone = true;
                    let pid = s.pid();
                    self.problem(format!("the server process {pid} is gone"));
                    None
                }
            },
            None => None,
        };
        let client_now = procstat::sample_process(None, false).ok();
        let client_cpu = match (&self.client_prev, &client_now) {
            (Some(a), Some(b)) => procstat::cpu_between(a, b).cpu_percent,
            _ => 0.0,
        };
        self.client_prev = client_now;

        // Every present client: its interval delta, its gap window, what it got per track.
        let mut delta = Delta::default();
        let mut max_gap = Duration::ZERO;
        let mut got_by_slot: Vec<Option<Got>> = Vec::with_capacity(self.roster.slots.len());
        for slot in &mut self.roster.slots {
            let Some(m) = slot.member.as_mut() else {
                got_by_slot.push(None);
                continue;
            };
            let tally = &mut m.tally;
            let got = m.client.with_stats_mut(|s| {
                tally.collect(s, &mut delta, true);
                for r in s.received.values() {
                    max_gap = max_gap.max(r.max_gap);
                }
                s.mark_gaps(now);
                let got: Got = s
                    .received
                    .iter()
                    .map(|(k, r)| {
                        let interval = tally.window.get(k).map_or(0, |w| w.0);
                        (k.clone(), (r.packets, interval))
                    })
                    .collect();
                got
            });
            m.tally.window.clear();
            got_by_slot.push(Some(got));
        }
        let (checked, silent) = self.check_streams(&got_by_slot, interval_start, now);

        let mut lat = delta.latency_us;
        lat.sort_unstable();
        let ms = |us: u32| f64::from(us) / 1000.0;
        let reading = server.unwrap_or_default();
        let sample = SoakSample {
            t_s: now.saturating_duration_since(self.started).as_secs_f64(),
            clients: self.roster.present(),
            joins: std::mem::take(&mut self.joins),
            leaves: std::mem::take(&mut self.leaves),
            server_rss_kb: reading.rss_kb,
            server_fds: reading.fds.map(|f| f.total),
            server_sockets: reading.fds.map(|f| f.sockets),
            server_cpu_percent: reading.cpu_percent,
            shard_cpu: reading.shards,
            client_cpu_percent: client_cpu,
            delivered_packets: delta.packets,
            delivered_pps: rate(delta.packets as f64, secs),
            loss_percent: loss_percent(delta.packets, delta.lost),
            latency_ms_p50: ms(percentile(&lat, 50.0)),
            latency_ms_p99: ms(percentile(&lat, 99.0)),
            max_gap_ms: max_gap.as_secs_f64() * 1000.0,
            streams_checked: checked,
            streams_silent: silent,
            failures: self.totals.failures(),
        };
        if let Some(f) = self.on_sample {
            f(&sample);
        }
        self.samples.push(sample);
    }

    /// The stream and foreign-media checks of one interval; returns (checked, silent).
    fn check_streams(
        &mut self,
        got_by_slot: &[Option<Got>],
        interval_start: Instant,
        now: Instant,
    ) -> (usize, usize) {
        let grace = self.opts.scenario.settle_timeout;
        let mut by_room: HashMap<&str, Vec<Presence<'_>>> = HashMap::new();
        for s in &self.roster.slots {
            if let Some(m) = &s.member {
                by_room
                    .entry(s.seat.room.as_str())
                    .or_default()
                    .push(Presence {
                        peer_id: &m.peer_id,
                        publisher: s.seat.publisher,
                        joined_at: m.joined_at,
                    });
            }
        }
        let (mut checked, mut silent) = (0, 0);
        let mut problems = Vec::new();
        let mut never = Vec::new();
        let mut foreign = Vec::new();
        let empty = HashSet::new();
        for (s, got) in self.roster.slots.iter().zip(got_by_slot) {
            let (Some(m), Some(got)) = (&s.member, got) else {
                continue;
            };
            let me = Presence {
                peer_id: &m.peer_id,
                publisher: s.seat.publisher,
                joined_at: m.joined_at,
            };
            let room = by_room.get(s.seat.room.as_str()).map_or(&[][..], |v| v);
            let f = check_streams(&me, got, room, &self.kinds, interval_start, now, grace);
            checked += f.checked;
            silent += f.silent.len();
            for (owner, kind) in f.silent {
                problems.push(format!(
                    "{}: {owner}'s {kind:?} to {} was silent for the interval",
                    s.seat.room, m.peer_id
                ));
            }
            for (owner, kind) in f.never_started {
                never.push((m.peer_id.clone(), owner, kind, s.seat.room.clone()));
            }
            let history = self.history.get(&s.seat.room).unwrap_or(&empty);
            for owner in foreign_owners(got.keys(), history) {
                foreign.push((m.peer_id.clone(), owner, s.seat.room.clone()));
            }
        }
        self.totals.streams_checked += checked as u64;
        self.totals.streams_silent += silent as u64;
        for p in problems {
            self.problem(p);
        }
        for (receiver, owner, kind, room) in never {
            if self
                .never_seen
                .insert((receiver.clone(), owner.clone(), kind))
            {
                self.totals.streams_never_started += 1;
                self.problem(format!(
                    "{room}: {owner}'s {kind:?} never reached {receiver} (both in the room for \
                     more than {grace:?})"
                ));
            }
        }
        for (receiver, owner, room) in foreign {
            if self.foreign_seen.insert((receiver.clone(), owner.clone())) {
                self.totals.foreign_media += 1;
                self.problem(format!(
                    "{room}: {receiver} received media of {owner}, who never published there"
                ));
            }
        }
        (checked, silent)
    }
}
