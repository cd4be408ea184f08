//! Simulcast publishers: a client that sends its video in several encodings (rids), each with
//! its own packets per frame and packet size (so the layers' rates differ as a real encoder's
//! do) and its own sequence numbers and keyframes. The layer's index rides in the payload
//! counter's high bits, so a receiver can tell which layer each packet came from.

use std::time::Instant;

use str0m::media::{Rid, Simulcast, SimulcastLayer};
use str0m::rtp::{RtpWrite, SeqNo};
use switchboard_loadtest::synth::{self, VideoPosition};

use super::SimClient;

/// Counter bits above this carry the layer index.
pub const LAYER_SHIFT: u32 = 40;

/// One encoding a simulated publisher sends.
#[derive(Debug, Clone)]
pub struct SimLayer {
    pub rid: Rid,
    pub packets_per_frame: u64,
    pub size: usize,
    /// A publisher may stop one encoding (as a browser does when its CPU or uplink is short).
    pub active: bool,
    pub keyframe_due: bool,
    counter: u64,
}

impl SimLayer {
    pub fn new(rid: &str, packets_per_frame: u64, size: usize) -> Self {
        SimLayer {
            rid: Rid::from(rid),
            packets_per_frame,
            size,
            active: true,
            keyframe_due: true,
            counter: 0,
        }
    }
}

/// Three layers at about 90, 430 and 1 160 kbit/s (30 frames per second).
pub fn three_layers() -> Vec<SimLayer> {
    vec![
        SimLayer::new("q", 1, 300),
        SimLayer::new("h", 2, 800),
        SimLayer::new("f", 4, 1100),
    ]
}

/// The `Simulcast` an offer sends for these layers.
pub fn offer_simulcast(layers: &[SimLayer]) -> Simulcast {
    let mut s = Simulcast::new();
    for l in layers {
        s.add_send_layer(SimulcastLayer::new(&l.rid));
    }
    s
}

/// Which layer (index) a received video packet's counter says it came from.
pub fn layer_of(counter: u64) -> usize {
    (counter >> LAYER_SHIFT) as usize
}

impl SimClient {
    /// Send one frame on every active layer.
    pub(super) fn send_simulcast_frame(&mut self, now: Instant, pt: str0m::media::Pt) {
        let Some(mid) = self.video_mid else {
            return;
        };
        let ts = (self.frames * 3000) as u32;
        self.frames += 1;
        let name = self.name.clone();
        for (index, layer) in self.simulcast.iter_mut().enumerate() {
            if !layer.active {
                continue;
            }
            let keyframe = std::mem::take(&mut layer.keyframe_due);
            for k in 0..layer.packets_per_frame {
                let pos = VideoPosition {
                    frame_start: k == 0,
                    keyframe,
                };
                let counter = ((index as u64) << LAYER_SHIFT) | layer.counter;
                let payload = synth::build_payload(&name, Some(pos), counter, 0, layer.size);
                let seq: SeqNo = (7000 + layer.counter).into();
                layer.counter += 1;
                if let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(mid, Some(layer.rid)) {
                    tx.write_rtp(
                        RtpWrite::new(pt, seq, ts, now, payload)
                            .marker(k + 1 == layer.packets_per_frame)
                            .nackable(true),
                    );
                }
            }
        }
    }

    /// Dynacast: start and stop encodings as the server asks; an encoding that starts again
    /// begins with a keyframe (as a browser's encoder does).
    pub(super) fn apply_layers_wanted(&mut self, wanted: &[switchboard_protocol::LayerWanted]) {
        for w in wanted {
            let Some(layer) = self
                .simulcast
                .iter_mut()
                .find(|l| w.rid.as_deref() == Some(&*l.rid))
            else {
                continue;
            };
            if w.active && !layer.active {
                layer.keyframe_due = true;
            }
            layer.active = w.active;
        }
    }

    /// A keyframe request for one of its encodings.
    pub(super) fn simulcast_keyframe(&mut self, rid: Option<Rid>) {
        for layer in &mut self.simulcast {
            if rid.is_none() || rid == Some(layer.rid) {
                layer.keyframe_due = true;
            }
        }
    }
}
