//! Announcing each room's active speakers: every `SPEAKER_INTERVAL` the shard closes the level
//! meter of every audio track, ranks the room's members (`crate::level`), and sends
//! `activeSpeakers` to the room when who talks, or the order, changed since the last
//! announcement. Rooms where nobody talks and nothing changed cost a walk over their tracks.

use switchboard_protocol::{MediaKind, ServerMessage};

use super::interface::Output;
use super::participant::TrackRef;
use super::Shard;
use crate::level;

impl Shard {
    pub(super) fn announce_speakers(&mut self) {
        let Shard {
            rooms,
            tracks,
            members,
            outputs,
            ..
        } = self;
        let mut ticked: Vec<(TrackRef, f32)> = Vec::new();
        for room in rooms.values_mut() {
            ticked.clear();
            for t in &room.tracks {
                if let Some(track) = tracks.get_mut(t.0) {
                    if track.kind == MediaKind::Audio {
                        ticked.push((*t, track.level.tick()));
                    }
                }
            }
            let speakers = level::rank(ticked.iter().filter_map(|&(t, level)| {
                let track = tracks.get(t.0)?;
                Some((track.publisher_peer.as_str(), level))
            }));
            if !level::changed(&room.speakers, &speakers) {
                continue;
            }
            for member in &room.members {
                if let Some(p) = members.get(member.0) {
                    outputs.push_back(Output::Signal {
                        participant: p.id,
                        message: ServerMessage::ActiveSpeakers {
                            speakers: speakers.clone(),
                        },
                    });
                }
            }
            room.speakers = speakers;
        }
    }
}
