//! A shard: one core's worth of rooms and participants, driven like str0m itself.
//!
//! # Contract
//!
//! The runtime drives a shard with two calls, and relies on nothing else:
//!
//! - [`Shard::handle_input`] takes one [`Input`]: a datagram that arrived (with its arrival time),
//!   a [`Command`] from the control plane, or a timeout. Time only moves forward inside the shard
//!   (an older `now` is treated as the newest seen).
//! - [`Shard::poll_output`] returns, one by one, what the inputs produced: datagrams to send,
//!   signalling messages, removals, admin replies, notifications, and finally
//!   [`Output::Timeout`], the latest time at which the shard wants `Input::Timeout`.
//!
//! **The run-loop rule:** after every `handle_input`, call `poll_output` until it returns
//! `Output::Timeout`, and feed `Input::Timeout(now)` no later than that instant (earlier is fine).
//! Several inputs may be handled before polling (a batch of datagrams read with one clock
//! reading); writes to each subscriber are then batched, which is the point: `poll_output` feeds
//! every participant written to one `Input::Timeout(now)` and drains it once.
//!
//! No I/O and no clock reads happen here: the runtime owns sockets, threads and time.
//!
//! # Parts
//!
//! Each part owns its state; this module only holds them together:
//!
//! | module | job |
//! |---|---|
//! | [`interface`] | the vocabulary: config, commands, inputs, outputs, admin and notification types |
//! | `engine` | the guard: the only code that touches a str0m `Rtc`, under `catch_unwind` |
//! | `drive` | feeding one engine an input, draining it, turning its events into work |
//! | `demux` | source address → participant, STUN ufrag for new paths, eviction that spoofing cannot abuse |
//! | `timers` | participant deadlines, deferred keyframe requests, housekeeping |
//! | `fanout` | published tracks, their subscribers, forwarding one packet to all of them |
//! | `subscriptions` | which track goes to which receive slot, and when slots are short |
//! | `negotiation` | client offers and answers, candidates, server offers |
//! | `membership` | joining, leaving, rooms |
//! | `admin` | operator actions and data messages |
//! | `datachannel` | relaying data-channel messages between the members of a room |
//! | `speakers` | ranking each room's speakers and announcing changes |
//! | `layers`, `allocation` | simulcast layers of a track; each subscriber's bandwidth split among its tracks |
//! | `dynacast` | telling publishers which of their layers anybody receives |
//! | `participant`, `slot`, `slab` | the records those parts share |
//!
//! # Failure isolation
//!
//! A panic or fatal error inside one participant's engine poisons that engine only (see
//! `engine`); the parts record the participant as failed, and once the current input is handled
//! the shard removes it with `left {reason: "mediaError"}`. Everything else goes on.

mod admin;
mod allocation;
mod datachannel;
mod demux;
mod drive;
mod dynacast;
mod engine;
mod fanout;
mod ingress;
pub mod interface;
mod layers;
mod membership;
mod negotiation;
mod participant;
mod resume;
mod slab;
mod slot;
mod speakers;
mod subscriptions;
mod timers;
mod tracks;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use switchboard_protocol::{LeaveReason, ServerMessage};
use tracing::info;

use crate::hash::FastMap;
use crate::ids::ParticipantId;
use crate::stats::ShardStats;

use demux::Demux;
use drive::Work;
use fanout::Track;
use interface::{Command, Fault, Input, Output, ShardConfig};
use membership::Room;
use participant::{Local, Participant};
use slab::Slab;
use timers::Timers;

#[derive(Debug)]
pub struct Shard {
    config: ShardConfig,
    now: Instant,
    members: Slab<Participant>,
    ids: FastMap<ParticipantId, Local>,
    rooms: HashMap<String, Room>,
    tracks: Slab<Track>,
    demux: Demux,
    timers: Timers,
    /// Participants written to since their last drain.
    dirty: Vec<Local>,
    /// The participants of `dirty` being driven one by one (`flush_next_dirty`).
    flushing: VecDeque<Local>,
    /// Participants to consider for a server offer once the current work is done, so that all
    /// m-lines of one client offer become slots before the server decides it needs more.
    negotiations: Vec<Local>,
    /// Participants whose engine failed during the current input; removed before it returns.
    failed: Vec<Local>,
    outputs: VecDeque<Output>,
    /// Work found while draining engines, and a second buffer so that processing a batch never
    /// allocates (the vectors keep their capacity).
    work: Vec<Work>,
    spare_work: Vec<Work>,
    /// Scratch for the deadlines due in one timeout.
    due: Vec<(Instant, Local)>,
    stats: ShardStats,
}

impl Shard {
    pub fn new(config: ShardConfig, now: Instant) -> Self {
        Shard {
            config,
            now,
            members: Slab::default(),
            ids: FastMap::default(),
            rooms: HashMap::new(),
            tracks: Slab::default(),
            demux: Demux::default(),
            timers: Timers::new(now),
            dirty: Vec::new(),
            flushing: VecDeque::new(),
            negotiations: Vec::new(),
            failed: Vec::new(),
            outputs: VecDeque::new(),
            work: Vec::new(),
            spare_work: Vec::new(),
            due: Vec::new(),
            stats: ShardStats::default(),
        }
    }

    pub fn config(&self) -> &ShardConfig {
        &self.config
    }

    pub fn stats(&self) -> ShardStats {
        let mut stats = self.stats;
        stats.participants = self.members.len() as u64;
        stats.rooms = self.rooms.len() as u64;
        stats.tracks = self.tracks.len() as u64;
        stats
    }

    /// Participants on this shard (for load reports).
    pub fn participant_count(&self) -> usize {
        self.members.len()
    }

    /// Every participant on the shard, for the runtime's supervisor (who must be told when
    /// the shard dies).
    pub fn participant_ids(&self) -> Vec<ParticipantId> {
        self.ids.keys().copied().collect()
    }

    /// End every session (server shutdown): everyone gets `Removed` with `reason`.
    pub fn close_all(&mut self, now: Instant, reason: LeaveReason) {
        self.advance(now);
        for local in self.members.keys() {
            self.remove(Local(local), Some(reason));
        }
    }

    /// Number of m-lines the server sends on for a participant (for tests and metrics).
    pub fn slot_count(&self, participant: ParticipantId) -> Option<usize> {
        let local = self.ids.get(&participant)?;
        self.members.get(local.0).map(|p| p.slots.len())
    }

    pub fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Datagram {
                now,
                transport,
                source,
                contents,
            } => {
                self.advance(now);
                self.handle_datagram(transport, source, contents);
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
        self.reap_failed();
    }

    pub fn poll_output(&mut self) -> Output {
        loop {
            if let Some(out) = self.outputs.pop_front() {
                return out;
            }
            if self.dirty.is_empty() && self.flushing.is_empty() {
                return Output::Timeout(self.next_timeout());
            }
            self.flush_next_dirty();
            self.reap_failed();
        }
    }

    /// How many outputs wait to be handed out by `poll_output`. Participants are driven one at a
    /// time as it is called, so this stays near one participant's datagrams however many were
    /// written to (the simulation checks it).
    pub fn queued_outputs(&self) -> usize {
        self.outputs.len()
    }

    fn advance(&mut self, now: Instant) {
        // Time never goes backwards inside the shard, whatever the caller's clock does.
        if now > self.now {
            self.now = now;
        }
    }

    fn next_timeout(&self) -> Instant {
        let mut next = self.timers.next();
        for track in self.timers.keyframes_pending() {
            if let Some(due) = self.tracks.get(track.0).and_then(|t| t.keyframe_due()) {
                next = next.min(due);
            }
        }
        next
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Join {
                participant,
                room,
                peer_id,
                name,
                rtc,
                auto_subscribe,
                resume_token,
                server_offers,
            } => self.join(membership::JoinRequest {
                pid: participant,
                room,
                peer_id,
                name,
                new: *rtc,
                auto_subscribe,
                resume_token,
                server_offers,
            }),
            Command::Offer {
                participant,
                offer,
                tracks,
            } => {
                if let Some(local) = self.local(participant) {
                    self.offer(local, *offer, tracks);
                }
            }
            Command::Answer {
                participant,
                answer,
            } => {
                if let Some(local) = self.local(participant) {
                    self.answer(local, *answer);
                }
            }
            Command::Candidate {
                participant,
                candidate,
            } => {
                if let Some(local) = self.local(participant) {
                    self.candidate(local, candidate.map(|c| *c));
                }
            }
            Command::Leave {
                participant,
                reason,
            } => {
                if let Some(local) = self.local(participant) {
                    self.remove(local, Some(reason));
                }
            }
            Command::Message {
                participant,
                to,
                data,
            } => {
                if let Some(local) = self.local(participant) {
                    self.participant_message(local, to, data);
                }
            }
            Command::DefineTrack {
                participant,
                name,
                kind,
                source,
                description,
            } => {
                if let Some(local) = self.local(participant) {
                    let spec = tracks::TrackSpec {
                        name,
                        kind,
                        source,
                        description,
                        explicit: true,
                    };
                    self.define_command(local, spec);
                }
            }
            Command::RemoveTrack {
                participant,
                track_id,
            } => {
                if let Some(local) = self.local(participant) {
                    self.remove_command(local, &track_id);
                }
            }
            Command::Subscribe {
                participant,
                track_id,
            } => {
                if let Some(local) = self.local(participant) {
                    self.subscribe(local, &track_id, "subscribe");
                    self.process_work();
                }
            }
            Command::Unsubscribe {
                participant,
                track_id,
            } => {
                if let Some(local) = self.local(participant) {
                    self.unsubscribe(local, &track_id, "unsubscribe");
                    self.process_work();
                }
            }
            Command::Mute {
                participant,
                track_id,
                muted,
            } => {
                if let Some(local) = self.local(participant) {
                    self.mute_command(local, &track_id, muted);
                }
            }
            Command::SetTrackQuality {
                participant,
                track_id,
                quality,
                priority,
            } => {
                if let Some(local) = self.local(participant) {
                    self.set_track_quality(local, &track_id, quality, priority);
                    self.process_work();
                }
            }
            Command::Detach { participant } => {
                if let Some(local) = self.local(participant) {
                    self.detach(local);
                }
            }
            Command::Resume {
                participant,
                resume_token,
            } => {
                if let Some(local) = self.local(participant) {
                    self.resume(local, resume_token);
                }
            }
            Command::Admin { id, action } => {
                let reply = self.admin(action);
                self.process_work();
                self.outputs.push_back(Output::Reply { id, reply });
            }
            Command::InjectFault(fault) => self.inject(fault),
        }
    }

    fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::PanicInEngine { room, peer_id } => {
                if let Some(p) = self
                    .find(&room, &peer_id)
                    .ok()
                    .and_then(|l| self.members.get_mut(l.0))
                {
                    p.engine.inject_panic();
                }
            }
            Fault::PanicInShard => panic!("injected shard fault"),
        }
    }

    fn local(&self, participant: ParticipantId) -> Option<Local> {
        self.ids.get(&participant).copied()
    }

    fn signal(&mut self, participant: Local, message: ServerMessage) {
        if let Some(p) = self.members.get(participant.0) {
            self.outputs.push_back(Output::Signal {
                participant: p.id,
                message,
            });
        }
    }

    /// Remove every participant whose engine failed while the last input was handled.
    fn reap_failed(&mut self) {
        while let Some(local) = self.failed.pop() {
            let Some(p) = self.members.get(local.0) else {
                continue; // listed twice, or already gone
            };
            let Some(failure) = p.engine.failure() else {
                continue;
            };
            info!(participant = %p.id, during = failure.op.label(), "removing a participant whose media engine failed");
            self.stats.participant_failures += 1;
            self.stats.failures.record(failure);
            self.remove(local, Some(LeaveReason::MediaError));
        }
    }

    /// The safety net behind `reap_failed`: a failure a part forgot to list is found here.
    fn sweep_failed(&mut self) {
        for (key, p) in self.members.iter() {
            if p.engine.failure().is_some() {
                self.failed.push(Local(key));
            }
        }
        self.reap_failed();
    }
}
