//! A generational slab: values in a vector, addressed by index plus generation.
//!
//! The packet path names participants, tracks and slots by [`Key`] rather than by a hashed id:
//! a lookup is an index and a compare. The generation makes a key of a removed value stale
//! instead of silently pointing at whatever reuses its place.

/// A value's place in a [`Slab`]. Stale once the value is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    index: u32,
    generation: u32,
}

#[derive(Debug)]
enum Entry<T> {
    Occupied { generation: u32, value: T },
    Vacant { generation: u32 },
}

#[derive(Debug)]
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    /// Indexes of vacant entries, reused first (so the vector only grows to the most values
    /// ever held at once).
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let entry = &mut self.entries[index as usize];
            let generation = match entry {
                Entry::Vacant { generation } => generation.wrapping_add(1),
                // The free list holds only vacant indexes.
                Entry::Occupied { generation, .. } => generation.wrapping_add(1),
            };
            *entry = Entry::Occupied { generation, value };
            return Key { index, generation };
        }
        let index = u32::try_from(self.entries.len()).expect("fewer than 2^32 values per shard");
        self.entries.push(Entry::Occupied {
            generation: 0,
            value,
        });
        Key {
            index,
            generation: 0,
        }
    }

    pub fn get(&self, key: Key) -> Option<&T> {
        match self.entries.get(key.index as usize)? {
            Entry::Occupied { generation, value } if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.entries.get_mut(key.index as usize)? {
            Entry::Occupied { generation, value } if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    pub fn remove(&mut self, key: Key) -> Option<T> {
        let entry = self.entries.get_mut(key.index as usize)?;
        match entry {
            Entry::Occupied { generation, .. } if *generation == key.generation => {
                let vacant = Entry::Vacant {
                    generation: *generation,
                };
                let Entry::Occupied { value, .. } = std::mem::replace(entry, vacant) else {
                    unreachable!("matched as occupied above");
                };
                self.free.push(key.index);
                self.len -= 1;
                Some(value)
            }
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| match entry {
                Entry::Occupied { generation, value } => Some((
                    Key {
                        index: index as u32,
                        generation: *generation,
                    },
                    value,
                )),
                Entry::Vacant { .. } => None,
            })
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Key, &mut T)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(index, entry)| match entry {
                Entry::Occupied { generation, value } => Some((
                    Key {
                        index: index as u32,
                        generation: *generation,
                    },
                    value,
                )),
                Entry::Vacant { .. } => None,
            })
    }

    pub fn keys(&self) -> Vec<Key> {
        self.iter().map(|(key, _)| key).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss_after_reuse() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.remove(a), Some("a"));
        assert_eq!(slab.get(a), None);
        let c = slab.insert("c");
        assert_eq!(slab.get(a), None, "a's place is reused, a's key is stale");
        assert_eq!(slab.get(c), Some(&"c"));
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.iter().map(|(_, v)| *v).collect::<Vec<_>>(), ["c", "b"]);
    }
}
