//! The load tester's scenario runner against an in-process server: two rooms of three publishers
//! for a few seconds. Correctness, not speed: everybody joins, every participant receives both
//! other publishers' audio and video, little is lost, and the server's counters agree.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use switchboard_loadtest::scenario::{run_scenario, Progress, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rooms_of_three_exchange_media() {
    let started = Instant::now();
    let server = TestServer::start(2).await;
    let mut sc = Scenario::new(server.url.clone());
    sc.rooms = 2;
    sc.publishers_per_room = 3;
    sc.subscribers_per_room = 0;
    sc.duration = Duration::from_secs(3);
    sc.ramp_per_sec = 0.0;
    sc.threads = 2;
    sc.settle_timeout = Duration::from_secs(10);
    sc.room_prefix = "smoke".into();

    let before = server.stats();
    let progress = |p: &Progress| println!("{p}");
    let report = run_scenario(&sc, Some(&progress))
        .await
        .expect("the scenario runs");
    let after = server.stats();
    print!("{}", report.table());

    assert_eq!(report.planned, 6);
    assert_eq!(
        (report.joined, report.failed),
        (6, 0),
        "{:?}",
        report.join_errors
    );
    assert_eq!(report.connected, 6);
    assert!(report.settled, "media reached everybody before the window");
    // 2 rooms × 3 publishers × 2 tracks × 2 receivers.
    assert_eq!(report.streams_expected, 24);
    assert_eq!(report.streams_received, 24);
    assert_eq!(report.participants.len(), 6);
    for p in &report.participants {
        let mut owners: Vec<&str> = p
            .received
            .iter()
            .filter(|t| t.packets > 0)
            .map(|t| t.owner.as_str())
            .collect();
        owners.dedup();
        assert_eq!(
            owners.len(),
            2,
            "{}/{} receives from both others: {:?}",
            p.room,
            p.name,
            p.received
        );
        for t in &p.received {
            assert!(
                t.packets > 0,
                "{}/{}: nothing from {} {}",
                p.room,
                p.name,
                t.owner,
                t.kind
            );
        }
        assert!(p.server_errors.is_empty(), "{:?}", p.server_errors);
    }
    assert!(
        report.loss_percent < 1.0,
        "loss {:.2} %",
        report.loss_percent
    );
    assert_eq!((report.corrupt, report.wrong_owner), (0, 0));
    assert_eq!(report.server_errors, 0);
    // Each publisher sends ~320 packets/s to two receivers: the window sees most of the ideal.
    assert!(
        report.egress_pps > 0.5 * report.expected_egress_pps,
        "egress {:.0} pkt/s of {:.0} expected",
        report.egress_pps,
        report.expected_egress_pps
    );
    assert!(report.latency_samples > 0);
    assert!(report.latency_ms_p50 > 0.0 && report.latency_ms_p50 <= report.latency_ms_p99);
    // What the receivers counted, the server forwarded. The server's count also covers the
    // ramp and settle phases, but its counters are refreshed only every ~100 ms: allow for that.
    let forwarded = after.rtp_forwarded - before.rtp_forwarded;
    assert!(
        forwarded as f64 >= 0.9 * report.egress_packets as f64,
        "server forwarded {forwarded}, receivers counted {}",
        report.egress_packets
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
