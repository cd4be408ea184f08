//! Deterministic simulation: a `Shard` and str0m client `Rtc`s exchanging datagrams through an
//! in-memory network on a virtual clock. Signalling goes straight into `Command`s.

#![allow(dead_code)]

mod data;
mod link;
mod red_audio;
mod simulcast;

pub use link::Link;
// Not every test binary that includes the simulation uses simulcast.
#[allow(unused_imports)]
pub use simulcast::{layer_of, three_layers, SimLayer};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};
use switchboard_core::screen::{screen_answer, screen_candidate, screen_offer, Refusal, SdpLimits};
pub use switchboard_core::Transport;
use switchboard_core::{Command, ParticipantId, RtcTemplate, Shard, ShardConfig};
use switchboard_loadtest::red;
use switchboard_loadtest::synth::{self, VideoPosition};
use switchboard_protocol::{LeaveReason, ServerMessage};

pub const SERVER: &str = "127.0.0.1:40000";
const STEP: Duration = Duration::from_millis(1);
const AUDIO_EVERY: Duration = Duration::from_millis(20);
const VIDEO_EVERY: Duration = Duration::from_millis(33);
const VIDEO_PACKETS_PER_FRAME: u64 = 3;

/// What a client received on one of its m-lines.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// (extended seq as received, payload owner, payload counter, owner announced at arrival)
    pub packets: Vec<(u64, String, u64, Option<String>)>,
    pub corrupt: u64,
    /// Packets that arrived as RED (audio/red), and the counters of the frames their redundant
    /// blocks carried (what a RED decoder recovers a lost packet from).
    pub red: u64,
    pub red_recoverable: Vec<u64>,
    /// The codecs packets arrived in, in the order first seen.
    pub codecs: Vec<Codec>,
}

pub struct SimClient {
    pub name: String,
    pub pid: ParticipantId,
    pub rtc: Rtc,
    pub addr: SocketAddr,
    /// How it reaches the server: UDP, or ICE-TCP (frames of an RFC 4571 connection, which the
    /// simulated network delivers whole and in order).
    pub transport: Transport,
    pending: Option<SdpPendingOffer>,
    pub audio_mid: Option<Mid>,
    pub video_mid: Option<Mid>,
    /// The codec it publishes video in (the first of the codecs it joined with, unless a test
    /// changes it to make a publisher send what its m-line did not list first).
    pub video_codec: Codec,
    /// The audio level its audio packets carry (dBov, 0 loudest, -127 silence); `None`: no
    /// level extension on its packets.
    pub audio_level: Option<i8>,
    /// Publish audio as RED (each packet also carries the previous frame), when negotiated.
    pub send_red: bool,
    last_audio: Option<Vec<u8>>,
    deadline: Instant,
    next_audio: Instant,
    next_video: Instant,
    pub(super) audio_counter: u64,
    video_counter: u64,
    frames: u64,
    keyframe_due: bool,
    pub connected: bool,
    pub removed: Option<Option<LeaveReason>>,
    /// mid → owner peer id, as announced by `trackPublished` (removed on `trackUnpublished`).
    pub slot_owner: BTreeMap<String, String>,
    /// mid → the owner most recently announced (kept after `trackUnpublished`: packets already
    /// in flight may still arrive).
    pub last_owner: BTreeMap<String, String>,
    pub received: BTreeMap<String, Received>,
    pub keyframe_requests: u64,
    pub signals: Vec<ServerMessage>,
    pub publish: bool,
    /// Keep server offers unanswered (to make a client offer cross one).
    pub hold_offers: bool,
    /// Record server answers without applying them (for offers the test handed the shard
    /// directly, which this client's engine never made).
    pub ignore_answers: bool,
    /// Stop and start its simulcast layers as `layersWanted` says (what the SDK does).
    pub obeys_dynacast: bool,
    pub held_offers: Vec<String>,
    /// Open data channels by label (the client opened them with its first offer).
    pub channels: BTreeMap<String, ChannelId>,
    /// Data-channel messages received: (label, binary, bytes).
    pub data_in: Vec<(String, bool, Vec<u8>)>,
    /// Its video encodings when it publishes simulcast (empty: one plain stream).
    pub simulcast: Vec<SimLayer>,
}

pub struct Sim {
    pub now: Instant,
    pub shard: Shard,
    pub clients: Vec<SimClient>,
    template: RtcTemplate,
    to_server: VecDeque<(Transport, SocketAddr, Vec<u8>)>,
    to_clients: VecDeque<(Transport, SocketAddr, Vec<u8>)>,
    /// How the next clients that join reach the server.
    pub join_transport: Transport,
    /// ICE ufrags the shard says it holds (`Output::IceUfrag`), as the runtime's directory.
    pub ufrags: BTreeSet<String>,
    shard_deadline: Instant,
    next_pid: u64,
    /// Drop every n-th datagram to clients (0 = lossless).
    pub lossy_every: u64,
    delivered: u64,
    /// `Command::Join::server_offers` for the next joins (false: as a WHIP/WHEP session).
    pub server_offers: bool,
    /// Data channels the next joins open with their first offer (labels).
    pub join_channels: Vec<String>,
    /// The video codecs the next joins' engines have, in order (VP8, VP9, AV1 are known).
    pub join_video_codecs: Vec<Codec>,
    /// The simulcast encodings the next publishing joins send (empty: no simulcast).
    pub join_simulcast: Vec<SimLayer>,
    /// The next joins' engines offer RED (audio/red) and, when publishing, send it.
    pub join_red: bool,
    /// Capped downlinks by client address.
    links: BTreeMap<SocketAddr, Link>,
    /// Datagrams that left a link, to deliver.
    released: VecDeque<(Transport, SocketAddr, Vec<u8>)>,
    /// The most the shard's outputs ever held, and what it handed out, per poll.
    pub output_peak: OutputPeak,
}

/// High-water marks of what the shard queued and handed out (see `Sim::poll_shard`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OutputPeak {
    /// Outputs waiting in the shard at once.
    pub queued: usize,
    /// Datagrams to one destination in one poll (until the shard asked for a timeout).
    pub per_destination: usize,
    /// Datagrams in one poll, all destinations.
    pub per_poll: usize,
}

fn protocol(transport: Transport) -> Protocol {
    match transport {
        Transport::Udp => Protocol::Udp,
        Transport::Tcp => Protocol::Tcp,
    }
}

/// The synthetic payloads carry VP8 framing; a VP9 or AV1 publisher puts its codec's first byte
/// in front (what the server reads to find keyframes): VP9's descriptor `I|P|L|F|B|E|V|Z` with B
/// on a frame's first packet and P off in keyframes, AV1's aggregation header with N on the first
/// packet of a keyframe (a new coded video sequence).
fn wrap_descriptor(codec: Codec, pos: VideoPosition, payload: Vec<u8>) -> Vec<u8> {
    let first = match codec {
        Codec::Vp9 => {
            let begin = if pos.frame_start { 0x08 } else { 0x00 };
            let predicted = if pos.keyframe { 0x00 } else { 0x40 };
            begin | predicted
        }
        Codec::Av1 => {
            if pos.frame_start && pos.keyframe {
                0x08
            } else {
                0x00
            }
        }
        _ => return payload,
    };
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(first);
    out.extend_from_slice(&payload);
    out
}

fn unwrap_descriptor(codec: Codec, payload: &[u8]) -> &[u8] {
    match codec {
        Codec::Vp9 | Codec::Av1 => payload.get(1..).unwrap_or_default(),
        _ => payload,
    }
}

fn server_addr() -> SocketAddr {
    SERVER.parse().expect("constant address")
}

impl Sim {
    pub fn new() -> Self {
        let now = Instant::now();
        let mut config = ShardConfig::new(server_addr());
        // The shard is reached over UDP and over ICE-TCP on the same address, as a node with a
        // TCP port is.
        config.advertised.push((Transport::Tcp, server_addr()));
        let shard = Shard::new(config, now);
        Sim {
            now,
            shard,
            clients: Vec::new(),
            template: RtcTemplate::new().expect("crypto provider"),
            to_server: VecDeque::new(),
            to_clients: VecDeque::new(),
            join_transport: Transport::Udp,
            ufrags: BTreeSet::new(),
            shard_deadline: now,
            next_pid: 1,
            lossy_every: 0,
            delivered: 0,
            server_offers: true,
            join_channels: Vec::new(),
            join_video_codecs: vec![Codec::Vp8],
            join_simulcast: Vec::new(),
            join_red: false,
            links: BTreeMap::new(),
            released: VecDeque::new(),
            output_peak: OutputPeak::default(),
        }
    }

    /// Estimate each subscriber's bandwidth (TWCC) for the joins that follow, as a node with
    /// `media.bandwidth_estimation` does.
    pub fn estimate_bandwidth(&mut self) {
        self.template = RtcTemplate::new()
            .expect("crypto provider")
            .with_bandwidth_estimation();
    }

    fn index(&self, name: &str) -> usize {
        self.clients
            .iter()
            .position(|c| c.name == name)
            .expect("known client")
    }

    pub fn client(&self, name: &str) -> &SimClient {
        &self.clients[self.index(name)]
    }

    pub fn client_mut(&mut self, name: &str) -> &mut SimClient {
        let i = self.index(name);
        &mut self.clients[i]
    }

    /// Join `room` and send the first offer (audio + video when `publish`).
    pub fn join(&mut self, room: &str, name: &str, publish: bool) -> usize {
        let (i, offer) = self.join_quiet(room, name, publish);
        let pid = self.clients[i].pid;
        self.offer_text(pid, &offer)
            .expect("the client's offer passes the screen");
        i
    }

    /// Join `room` but keep the client's first offer (returned as text) unsent.
    pub fn join_quiet(&mut self, room: &str, name: &str, publish: bool) -> (usize, String) {
        let pid = ParticipantId(self.next_pid);
        self.next_pid += 1;
        let addr: SocketAddr = format!("127.0.0.1:{}", 41000 + pid.0)
            .parse()
            .expect("address");
        let new = self
            .template
            .build(self.now, self.shard.config().advertised.as_slice())
            .expect("rtc");
        self.shard.handle_input(switchboard_core::Input::Command {
            now: self.now,
            command: Command::Join {
                participant: pid,
                room: room.into(),
                peer_id: name.into(),
                name: name.into(),
                rtc: Box::new(new),
                auto_subscribe: true,
                resume_token: None,
                server_offers: self.server_offers,
            },
        });
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, self.join_red);
        for codec in &self.join_video_codecs {
            config = match codec {
                Codec::Vp8 => config.enable_vp8(true),
                Codec::Vp9 => config.enable_vp9(true),
                Codec::Av1 => config.enable_av1(true),
                other => panic!("the simulation does not publish {other}"),
            };
        }
        let video_codec = *self.join_video_codecs.first().expect("a video codec");
        let mut rtc = config.build(self.now);
        let transport = self.join_transport;
        let local = match transport {
            Transport::Udp => Candidate::host(addr, "udp"),
            Transport::Tcp => Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Active)
                .build(),
        };
        rtc.add_local_candidate(local.expect("host candidate"));
        let mut api = rtc.sdp_api();
        let (audio_mid, video_mid) = if publish {
            (
                Some(api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None)),
                Some(
                    api.add_media(
                        MediaKind::Video,
                        Direction::SendOnly,
                        None,
                        None,
                        (!self.join_simulcast.is_empty())
                            .then(|| simulcast::offer_simulcast(&self.join_simulcast)),
                    ),
                ),
            )
        } else {
            // A pure subscriber still needs an m-line for ICE: one receive slot.
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
            (None, None)
        };
        for label in &self.join_channels {
            api.add_channel(label.clone());
        }
        let (offer, pending) = api.apply().expect("changes");
        self.clients.push(SimClient {
            name: name.into(),
            pid,
            rtc,
            addr,
            transport,
            pending: Some(pending),
            audio_mid,
            video_mid,
            video_codec,
            audio_level: None,
            send_red: self.join_red && publish,
            last_audio: None,
            deadline: self.now,
            next_audio: self.now,
            next_video: self.now,
            audio_counter: 0,
            video_counter: 0,
            frames: 0,
            keyframe_due: true,
            connected: false,
            removed: None,
            slot_owner: BTreeMap::new(),
            last_owner: BTreeMap::new(),
            received: BTreeMap::new(),
            keyframe_requests: 0,
            signals: Vec::new(),
            publish,
            hold_offers: false,
            ignore_answers: false,
            obeys_dynacast: true,
            held_offers: Vec::new(),
            channels: BTreeMap::new(),
            data_in: Vec::new(),
            simulcast: if publish {
                self.join_simulcast.clone()
            } else {
                Vec::new()
            },
        });
        self.poll_shard();
        (self.clients.len() - 1, offer.to_sdp_string())
    }

    /// What the signalling task does with an offer's text: screen and parse it, then hand the
    /// parsed offer to the shard.
    pub fn offer_text(&mut self, pid: ParticipantId, sdp: &str) -> Result<(), Refusal> {
        let offer = screen_offer(sdp, &SdpLimits::default())?;
        self.command(Command::Offer {
            participant: pid,
            offer: Box::new(offer),
            tracks: Vec::new(),
        });
        Ok(())
    }

    pub fn answer_text(&mut self, pid: ParticipantId, sdp: &str) -> Result<(), Refusal> {
        let answer = screen_answer(sdp, &SdpLimits::default())?;
        self.command(Command::Answer {
            participant: pid,
            answer: Box::new(answer),
        });
        Ok(())
    }

    pub fn candidate_text(&mut self, pid: ParticipantId, line: &str) -> Result<(), Refusal> {
        let candidate = screen_candidate(line)?;
        self.command(Command::Candidate {
            participant: pid,
            candidate: candidate.map(Box::new),
        });
        Ok(())
    }

    pub fn command(&mut self, command: Command) {
        self.shard.handle_input(switchboard_core::Input::Command {
            now: self.now,
            command,
        });
        self.poll_shard();
    }

    pub fn leave(&mut self, name: &str) {
        let pid = self.client(name).pid;
        self.command(Command::Leave {
            participant: pid,
            reason: LeaveReason::Requested,
        });
    }

    /// Run the world for `duration` of virtual time.
    pub fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.step();
            self.now += STEP;
        }
    }

    fn step(&mut self) {
        let now = self.now;
        // Clients: timeouts and media.
        for i in 0..self.clients.len() {
            if self.clients[i].removed.is_some() {
                continue;
            }
            self.send_media(i);
            if self.clients[i].deadline <= now {
                let _ = self.clients[i].rtc.handle_input(Input::Timeout(now));
            }
            self.drain_client(i);
        }
        // Network, both directions, until quiet.
        self.release_links();
        for _ in 0..100 {
            if self.to_server.is_empty() && self.to_clients.is_empty() && self.released.is_empty() {
                break;
            }
            while let Some((transport, source, data)) = self.to_server.pop_front() {
                self.shard.handle_input(switchboard_core::Input::Datagram {
                    now,
                    transport,
                    source,
                    contents: &data,
                });
            }
            self.poll_shard();
            while let Some((transport, dest, data)) = self.to_clients.pop_front() {
                self.delivered += 1;
                if self.lossy_every > 0 && self.delivered.is_multiple_of(self.lossy_every) {
                    continue;
                }
                match self.links.get_mut(&dest) {
                    Some(link) => link.push(now, transport, data),
                    None => self.released.push_back((transport, dest, data)),
                }
            }
            self.release_links();
            while let Some((transport, dest, data)) = self.released.pop_front() {
                self.deliver_to_client(transport, dest, &data);
            }
        }
        if self.shard_deadline <= now {
            self.shard
                .handle_input(switchboard_core::Input::Timeout(now));
            self.poll_shard();
        }
    }

    fn deliver_to_client(&mut self, transport: Transport, dest: SocketAddr, data: &[u8]) {
        let now = self.now;
        let Some(i) = self
            .clients
            .iter()
            .position(|c| c.addr == dest && c.transport == transport)
        else {
            return;
        };
        if self.clients[i].removed.is_some() {
            return;
        }
        let receive = Receive::new(protocol(transport), server_addr(), dest, data)
            .expect("server sends parseable datagrams");
        let _ = self.clients[i]
            .rtc
            .handle_input(Input::Receive(now, receive));
        self.drain_client(i);
    }

    fn poll_shard(&mut self) {
        let mut per_destination: BTreeMap<SocketAddr, usize> = BTreeMap::new();
        let mut per_poll = 0;
        loop {
            let peak = &mut self.output_peak;
            peak.queued = peak.queued.max(self.shard.queued_outputs());
            match self.shard.poll_output() {
                switchboard_core::Output::Transmit {
                    transport,
                    destination,
                    contents,
                } => {
                    let n = per_destination.entry(destination).or_default();
                    *n += 1;
                    per_poll += 1;
                    peak.per_destination = peak.per_destination.max(*n);
                    peak.per_poll = peak.per_poll.max(per_poll);
                    self.to_clients
                        .push_back((transport, destination, contents))
                }
                switchboard_core::Output::IceUfrag { ufrag, held } => {
                    if held {
                        self.ufrags.insert(ufrag);
                    } else {
                        self.ufrags.remove(&ufrag);
                    }
                }
                switchboard_core::Output::Signal {
                    participant,
                    message,
                } => self.deliver_signal(participant, message),
                switchboard_core::Output::Removed {
                    participant,
                    reason,
                } => {
                    if let Some(c) = self.clients.iter_mut().find(|c| c.pid == participant) {
                        c.removed = Some(reason);
                    }
                }
                switchboard_core::Output::Reply { .. } | switchboard_core::Output::Notify(_) => {}
                switchboard_core::Output::Timeout(at) => {
                    self.shard_deadline = at;
                    return;
                }
            }
        }
    }

    fn deliver_signal(&mut self, pid: ParticipantId, message: ServerMessage) {
        let Some(i) = self.clients.iter().position(|c| c.pid == pid) else {
            return;
        };
        let c = &mut self.clients[i];
        c.signals.push(message.clone());
        let mut reply = None;
        match message {
            ServerMessage::Answer { .. } if c.ignore_answers => {}
            ServerMessage::Answer { sdp } => {
                let answer = SdpAnswer::from_sdp_string(&sdp).expect("server answer parses");
                let pending = c.pending.take().expect("an offer was pending");
                c.rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .expect("answer accepted");
            }
            ServerMessage::Offer { sdp } if c.hold_offers => c.held_offers.push(sdp),
            // Glare: a client with its own offer out ignores the server's (the server re-offers).
            ServerMessage::Offer { sdp } if c.pending.is_none() => {
                let offer = SdpOffer::from_sdp_string(&sdp).expect("server offer parses");
                let answer = c.rtc.sdp_api().accept_offer(offer).expect("offer accepted");
                let answer = screen_answer(&answer.to_sdp_string(), &SdpLimits::default())
                    .expect("the client's answer passes the screen");
                reply = Some(Command::Answer {
                    participant: pid,
                    answer: Box::new(answer),
                });
            }
            ServerMessage::TrackPublished { peer_id, mid, .. } => {
                c.slot_owner.insert(mid.clone(), peer_id.clone());
                c.last_owner.insert(mid, peer_id);
            }
            ServerMessage::TrackUnpublished { mid, .. } => {
                c.slot_owner.remove(&mid);
            }
            ServerMessage::LayersWanted { layers, .. } if c.obeys_dynacast => {
                c.apply_layers_wanted(&layers);
            }
            _ => {}
        }
        self.drain_client(i);
        if let Some(reply) = reply {
            self.command(reply);
        }
    }

    fn drain_client(&mut self, i: usize) {
        let c = &mut self.clients[i];
        loop {
            match c.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    c.deadline = at;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    let transport = match t.proto {
                        Protocol::Udp => Transport::Udp,
                        _ => Transport::Tcp,
                    };
                    self.to_server
                        .push_back((transport, c.addr, t.contents.into()))
                }
                Ok(Output::Event(event)) => match event {
                    Event::Connected => c.connected = true,
                    Event::ChannelOpen(id, label) => {
                        c.channels.insert(label, id);
                    }
                    Event::ChannelData(d) => {
                        let label = c
                            .channels
                            .iter()
                            .find(|(_, id)| **id == d.id)
                            .map(|(l, _)| l.clone())
                            .unwrap_or_default();
                        c.data_in.push((label, d.binary, d.data));
                    }
                    Event::KeyframeRequest(req) => {
                        c.keyframe_requests += 1;
                        c.keyframe_due = true;
                        c.simulcast_keyframe(req.rid);
                    }
                    Event::RtpPacket(p) => {
                        let Some(mid) = c
                            .rtc
                            .direct_api()
                            .stream_rx(&p.header.ssrc)
                            .map(|s| s.mid())
                        else {
                            continue;
                        };
                        let video = c.rtc.media(mid).map(|m| m.kind()) == Some(MediaKind::Video);
                        let announced = c.last_owner.get(&mid.to_string()).cloned();
                        let pt = p.header.payload_type;
                        let (codec, is_red) = c
                            .rtc
                            .codec_config()
                            .params()
                            .iter()
                            .find_map(|params| {
                                let codec = params.spec().codec;
                                if params.pt() == pt {
                                    Some((codec, false))
                                } else {
                                    (params.red() == Some(pt)).then_some((codec, true))
                                }
                            })
                            .unwrap_or((Codec::Unknown, false));
                        let entry = c.received.entry(mid.to_string()).or_default();
                        if !entry.codecs.contains(&codec) {
                            entry.codecs.push(codec);
                        }
                        let body: &[u8] = if is_red {
                            entry.red += 1;
                            let parts = red::unwrap(&p.payload);
                            for block in parts.map(|u| u.redundant).unwrap_or_default() {
                                if let Ok(info) = synth::parse_payload(block, false) {
                                    entry.red_recoverable.push(info.counter);
                                }
                            }
                            match switchboard_core::red::primary(&p.payload) {
                                Ok(primary) => primary.data,
                                Err(_) => &[],
                            }
                        } else {
                            &p.payload
                        };
                        match synth::parse_payload(unwrap_descriptor(codec, body), video) {
                            Ok(info) => {
                                entry
                                    .packets
                                    .push((*p.seq_no, info.owner, info.counter, announced))
                            }
                            Err(_) => entry.corrupt += 1,
                        }
                    }
                    _ => {}
                },
                Err(e) => panic!("client {} failed: {e}", c.name),
            }
        }
    }

    fn send_media(&mut self, i: usize) {
        let now = self.now;
        let c = &mut self.clients[i];
        if !c.connected || !c.publish {
            return;
        }
        let pt_for = |rtc: &Rtc, codec: Codec| -> Option<Pt> {
            rtc.codec_config()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
        };
        if now >= c.next_audio {
            c.next_audio = now + AUDIO_EVERY;
            if let (Some(mid), Some(pt)) = (c.audio_mid, pt_for(&c.rtc, Codec::Opus)) {
                let payload = synth::build_payload(&c.name, None, c.audio_counter, 0, 160);
                let seq: SeqNo = (100 + c.audio_counter).into();
                let ts = (c.audio_counter * 960) as u32;
                c.audio_counter += 1;
                let ext = ExtensionValues {
                    audio_level: c.audio_level,
                    voice_activity: c.audio_level.map(|_| true),
                    ..Default::default()
                };
                let red_pt = c
                    .rtc
                    .codec_config()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .and_then(|p| p.red())
                    .filter(|_| c.send_red);
                let (pt, payload) = match red_pt {
                    Some(red_pt) => {
                        let wrapped = red::wrap(*pt, c.last_audio.as_deref(), &payload);
                        c.last_audio = Some(payload);
                        (red_pt, wrapped)
                    }
                    None => (pt, payload),
                };
                if let Some(tx) = c.rtc.direct_api().stream_tx_by_mid(mid, None) {
                    tx.write_rtp(RtpWrite::new(pt, seq, ts, now, payload).ext_vals(ext));
                }
            }
        }
        if now >= c.next_video {
            c.next_video = now + VIDEO_EVERY;
            let pt = pt_for(&c.rtc, c.video_codec);
            if let (false, Some(pt)) = (c.simulcast.is_empty(), pt) {
                c.send_simulcast_frame(now, pt);
            } else if let (Some(mid), Some(pt)) = (c.video_mid, pt) {
                let keyframe = std::mem::take(&mut c.keyframe_due);
                let ts = (c.frames * 3000) as u32;
                c.frames += 1;
                for k in 0..VIDEO_PACKETS_PER_FRAME {
                    let pos = VideoPosition {
                        frame_start: k == 0,
                        keyframe,
                    };
                    let payload = wrap_descriptor(
                        c.video_codec,
                        pos,
                        synth::build_payload(&c.name, Some(pos), c.video_counter, 0, 1000),
                    );
                    let seq: SeqNo = (5000 + c.video_counter).into();
                    c.video_counter += 1;
                    if let Some(tx) = c.rtc.direct_api().stream_tx_by_mid(mid, None) {
                        tx.write_rtp(
                            RtpWrite::new(pt, seq, ts, now, payload)
                                .marker(k + 1 == VIDEO_PACKETS_PER_FRAME)
                                .nackable(true),
                        );
                    }
                }
            }
        }
        let _ = c.rtc.handle_input(Input::Timeout(now));
        self.drain_client(i);
    }

    /// The client starts a renegotiation: one more receive-only video m-line.
    pub fn client_offer(&mut self, name: &str) {
        let i = self.index(name);
        let c = &mut self.clients[i];
        let mut api = c.rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().expect("changes");
        c.pending = Some(pending);
        let pid = c.pid;
        self.drain_client(i);
        self.offer_text(pid, &offer.to_sdp_string())
            .expect("the client's offer passes the screen");
    }

    /// Ask the shard for a keyframe of what arrives on `mid`, as a subscriber would.
    pub fn send_pli(&mut self, name: &str, mid: &str) {
        let now = self.now;
        let i = self.index(name);
        let c = &mut self.clients[i];
        let mid: Mid = mid.into();
        if let Some(rx) = c.rtc.direct_api().stream_rx_by_mid(mid, None) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
        let _ = c.rtc.handle_input(Input::Timeout(now));
        self.drain_client(i);
    }

    /// Send raw bytes to the server from `source`.
    pub fn inject(&mut self, source: SocketAddr, data: &[u8]) {
        self.shard.handle_input(switchboard_core::Input::Datagram {
            now: self.now,
            transport: Transport::Udp,
            source,
            contents: data,
        });
        self.poll_shard();
    }
}

impl SimClient {
    /// Packets received from `owner` on whichever mids carried its media.
    pub fn packets_of(&self, owner: &str, video: bool) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for (mid, r) in &self.received {
            let is_video =
                self.rtc.media(Mid::from(mid.as_str())).map(|m| m.kind()) == Some(MediaKind::Video);
            if is_video != video {
                continue;
            }
            out.extend(
                r.packets
                    .iter()
                    .filter(|(_, o, _, _)| o == owner)
                    .map(|(seq, _, counter, _)| (*seq, *counter)),
            );
        }
        out
    }
}
