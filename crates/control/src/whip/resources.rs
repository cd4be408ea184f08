//! The table of live WHIP and WHEP sessions. No WebSocket holds them, so this is what a
//! `PATCH` or `DELETE` finds its session in. Ids are 128 random bits (unguessable: the URL is
//! the only capability a client needs after the `POST`), the table is bounded, and an entry goes
//! when the session ends for any reason (DELETE, the shard removing the participant after its
//! media stayed down, a kick, the credential running out).

use std::collections::HashMap;

use parking_lot::Mutex;
use switchboard_core::ParticipantId;

/// Which protocol created a session (the path prefix of its `Location`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A publisher (`/whip/...`).
    Whip,
    /// A player (`/whep/...`).
    Whep,
}

impl Kind {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Kind::Whip => "whip",
            Kind::Whep => "whep",
        }
    }
}

/// One session: where its participant lives and the ICE state a PATCH is checked against.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub kind: Kind,
    pub room: String,
    pub peer_id: String,
    pub participant: ParticipantId,
    pub shard: usize,
    /// The entity tag of the session's ICE state (RFC 9725 §4.3.1).
    pub etag: String,
    /// The client's ICE username fragment from its offer: a PATCH with another one is an ICE
    /// restart.
    pub remote_ufrag: String,
}

/// Why a session could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableFull(pub usize);

#[derive(Debug)]
pub(crate) struct Resources {
    table: Mutex<HashMap<String, Resource>>,
    /// `switchboard_http_sessions{protocol}`: follows the table's entries.
    gauge: prometheus::IntGaugeVec,
}

impl Resources {
    pub fn new(gauge: prometheus::IntGaugeVec) -> Resources {
        Resources {
            table: Mutex::default(),
            gauge,
        }
    }

    fn count(&self, kind: Kind, delta: i64) {
        self.gauge.with_label_values(&[kind.prefix()]).add(delta);
    }

    /// Register `resource` under a new id (at most `max` sessions; 0 = unlimited).
    pub fn insert(&self, resource: Resource, max: usize) -> Result<String, TableFull> {
        let mut table = self.table.lock();
        if max > 0 && table.len() >= max {
            return Err(TableFull(max));
        }
        // 128 random bits: a collision is not a practical event, but it costs nothing to be
        // sure (bounded: a fresh id each try).
        for _ in 0..4 {
            let id = crate::session::new_token();
            if !table.contains_key(&id) {
                self.count(resource.kind, 1);
                table.insert(id.clone(), resource);
                return Ok(id);
            }
        }
        Err(TableFull(max))
    }

    /// The session `id` names, if it is of `kind` in `room` (a URL of one protocol or room
    /// never reaches the session of another).
    pub fn get(&self, kind: Kind, room: &str, id: &str) -> Option<Resource> {
        self.table
            .lock()
            .get(id)
            .filter(|r| r.kind == kind && r.room == room)
            .cloned()
    }

    /// Take the session out, if it is of `kind` in `room`.
    pub fn take(&self, kind: Kind, room: &str, id: &str) -> Option<Resource> {
        let mut table = self.table.lock();
        let matches = table
            .get(id)
            .is_some_and(|r| r.kind == kind && r.room == room);
        if !matches {
            return None;
        }
        let taken = table.remove(id)?;
        self.count(taken.kind, -1);
        Some(taken)
    }

    /// The session ended by itself: forget it (no-op if a DELETE already took it).
    pub fn forget(&self, id: &str) {
        if let Some(gone) = self.table.lock().remove(id) {
            self.count(gone.kind, -1);
        }
    }

    pub fn len(&self) -> usize {
        self.table.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(kind: Kind, room: &str) -> Resource {
        Resource {
            kind,
            room: room.into(),
            peer_id: "p".into(),
            participant: ParticipantId(1),
            shard: 0,
            etag: "\"e\"".into(),
            remote_ufrag: "u".into(),
        }
    }

    #[test]
    fn bounded_and_scoped() {
        let gauge = prometheus::IntGaugeVec::new(prometheus::Opts::new("t", "t"), &["protocol"])
            .expect("metric");
        let table = Resources::new(gauge.clone());
        let a = table.insert(resource(Kind::Whip, "r"), 2).expect("room");
        let b = table.insert(resource(Kind::Whep, "r"), 2).expect("room");
        assert_eq!(a.len(), 32, "128 bits in hex");
        assert_ne!(a, b);
        assert_eq!(gauge.with_label_values(&["whip"]).get(), 1);
        assert_eq!(gauge.with_label_values(&["whep"]).get(), 1);
        assert_eq!(
            table.insert(resource(Kind::Whip, "r"), 2),
            Err(TableFull(2))
        );
        // Another protocol's or room's URL does not reach the session.
        assert!(table.get(Kind::Whep, "r", &a).is_none());
        assert!(table.get(Kind::Whip, "other", &a).is_none());
        assert!(table.take(Kind::Whip, "other", &a).is_none());
        assert!(table.get(Kind::Whip, "r", &a).is_some());
        assert!(table.take(Kind::Whip, "r", &a).is_some());
        assert!(table.take(Kind::Whip, "r", &a).is_none(), "once");
        table.forget(&b);
        table.forget(&b);
        assert_eq!(table.len(), 0);
        assert_eq!(gauge.with_label_values(&["whip"]).get(), 0);
        assert_eq!(gauge.with_label_values(&["whep"]).get(), 0);
    }
}
