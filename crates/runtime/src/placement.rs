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

    pub fn place(&self, room: &str) -> usize {
        let mut inner = self.inner.lock();
        let shard = match inner.rooms.get_mut(room) {
            Some((shard, count)) => {
                *count += 1;
                *shard
            }
            None => {
                let shard = inner
                    .load
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, load)| **load)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                inner.rooms.insert(room.to_owned(), (shard, 1));
                shard
            }
        };
        inner.load[shard] += 1;
        shard
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
        let a = p.place("a");
        let b = p.place("b");
        assert_ne!(a, b, "second room goes to the idle shard");
        assert_eq!(p.place("a"), a, "members of a room share its shard");
        p.release("a");
        p.release("a");
        p.release("b");
        assert!(p.inner.lock().rooms.is_empty());
        assert_eq!(p.inner.lock().load, vec![0, 0]);
    }
}
