//! Identifiers. A *peer id* is the client-visible string (`ServerMessage::Joined.peer_id`); a
//! [`ParticipantId`] is the server's numeric handle for one session of one peer, unique across
//! all shards of a process, used on every hot path and in commands.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}
