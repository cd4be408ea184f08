//! Identifiers. A *peer id* is the client-visible string (`ServerMessage::Joined.peer_id`); a
//! [`ParticipantId`] is the server's numeric handle for one session of one peer, unique across
//! all shards of a process, used on every hot path and in commands.

use std::fmt;

use str0m::media::Mid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// A published track: the publisher and the m-line it arrives on in the publisher's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackKey {
    pub publisher: ParticipantId,
    pub mid: Mid,
}
