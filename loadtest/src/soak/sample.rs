//! One soak sample: the server's memory, descriptors and CPU from `/proc`, and what the clients
//! got in the interval since the previous sample.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::procstat::{self, FdCount, ProcSample, ThreadCpu};

/// One row of the soak's table: the state at `t_s` and the interval that ended there.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SoakSample {
    /// Seconds since the soak started (the first sample, at 0, is before any join).
    pub t_s: f64,
    /// Clients in their seats at the sample.
    pub clients: usize,
    /// Joins that completed and leaves that were started in the interval (ramp and churn).
    pub joins: u64,
    pub leaves: u64,
    /// Server resident set size (`VmRSS`), KiB.
    pub server_rss_kb: Option<u64>,
    /// Server open file descriptors, and how many of them are sockets.
    pub server_fds: Option<u64>,
    pub server_sockets: Option<u64>,
    /// Server CPU over the interval, percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// CPU of each `shard-N` thread over the interval, by name.
    pub shard_cpu: Vec<ThreadCpu>,
    /// The load tester's own CPU over the interval, percent of one core.
    pub client_cpu_percent: f64,
    /// Packets all clients received in the interval, and per second.
    pub delivered_packets: u64,
    pub delivered_pps: f64,
    /// Lost / (received + lost) in the interval.
    pub loss_percent: f64,
    /// One-way latency of the interval's packets.
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    /// The longest gap between two arrivals on any track in the interval.
    pub max_gap_ms: f64,
    /// Streams checked for silence in the interval, and how many delivered nothing.
    pub streams_checked: usize,
    pub streams_silent: usize,
    /// Failures so far (failed joins, ended sessions, unconfirmed leaves, missing media).
    pub failures: u64,
}

impl SoakSample {
    /// The header of [`SoakSample::row`].
    pub fn header() -> String {
        format!(
            "  {:>7} {:>7} {:>5} {:>6} {:>9} {:>5} {:>5} {:>7} {:>9} {:>6} {:>7} {:>7} {:>7} \
             {:>6} {:>4}  {}",
            "t s",
            "clients",
            "joins",
            "leaves",
            "rss KiB",
            "fds",
            "socks",
            "srv cpu",
            "pkt/s",
            "loss%",
            "p50 ms",
            "p99 ms",
            "gap ms",
            "silent",
            "fail",
            "shard cpu %"
        )
    }

    /// One line of the table.
    pub fn row(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        let mut shards = String::new();
        for t in &self.shard_cpu {
            let _ = write!(shards, "{} {:.1}  ", t.name, t.cpu_percent);
        }
        format!(
            "  {:>7.1} {:>7} {:>5} {:>6} {:>9} {:>5} {:>5} {:>7} {:>9.0} {:>6.2} {:>7.2} {:>7.2} \
             {:>7.0} {:>6} {:>4}  {}",
            self.t_s,
            self.clients,
            self.joins,
            self.leaves,
            opt(self.server_rss_kb),
            opt(self.server_fds),
            opt(self.server_sockets),
            self.server_cpu_percent
                .map_or("-".to_owned(), |c| format!("{c:.1}")),
            self.delivered_pps,
            self.loss_percent,
            self.latency_ms_p50,
            self.latency_ms_p99,
            self.max_gap_ms,
            self.streams_silent,
            self.failures,
            shards.trim_end()
        )
    }
}

/// The server as read from `/proc` at one moment.
#[derive(Debug, Clone, Default)]
pub(super) struct ServerReading {
    pub(super) rss_kb: Option<u64>,
    pub(super) fds: Option<FdCount>,
    pub(super) cpu_percent: Option<f64>,
    pub(super) shards: Vec<ThreadCpu>,
}

/// Reads the server process, keeping the previous reading for CPU over the interval.
#[derive(Debug)]
pub(super) struct ServerSampler {
    pid: u32,
    prev: Option<ProcSample>,
}

impl ServerSampler {
    /// Start watching `pid`; fails when its `/proc` entry cannot be read.
    pub(super) fn new(pid: u32) -> std::io::Result<Self> {
        let first = procstat::sample_process(Some(pid), true)?;
        Ok(ServerSampler {
            pid,
            prev: Some(first),
        })
    }

    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// Read the server now; `None` when the process is gone.
    pub(super) fn read(&mut self) -> Option<ServerReading> {
        let now = procstat::sample_process(Some(self.pid), true).ok()?;
        let fds = procstat::count_fds(Some(self.pid)).ok();
        let mut reading = ServerReading {
            rss_kb: now.rss_kb,
            fds,
            ..Default::default()
        };
        if let Some(prev) = &self.prev {
            let usage = procstat::cpu_between(prev, &now);
            reading.cpu_percent = Some(usage.cpu_percent);
            reading.shards = usage
                .threads
                .into_iter()
                .filter(|t| t.name.starts_with("shard-"))
                .collect();
            reading.shards.sort_by(|a, b| a.name.cmp(&b.name));
        }
        self.prev = Some(now);
        Some(reading)
    }

    /// Descriptors only (cheap; for the wait after everybody left).
    pub(super) fn fds(&self) -> Option<FdCount> {
        procstat::count_fds(Some(self.pid)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_line_up_with_the_header() {
        let s = SoakSample {
            t_s: 12.5,
            clients: 6,
            server_rss_kb: Some(40_960),
            server_fds: Some(31),
            server_sockets: Some(12),
            server_cpu_percent: Some(7.25),
            shard_cpu: vec![ThreadCpu {
                tid: 1,
                name: "shard-0".into(),
                cpu_percent: 3.5,
            }],
            ..Default::default()
        };
        let row = s.row();
        let header = SoakSample::header();
        assert!(
            row.contains("40960") && row.contains("shard-0 3.5"),
            "{row}"
        );
        let col = |line: &str| line.find("shard").unwrap_or(0);
        assert_eq!(col(&header), col(&row), "\n{header}\n{row}");
        let empty = SoakSample::default().row();
        assert!(empty.contains(" - "), "{empty}");
    }

    #[test]
    fn reads_this_process_as_a_server() {
        let mut s = ServerSampler::new(std::process::id()).expect("own /proc entry");
        assert_eq!(s.pid(), std::process::id());
        let r = s.read().expect("still running");
        assert!(r.rss_kb.unwrap_or(0) > 0);
        assert!(r.fds.is_some_and(|f| f.total > 0));
        assert!(r.cpu_percent.is_some());
        assert!(r.shards.iter().all(|t| t.name.starts_with("shard-")));
        assert!(s.fds().is_some());
        assert!(ServerSampler::new(u32::MAX).is_err());
    }
}
