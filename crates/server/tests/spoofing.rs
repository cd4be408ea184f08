//! A burst of STUN checks replayed from spoofed source addresses does not break the path a
//! participant actually uses.
//!
//! The server advertises 127.0.0.2 while its socket is bound on 127.0.0.1, and a small UDP relay
//! on 127.0.0.2 carries the clients' traffic, so the test sees (and records) alice's real,
//! correctly authenticated ICE checks, the way an on-path attacker could. It then replays them to
//! the server from a thousand other source addresses.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{wait_receives, TestServer, WAIT};
use parking_lot::Mutex;
use switchboard_control::ControlConfig;
use switchboard_loadtest::MediaKind;
use switchboard_runtime::RuntimeConfig;
use tokio::net::UdpSocket;

/// STUN binding requests seen per client address.
type Captured = Arc<Mutex<HashMap<SocketAddr, Vec<Vec<u8>>>>>;

/// Relay every datagram between clients (on `front`) and the server's real socket; record the
/// STUN binding requests the clients send.
async fn relay(front: Arc<UdpSocket>, server: SocketAddr, captured: Captured) {
    let mut upstream: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            return;
        };
        let datagram = &buf[..n];
        if datagram.len() >= 20 && datagram[0] == 0x00 && datagram[1] == 0x01 {
            captured
                .lock()
                .entry(client)
                .or_default()
                .push(datagram.to_vec());
        }
        let up = match upstream.get(&client) {
            Some(up) => up.clone(),
            None => {
                let up = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
                upstream.insert(client, up.clone());
                let (front, back) = (front.clone(), up.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 2048];
                    while let Ok((n, _)) = back.recv_from(&mut buf).await {
                        let _ = front.send_to(&buf[..n], client).await;
                    }
                });
                up
            }
        };
        let _ = up.send_to(datagram, server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_stun_from_spoofed_addresses_leaves_the_live_path_alone() {
    let mut config = RuntimeConfig::localhost(1);
    config.ports = vec![0];
    config.public_ip = Some([127, 0, 0, 2].into());
    let server = TestServer::start_config(config, ControlConfig::default()).await;
    let real = server.runtime.local_addr(0).expect("shard 0");
    let advertised = server.runtime.advertised(0).expect("shard 0");
    let front = Arc::new(UdpSocket::bind(advertised).await.expect("bind the relay"));
    let captured = Captured::default();
    tokio::spawn(relay(front, real, captured.clone()));

    let alice = server.join("r", "alice").await;
    let bob = server.join("r", "bob").await;
    wait_receives(&bob, "alice", 30).await;
    wait_receives(&alice, "bob", 30).await;
    let checks: Vec<Vec<u8>> = captured
        .lock()
        .get(&alice.local_addr())
        .cloned()
        .unwrap_or_default();
    assert!(
        !checks.is_empty(),
        "alice's ICE checks went through the relay"
    );

    // A thousand spoofed sources replay alice's authenticated checks straight at the server.
    bob.mark_gaps();
    alice.mark_gaps();
    let mut spoofers = Vec::new();
    for i in 0..1000u32 {
        let ip = [127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8];
        let socket = std::net::UdpSocket::bind(SocketAddr::from((ip, 0))).expect("bind");
        for check in &checks {
            let _ = socket.send_to(check, real);
        }
        spoofers.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = server.stats();
    assert!(
        stats.dropped_path_limit > 0,
        "the demux refused paths beyond its limit: {stats:?}"
    );

    // Media still flows both ways on alice's real path, without a pause.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (me, from) in [(&bob, "alice"), (&alice, "bob")] {
        let gap = me.with_stats(|s| s.max_gap_from(from, std::time::Instant::now()));
        assert!(
            gap.is_some_and(|g| g <= Duration::from_millis(200)),
            "{} heard {from} with a gap of {gap:?} after the burst",
            me.peer_id()
        );
        let before = me.stats().packets_from(from, MediaKind::Video);
        me.wait_until("media keeps flowing after the burst", WAIT, |s| {
            s.packets_from(from, MediaKind::Video) > before + 60
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(alice.stats().left_reason.is_none());
    drop(spoofers);
}
