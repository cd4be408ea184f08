//! The client's task: one `Rtc`, one UDP socket and the signalling WebSocket, driven by a single
//! `select!` loop. Every str0m mutation is followed by a drain of `poll_output` until
//! `Output::Timeout` (str0m's single-mutation rule). The loop ends when the WebSocket closes,
//! when a `leave` completes or times out, or when the [`Client`](crate::Client) handle is gone.
//!
//! This file holds the loop and its plumbing; the jobs it dispatches to are split by what they
//! touch: `signalling.rs` (the WebSocket and SDP), `media_in.rs` (datagrams in, receive
//! accounting) and `media_out.rs` (the synthetic tracks this client publishes); `timeouts.rs`
//! says when str0m is owed a timeout.

mod data;
mod media_in;
mod media_out;
mod signalling;
mod tcp_link;
mod timeouts;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use parking_lot::{Mutex, MutexGuard};
use str0m::change::SdpPendingOffer;
use str0m::media::{KeyframeRequestKind, Mid, Pt};
use str0m::net::Protocol;
use str0m::rtp::Ssrc;
use str0m::{Input, Output, Rtc};
use switchboard_protocol::{ClientMessage, MediaKind, RoomMode};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;

use crate::error::ClientError;
use crate::options::{ClientOptions, LEAVE_TIMEOUT};
use crate::stats::{ClientStats, RecvTracker};
use media_in::RxMid;
use media_out::{TxTrack, AUDIO_PERIOD};
use signalling::{Ws, WsError, WsReader};
use timeouts::TimeoutClock;

/// Outputs handled per drain before yielding back to the loop (which resumes right away).
const MAX_DRAIN: usize = 10_000;
/// Longest sleep of the loop when nothing is scheduled (str0m's own floor is
/// [`TIMEOUT_FLOOR`](timeouts::TIMEOUT_FLOOR)).
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Local errors kept verbatim (the rest are only counted).
const MAX_LOCAL_ERRORS: usize = 100;
/// Datagrams read per wake-up before going back to the `select!` (which costs more than a read).
const UDP_BATCH: usize = 64;

/// Requests from the [`Client`](crate::Client) handle.
#[derive(Debug)]
pub(crate) enum Command {
    RequestKeyframe(String),
    SendRaw(String),
    /// Lose the signalling connection without a word (media goes on), as a network blip would.
    DropSignalling,
    /// Open a new signalling connection and `resume` the session on it.
    Resume(oneshot::Sender<Result<(), ClientError>>),
    Leave(oneshot::Sender<Result<(), ClientError>>),
    /// Close the PeerConnection (DTLS close_notify) but keep the WebSocket open.
    CloseMedia,
}

type Ready = oneshot::Sender<Result<String, ClientError>>;

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
    Tcp(Option<(SocketAddr, Vec<u8>)>),
    Audio,
    Video,
    Data,
    Timer,
}

pub(crate) struct Driver {
    rtc: Rtc,
    /// str0m returned an error from `poll_output`: the `Rtc` is not touched any more.
    rtc_dead: bool,
    udp: UdpSocket,
    /// ICE-TCP connections to the server (`ClientOptions::ice_tcp`).
    tcp: Option<tcp_link::TcpLink>,
    local_addr: SocketAddr,
    ws: Option<SplitSink<Ws, Message>>,
    ws_in: mpsc::Receiver<Result<Message, WsError>>,
    ws_reader: Option<WsReader>,
    ws_open: bool,
    /// The signalling connection was dropped on purpose; the session waits for a resume.
    detached: bool,
    /// The resume in progress: answered when `resumed` (or an error) arrives.
    resuming: Option<oneshot::Sender<Result<(), ClientError>>>,
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
    /// The payload type of received RED audio ([`crate::red`]); `None` without RED.
    red_rx_pt: Option<Pt>,
    trackers: HashMap<(String, MediaKind), RecvTracker>,
    /// When str0m is next owed an `Input::Timeout`: at its deadline, and at least every
    /// [`TIMEOUT_FLOOR`](timeouts::TIMEOUT_FLOOR).
    timeouts: TimeoutClock,
    leave: Option<LeaveState>,
    finished: bool,
    /// The relayed data channel (`ClientOptions::data`).
    data: data::DataTx,
    /// Forged transport-wide-cc numbers to stamp on published packets (robustness tests).
    forged: Option<crate::forged::ForgedSequence>,
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
        let forged = opts
            .forged_twcc
            .clone()
            .map(crate::forged::ForgedSequence::new);
        Driver {
            forged,
            rtc,
            rtc_dead: false,
            tcp: opts.ice_tcp.then(tcp_link::TcpLink::spawn),
            udp,
            local_addr,
            ws: Some(ws),
            ws_in,
            ws_reader: Some(ws_reader),
            ws_open: true,
            detached: false,
            resuming: None,
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
            red_rx_pt: None,
            trackers: HashMap::new(),
            timeouts: TimeoutClock::new(Instant::now()),
            leave: None,
            finished: false,
            data: data::DataTx::default(),
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
            auto_subscribe: self.opts.auto_subscribe,
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
        let data_rate = self.opts.data.map_or(1, |d| d.per_second);
        let mut data_tick = tokio::time::interval(data::period(data_rate));
        data_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);

        while !self.finished {
            self.handle_due_timeout();
            let wake_at = self.wake_at();
            let audio_on = self.sending(self.audio.as_ref());
            let video_on = self.sending(self.video.as_ref());
            let data_on = self.sending_data();
            let wake = tokio::select! {
                c = cmds.recv() => Wake::Cmd(c),
                // Off while the signalling connection is dropped on purpose (resume test).
                m = self.ws_in.recv(), if self.ws_open => Wake::Ws(m),
                r = self.udp.recv_from(&mut buf) => Wake::Udp(r, Instant::now()),
                f = next_frame(&mut self.tcp) => Wake::Tcp(f),
                _ = audio_tick.tick(), if audio_on => Wake::Audio,
                _ = video_tick.tick(), if video_on => Wake::Video,
                _ = data_tick.tick(), if data_on => Wake::Data,
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
                    self.on_datagram(Protocol::Udp, &buf[..n], source, at);
                    // More are often queued (a video frame is a burst): read them now.
                    for _ in 0..UDP_BATCH {
                        match self.udp.try_recv_from(&mut buf) {
                            Ok((n, source)) => {
                                self.on_datagram(Protocol::Udp, &buf[..n], source, Instant::now())
                            }
                            Err(_) => break,
                        }
                    }
                }
                Wake::Tcp(Some((source, frame))) => {
                    self.on_datagram(Protocol::Tcp, &frame, source, Instant::now())
                }
                Wake::Tcp(None) => {
                    self.local_error("the ICE-TCP link ended".into());
                    self.tcp = None;
                }
                Wake::Udp(Err(e), _) => {
                    self.local_error(format!("UDP receive: {e}"));
                    // Don't spin on a persistent socket error.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Wake::Audio => self.send_audio(),
                Wake::Video => self.send_video(),
                Wake::Data => self.send_data(),
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
            at = at.min(self.timeouts.due_at());
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
        if self.timeouts.is_due(now) {
            self.feed_timeout(now, "str0m timeout");
        }
    }

    /// Hand str0m `Input::Timeout(now)` and drain; `what` names the caller in the error.
    fn feed_timeout(&mut self, now: Instant, what: &str) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.local_error(format!("{what}: {e}"));
        }
        self.timeouts.fed(now);
        self.drain();
    }

    /// Drain str0m until it asks for a timeout. Must follow every mutation.
    fn drain(&mut self) {
        if self.rtc_dead {
            return;
        }
        for _ in 0..MAX_DRAIN {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeouts.request(t);
                    return;
                }
                Ok(Output::Transmit(t)) => match (&self.tcp, t.proto) {
                    (Some(link), Protocol::Tcp) => {
                        link.send(t.destination, t.contents.into());
                    }
                    (None, Protocol::Tcp) => {}
                    // A full socket buffer drops the datagram, like the network would.
                    _ => {
                        let _ = self.udp.try_send_to(&t.contents, t.destination);
                    }
                },
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    self.local_error(format!("str0m poll_output failed, media stopped: {e}"));
                    self.rtc_dead = true;
                    return;
                }
            }
        }
        // Still more output: come back right away.
        self.timeouts.request(Instant::now());
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
        if !self.detached {
            self.finished = true;
        }
    }

    async fn finish(mut self) {
        if !self.rtc_dead {
            self.rtc.disconnect();
            self.drain();
        }
        if let (true, Some(ws)) = (self.ws_open, self.ws.as_mut()) {
            let _ = tokio::time::timeout(Duration::from_millis(500), ws.close()).await;
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
            Command::DropSignalling => {
                // No close frame: the TCP connection just goes away, reader and writer both.
                self.detached = true;
                self.ws_open = false;
                self.ws = None;
                self.ws_reader = None;
                let (_, closed) = mpsc::channel(1);
                self.ws_in = closed;
            }
            Command::Resume(done) => self.resume(done).await,
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
}

/// The next frame of the ICE-TCP link, or never without one.
async fn next_frame(tcp: &mut Option<tcp_link::TcpLink>) -> Option<(SocketAddr, Vec<u8>)> {
    match tcp {
        Some(link) => link.frames.recv().await,
        None => std::future::pending().await,
    }
}
