//! RFC 2198 redundant audio (RED) as a client makes and reads it: each packet carries the
//! previous frame as a redundant block before the current one (the *primary*), as Chrome sends
//! Opus when `audio/red` is negotiated. A receiver that lost a packet finds its frame in the next
//! one. The load tester publishes this way with [`ClientOptions::red`](crate::ClientOptions) and
//! counts what the redundancy recovers; the simulation tests use the same two functions.
//!
//! ```text
//!  header of a redundant block (4 bytes)              header of the primary (1 byte)
//!  |1| block PT (7) | timestamp offset (14) | length (10) |   |0| primary PT (7) |
//!  then the blocks' bytes in header order, the primary's last
//! ```

/// How far back the redundant block is, in RTP ticks: one 20 ms Opus frame at 48 kHz.
pub const FRAME_TICKS: u16 = 960;

/// The longest block a header can declare (10 bits of length).
const MAX_BLOCK: usize = 0x3ff;

/// The most blocks [`unwrap`] walks before calling a payload malformed (browsers send one or two).
const MAX_BLOCKS: usize = 8;

/// A RED payload of the primary frame `current` (in payload type `pt`), with `previous` as its
/// one redundant block when there is one that fits a header's length field.
pub fn wrap(pt: u8, previous: Option<&[u8]>, current: &[u8]) -> Vec<u8> {
    let previous = previous.filter(|p| p.len() <= MAX_BLOCK);
    let extra = previous.map_or(0, |p| p.len() + 4);
    let mut out = Vec::with_capacity(1 + extra + current.len());
    if let Some(block) = previous {
        let len = block.len() as u16;
        out.extend_from_slice(&[
            0x80 | (pt & 0x7f),
            (FRAME_TICKS >> 6) as u8,
            (((FRAME_TICKS & 0x3f) << 2) as u8) | ((len >> 8) as u8 & 0x03),
            len as u8,
        ]);
    }
    out.push(pt & 0x7f);
    if let Some(block) = previous {
        out.extend_from_slice(block);
    }
    out.extend_from_slice(current);
    out
}

/// What one RED payload carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrapped<'a> {
    /// The current frame.
    pub primary: &'a [u8],
    /// Earlier frames' copies, oldest first (the order of their headers).
    pub redundant: Vec<&'a [u8]>,
}

/// Take a RED payload apart; `None` when its headers or lengths run past its end (a receiver
/// counts that as a corrupt packet).
pub fn unwrap(payload: &[u8]) -> Option<Unwrapped<'_>> {
    let mut lengths = Vec::new();
    let mut at = 0;
    loop {
        let first = *payload.get(at)?;
        if first & 0x80 == 0 {
            at += 1;
            break;
        }
        if lengths.len() == MAX_BLOCKS {
            return None;
        }
        let header = payload.get(at..at + 4)?;
        lengths.push((usize::from(header[2] & 0x03) << 8) | usize::from(header[3]));
        at += 4;
    }
    let mut redundant = Vec::with_capacity(lengths.len());
    for len in lengths {
        redundant.push(payload.get(at..at + len)?);
        at += len;
    }
    Some(Unwrapped {
        primary: payload.get(at..)?,
        redundant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_frame_unwraps_to_itself_and_the_previous_one() {
        let first = wrap(111, None, b"one");
        assert_eq!(first, [111, b'o', b'n', b'e']);
        let second = wrap(111, Some(b"one"), b"two!");
        assert_eq!(&second[..5], &[0x80 | 111, 15, 0, 3, 111]);
        let parts = unwrap(&second).expect("parses");
        assert_eq!(parts.primary, b"two!");
        assert_eq!(parts.redundant, vec![&b"one"[..]]);
        assert_eq!(unwrap(&first).expect("parses").redundant.len(), 0);
    }

    #[test]
    fn a_block_too_long_for_the_header_is_left_out() {
        let big = vec![7u8; MAX_BLOCK + 1];
        let parts_of = wrap(111, Some(&big), b"x");
        let parts = unwrap(&parts_of).expect("parses");
        assert!(parts.redundant.is_empty());
        assert_eq!(parts.primary, b"x");
    }

    #[test]
    fn malformed_payloads_are_refused_without_reading_past_the_end() {
        assert_eq!(unwrap(&[]), None);
        assert_eq!(unwrap(&[0x80 | 111, 15]), None);
        // Declares 3 bytes of block but has 1.
        assert_eq!(unwrap(&[0x80 | 111, 15, 0, 3, 111, 9]), None);
        assert_eq!(unwrap(&[0x80; 64]), None);
    }
}
