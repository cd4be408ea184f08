//! Driving one participant's engine: demux a datagram to it, feed it one input, drain it to
//! `Timeout`, and turn what it produced into [`Work`] for the other parts. Nothing touches
//! another participant during a drain (str0m's single-mutation rule, and no two `&mut Rtc` at
//! once); the work is applied afterwards.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::channel::{ChannelData, ChannelId};
use str0m::media::{Direction, KeyframeRequestKind, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpPacket;
use str0m::{Event, IceConnectionState, Rtc};
use switchboard_protocol::{LeaveReason, MediaKind};
use tracing::{debug, info, warn};

use super::demux::{Admit, Remote};
use super::engine::Failed;
use super::ingress::Verdict;
use super::interface::{Notification, Output, Transport};
use super::participant::{Local, Participant, Route, TrackRef};
use super::Shard;
use crate::stats::{Op, ShardStats};
use crate::stun;

/// Work found while draining one engine that touches other participants.
// The RTP variant is both the largest and by far the most common; boxing it would cost an
// allocation per packet to save stack space on the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Work {
    Rtp(TrackRef, Option<Rid>, RtpPacket),
    KeyframeRequest {
        subscriber: Local,
        mid: Mid,
        kind: KeyframeRequestKind,
    },
    MediaAdded {
        participant: Local,
        mid: Mid,
        kind: MediaKind,
        direction: Direction,
    },
    MediaChanged {
        participant: Local,
        mid: Mid,
        direction: Direction,
    },
    /// str0m saw one of the participant's published encodings stop (or start again).
    LayerPaused {
        publisher: Local,
        mid: Mid,
        rid: Option<Rid>,
        paused: bool,
    },
    Closed(Local),
    Connected(Local),
    ChannelOpen(Local, ChannelId, String),
    ChannelData(Local, ChannelData),
    ChannelClosed(Local, ChannelId),
}

pub(crate) fn kind_of(kind: str0m::media::MediaKind) -> MediaKind {
    match kind {
        str0m::media::MediaKind::Audio => MediaKind::Audio,
        str0m::media::MediaKind::Video => MediaKind::Video,
    }
}

/// What a drain may touch besides the engine: the participant's own records and the shard's
/// queues.
struct Drain<'a> {
    local: Local,
    now: Instant,
    outputs: &'a mut std::collections::VecDeque<Output>,
    work: &'a mut Vec<Work>,
    timers: &'a mut super::timers::Timers,
    stats: &'a mut ShardStats,
}

impl Shard {
    pub(super) fn handle_datagram(
        &mut self,
        transport: Transport,
        source: SocketAddr,
        contents: &[u8],
    ) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += contents.len() as u64;
        let now = self.now;
        let destination = self.config.destination(transport, source);
        let Ok(receive) = Receive::new(transport.protocol(), source, destination, contents) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let input = str0m::Input::Receive(now, receive);
        let remote = (transport, source);
        let local = match self.demux.lookup(remote, now) {
            Some(local) => local,
            None => match self.new_path(remote, contents, &input) {
                Some(local) => local,
                None => return,
            },
        };
        if !self.within_budget(local) {
            return;
        }
        self.drive(local, Op::Datagram, input);
    }

    /// A datagram from an unknown address: map it if it is an authenticated STUN check that
    /// names one of our participants.
    fn new_path(
        &mut self,
        source: Remote,
        contents: &[u8],
        input: &str0m::Input<'_>,
    ) -> Option<Local> {
        let Some(local) = stun::local_ufrag(contents).and_then(|u| self.demux.by_ufrag(u)) else {
            self.stats.dropped_unknown_source += 1;
            return None;
        };
        let Some(p) = self.members.get_mut(local.0) else {
            self.stats.dropped_unknown_source += 1;
            return None;
        };
        match p.engine.call(p.id, Op::Demux, |rtc| rtc.accepts(input)) {
            Ok(true) => {}
            Ok(false) => {
                self.stats.dropped_unauthenticated += 1;
                return None;
            }
            Err(Failed) => {
                self.failed.push(local);
                return None;
            }
        }
        match self.demux.admit(local, source, &mut p.addrs, self.now) {
            Admit::Mapped => debug!(participant = %p.id, ?source, "new ICE path"),
            Admit::Replaced(old) => {
                debug!(participant = %p.id, ?source, ?old, "new ICE path replaces a silent one")
            }
            Admit::Full => {
                self.stats.dropped_path_limit += 1;
                return None;
            }
        }
        Some(local)
    }

    /// Charge one datagram to the sender's ingress budget; false when it is over (dropped).
    fn within_budget(&mut self, local: Local) -> bool {
        let now = self.now;
        let Some(p) = self.members.get_mut(local.0) else {
            return false;
        };
        match p.ingress.take(now) {
            Verdict::Pass => true,
            Verdict::Drop => {
                self.stats.dropped_flood += 1;
                false
            }
            Verdict::DropAndNotify => {
                self.stats.dropped_flood += 1;
                let id = p.id;
                warn!(participant = %id, "datagrams beyond the ingress budget; dropping");
                self.outputs.push_back(Output::Signal {
                    participant: id,
                    message: switchboard_protocol::ServerMessage::Error {
                        code: switchboard_protocol::ErrorCode::RateLimited,
                        message: format!(
                            "more than {} datagrams per second from this session; the excess is \
                             dropped",
                            super::ingress::RATE
                        ),
                        request: None,
                    },
                });
                false
            }
        }
    }

    /// Feed one input to a participant's engine, drain it, and propagate what it produced.
    pub(super) fn drive(&mut self, local: Local, op: Op, input: str0m::Input<'_>) {
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        let mut drain = Drain {
            local,
            now: self.now,
            outputs: &mut self.outputs,
            work: &mut self.work,
            timers: &mut self.timers,
            stats: &mut self.stats,
        };
        // The engine and the rest of the participant are borrowed apart: the closure gets the
        // `Rtc`, the drain gets the participant's routing records.
        let Participant {
            id,
            engine,
            room,
            peer_id,
            routes,
            published,
            feedback,
            deadline,
            connected,
            disconnected_since,
            estimate,
            ..
        } = p;
        let who = *id;
        let mut state = DrainState {
            id: who,
            room,
            peer_id,
            routes,
            published,
            feedback,
            deadline,
            connected,
            disconnected_since,
            estimate,
        };
        let result = engine.call(who, op, |rtc| {
            if let Err(e) = rtc.handle_input(input) {
                // Bad packets are dropped inside str0m; an error here is worth a log line but is
                // only fatal when the engine says it is no longer alive (checked below).
                debug!(participant = %who, error = %e, "rtc rejected input");
            }
            let drained = drain_rtc(rtc, &mut state, &mut drain);
            (drained, rtc.is_alive())
        });
        let closed = match result {
            Ok((Ok(()), alive)) => !alive,
            Ok((Err(e), _)) => {
                engine.fail(who, op, &e);
                self.failed.push(local);
                false
            }
            Err(Failed) => {
                self.failed.push(local);
                false
            }
        };
        self.process_work();
        if closed {
            self.remove(local, Some(LeaveReason::TransportClosed));
        }
    }

    /// Drain after a mutation that was not a `handle_input` (SDP calls, candidates).
    pub(super) fn drain_now(&mut self, local: Local) {
        let now = self.now;
        self.drive(local, Op::Timer, str0m::Input::Timeout(now));
    }

    pub(super) fn mark_dirty(&mut self, local: Local) {
        if let Some(p) = self.members.get_mut(local.0) {
            if !p.dirty {
                p.dirty = true;
                self.dirty.push(local);
            }
        }
    }

    /// Emit what was written to one participant now, ahead of what is queued after it.
    pub(super) fn flush_one(&mut self, local: Local) {
        let Some(p) = self.members.get_mut(local.0) else {
            return;
        };
        if !p.dirty {
            return;
        }
        p.dirty = false;
        self.dirty.retain(|d| *d != local);
        let now = self.now;
        self.drive(local, Op::Timer, str0m::Input::Timeout(now));
    }

    /// Drive the next participant written to since its last drain, and only that one: the
    /// caller hands out what it sent before the next is driven. Draining every written
    /// participant first held a whole fan-out's encrypted datagrams at once (in a 1 → 200 room, a
    /// turn that read 50 packets queued 10 000 of them, 17 MB, the first subscriber's waiting
    /// for the last one's).
    pub(super) fn flush_next_dirty(&mut self) {
        if self.flushing.is_empty() {
            // Those written to during this pass wait for the next, in the order they came.
            self.flushing.extend(self.dirty.drain(..));
        }
        while let Some(local) = self.flushing.pop_front() {
            let Some(p) = self.members.get_mut(local.0) else {
                continue;
            };
            if !p.dirty {
                // Flushed ahead of its turn (`flush_one`), or left and its place reused.
                continue;
            }
            p.dirty = false;
            let now = self.now;
            self.drive(local, Op::Timer, str0m::Input::Timeout(now));
            return;
        }
    }

    pub(super) fn handle_timeout(&mut self) {
        let now = self.now;
        let mut due = std::mem::take(&mut self.due);
        self.timers.pop_due(now, &mut due);
        for (at, local) in due.drain(..) {
            if let Some(p) = self.members.get_mut(local.0) {
                if p.deadline == Some(at) {
                    p.deadline = None;
                    self.drive(local, Op::Timer, str0m::Input::Timeout(now));
                }
            }
        }
        self.due = due;
        self.poll_keyframes();
        if self.timers.housekeeping_due(now) {
            self.housekeeping();
        }
        if self.timers.speakers_due(now) {
            self.announce_speakers();
        }
        if self.timers.allocation_due(now) {
            self.allocate_all(true);
            self.dynacast_all();
        }
    }

    fn housekeeping(&mut self) {
        let now = self.now;
        let mut expired = Vec::new();
        for (key, p) in self.members.iter() {
            let never_connected = !p.connected && now >= p.joined_at + self.config.connect_timeout;
            let gone = p
                .disconnected_since
                .is_some_and(|since| now >= since + self.config.disconnect_grace);
            if never_connected || gone {
                expired.push(Local(key));
            }
        }
        for local in expired {
            if let Some(p) = self.members.get(local.0) {
                info!(participant = %p.id, "transport timed out");
            }
            self.remove(local, Some(LeaveReason::TransportClosed));
        }
        self.sweep_failed();
    }

    pub(super) fn process_work(&mut self) {
        while !self.work.is_empty() {
            let mut batch = std::mem::replace(&mut self.work, std::mem::take(&mut self.spare_work));
            for item in batch.drain(..) {
                self.apply(item);
            }
            // Keep the capacity for the next batch.
            if self.spare_work.capacity() < batch.capacity() {
                self.spare_work = batch;
            }
        }
        for local in std::mem::take(&mut self.negotiations) {
            self.negotiate(local);
        }
    }

    fn apply(&mut self, item: Work) {
        match item {
            Work::Rtp(track, rid, packet) => self.forward(track, rid, packet),
            Work::KeyframeRequest {
                subscriber,
                mid,
                kind,
            } => {
                let source = self
                    .members
                    .get(subscriber.0)
                    .and_then(|p| p.slot_by_mid(mid).and_then(|id| p.slots.get(id.0)))
                    .and_then(|s| Some((s.source?, s.target.or(s.layer)?)));
                if let Some((track, layer)) = source {
                    self.request_keyframe(track, layer, kind);
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
            Work::LayerPaused {
                publisher,
                mid,
                rid,
                paused,
            } => self.layer_paused(publisher, mid, rid, paused),
            Work::Closed(local) => self.remove(local, Some(LeaveReason::TransportClosed)),
            Work::ChannelOpen(local, channel, label) => self.channel_opened(local, channel, label),
            Work::ChannelData(local, data) => {
                self.relay_data(local, data.id, data.binary, data.data)
            }
            Work::ChannelClosed(local, channel) => self.channel_closed(local, channel),
            Work::Connected(local) => {
                if let Some(p) = self.members.get(local.0) {
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

/// The participant's records a drain updates (everything but the engine).
struct DrainState<'a> {
    id: crate::ids::ParticipantId,
    room: &'a str,
    peer_id: &'a str,
    routes: &'a mut crate::hash::FastMap<str0m::rtp::Ssrc, Route>,
    published: &'a [(Mid, TrackRef)],
    feedback: &'a mut crate::hash::FastMap<(Mid, bool), (u64, u64)>,
    deadline: &'a mut Option<Instant>,
    connected: &'a mut bool,
    disconnected_since: &'a mut Option<Instant>,
    estimate: &'a mut Option<u64>,
}

/// Timeouts due at once that one drain feeds back to an engine before it leaves the rest to
/// the timers (a pacer releasing a burst of packets asks for one per packet).
const MAX_IMMEDIATE_TIMEOUTS: u32 = 512;
/// A deadline this close counts as due now (str0m's "at once" is the next microsecond).
const IMMEDIATE: Duration = Duration::from_micros(20);

/// Drain one `Rtc` until it asks for a timeout: datagrams go out, events become work.
fn drain_rtc(
    rtc: &mut Rtc,
    p: &mut DrainState<'_>,
    d: &mut Drain<'_>,
) -> Result<(), str0m::RtcError> {
    let mut immediate = 0;
    loop {
        match rtc.poll_output()? {
            // str0m's pacer (on with bandwidth estimation) lets one paced packet out per
            // timeout and then asks for one a microsecond later (written packets ask for one
            // too; unpaced bursts drain at once, vendor/README.md patches 3 and 11); leaving that
            // to the shard's timers would release one packet per wake-up and queue the rest for
            // seconds. Bounded: a runaway engine waits for the next wake-up like any other.
            str0m::Output::Timeout(at)
                if at <= d.now + IMMEDIATE && immediate < MAX_IMMEDIATE_TIMEOUTS =>
            {
                immediate += 1;
                rtc.handle_input(str0m::Input::Timeout(at.max(d.now)))?;
            }
            str0m::Output::Timeout(at) => {
                if *p.deadline != Some(at) {
                    *p.deadline = Some(at);
                    d.timers.schedule(d.local, at);
                }
                return Ok(());
            }
            str0m::Output::Transmit(t) => {
                let contents: Vec<u8> = t.contents.into();
                d.stats.datagrams_out += 1;
                d.stats.bytes_out += contents.len() as u64;
                let transport = match t.proto {
                    Protocol::Tcp | Protocol::SslTcp | Protocol::Tls => Transport::Tcp,
                    Protocol::Udp => Transport::Udp,
                };
                d.outputs.push_back(Output::Transmit {
                    transport,
                    destination: t.destination,
                    contents,
                });
            }
            str0m::Output::Event(event) => on_event(rtc, p, d, event),
        }
    }
}

fn on_event(rtc: &mut Rtc, p: &mut DrainState<'_>, d: &mut Drain<'_>, event: Event) {
    match event {
        Event::RtpPacket(packet) => {
            d.stats.rtp_in += 1;
            let ssrc = packet.header.ssrc;
            let route = match p.routes.get(&ssrc) {
                Some(route) => Some(*route),
                None => {
                    let route = rtc.direct_api().stream_rx(&ssrc).map(|rx| Route {
                        mid: rx.mid(),
                        rid: rx.rid(),
                    });
                    if let Some(route) = route {
                        p.routes.insert(ssrc, route);
                    }
                    route
                }
            };
            let track = route.and_then(|r| {
                p.published
                    .iter()
                    .find(|(m, _)| *m == r.mid)
                    .map(|(_, t)| (*t, r.rid))
            });
            match track {
                Some((track, rid)) => d.work.push(Work::Rtp(track, rid, packet)),
                None => d.stats.dropped_unrouted += 1,
            }
        }
        Event::KeyframeRequest(req) => d.work.push(Work::KeyframeRequest {
            subscriber: d.local,
            mid: req.mid,
            kind: req.kind,
        }),
        Event::MediaAdded(m) => d.work.push(Work::MediaAdded {
            participant: d.local,
            mid: m.mid,
            kind: kind_of(m.kind),
            direction: m.direction,
        }),
        Event::MediaChanged(m) => d.work.push(Work::MediaChanged {
            participant: d.local,
            mid: m.mid,
            direction: m.direction,
        }),
        Event::Connected => {
            *p.connected = true;
            info!(participant = %p.id, room = %p.room, peer_id = %p.peer_id, "media connected");
            d.work.push(Work::Connected(d.local));
        }
        Event::MediaEgressStats(s) => {
            let (nacks, plis) = feedback_delta(p.feedback, s.mid, true, s.nacks, s.plis + s.firs);
            d.stats.nacks_received += nacks;
            d.stats.keyframe_requests_received += plis;
        }
        Event::MediaIngressStats(s) => {
            let (nacks, _) = feedback_delta(p.feedback, s.mid, false, s.nacks, 0);
            d.stats.nacks_sent += nacks;
        }
        Event::IceConnectionStateChange(state) => {
            debug!(participant = %p.id, ?state, "ICE state");
            *p.disconnected_since = match state {
                IceConnectionState::Disconnected => Some(p.disconnected_since.unwrap_or(d.now)),
                _ => None,
            };
        }
        Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. }) => {
            *p.estimate = Some(estimate.as_u64());
        }
        Event::StreamPaused(s) => d.work.push(Work::LayerPaused {
            publisher: d.local,
            mid: s.mid,
            rid: s.rid,
            paused: s.paused,
        }),
        Event::Closed => d.work.push(Work::Closed(d.local)),
        Event::ChannelOpen(channel, label) => {
            d.work.push(Work::ChannelOpen(d.local, channel, label))
        }
        Event::ChannelData(data) => d.work.push(Work::ChannelData(d.local, data)),
        Event::ChannelClose(channel) => d.work.push(Work::ChannelClosed(d.local, channel)),
        _ => {}
    }
}

/// Turn str0m's cumulative per-stream counters into increments since the last report.
fn feedback_delta(
    feedback: &mut crate::hash::FastMap<(Mid, bool), (u64, u64)>,
    mid: Mid,
    egress: bool,
    nacks: u64,
    plis: u64,
) -> (u64, u64) {
    let last = feedback
        .insert((mid, egress), (nacks, plis))
        .unwrap_or((0, 0));
    (nacks.saturating_sub(last.0), plis.saturating_sub(last.1))
}
