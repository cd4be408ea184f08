//! Runs: which datagrams may leave together, and that they arrive as the datagrams they were,
//! over real loopback sockets.

use std::net::{SocketAddr, UdpSocket as StdSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn a_run_takes_equal_sizes_to_one_destination_and_one_shorter_last() {
    let mut run = Run::default();
    assert!(run.fits(addr(1), 1000));
    run.push(addr(1), vec![0; 1000]);
    assert!(run.fits(addr(1), 1000));
    assert!(!run.fits(addr(2), 1000), "another destination");
    assert!(!run.fits(addr(1), 1001), "a larger datagram");
    run.push(addr(1), vec![0; 1000]);
    assert!(run.fits(addr(1), 400));
    run.push(addr(1), vec![0; 400]);
    assert!(!run.fits(addr(1), 400), "nothing after a shorter one");
    assert!(!run.fits(addr(1), 1000), "nothing after a shorter one");
    assert_eq!(run.len(), 3);
    run.clear();
    assert_eq!(run.len(), 0);
    assert!(run.fits(addr(2), 1200), "a cleared run takes anything");
}

#[test]
fn a_run_stops_at_the_segment_and_byte_limits() {
    let mut run = Run::default();
    for _ in 0..MAX_SEGMENTS {
        assert!(run.fits(addr(1), 100));
        run.push(addr(1), vec![0; 100]);
    }
    assert!(!run.fits(addr(1), 100), "{MAX_SEGMENTS} segments at most");

    let mut run = Run::default();
    let size = 1400;
    let mut bytes = 0;
    while bytes + size <= MAX_RUN_BYTES {
        assert!(run.fits(addr(1), size));
        run.push(addr(1), vec![0; size]);
        bytes += size;
    }
    assert!(!run.fits(addr(1), size), "{MAX_RUN_BYTES} bytes at most");
}

/// A datagram whose every byte names it: sender `who`, sequence `seq`.
fn datagram(who: u8, seq: u8, len: usize) -> Vec<u8> {
    let mut d = vec![who; len];
    d[0] = seq;
    d
}

fn receiver() -> StdSocket {
    let socket = StdSocket::bind(addr(0)).expect("bind a loopback receiver");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("set a read timeout");
    socket
}

fn receive(socket: &StdSocket, count: usize) -> Vec<Vec<u8>> {
    let mut buf = [0u8; 70_000];
    (0..count)
        .map(|i| {
            let (n, _) = socket
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("datagram {i} of {count}: {e}"));
            buf[..n].to_vec()
        })
        .collect()
}

async fn sender() -> UdpSocket {
    UdpSocket::bind(addr(0))
        .await
        .expect("bind a loopback sender")
}

/// Eleven datagrams (ten of 1000 bytes, one of 500) to one receiver, with GSO on or off.
async fn send_a_frame(gso: bool) -> (Vec<Vec<u8>>, Arc<EgressCounters>, bool) {
    let sockets = [sender().await];
    let rx = receiver();
    let to = rx.local_addr().expect("receiver address");
    let counters = Arc::new(EgressCounters::default());
    let mut egress = Egress::new(0, &sockets, gso, counters.clone());
    let mut sent = Vec::new();
    for seq in 0..11u8 {
        let d = datagram(7, seq, if seq == 10 { 500 } else { 1000 });
        sent.push(d.clone());
        egress.send(&sockets, to, d);
    }
    egress.flush(&sockets);
    let got = receive(&rx, sent.len());
    assert_eq!(
        got, sent,
        "the same datagrams, in order, with their boundaries"
    );
    (got, counters, egress.gso_on(0))
}

#[tokio::test]
async fn a_run_leaves_in_one_call_and_arrives_as_its_datagrams() {
    let (_, counters, still_on) = send_a_frame(true).await;
    assert!(still_on, "loopback takes UDP GSO");
    assert_eq!(counters.send_calls.load(Ordering::Relaxed), 1);
    assert_eq!(counters.datagrams.load(Ordering::Relaxed), 11);
    assert_eq!(counters.dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn without_gso_every_datagram_is_its_own_call() {
    let (_, counters, _) = send_a_frame(false).await;
    assert_eq!(counters.send_calls.load(Ordering::Relaxed), 11);
    assert_eq!(counters.datagrams.load(Ordering::Relaxed), 11);
}

#[tokio::test]
async fn interleaved_destinations_each_get_their_own_datagrams() {
    let sockets = [sender().await];
    let (a, b) = (receiver(), receiver());
    let (to_a, to_b) = (
        a.local_addr().expect("address a"),
        b.local_addr().expect("address b"),
    );
    let counters = Arc::new(EgressCounters::default());
    let mut egress = Egress::new(0, &sockets, true, counters.clone());
    // Three to a, two to b, three to a, and a size change inside the last run to a.
    let plan: [(u8, usize); 8] = [
        (1, 800),
        (1, 800),
        (1, 800),
        (2, 800),
        (2, 800),
        (1, 300),
        (1, 900),
        (1, 900),
    ];
    let mut want_a = Vec::new();
    let mut want_b = Vec::new();
    for (seq, (who, len)) in plan.into_iter().enumerate() {
        let d = datagram(who, seq as u8, len);
        if who == 1 {
            want_a.push(d.clone());
            egress.send(&sockets, to_a, d);
        } else {
            want_b.push(d.clone());
            egress.send(&sockets, to_b, d);
        }
    }
    egress.flush(&sockets);
    assert_eq!(receive(&a, want_a.len()), want_a);
    assert_eq!(receive(&b, want_b.len()), want_b);
    // Runs: a ×3, b ×2, a ×1 (300, shorter than nothing before it) then a ×2 (900 > 300).
    assert_eq!(counters.send_calls.load(Ordering::Relaxed), 4);
    assert_eq!(counters.datagrams.load(Ordering::Relaxed), 8);
}

#[tokio::test]
async fn a_refused_run_is_counted_dropped_and_gso_stays_on() {
    // An IPv6 destination on the shard's only (IPv4) socket: the kernel refuses the run and
    // then every datagram of it.
    let sockets = [sender().await];
    let counters = Arc::new(EgressCounters::default());
    let mut egress = Egress::new(0, &sockets, true, counters.clone());
    let to: SocketAddr = "[::1]:9".parse().expect("an IPv6 address");
    for seq in 0..3 {
        egress.send(&sockets, to, datagram(1, seq, 600));
    }
    egress.flush(&sockets);
    assert_eq!(counters.dropped.load(Ordering::Relaxed), 3);
    assert_eq!(counters.datagrams.load(Ordering::Relaxed), 0);
    assert!(egress.gso_on(0), "one refused run does not turn GSO off");
}

#[tokio::test]
async fn runs_leave_on_the_socket_of_their_family() {
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0));
    let Ok(rx6) = StdSocket::bind(v6) else {
        eprintln!("SKIPPED: this machine has no IPv6 loopback (::1) to bind");
        return;
    };
    rx6.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("set a read timeout");
    let tx6 = UdpSocket::bind(v6).await.expect("bind an IPv6 sender");
    // A dual-stack shard: the IPv4 socket first, as the runtime binds them.
    let sockets = [sender().await, tx6];
    let rx4 = receiver();
    let (to4, to6) = (
        rx4.local_addr().expect("IPv4 receiver"),
        rx6.local_addr().expect("IPv6 receiver"),
    );
    let counters = Arc::new(EgressCounters::default());
    let mut egress = Egress::new(0, &sockets, true, counters.clone());
    let (mut want4, mut want6) = (Vec::new(), Vec::new());
    for seq in 0..6u8 {
        let d = datagram(seq % 2, seq, 700);
        if seq < 3 {
            want6.push(d.clone());
            egress.send(&sockets, to6, d);
        } else {
            want4.push(d.clone());
            egress.send(&sockets, to4, d);
        }
    }
    egress.flush(&sockets);
    assert_eq!(receive(&rx6, 3), want6);
    assert_eq!(receive(&rx4, 3), want4);
    assert_eq!(counters.send_calls.load(Ordering::Relaxed), 2);
    assert!(egress.gso_on(0) && egress.gso_on(1));
}
