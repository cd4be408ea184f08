//! The fuzz targets' world: one `Shard` and str0m clients exchanging datagrams in memory on a
//! virtual clock, signalling going straight into `Command`s the way the control plane sends
//! them (SDP and candidates screened and parsed first, as the session task does).
//!
//! Everything here is deterministic except str0m's own randomness (ICE credentials, DTLS
//! keys, SSRCs), so a crash input reproduces the path, not necessarily every byte on it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};
use switchboard_core::screen::{screen_answer, screen_candidate, screen_offer, SdpLimits};
use switchboard_core::{Command, ParticipantId, RtcTemplate, Shard, ShardConfig};
use switchboard_protocol::{LeaveReason, ServerMessage};

/// Where the shard says it listens.
pub const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);
const STEP: Duration = Duration::from_millis(5);

/// A client of the simulated world.
pub struct Client {
    pub pid: ParticipantId,
    pub rtc: Rtc,
    pub addr: SocketAddr,
    /// The ufrag of the server's engine for this participant (the first half of the USERNAME
    /// in the client's STUN checks).
    pub server_ufrag: String,
    pending: Option<SdpPendingOffer>,
    deadline: Instant,
    pub connected: bool,
    pub removed: bool,
    pub audio_mid: Option<Mid>,
    pub video_mid: Option<Mid>,
    /// Forges transport-cc numbers (see `loadtest/src/forged.rs`).
    forging: bool,
    /// The last server offer this client was sent (answered or held).
    pub last_server_offer: Option<String>,
    /// Leave server offers unanswered: the `sdp_answer` target answers them itself.
    pub hold_offers: bool,
}

/// The shard, its clients and the network between them.
pub struct World {
    pub now: Instant,
    pub shard: Shard,
    pub clients: Vec<Client>,
    template: RtcTemplate,
    to_server: VecDeque<(SocketAddr, Vec<u8>)>,
    shard_deadline: Instant,
    next_pid: u64,
}

/// The load tester's transport-cc forging (a private extension on transport-cc's id, renamed in
/// the SDP), included from its source rather than depending on the load tester and its runtime.
#[path = "../../loadtest/src/forged.rs"]
// The load tester's own sequence generator (`ForgedSequence`) is unused here: the fuzzer takes
// its numbers from the fuzz input.
#[allow(dead_code)]
mod forged;
pub use forged::ForgedSeq;

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        let now = Instant::now();
        World {
            now,
            shard: Shard::new(
                {
                    // Reached over UDP and ICE-TCP, as a node with a `tcp_port` is.
                    let mut config = ShardConfig::new(SERVER);
                    config
                        .advertised
                        .push((switchboard_core::Transport::Tcp, SERVER));
                    config
                },
                now,
            ),
            clients: Vec::new(),
            template: RtcTemplate::new().expect("the crypto provider makes certificates"),
            to_server: VecDeque::new(),
            shard_deadline: now,
            next_pid: 1,
        }
    }

    /// Join `room` with a server engine only (no client engine behind it: the fuzzer speaks for
    /// the client). Returns the participant and its server ufrag.
    pub fn join_bare(&mut self, room: &str) -> (ParticipantId, String) {
        let pid = ParticipantId(self.next_pid);
        self.next_pid += 1;
        let new = self
            .template
            .build(self.now, &self.shard.config().advertised.clone())
            .expect("server engine");
        let ufrag = new.ufrag.clone();
        self.command(Command::Join {
            participant: pid,
            room: room.into(),
            peer_id: format!("peer{}", pid.0),
            name: format!("peer{}", pid.0),
            rtc: Box::new(new),
            auto_subscribe: true,
            resume_token: None,
            server_offers: true,
        });
        (pid, ufrag)
    }

    /// Remove a participant joined with [`World::join_bare`].
    pub fn leave_bare(&mut self, pid: ParticipantId) {
        self.command(Command::Leave {
            participant: pid,
            reason: LeaveReason::Requested,
        });
    }

    /// Join `room` as a new participant and return the client's index and its first offer
    /// (not sent yet): audio+video send-only when `publish`, one receive-only audio otherwise.
    pub fn join(&mut self, room: &str, publish: bool, forging: bool) -> (usize, String) {
        let pid = ParticipantId(self.next_pid);
        self.next_pid += 1;
        let addr = SocketAddr::new(SERVER.ip(), 41000 + pid.0 as u16);
        let new = self
            .template
            .build(self.now, &self.shard.config().advertised.clone())
            .expect("server engine");
        let server_ufrag = new.ufrag.clone();
        self.command(Command::Join {
            participant: pid,
            room: room.into(),
            peer_id: format!("peer{}", pid.0),
            name: format!("peer{}", pid.0),
            rtc: Box::new(new),
            auto_subscribe: true,
            resume_token: None,
            server_offers: true,
        });
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true);
        if forging {
            config = forged::forging_config(config);
        }
        let mut rtc = config.build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
        let mut api = rtc.sdp_api();
        let (audio_mid, video_mid) = if publish {
            (
                Some(api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None)),
                Some(api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None)),
            )
        } else {
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
            (None, None)
        };
        let (offer, pending) = api.apply().expect("a new session has changes");
        self.clients.push(Client {
            pid,
            rtc,
            addr,
            server_ufrag,
            pending: Some(pending),
            deadline: self.now,
            connected: false,
            removed: false,
            audio_mid,
            video_mid,
            forging,
            last_server_offer: None,
            hold_offers: false,
        });
        let mut sdp = offer.to_sdp_string();
        if forging {
            sdp = forged::outgoing(&sdp);
        }
        (self.clients.len() - 1, sdp)
    }

    /// What the session task does with an offer's text: screen it, then hand it to the shard.
    /// Returns false when the screen refused it (the client would get an error).
    pub fn offer_text(&mut self, pid: ParticipantId, sdp: &str) -> bool {
        match screen_offer(sdp, &SdpLimits::default()) {
            Ok(offer) => {
                self.command(Command::Offer {
                    participant: pid,
                    offer: Box::new(offer),
                    tracks: Vec::new(),
                });
                true
            }
            Err(_) => false,
        }
    }

    pub fn answer_text(&mut self, pid: ParticipantId, sdp: &str) -> bool {
        match screen_answer(sdp, &SdpLimits::default()) {
            Ok(answer) => {
                self.command(Command::Answer {
                    participant: pid,
                    answer: Box::new(answer),
                });
                true
            }
            Err(_) => false,
        }
    }

    pub fn candidate_text(&mut self, pid: ParticipantId, line: &str) -> bool {
        match screen_candidate(line) {
            Ok(candidate) => {
                self.command(Command::Candidate {
                    participant: pid,
                    candidate: candidate.map(Box::new),
                });
                true
            }
            Err(_) => false,
        }
    }

    pub fn command(&mut self, command: Command) {
        self.shard.handle_input(switchboard_core::Input::Command {
            now: self.now,
            command,
        });
        self.poll_shard();
    }

    /// Raw bytes to the server from `source`, over UDP.
    pub fn inject(&mut self, source: SocketAddr, data: &[u8]) {
        self.inject_on(switchboard_core::Transport::Udp, source, data);
    }

    /// Raw bytes to the server from `source` over `transport` (a TCP frame as the ICE-TCP
    /// runtime hands it over).
    pub fn inject_on(
        &mut self,
        transport: switchboard_core::Transport,
        source: SocketAddr,
        data: &[u8],
    ) {
        self.shard.handle_input(switchboard_core::Input::Datagram {
            now: self.now,
            transport,
            source,
            contents: data,
        });
        self.poll_shard();
    }

    /// Run until every client is connected (or gone), for at most `limit` of virtual time.
    pub fn connect_all(&mut self, limit: Duration) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if self.clients.iter().all(|c| c.connected || c.removed) {
                return true;
            }
            self.step();
        }
        false
    }

    /// Advance the world by `duration` of virtual time.
    pub fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.step();
        }
    }

    fn step(&mut self) {
        self.now += STEP;
        let now = self.now;
        for i in 0..self.clients.len() {
            if !self.clients[i].removed && self.clients[i].deadline <= now {
                let _ = self.clients[i].rtc.handle_input(Input::Timeout(now));
                self.drain_client(i);
            }
        }
        self.flush_to_server();
        if self.shard_deadline <= now {
            self.shard
                .handle_input(switchboard_core::Input::Timeout(now));
            self.poll_shard();
        }
    }

    fn flush_to_server(&mut self) {
        // Bounded: each round trip is one exchange of a handshake; nothing loops forever.
        for _ in 0..64 {
            let Some((source, data)) = self.to_server.pop_front() else {
                return;
            };
            self.inject(source, &data);
        }
    }

    fn poll_shard(&mut self) {
        use switchboard_core::Output as Out;
        loop {
            match self.shard.poll_output() {
                Out::Transmit {
                    destination,
                    contents,
                    ..
                } => self.deliver_datagram(destination, &contents),
                Out::Signal {
                    participant,
                    message,
                } => self.deliver_signal(participant, message),
                Out::Removed { participant, .. } => {
                    if let Some(c) = self.clients.iter_mut().find(|c| c.pid == participant) {
                        c.removed = true;
                    }
                }
                Out::Reply { .. } | Out::Notify(_) | Out::IceUfrag { .. } => {}
                Out::Timeout(at) => {
                    self.shard_deadline = at;
                    return;
                }
            }
        }
    }

    fn deliver_datagram(&mut self, destination: SocketAddr, contents: &[u8]) {
        let Some(i) = self.clients.iter().position(|c| c.addr == destination) else {
            return;
        };
        if self.clients[i].removed {
            return;
        }
        if let Ok(receive) = Receive::new(Protocol::Udp, SERVER, destination, contents) {
            let now = self.now;
            let _ = self.clients[i]
                .rtc
                .handle_input(Input::Receive(now, receive));
            self.drain_client(i);
        }
    }

    fn deliver_signal(&mut self, pid: ParticipantId, message: ServerMessage) {
        let Some(i) = self.clients.iter().position(|c| c.pid == pid) else {
            return;
        };
        let c = &mut self.clients[i];
        let mut reply = None;
        match message {
            ServerMessage::Answer { sdp } => {
                let sdp = if c.forging {
                    forged::incoming(&sdp)
                } else {
                    sdp
                };
                if let (Ok(answer), Some(pending)) =
                    (SdpAnswer::from_sdp_string(&sdp), c.pending.take())
                {
                    let _ = c.rtc.sdp_api().accept_answer(pending, answer);
                }
            }
            ServerMessage::Offer { sdp } => {
                c.last_server_offer = Some(sdp.clone());
                if !c.hold_offers && c.pending.is_none() {
                    let offer = SdpOffer::from_sdp_string(&sdp).ok();
                    let answer = offer.and_then(|o| c.rtc.sdp_api().accept_offer(o).ok());
                    if let Some(answer) = answer {
                        reply = Some(answer.to_sdp_string());
                    }
                }
            }
            ServerMessage::Left { .. } => c.removed = true,
            _ => {}
        }
        self.drain_client(i);
        if let Some(answer) = reply {
            self.answer_text(pid, &answer);
        }
    }

    fn drain_client(&mut self, i: usize) {
        let c = &mut self.clients[i];
        // Bounded: a str0m client yields a timeout after its queued output.
        for _ in 0..10_000 {
            match c.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    c.deadline = at;
                    return;
                }
                Ok(Output::Transmit(t)) => self.to_server.push_back((c.addr, t.contents.into())),
                Ok(Output::Event(Event::Connected)) => c.connected = true,
                Ok(Output::Event(_)) => {}
                Err(_) => {
                    c.removed = true;
                    return;
                }
            }
        }
    }

    /// Client `i` sends one RTP packet with the fuzzer's header fields and payload, encrypted
    /// by its engine, so the server sees an authenticated packet.
    #[allow(clippy::too_many_arguments)]
    pub fn send_rtp(
        &mut self,
        i: usize,
        video: bool,
        seq: u64,
        ts: u32,
        marker: bool,
        twcc: Option<u16>,
        payload: &[u8],
    ) {
        let now = self.now;
        let c = &mut self.clients[i];
        let (mid, codec) = if video {
            (c.video_mid, Codec::Vp8)
        } else {
            (c.audio_mid, Codec::Opus)
        };
        let Some(mid) = mid else { return };
        let pt: Option<Pt> = c
            .rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt());
        let Some(pt) = pt else { return };
        if let Some(tx) = c.rtc.direct_api().stream_tx_by_mid(mid, None) {
            let mut ext = ExtensionValues::default();
            if let Some(n) = twcc {
                ext.user_values.set(ForgedSeq(n));
            }
            let seq: SeqNo = seq.into();
            tx.write_rtp(
                RtpWrite::new(pt, seq, ts, now, payload.to_vec())
                    .marker(marker)
                    .ext_vals(ext)
                    .nackable(video),
            );
        }
        let _ = c.rtc.handle_input(Input::Timeout(now));
        self.drain_client(i);
        self.flush_to_server();
    }

    /// Removes `i` from the shard the way a leaving client does.
    pub fn leave(&mut self, i: usize) {
        let pid = self.clients[i].pid;
        self.command(Command::Leave {
            participant: pid,
            reason: LeaveReason::Requested,
        });
    }
}

/// A room with a connected publisher (index 0, forging transport-cc) and a connected
/// subscriber (index 1): the state the `datagram_connected` target starts from.
pub fn connected_pair() -> Option<World> {
    let mut world = World::new();
    let (publisher, offer) = world.join("fuzz", true, true);
    let pid = world.clients[publisher].pid;
    if !world.offer_text(pid, &offer) {
        return None;
    }
    let (subscriber, offer) = world.join("fuzz", false, false);
    let pid = world.clients[subscriber].pid;
    if !world.offer_text(pid, &offer) {
        return None;
    }
    world.connect_all(Duration::from_secs(10)).then_some(world)
}

/// A world kept across inputs by the targets that join a fresh participant per input: a room
/// with a publisher in it (offer applied, not connected), and a client offer any new
/// participant can send (its ICE and DTLS identity may be shared: nothing connects). The offer
/// is a subscriber's (one receive-only m-line): the shortest real offer, because parsing it
/// again for every input is most of what those targets spend.
pub struct Stage {
    pub world: World,
    pub offer: String,
    inputs: u64,
}

impl Default for Stage {
    fn default() -> Self {
        Self::new()
    }
}

impl Stage {
    pub fn new() -> Self {
        let mut world = World::new();
        let (publisher, offer) = world.join("fuzz", true, false);
        let pid = world.clients[publisher].pid;
        world.offer_text(pid, &offer);
        let (_, offer) = world.join("spare", false, false);
        Stage {
            world,
            offer,
            inputs: 0,
        }
    }

    /// Call once per input: a new stage every 1 000 inputs, so what the shard keeps of its
    /// departed participants (none, if it cleans up) cannot slow the run down for good.
    pub fn tick(cell: &std::cell::RefCell<Option<Stage>>) -> std::cell::RefMut<'_, Option<Stage>> {
        let mut slot = cell.borrow_mut();
        let fresh = slot.as_ref().is_none_or(|s| s.inputs >= 1000);
        if fresh {
            *slot = Some(Stage::new());
        }
        if let Some(stage) = slot.as_mut() {
            stage.inputs += 1;
        }
        slot
    }
}
