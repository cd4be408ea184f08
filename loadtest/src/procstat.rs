//! CPU time, memory and open file descriptors of a process (and CPU of its threads) read from
//! Linux `/proc`: enough to say how busy the server and the load tester were during a
//! measurement window, and whether a long run leaks, without a profiler.
//!
//! `utime` and `stime` in `/proc/PID/stat` count clock ticks of `USER_HZ`, which Linux fixes at
//! 100 per second on every architecture it exposes to user space (the kernel's own `HZ` may
//! differ; the `/proc` interface converts). Reading `sysconf(_SC_CLK_TCK)` would need `unsafe`
//! FFI, which the workspace denies, for a value that is a constant in practice.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// `USER_HZ`: the unit of the CPU times in `/proc/*/stat`.
pub const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// CPU ticks of one thread at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadTicks {
    pub tid: u32,
    /// The thread's name (`comm`), e.g. `shard-0`.
    pub name: String,
    pub ticks: u64,
}

/// One reading of a process.
#[derive(Debug, Clone)]
pub struct ProcSample {
    pub at: Instant,
    /// utime + stime of the whole process, in [`CLOCK_TICKS_PER_SEC`] units.
    pub ticks: u64,
    /// Resident set size (`VmRSS`), KiB.
    pub rss_kb: Option<u64>,
    /// Per-thread ticks; empty when not asked for.
    pub threads: Vec<ThreadTicks>,
}

/// CPU use of one thread between two samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadCpu {
    pub tid: u32,
    pub name: String,
    /// Percent of one core.
    pub cpu_percent: f64,
}

/// CPU use between two samples of the same process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// Percent of one core (200 % = two cores busy).
    pub cpu_percent: f64,
    /// CPU seconds used in the interval.
    pub cpu_seconds: f64,
    /// Busiest threads first (only threads seen in both samples).
    pub threads: Vec<ThreadCpu>,
}

/// Parse utime + stime out of the contents of a `/proc/*/stat` file. The command name (field 2)
/// is in parentheses and may itself contain spaces and parentheses: split after the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    // Fields after the name start with field 3 (state); utime is field 14, stime field 15.
    let mut rest = stat.get(close + 1..)?.split_ascii_whitespace();
    let utime: u64 = rest.nth(11)?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some((name, utime + stime))
}

/// Parse `VmRSS` (KiB) out of the contents of a `/proc/*/status` file.
pub fn parse_status_rss_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_ascii_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn proc_dir(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    }
}

fn read_ticks(path: &Path) -> io::Result<(String, u64)> {
    let text = fs::read_to_string(path)?;
    parse_stat_ticks(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected format of {}", path.display()),
        )
    })
}

/// Read a process (`None`: this one), optionally with its threads.
pub fn sample_process(pid: Option<u32>, with_threads: bool) -> io::Result<ProcSample> {
    let dir = proc_dir(pid);
    let at = Instant::now();
    let (_, ticks) = read_ticks(Path::new(&format!("{dir}/stat")))?;
    let rss_kb = fs::read_to_string(format!("{dir}/status"))
        .ok()
        .and_then(|s| parse_status_rss_kb(&s));
    let mut threads = Vec::new();
    if with_threads {
        if let Ok(entries) = fs::read_dir(format!("{dir}/task")) {
            for entry in entries.flatten() {
                let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                // A thread may end between listing and reading: skip it.
                if let Ok((name, ticks)) = read_ticks(&entry.path().join("stat")) {
                    threads.push(ThreadTicks { tid, name, ticks });
                }
            }
        }
        threads.sort_by_key(|t| t.tid);
    }
    Ok(ProcSample {
        at,
        ticks,
        rss_kb,
        threads,
    })
}

/// Open file descriptors of a process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdCount {
    /// Every entry of `/proc/PID/fd`.
    pub total: u64,
    /// The entries that are sockets (`socket:[inode]`): the server's UDP and TCP sockets.
    pub sockets: u64,
}

/// Count the open file descriptors of a process (`None`: this one). A descriptor closed between
/// listing and reading its link is not counted.
pub fn count_fds(pid: Option<u32>) -> io::Result<FdCount> {
    let mut count = FdCount::default();
    for entry in fs::read_dir(format!("{}/fd", proc_dir(pid)))? {
        let Ok(entry) = entry else {
            continue;
        };
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        count.total += 1;
        if is_socket_link(&target) {
            count.sockets += 1;
        }
    }
    Ok(count)
}

/// A `/proc/PID/fd/N` link target that names a socket.
pub fn is_socket_link(target: &Path) -> bool {
    target.to_str().is_some_and(|t| t.starts_with("socket:["))
}

/// CPU ticks of the calling thread (`/proc/thread-self/stat`).
pub fn thread_self_ticks() -> Option<u64> {
    read_ticks(Path::new("/proc/thread-self/stat"))
        .ok()
        .map(|(_, t)| t)
}

/// Ticks over a wall-clock interval, as percent of one core.
pub fn ticks_to_percent(ticks: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    ticks as f64 / CLOCK_TICKS_PER_SEC / seconds * 100.0
}

/// CPU use between `a` and a later `b` of the same process.
pub fn cpu_between(a: &ProcSample, b: &ProcSample) -> CpuUsage {
    let secs = b.at.saturating_duration_since(a.at).as_secs_f64();
    let ticks = b.ticks.saturating_sub(a.ticks);
    let mut threads: Vec<ThreadCpu> = b
        .threads
        .iter()
        .filter_map(|tb| {
            let ta = a.threads.iter().find(|t| t.tid == tb.tid)?;
            Some(ThreadCpu {
                tid: tb.tid,
                name: tb.name.clone(),
                cpu_percent: ticks_to_percent(tb.ticks.saturating_sub(ta.ticks), secs),
            })
        })
        .collect();
    threads.sort_by(|x, y| y.cpu_percent.total_cmp(&x.cpu_percent));
    CpuUsage {
        cpu_percent: ticks_to_percent(ticks, secs),
        cpu_seconds: ticks as f64 / CLOCK_TICKS_PER_SEC,
        threads,
    }
}

/// Aggregate CPU time of the whole machine (the `cpu` line of `/proc/stat`), in ticks.
#[derive(Debug, Clone, Copy)]
pub struct MachineSample {
    pub at: Instant,
    pub busy: u64,
    pub total: u64,
}

/// Parse the aggregate `cpu` line of `/proc/stat`: (busy, total) ticks; idle and iowait are
/// the not-busy part, guest time is already inside user.
pub fn parse_machine_stat(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v[4];
    Some((total - idle, total))
}

/// Read the machine's aggregate CPU time.
pub fn sample_machine() -> Option<MachineSample> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let (busy, total) = parse_machine_stat(&text)?;
    Some(MachineSample {
        at: Instant::now(),
        busy,
        total,
    })
}

/// CPU the whole machine used between two samples, percent of one core.
pub fn machine_busy_percent(a: &MachineSample, b: &MachineSample) -> f64 {
    let secs = b.at.saturating_duration_since(a.at).as_secs_f64();
    ticks_to_percent(b.busy.saturating_sub(a.busy), secs)
}

/// Logical CPUs this process may use (its affinity mask: fewer under `taskset`).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Logical CPUs of the machine (the `cpuN` lines of `/proc/stat`), whatever this process's
/// affinity; falls back to [`cpu_count`].
pub fn machine_cpus() -> usize {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .map(|s| {
            s.lines()
                .filter(|l| {
                    l.strip_prefix("cpu")
                        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
                })
                .count()
        })
        .filter(|n| *n > 0)
        .unwrap_or_else(cpu_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let stat = "1234 (shard (0) x) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 \
                    9 0 100 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0";
        assert_eq!(parse_stat_ticks(stat), Some(("shard (0) x".into(), 325)));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn parses_machine_stat() {
        let stat = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(parse_machine_stat(stat), Some((160, 1180)));
        assert_eq!(parse_machine_stat("cpu0 1 2 3\n"), None);
        assert!(sample_machine().is_some());
    }

    #[test]
    fn parses_rss() {
        let status = "Name:\tswitchboard\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_status_rss_kb(status), Some(12345));
        assert_eq!(parse_status_rss_kb("Name: x\n"), None);
    }

    #[test]
    fn counts_fds_and_sockets() {
        assert!(is_socket_link(Path::new("socket:[12345]")));
        assert!(!is_socket_link(Path::new("/dev/null")));
        assert!(!is_socket_link(Path::new("pipe:[7]")));
        let before = count_fds(None).expect("own /proc/self/fd");
        assert!(before.total >= 3 && before.total >= before.sockets);
        // Other tests of this binary run in parallel and open sockets too: only a lower bound
        // on the difference is safe to check here.
        let held: Vec<std::net::UdpSocket> = (0..4)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let during = count_fds(None).expect("own /proc/self/fd");
        assert!(during.sockets >= held.len() as u64, "{during:?}");
        assert!(count_fds(Some(u32::MAX)).is_err(), "no such process");
    }

    #[test]
    fn samples_this_process() {
        let a = sample_process(None, true).expect("own /proc entry");
        assert!(!a.threads.is_empty());
        assert!(a.rss_kb.unwrap_or(0) > 0);
        // Burn a little CPU so the second sample differs (ticks are 10 ms coarse).
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 60 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let b = sample_process(None, true).expect("own /proc entry");
        let usage = cpu_between(&a, &b);
        assert!(usage.cpu_percent >= 0.0);
        assert!(usage
            .threads
            .windows(2)
            .all(|w| w[0].cpu_percent >= w[1].cpu_percent));
        assert!(thread_self_ticks().is_some());
        assert!(machine_cpus() >= cpu_count());
        assert_eq!(ticks_to_percent(100, 1.0), 100.0);
        assert_eq!(ticks_to_percent(100, 0.0), 0.0);
    }
}
