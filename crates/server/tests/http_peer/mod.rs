//! A WHIP publisher and a WHEP player as a third party would write them: a str0m engine, a UDP
//! socket and plain HTTP requests — no Switchboard signalling. The publisher sends the load
//! tester's synthetic media (its payloads name their owner), the player counts what arrives by
//! the owner its payloads name, so a test checks *who* it receives.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Candidate, Event, Input, Output, Rtc};
use switchboard_loadtest::synth::{self, VideoPosition};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What an HTTP request got back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// Send one request with an optional body of `content_type`.
pub async fn request(
    method: reqwest::Method,
    url: &str,
    content_type: Option<&str>,
    token: Option<&str>,
    extra: &[(&str, &str)],
    body: String,
) -> Reply {
    let mut req = reqwest::Client::new().request(method, url).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("HTTP request");
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.expect("body"),
    }
}

/// Packets received, by (owner named in the payload, video).
pub type Received = Arc<Mutex<HashMap<(String, bool), u64>>>;

/// A running HTTP peer: its media task and the session's `Location`.
pub struct HttpPeer {
    pub location: String,
    pub etag: String,
    pub answer: String,
    /// The client's own ICE ufrag (for PATCH fragments).
    pub ufrag: String,
    pub local: SocketAddr,
    pub received: Received,
    /// When the POST was sent (for join-to-first-packet figures).
    pub started: Instant,
    /// When the first media packet arrived, if one has.
    pub first_packet: Arc<Mutex<Option<Instant>>>,
    task: JoinHandle<()>,
}

impl Drop for HttpPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpPeer {
    /// Packets from `owner` of one kind.
    pub fn count(&self, owner: &str, video: bool) -> u64 {
        self.received
            .lock()
            .get(&(owner.to_owned(), video))
            .copied()
            .unwrap_or(0)
    }

    /// Every owner something arrived from.
    pub fn owners(&self) -> Vec<String> {
        let mut v: Vec<String> = self.received.lock().keys().map(|k| k.0.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Wait (bounded) until `pred` holds on the counts.
    pub async fn wait_for(&self, what: &str, within: Duration, pred: impl Fn(&HttpPeer) -> bool) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if pred(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "timed out waiting for {what}; received {:?}",
            self.received.lock()
        );
    }
}

/// Why a POST did not create a session.
#[derive(Debug)]
pub struct Refused(pub Reply);

fn new_rtc() -> Rtc {
    switchboard_loadtest::rtc_config().build(Instant::now())
}

/// Publish audio and video as `owner` (its payloads say so) with WHIP at `url`.
pub async fn publish(url: &str, token: Option<&str>, owner: &str) -> Result<HttpPeer, Refused> {
    start(url, token, Some(owner.to_owned()), (1, 1)).await
}

/// Play with WHEP at `url` on `audio` + `video` recvonly m-lines.
pub async fn play(
    url: &str,
    token: Option<&str>,
    audio: usize,
    video: usize,
) -> Result<HttpPeer, Refused> {
    start(url, token, None, (audio, video)).await
}

async fn start(
    url: &str,
    token: Option<&str>,
    publish_as: Option<String>,
    (audio, video): (usize, usize),
) -> Result<HttpPeer, Refused> {
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp bind");
    let local = udp.local_addr().expect("local addr");
    let mut rtc = new_rtc();
    let ufrag = rtc.direct_api().local_ice_credentials().ufrag.clone();
    rtc.add_local_candidate(Candidate::host(local, "udp").expect("host candidate"));
    let direction = if publish_as.is_some() {
        Direction::SendOnly
    } else {
        Direction::RecvOnly
    };
    let mut api = rtc.sdp_api();
    let mut sending = Vec::new();
    for (kind, n) in [(MediaKind::Audio, audio), (MediaKind::Video, video)] {
        for _ in 0..n {
            let mid = api.add_media(kind, direction, None, None, None);
            sending.push((mid, kind == MediaKind::Video));
        }
    }
    let (offer, pending) = api.apply().expect("an offer");
    let started = Instant::now();
    let reply = request(
        reqwest::Method::POST,
        url,
        Some("application/sdp"),
        token,
        &[],
        offer.to_sdp_string(),
    )
    .await;
    if reply.status != 201 {
        return Err(Refused(reply));
    }
    let answer = SdpAnswer::from_sdp_string(&reply.body).expect("the answer parses");
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .expect("the answer applies");
    let location = reply.header("location").expect("Location");
    let etag = reply.header("etag").expect("ETag");
    let received: Received = Arc::default();
    let first_packet = Arc::new(Mutex::new(None));
    let tracks = if publish_as.is_some() {
        sending
    } else {
        Vec::new()
    };
    let media = Media {
        rtc,
        udp,
        local,
        owner: publish_as,
        tracks: tracks
            .into_iter()
            .map(|(mid, video)| Tx::new(mid, video))
            .collect(),
        received: received.clone(),
        first_packet: first_packet.clone(),
        connected: false,
    };
    let task = tokio::spawn(media.run());
    Ok(HttpPeer {
        location,
        etag,
        answer: reply.body,
        ufrag,
        local,
        received,
        started,
        first_packet,
        task,
    })
}

struct Tx {
    mid: Mid,
    video: bool,
    ssrc: Option<Ssrc>,
    pt: Option<Pt>,
    seq: u64,
    ts: u32,
    counter: u64,
}

impl Tx {
    fn new(mid: Mid, video: bool) -> Tx {
        Tx {
            mid,
            video,
            ssrc: None,
            pt: None,
            seq: 1000,
            ts: 5000,
            counter: 0,
        }
    }
}

struct Media {
    rtc: Rtc,
    udp: UdpSocket,
    local: SocketAddr,
    owner: Option<String>,
    tracks: Vec<Tx>,
    received: Received,
    first_packet: Arc<Mutex<Option<Instant>>>,
    connected: bool,
}

impl Media {
    async fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut frame = 0u64;
        loop {
            let Some(timeout) = self.drain() else {
                return;
            };
            let wait = timeout.saturating_duration_since(Instant::now());
            tokio::select! {
                r = self.udp.recv_from(&mut buf) => {
                    let Ok((n, source)) = r else { continue };
                    let Ok(contents) = (&buf[..n]).try_into() else { continue };
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents,
                    });
                    if self.rtc.handle_input(input).is_err() {
                        return;
                    }
                }
                _ = tick.tick() => {
                    frame += 1;
                    self.send(frame);
                }
                _ = tokio::time::sleep(wait) => {
                    if self.rtc.handle_input(Input::Timeout(Instant::now())).is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Poll str0m until it wants a timeout; `None`: the engine failed.
    fn drain(&mut self) -> Option<Instant> {
        for _ in 0..10_000 {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Some(t),
                Ok(Output::Transmit(t)) => {
                    let _ = self.udp.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => self.on_event(e),
                Err(_) => return None,
            }
        }
        Some(Instant::now())
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => self.connected = true,
            Event::RtpPacket(p) => {
                let mid = self
                    .rtc
                    .direct_api()
                    .stream_rx(&p.header.ssrc)
                    .map(|s| s.mid());
                let video = mid
                    .and_then(|mid| self.rtc.media(mid))
                    .map(|m| m.kind() == MediaKind::Video);
                let Some(video) = video else { return };
                if let Ok(info) = synth::parse_payload(&p.payload, video) {
                    self.first_packet.lock().get_or_insert_with(Instant::now);
                    *self.received.lock().entry((info.owner, video)).or_default() += 1;
                }
            }
            Event::KeyframeRequest(_) => {
                // Every 10th frame is a keyframe anyway.
            }
            _ => {}
        }
    }

    /// One audio packet per track each tick, and a video frame every other tick (25 fps).
    fn send(&mut self, frame: u64) {
        let Some(owner) = self.owner.clone() else {
            return;
        };
        if !self.connected {
            return;
        }
        let now = Instant::now();
        for i in 0..self.tracks.len() {
            let (mid, video) = (self.tracks[i].mid, self.tracks[i].video);
            if video && !frame.is_multiple_of(2) {
                continue;
            }
            if self.tracks[i].ssrc.is_none() {
                self.tracks[i].ssrc = self
                    .rtc
                    .direct_api()
                    .stream_tx_by_mid(mid, None)
                    .map(|s| s.ssrc());
                self.tracks[i].pt = pick_pt(&self.rtc, mid, video);
            }
            let tx = &mut self.tracks[i];
            let (Some(ssrc), Some(pt)) = (tx.ssrc, tx.pt) else {
                continue;
            };
            let position = video.then_some(VideoPosition {
                frame_start: true,
                keyframe: (frame / 2).is_multiple_of(10),
            });
            let payload = synth::build_payload(&owner, position, tx.counter, synth::now_us(), 200);
            let write = RtpWrite::new(pt, tx.seq.into(), tx.ts, now, payload).marker(true);
            tx.counter += 1;
            tx.seq += 1;
            tx.ts = tx.ts.wrapping_add(if video { 3600 } else { 960 });
            if let Some(stream) = self.rtc.direct_api().stream_tx(&ssrc) {
                stream.write_rtp(write);
            }
            let _ = self.drain();
        }
        let _ = self.rtc.handle_input(Input::Timeout(now));
    }
}

/// The negotiated payload type of Opus (audio) or VP8 (video) on `mid`.
fn pick_pt(rtc: &Rtc, mid: Mid, video: bool) -> Option<Pt> {
    let want = if video { Codec::Vp8 } else { Codec::Opus };
    let config = rtc.codec_config();
    rtc.media(mid)?.remote_pts().iter().copied().find(|pt| {
        config
            .find(|p| p.pt() == *pt)
            .is_some_and(|p| p.spec().codec == want)
    })
}
