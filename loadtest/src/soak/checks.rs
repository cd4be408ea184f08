//! What the soak checks while it runs, as plain functions over what the clients received:
//!
//! - a late joiner (churned in, or filling an empty seat) gets every kind of media from each
//!   publisher that is in its room when it joins (and stays), within the settle timeout
//!   ([`media_verdict`]);
//! - a stream that had started does not go silent for a whole sample interval while both its
//!   publisher and its receiver stay, and a stream between two clients that have both been in
//!   the room longer than the settle timeout has started ([`check_streams`]);
//! - nobody receives media of a peer that never published in its room ([`foreign_owners`]).
//!
//! None of these depends on how fast the machine is, beyond the settle timeout.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use switchboard_protocol::MediaKind;

use super::roster::MediaCheck;

/// A client in a room, as the checks see it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Presence<'a> {
    pub(super) peer_id: &'a str,
    pub(super) publisher: bool,
    pub(super) joined_at: Instant,
}

/// What a receiver got per (owner, kind): packets in total and in the current interval.
pub(super) type Got = HashMap<(String, MediaKind), (u64, u64)>;

/// Packets of one track in total (0 when nothing arrived).
fn total(got: &Got, owner: &str, kind: MediaKind) -> u64 {
    got.get(&(owner.to_owned(), kind)).map_or(0, |g| g.0)
}

/// The outcome of one interval's stream check for one receiver.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct StreamFindings {
    /// Streams that had started and whose both ends stayed for the whole interval.
    pub(super) checked: usize,
    /// Of those, the ones that delivered nothing in the interval: (owner, kind).
    pub(super) silent: Vec<(String, MediaKind)>,
    /// Streams that never delivered although both ends have been in the room longer than the
    /// grace (the settle timeout): (owner, kind).
    pub(super) never_started: Vec<(String, MediaKind)>,
}

/// Check every stream `receiver` should get from the publishers in `room` (its room's
/// clients, possibly including itself) over the interval that started at `interval_start`.
pub(super) fn check_streams(
    receiver: &Presence<'_>,
    got: &Got,
    room: &[Presence<'_>],
    kinds: &[MediaKind],
    interval_start: Instant,
    now: Instant,
    grace: Duration,
) -> StreamFindings {
    let mut f = StreamFindings::default();
    for p in room
        .iter()
        .filter(|p| p.publisher && p.peer_id != receiver.peer_id)
    {
        for &kind in kinds {
            let (ever, now_interval) = got
                .get(&(p.peer_id.to_owned(), kind))
                .copied()
                .unwrap_or((0, 0));
            if ever > 0 {
                let whole_interval =
                    p.joined_at <= interval_start && receiver.joined_at <= interval_start;
                if whole_interval {
                    f.checked += 1;
                    if now_interval == 0 {
                        f.silent.push((p.peer_id.to_owned(), kind));
                    }
                }
            } else {
                let together_since = p.joined_at.max(receiver.joined_at);
                if now.saturating_duration_since(together_since) > grace {
                    f.never_started.push((p.peer_id.to_owned(), kind));
                }
            }
        }
    }
    f
}

/// Where a late joiner's media check stands.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum MediaVerdict {
    /// Not everything arrived yet, and there is time left.
    Pending,
    /// Every kind from every expected owner still in the room arrived.
    Passed,
    /// The deadline passed; these (owner/kind) never arrived.
    Missing(Vec<String>),
}

/// Judge `check` at `now`: owners that left the room since (`present` says who is still
/// there) are no longer expected.
pub(super) fn media_verdict(
    check: &MediaCheck,
    got: &Got,
    present: impl Fn(&str) -> bool,
    kinds: &[MediaKind],
    now: Instant,
) -> MediaVerdict {
    let missing: Vec<String> = check
        .owners
        .iter()
        .filter(|o| present(o))
        .flat_map(|o| kinds.iter().map(move |k| (o, *k)))
        .filter(|(o, k)| total(got, o, *k) == 0)
        .map(|(o, k)| format!("{o}/{k:?}"))
        .collect();
    if missing.is_empty() {
        MediaVerdict::Passed
    } else if now >= check.deadline {
        MediaVerdict::Missing(missing)
    } else {
        MediaVerdict::Pending
    }
}

/// Owners of received media who never published in the receiver's room (`history`: every
/// publisher the room has had). The corrupt-packet marker `"?"` is not an owner.
pub(super) fn foreign_owners<'a>(
    got: impl Iterator<Item = &'a (String, MediaKind)>,
    history: &HashSet<String>,
) -> Vec<String> {
    let mut foreign: Vec<String> = got
        .map(|(o, _)| o)
        .filter(|o| o.as_str() != "?" && !history.contains(*o))
        .cloned()
        .collect();
    foreign.sort();
    foreign.dedup();
    foreign
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [MediaKind; 2] = [MediaKind::Audio, MediaKind::Video];

    fn got(entries: &[(&str, MediaKind, u64, u64)]) -> Got {
        entries
            .iter()
            .map(|(o, k, ever, now)| (((*o).to_owned(), *k), (*ever, *now)))
            .collect()
    }

    #[test]
    fn streams_that_stop_or_never_start_are_found() {
        let t0 = Instant::now();
        let s = |ms: u64| t0 + Duration::from_millis(ms);
        let grace = Duration::from_secs(15);
        let me = Presence {
            peer_id: "me",
            publisher: true,
            joined_at: s(0),
        };
        let old = Presence {
            peer_id: "old",
            publisher: true,
            joined_at: s(0),
        };
        let new = Presence {
            peer_id: "new",
            publisher: true,
            joined_at: s(9_000),
        };
        let viewer = Presence {
            peer_id: "viewer",
            publisher: false,
            joined_at: s(0),
        };
        let room = [me, old, new, viewer];
        let received = got(&[
            ("old", MediaKind::Audio, 500, 100),
            ("old", MediaKind::Video, 900, 0), // stopped during the interval
            ("new", MediaKind::Audio, 50, 50), // joined mid-interval: not checked
        ]);
        let f = check_streams(&me, &received, &room, &KINDS, s(8_000), s(10_000), grace);
        assert_eq!(
            f.checked, 2,
            "old's two tracks; new joined after the interval began"
        );
        assert_eq!(f.silent, [("old".to_owned(), MediaKind::Video)]);
        assert!(f.never_started.is_empty(), "new's video is young");

        // Much later, new's video still has not arrived: it never started.
        let f = check_streams(&me, &received, &room, &KINDS, s(30_000), s(30_000), grace);
        assert_eq!(f.never_started, [("new".to_owned(), MediaKind::Video)]);
        // The viewer publishes nothing, and nobody checks their own tracks.
        assert!(f
            .silent
            .iter()
            .chain(&f.never_started)
            .all(|(o, _)| o != "me" && o != "viewer"));
    }

    #[test]
    fn churned_in_media_check() {
        let t0 = Instant::now();
        let check = MediaCheck {
            deadline: t0 + Duration::from_secs(15),
            owners: vec!["a".into(), "b".into()],
        };
        let partial = got(&[("a", MediaKind::Audio, 3, 3), ("a", MediaKind::Video, 9, 9)]);
        let everyone = |_: &str| true;
        assert_eq!(
            media_verdict(&check, &partial, everyone, &KINDS, t0),
            MediaVerdict::Pending
        );
        assert_eq!(
            media_verdict(&check, &partial, everyone, &KINDS, check.deadline),
            MediaVerdict::Missing(vec!["b/Audio".into(), "b/Video".into()])
        );
        // b left meanwhile: a's media is all that is expected.
        let only_a = |o: &str| o == "a";
        assert_eq!(
            media_verdict(&check, &partial, only_a, &KINDS, check.deadline),
            MediaVerdict::Passed
        );
        let audio_only = [MediaKind::Audio];
        let full = got(&[("a", MediaKind::Audio, 1, 1), ("b", MediaKind::Audio, 1, 1)]);
        assert_eq!(
            media_verdict(&check, &full, everyone, &audio_only, t0),
            MediaVerdict::Passed
        );
    }

    #[test]
    fn foreign_media_is_named_once() {
        let history: HashSet<String> = ["a".to_owned(), "b".to_owned()].into();
        let keys = [
            ("a".to_owned(), MediaKind::Audio),
            ("x".to_owned(), MediaKind::Audio),
            ("x".to_owned(), MediaKind::Video),
            ("?".to_owned(), MediaKind::Video),
        ];
        assert_eq!(foreign_owners(keys.iter(), &history), ["x"]);
    }
}
