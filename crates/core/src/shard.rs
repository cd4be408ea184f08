//! A shard: one core's worth of rooms and participants, driven like str0m itself.
//!
//! `handle_input` takes a datagram, a command from the control plane, or a timeout (each with
//! the current time); `poll_output` returns datagrams to send, signalling messages for
//! participants, removals, and finally the next time the shard wants to be woken. No I/O, no
//! clock reads: the runtime owns those.
//!
//! Per datagram: demux (address map, or STUN ufrag for a new path) → that participant's `Rtc` →
//! drain it to `Timeout`, collecting work → propagate the work (forward RTP, pass keyframe
//! requests, publish tracks) to the other participants, marking them dirty → `poll_output` feeds
//! each dirty `Rtc` one `Input::Timeout(now)` and drains it, so writes are batched per subscriber.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, KeyframeRequestKind, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState};
use switchboard_protocol::webhook::WebhookEvent;
use switchboard_protocol::{
    ErrorCode, LeaveReason, MediaKind, PeerInfo, ServerMessage, TrackInfo, PROTOCOL_VERSION,
};
use tracing::{debug, info, warn};

use crate::admin::{AdminAction, AdminReply, Notification};
use crate::forward::{Decision, DropReason, PacketMeta};
use crate::hash::FastMap;
use crate::ids::{ParticipantId, TrackKey};
use crate::keyframe::KeyframeThrottle;
use crate::participant::{Negotiation, Participant, Route, Slot, SlotState};
use crate::rtc_template::NewRtc;
use crate::stats::ShardStats;
use crate::stun;

/// Most remote addresses one participant may be reached on at once (ICE candidate pairs, NAT
/// rebinding). The oldest mapping goes when a new one comes.
const MAX_ADDRS_PER_PARTICIPANT: usize = 8;
/// How often the shard checks participants for connect and disconnect timeouts.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// The address clients send media to: the host candidate every participant advertises, and
    /// the `destination` str0m is told every datagram arrived on.
    pub advertised: SocketAddr,
    /// At most one keyframe request per published track per this interval.
    pub keyframe_interval: Duration,
    /// A participant whose ICE+DTLS is not up this long after joining is removed.
    pub connect_timeout: Duration,
    /// A participant whose ICE stays disconnected this long is removed.
    pub disconnect_grace: Duration,
    /// Joins beyond this many members are refused with `roomFull`; 0 = unlimited.
    pub max_participants_per_room: usize,
}

impl ShardConfig {
    pub fn new(advertised: SocketAddr) -> Self {
        ShardConfig {
            advertised,
            keyframe_interval: Duration::from_millis(300),
            connect_timeout: Duration::from_secs(30),
            disconnect_grace: Duration::from_secs(10),
            max_participants_per_room: 0,
        }
    }
}

/// A request from the control plane about one participant.
#[derive(Debug)]
pub enum Command {
    /// Enter `room` with a prepared engine. Answered by `Joined` or an error and `Removed`.
    Join {
        participant: ParticipantId,
        room: String,
        peer_id: String,
        name: String,
        rtc: Box<NewRtc>,
    },
    Offer {
        participant: ParticipantId,
        sdp: String,
    },
    Answer {
        participant: ParticipantId,
        sdp: String,
    },
    Candidate {
        participant: ParticipantId,
        candidate: String,
    },
    Leave {
        participant: ParticipantId,
        reason: LeaveReason,
    },
    /// A data message from a participant to its room (or to one peer in it).
    Message {
        participant: ParticipantId,
        to: Option<String>,
        data: serde_json::Value,
    },
    /// An operator request, answered by `Output::Reply` with the same `id`.
    Admin { id: u64, action: AdminAction },
}

#[derive(Debug)]
pub enum Input<'a> {
    Datagram {
        now: Instant,
        source: SocketAddr,
        contents: &'a [u8],
    },
    Command {
        now: Instant,
        command: Command,
    },
    Timeout(Instant),
}

#[derive(Debug)]
pub enum Output {
    Transmit {
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// A message for the participant's signalling channel.
    Signal {
        participant: ParticipantId,
        message: ServerMessage,
    },
    /// The participant is gone from the shard. `reason` is `None` when a join was refused
    /// (the connection may try again), otherwise the session is over.
    Removed {
        participant: ParticipantId,
        reason: Option<LeaveReason>,
    },
    /// The answer to `Command::Admin { id, .. }`.
    Reply { id: u64, reply: AdminReply },
    /// Something the application (webhooks) or the metrics may want to know.
    Notify(Notification),
    /// Call `handle_input(Input::Timeout(..))` at this time at the latest.
    Timeout(Instant),
}

/// A published track and who receives it: the fan-out map's entry.
#[derive(Debug)]
pub(crate) struct Track {
    pub track_id: String,
    pub kind: MediaKind,
    pub publisher_peer: String,
    /// The publisher's negotiated codecs, to map its PTs to each subscriber's.
    params: Vec<PayloadParams>,
    /// (subscriber, slot index) pairs.
    pub subscribers: Vec<(ParticipantId, usize)>,
    keyframe: KeyframeThrottle,
    /// Muted by an operator: not forwarded.
    pub muted: bool,
    /// The simulcast layer forwarded (`Some(None)` for plain streams); chosen by the first
    /// packet. Layer switching by bandwidth is not built yet.
    layer: Option<Option<Rid>>,
}

#[derive(Debug, Default)]
pub(crate) struct Room {
    pub members: Vec<ParticipantId>,
    pub tracks: Vec<TrackKey>,
}

/// Work found while draining one `Rtc` that touches other participants.
// The RTP variant is both the largest and by far the most common; boxing it would cost an
// allocation per packet to save stack space on the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Work {
    Rtp(TrackKey, Option<Rid>, RtpPacket),
    KeyframeRequest {
        subscriber: ParticipantId,
        mid: Mid,
        kind: KeyframeRequestKind,
    },
    MediaAdded {
        participant: ParticipantId,
        mid: Mid,
        kind: MediaKind,
        direction: Direction,
    },
    MediaChanged {
        participant: ParticipantId,
        mid: Mid,
        direction: Direction,
    },
    Closed(ParticipantId),
    Connected(ParticipantId),
}

#[derive(Debug)]
pub struct Shard {
    pub(crate) config: ShardConfig,
    pub(crate) participants: FastMap<ParticipantId, Participant>,
    pub(crate) rooms: HashMap<String, Room>,
    pub(crate) tracks: FastMap<TrackKey, Track>,
    by_addr: FastMap<SocketAddr, ParticipantId>,
    by_ufrag: HashMap<String, ParticipantId>,
    timers: BinaryHeap<Reverse<(Instant, ParticipantId)>>,
    dirty: Vec<ParticipantId>,
    keyframe_pending: Vec<TrackKey>,
    /// Participants to consider for a server offer once the current work is done, so that all
    /// m-lines of one client offer become slots before the server decides it needs more.
    negotiations: Vec<ParticipantId>,
    pub(crate) outputs: VecDeque<Output>,
    work: Vec<Work>,
    pub(crate) now: Instant,
    next_housekeeping: Instant,
    stats: ShardStats,
}

fn kind_of(kind: str0m::media::MediaKind) -> MediaKind {
    match kind {
        str0m::media::MediaKind::Audio => MediaKind::Audio,
        str0m::media::MediaKind::Video => MediaKind::Video,
    }
}

fn str0m_kind(kind: MediaKind) -> str0m::media::MediaKind {
    match kind {
        MediaKind::Audio => str0m::media::MediaKind::Audio,
        MediaKind::Video => str0m::media::MediaKind::Video,
    }
}

fn error(code: ErrorCode, message: impl Into<String>, request: &str) -> ServerMessage {
    ServerMessage::Error {
        code,
        message: message.into(),
        request: Some(request.to_owned()),
    }
}

/// Does this payload start a keyframe a decoder can begin with? For H264 a packet carrying the
/// SPS counts as the start (it precedes the IDR, and a decoder needs it first).
fn starts_keyframe(codec: Option<Codec>, payload: &[u8]) -> bool {
    match codec {
        Some(Codec::Vp8) => str0m::format::detect_vp8_keyframe(payload),
        Some(Codec::Vp9) => str0m::format::detect_vp9_keyframe(payload),
        Some(Codec::H264) => {
            str0m::format::detect_h264_nalu(payload, 7)
                || str0m::format::detect_h264_keyframe(payload)
        }
        Some(Codec::Av1) => str0m::format::detect_av1_keyframe(payload),
        _ => false,
    }
}

impl Shard {
    pub fn new(config: ShardConfig, now: Instant) -> Self {
        Shard {
            config,
            participants: FastMap::default(),
            rooms: HashMap::new(),
            tracks: FastMap::default(),
            by_addr: FastMap::default(),
            by_ufrag: HashMap::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            keyframe_pending: Vec::new(),
            negotiations: Vec::new(),
            outputs: VecDeque::new(),
            work: Vec::new(),
            now,
            next_housekeeping: now + HOUSEKEEPING_INTERVAL,
            stats: ShardStats::default(),
        }
    }

    pub fn config(&self) -> &ShardConfig {
        &self.config
    }

    pub fn stats(&self) -> ShardStats {
        let mut stats = self.stats;
        stats.participants = self.participants.len() as u64;
        stats.rooms = self.rooms.len() as u64;
        stats.tracks = self.tracks.len() as u64;
        stats
    }

    /// End every session (server shutdown): everyone gets `Removed` with `reason`.
    pub fn close_all(&mut self, now: Instant, reason: LeaveReason) {
        self.advance(now);
        let all: Vec<ParticipantId> = self.participants.keys().copied().collect();
        for pid in all {
            self.remove(pid, Some(reason));
        }
    }

    /// Number of m-lines the server sends on for a participant (for tests and metrics).
    pub fn slot_count(&self, participant: ParticipantId) -> Option<usize> {
        self.participants.get(&participant).map(|p| p.slots.len())
    }

    pub fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Datagram {
                now,
                source,
                contents,
            } => {
                self.advance(now);
                self.handle_datagram(source, contents);
            }
            Input::Command { now, command } => {
                self.advance(now);
                self.handle_command(command);
            }
            Input::Timeout(now) => {
                self.advance(now);
                self.handle_timeout();
            }
        }
    }

    pub fn poll_output(&mut self) -> Output {
        loop {
            if let Some(out) = self.outputs.pop_front() {
                return out;
            }
            if self.dirty.is_empty() {
                return Output::Timeout(self.next_timeout());
            }
            self.flush_dirty();
        }
    }

    fn advance(&mut self, now: Instant) {
        // Time never goes backwards inside the shard, whatever the caller's clock does.
        if now > self.now {
            self.now = now;
        }
    }

    fn next_timeout(&self) -> Instant {
        let mut next = self.next_housekeeping;
        if let Some(Reverse((at, _))) = self.timers.peek() {
            next = next.min(*at);
        }
        for key in &self.keyframe_pending {
            if let Some(due) = self.tracks.get(key).and_then(|t| t.keyframe.due_at()) {
                next = next.min(due);
            }
        }
        next
    }

    // ---------------------------------------------------------------- datagrams

    fn handle_datagram(&mut self, source: SocketAddr, contents: &[u8]) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += contents.len() as u64;
        let now = self.now;
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.config.advertised, contents)
        else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let input = str0m::Input::Receive(now, receive);
        let pid = match self.by_addr.get(&source) {
            Some(pid) => *pid,
            None => {
                // A new path must prove itself with a STUN check that names one of our ufrags and
                // passes that participant's integrity check before we map the address.
                let Some(pid) = stun::local_ufrag(contents)
                    .and_then(|u| self.by_ufrag.get(u))
                    .copied()
                else {
                    self.stats.dropped_unknown_source += 1;
                    return;
                };
                let Some(p) = self.participants.get_mut(&pid) else {
                    self.stats.dropped_unknown_source += 1;
                    return;
                };
                if !p.rtc.accepts(&input) {
                    self.stats.dropped_unauthenticated += 1;
                    return;
                }
                if p.addrs.len() >= MAX_ADDRS_PER_PARTICIPANT {
                    let old = p.addrs.remove(0);
                    self.by_addr.remove(&old);
                }
                p.addrs.push(source);
                self.by_addr.insert(source, pid);
                debug!(participant = %pid, %source, "new ICE path");
                pid
            }
        };
        self.drive(pid, input);
    }

    // ---------------------------------------------------------------- driving one Rtc

    /// Feed one input to a participant's `Rtc`, drain it, and propagate what it produced.
    fn drive(&mut self, pid: ParticipantId, input: str0m::Input<'_>) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        let now = self.now;
        let outputs = &mut self.outputs;
        let work = &mut self.work;
        let timers = &mut self.timers;
        let stats = &mut self.stats;
        let result = catch_unwind(AssertUnwindSafe(|| {
            if let Err(e) = p.rtc.handle_input(input) {
                // Bad packets are dropped inside str0m; an error here is worth a log line but is
                // only fatal when the engine says it is no longer alive (checked below).
                debug!(participant = %p.id, error = %e, "rtc rejected input");
            }
            drain(p, now, outputs, work, timers, stats)
        }));
        let failed = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => {
                warn!(participant = %pid, error = %e, "media engine failed");
                Some(LeaveReason::MediaError)
            }
            Err(_) => {
                warn!(participant = %pid, "media engine panicked; removing the participant");
                Some(LeaveReason::MediaError)
            }
        };
        self.process_work();
        if let Some(reason) = failed {
            self.stats.participant_failures += 1;
            self.remove(pid, Some(reason));
        } else if self
            .participants
            .get(&pid)
            .is_some_and(|p| !p.rtc.is_alive())
        {
            self.remove(pid, Some(LeaveReason::TransportClosed));
        }
    }

    /// Drain after a mutation that was not a `handle_input` (SDP calls, candidates).
    fn drain_now(&mut self, pid: ParticipantId) {
        let now = self.now;
        self.drive(pid, str0m::Input::Timeout(now));
    }

    fn mark_dirty(&mut self, pid: ParticipantId) {
        if let Some(p) = self.participants.get_mut(&pid) {
            if !p.dirty {
                p.dirty = true;
                self.dirty.push(pid);
            }
        }
    }

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for pid in dirty {
            let now = self.now;
            if let Some(p) = self.participants.get_mut(&pid) {
                p.dirty = false;
                self.drive(pid, str0m::Input::Timeout(now));
            }
        }
    }

    fn handle_timeout(&mut self) {
        let now = self.now;
        let mut due = Vec::new();
        while let Some(Reverse((at, pid))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(p) = self.participants.get_mut(&pid) {
                if p.deadline == Some(at) {
                    p.deadline = None;
                    due.push(pid);
                }
            }
        }
        for pid in due {
            self.drive(pid, str0m::Input::Timeout(now));
        }
        self.poll_keyframes();
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING_INTERVAL;
            self.housekeeping();
        }
    }

    fn housekeeping(&mut self) {
        let now = self.now;
        let mut expired = Vec::new();
        for p in self.participants.values() {
            let never_connected = !p.connected && now >= p.joined_at + self.config.connect_timeout;
            let gone = p
                .disconnected_since
                .is_some_and(|since| now >= since + self.config.disconnect_grace);
            if never_connected || gone {
                expired.push(p.id);
            }
        }
        for pid in expired {
            info!(participant = %pid, "transport timed out");
            self.remove(pid, Some(LeaveReason::TransportClosed));
        }
    }

    // ---------------------------------------------------------------- work

    fn negotiate_later(&mut self, pid: ParticipantId) {
        if !self.negotiations.contains(&pid) {
            self.negotiations.push(pid);
        }
    }

    fn process_work(&mut self) {
        self.process_work_items();
        for pid in std::mem::take(&mut self.negotiations) {
            self.negotiate(pid);
        }
    }

    fn process_work_items(&mut self) {
        while !self.work.is_empty() {
            let batch = std::mem::take(&mut self.work);
            for item in batch {
                match item {
                    Work::Rtp(key, rid, packet) => self.forward(key, rid, packet),
                    Work::KeyframeRequest {
                        subscriber,
                        mid,
                        kind,
                    } => {
                        let source = self
                            .participants
                            .get(&subscriber)
                            .and_then(|p| p.slot_by_mid(mid).map(|i| &p.slots[i]))
                            .and_then(|s| s.source);
                        if let Some(key) = source {
                            self.request_keyframe(key, kind);
                        }
                    }
                    Work::MediaAdded {
                        participant,
                        mid,
                        kind,
                        direction,
                    } => self.media_direction(participant, mid, Some(kind), direction),
                    Work::MediaChanged {
                        participant,
                        mid,
                        direction,
                    } => self.media_direction(participant, mid, None, direction),
                    Work::Closed(pid) => self.remove(pid, Some(LeaveReason::TransportClosed)),
                    Work::Connected(pid) => {
                        if let Some(p) = self.participants.get(&pid) {
                            let note = Notification::Connected {
                                room: p.room.clone(),
                                peer_id: p.peer_id.clone(),
                                after: self.now.saturating_duration_since(p.joined_at),
                            };
                            self.outputs.push_back(Output::Notify(note));
                        }
                    }
                }
            }
        }
    }

    /// Fan one publisher packet out to every subscriber of its track.
    fn forward(&mut self, key: TrackKey, rid: Option<Rid>, packet: RtpPacket) {
        let now = self.now;
        let Some(track) = self.tracks.get_mut(&key) else {
            self.stats.dropped_unrouted += 1;
            return;
        };
        if track.muted {
            self.stats.dropped_muted += 1;
            return;
        }
        match track.layer {
            None => track.layer = Some(rid),
            Some(layer) if layer != rid => {
                self.stats.dropped_unrouted += 1;
                return;
            }
            Some(_) => {}
        }
        let video = track.kind == MediaKind::Video;
        let pt = packet.header.payload_type;
        let keyframe_start = video && {
            let codec = track
                .params
                .iter()
                .find(|p| p.pt() == pt)
                .map(|p| p.spec().codec);
            starts_keyframe(codec, &packet.payload)
        };
        let meta = PacketMeta {
            seq: *packet.seq_no,
            ts: packet.header.timestamp,
            keyframe_start,
        };
        let mut ext = packet.header.ext_vals.clone();
        // These belong to the publisher's session; str0m writes the subscriber's own.
        ext.mid = None;
        ext.rid = None;
        ext.rid_repair = None;
        ext.transport_cc = None;
        ext.abs_send_time = None;

        let mut want_keyframe = false;
        for &(sid, idx) in &track.subscribers {
            let Some(sub) = self.participants.get_mut(&sid) else {
                continue;
            };
            let Participant { slots, rtc, .. } = sub;
            let Some(slot) = slots.get_mut(idx) else {
                continue;
            };
            let codec = slot.out_codec(pt, &track.params, rtc);
            match slot.forwarder.decide(&meta, codec, now) {
                Decision::Forward { seq, ts, pt } => {
                    let Some(ssrc) = slot.tx_ssrc else { continue };
                    let mut api = rtc.direct_api();
                    let Some(tx) = api.stream_tx(&ssrc) else {
                        continue;
                    };
                    tx.write_rtp(
                        RtpWrite::new(pt, seq.into(), ts, now, packet.payload.clone())
                            .marker(packet.header.marker)
                            .ext_vals(ext.clone())
                            .nackable(video),
                    );
                    self.stats.rtp_forwarded += 1;
                    if !sub.dirty {
                        sub.dirty = true;
                        self.dirty.push(sid);
                    }
                }
                Decision::Drop(DropReason::AwaitingKeyframe) => {
                    self.stats.dropped_awaiting_keyframe += 1;
                    want_keyframe = true;
                }
                Decision::Drop(DropReason::BeforeSwitch) => self.stats.dropped_before_switch += 1,
                Decision::Drop(DropReason::NoCodec) => self.stats.dropped_no_codec += 1,
            }
        }
        if want_keyframe {
            // The request sent when the subscriber was bound may have been lost; ask again
            // (throttled, so this costs nothing when a keyframe is already on its way).
            self.request_keyframe(key, KeyframeRequestKind::Pli);
        }
    }

    pub(crate) fn request_keyframe(&mut self, key: TrackKey, kind: KeyframeRequestKind) {
        let now = self.now;
        let Some(track) = self.tracks.get_mut(&key) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        if track.keyframe.request(now) {
            let rid = track.layer.flatten();
            self.send_keyframe_request(key, rid, kind);
        } else {
            self.stats.keyframe_requests_coalesced += 1;
            if !self.keyframe_pending.contains(&key) {
                self.keyframe_pending.push(key);
            }
        }
    }

    fn send_keyframe_request(
        &mut self,
        key: TrackKey,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let Some(publisher) = self.participants.get_mut(&key.publisher) else {
            return;
        };
        if let Some(rx) = publisher.rtc.direct_api().stream_rx_by_mid(key.mid, rid) {
            rx.request_keyframe(kind);
            self.stats.keyframe_requests_sent += 1;
            self.mark_dirty(key.publisher);
        }
    }

    fn poll_keyframes(&mut self) {
        let now = self.now;
        let pending = std::mem::take(&mut self.keyframe_pending);
        for key in pending {
            let Some(track) = self.tracks.get_mut(&key) else {
                continue;
            };
            if track.keyframe.poll(now) {
                let rid = track.layer.flatten();
                self.send_keyframe_request(key, rid, KeyframeRequestKind::Pli);
            } else if track.keyframe.due_at().is_some() {
                self.keyframe_pending.push(key);
            }
        }
    }

    // ---------------------------------------------------------------- tracks and slots

    /// An m-line was added or changed direction: publish/unpublish, open/close a slot.
    fn media_direction(
        &mut self,
        pid: ParticipantId,
        mid: Mid,
        kind: Option<MediaKind>,
        direction: Direction,
    ) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        let kind = match kind.or_else(|| p.rtc.media(mid).map(|m| kind_of(m.kind()))) {
            Some(kind) => kind,
            None => return,
        };
        // Receiving side: the participant publishes on this m-line.
        let publishing = p.published.contains(&mid);
        if direction.is_receiving() && !publishing {
            self.publish(pid, mid, kind);
        } else if !direction.is_receiving() && publishing {
            self.unpublish(TrackKey {
                publisher: pid,
                mid,
            });
        }
        // Sending side: a slot the participant receives on.
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        match p.slot_by_mid(mid) {
            None if direction.is_sending() => {
                let seed = p.next_slot_seed();
                let stream_id = p
                    .rtc
                    .media(mid)
                    .map(|m| m.stream_id().to_owned())
                    .unwrap_or_default();
                let mut slot = Slot::new(mid, kind, stream_id, seed);
                slot.attach(&mut p.rtc);
                p.slots.push(slot);
            }
            Some(idx) if !direction.is_sending() && p.slots[idx].state == SlotState::Ready => {
                p.slots[idx].state = SlotState::Stopped;
                if let Some(key) = self.unbind(pid, idx) {
                    // The track still exists: it waits for another slot.
                    if let Some(p) = self.participants.get_mut(&pid) {
                        p.wanted.push_front((key, kind));
                    }
                }
            }
            Some(_) if !direction.is_sending() => {}
            // The client turned a stopped m-line back on.
            Some(idx) if p.slots[idx].state == SlotState::Stopped => {
                let Participant { slots, rtc, .. } = p;
                slots[idx].attach(rtc);
            }
            Some(_) => {}
            None => {}
        }
        self.fill_slots(pid);
        self.negotiate_later(pid);
    }

    fn publish(&mut self, pid: ParticipantId, mid: Mid, kind: MediaKind) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        let key = TrackKey {
            publisher: pid,
            mid,
        };
        let track_id = format!("{}:{}", p.peer_id, mid);
        p.published.push(mid);
        let track = Track {
            track_id: track_id.clone(),
            kind,
            publisher_peer: p.peer_id.clone(),
            params: p.rtc.codec_config().params().to_vec(),
            subscribers: Vec::new(),
            keyframe: KeyframeThrottle::new(self.config.keyframe_interval),
            layer: None,
            muted: false,
        };
        let room_name = p.room.clone();
        info!(participant = %pid, room = %room_name, track = %track_id, ?kind, "track published");
        self.notify(WebhookEvent::TrackPublished {
            room: room_name.clone(),
            peer_id: track.publisher_peer.clone(),
            track_id: track_id.clone(),
            kind,
        });
        self.tracks.insert(key, track);
        let Some(room) = self.rooms.get_mut(&room_name) else {
            return;
        };
        room.tracks.push(key);
        let others: Vec<ParticipantId> =
            room.members.iter().copied().filter(|m| *m != pid).collect();
        for sid in others {
            if let Some(sub) = self.participants.get_mut(&sid) {
                sub.wanted.push_back((key, kind));
            }
            self.fill_slots(sid);
            self.negotiate_later(sid);
        }
    }

    fn unpublish(&mut self, key: TrackKey) {
        let Some(track) = self.tracks.remove(&key) else {
            return;
        };
        info!(participant = %key.publisher, track = %track.track_id, "track unpublished");
        self.keyframe_pending.retain(|k| *k != key);
        let room_name = match self.participants.get_mut(&key.publisher) {
            Some(p) => {
                p.published.retain(|m| *m != key.mid);
                p.room.clone()
            }
            None => return,
        };
        self.notify(WebhookEvent::TrackUnpublished {
            room: room_name.clone(),
            peer_id: track.publisher_peer.clone(),
            track_id: track.track_id.clone(),
        });
        let mut affected = Vec::new();
        for (sid, idx) in track.subscribers {
            let Some(sub) = self.participants.get_mut(&sid) else {
                continue;
            };
            if let Some(slot) = sub.slots.get_mut(idx) {
                if slot.source == Some(key) {
                    slot.source = None;
                    let mid = slot.mid.to_string();
                    self.outputs.push_back(Output::Signal {
                        participant: sid,
                        message: ServerMessage::TrackUnpublished {
                            track_id: track.track_id.clone(),
                            peer_id: track.publisher_peer.clone(),
                            mid,
                        },
                    });
                    affected.push(sid);
                }
            }
        }
        if let Some(room) = self.rooms.get_mut(&room_name) {
            room.tracks.retain(|k| *k != key);
            for m in &room.members {
                if let Some(p) = self.participants.get_mut(m) {
                    p.wanted.retain(|(k, _)| *k != key);
                }
            }
        }
        for sid in affected {
            self.fill_slots(sid);
        }
    }

    /// Give free slots to waiting tracks, in the order the tracks appeared.
    fn fill_slots(&mut self, sid: ParticipantId) {
        loop {
            let Some(sub) = self.participants.get(&sid) else {
                return;
            };
            let next = sub
                .wanted
                .iter()
                .enumerate()
                .find_map(|(i, (key, kind))| sub.free_slot(*kind).map(|slot| (i, *key, slot)));
            let Some((i, key, slot)) = next else {
                return;
            };
            if let Some(sub) = self.participants.get_mut(&sid) {
                sub.wanted.remove(i);
            }
            self.bind(sid, slot, key);
        }
    }

    fn bind(&mut self, sid: ParticipantId, idx: usize, key: TrackKey) {
        let Some(track) = self.tracks.get_mut(&key) else {
            return;
        };
        let Some(slot) = self
            .participants
            .get_mut(&sid)
            .and_then(|p| p.slots.get_mut(idx))
        else {
            return;
        };
        let video = track.kind == MediaKind::Video;
        slot.source = Some(key);
        slot.codecs.clear();
        slot.forwarder.switch_source(video);
        track.subscribers.push((sid, idx));
        let message = ServerMessage::TrackPublished {
            track: TrackInfo {
                track_id: track.track_id.clone(),
                kind: track.kind,
                muted: track.muted,
            },
            peer_id: track.publisher_peer.clone(),
            mid: slot.mid.to_string(),
            stream_id: slot.stream_id.clone(),
        };
        self.outputs.push_back(Output::Signal {
            participant: sid,
            message,
        });
        if video {
            self.request_keyframe(key, KeyframeRequestKind::Pli);
        }
    }

    /// Detach a slot from its source, telling the subscriber. Returns the track it carried.
    fn unbind(&mut self, sid: ParticipantId, idx: usize) -> Option<TrackKey> {
        let slot = self.participants.get_mut(&sid)?.slots.get_mut(idx)?;
        let key = slot.source.take()?;
        let mid = slot.mid.to_string();
        let track = self.tracks.get_mut(&key)?;
        track.subscribers.retain(|s| *s != (sid, idx));
        self.outputs.push_back(Output::Signal {
            participant: sid,
            message: ServerMessage::TrackUnpublished {
                track_id: track.track_id.clone(),
                peer_id: track.publisher_peer.clone(),
                mid,
            },
        });
        Some(key)
    }

    /// Offer new slots when tracks wait and no offer is outstanding.
    fn negotiate(&mut self, sid: ParticipantId) {
        let Some(p) = self.participants.get_mut(&sid) else {
            return;
        };
        if !matches!(p.negotiation, Negotiation::Stable) {
            return;
        }
        let mut add = Vec::new();
        for kind in [MediaKind::Audio, MediaKind::Video] {
            for _ in 0..p.wanted_of(kind) {
                add.push(kind);
            }
        }
        if add.is_empty() {
            return;
        }
        let seeds: Vec<u64> = add.iter().map(|_| p.next_slot_seed()).collect();
        let mut api = p.rtc.sdp_api();
        let mut new_slots = Vec::new();
        for (kind, seed) in add.iter().zip(seeds) {
            let stream_id = format!("sb{}-{}", p.id.0, seed % 1_000_000);
            let mid = api.add_media(
                str0m_kind(*kind),
                Direction::SendOnly,
                Some(stream_id.clone()),
                Some(stream_id.clone()),
                None,
            );
            new_slots.push(Slot::new(mid, *kind, stream_id, seed));
        }
        match api.apply() {
            Some((offer, pending)) => {
                p.negotiation = Negotiation::ServerOffer(pending);
                p.slots.extend(new_slots);
                debug!(participant = %sid, slots = add.len(), "server offer");
                self.outputs.push_back(Output::Signal {
                    participant: sid,
                    message: ServerMessage::Offer {
                        sdp: offer.to_sdp_string(),
                    },
                });
                self.mark_dirty(sid);
            }
            None => warn!(participant = %sid, "no SDP changes to offer"),
        }
    }

    // ---------------------------------------------------------------- commands

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Join {
                participant,
                room,
                peer_id,
                name,
                rtc,
            } => self.join(participant, room, peer_id, name, *rtc),
            Command::Offer { participant, sdp } => self.offer(participant, &sdp),
            Command::Answer { participant, sdp } => self.answer(participant, &sdp),
            Command::Candidate {
                participant,
                candidate,
            } => self.candidate(participant, &candidate),
            Command::Leave {
                participant,
                reason,
            } => self.remove(participant, Some(reason)),
            Command::Message {
                participant,
                to,
                data,
            } => self.participant_message(participant, to, data),
            Command::Admin { id, action } => {
                let reply = self.admin(action);
                self.outputs.push_back(Output::Reply { id, reply });
            }
        }
    }

    pub(crate) fn notify(&mut self, event: WebhookEvent) {
        self.outputs
            .push_back(Output::Notify(Notification::Event(event)));
    }

    pub(crate) fn signal(&mut self, participant: ParticipantId, message: ServerMessage) {
        self.outputs.push_back(Output::Signal {
            participant,
            message,
        });
    }

    pub(crate) fn peer_info(&self, pid: ParticipantId) -> Option<PeerInfo> {
        let p = self.participants.get(&pid)?;
        let tracks = p
            .published
            .iter()
            .filter_map(|mid| {
                self.tracks
                    .get(&TrackKey {
                        publisher: pid,
                        mid: *mid,
                    })
                    .map(|t| TrackInfo {
                        track_id: t.track_id.clone(),
                        kind: t.kind,
                        muted: t.muted,
                    })
            })
            .collect();
        Some(PeerInfo {
            peer_id: p.peer_id.clone(),
            name: p.name.clone(),
            tracks,
        })
    }

    fn join(
        &mut self,
        pid: ParticipantId,
        room: String,
        peer_id: String,
        name: String,
        new: NewRtc,
    ) {
        let taken = self.participants.contains_key(&pid)
            || self.rooms.get(&room).is_some_and(|r| {
                r.members.iter().any(|m| {
                    self.participants
                        .get(m)
                        .is_some_and(|p| p.peer_id == peer_id)
                })
            });
        let limit = self.config.max_participants_per_room;
        let full = limit > 0
            && self
                .rooms
                .get(&room)
                .is_some_and(|r| r.members.len() >= limit);
        let refusal = if taken {
            Some((
                ErrorCode::PeerIdTaken,
                format!("peer id {peer_id:?} is already in room {room:?}"),
            ))
        } else if full {
            Some((
                ErrorCode::RoomFull,
                format!("room {room:?} has reached its limit of {limit} participants"),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            self.signal(pid, error(code, message, "join"));
            self.outputs.push_back(Output::Removed {
                participant: pid,
                reason: None,
            });
            return;
        }
        let members: Vec<PeerInfo> = self
            .rooms
            .get(&room)
            .map(|r| {
                r.members
                    .iter()
                    .filter_map(|m| self.peer_info(*m))
                    .collect()
            })
            .unwrap_or_default();
        let participant = Participant {
            id: pid,
            peer_id: peer_id.clone(),
            name: name.clone(),
            room: room.clone(),
            rtc: new.rtc,
            ufrag: new.ufrag.clone(),
            candidate: new.candidate,
            addrs: Vec::new(),
            deadline: None,
            dirty: false,
            slots: Vec::new(),
            wanted: VecDeque::new(),
            published: Vec::new(),
            routes: FastMap::default(),
            negotiation: Negotiation::AwaitingFirstOffer,
            joined_at: self.now,
            connected: false,
            disconnected_since: None,
            slot_counter: 0,
            feedback: FastMap::default(),
        };
        self.participants.insert(pid, participant);
        self.by_ufrag.insert(new.ufrag, pid);
        if !self.rooms.contains_key(&room) {
            self.notify(WebhookEvent::RoomStarted { room: room.clone() });
        }
        self.notify(WebhookEvent::ParticipantJoined {
            room: room.clone(),
            peer_id: peer_id.clone(),
            name: name.clone(),
        });
        let room_state = self.rooms.entry(room.clone()).or_default();
        let others = room_state.members.clone();
        room_state.members.push(pid);
        info!(participant = %pid, %room, %peer_id, "joined");
        self.signal(
            pid,
            ServerMessage::Joined {
                protocol_version: PROTOCOL_VERSION,
                room,
                peer_id: peer_id.clone(),
                members,
            },
        );
        let me = PeerInfo {
            peer_id,
            name,
            tracks: Vec::new(),
        };
        for other in others {
            self.signal(other, ServerMessage::PeerJoined { peer: me.clone() });
        }
        // Existing tracks wait for slots until the first offer/answer is done.
        let tracks: Vec<(TrackKey, MediaKind)> = self
            .participants
            .get(&pid)
            .and_then(|p| self.rooms.get(&p.room))
            .map(|r| {
                r.tracks
                    .iter()
                    .filter_map(|k| self.tracks.get(k).map(|t| (*k, t.kind)))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(p) = self.participants.get_mut(&pid) {
            p.wanted.extend(tracks);
        }
        self.drain_now(pid);
    }

    /// Forget the slots of a server offer that will never be answered. Subscriptions name slots
    /// by index, and offered slots can sit before negotiated ones (a client `recvonly` m-line
    /// becomes a slot after a server offer was made), so the survivors' subscriptions are
    /// renumbered.
    fn drop_offered_slots(&mut self, pid: ParticipantId) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        let mut moved = Vec::new();
        let mut next = 0;
        for (old, slot) in p.slots.iter().enumerate() {
            if slot.state == SlotState::Offered {
                continue;
            }
            if let (true, Some(key)) = (old != next, slot.source) {
                moved.push((key, old, next));
            }
            next += 1;
        }
        p.slots.retain(|s| s.state != SlotState::Offered);
        for (key, old, new) in moved {
            if let Some(track) = self.tracks.get_mut(&key) {
                for sub in track.subscribers.iter_mut().filter(|s| **s == (pid, old)) {
                    sub.1 = new;
                }
            }
        }
    }

    fn offer(&mut self, pid: ParticipantId, sdp: &str) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(offer) => offer,
            Err(e) => {
                self.signal(
                    pid,
                    error(
                        ErrorCode::BadSdp,
                        format!("offer is not valid SDP: {e}"),
                        "offer",
                    ),
                );
                return;
            }
        };
        let first = matches!(p.negotiation, Negotiation::AwaitingFirstOffer);
        if matches!(p.negotiation, Negotiation::ServerOffer(_)) {
            // Glare: the client's offer wins; ours is rolled back by str0m and re-made later.
            self.drop_offered_slots(pid);
        }
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        let result = p.rtc.sdp_api().accept_offer(offer);
        match result {
            Ok(answer) => {
                p.negotiation = Negotiation::Stable;
                let sdp = answer.to_sdp_string();
                let candidate = p.candidate.clone();
                self.signal(pid, ServerMessage::Answer { sdp });
                if first {
                    self.signal(
                        pid,
                        ServerMessage::Candidate {
                            candidate,
                            sdp_mid: None,
                            sdp_m_line_index: Some(0),
                        },
                    );
                }
            }
            Err(e) => {
                if !first {
                    p.negotiation = Negotiation::Stable;
                }
                self.signal(
                    pid,
                    error(ErrorCode::BadSdp, format!("offer refused: {e}"), "offer"),
                );
            }
        }
        self.after_sdp(pid);
    }

    /// After an SDP exchange step: emit what str0m produced, give new slots to waiting tracks,
    /// and offer more slots if some are still short.
    fn after_sdp(&mut self, pid: ParticipantId) {
        self.drain_now(pid);
        self.fill_slots(pid);
        self.negotiate(pid);
    }

    fn answer(&mut self, pid: ParticipantId, sdp: &str) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        let Negotiation::ServerOffer(pending) =
            std::mem::replace(&mut p.negotiation, Negotiation::Stable)
        else {
            let state = std::mem::replace(&mut p.negotiation, Negotiation::Stable);
            p.negotiation = state;
            self.signal(
                pid,
                error(
                    ErrorCode::NoPendingOffer,
                    "the server has no offer waiting for an answer",
                    "answer",
                ),
            );
            return;
        };
        let result = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| format!("answer is not valid SDP: {e}"))
            .and_then(|answer| {
                p.rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .map_err(|e| format!("answer refused: {e}"))
            });
        match result {
            Ok(()) => {
                let Participant { slots, rtc, .. } = p;
                for slot in slots.iter_mut().filter(|s| s.state == SlotState::Offered) {
                    slot.attach(rtc);
                }
            }
            Err(message) => {
                // The offer is void; its slots never existed. Offer again below.
                self.drop_offered_slots(pid);
                self.signal(pid, error(ErrorCode::BadSdp, message, "answer"));
            }
        }
        self.after_sdp(pid);
    }

    fn candidate(&mut self, pid: ParticipantId, line: &str) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        let line = line.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        if line.is_empty() {
            return; // end of candidates
        }
        match Candidate::from_sdp_string(line) {
            Ok(c) => {
                p.rtc.add_remote_candidate(c);
                self.drain_now(pid);
            }
            Err(e) => self.signal(
                pid,
                error(
                    ErrorCode::BadCandidate,
                    format!("bad ICE candidate: {e}"),
                    "candidate",
                ),
            ),
        }
    }

    /// Take a participant out: its tracks end for everyone, its subscriptions go, the room
    /// hears it left, and the demux forgets its addresses.
    pub(crate) fn remove(&mut self, pid: ParticipantId, reason: Option<LeaveReason>) {
        let Some(published) = self.participants.get(&pid).map(|p| p.published.clone()) else {
            return;
        };
        for mid in published {
            self.unpublish(TrackKey {
                publisher: pid,
                mid,
            });
        }
        let Some(mut p) = self.participants.remove(&pid) else {
            return;
        };
        for (idx, slot) in p.slots.iter().enumerate() {
            if let Some(key) = slot.source {
                if let Some(track) = self.tracks.get_mut(&key) {
                    track.subscribers.retain(|s| *s != (pid, idx));
                }
            }
        }
        if let Some(reason) = reason {
            self.notify(WebhookEvent::ParticipantLeft {
                room: p.room.clone(),
                peer_id: p.peer_id.clone(),
                reason,
            });
        }
        if let Some(room) = self.rooms.get_mut(&p.room) {
            room.members.retain(|m| *m != pid);
            let others = room.members.clone();
            if others.is_empty() {
                self.rooms.remove(&p.room);
                info!(room = %p.room, "room closed");
                self.notify(WebhookEvent::RoomFinished {
                    room: p.room.clone(),
                });
            }
            for other in others {
                self.signal(
                    other,
                    ServerMessage::PeerLeft {
                        peer_id: p.peer_id.clone(),
                    },
                );
            }
        }
        self.by_ufrag.remove(&p.ufrag);
        for addr in &p.addrs {
            if self.by_addr.get(addr) == Some(&pid) {
                self.by_addr.remove(addr);
            }
        }
        p.rtc.disconnect();
        info!(participant = %pid, peer_id = %p.peer_id, ?reason, "left");
        self.outputs.push_back(Output::Removed {
            participant: pid,
            reason,
        });
    }
}

/// Drain one `Rtc` until it asks for a timeout: datagrams go out, events become work.
fn drain(
    p: &mut Participant,
    now: Instant,
    outputs: &mut VecDeque<Output>,
    work: &mut Vec<Work>,
    timers: &mut BinaryHeap<Reverse<(Instant, ParticipantId)>>,
    stats: &mut ShardStats,
) -> Result<(), str0m::RtcError> {
    loop {
        match p.rtc.poll_output()? {
            str0m::Output::Timeout(at) => {
                if p.deadline != Some(at) {
                    p.deadline = Some(at);
                    timers.push(Reverse((at, p.id)));
                }
                return Ok(());
            }
            str0m::Output::Transmit(t) => {
                let contents: Vec<u8> = t.contents.into();
                stats.datagrams_out += 1;
                stats.bytes_out += contents.len() as u64;
                outputs.push_back(Output::Transmit {
                    destination: t.destination,
                    contents,
                });
            }
            str0m::Output::Event(event) => on_event(p, event, now, work, stats),
        }
    }
}

fn on_event(
    p: &mut Participant,
    event: Event,
    now: Instant,
    work: &mut Vec<Work>,
    stats: &mut ShardStats,
) {
    match event {
        Event::RtpPacket(packet) => {
            stats.rtp_in += 1;
            let ssrc = packet.header.ssrc;
            let route = match p.routes.get(&ssrc) {
                Some(route) => Some(*route),
                None => {
                    let route = p.rtc.direct_api().stream_rx(&ssrc).map(|rx| Route {
                        mid: rx.mid(),
                        rid: rx.rid(),
                    });
                    if let Some(route) = route {
                        p.routes.insert(ssrc, route);
                    }
                    route
                }
            };
            match route {
                Some(route) => work.push(Work::Rtp(
                    TrackKey {
                        publisher: p.id,
                        mid: route.mid,
                    },
                    route.rid,
                    packet,
                )),
                None => stats.dropped_unrouted += 1,
            }
        }
        Event::KeyframeRequest(req) => work.push(Work::KeyframeRequest {
            subscriber: p.id,
            mid: req.mid,
            kind: req.kind,
        }),
        Event::MediaAdded(m) => work.push(Work::MediaAdded {
            participant: p.id,
            mid: m.mid,
            kind: kind_of(m.kind),
            direction: m.direction,
        }),
        Event::MediaChanged(m) => work.push(Work::MediaChanged {
            participant: p.id,
            mid: m.mid,
            direction: m.direction,
        }),
        Event::Connected => {
            p.connected = true;
            info!(participant = %p.id, room = %p.room, peer_id = %p.peer_id, "media connected");
            work.push(Work::Connected(p.id));
        }
        Event::MediaEgressStats(s) => {
            let (nacks, plis) = p.feedback_delta(s.mid, true, s.nacks, s.plis + s.firs);
            stats.nacks_received += nacks;
            stats.keyframe_requests_received += plis;
        }
        Event::MediaIngressStats(s) => {
            let (nacks, _) = p.feedback_delta(s.mid, false, s.nacks, 0);
            stats.nacks_sent += nacks;
        }
        Event::IceConnectionStateChange(state) => {
            debug!(participant = %p.id, ?state, "ICE state");
            p.disconnected_since = match state {
                IceConnectionState::Disconnected => Some(p.disconnected_since.unwrap_or(now)),
                _ => None,
            };
        }
        Event::Closed => work.push(Work::Closed(p.id)),
        _ => {}
    }
}
