//! End-to-end checks of the client against a tiny fake server written here: a single-participant
//! "SFU" that loops the client's own published tracks back into its receive slots. It exercises
//! the real WebSocket, ICE-lite, DTLS, SRTP and RTP paths without the Switchboard server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind as RtcKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use switchboard_loadtest::{Client, ClientError, ClientOptions, ErrorCode, LeaveReason, MediaKind};
use switchboard_protocol::{ClientMessage, PeerInfo, ServerMessage, TrackInfo};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

const PEER: &str = "p1";
const WAIT: Duration = Duration::from_secs(10);

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, format!("ws://{addr}/v1/ws"))
}

async fn accept(listener: &TcpListener) -> Ws {
    let (tcp, _) = listener.accept().await.expect("accept");
    tokio_tungstenite::accept_async(tcp)
        .await
        .expect("ws handshake")
}

async fn send(ws: &mut Ws, msg: &ServerMessage) {
    let text = serde_json::to_string(msg).expect("json");
    ws.send(Message::text(text)).await.expect("ws send");
}

/// The next client message; frames that are not a valid message get a `badMessage` error.
async fn recv(ws: &mut Ws) -> Option<ClientMessage> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => match serde_json::from_str(t.as_str()) {
                Ok(m) => return Some(m),
                Err(e) => {
                    let e = ServerMessage::Error {
                        code: ErrorCode::BadMessage,
                        message: e.to_string(),
                        request: None,
                    };
                    send(ws, &e).await;
                }
            },
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn opts(url: &str) -> ClientOptions {
    ClientOptions {
        recv_audio_slots: 1,
        recv_video_slots: 1,
        join_timeout: Duration::from_secs(5),
        ..ClientOptions::new(url, "room")
    }
}

/// The fake server's state for its single participant.
struct Loopback {
    rtc: Rtc,
    udp: UdpSocket,
    addr: SocketAddr,
    next: Instant,
    /// Client publish mid -> client receive-slot mid of the same kind.
    routes: HashMap<Mid, Mid>,
    publish: HashMap<RtcKind, Mid>,
    slots: HashMap<RtcKind, Vec<Mid>>,
    pending: Option<SdpPendingOffer>,
}

impl Loopback {
    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output().expect("server poll_output") {
                Output::Timeout(t) => {
                    self.next = t;
                    return;
                }
                Output::Transmit(t) => {
                    let _ = self.udp.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => self.on_event(e),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::MediaAdded(m) => match m.direction {
                Direction::RecvOnly => {
                    self.publish.insert(m.kind, m.mid);
                }
                Direction::SendOnly => self.slots.entry(m.kind).or_default().push(m.mid),
                _ => {}
            },
            Event::RtpPacket(p) => {
                let now = Instant::now();
                let mut api = self.rtc.direct_api();
                let Some(src) = api.stream_rx(&p.header.ssrc).map(|s| s.mid()) else {
                    return;
                };
                let Some(dst) = self.routes.get(&src).copied() else {
                    return;
                };
                let Some(tx) = api.stream_tx_by_mid(dst, None) else {
                    return;
                };
                let video = Some(&src) == self.publish.get(&RtcKind::Video);
                tx.write_rtp(
                    RtpWrite::new(
                        p.header.payload_type,
                        p.seq_no,
                        p.header.timestamp,
                        now,
                        p.payload.clone(),
                    )
                    .marker(p.header.marker)
                    .nackable(video),
                );
                // Mutations inside the drain loop are allowed; the outer drain sends them.
            }
            Event::KeyframeRequest(r) => {
                // A PLI from the subscriber side: forward it to the publisher's stream.
                let publisher = self
                    .routes
                    .iter()
                    .find(|(_, slot)| **slot == r.mid)
                    .map(|(p, _)| *p);
                if let Some(p) = publisher {
                    if let Some(rx) = self.rtc.direct_api().stream_rx_by_mid(p, None) {
                        rx.request_keyframe(KeyframeRequestKind::Pli);
                    }
                }
            }
            _ => {}
        }
    }

    /// Route each newly published kind into the first slot of that kind (str0m reports the
    /// m-lines as events, possibly on a later drain); returns the announcements.
    fn route(&mut self) -> Vec<ServerMessage> {
        let mut out = Vec::new();
        for (kind, pub_mid) in self.publish.clone() {
            if self.routes.contains_key(&pub_mid) {
                continue;
            }
            let Some(slot) = self.slots.get(&kind).and_then(|s| s.first()).copied() else {
                continue;
            };
            self.routes.insert(pub_mid, slot);
            let kind = match kind {
                RtcKind::Audio => MediaKind::Audio,
                RtcKind::Video => MediaKind::Video,
            };
            out.push(ServerMessage::TrackPublished {
                track: TrackInfo {
                    track_id: format!("{PEER}-{kind:?}"),
                    kind,
                    source: None,
                    description: None,
                    live: true,
                    muted: false,
                },
                peer_id: PEER.into(),
                mid: slot.to_string(),
                stream_id: PEER.into(),
            });
        }
        out
    }
}

/// Serve one client: join, offer/answer, loop media back, re-offer on `reoffer`, leave.
async fn loopback_server(listener: TcpListener, mut reoffer: mpsc::UnboundedReceiver<()>) {
    let mut ws = accept(&listener).await;
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    let addr = udp.local_addr().expect("udp addr");
    let mut rtc = switchboard_loadtest::rtc_config()
        .set_ice_lite(true)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
    let mut lb = Loopback {
        rtc,
        udp,
        addr,
        next: Instant::now(),
        routes: HashMap::new(),
        publish: HashMap::new(),
        slots: HashMap::new(),
        pending: None,
    };
    lb.drain();

    let Some(ClientMessage::Join { room, .. }) = recv(&mut ws).await else {
        panic!("expected join");
    };
    let joined = ServerMessage::Joined {
        protocol_version: switchboard_protocol::PROTOCOL_VERSION,
        room,
        peer_id: PEER.into(),
        members: vec![PeerInfo {
            peer_id: "other".into(),
            name: "Other".into(),
            tracks: vec![],
            media_state: Default::default(),
        }],
        resume_token: None,
        ice_servers: Vec::new(),
    };
    send(&mut ws, &joined).await;

    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let now = Instant::now();
        if lb.next <= now {
            lb.rtc.handle_input(Input::Timeout(now)).expect("timeout");
            lb.drain();
        }
        for announcement in lb.route() {
            send(&mut ws, &announcement).await;
        }
        let wake = lb.next.min(now + Duration::from_millis(100));
        tokio::select! {
            m = recv(&mut ws) => {
                let Some(m) = m else { return };
                match m {
                    ClientMessage::Offer { sdp, .. } => {
                        // Glare: an offer of ours crosses the client's; the client must
                        // ignore it (it never even parses it).
                        send(&mut ws, &ServerMessage::Offer { sdp: "v=0 glare".into() }).await;
                        let offer = SdpOffer::from_sdp_string(&sdp).expect("client offer");
                        let answer = lb.rtc.sdp_api().accept_offer(offer).expect("accept");
                        lb.drain();
                        let sdp = answer.to_sdp_string();
                        send(&mut ws, &ServerMessage::Answer { sdp }).await;
                        let candidate = Candidate::host(lb.addr, "udp").expect("candidate");
                        let c = ServerMessage::Candidate {
                            candidate: candidate.to_sdp_string(),
                            sdp_mid: None,
                            sdp_m_line_index: None,
                        };
                        send(&mut ws, &c).await;
                    }
                    ClientMessage::Answer { sdp } => {
                        let answer = SdpAnswer::from_sdp_string(&sdp).expect("client answer");
                        match lb.pending.take() {
                            Some(p) => lb.rtc.sdp_api().accept_answer(p, answer).expect("accept"),
                            None => {
                                let e = ServerMessage::Error {
                                    code: ErrorCode::NoPendingOffer,
                                    message: "no offer".into(),
                                    request: Some("answer".into()),
                                };
                                send(&mut ws, &e).await;
                            }
                        }
                        lb.drain();
                    }
                    ClientMessage::Leave {} => {
                        send(&mut ws, &ServerMessage::Left { reason: LeaveReason::Requested }).await;
                        let _ = ws.close(None).await;
                        return;
                    }
                    _ => {}
                }
            }
            r = lb.udp.recv_from(&mut buf) => {
                let (n, source) = r.expect("udp recv");
                let at = Instant::now();
                if let Ok(rx) = Receive::new(Protocol::Udp, source, lb.addr, &buf[..n]) {
                    lb.rtc.handle_input(Input::Receive(at, rx)).expect("receive");
                    lb.drain();
                    // Forwarded packets were queued during the drain: send them now.
                    lb.rtc.handle_input(Input::Timeout(Instant::now())).expect("timeout");
                    lb.drain();
                }
            }
            Some(()) = reoffer.recv() => {
                let mut api = lb.rtc.sdp_api();
                api.add_media(RtcKind::Video, Direction::SendOnly, Some("x".into()), None, None);
                let (offer, pending) = api.apply().expect("reoffer");
                lb.pending = Some(pending);
                lb.drain();
                send(&mut ws, &ServerMessage::Offer { sdp: offer.to_sdp_string() }).await;
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_loops_back_through_a_fake_server() {
    let (listener, url) = listen().await;
    let (reoffer_tx, reoffer_rx) = mpsc::unbounded_channel();
    let server = tokio::spawn(loopback_server(listener, reoffer_rx));

    let client = Client::join(opts(&url)).await.expect("join");
    assert_eq!(client.peer_id(), PEER);
    let s = client.stats();
    assert_eq!(s.mline_count, 4, "2 published + 2 slots");
    assert_eq!(s.members.get("other").map(String::as_str), Some("Other"));

    client
        .wait_until("connected", WAIT, |s| s.connected)
        .await
        .expect("connected");
    let s = client
        .wait_until("media loops back", WAIT, |s| {
            s.packets_from(PEER, MediaKind::Audio) >= 25
                && s.packets_from(PEER, MediaKind::Video) >= 45
        })
        .await
        .expect("media");
    assert_eq!(s.slots.len(), 2, "{}", s.summary());
    assert_eq!(s.wrong_owner, 0, "{}", s.summary());
    assert_eq!(s.total(|r| r.corrupt), 0, "{}", s.summary());
    // Loopback on localhost: nothing lost, and the fake server keeps the sequence numbers.
    assert_eq!(
        s.total(|r| r.lost + r.seq_gaps + r.duplicates),
        0,
        "{}",
        s.summary()
    );
    let video = s.recv(PEER, MediaKind::Video).expect("video stats");
    assert!(video.keyframes >= 1, "first frame is a keyframe");
    assert!(!video.latency_us.is_empty());
    assert!(video.latency_percentile(50.0) < 1_000_000);
    assert!(s.sent_packets > 0 && s.sent_keyframes >= 1);

    // A PLI from the receiving side reaches the publisher (which is also us).
    let video_slot = s
        .slots
        .iter()
        .find(|(_, t)| t.as_ref().is_some_and(|t| t.kind == MediaKind::Video))
        .map(|(mid, _)| mid.clone())
        .expect("video slot");
    let before = s.sent_keyframes;
    client.request_keyframe(&video_slot);
    client
        .wait_until("keyframe request", WAIT, |s| {
            s.keyframe_requests >= 1 && s.sent_keyframes > before
        })
        .await
        .expect("keyframe request");

    // A server offer adds an m-line; the client answers it.
    reoffer_tx.send(()).expect("server alive");
    client
        .wait_until("server offer answered", WAIT, |s| {
            s.server_offers == 2 && s.answers_sent == 1 && s.mline_count == 5
        })
        .await
        .expect("reoffer");

    // Media keeps flowing after the renegotiation, measured in a fresh gap window; then a
    // clean leave.
    let mark = client.mark_gaps();
    let n = client.stats().packets_from(PEER, MediaKind::Audio);
    let s = client
        .wait_until("more audio", WAIT, |s| {
            s.packets_from(PEER, MediaKind::Audio) > n + 10
        })
        .await
        .expect("more audio");
    assert_eq!(s.gaps_marked_at, Some(mark));
    let gap = s
        .max_gap_from(PEER, Instant::now())
        .expect("tracks from us");
    // Bounded only by the wait itself: timing on a shared machine is not this test's subject.
    assert!(gap > Duration::ZERO && gap < WAIT, "{gap:?}");
    // Garbage on the WebSocket gets an error back, which the client records.
    client.send_raw("{not json".into());
    let s = client
        .wait_until("badMessage error", WAIT, |s| !s.errors.is_empty())
        .await
        .expect("error recorded");
    assert_eq!(s.errors[0].0, ErrorCode::BadMessage);
    assert_eq!(s.glare_ignored, 1);
    assert!(s.local_errors.is_empty(), "{}", s.summary());
    client.leave().await.expect("leave");
    server.await.expect("server task");
}

#[tokio::test]
async fn join_refused_is_rejected() {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener).await;
        let _ = recv(&mut ws).await;
        let e = ServerMessage::Error {
            code: ErrorCode::InvalidRoomName,
            message: "bad room".into(),
            request: Some("join".into()),
        };
        send(&mut ws, &e).await;
        // Keep the connection open: the client must not wait for a close.
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    let err = Client::join(opts(&url)).await.expect_err("refused");
    assert_eq!(
        err,
        ClientError::Rejected {
            code: ErrorCode::InvalidRoomName,
            message: "bad room".into()
        }
    );
    server.abort();
}

#[tokio::test]
async fn silent_server_times_out_and_closed_server_is_closed() {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener).await;
        let _ = recv(&mut ws).await;
        // Second connection: close right after the join.
        let mut ws2 = accept(&listener).await;
        let _ = recv(&mut ws2).await;
        let _ = ws2.close(None).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(ws);
    });
    let mut o = opts(&url);
    o.join_timeout = Duration::from_millis(500);
    let err = Client::join(o).await.expect_err("silent");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    let err = Client::join(opts(&url)).await.expect_err("closed");
    assert_eq!(err, ClientError::Closed);
    server.abort();

    let err = Client::join(opts("ws://127.0.0.1:1/v1/ws"))
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, ClientError::Connect(_)), "{err}");
}

#[tokio::test]
async fn kill_drops_the_websocket_without_leave() {
    let (listener, url) = listen().await;
    let (_reoffer_tx, reoffer_rx) = mpsc::unbounded_channel();
    let server = tokio::spawn(loopback_server(listener, reoffer_rx));
    let client = Client::join(opts(&url)).await.expect("join");
    client
        .wait_until("connected", WAIT, |s| s.connected)
        .await
        .expect("connected");
    client.kill();
    // The fake server returns when its WebSocket ends (it would also return on `leave`, but a
    // killed client sends none).
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server saw the WebSocket end")
        .expect("server task");
}
