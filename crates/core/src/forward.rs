//! The per-subscription decision: drop this packet, or forward it with which sequence number,
//! timestamp and payload type. Pure state machine, no str0m objects, so it is tested with
//! synthetic packets.

use std::time::Instant;

use str0m::media::Pt;

use crate::rewrite::{SeqRewriter, TsRewriter};

/// What the forwarder needs to know about one incoming packet.
#[derive(Debug, Clone, Copy)]
pub struct PacketMeta {
    /// The publisher's extended sequence number.
    pub seq: u64,
    pub ts: u32,
    /// The packet starts a keyframe (codec-specific detection, done once per ingress packet).
    pub keyframe_start: bool,
}

/// The subscriber's payload type and clock rate for the publisher's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutCodec {
    pub pt: Pt,
    pub clock_rate: u32,
    /// The publisher sends RED (`crate::red`) on this PT and the subscriber did not negotiate
    /// it: forward only the primary frame, which must be in this (the publisher's) PT.
    pub strip_red: Option<Pt>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Forward { seq: u64, ts: u32, pt: Pt },
    Drop(DropReason),
}

/// Why a packet was not forwarded; counted per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Video for a subscriber that has not seen a keyframe of this source yet.
    AwaitingKeyframe,
    /// A straggler from before the subscriber started receiving this source.
    BeforeSwitch,
    /// The subscriber negotiated no codec matching the publisher's.
    NoCodec,
}

#[derive(Debug, Clone)]
pub struct Forwarder {
    seq: SeqRewriter,
    ts: TsRewriter,
    gate_on_keyframe: bool,
    awaiting_keyframe: bool,
}

impl Forwarder {
    /// `seed` picks the starting sequence number and timestamp (spread them per slot).
    pub fn new(seed: u64) -> Self {
        Forwarder {
            seq: SeqRewriter::new((seed % 30_000) as u16 + 1_000),
            ts: TsRewriter::new((seed >> 16) as u32),
            gate_on_keyframe: false,
            awaiting_keyframe: false,
        }
    }

    /// A new source feeds this slot. Video waits for a keyframe so the subscriber's decoder never
    /// starts on a delta frame of a stream it has no reference for.
    pub fn switch_source(&mut self, video: bool) {
        self.seq.rebase();
        self.ts.rebase();
        self.gate_on_keyframe = video;
        self.awaiting_keyframe = video;
    }

    /// The same source continues in another simulcast layer, starting with this packet, a
    /// keyframe of the new layer: numbering continues right after the last packet written, so
    /// the subscriber sees one stream.
    pub fn switch_layer(&mut self) {
        self.seq.rebase();
        self.ts.rebase();
    }

    /// Forwarding resumes after a pause: continue the numbering, and wait for a keyframe as a
    /// new source would (the decoder missed the frames in between).
    pub fn resume(&mut self) {
        self.seq.rebase();
        self.ts.rebase();
        self.awaiting_keyframe = self.gate_on_keyframe;
    }

    pub fn awaiting_keyframe(&self) -> bool {
        self.awaiting_keyframe
    }

    pub fn decide(
        &mut self,
        packet: &PacketMeta,
        codec: Option<OutCodec>,
        now: Instant,
    ) -> Decision {
        let Some(codec) = codec else {
            return Decision::Drop(DropReason::NoCodec);
        };
        if self.awaiting_keyframe {
            if !packet.keyframe_start {
                return Decision::Drop(DropReason::AwaitingKeyframe);
            }
            self.awaiting_keyframe = false;
        }
        let Some(seq) = self.seq.rewrite(packet.seq) else {
            return Decision::Drop(DropReason::BeforeSwitch);
        };
        let ts = self.ts.rewrite(packet.ts, now, codec.clock_rate);
        Decision::Forward {
            seq,
            ts,
            pt: codec.pt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VP8: OutCodec = OutCodec {
        pt: Pt::new_with_value(96),
        clock_rate: 90_000,
        strip_red: None,
    };

    fn pkt(seq: u64, ts: u32, key: bool) -> PacketMeta {
        PacketMeta {
            seq,
            ts,
            keyframe_start: key,
        }
    }

    #[test]
    fn video_waits_for_keyframe_then_flows() {
        let now = Instant::now();
        let mut f = Forwarder::new(0);
        f.switch_source(true);
        assert_eq!(
            f.decide(&pkt(10, 0, false), Some(VP8), now),
            Decision::Drop(DropReason::AwaitingKeyframe)
        );
        let Decision::Forward { seq: first, .. } = f.decide(&pkt(11, 0, true), Some(VP8), now)
        else {
            panic!("keyframe must pass");
        };
        let Decision::Forward { seq: second, .. } = f.decide(&pkt(12, 0, false), Some(VP8), now)
        else {
            panic!("delta after keyframe must pass");
        };
        assert_eq!(second, first + 1);
        // The packet before the keyframe never reaches the subscriber.
        assert_eq!(
            f.decide(&pkt(10, 0, false), Some(VP8), now),
            Decision::Drop(DropReason::BeforeSwitch)
        );
    }

    #[test]
    fn layer_switch_and_resume_continue_the_numbering() {
        let now = Instant::now();
        let mut f = Forwarder::new(3);
        f.switch_source(true);
        let Decision::Forward { seq: a, .. } = f.decide(&pkt(100, 0, true), Some(VP8), now) else {
            panic!("keyframe passes");
        };
        // Another layer's numbering is unrelated: it continues at a + 1.
        f.switch_layer();
        let Decision::Forward { seq: b, .. } = f.decide(&pkt(9000, 0, true), Some(VP8), now) else {
            panic!("the new layer's keyframe passes");
        };
        assert_eq!(b, a + 1);
        f.resume();
        assert_eq!(
            f.decide(&pkt(9005, 0, false), Some(VP8), now),
            Decision::Drop(DropReason::AwaitingKeyframe)
        );
        let Decision::Forward { seq: c, .. } = f.decide(&pkt(9006, 0, true), Some(VP8), now) else {
            panic!("a keyframe ends the pause");
        };
        assert_eq!(c, b + 1);
    }

    #[test]
    fn audio_needs_no_keyframe_but_a_codec() {
        let now = Instant::now();
        let mut f = Forwarder::new(7);
        f.switch_source(false);
        assert_eq!(
            f.decide(&pkt(1, 0, false), None, now),
            Decision::Drop(DropReason::NoCodec)
        );
        let opus = OutCodec {
            pt: Pt::new_with_value(111),
            clock_rate: 48_000,
            strip_red: None,
        };
        assert!(matches!(
            f.decide(&pkt(1, 0, false), Some(opus), now),
            Decision::Forward { pt, .. } if pt == opus.pt
        ));
    }

    #[test]
    fn starting_sequence_numbers_keep_rollover_counter_zero() {
        for seed in [0u64, 1, u64::MAX, 0xdead_beef_cafe] {
            let mut f = Forwarder::new(seed);
            f.switch_source(false);
            let opus = OutCodec {
                pt: Pt::new_with_value(111),
                clock_rate: 48_000,
                strip_red: None,
            };
            let Decision::Forward { seq, .. } =
                f.decide(&pkt(1 << 40, 0, false), Some(opus), Instant::now())
            else {
                panic!("must forward");
            };
            assert!(
                seq < 40_000,
                "seq {seq} leaves room before the first rollover"
            );
        }
    }
}
