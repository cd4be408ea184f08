//! Synthetic media: RTP payloads that look enough like Opus and VP8 for an SFU (keyframe
//! detection works on them) and carry what a receiver needs to measure loss, reordering, latency
//! and integrity without decoding anything.
//!
//! Layout of every payload:
//!
//! ```text
//! [VP8 payload descriptor + VP8 header, video only]
//! "SBM1"              4 bytes magic
//! owner_len  u8       length of the publisher's peer id
//! owner      bytes    publisher's peer id (UTF-8)
//! kind       u8       0 = audio, 1 = video
//! counter    u64 BE   per-publisher-track packet counter, starts at 0, +1 per packet
//! sent_us    u64 BE   send time, microseconds since the UNIX epoch (same-host latency)
//! filler     bytes    byte i = (counter + i) mod 256, up to the requested size
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 4] = b"SBM1";

/// What a receiver learns from one synthetic payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthInfo {
    pub owner: String,
    pub video: bool,
    pub counter: u64,
    pub sent_us: u64,
    /// The video packet starts a keyframe.
    pub keyframe: bool,
}

/// Why a payload did not parse as synthetic media: a receiver counts these as corruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthError {
    TooShort,
    BadMagic,
    BadOwner,
    BadFiller,
}

/// Where a video packet sits in its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoPosition {
    /// First packet of a frame (VP8 S bit, partition 0).
    pub frame_start: bool,
    /// The frame is a keyframe (only meaningful on `frame_start`).
    pub keyframe: bool,
}

/// Microseconds since the UNIX epoch; the clock the latency measurement uses on both sides.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Build a payload of (at least) `size` bytes. `video` carries the VP8 framing.
pub fn build_payload(
    owner: &str,
    video: Option<VideoPosition>,
    counter: u64,
    sent_us: u64,
    size: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(64));
    if let Some(pos) = video {
        // VP8 payload descriptor: X=0, N=0, S=frame_start, PID=0.
        out.push(if pos.frame_start { 0x10 } else { 0x00 });
        if pos.frame_start {
            // VP8 payload header: P bit (bit 0) is 0 for keyframes. Show frame bit set.
            out.push(if pos.keyframe { 0x10 } else { 0x11 });
        }
    }
    out.extend_from_slice(MAGIC);
    let owner = owner.as_bytes();
    let owner_len = owner.len().min(255);
    out.push(owner_len as u8);
    out.extend_from_slice(&owner[..owner_len]);
    out.push(u8::from(video.is_some()));
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(&sent_us.to_be_bytes());
    let mut i = 0u64;
    while out.len() < size {
        out.push(counter.wrapping_add(i) as u8);
        i += 1;
    }
    out
}

/// Parse and verify a payload built by [`build_payload`].
pub fn parse_payload(payload: &[u8], video: bool) -> Result<SynthInfo, SynthError> {
    let mut at = 0;
    let mut keyframe = false;
    if video {
        let first = *payload.first().ok_or(SynthError::TooShort)?;
        at = 1;
        if first & 0x10 != 0 {
            let header = *payload.get(1).ok_or(SynthError::TooShort)?;
            keyframe = header & 0x01 == 0;
            at = 2;
        }
    }
    let rest = payload.get(at..).ok_or(SynthError::TooShort)?;
    if rest.len() < 4 + 1 {
        return Err(SynthError::TooShort);
    }
    if &rest[..4] != MAGIC {
        return Err(SynthError::BadMagic);
    }
    let owner_len = rest[4] as usize;
    let owner_end = 5 + owner_len;
    let fixed_end = owner_end + 1 + 8 + 8;
    if rest.len() < fixed_end {
        return Err(SynthError::TooShort);
    }
    let owner = std::str::from_utf8(&rest[5..owner_end])
        .map_err(|_| SynthError::BadOwner)?
        .to_owned();
    let is_video = rest[owner_end] == 1;
    let mut word = [0u8; 8];
    word.copy_from_slice(&rest[owner_end + 1..owner_end + 9]);
    let counter = u64::from_be_bytes(word);
    word.copy_from_slice(&rest[owner_end + 9..fixed_end]);
    let sent_us = u64::from_be_bytes(word);
    for (i, b) in rest[fixed_end..].iter().enumerate() {
        if *b != counter.wrapping_add(i as u64) as u8 {
            return Err(SynthError::BadFiller);
        }
    }
    Ok(SynthInfo {
        owner,
        video: is_video,
        counter,
        sent_us,
        keyframe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_audio_and_video() {
        let a = build_payload("alice", None, 7, 99, 160);
        assert_eq!(a.len(), 160);
        let info = parse_payload(&a, false).expect("audio parses");
        assert_eq!(
            info,
            SynthInfo {
                owner: "alice".into(),
                video: false,
                counter: 7,
                sent_us: 99,
                keyframe: false
            }
        );
        let pos = VideoPosition {
            frame_start: true,
            keyframe: true,
        };
        let v = build_payload("bob", Some(pos), 1 << 40, 5, 1200);
        let info = parse_payload(&v, true).expect("video parses");
        assert!(info.keyframe && info.video);
        assert_eq!(info.counter, 1 << 40);
        assert!(str0m::format::detect_vp8_keyframe(&v));
        let delta = build_payload(
            "bob",
            Some(VideoPosition {
                frame_start: true,
                keyframe: false,
            }),
            2,
            5,
            1200,
        );
        assert!(!str0m::format::detect_vp8_keyframe(&delta));
    }

    #[test]
    fn corruption_is_detected() {
        let mut v = build_payload("bob", None, 3, 5, 300);
        v[200] ^= 0xff;
        assert_eq!(parse_payload(&v, false), Err(SynthError::BadFiller));
        assert_eq!(parse_payload(&v[..10], false), Err(SynthError::TooShort));
        assert_eq!(
            parse_payload(b"ZZZZZZZZZZZZZZZ", false),
            Err(SynthError::BadMagic)
        );
    }
}
