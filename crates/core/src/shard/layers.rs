//! The encodings (simulcast layers) of one published track: which `rid`s arrive, how fast each
//! is sent, whether it is still flowing, and a keyframe-request throttle for each (a keyframe
//! request goes to one encoding's SSRC, so each has its own). A track without simulcast has one
//! layer whose rid is `None`.

use std::time::{Duration, Instant};

use str0m::media::Rid;

use crate::dynacast::Dynacast;
use crate::frame_size::FrameSize;
use crate::keyframe::KeyframeThrottle;

/// More encodings than this on one m-line are not forwarded (browsers send at most three).
pub(crate) const MAX_LAYERS: usize = 4;
/// A layer that sent nothing for this long is treated as stopped: subscribers fall back to
/// another. Shorter than str0m's own pause detection (1.5 s) so that a freeze stays short.
pub(crate) const LAYER_IDLE: Duration = Duration::from_millis(600);
/// Weight of the newest measurement in a layer's smoothed bitrate.
const RATE_WEIGHT: f64 = 0.5;

#[derive(Debug)]
pub(crate) struct Layer {
    pub rid: Option<Rid>,
    pub keyframe: KeyframeThrottle,
    /// Smoothed send rate in bits per second, updated by [`Layers::measure`].
    pub bitrate: u64,
    /// Payload bytes since the last measurement.
    bytes: u64,
    pub last_packet: Option<Instant>,
    /// str0m reported the encoding paused (no packets for its pause timeout).
    pub paused: bool,
    /// The picture size its newest keyframe announced (kept while it is stopped).
    pub size: Option<FrameSize>,
}

impl Layer {
    fn active(&self, now: Instant) -> bool {
        !self.paused
            && self
                .last_packet
                .is_some_and(|at| now.saturating_duration_since(at) < LAYER_IDLE)
    }
}

#[derive(Debug)]
pub(crate) struct Layers {
    layers: Vec<Layer>,
    keyframe_interval: Duration,
    measured_at: Option<Instant>,
    /// What the publisher was told about sending these layers (dynacast).
    pub dynacast: Dynacast,
}

impl Layers {
    pub fn new(keyframe_interval: Duration) -> Self {
        Layers {
            layers: Vec::new(),
            keyframe_interval,
            measured_at: None,
            dynacast: Dynacast::default(),
        }
    }

    /// Forget every layer (the track's m-line changed).
    pub fn clear(&mut self) {
        self.layers.clear();
        self.measured_at = None;
        self.dynacast.reset();
    }

    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn get(&self, index: usize) -> Option<&Layer> {
        self.layers.get(index)
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut Layer> {
        self.layers.get_mut(index)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Layer> {
        self.layers.iter_mut()
    }

    pub fn index_of(&self, rid: Option<Rid>) -> Option<usize> {
        self.layers.iter().position(|l| l.rid == rid)
    }

    /// The layer a packet with this rid belongs to, made on its first packet; `None` past
    /// [`MAX_LAYERS`].
    pub fn count_packet(&mut self, rid: Option<Rid>, bytes: usize, now: Instant) -> Option<usize> {
        let index = match self.index_of(rid) {
            Some(i) => i,
            None if self.layers.len() < MAX_LAYERS => {
                self.layers.push(Layer {
                    rid,
                    keyframe: KeyframeThrottle::new(self.keyframe_interval),
                    bitrate: 0,
                    bytes: 0,
                    last_packet: None,
                    paused: false,
                    size: None,
                });
                self.layers.len() - 1
            }
            None => return None,
        };
        let layer = &mut self.layers[index];
        layer.bytes += bytes as u64;
        layer.last_packet = Some(now);
        layer.paused = false;
        Some(index)
    }

    /// Turn the bytes counted since the last call into each layer's smoothed bitrate.
    pub fn measure(&mut self, now: Instant) {
        let Some(since) = self.measured_at.replace(now) else {
            for layer in &mut self.layers {
                layer.bytes = 0;
            }
            return;
        };
        let elapsed = now.saturating_duration_since(since).as_secs_f64();
        if elapsed <= 0.0 {
            return;
        }
        for layer in &mut self.layers {
            // A layer that sent nothing keeps its last rate: stopped (by the publisher, or by
            // dynacast) it still ranks where it did, and when it starts again the allocator
            // knows what it costs.
            if layer.bytes == 0 {
                continue;
            }
            let rate = std::mem::take(&mut layer.bytes) as f64 * 8.0 / elapsed;
            layer.bitrate = if layer.bitrate == 0 {
                rate as u64
            } else {
                (layer.bitrate as f64 * (1.0 - RATE_WEIGHT) + rate * RATE_WEIGHT) as u64
            };
        }
    }

    pub fn set_paused(&mut self, rid: Option<Rid>, paused: bool) {
        if let Some(i) = self.index_of(rid) {
            self.layers[i].paused = paused;
        }
    }

    /// A keyframe of layer `index` announced its picture size.
    pub fn set_size(&mut self, index: usize, size: FrameSize) {
        if let Some(layer) = self.layers.get_mut(index) {
            layer.size = Some(size);
        }
    }

    /// Sort layer indices low to high quality: by picture size once every one of them has
    /// announced one (a still picture's top layer may send fewer bytes than its lowest), by
    /// measured rate until then; equal keys by position (browsers list encodings low to high).
    fn sort_by_quality(&self, indices: &mut [usize]) {
        let sized = indices.iter().all(|&i| self.layers[i].size.is_some());
        indices.sort_by_key(|&i| {
            let layer = &self.layers[i];
            let pixels = if sized {
                layer.size.map_or(0, FrameSize::pixels)
            } else {
                0
            };
            (pixels, layer.bitrate, i)
        });
    }

    /// The layers flowing now, lowest quality first: the allocator's ladder.
    pub fn ranked(&self, now: Instant) -> Vec<usize> {
        let mut ranked: Vec<usize> = (0..self.layers.len())
            .filter(|&i| self.layers[i].active(now))
            .collect();
        self.sort_by_quality(&mut ranked);
        ranked
    }

    /// Every known layer, flowing or not, lowest quality first (dynacast's order); `None`
    /// until each has a measured rate.
    pub fn quality_order(&self) -> Option<Vec<usize>> {
        if self.layers.is_empty() || self.layers.iter().any(|l| l.bitrate == 0) {
            return None;
        }
        let mut order: Vec<usize> = (0..self.layers.len()).collect();
        self.sort_by_quality(&mut order);
        Some(order)
    }

    /// The earliest deferred keyframe request among the layers.
    pub fn keyframe_due(&self) -> Option<Instant> {
        self.layers.iter().filter_map(|l| l.keyframe.due_at()).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_active_layers_by_rate_and_drops_idle_ones() {
        let t0 = Instant::now();
        let mut layers = Layers::new(Duration::from_millis(300));
        let (q, h, f) = (Rid::from("q"), Rid::from("h"), Rid::from("f"));
        layers.measure(t0);
        for _ in 0..10 {
            layers.count_packet(Some(f), 1000, t0);
            layers.count_packet(Some(q), 100, t0);
            layers.count_packet(Some(h), 500, t0);
        }
        let t1 = t0 + Duration::from_millis(500);
        layers.measure(t1);
        let ladder: Vec<Option<Rid>> = layers
            .ranked(t1)
            .into_iter()
            .map(|i| layers.get(i).and_then(|l| l.rid))
            .collect();
        assert_eq!(ladder, vec![Some(q), Some(h), Some(f)]);
        assert_eq!(layers.get(0).map(|l| l.bitrate), Some(160_000));
        // f keeps sending; q and h stop.
        let t2 = t1 + LAYER_IDLE;
        layers.count_packet(Some(f), 1000, t2);
        assert_eq!(layers.ranked(t2), vec![0]);
        layers.set_paused(Some(f), true);
        assert!(layers.ranked(t2).is_empty());
    }

    #[test]
    fn a_stopped_layer_keeps_its_rate_and_its_place_in_the_quality_order() {
        let t0 = Instant::now();
        let mut layers = Layers::new(Duration::from_millis(300));
        let (f, q) = (Rid::from("f"), Rid::from("q"));
        layers.measure(t0);
        assert_eq!(layers.quality_order(), None, "nothing known yet");
        layers.count_packet(Some(f), 1000, t0);
        layers.count_packet(Some(q), 100, t0);
        let t1 = t0 + Duration::from_millis(500);
        layers.measure(t1);
        assert_eq!(layers.quality_order(), Some(vec![1, 0]));
        // f stops; q goes on.
        for i in 1..10 {
            let t = t1 + Duration::from_millis(500) * i;
            layers.count_packet(Some(q), 100, t);
            layers.measure(t);
        }
        assert_eq!(layers.get(0).map(|l| l.bitrate), Some(16_000));
        assert_eq!(layers.quality_order(), Some(vec![1, 0]));
    }

    #[test]
    fn bounded_number_of_layers() {
        let t0 = Instant::now();
        let mut layers = Layers::new(Duration::from_millis(300));
        for i in 0..10 {
            let rid = Rid::from(format!("r{i}").as_str());
            let got = layers.count_packet(Some(rid), 100, t0);
            assert_eq!(got.is_some(), i < MAX_LAYERS);
        }
        assert_eq!(layers.len(), MAX_LAYERS);
    }

    #[test]
    fn picture_sizes_order_a_still_picture_whose_top_layer_sends_least() {
        let t0 = Instant::now();
        let mut layers = Layers::new(Duration::from_millis(300));
        let (q, h, f) = (Rid::from("q"), Rid::from("h"), Rid::from("f"));
        layers.measure(t0);
        // A still canvas: q sends the most bytes, f the fewest.
        for (rid, bytes) in [(q, 2000), (h, 300), (f, 500)] {
            layers.count_packet(Some(rid), bytes, t0);
        }
        let t1 = t0 + Duration::from_millis(500);
        layers.measure(t1);
        assert_eq!(
            layers.ranked(t1),
            vec![1, 2, 0],
            "by rate until sizes are known"
        );
        let size = |width, height| FrameSize { width, height };
        layers.set_size(0, size(320, 180));
        layers.set_size(2, size(1280, 720));
        assert_eq!(layers.ranked(t1), vec![1, 2, 0], "every layer needs a size");
        layers.set_size(1, size(640, 360));
        assert_eq!(layers.ranked(t1), vec![0, 1, 2]);
        assert_eq!(layers.quality_order(), Some(vec![0, 1, 2]));
    }
}
