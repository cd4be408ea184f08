//! Reaching the server other than over plain IPv4 UDP, end to end on loopback: ICE-TCP (a client
//! whose only candidate is TCP gets media through the node's TCP port, on whichever shard its
//! room lives), hostile TCP connections that go nowhere, and a dual-stack node where a member on
//! `::1` and one on 127.0.0.1 share a room.

mod common;

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use common::{receives, wait_receives, TestServer, WAIT};
use switchboard_control::ControlConfig;
use switchboard_loadtest::{Client, ClientStats};
use switchboard_runtime::RuntimeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn assert_clean(s: &ClientStats) {
    assert_eq!(
        s.wrong_owner, 0,
        "{}: media from the wrong owner",
        s.peer_id
    );
    assert_eq!(s.total(|r| r.corrupt), 0, "{}: corrupt payloads", s.peer_id);
    assert!(s.errors.is_empty(), "{}: errors {:?}", s.peer_id, s.errors);
}

async fn server_with_tcp(shards: usize) -> TestServer {
    let mut config = RuntimeConfig::localhost(shards);
    config.ports = vec![0; shards];
    config.tcp_port = Some(0);
    TestServer::start_config(config, ControlConfig::default()).await
}

async fn join_over_tcp(server: &TestServer, room: &str, name: &str) -> Client {
    let mut opts = server.options(room, name);
    opts.ice_tcp = true;
    Client::join(opts)
        .await
        .unwrap_or_else(|e| panic!("{name} joins {room} over ICE-TCP: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_members_get_media_on_every_shard() {
    let server = server_with_tcp(2).await;
    assert_eq!(server.runtime.tcp_addrs().len(), 1, "one TCP listener");
    // Two rooms land on the two shards; each has a TCP member and a UDP member.
    let mut pairs = Vec::new();
    for room in ["east", "west"] {
        let tcp = join_over_tcp(&server, room, &format!("{room}-tcp")).await;
        let udp = server.join(room, &format!("{room}-udp")).await;
        pairs.push((room, tcp, udp));
    }
    let shards: Vec<_> = ["east", "west"]
        .iter()
        .map(|r| server.runtime.shard_of(r).expect("placed"))
        .collect();
    assert_ne!(shards[0], shards[1], "the rooms sit on different shards");
    for (room, tcp, udp) in &pairs {
        let got = wait_receives(tcp, &format!("{room}-udp"), 30).await;
        assert_clean(&got);
        let got = wait_receives(udp, &format!("{room}-tcp"), 30).await;
        assert_clean(&got);
        // Nothing of the other room reached either.
        let other = if *room == "east" { "west" } else { "east" };
        for c in [tcp, udp] {
            let s = c.stats();
            assert!(!receives(&s, &format!("{other}-tcp"), 0));
            assert!(!receives(&s, &format!("{other}-udp"), 0));
        }
    }
    // Leaving over TCP ends the session like any other.
    let (_, tcp, udp) = pairs.remove(0);
    tcp.leave().await.expect("leave");
    udp.wait_until("the TCP member's tracks to end", WAIT, |s| {
        s.mids_of("east-tcp").is_empty()
    })
    .await
    .expect("tracks end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_that_name_nobody_are_closed_and_hurt_nobody() {
    let server = server_with_tcp(1).await;
    let tcp = join_over_tcp(&server, "r", "tcp").await;
    let udp = server.join("r", "udp").await;
    wait_receives(&tcp, "udp", 20).await;
    let addr = server.runtime.tcp_addrs()[0];

    // Not STUN; a STUN check for an unknown ufrag; a frame above the limit; silence.
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[7; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
    stun.extend_from_slice(b"nobody:x");
    let frames: Vec<Vec<u8>> = vec![
        [&[0u8, 5][..], b"hello"].concat(),
        [&(stun.len() as u16).to_be_bytes()[..], &stun].concat(),
        vec![0xff, 0xff, 1, 2, 3],
    ];
    for frame in frames {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(&frame).await.expect("write");
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("the server closes the connection");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "closed without a reply, got {read:?}"
        );
    }
    // The members' media goes on.
    let before = tcp
        .stats()
        .packets_from("udp", switchboard_loadtest::MediaKind::Audio);
    tcp.wait_until("more audio after the hostile connections", WAIT, |s| {
        s.packets_from("udp", switchboard_loadtest::MediaKind::Audio) > before + 20
    })
    .await
    .expect("media keeps flowing");
    wait_receives(&udp, "tcp", 20).await;
    assert_clean(&tcp.stats());
    assert_clean(&udp.stats());
}

fn ipv6_loopback() -> bool {
    std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_on_ipv6_and_one_on_ipv4_share_a_room() {
    if !ipv6_loopback() {
        eprintln!("SKIPPED: this machine has no IPv6 loopback (::1) to bind");
        return;
    }
    let mut config = RuntimeConfig::localhost(1);
    config.ports = vec![0];
    config.bind_ip6 = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
    config.tcp_port = Some(0);
    let server = TestServer::start_config(config, ControlConfig::default()).await;
    let candidates = server.runtime.candidates(0);
    assert!(
        candidates.iter().any(|(_, a)| a.is_ipv6()) && candidates.iter().any(|(_, a)| a.is_ipv4()),
        "both families advertised: {candidates:?}"
    );
    let mut opts = server.options("dual", "six");
    opts.local_ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let six = Client::join(opts).await.expect("six joins");
    assert!(six.local_addr().is_ipv6());
    let four = server.join("dual", "four").await;
    // And one more over ICE-TCP on IPv6.
    let mut opts = server.options("dual", "six-tcp");
    opts.local_ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    opts.ice_tcp = true;
    let six_tcp = Client::join(opts).await.expect("six-tcp joins");
    for (c, others) in [
        (&six, ["four", "six-tcp"]),
        (&four, ["six", "six-tcp"]),
        (&six_tcp, ["six", "four"]),
    ] {
        for from in others {
            let got = wait_receives(c, from, 20).await;
            assert_clean(&got);
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}
