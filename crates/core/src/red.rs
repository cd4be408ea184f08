//! RFC 2198 redundant audio (RED): a payload of earlier frames' copies followed by the current
//! frame, the *primary*. Browsers send Opus this way when the answer offers `audio/red`, so a
//! receiver that lost a packet takes the frame from the next one's redundancy. The server
//! forwards RED as it comes to subscribers that negotiated it and strips it to the primary Opus
//! frame for the rest (`primary`); it never re-encodes.
//!
//! ```text
//!  header of a redundant block (4 bytes)       header of the primary (1 byte)
//!  |1| PT (7) | timestamp offset (14) | length (10) |   |0| PT (7) |
//! ```
//! The headers come first, then the blocks' data in the same order, the primary's last.

use str0m::media::Pt;

/// The most redundant blocks one payload may declare (browsers send one or two). More is
/// malformed: it would only make the parse walk further.
const MAX_BLOCKS: usize = 8;

/// The current frame of a RED payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Primary<'a> {
    /// The payload type the frame is in (the primary codec's, e.g. Opus).
    pub pt: Pt,
    pub data: &'a [u8],
}

/// Why a RED payload could not be taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedError {
    /// The headers ran past the end of the payload.
    Truncated,
    /// More redundant blocks than `MAX_BLOCKS`.
    TooManyBlocks,
    /// The blocks' declared lengths add up to more than the payload holds.
    LengthsTooLong,
}

/// The primary frame of a RED payload, or why there is none. Never reads past `payload`.
pub fn primary(payload: &[u8]) -> Result<Primary<'_>, RedError> {
    let mut at = 0;
    let mut redundant = 0usize;
    let mut blocks = 0;
    loop {
        let first = *payload.get(at).ok_or(RedError::Truncated)?;
        if first & 0x80 == 0 {
            at += 1;
            let data = payload
                .get(at + redundant..)
                .ok_or(RedError::LengthsTooLong)?;
            return Ok(Primary {
                pt: Pt::from(first & 0x7f),
                data,
            });
        }
        blocks += 1;
        if blocks > MAX_BLOCKS {
            return Err(RedError::TooManyBlocks);
        }
        let header = payload.get(at..at + 4).ok_or(RedError::Truncated)?;
        redundant += (usize::from(header[2] & 0x03) << 8) | usize::from(header[3]);
        at += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RED payload of `blocks` (pt, ts offset, data) and then the primary.
    fn red(blocks: &[(u8, u16, &[u8])], primary_pt: u8, primary: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (pt, offset, data) in blocks {
            let len = data.len() as u16;
            out.push(0x80 | pt);
            out.push((offset >> 6) as u8);
            out.push((((offset & 0x3f) << 2) as u8) | ((len >> 8) as u8 & 0x03));
            out.push(len as u8);
        }
        out.push(primary_pt);
        for (_, _, data) in blocks {
            out.extend_from_slice(data);
        }
        out.extend_from_slice(primary);
        out
    }

    #[test]
    fn the_primary_is_what_follows_the_redundant_blocks() {
        let payload = red(&[(111, 960, b"older frame")], 111, b"current frame");
        let p = primary(&payload).expect("parses");
        assert_eq!(p.pt, Pt::from(111));
        assert_eq!(p.data, b"current frame");

        let two = red(&[(111, 1920, b"a"), (111, 960, &[7; 300])], 111, b"now");
        assert_eq!(primary(&two).expect("parses").data, b"now");

        // No redundancy (the first packet of a stream): one byte of header.
        let none = red(&[], 111, b"first");
        assert_eq!(primary(&none).expect("parses").data, b"first");
        // A primary may be empty (DTX); that is still well formed.
        assert_eq!(
            primary(&red(&[(111, 960, b"x")], 111, b""))
                .expect("parses")
                .data,
            b""
        );
    }

    #[test]
    fn malformed_payloads_are_refused_without_reading_past_the_end() {
        assert_eq!(primary(&[]), Err(RedError::Truncated));
        // A redundant header cut short.
        assert_eq!(primary(&[0x80 | 111, 0x0f]), Err(RedError::Truncated));
        // Headers only, never a primary header.
        assert_eq!(
            primary(&[0x80 | 111, 0, 0, 0, 0x80 | 111, 0, 0, 0]),
            Err(RedError::Truncated)
        );
        // A block claiming 1023 bytes of a 12-byte payload.
        let mut long = red(&[(111, 960, b"abc")], 111, b"def");
        long[2] |= 0x03;
        long[3] = 0xff;
        assert_eq!(primary(&long), Err(RedError::LengthsTooLong));
        // Block headers without end.
        let many = [0x80 | 111, 0, 0, 0].repeat(MAX_BLOCKS + 1);
        assert_eq!(primary(&many), Err(RedError::TooManyBlocks));
        // Every byte string of up to 3 bytes, and a sweep of 6-byte ones: no panic.
        for len in 0..=3usize {
            for v in 0..(1u32 << (8 * len as u32)).min(1 << 16) {
                let bytes: Vec<u8> = (0..len).map(|i| (v >> (8 * i)) as u8).collect();
                let _ = primary(&bytes);
            }
        }
        for v in 0..=255u8 {
            let _ = primary(&[v, v ^ 0x80, v, 0xff, v, 1]);
        }
    }
}
