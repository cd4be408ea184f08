//! What goes into a [`Shard`](super::Shard) and what comes out: its configuration, the commands
//! of the control plane, the inputs, the outputs, and the operator and notification types.
//!
//! A leaf module: it names the shard's vocabulary and depends on none of its parts, so the
//! parts (and the runtime, and the control plane) can all use it without import cycles.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::Candidate;
use switchboard_protocol::admin::{RoomDetail, RoomSummary};
use switchboard_protocol::webhook::WebhookEvent;
use switchboard_protocol::{
    LeaveReason, MediaKind, Payload, Quality, ServerMessage, TrackPublication, TrackSource,
};

use crate::ids::ParticipantId;
use crate::rtc_template::NewRtc;

/// How a datagram travelled between a client and the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    /// Framed (RFC 4571) on a TCP connection the runtime holds: ICE-TCP, for clients whose UDP is
    /// blocked. The shard sees frames as datagrams; the connection is the runtime's business.
    Tcp,
}

impl Transport {
    pub(crate) fn protocol(self) -> str0m::net::Protocol {
        match self {
            Transport::Udp => str0m::net::Protocol::Udp,
            Transport::Tcp => str0m::net::Protocol::Tcp,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// The addresses clients send media to, as host candidates: per transport and address
    /// family, the first one listed is the `destination` str0m is told a datagram of that kind
    /// arrived on (so it pairs with the candidate the client checked). Never empty.
    pub advertised: Vec<(Transport, SocketAddr)>,
    /// At most one keyframe request per published track per this interval.
    pub keyframe_interval: Duration,
    /// A participant whose ICE+DTLS is not up this long after joining is removed.
    pub connect_timeout: Duration,
    /// A participant whose ICE stays disconnected this long is removed.
    pub disconnect_grace: Duration,
    /// Joins beyond this many members are refused with `roomFull`; 0 = unlimited.
    pub max_participants_per_room: usize,
    /// Tracks one participant may publish; more are refused with `tooManyTracks`.
    pub max_tracks_per_participant: usize,
    /// m-lines one session may have (published and received); the server offers no receive slot
    /// beyond it and refuses client offers above it.
    pub max_mlines_per_session: usize,
    /// Remote ICE candidates kept per participant; more get `tooManyCandidates`.
    pub max_candidates_per_session: usize,
    /// The most the allocator forwards to one subscriber, in bits per second (`None`: what its
    /// link's bandwidth estimate allows).
    pub max_subscriber_bitrate: Option<u64>,
    /// Tell publishers which of their video layers anybody receives (`layersWanted`), so that
    /// they stop encoding the others.
    pub dynacast: bool,
}

impl ShardConfig {
    /// A shard reached on one UDP address (add more to `advertised`).
    pub fn new(advertised: SocketAddr) -> Self {
        ShardConfig {
            advertised: vec![(Transport::Udp, advertised)],
            keyframe_interval: Duration::from_millis(300),
            connect_timeout: Duration::from_secs(30),
            disconnect_grace: Duration::from_secs(10),
            max_participants_per_room: 0,
            max_tracks_per_participant: switchboard_protocol::MAX_TRACKS_PER_PARTICIPANT,
            max_mlines_per_session: switchboard_protocol::MAX_MLINES_PER_SESSION,
            max_candidates_per_session: switchboard_protocol::MAX_CANDIDATES_PER_SESSION,
            max_subscriber_bitrate: None,
            dynacast: true,
        }
    }

    /// The local address a datagram from `source` over `transport` arrived on, as str0m must be
    /// told: the first advertised address of that transport and family (any, if none matches:
    /// str0m then finds no pair and drops it, which is right for a path we never offered).
    pub fn destination(&self, transport: Transport, source: SocketAddr) -> SocketAddr {
        let family = |a: &SocketAddr| a.is_ipv4() == source.is_ipv4();
        self.advertised
            .iter()
            .find(|(t, a)| *t == transport && family(a))
            .or_else(|| self.advertised.first())
            .map(|(_, a)| *a)
            .unwrap_or(source)
    }
}

/// A request from the control plane about one participant (or the shard).
///
/// SDP and candidates arrive parsed: the signalling task parses them (see
/// [`crate::screen`]), so a parser panic costs that one connection, not a turn of the shard.
#[derive(Debug)]
pub enum Command {
    /// Enter `room` with a prepared engine. Answered by `Joined` or an error and `Removed`.
    Join {
        participant: ParticipantId,
        room: String,
        peer_id: String,
        name: String,
        rtc: Box<NewRtc>,
        /// Receive every track of the room (true) or only the subscribed ones.
        auto_subscribe: bool,
        /// The token the client may later `resume` with (`None`: no resume for this session).
        resume_token: Option<String>,
        /// The server may send this participant offers that add receive slots. False for WHIP
        /// and WHEP sessions, which cannot renegotiate: the m-lines of the client's only offer
        /// are all the slots it gets, and tracks beyond them wait for a free one.
        server_offers: bool,
    },
    /// The client's offer, with what its sending m-lines publish.
    Offer {
        participant: ParticipantId,
        offer: Box<SdpOffer>,
        tracks: Vec<TrackPublication>,
    },
    Answer {
        participant: ParticipantId,
        answer: Box<SdpAnswer>,
    },
    /// A trickled remote candidate; `None` is the end of candidates.
    Candidate {
        participant: ParticipantId,
        candidate: Option<Box<Candidate>>,
    },
    Leave {
        participant: ParticipantId,
        reason: LeaveReason,
    },
    /// Make a track of the participant discoverable before media flows (already validated:
    /// `name` follows the token rules, the description is bounded, the source fits the kind).
    DefineTrack {
        participant: ParticipantId,
        name: String,
        kind: MediaKind,
        source: Option<TrackSource>,
        description: Option<String>,
    },
    RemoveTrack {
        participant: ParticipantId,
        track_id: String,
    },
    Subscribe {
        participant: ParticipantId,
        track_id: String,
    },
    Unsubscribe {
        participant: ParticipantId,
        track_id: String,
    },
    /// The owner mutes or unmutes one of its tracks.
    Mute {
        participant: ParticipantId,
        track_id: String,
        muted: bool,
    },
    /// The subscriber's wish for one track it receives (`setTrackQuality`).
    SetTrackQuality {
        participant: ParticipantId,
        track_id: String,
        quality: Option<Quality>,
        priority: Option<u8>,
    },
    /// The participant's signalling connection dropped; its session waits for a `Resume`.
    Detach { participant: ParticipantId },
    /// A new connection took the session over: send it the state of the room, with
    /// `resume_token` for the next drop.
    Resume {
        participant: ParticipantId,
        resume_token: String,
    },
    /// A data message from a participant to its room (or to one peer in it).
    Message {
        participant: ParticipantId,
        to: Option<String>,
        data: Payload,
    },
    /// An operator request, answered by `Output::Reply` with the same `id`.
    Admin { id: u64, action: AdminAction },
    /// Failure-isolation tests: make a failure happen on purpose. No client message and no API
    /// request maps to this; only in-process tests send it.
    InjectFault(Fault),
}

/// Failures [`Command::InjectFault`] can cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next call into the media engine of `peer_id` in `room` panics inside the engine
    /// guard, as a str0m bug would.
    PanicInEngine { room: String, peer_id: String },
    /// The shard itself panics outside every guard, as a bug in the shard would: the runtime's
    /// supervisor must notice.
    PanicInShard,
}

#[derive(Debug)]
pub enum Input<'a> {
    Datagram {
        now: Instant,
        transport: Transport,
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
        transport: Transport,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// A participant's ICE ufrag now routes to this shard (`held`), or no longer does. The
    /// runtime keeps a directory of them to hand each new ICE-TCP connection, whose first frame
    /// names a ufrag, to the shard that holds it.
    IceUfrag { ufrag: String, held: bool },
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

/// What an operator asks a shard.
#[derive(Debug, Clone)]
pub enum AdminAction {
    ListRooms,
    Room {
        room: String,
    },
    Kick {
        room: String,
        peer_id: String,
    },
    SetMuted {
        room: String,
        peer_id: String,
        track_id: String,
        muted: bool,
    },
    CloseRoom {
        room: String,
    },
    Message {
        room: String,
        to: Option<String>,
        data: Payload,
    },
    /// LiveKit's `UpdateSubscriptions`: subscribe and unsubscribe a member to tracks.
    UpdateSubscriptions {
        room: String,
        peer_id: String,
        subscribe: Vec<String>,
        unsubscribe: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminReply {
    Rooms(Vec<RoomSummary>),
    Room(RoomDetail),
    Done,
    /// Names what was not found: "room", "peer" or "track".
    NotFound(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    Event(WebhookEvent),
    /// ICE and DTLS came up `after` the join reached the shard.
    Connected {
        room: String,
        peer_id: String,
        after: Duration,
    },
}
