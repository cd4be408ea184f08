//! Telling publishers which of their video layers anybody receives (`layersWanted`), so that a
//! browser stops encoding a layer nobody watches (see `crate::dynacast` for the rules). Runs on
//! the allocation tick, and at once for a track when a subscriber binds to it or changes its
//! preference (turning a layer on should not wait for the tick).

use switchboard_protocol::{LayerWanted, MediaKind, ServerMessage};
use tracing::debug;

use super::fanout::quality_index;
use super::participant::{preference, TrackRef};
use super::Shard;
use crate::dynacast::wanted_layers;

impl Shard {
    /// Dynacast for every track of the shard.
    pub(super) fn dynacast_all(&mut self) {
        if !self.config.dynacast {
            return;
        }
        let tracks: Vec<TrackRef> = self.tracks.iter().map(|(k, _)| TrackRef(k)).collect();
        for track in tracks {
            self.dynacast_track(track);
        }
    }

    /// Decide for one track, and tell its publisher when what it should send changed.
    pub(super) fn dynacast_track(&mut self, track_ref: TrackRef) {
        if !self.config.dynacast {
            return;
        }
        let now = self.now;
        let Shard {
            tracks, members, ..
        } = self;
        let Some(track) = tracks.get_mut(track_ref.0) else {
            return;
        };
        let Some(mid) = track.mid else {
            return;
        };
        // Only a client that takes server messages about its session can act on it (not a
        // WHIP publisher, whose one offer was all it says).
        let signalled = members
            .get(track.publisher.0)
            .is_some_and(|p| p.server_offers);
        if track.kind != MediaKind::Video || !signalled {
            return;
        }
        let Some(order) = track.layers.quality_order() else {
            return;
        };
        let top = order.len() - 1;
        let best = track
            .subscribers
            .iter()
            .filter_map(|(sub, _)| members.get(sub.0))
            .map(|s| quality_index(preference(&s.preferences, track_ref).quality, top))
            .max();
        let wanted = wanted_layers(&order, best);
        let before = track.layers.dynacast.told().map(<[bool]>::to_vec);
        let Some(send) = track.layers.dynacast.decide(&wanted, now) else {
            return;
        };
        // Untold, a layer is sent.
        let was = |i: usize| {
            before
                .as_ref()
                .and_then(|b| b.get(i).copied())
                .unwrap_or(true)
        };
        let stops = (0..send.len()).filter(|&i| was(i) && !send[i]).count() as u64;
        let starts = (0..send.len()).filter(|&i| !was(i) && send[i]).count() as u64;
        let layers: Vec<LayerWanted> = send
            .iter()
            .enumerate()
            .map(|(i, &active)| LayerWanted {
                rid: track
                    .layers
                    .get(i)
                    .and_then(|l| l.rid)
                    .map(|r| r.to_string()),
                active,
            })
            .collect();
        debug!(track = %track.track_id, ?best, ?layers, "dynacast");
        let message = ServerMessage::LayersWanted {
            track_id: track.track_id.clone(),
            mid: mid.to_string(),
            layers,
        };
        let publisher = track.publisher;
        self.stats.dynacast_stops += stops;
        self.stats.dynacast_starts += starts;
        self.signal(publisher, message);
    }
}
