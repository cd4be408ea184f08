//! The load tester's scenario runner against an in-process server: two rooms of three publishers
//! for a few seconds, with messages on the relayed data channel too. Correctness, not speed:
//! everybody joins, every participant receives both other publishers' audio, video and data,
//! little is lost, and the server's counters agree.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use switchboard_loadtest::scenario::{run_scenario, Progress, Scenario};
use switchboard_loadtest::DataOptions;

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
    sc.data = Some(DataOptions {
        per_second: 20,
        size: 300,
    });

    let before = server.stats();
    let egress_before = server.runtime.egress();
    let progress = |p: &Progress| println!("{p}");
    let report = run_scenario(&sc, Some(&progress))
        .await
        .expect("the scenario runs");
    let after = server.stats();
    let egress_after = server.runtime.egress();
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
    // Egress is batched with UDP GSO: a video frame (9 packets of one size) to one receiver is
    // one send call, and the payload checks above (corrupt, wrong owner, sequence gaps) saw
    // the same datagrams arrive. Audio and RTCP go one per call, so the mean lies well under 9.
    let (calls, datagrams): (u64, u64) = egress_before
        .iter()
        .zip(&egress_after)
        .map(|(b, a)| (a.send_calls - b.send_calls, a.datagrams - b.datagrams))
        .fold((0, 0), |(c, d), (dc, dd)| (c + dc, d + dd));
    assert!(
        datagrams as f64 >= 1.5 * calls as f64,
        "{datagrams} datagrams in {calls} send calls"
    );
    assert!(datagrams as f64 >= 0.9 * report.egress_packets as f64);
    // Data: each publisher's 20 messages a second reach both others, none lost on the reliable
    // channel, and the server relayed at least what arrived.
    let data = report
        .data
        .as_ref()
        .expect("a data scenario reports its data");
    assert_eq!(data.expected_per_s, 2.0 * 3.0 * 2.0 * 20.0);
    assert!(
        data.received_per_s > 0.5 * data.expected_per_s,
        "data {:.0} msg/s of {:.0} expected",
        data.received_per_s,
        data.expected_per_s
    );
    assert_eq!(data.lost, 0, "the reliable channel lost messages");
    assert!(data.latency_ms_p50 > 0.0 && data.latency_ms_p50 <= data.latency_ms_p99);
    let relayed = after.data_relayed - before.data_relayed;
    let received = (data.received_per_s * report.duration_s).round() as u64;
    assert!(
        relayed as f64 >= 0.9 * received as f64,
        "server relayed {relayed}, receivers counted {received}"
    );
    // (Copies for a member whose channel is not open yet, while the others join, are missed:
    // `no_channel`. Nothing is invalid.)
    assert_eq!(after.data_dropped_invalid, 0);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
