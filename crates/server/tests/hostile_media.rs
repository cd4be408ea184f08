//! A connected publisher sending hostile transport-wide-cc sequence numbers through real SRTP:
//! 0, 0xffff, 1 made str0m 0.25 extend 0xffff to ~2^64 and build feedback across the "gap"
//! until the allocator aborted the whole process. With the vendored fix nobody notices.

mod common;

use std::time::Duration;

use common::{wait_receives, TestServer, WAIT};
use switchboard_loadtest::{Client, MediaKind};

/// Resident memory of this process (the server runs in it), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_twcc_sequence_costs_nobody_anything() {
    let server = TestServer::start(1).await;
    let alice = server.join("r", "alice").await;
    let bob = server.join("r", "bob").await;
    wait_receives(&bob, "alice", 30).await;
    let before = rss_kib();

    let mut opts = server.options("r", "mallory");
    opts.forged_twcc = Some(vec![0, 0xffff, 1, 0x8000, 2, 0xfffe, 3]);
    let mallory = Client::join(opts).await.expect("mallory joins");
    // Mallory's media is valid apart from the numbers: it reaches the others.
    wait_receives(&bob, "mallory", 30).await;
    wait_receives(&alice, "mallory", 30).await;
    // Several feedback intervals (50 ms each) go by with the hostile numbers registered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib();
    assert!(
        after < before + 200 * 1024,
        "memory grew from {before} KiB to {after} KiB"
    );
    // Everyone, mallory included, is still in the call and still gets media.
    for (me, from) in [(&bob, "alice"), (&alice, "bob"), (&mallory, "alice")] {
        let seen = me.stats().packets_from(from, MediaKind::Video);
        me.wait_until("media keeps flowing", WAIT, |s| {
            s.packets_from(from, MediaKind::Video) > seen + 30
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(me.stats().left_reason.is_none());
    }
    assert_eq!(server.stats().participant_failures, 0);
}
