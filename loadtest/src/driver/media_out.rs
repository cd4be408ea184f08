//! Media out: the synthetic audio and video tracks this client publishes — their send streams
//! and payload types after each negotiation, and the packets written on every tick.

use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{Mid, Pt};
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::Rtc;

use super::Driver;
use crate::red;
use crate::synth::{self, VideoPosition};

/// Synthetic Opus: one packet of [`AUDIO_PAYLOAD`] bytes every 20 ms, 960 ticks of 48 kHz.
pub(super) const AUDIO_PERIOD: Duration = Duration::from_millis(20);
const AUDIO_PAYLOAD: usize = 160;
const AUDIO_TS_STEP: u32 = 960;
/// The RTP clock of video.
const VIDEO_CLOCK: u32 = 90_000;

/// One published track.
#[derive(Debug)]
pub(super) struct TxTrack {
    mid: Mid,
    video: bool,
    ssrc: Option<Ssrc>,
    pt: Option<Pt>,
    /// RED's payload type when RED was negotiated on the audio m-line (`ClientOptions::red`).
    red_pt: Option<Pt>,
    /// The previous audio frame: the redundant block of the next RED packet.
    previous: Option<Vec<u8>>,
    /// Extended RTP sequence number; starts below 65 536 (ROC 0).
    seq: u64,
    ts: u32,
    /// Synthetic payload counter.
    counter: u64,
    frames: u64,
    force_keyframe: bool,
}

impl TxTrack {
    pub(super) fn new(mid: Mid, video: bool) -> Self {
        // Arbitrary but varying starting points, as real senders use.
        let seed = synth::now_us();
        TxTrack {
            mid,
            video,
            ssrc: None,
            pt: None,
            red_pt: None,
            previous: None,
            seq: (seed % 30_000) + 1,
            ts: (seed as u32) & 0x00ff_ffff,
            counter: 0,
            frames: 0,
            force_keyframe: false,
        }
    }

    pub(super) fn mid(&self) -> Mid {
        self.mid
    }

    pub(super) fn ready(&self) -> bool {
        self.ssrc.is_some() && self.pt.is_some()
    }
}

impl Driver {
    /// The server asked for a keyframe on `mid`: the next video frame is one.
    pub(super) fn force_keyframe(&mut self, mid: Mid) {
        if let Some(v) = self.video.as_mut().filter(|v| v.mid == mid) {
            v.force_keyframe = true;
        }
    }

    /// After a negotiation: find the send streams and payload types of the published tracks.
    pub(super) fn setup_tx(&mut self) {
        for video in [false, true] {
            let track = if video {
                &mut self.video
            } else {
                &mut self.audio
            };
            let Some(track) = track.as_mut() else {
                continue;
            };
            if track.ssrc.is_none() {
                track.ssrc = self
                    .rtc
                    .direct_api()
                    .stream_tx_by_mid(track.mid, None)
                    .map(|s| s.ssrc());
            }
            track.pt = pick_pt(&self.rtc, track.mid, track.video);
            if !track.video && self.opts.red {
                track.red_pt = opus_red_pt(&self.rtc);
            }
        }
        // Received RED is recognised by this payload type (every audio m-line shares it).
        self.red_rx_pt = opus_red_pt(&self.rtc);
    }

    pub(super) fn send_audio(&mut self) {
        let (Some(peer), Some(tx)) = (self.peer_id.as_deref(), self.audio.as_mut()) else {
            return;
        };
        let (Some(ssrc), Some(pt)) = (tx.ssrc, tx.pt) else {
            return;
        };
        let now = Instant::now();
        let frame = synth::build_payload(peer, None, tx.counter, synth::now_us(), AUDIO_PAYLOAD);
        let (pt, payload) = match tx.red_pt {
            Some(red_pt) => {
                let wrapped = red::wrap(*pt, tx.previous.as_deref(), &frame);
                tx.previous = Some(frame);
                (red_pt, wrapped)
            }
            None => (pt, frame),
        };
        let write = RtpWrite::new(pt, tx.seq.into(), tx.ts, now, payload);
        let every = u64::from(self.opts.drop_audio_every);
        // Counted from 1, so the first packet (which opens the track) is always sent.
        let dropped = every > 0 && (tx.counter + 1) % every == 0;
        tx.counter += 1;
        tx.seq += 1;
        tx.ts = tx.ts.wrapping_add(AUDIO_TS_STEP);
        if dropped {
            self.stats().dropped_audio += 1;
        } else {
            self.write(ssrc, vec![write], now);
        }
    }

    pub(super) fn send_video(&mut self) {
        let Some(vopts) = self.opts.video.as_ref() else {
            return;
        };
        let (Some(peer), Some(tx)) = (self.peer_id.as_deref(), self.video.as_mut()) else {
            return;
        };
        let (Some(ssrc), Some(pt)) = (tx.ssrc, tx.pt) else {
            return;
        };
        let keyframe = tx.frames == 0
            || tx.force_keyframe
            || (vopts.keyframe_interval > 0 && tx.frames % u64::from(vopts.keyframe_interval) == 0);
        tx.force_keyframe = false;
        let now = Instant::now();
        let n = vopts.packets_per_frame.max(1);
        let mut writes = Vec::with_capacity(n as usize);
        for i in 0..n {
            let pos = VideoPosition {
                frame_start: i == 0,
                keyframe,
            };
            let payload = synth::build_payload(
                peer,
                Some(pos),
                tx.counter,
                synth::now_us(),
                vopts.packet_size,
            );
            let write = RtpWrite::new(pt, tx.seq.into(), tx.ts, now, payload)
                .marker(i + 1 == n)
                .nackable(true);
            writes.push(write);
            tx.counter += 1;
            tx.seq += 1;
        }
        tx.frames += 1;
        tx.ts = tx.ts.wrapping_add(VIDEO_CLOCK / vopts.fps.clamp(1, 1000));
        {
            let mut s = self.stats();
            s.sent_frames += 1;
            s.sent_keyframes += u64::from(keyframe);
        }
        self.write(ssrc, writes, now);
    }

    /// Hand packets to str0m (draining after each), then one timeout pass to send them.
    pub(super) fn write(&mut self, ssrc: Ssrc, writes: Vec<RtpWrite>, now: Instant) {
        if self.rtc_dead {
            return;
        }
        let mut written = 0u64;
        for mut w in writes {
            if let Some(forged) = self.forged.as_mut() {
                let mut ev = str0m::rtp::ExtensionValues::default();
                ev.user_values.set(forged.next_seq());
                w = w.ext_vals(ev);
            }
            match self.rtc.direct_api().stream_tx(&ssrc) {
                Some(stream) => {
                    stream.write_rtp(w);
                    written += 1;
                }
                None => break,
            }
            self.drain();
        }
        self.stats().sent_packets += written;
        self.feed_timeout(now, "str0m timeout after write");
    }
}

/// The payload type to send on `mid`: the first negotiated PT of the wanted codec (Opus for
/// audio, VP8 for video), else the session's configured one.
fn pick_pt(rtc: &Rtc, mid: Mid, video: bool) -> Option<Pt> {
    let want = if video { Codec::Vp8 } else { Codec::Opus };
    let config = rtc.codec_config();
    let is_wanted = |pt: Pt| {
        config
            .find(|p| p.pt() == pt)
            .is_some_and(|p| p.spec().codec == want)
    };
    rtc.media(mid)
        .and_then(|m| m.remote_pts().iter().copied().find(|pt| is_wanted(*pt)))
        .or_else(|| config.find(|p| p.spec().codec == want).map(|p| p.pt()))
}

/// The RED payload type folded onto Opus in this session's codec config: str0m keeps it there
/// only when the remote listed RED too (the m-line's PT list holds the main codecs only).
fn opus_red_pt(rtc: &Rtc) -> Option<Pt> {
    rtc.codec_config()
        .find(|p| p.spec().codec == Codec::Opus)
        .and_then(|p| p.red())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::signalling::count_mlines;
    use str0m::media::Direction;

    #[test]
    fn offer_has_the_requested_mlines_and_payload_types() {
        let mut rtc = crate::options::rtc_config().build(Instant::now());
        let mut api = rtc.sdp_api();
        let a = api.add_media(
            str0m::media::MediaKind::Audio,
            Direction::SendOnly,
            None,
            None,
            None,
        );
        let v = api.add_media(
            str0m::media::MediaKind::Video,
            Direction::SendOnly,
            None,
            None,
            None,
        );
        api.add_media(
            str0m::media::MediaKind::Video,
            Direction::RecvOnly,
            None,
            None,
            None,
        );
        let (offer, _pending) = api.apply().expect("an offer");
        let sdp = offer.to_sdp_string();
        assert_eq!(count_mlines(&sdp), 3);
        let opus = pick_pt(&rtc, a, false).expect("opus pt");
        let vp8 = pick_pt(&rtc, v, true).expect("vp8 pt");
        let codec = |pt: Pt| {
            rtc.codec_config()
                .find(|p| p.pt() == pt)
                .map(|p| p.spec().codec)
        };
        assert_eq!(codec(opus), Some(Codec::Opus));
        assert_eq!(codec(vp8), Some(Codec::Vp8));
    }
}
