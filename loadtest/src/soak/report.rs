//! The soak's result: the samples, the RSS slope and descriptor growth over the second half of
//! the run, the counts of everything that went wrong, and the verdict.

use serde::{Deserialize, Serialize};

use super::sample::SoakSample;

/// Counts over the whole soak.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SoakTotals {
    /// Seats in the scenario (clients at a time when all are in).
    pub seats: usize,
    /// Joins started (initial and churn) and how many failed (refused or timed out).
    pub join_attempts: u64,
    pub joins_failed: u64,
    /// Churn rounds run, clients asked to leave by them, and churn joins that succeeded.
    pub churn_rounds: u64,
    pub churned_out: u64,
    pub churned_in: u64,
    /// Leaves the server did not confirm in time (`left` or the WebSocket's close).
    pub leaves_failed: u64,
    /// Sessions that ended without being asked to (the server closed them, the client failed).
    pub sessions_ended: u64,
    /// Clients that joined after the initial ramp (churned in, or filling a seat a failed
    /// client left empty) and got every expected publisher's media in time, and those that did
    /// not.
    pub media_ok: u64,
    pub media_missing: u64,
    /// Stream checks over all intervals, the started streams that went silent for a whole
    /// interval, and the streams that never started (distinct receiver/owner/kind each).
    pub streams_checked: u64,
    pub streams_silent: u64,
    pub streams_never_started: u64,
    /// (receiver, owner) pairs where the owner never published in the receiver's room.
    pub foreign_media: u64,
    /// Packets whose payload owner was not the one announced for the slot.
    pub wrong_owner: u64,
    /// Packets of a slot's new owner that arrived just before its announcement (not wrong:
    /// signalling and media travel separately), and of its old owner just after.
    pub early_new_owner: u64,
    pub late_previous_owner: u64,
    /// `error` messages from the server, and client-side errors, over every client.
    pub server_errors: u64,
    pub local_errors: u64,
}

impl SoakTotals {
    /// The failures that count against [`SoakOptions::max_failure_fraction`](super::SoakOptions).
    pub fn failures(&self) -> u64 {
        self.joins_failed + self.sessions_ended + self.leaves_failed + self.media_missing
    }
}

/// The result of [`run_soak`](super::run_soak).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SoakReport {
    pub rooms: usize,
    pub publishers_per_room: usize,
    pub subscribers_per_room: usize,
    pub duration_s: f64,
    pub churn_every_s: f64,
    pub churn_fraction: f64,
    /// Seats rejoined per churn round.
    pub churn_per_round: usize,
    pub sample_every_s: f64,
    /// The server's pid (the server columns are empty without one).
    pub server_pid: Option<u32>,
    pub samples: Vec<SoakSample>,
    /// The RSS slope and the growths below use the samples taken at or after this many seconds:
    /// the second half of the run (the first half is warm-up: ramp, caches, allocator pools).
    pub steady_from_s: f64,
    /// Least-squares slope of server RSS over the steady samples, KiB per minute; `None` with
    /// fewer than two of them.
    pub rss_slope_kib_per_min: Option<f64>,
    /// RSS, descriptors and sockets: last steady sample minus first steady sample.
    pub rss_growth_kb: Option<i64>,
    pub fd_growth: Option<i64>,
    pub socket_growth: Option<i64>,
    /// Server descriptors and sockets before the first join and after everybody left.
    pub fds_before: Option<u64>,
    pub sockets_before: Option<u64>,
    pub fds_after: Option<u64>,
    pub sockets_after: Option<u64>,
    pub totals: SoakTotals,
    /// The first problems in detail (bounded).
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// The soak failed (see the module docs); `failure` says why.
    pub failed: bool,
    pub failure: Vec<String>,
}

/// Least-squares slope of `(seconds, KiB)` points in KiB per minute; `None` for fewer than two
/// points or when they all share one time.
pub fn rss_slope_kib_per_min(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0 / 60.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (t, y) in points {
        let dx = t / 60.0 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

/// `b − a` of two optional readings.
fn growth(a: Option<u64>, b: Option<u64>) -> Option<i64> {
    Some(b? as i64 - a? as i64)
}

impl SoakReport {
    /// Fill the steady-state figures from the samples: RSS slope and growths over the samples
    /// at or after half the duration.
    pub(super) fn summarise_steady(&mut self) {
        self.steady_from_s = self.duration_s / 2.0;
        let steady: Vec<&SoakSample> = self
            .samples
            .iter()
            .filter(|s| s.t_s >= self.steady_from_s)
            .collect();
        let points: Vec<(f64, f64)> = steady
            .iter()
            .filter_map(|s| s.server_rss_kb.map(|kb| (s.t_s, kb as f64)))
            .collect();
        self.rss_slope_kib_per_min = rss_slope_kib_per_min(&points);
        if let (Some(first), Some(last)) = (steady.first(), steady.last()) {
            self.rss_growth_kb = growth(first.server_rss_kb, last.server_rss_kb);
            self.fd_growth = growth(first.server_fds, last.server_fds);
            self.socket_growth = growth(first.server_sockets, last.server_sockets);
        }
    }

    /// Judge the run: set `failed` and `failure`, and the warnings for what is wrong but not
    /// a client failure. `server_gone` names the pid of a server that went away.
    pub(super) fn judge(&mut self, max_failure_fraction: f64, server_gone: Option<u32>) {
        let t = &self.totals;
        let mut failure = Vec::new();
        if let Some(pid) = server_gone {
            failure.push(format!(
                "the server process {pid} went away during the soak"
            ));
        }
        if t.join_attempts > 0 && t.join_attempts == t.joins_failed {
            failure.push("no client could join".to_owned());
        }
        let failures = t.failures();
        if failures as f64 > max_failure_fraction * t.join_attempts as f64 {
            failure.push(format!(
                "{failures} failures in {} joins (more than {:.0} %): {} failed joins, {} \
                 sessions ended by themselves, {} unconfirmed leaves, {} late joiners \
                 without their media",
                t.join_attempts,
                max_failure_fraction * 100.0,
                t.joins_failed,
                t.sessions_ended,
                t.leaves_failed,
                t.media_missing
            ));
        }
        let mut warnings = Vec::new();
        if t.streams_silent > 0 || t.streams_never_started > 0 {
            warnings.push(format!(
                "{} stream(s) went silent for a whole interval, {} never started",
                t.streams_silent, t.streams_never_started
            ));
        }
        if t.foreign_media > 0 || t.wrong_owner > 0 {
            warnings.push(format!(
                "media reached the wrong clients: {} foreign owner(s), {} wrong-owner packets",
                t.foreign_media, t.wrong_owner
            ));
        }
        if self.server_pid.is_some() && self.rss_slope_kib_per_min.is_none() {
            warnings.push(
                "fewer than two samples in the second half: no RSS slope (sample more often)"
                    .to_owned(),
            );
        }
        if let (Some(before), Some(after)) = (self.fds_before, self.fds_after) {
            if after > before {
                warnings.push(format!(
                    "the server holds {} more descriptor(s) after everybody left than before \
                     the first join",
                    after - before
                ));
            }
        }
        self.failed = !failure.is_empty();
        self.failure = failure;
        self.warnings.extend(warnings);
    }

    /// The samples as a table, then the summary lines.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&SoakSample::header());
        out.push('\n');
        for s in &self.samples {
            out.push_str(&s.row());
            out.push('\n');
        }
        let t = &self.totals;
        let num = |v: Option<i64>| v.map_or("-".to_owned(), |v| format!("{v:+}"));
        let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        let lines = [
            format!(
                "soak: {} room(s) × ({} pub + {} sub) for {:.0} s; churn {} seat(s) every {:.0} \
                 s; a sample every {:.0} s",
                self.rooms,
                self.publishers_per_room,
                self.subscribers_per_room,
                self.duration_s,
                self.churn_per_round,
                self.churn_every_s,
                self.sample_every_s
            ),
            format!(
                "RSS slope: {} KiB/min over the samples from {:.0} s on (second half); RSS {} \
                 KiB, fds {}, sockets {} over that half",
                self.rss_slope_kib_per_min
                    .map_or("-".to_owned(), |s| format!("{s:+.1}")),
                self.steady_from_s,
                num(self.rss_growth_kb),
                num(self.fd_growth),
                num(self.socket_growth)
            ),
            format!(
                "server descriptors: {} before the first join, {} after everybody left \
                 (sockets {} → {})",
                opt(self.fds_before),
                opt(self.fds_after),
                opt(self.sockets_before),
                opt(self.sockets_after)
            ),
            format!(
                "joins: {} attempted, {} failed; churn: {} round(s), {} out, {} in; {} leave(s) \
                 unconfirmed, {} session(s) ended by themselves",
                t.join_attempts,
                t.joins_failed,
                t.churn_rounds,
                t.churned_out,
                t.churned_in,
                t.leaves_failed,
                t.sessions_ended
            ),
            format!(
                "media: {} late joiner(s) got every publisher of their room, {} did not; {} stream \
                 checks, {} silent, {} never started; {} foreign owner(s), {} wrong-owner \
                 packet(s) ({} of a new owner before its announcement, {} of the previous owner \
                 after it)",
                t.media_ok,
                t.media_missing,
                t.streams_checked,
                t.streams_silent,
                t.streams_never_started,
                t.foreign_media,
                t.wrong_owner,
                t.early_new_owner,
                t.late_previous_owner
            ),
            format!(
                "errors: {} from the server, {} client-side",
                t.server_errors, t.local_errors
            ),
        ];
        for l in lines {
            out.push_str("  ");
            out.push_str(&l);
            out.push('\n');
        }
        for p in &self.problems {
            out.push_str(&format!("  problem: {p}\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("  WARNING: {w}\n"));
        }
        if self.failed {
            for f in &self.failure {
                out.push_str(&format!("  FAILED: {f}\n"));
            }
        } else {
            out.push_str("  result: ok\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_is_least_squares_in_kib_per_minute() {
        assert_eq!(rss_slope_kib_per_min(&[]), None);
        assert_eq!(rss_slope_kib_per_min(&[(0.0, 1.0)]), None);
        assert_eq!(rss_slope_kib_per_min(&[(5.0, 1.0), (5.0, 2.0)]), None);
        // +10 KiB every 30 s is +20 KiB a minute.
        let line: Vec<(f64, f64)> = (0..5)
            .map(|i| (i as f64 * 30.0, 1000.0 + i as f64 * 10.0))
            .collect();
        let s = rss_slope_kib_per_min(&line).expect("slope");
        assert!((s - 20.0).abs() < 1e-9, "{s}");
        // Noise around a flat line fits to (nearly) zero.
        let flat = [(0.0, 100.0), (60.0, 104.0), (120.0, 96.0), (180.0, 100.0)];
        let s = rss_slope_kib_per_min(&flat).expect("slope");
        assert!(s.abs() < 1.5, "{s}");
    }

    fn sample(t_s: f64, rss: u64, fds: u64) -> SoakSample {
        SoakSample {
            t_s,
            server_rss_kb: Some(rss),
            server_fds: Some(fds),
            server_sockets: Some(fds / 2),
            ..Default::default()
        }
    }

    #[test]
    fn steady_state_is_the_second_half() {
        let mut r = SoakReport {
            duration_s: 60.0,
            server_pid: Some(1),
            samples: vec![
                sample(0.0, 1000, 10),
                sample(20.0, 5000, 40), // ramp: not steady
                sample(30.0, 6000, 40),
                sample(45.0, 6000, 40),
                sample(60.0, 6090, 42),
            ],
            ..Default::default()
        };
        r.summarise_steady();
        assert_eq!(r.steady_from_s, 30.0);
        assert_eq!(r.rss_growth_kb, Some(90));
        assert_eq!((r.fd_growth, r.socket_growth), (Some(2), Some(1)));
        let slope = r.rss_slope_kib_per_min.expect("three steady samples");
        assert!(slope > 0.0 && slope < 400.0, "{slope}");
        r.judge(0.1, None);
        assert!(!r.failed);
        let table = r.table();
        assert!(table.contains("RSS slope: +"), "{table}");
        assert!(table.contains("result: ok"), "{table}");
    }

    #[test]
    fn verdicts() {
        let mut r = SoakReport::default();
        r.totals.join_attempts = 20;
        r.totals.joins_failed = 1;
        r.totals.media_missing = 1;
        r.judge(0.1, None);
        assert!(!r.failed, "2 of 20 is not more than 10 %");
        r.totals.sessions_ended = 1;
        r.judge(0.1, None);
        assert!(
            r.failed && r.failure[0].contains("3 failures in 20 joins"),
            "{:?}",
            r.failure
        );
        let mut r = SoakReport::default();
        r.judge(0.1, Some(42));
        assert!(r.failed && r.failure[0].contains("42"));
        let mut r = SoakReport::default();
        r.totals.join_attempts = 3;
        r.totals.joins_failed = 3;
        r.judge(1.0, None);
        assert_eq!(r.failure, ["no client could join"]);
        assert!(r.table().contains("FAILED: no client could join"));
    }
}
