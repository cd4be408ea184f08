//! Who sits where: the scenario's seats, the client in each (churn replaces the client, the
//! seat stays), and the rotation that picks the seats of the next churn round.

use std::time::Instant;

use crate::client::Client;
use crate::scenario::{Scenario, Seat, Tally};

/// A late joiner's pending check (churned in, or filling an empty seat): by `deadline` it must
/// have received every kind of media from each of `owners` that is still in the room.
#[derive(Debug)]
pub(super) struct MediaCheck {
    pub(super) deadline: Instant,
    pub(super) owners: Vec<String>,
}

/// The client in a seat.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) client: Client,
    pub(super) peer_id: String,
    pub(super) joined_at: Instant,
    pub(super) tally: Tally,
    /// Set for a client that joined in a churn round, until it passes or fails.
    pub(super) check: Option<MediaCheck>,
}

impl Member {
    pub(super) fn new(client: Client, joined_at: Instant, check: Option<MediaCheck>) -> Self {
        Member {
            peer_id: client.peer_id().to_owned(),
            client,
            joined_at,
            tally: Tally::default(),
            check,
        }
    }
}

/// One seat of the scenario.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) seat: Seat,
    /// Clients this seat has had; the next one's display name carries it.
    pub(super) generation: u32,
    pub(super) member: Option<Member>,
    /// A join (or a churn: leave, then join) is in flight for this seat.
    pub(super) busy: bool,
}

impl Slot {
    /// The display name of the seat's next client: `pub0`, then `pub0.g1`, `pub0.g2`, …
    pub(super) fn next_name(&self) -> String {
        if self.generation == 0 {
            self.seat.name.clone()
        } else {
            format!("{}.g{}", self.seat.name, self.generation)
        }
    }
}

/// The seats and the churn rotation.
#[derive(Debug)]
pub(super) struct Roster {
    pub(super) slots: Vec<Slot>,
    /// Where the next churn round starts looking.
    cursor: usize,
}

impl Roster {
    pub(super) fn new(sc: &Scenario, prefix: &str) -> Self {
        let slots = sc
            .seats(prefix)
            .into_iter()
            .map(|seat| Slot {
                seat,
                generation: 0,
                member: None,
                busy: false,
            })
            .collect();
        Roster { slots, cursor: 0 }
    }

    /// Clients currently in their seats.
    pub(super) fn present(&self) -> usize {
        self.slots.iter().filter(|s| s.member.is_some()).count()
    }

    /// The seats of the next churn round: up to `k` occupied, idle seats, continuing from where
    /// the last round stopped so that every seat is rejoined in turn.
    pub(super) fn pick_churn(&mut self, k: usize) -> Vec<usize> {
        let eligible: Vec<bool> = self
            .slots
            .iter()
            .map(|s| s.member.is_some() && !s.busy)
            .collect();
        next_in_rotation(&eligible, &mut self.cursor, k)
    }

    /// Seats with nobody in them and nothing in flight (a failed join, an ended session): the
    /// churn round fills them too.
    pub(super) fn vacant(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].member.is_none() && !self.slots[i].busy)
            .collect()
    }
}

/// Up to `k` indices `i` with `eligible[i]`, starting at `*cursor` and wrapping around once;
/// `*cursor` moves past the last one taken.
fn next_in_rotation(eligible: &[bool], cursor: &mut usize, k: usize) -> Vec<usize> {
    let n = eligible.len();
    let mut picked = Vec::new();
    if n == 0 {
        return picked;
    }
    for step in 0..n {
        if picked.len() == k {
            break;
        }
        let i = (*cursor + step) % n;
        if eligible[i] {
            picked.push(i);
        }
    }
    if let Some(last) = picked.last() {
        *cursor = (last + 1) % n;
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_visits_every_seat_in_turn() {
        let all = [true; 5];
        let mut cursor = 0;
        assert_eq!(next_in_rotation(&all, &mut cursor, 2), [0, 1]);
        assert_eq!(next_in_rotation(&all, &mut cursor, 2), [2, 3]);
        assert_eq!(
            next_in_rotation(&all, &mut cursor, 2),
            [4, 0],
            "wraps around"
        );
        assert_eq!(cursor, 1);
        // Busy or empty seats are skipped, not waited for.
        let some = [true, false, true, false, false];
        assert_eq!(next_in_rotation(&some, &mut cursor, 2), [2, 0]);
        assert_eq!(
            next_in_rotation(&some, &mut cursor, 9),
            [2, 0],
            "each seat once"
        );
        assert!(next_in_rotation(&[false; 3], &mut cursor, 1).is_empty());
        assert!(next_in_rotation(&[], &mut cursor, 1).is_empty());
        assert!(next_in_rotation(&all, &mut cursor, 0).is_empty());
    }

    #[test]
    fn seat_names_carry_the_generation() {
        let mut sc = Scenario::new("ws://127.0.0.1:1/v1/ws");
        sc.subscribers_per_room = 1;
        let mut roster = Roster::new(&sc, "soak");
        assert_eq!(roster.slots.len(), 3);
        assert_eq!(roster.present(), 0);
        assert_eq!(roster.vacant(), [0, 1, 2]);
        assert!(roster.pick_churn(1).is_empty(), "nobody to churn yet");
        let slot = &mut roster.slots[2];
        assert_eq!(slot.next_name(), "sub0");
        slot.generation = 3;
        assert_eq!(slot.next_name(), "sub0.g3");
        assert_eq!(slot.seat.room, "soak-0");
    }
}
