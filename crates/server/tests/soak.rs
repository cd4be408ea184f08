//! A short soak against the real `switchboard` binary: two rooms of two publishers and a
//! subscriber for ~24 s, a third of the seats rejoining every 3 s. What it asserts does not
//! depend on the machine's speed: every churned-in client joined and got media from the
//! publishers of its own room, no client failed, and the server's descriptors come back to where
//! they started once everybody left (sockets are released after churn). The RSS slope is
//! reported, not judged.

mod process;

use std::time::{Duration, Instant};

use process::Server;
use switchboard_loadtest::procstat;
use switchboard_loadtest::scenario::Scenario;
use switchboard_loadtest::soak::{run_soak, SoakOptions, SoakSample};

/// Descriptors the server may hold above its count before the first join once everybody left:
/// a log file rotation, an epoll the runtime created late, a connection still closing.
const FD_SLACK: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_keeps_media_flowing_and_releases_sockets() {
    let started = Instant::now();
    let server = Server::start(&[
        "--http",
        "127.0.0.1:0",
        "--udp-ports",
        "0,0",
        "--shards",
        "2",
        // Every client comes from 127.0.0.1: the per-address join limit is for real users.
        "--joins-per-ip-per-minute",
        "0",
    ]);
    let pid = server.pid();
    let before = procstat::count_fds(Some(pid)).expect("the server's /proc/PID/fd");

    let mut sc = Scenario::new(server.url.clone());
    sc.rooms = 2;
    sc.publishers_per_room = 2;
    sc.subscribers_per_room = 1;
    sc.ramp_per_sec = 0.0;
    sc.server_pid = Some(pid);
    sc.room_prefix = "soak".into();
    sc.settle_timeout = Duration::from_secs(15);
    let mut opts = SoakOptions::new(sc, Duration::from_secs(24));
    opts.churn_every = Duration::from_secs(3);
    opts.churn_fraction = 0.34; // 2 of the 6 seats per round
    opts.sample_every = Duration::from_secs(3);

    let print = |s: &SoakSample| println!("{}", s.row());
    println!("{}", SoakSample::header());
    let report = run_soak(&opts, Some(&print)).await.expect("the soak runs");
    print!("{}", report.table());
    let t = &report.totals;

    assert!(!report.failed, "{:?}", report.failure);
    assert_eq!(t.seats, 6);
    assert_eq!(
        (t.joins_failed, t.sessions_ended, t.leaves_failed),
        (0, 0, 0),
        "{:?}",
        report.problems
    );
    // Churn happened, and every churned-in client whose check was decided got the media of
    // every publisher in its room (one churned out again before its check ended is neither).
    assert!(t.churn_rounds >= 1 && t.churned_in >= 2, "{t:?}");
    assert_eq!(
        t.churned_out, t.churned_in,
        "every seat that left was filled again"
    );
    assert_eq!(t.media_missing, 0, "{:?}", report.problems);
    assert!(t.media_ok >= 1, "{t:?}");
    // Media of the right owners only, and nobody's stream stopped or failed to start.
    assert_eq!(
        (t.foreign_media, t.wrong_owner),
        (0, 0),
        "{:?}",
        report.problems
    );
    assert_eq!(
        (t.streams_silent, t.streams_never_started),
        (0, 0),
        "{:?}",
        report.problems
    );
    assert!(t.streams_checked > 0);
    assert_eq!(t.server_errors, 0, "{:?}", report.problems);

    // The samples cover the run and read the server.
    assert!(report.samples.len() >= 5, "{}", report.samples.len());
    assert_eq!(
        report.samples[0].clients, 0,
        "the first sample is before any join"
    );
    assert!(report.samples.iter().skip(1).any(|s| s.clients == 6));
    assert!(report.samples.iter().all(|s| s.server_rss_kb.is_some()));
    assert!(report.samples[1..]
        .iter()
        .any(|s| s.shard_cpu.iter().any(|t| t.name == "shard-0")));
    assert!(report.rss_slope_kib_per_min.is_some(), "{}", report.table());
    assert!(report.table().contains("RSS slope: "));
    let json = serde_json::to_string(&report).expect("the report serialises");
    assert!(json.contains("\"rss_slope_kib_per_min\":"), "{json}");

    // Sockets are released: after everybody left the server is back to where it started.
    assert!(report.fds_before.is_some());
    let after = report.fds_after.expect("descriptors after the leave");
    assert!(
        after <= before.total + FD_SLACK,
        "{after} descriptors after the soak, {} before",
        before.total
    );
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
}
