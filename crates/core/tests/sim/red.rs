//! RED (RFC 2198) in the simulation: a publisher that wraps each Opus frame with a copy of the
//! previous one, as Chrome does when RED is negotiated, and a receiver's view of what a RED
//! packet carries (its primary and its redundant frames), to count what a RED decoder recovers.

/// RED payload: one redundant block (the previous frame, 960 samples earlier) and the primary.
pub fn wrap(opus_pt: u8, previous: Option<&[u8]>, current: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(current.len() + previous.map_or(0, |p| p.len()) + 5);
    if let Some(prev) = previous {
        let (offset, len) = (960u16, prev.len() as u16);
        out.push(0x80 | opus_pt);
        out.push((offset >> 6) as u8);
        out.push((((offset & 0x3f) << 2) as u8) | ((len >> 8) as u8 & 0x03));
        out.push(len as u8);
    }
    out.push(opus_pt);
    if let Some(prev) = previous {
        out.extend_from_slice(prev);
    }
    out.extend_from_slice(current);
    out
}

/// The redundant frames of a RED payload (test side: the payloads this simulation makes).
pub fn redundant(payload: &[u8]) -> Vec<&[u8]> {
    let mut lens = Vec::new();
    let mut at = 0;
    while let Some(&b) = payload.get(at) {
        if b & 0x80 == 0 {
            at += 1;
            break;
        }
        let Some(h) = payload.get(at..at + 4) else {
            return Vec::new();
        };
        lens.push((usize::from(h[2] & 0x03) << 8) | usize::from(h[3]));
        at += 4;
    }
    let mut out = Vec::new();
    for len in lens {
        let Some(block) = payload.get(at..at + len) else {
            return out;
        };
        out.push(block);
        at += len;
    }
    out
}

impl super::Sim {
    /// `name` sends `payload` as its next audio packet (its next sequence number and timestamp),
    /// in RED's payload type when `red`, as it is: for malformed payloads.
    pub fn send_raw_audio(&mut self, name: &str, payload: Vec<u8>, red: bool) {
        use str0m::format::Codec;
        use str0m::rtp::{RtpWrite, SeqNo};
        let now = self.now;
        let c = self.client_mut(name);
        let Some(opus) = c.rtc.codec_config().find(|p| p.spec().codec == Codec::Opus) else {
            return;
        };
        let pt = if red { opus.red() } else { Some(opus.pt()) };
        let (Some(pt), Some(mid)) = (pt, c.audio_mid) else {
            return;
        };
        let seq: SeqNo = (100 + c.audio_counter).into();
        let ts = (c.audio_counter * 960) as u32;
        c.audio_counter += 1;
        if let Some(tx) = c.rtc.direct_api().stream_tx_by_mid(mid, None) {
            tx.write_rtp(RtpWrite::new(pt, seq, ts, now, payload));
        }
        let _ = c.rtc.handle_input(str0m::Input::Timeout(now));
    }
}
