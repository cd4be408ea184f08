//! Robustness testing: a client that sends transport-wide-cc sequence numbers of the test's
//! choosing, the way a hostile publisher could.
//!
//! A str0m client numbers transport-wide-cc itself and cannot be told otherwise. So the forging
//! client maps a private extension of its own ([`FORGED_URI`]) on the id where the server expects
//! transport-cc, writes the chosen numbers through it, and rewrites the URI in the SDP it sends
//! (and back in the SDP it receives): the server believes it negotiated transport-cc and reads
//! the forged numbers from perfectly valid, SRTP-authenticated packets.

use str0m::rtp::{Extension, ExtensionSerializer, ExtensionValues};

/// The extension id str0m's standard map gives transport-wide-cc (and so our offer declares).
pub const TWCC_ID: u8 = 3;
/// The real extension's URI, as it appears in SDP.
pub const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/// The forging client's private stand-in, swapped for [`TWCC_URI`] on the wire.
pub const FORGED_URI: &str = "urn:x-switchboard-test:forged-transport-cc";

/// The sequence number a packet claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForgedSeq(pub u16);

/// Writes [`ForgedSeq`] as transport-cc's two big-endian bytes.
#[derive(Debug)]
struct ForgedTwcc;

impl ExtensionSerializer for ForgedTwcc {
    fn write_to(&self, buf: &mut [u8], ev: &ExtensionValues) -> usize {
        match (ev.user_values.get::<ForgedSeq>(), buf.get_mut(..2)) {
            (Some(seq), Some(out)) => {
                out.copy_from_slice(&seq.0.to_be_bytes());
                2
            }
            _ => 0,
        }
    }

    fn parse_value(&self, _buf: &[u8], _ev: &mut ExtensionValues) -> bool {
        false
    }

    fn is_video(&self) -> bool {
        true
    }

    fn is_audio(&self) -> bool {
        true
    }
}

/// The client's engine settings with the stand-in on the transport-cc id.
pub fn forging_config(base: str0m::RtcConfig) -> str0m::RtcConfig {
    base.set_extension(TWCC_ID, Extension::with_serializer(FORGED_URI, ForgedTwcc))
}

/// SDP this client sends: the server must see transport-cc.
pub fn outgoing(sdp: &str) -> String {
    sdp.replace(FORGED_URI, TWCC_URI)
}

/// SDP this client receives: its engine must keep its stand-in.
pub fn incoming(sdp: &str) -> String {
    sdp.replace(TWCC_URI, FORGED_URI)
}

/// The numbers to stamp: the chosen ones, then counting on from the last, as a sender would.
#[derive(Debug, Clone)]
pub struct ForgedSequence {
    chosen: Vec<u16>,
    next: usize,
    last: u16,
}

impl ForgedSequence {
    pub fn new(chosen: Vec<u16>) -> Self {
        ForgedSequence {
            chosen,
            next: 0,
            last: 0,
        }
    }

    pub fn next_seq(&mut self) -> ForgedSeq {
        let seq = match self.chosen.get(self.next) {
            Some(seq) => *seq,
            None => self.last.wrapping_add(1),
        };
        self.next += 1;
        self.last = seq;
        ForgedSeq(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_numbers_then_a_count() {
        let mut s = ForgedSequence::new(vec![0, 0xffff, 1]);
        let got: Vec<u16> = (0..5).map(|_| s.next_seq().0).collect();
        assert_eq!(got, [0, 0xffff, 1, 2, 3]);
        let sdp = format!("a=extmap:3 {FORGED_URI}\r\n");
        assert_eq!(outgoing(&sdp), format!("a=extmap:3 {TWCC_URI}\r\n"));
        assert_eq!(incoming(&outgoing(&sdp)), sdp);
    }
}
