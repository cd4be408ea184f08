//! Which shard hosts which room. A room lives on one shard so its fan-out is a function call;
//! a new room goes to the shard with the fewest participants.

use std::collections::HashMap;

use parking_lot::Mutex;

#[derive(Debug)]
pub(crate) struct Placement {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// room → (shard, participants placed and not yet released)
    rooms: HashMap<String, (usize, usize)>,
    load: Vec<usize>,
}

impl Placement {
    pub fn new(shards: usize) -> Self {
        Placement {
            inner: Mutex::new(Inner {
                rooms: HashMap::new(),
                load: vec![0; shards.max(1)],
            }),
        }
    }

    /// The shard for one more member of `room`. A room on a dead shard (`alive[i]` false)
    /// moves to a live one: its old members are gone with the shard. `None`: no shard is alive.
    pub fn place(&self, room: &str, alive: &[bool]) -> Option<usize> {
        let is_alive = |i: usize| alive.get(i).copied().unwrap_or(false);
        let mut inner = self.inner.lock();
        let current = inner.rooms.get(room).map(|(shard, _)| *shard);
        let shard = match current {
            Some(shard) if is_alive(shard) => {
                if let Some((_, count)) = inner.rooms.get_mut(room) {
                    *count += 1;
                }
                shard
            }
            _ => {
                let shard = inner
                    .load
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| is_alive(*i))
                    .min_by_key(|(_, load)| **load)
                    .map(|(i, _)| i)?;
                // Members placed on a dead shard still release later; their count moves along
                // so that the room is forgotten only when the last of them is gone.
                let count = inner.rooms.get(room).map_or(0, |(_, c)| *c);
                inner.rooms.insert(room.to_owned(), (shard, count + 1));
                shard
            }
        };
        inner.load[shard] += 1;
        Some(shard)
    }

    pub fn shard_of(&self, room: &str) -> Option<usize> {
        self.inner.lock().rooms.get(room).map(|(shard, _)| *shard)
    }

    pub fn room_count(&self) -> usize {
        self.inner.lock().rooms.len()
    }

    pub fn release(&self, room: &str) {
        let mut inner = self.inner.lock();
        let Some((shard, count)) = inner.rooms.get_mut(room) else {
            return;
        };
        let shard = *shard;
        *count -= 1;
        if *count == 0 {
            inner.rooms.remove(room);
        }
        inner.load[shard] = inner.load[shard].saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_stick_and_spread() {
        let p = Placement::new(2);
        let up = [true, true];
        let a = p.place("a", &up).expect("a shard");
        let b = p.place("b", &up).expect("a shard");
        assert_ne!(a, b, "second room goes to the idle shard");
        assert_eq!(
            p.place("a", &up),
            Some(a),
            "members of a room share its shard"
        );
        p.release("a");
        p.release("a");
        p.release("b");
        assert!(p.inner.lock().rooms.is_empty());
        assert_eq!(p.inner.lock().load, vec![0, 0]);
    }

    #[test]
    fn dead_shards_get_no_rooms() {
        let p = Placement::new(2);
        let a = p.place("a", &[true, true]).expect("a shard");
        let mut alive = [true, true];
        alive[a] = false;
        let moved = p.place("a", &alive).expect("the other shard");
        assert_ne!(moved, a, "a room on a dead shard moves");
        assert_eq!(p.place("fresh", &alive), Some(moved));
        assert_eq!(p.place("x", &[false, false]), None);
    }
}
