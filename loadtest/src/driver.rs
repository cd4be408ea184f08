//! The client's task: one `Rtc`, one UDP socket and the signalling WebSocket, driven by a single
//! `select!` loop. Every str0m mutation is followed by a drain of `poll_output` until
//! `Output::Timeout` (str0m's single-mutation rule). The loop ends when the WebSocket closes,
//! when a `leave` completes or times out, or when the [`Client`](crate::Client) handle is gone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use parking_lot::{Mutex, MutexGuard};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpPacket, RtpWrite, Ssrc};
use str0m::{Candidate, Event, Input, Output, Rtc};
use switchboard_protocol::{
    ClientMessage, ErrorCode, MediaKind, RoomMode, ServerMessage, PROTOCOL_VERSION,
};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::ClientError;
use crate::options::{ClientOptions, LEAVE_TIMEOUT};
use crate::stats::{on_corrupt, ClientStats, PacketSample, RecvTracker, SeqWatch, TrackOnSlot};
use crate::synth::{self, VideoPosition};

const AUDIO_PERIOD: Duration = Duration::from_millis(20);
const AUDIO_PAYLOAD: usize = 160;
const AUDIO_TS_STEP: u32 = 960;
const VIDEO_CLOCK: u32 = 90_000;

/// Outputs handled per drain before yielding back to the loop (which resumes right away).
const MAX_DRAIN: usize = 10_000;
/// Longest sleep of the loop when str0m has nothing scheduled.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Bound on one WebSocket send; a server that stops reading is treated as gone.
const WS_SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// After `left` arrived, how long to wait for the server to close the WebSocket.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Local errors kept verbatim (the rest are only counted).
const MAX_LOCAL_ERRORS: usize = 100;
/// Owner recorded for corrupt packets on a mid without an announcement.
const UNKNOWN_OWNER: &str = "?";
/// Datagrams read per wake-up before going back to the `select!` (which costs more than a read).
const UDP_BATCH: usize = 64;
/// WebSocket messages buffered between the reader task and the loop.
const WS_QUEUE: usize = 64;

/// Requests from the [`Client`](crate::Client) handle.
#[derive(Debug)]
pub(crate) enum Command {
    RequestKeyframe(String),
    SendRaw(String),
    Leave(oneshot::Sender<Result<(), ClientError>>),
    /// Close the PeerConnection (DTLS close_notify) but keep the WebSocket open.
    CloseMedia,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type WsError = tokio_tungstenite::tungstenite::Error;

/// The WebSocket's read half runs in its own task. Polling the stream itself in the `select!`
/// would poll it once per datagram, and tungstenite zero-fills its read buffer on every poll:
/// that was a quarter of the load tester's CPU at 200 subscribers.
#[derive(Debug)]
struct WsReader(JoinHandle<()>);

impl WsReader {
    fn spawn(mut stream: SplitStream<Ws>) -> (WsReader, mpsc::Receiver<Result<Message, WsError>>) {
        let (tx, rx) = mpsc::channel(WS_QUEUE);
        let task = tokio::spawn(async move {
            while let Some(m) = stream.next().await {
                let end = m.is_err();
                if tx.send(m).await.is_err() || end {
                    break;
                }
            }
        });
        (WsReader(task), rx)
    }
}

impl Drop for WsReader {
    fn drop(&mut self) {
        self.0.abort();
    }
}
type Ready = oneshot::Sender<Result<String, ClientError>>;

/// One published track.
#[derive(Debug)]
struct TxTrack {
    mid: Mid,
    video: bool,
    ssrc: Option<Ssrc>,
    pt: Option<Pt>,
    /// Extended RTP sequence number; starts below 65 536 (ROC 0).
    seq: u64,
    ts: u32,
    /// Synthetic payload counter.
    counter: u64,
    frames: u64,
    force_keyframe: bool,
}

impl TxTrack {
    fn new(mid: Mid, video: bool) -> Self {
        // Arbitrary but varying starting points, as real senders use.
        let seed = synth::now_us();
        TxTrack {
            mid,
            video,
            ssrc: None,
            pt: None,
            seq: (seed % 30_000) + 1,
            ts: (seed as u32) & 0x00ff_ffff,
            counter: 0,
            frames: 0,
            force_keyframe: false,
        }
    }

    fn ready(&self) -> bool {
        self.ssrc.is_some() && self.pt.is_some()
    }
}

/// Receive state of one of my m-lines.
#[derive(Debug)]
struct RxMid {
    mid_str: String,
    kind: MediaKind,
    seq: SeqWatch,
}

#[derive(Debug)]
struct LeaveState {
    deadline: Instant,
    done: oneshot::Sender<Result<(), ClientError>>,
    left_seen: bool,
}

/// What woke the loop.
enum Wake {
    Cmd(Option<Command>),
    Ws(Option<Result<Message, WsError>>),
    Udp(std::io::Result<(usize, SocketAddr)>, Instant),
    Audio,
    Video,
    Timer,
}

pub(crate) struct Driver {
    rtc: Rtc,
    /// str0m returned an error from `poll_output`: the `Rtc` is not touched any more.
    rtc_dead: bool,
    udp: UdpSocket,
    local_addr: SocketAddr,
    ws: SplitSink<Ws, Message>,
    ws_in: mpsc::Receiver<Result<Message, WsError>>,
    _ws_reader: WsReader,
    ws_open: bool,
    opts: ClientOptions,
    shared: Arc<Mutex<ClientStats>>,
    ready: Option<Ready>,
    peer_id: Option<String>,
    /// Our own offer, waiting for the server's answer.
    pending: Option<SdpPendingOffer>,
    connected: bool,
    left: bool,
    audio: Option<TxTrack>,
    video: Option<TxTrack>,
    rx_ssrcs: HashMap<Ssrc, Mid>,
    rx_mids: HashMap<Mid, RxMid>,
    trackers: HashMap<(String, MediaKind), RecvTracker>,
    next_timeout: Instant,
    leave: Option<LeaveState>,
    finished: bool,
}

impl Driver {
    pub(crate) fn new(
        rtc: Rtc,
        udp: UdpSocket,
        local_addr: SocketAddr,
        ws: Ws,
        opts: ClientOptions,
        shared: Arc<Mutex<ClientStats>>,
        ready: Ready,
    ) -> Self {
        let (ws, read_half) = ws.split();
        let (ws_reader, ws_in) = WsReader::spawn(read_half);
        Driver {
            rtc,
            rtc_dead: false,
            udp,
            local_addr,
            ws,
            ws_in,
            _ws_reader: ws_reader,
            ws_open: true,
            opts,
            shared,
            ready: Some(ready),
            peer_id: None,
            pending: None,
            connected: false,
            left: false,
            audio: None,
            video: None,
            rx_ssrcs: HashMap::new(),
            rx_mids: HashMap::new(),
            trackers: HashMap::new(),
            next_timeout: Instant::now(),
            leave: None,
            finished: false,
        }
    }

    pub(crate) async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Command>) {
        // `add_local_candidate` happened before the task started.
        self.drain();
        let join = ClientMessage::Join {
            room: self.opts.room.clone(),
            name: self.opts.name.clone(),
            peer_id: self.opts.peer_id.clone(),
            mode: RoomMode::Sfu,
            credential: self.opts.credential.clone(),
        };
        match (&self.opts.extra_join_fields, serde_json::to_value(&join)) {
            (Some(serde_json::Value::Object(extra)), Ok(serde_json::Value::Object(mut msg))) => {
                for (k, v) in extra {
                    msg.entry(k.clone()).or_insert_with(|| v.clone());
                }
                self.send_text(serde_json::Value::Object(msg).to_string())
                    .await;
            }
            _ => self.send_msg(&join).await,
        }

        let mut buf = vec![0u8; 2048];
        let mut audio_tick = tokio::time::interval(AUDIO_PERIOD);
        audio_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let fps = self
            .opts
            .video
            .as_ref()
            .map_or(30, |v| v.fps.clamp(1, 1000));
        let mut video_tick = tokio::time::interval(Duration::from_secs(1) / fps);
        video_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);

        while !self.finished {
            self.handle_due_timeout();
            let wake_at = self.wake_at();
            let audio_on = self.sending(self.audio.as_ref());
            let video_on = self.sending(self.video.as_ref());
            let wake = tokio::select! {
                c = cmds.recv() => Wake::Cmd(c),
                m = self.ws_in.recv() => Wake::Ws(m),
                r = self.udp.recv_from(&mut buf) => Wake::Udp(r, Instant::now()),
                _ = audio_tick.tick(), if audio_on => Wake::Audio,
                _ = video_tick.tick(), if video_on => Wake::Video,
                _ = tokio::time::sleep_until(wake_at.into()) => Wake::Timer,
            };
            match wake {
                // The Client handle is gone.
                Wake::Cmd(None) => break,
                Wake::Cmd(Some(c)) => self.on_command(c).await,
                Wake::Ws(None) => self.on_ws_closed(),
                Wake::Ws(Some(Err(e))) => {
                    self.local_error(format!("WebSocket: {e}"));
                    self.on_ws_closed();
                }
                Wake::Ws(Some(Ok(m))) => self.on_ws_message(m).await,
                Wake::Udp(Ok((n, source)), at) => {
                    self.on_datagram(&buf[..n], source, at);
                    // More are often queued (a video frame is a burst): read them now.
                    for _ in 0..UDP_BATCH {
                        match self.udp.try_recv_from(&mut buf) {
                            Ok((n, source)) => self.on_datagram(&buf[..n], source, Instant::now()),
                            Err(_) => break,
                        }
                    }
                }
                Wake::Udp(Err(e), _) => {
                    self.local_error(format!("UDP receive: {e}"));
                    // Don't spin on a persistent socket error.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Wake::Audio => self.send_audio(),
                Wake::Video => self.send_video(),
                Wake::Timer => {}
            }
            self.check_leave_deadline();
        }
        self.finish().await;
    }

    // ---------------------------------------------------------------- loop plumbing

    fn wake_at(&self) -> Instant {
        let mut at = Instant::now() + MAX_IDLE;
        if !self.rtc_dead {
            at = at.min(self.next_timeout);
        }
        if let Some(l) = &self.leave {
            at = at.min(l.deadline);
        }
        at
    }

    fn sending(&self, track: Option<&TxTrack>) -> bool {
        self.connected
            && !self.rtc_dead
            && !self.left
            && self.peer_id.is_some()
            && track.is_some_and(TxTrack::ready)
    }

    fn handle_due_timeout(&mut self) {
        if self.rtc_dead {
            return;
        }
        let now = Instant::now();
        if self.next_timeout <= now {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                self.local_error(format!("str0m timeout: {e}"));
            }
            self.drain();
        }
    }

    /// Drain str0m until it asks for a timeout. Must follow every mutation.
    fn drain(&mut self) {
        if self.rtc_dead {
            return;
        }
        for _ in 0..MAX_DRAIN {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    // A full socket buffer drops the datagram, like the network would.
                    let _ = self.udp.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    self.local_error(format!("str0m poll_output failed, media stopped: {e}"));
                    self.rtc_dead = true;
                    return;
                }
            }
        }
        // Still more output: come back right away.
        self.next_timeout = Instant::now();
    }

    fn check_leave_deadline(&mut self) {
        let expired = self
            .leave
            .as_ref()
            .is_some_and(|l| Instant::now() >= l.deadline);
        if expired {
            self.finished = true;
        }
    }

    fn on_ws_closed(&mut self) {
        self.ws_open = false;
        self.finished = true;
    }

    async fn finish(mut self) {
        if !self.rtc_dead {
            self.rtc.disconnect();
            self.drain();
        }
        if self.ws_open {
            let _ = tokio::time::timeout(Duration::from_millis(500), self.ws.close()).await;
        }
        self.stats().closed = true;
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(ClientError::Closed));
        }
        if let Some(leave) = self.leave.take() {
            // Done when `left` arrived or the server closed the WebSocket.
            let result = if leave.left_seen || !self.ws_open {
                Ok(())
            } else {
                Err(ClientError::Timeout {
                    what: "left".into(),
                    details: self.stats().summary(),
                })
            };
            let _ = leave.done.send(result);
        }
    }

    fn stats(&self) -> MutexGuard<'_, ClientStats> {
        self.shared.lock()
    }

    fn local_error(&self, msg: String) {
        tracing::debug!(peer = ?self.peer_id, "{msg}");
        let mut s = self.stats();
        s.local_error_count += 1;
        if s.local_errors.len() < MAX_LOCAL_ERRORS {
            s.local_errors.push(msg);
        }
    }

    /// Fail `join` (if still waiting) with `e`.
    fn fail_ready(&mut self, e: ClientError) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(e));
        }
    }

    // ---------------------------------------------------------------- commands

    async fn on_command(&mut self, c: Command) {
        match c {
            Command::RequestKeyframe(mid) => self.request_keyframe(&mid),
            Command::SendRaw(text) => self.send_text(text).await,
            Command::CloseMedia => {
                if !self.rtc_dead {
                    if let Err(e) = self.rtc.close() {
                        self.local_error(format!("closing the media connection: {e}"));
                    }
                    // Flush the close alerts, then stop driving the engine.
                    self.drain();
                    self.rtc_dead = true;
                }
            }
            Command::Leave(done) => {
                if self.leave.is_some() {
                    let _ = done.send(Err(ClientError::Protocol("already leaving".into())));
                    return;
                }
                self.leave = Some(LeaveState {
                    deadline: Instant::now() + LEAVE_TIMEOUT,
                    done,
                    left_seen: false,
                });
                self.send_msg(&ClientMessage::Leave {}).await;
            }
        }
    }

    fn request_keyframe(&mut self, mid: &str) {
        if self.rtc_dead {
            return;
        }
        let found = match self.rtc.direct_api().stream_rx_by_mid(Mid::from(mid), None) {
            Some(rx) => {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                true
            }
            None => false,
        };
        self.drain();
        if !found {
            self.local_error(format!("request_keyframe: nothing received on mid {mid}"));
        }
    }

    // ---------------------------------------------------------------- signalling

    async fn send_msg(&mut self, msg: &ClientMessage) {
        match serde_json::to_string(msg) {
            Ok(text) => self.send_text(text).await,
            Err(e) => self.local_error(format!("serialize {}: {e}", msg.kind())),
        }
    }

    async fn send_text(&mut self, text: String) {
        if !self.ws_open {
            return;
        }
        match tokio::time::timeout(WS_SEND_TIMEOUT, self.ws.send(Message::text(text))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.local_error(format!("WebSocket send: {e}"));
                self.on_ws_closed();
            }
            Err(_) => {
                self.local_error("WebSocket send timed out".into());
                self.on_ws_closed();
            }
        }
    }

    async fn on_ws_message(&mut self, m: Message) {
        match m {
            Message::Text(text) => match serde_json::from_str::<ServerMessage>(text.as_str()) {
                Ok(msg) => self.on_server_message(msg).await,
                Err(e) => {
                    let head: String = text.as_str().chars().take(200).collect();
                    self.local_error(format!("unparseable server message ({e}): {head}"));
                }
            },
            Message::Binary(b) => {
                self.local_error(format!("unexpected binary frame of {} bytes", b.len()));
            }
            Message::Close(_) => self.on_ws_closed(),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    async fn on_server_message(&mut self, msg: ServerMessage) {
        match msg {
            ServerMessage::Joined {
                protocol_version,
                peer_id,
                members,
                ..
            } => {
                if self.peer_id.is_some() {
                    self.local_error("a second joined".into());
                    return;
                }
                if protocol_version != PROTOCOL_VERSION {
                    self.local_error(format!(
                        "server speaks protocol {protocol_version}, client {PROTOCOL_VERSION}"
                    ));
                }
                {
                    let mut s = self.stats();
                    s.peer_id = peer_id.clone();
                    for m in members.into_iter().filter(|m| m.peer_id != peer_id) {
                        s.members.insert(m.peer_id, m.name);
                    }
                }
                self.peer_id = Some(peer_id);
                self.send_first_offer().await;
            }
            ServerMessage::Answer { sdp } => self.on_answer(&sdp),
            ServerMessage::Offer { sdp } => self.on_server_offer(&sdp).await,
            ServerMessage::Candidate { candidate, .. } => self.on_candidate(&candidate),
            ServerMessage::PeerJoined { peer } => {
                if Some(&peer.peer_id) != self.peer_id.as_ref() {
                    self.stats().members.insert(peer.peer_id, peer.name);
                }
            }
            ServerMessage::PeerLeft { peer_id } => {
                let mut s = self.stats();
                s.members.remove(&peer_id);
                s.peers_left.push(peer_id);
            }
            ServerMessage::TrackPublished {
                track,
                peer_id,
                mid,
                stream_id,
            } => {
                let slot = TrackOnSlot {
                    peer_id,
                    track_id: track.track_id,
                    kind: track.kind,
                    stream_id,
                };
                let mut s = self.stats();
                s.slots.insert(mid.clone(), Some(slot.clone()));
                s.track_history.push((mid, slot));
            }
            ServerMessage::TrackUnpublished {
                track_id,
                peer_id,
                mid,
            } => {
                let mismatch = {
                    let mut s = self.stats();
                    s.unpublished.push((track_id.clone(), peer_id));
                    match s.slots.get_mut(&mid) {
                        Some(slot @ Some(_))
                            if slot.as_ref().is_some_and(|t| t.track_id == track_id) =>
                        {
                            *slot = None;
                            None
                        }
                        other => Some(format!("{other:?}")),
                    }
                };
                if let Some(current) = mismatch {
                    self.local_error(format!(
                        "trackUnpublished {track_id} on mid {mid}, which carries {current}"
                    ));
                }
            }
            ServerMessage::Left { reason } => {
                self.stats().left_reason = Some(reason);
                self.left = true;
                if let Some(l) = &mut self.leave {
                    l.left_seen = true;
                    l.deadline = l.deadline.min(Instant::now() + CLOSE_GRACE);
                }
            }
            ServerMessage::Error { code, message, .. } => {
                self.stats().errors.push((code, message.clone()));
                if self.ready.is_some() && code != ErrorCode::NoPendingOffer {
                    self.fail_ready(ClientError::Rejected { code, message });
                }
            }
            // Data messages, mutes, credential renewals, draining: nothing the synthetic
            // client acts on.
            other => tracing::debug!(peer = ?self.peer_id, kind = ?other, "ignored"),
        }
    }

    async fn send_first_offer(&mut self) {
        if self.rtc_dead {
            self.fail_ready(ClientError::Protocol(
                "str0m failed before the offer".into(),
            ));
            return;
        }
        let peer = self.peer_id.clone().unwrap_or_default();
        let opts = &self.opts;
        let mut api = self.rtc.sdp_api();
        let audio_mid = opts.audio.then(|| {
            api.add_media(
                str0m::media::MediaKind::Audio,
                Direction::SendOnly,
                Some(peer.clone()),
                Some(format!("{peer}-audio")),
                None,
            )
        });
        let video_mid = opts.video.is_some().then(|| {
            api.add_media(
                str0m::media::MediaKind::Video,
                Direction::SendOnly,
                Some(peer.clone()),
                Some(format!("{peer}-video")),
                None,
            )
        });
        let slots = [
            (str0m::media::MediaKind::Audio, opts.recv_audio_slots),
            (str0m::media::MediaKind::Video, opts.recv_video_slots),
        ];
        for (kind, count) in slots {
            for _ in 0..count {
                api.add_media(kind, Direction::RecvOnly, None, None, None);
            }
        }
        let applied = api.apply();
        self.drain();
        let Some((offer, pending)) = applied else {
            self.fail_ready(ClientError::Protocol(
                "nothing to offer: publish audio/video or pre-create receive slots".into(),
            ));
            return;
        };
        self.audio = audio_mid.map(|mid| TxTrack::new(mid, false));
        self.video = video_mid.map(|mid| TxTrack::new(mid, true));
        self.pending = Some(pending);
        let sdp = offer.to_sdp_string();
        self.send_msg(&ClientMessage::Offer { sdp }).await;
    }

    fn on_answer(&mut self, sdp: &str) {
        let Some(pending) = self.pending.take() else {
            self.local_error("answer without an outstanding offer".into());
            return;
        };
        let result = match SdpAnswer::from_sdp_string(sdp) {
            Ok(answer) => self
                .rtc
                .sdp_api()
                .accept_answer(pending, answer)
                .map_err(|e| format!("accept_answer: {e}")),
            Err(e) => Err(format!("unparseable answer SDP: {e}")),
        };
        self.drain();
        match result {
            Ok(()) => {
                self.stats().mline_count = count_mlines(sdp);
                self.setup_tx();
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(self.peer_id.clone().unwrap_or_default()));
                }
            }
            Err(e) => {
                self.local_error(e.clone());
                self.fail_ready(ClientError::Protocol(e));
            }
        }
    }

    async fn on_server_offer(&mut self, sdp: &str) {
        self.stats().server_offers += 1;
        if self.pending.is_some() {
            // Glare: we are the impolite peer, the server re-offers after answering us.
            self.stats().glare_ignored += 1;
            return;
        }
        if self.rtc_dead {
            return;
        }
        let result = match SdpOffer::from_sdp_string(sdp) {
            Ok(offer) => self
                .rtc
                .sdp_api()
                .accept_offer(offer)
                .map_err(|e| format!("accept_offer: {e}")),
            Err(e) => Err(format!("unparseable offer SDP: {e}")),
        };
        self.drain();
        match result {
            Ok(answer) => {
                self.stats().mline_count = count_mlines(sdp);
                self.setup_tx();
                let sdp = answer.to_sdp_string();
                self.send_msg(&ClientMessage::Answer { sdp }).await;
                self.stats().answers_sent += 1;
            }
            Err(e) => self.local_error(e),
        }
    }

    fn on_candidate(&mut self, candidate: &str) {
        let c = candidate.trim();
        let c = c.strip_prefix("a=").unwrap_or(c);
        if c.is_empty() || self.rtc_dead {
            return; // end of candidates
        }
        match Candidate::from_sdp_string(c) {
            Ok(cand) => {
                self.rtc.add_remote_candidate(cand);
                self.drain();
            }
            Err(e) => self.local_error(format!("server candidate {c:?}: {e}")),
        }
    }

    /// After a negotiation: find the send streams and payload types of the published tracks.
    fn setup_tx(&mut self) {
        for video in [false, true] {
            let track = if video {
                &mut self.video
            } else {
                &mut self.audio
            };
            let Some(track) = track.as_mut() else {
                continue;
            };
            if track.ssrc.is_none() {
                track.ssrc = self
                    .rtc
                    .direct_api()
                    .stream_tx_by_mid(track.mid, None)
                    .map(|s| s.ssrc());
            }
            track.pt = pick_pt(&self.rtc, track.mid, track.video);
        }
    }

    // ---------------------------------------------------------------- media in

    fn on_datagram(&mut self, buf: &[u8], source: SocketAddr, at: Instant) {
        if self.rtc_dead {
            return;
        }
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local_addr, buf) else {
            return; // not STUN/DTLS/RTP: the network's noise, not str0m's business
        };
        if let Err(e) = self.rtc.handle_input(Input::Receive(at, receive)) {
            self.local_error(format!("str0m receive: {e}"));
        }
        self.drain();
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                self.connected = true;
                self.stats().connected = true;
            }
            Event::IceConnectionStateChange(state) => {
                self.stats().ice_state = format!("{state:?}");
            }
            Event::RtpPacket(p) => self.on_rtp(p),
            Event::KeyframeRequest(r) => {
                self.stats().keyframe_requests += 1;
                if let Some(v) = self.video.as_mut().filter(|v| v.mid == r.mid) {
                    v.force_keyframe = true;
                }
            }
            _ => {}
        }
    }

    fn on_rtp(&mut self, p: RtpPacket) {
        let ssrc = p.header.ssrc;
        let mid = match self.rx_ssrcs.get(&ssrc) {
            Some(mid) => Some(*mid),
            None => {
                let mid = self.rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid());
                if let Some(mid) = mid {
                    self.rx_ssrcs.insert(ssrc, mid);
                }
                mid
            }
        };
        let Some(mid) = mid else {
            self.stats().unknown_ssrc += 1;
            return;
        };
        if !self.rx_mids.contains_key(&mid) {
            let Some(kind) = self.rtc.media(mid).map(|m| m.kind()) else {
                self.stats().unknown_ssrc += 1;
                return;
            };
            let kind = match kind {
                str0m::media::MediaKind::Audio => MediaKind::Audio,
                str0m::media::MediaKind::Video => MediaKind::Video,
            };
            let rx = RxMid {
                mid_str: mid.to_string(),
                kind,
                seq: SeqWatch::default(),
            };
            self.rx_mids.insert(mid, rx);
        }
        let Some(rx) = self.rx_mids.get_mut(&mid) else {
            return;
        };
        let seq_gap = rx.seq.observe(p.header.sequence_number);
        let kind = rx.kind;
        let video = kind == MediaKind::Video;
        let parsed = synth::parse_payload(&p.payload, video);

        let mut guard = self.shared.lock();
        let s = &mut *guard;
        match s.mid_packets.get_mut(&rx.mid_str) {
            Some(n) => *n += 1,
            None => {
                s.mid_packets.insert(rx.mid_str.clone(), 1);
            }
        }
        let announced = s
            .slots
            .get(&rx.mid_str)
            .and_then(|t| t.as_ref())
            .map(|t| t.peer_id.as_str());
        match parsed {
            Ok(info) => {
                if announced.is_some_and(|a| a != info.owner) {
                    s.wrong_owner += 1;
                }
                let now_us = synth::now_us();
                let sample = PacketSample {
                    counter: info.counter,
                    seq_gap,
                    keyframe: info.keyframe,
                    bytes: p.payload.len(),
                    latency_us: now_us.saturating_sub(info.sent_us).min(u32::MAX as u64) as u32,
                    at: p.timestamp,
                };
                let key = (info.owner, kind);
                // Look up before inserting: the key is cloned only for a new track.
                if !s.received.contains_key(&key) {
                    s.received.insert(key.clone(), Default::default());
                }
                if !self.trackers.contains_key(&key) {
                    self.trackers.insert(key.clone(), RecvTracker::default());
                }
                if let (Some(stats), Some(tracker)) =
                    (s.received.get_mut(&key), self.trackers.get_mut(&key))
                {
                    tracker.on_packet(stats, &sample);
                }
            }
            Err(_) => {
                let owner = announced.unwrap_or(UNKNOWN_OWNER).to_owned();
                let stats = s.received.entry((owner, kind)).or_default();
                on_corrupt(stats, p.payload.len(), seq_gap, p.timestamp);
            }
        }
    }

    // ---------------------------------------------------------------- media out

    fn send_audio(&mut self) {
        let (Some(peer), Some(tx)) = (self.peer_id.as_deref(), self.audio.as_mut()) else {
            return;
        };
        let (Some(ssrc), Some(pt)) = (tx.ssrc, tx.pt) else {
            return;
        };
        let now = Instant::now();
        let payload = synth::build_payload(peer, None, tx.counter, synth::now_us(), AUDIO_PAYLOAD);
        let write = RtpWrite::new(pt, tx.seq.into(), tx.ts, now, payload);
        tx.counter += 1;
        tx.seq += 1;
        tx.ts = tx.ts.wrapping_add(AUDIO_TS_STEP);
        self.write(ssrc, vec![write], now);
    }

    fn send_video(&mut self) {
        let Some(vopts) = self.opts.video.as_ref() else {
            return;
        };
        let (Some(peer), Some(tx)) = (self.peer_id.as_deref(), self.video.as_mut()) else {
            return;
        };
        let (Some(ssrc), Some(pt)) = (tx.ssrc, tx.pt) else {
            return;
        };
        let keyframe = tx.frames == 0
            || tx.force_keyframe
            || (vopts.keyframe_interval > 0 && tx.frames % u64::from(vopts.keyframe_interval) == 0);
        tx.force_keyframe = false;
        let now = Instant::now();
        let n = vopts.packets_per_frame.max(1);
        let mut writes = Vec::with_capacity(n as usize);
        for i in 0..n {
            let pos = VideoPosition {
                frame_start: i == 0,
                keyframe,
            };
            let payload = synth::build_payload(
                peer,
                Some(pos),
                tx.counter,
                synth::now_us(),
                vopts.packet_size,
            );
            let write = RtpWrite::new(pt, tx.seq.into(), tx.ts, now, payload)
                .marker(i + 1 == n)
                .nackable(true);
            writes.push(write);
            tx.counter += 1;
            tx.seq += 1;
        }
        tx.frames += 1;
        tx.ts = tx.ts.wrapping_add(VIDEO_CLOCK / vopts.fps.clamp(1, 1000));
        {
            let mut s = self.stats();
            s.sent_frames += 1;
            s.sent_keyframes += u64::from(keyframe);
        }
        self.write(ssrc, writes, now);
    }

    /// Hand packets to str0m (draining after each), then one timeout pass to send them.
    fn write(&mut self, ssrc: Ssrc, writes: Vec<RtpWrite>, now: Instant) {
        if self.rtc_dead {
            return;
        }
        let mut written = 0u64;
        for w in writes {
            match self.rtc.direct_api().stream_tx(&ssrc) {
                Some(stream) => {
                    stream.write_rtp(w);
                    written += 1;
                }
                None => break,
            }
            self.drain();
        }
        self.stats().sent_packets += written;
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.local_error(format!("str0m timeout after write: {e}"));
        }
        self.drain();
    }
}

/// The payload type to send on `mid`: the first negotiated PT of the wanted codec (Opus for
/// audio, VP8 for video), else the session's configured one.
fn pick_pt(rtc: &Rtc, mid: Mid, video: bool) -> Option<Pt> {
    let want = if video { Codec::Vp8 } else { Codec::Opus };
    let config = rtc.codec_config();
    let is_wanted = |pt: Pt| {
        config
            .find(|p| p.pt() == pt)
            .is_some_and(|p| p.spec().codec == want)
    };
    rtc.media(mid)
        .and_then(|m| m.remote_pts().iter().copied().find(|pt| is_wanted(*pt)))
        .or_else(|| config.find(|p| p.spec().codec == want).map(|p| p.pt()))
}

/// Number of m-lines in an SDP.
pub(crate) fn count_mlines(sdp: &str) -> usize {
    sdp.lines().filter(|l| l.starts_with("m=")).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_mlines() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\n";
        assert_eq!(count_mlines(sdp), 3);
        assert_eq!(count_mlines(""), 0);
    }

    #[test]
    fn offer_has_the_requested_mlines_and_payload_types() {
        let mut rtc = crate::options::rtc_config().build(Instant::now());
        let mut api = rtc.sdp_api();
        let a = api.add_media(
            str0m::media::MediaKind::Audio,
            Direction::SendOnly,
            None,
            None,
            None,
        );
        let v = api.add_media(
            str0m::media::MediaKind::Video,
            Direction::SendOnly,
            None,
            None,
            None,
        );
        api.add_media(
            str0m::media::MediaKind::Video,
            Direction::RecvOnly,
            None,
            None,
            None,
        );
        let (offer, _pending) = api.apply().expect("an offer");
        let sdp = offer.to_sdp_string();
        assert_eq!(count_mlines(&sdp), 3);
        let opus = pick_pt(&rtc, a, false).expect("opus pt");
        let vp8 = pick_pt(&rtc, v, true).expect("vp8 pt");
        let codec = |pt: Pt| {
            rtc.codec_config()
                .find(|p| p.pt() == pt)
                .map(|p| p.spec().codec)
        };
        assert_eq!(codec(opus), Some(Codec::Opus));
        assert_eq!(codec(vp8), Some(Codec::Vp8));
    }
}
