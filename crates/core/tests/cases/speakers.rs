//! Active speakers from the audio level extension, announced to the room on change only.

use std::time::Duration;

use switchboard_protocol::ServerMessage;

use crate::sim::{Sim, SimClient};

/// Every `activeSpeakers` list `c` received, as peer ids in order.
fn announcements(c: &SimClient) -> Vec<Vec<String>> {
    c.signals
        .iter()
        .filter_map(|m| match m {
            ServerMessage::ActiveSpeakers { speakers } => {
                Some(speakers.iter().map(|s| s.peer_id.clone()).collect())
            }
            _ => None,
        })
        .collect()
}

fn last_levels(c: &SimClient) -> Vec<(String, u16)> {
    c.signals
        .iter()
        .rev()
        .find_map(|m| match m {
            ServerMessage::ActiveSpeakers { speakers } => Some(
                speakers
                    .iter()
                    .map(|s| (s.peer_id.clone(), s.level.thousandths()))
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn the_louder_speaker_leads_the_list_and_changes_alone_are_announced() {
    let mut sim = Sim::new();
    for name in ["loud", "soft", "mute", "listener"] {
        sim.join("r", name, name != "listener");
    }
    sim.client_mut("loud").audio_level = Some(-10);
    sim.client_mut("soft").audio_level = Some(-35);
    sim.client_mut("mute").audio_level = Some(-127);
    sim.run(Duration::from_secs(3));

    for name in ["loud", "soft", "mute", "listener"] {
        let c = sim.client(name);
        let seen = announcements(c);
        assert_eq!(
            seen.last().map(Vec::as_slice),
            Some(&["loud".to_owned(), "soft".to_owned()][..]),
            "{name} hears loud, then soft, and not the silent one: {seen:?}"
        );
        // The list settles: steady talk sends nothing more.
        assert!(
            seen.len() <= 3,
            "{name}: few announcements while it settles: {seen:?}"
        );
    }
    // Levels as of the announcement (the smoothing may still be climbing then): -10 dBov is an
    // amplitude of 0.316, -35 dBov one of 0.018.
    let levels = last_levels(sim.client("listener"));
    assert!(levels[0].1 > 150 && levels[0].1 < 330, "loud: {levels:?}");
    assert!(levels[1].1 >= 5 && levels[1].1 < 25, "soft: {levels:?}");

    let before = announcements(sim.client("listener")).len();
    sim.run(Duration::from_secs(3));
    assert_eq!(
        announcements(sim.client("listener")).len(),
        before,
        "nothing changed, nothing announced"
    );

    // The loud one stops; soft one is alone within about two seconds.
    sim.client_mut("loud").audio_level = Some(-127);
    sim.run(Duration::from_millis(2500));
    let seen = announcements(sim.client("listener"));
    assert_eq!(
        seen.last().map(Vec::as_slice),
        Some(&["soft".to_owned()][..]),
        "{seen:?}"
    );

    // A newcomer hears the current list at once, without waiting for a change.
    sim.join("r", "late", false);
    sim.run(Duration::from_millis(50));
    let late = announcements(sim.client("late"));
    assert_eq!(
        late,
        vec![vec!["soft".to_owned()]],
        "the newcomer is told who talks"
    );

    // The speaker leaves: the room hears an empty list.
    sim.leave("soft");
    sim.run(Duration::from_millis(700));
    let seen = announcements(sim.client("listener"));
    assert_eq!(seen.last(), Some(&Vec::new()), "nobody talks: {seen:?}");
}

#[test]
fn packets_without_a_level_name_nobody() {
    let mut sim = Sim::new();
    sim.join("r", "a", true);
    sim.join("r", "b", true);
    sim.run(Duration::from_secs(2));
    assert!(
        sim.client("b").packets_of("a", false).len() > 50,
        "audio flows"
    );
    assert!(announcements(sim.client("b")).is_empty());
}
