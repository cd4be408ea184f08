//! The frame of every message on a data channel the SFU relays (docs/protocol.md "Data
//! channels"). A client opens data channels on its room session; the server passes each message
//! to the channels of the same label of the other members (or of one of them). The frame says
//! whom a message is for on the way in, and who sent it on the way out, so that the server never
//! has to look inside the payload and a receiver always knows the sender.
//!
//! ```text
//! byte 0      version, 1
//! byte 1      flags: bit 0 set = the payload is UTF-8 text (a string message); other bits 0
//! byte 2      N, the length of the peer id in bytes (0..=64)
//! 3 .. 3+N    the peer id: to the server, the one receiver (N = 0: every other member);
//!             from the server, the sender
//! 3+N ..      the payload
//! ```
//!
//! Frames travel as binary SCTP messages of at most [`MAX_RELAY_FRAME`] bytes.

use crate::names::validate_peer_id;

pub const RELAY_FRAME_VERSION: u8 = 1;
/// Largest frame the server relays: the smallest `max-message-size` browsers announce (64 KiB,
/// str0m's default for a peer that announces none), so a relayed frame reaches every receiver.
pub const MAX_RELAY_FRAME: usize = 64 * 1024;
const FLAG_TEXT: u8 = 1;
const HEADER: usize = 3;
const MAX_PEER_ID: usize = 64;

/// A frame, borrowed from the bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayFrame<'a> {
    /// The payload is text (send it on as a string message), else binary.
    pub text: bool,
    /// The receiver (to the server; `None`: everyone else) or the sender (from the server).
    pub peer: Option<&'a str>,
    pub payload: &'a [u8],
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the header says there are.
    Truncated,
    /// A version this server does not speak.
    Version(u8),
    /// Flag bits that mean nothing yet.
    Flags(u8),
    /// The peer id is not a valid peer id (or longer than 64 bytes).
    PeerId,
    /// A text payload that is not UTF-8.
    NotText,
    /// More than [`MAX_RELAY_FRAME`] bytes.
    TooLarge(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Truncated => write!(f, "the frame is shorter than its header says"),
            FrameError::Version(v) => write!(f, "relay frame version {v} is unknown (use 1)"),
            FrameError::Flags(b) => write!(f, "relay frame flags {b:#04x} are unknown"),
            FrameError::PeerId => write!(f, "the frame's peer id is not a valid peer id"),
            FrameError::NotText => write!(f, "a text frame whose payload is not UTF-8"),
            FrameError::TooLarge(n) => {
                write!(
                    f,
                    "a frame of {n} bytes is over the {MAX_RELAY_FRAME}-byte limit"
                )
            }
        }
    }
}

impl<'a> RelayFrame<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FrameError> {
        if bytes.len() > MAX_RELAY_FRAME {
            return Err(FrameError::TooLarge(bytes.len()));
        }
        let [version, flags, len, rest @ ..] = bytes else {
            return Err(FrameError::Truncated);
        };
        if *version != RELAY_FRAME_VERSION {
            return Err(FrameError::Version(*version));
        }
        if flags & !FLAG_TEXT != 0 {
            return Err(FrameError::Flags(*flags));
        }
        let len = usize::from(*len);
        if len > MAX_PEER_ID {
            return Err(FrameError::PeerId);
        }
        if rest.len() < len {
            return Err(FrameError::Truncated);
        }
        let (peer, payload) = rest.split_at(len);
        let peer = match len {
            0 => None,
            _ => {
                let id = std::str::from_utf8(peer).map_err(|_| FrameError::PeerId)?;
                validate_peer_id(id).map_err(|_| FrameError::PeerId)?;
                Some(id)
            }
        };
        let text = flags & FLAG_TEXT != 0;
        if text && std::str::from_utf8(payload).is_err() {
            return Err(FrameError::NotText);
        }
        Ok(RelayFrame {
            text,
            peer,
            payload,
        })
    }

    /// The frame's bytes, written to the end of `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let peer = self.peer.unwrap_or("").as_bytes();
        debug_assert!(peer.len() <= MAX_PEER_ID, "peer ids are validated");
        out.reserve(HEADER + peer.len() + self.payload.len());
        out.push(RELAY_FRAME_VERSION);
        out.push(if self.text { FLAG_TEXT } else { 0 });
        // Peer ids are at most 64 bytes (validated tokens), so the length fits a byte.
        out.push(peer.len().min(MAX_PEER_ID) as u8);
        out.extend_from_slice(&peer[..peer.len().min(MAX_PEER_ID)]);
        out.extend_from_slice(self.payload);
    }

    /// Bytes of the frame as written.
    pub fn encoded_len(&self) -> usize {
        HEADER + self.peer.map_or(0, str::len) + self.payload.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_reads_back_as_written() {
        let frame = RelayFrame {
            text: true,
            peer: Some("alice"),
            payload: "héllo".as_bytes(),
        };
        let mut bytes = Vec::new();
        frame.write(&mut bytes);
        assert_eq!(bytes[..3], [1, 1, 5]);
        assert_eq!(bytes.len(), frame.encoded_len());
        assert_eq!(RelayFrame::parse(&bytes), Ok(frame));
        let to_all = RelayFrame {
            text: false,
            peer: None,
            payload: &[0, 255, 7],
        };
        let mut bytes = Vec::new();
        to_all.write(&mut bytes);
        assert_eq!(bytes, [1, 0, 0, 0, 255, 7]);
        assert_eq!(RelayFrame::parse(&bytes), Ok(to_all));
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        assert_eq!(RelayFrame::parse(&[]), Err(FrameError::Truncated));
        assert_eq!(RelayFrame::parse(&[1, 0]), Err(FrameError::Truncated));
        assert_eq!(
            RelayFrame::parse(&[1, 0, 4, b'a']),
            Err(FrameError::Truncated)
        );
        assert_eq!(RelayFrame::parse(&[2, 0, 0]), Err(FrameError::Version(2)));
        assert_eq!(RelayFrame::parse(&[1, 6, 0]), Err(FrameError::Flags(6)));
        assert_eq!(RelayFrame::parse(&[1, 0, 65]), Err(FrameError::PeerId));
        assert_eq!(
            RelayFrame::parse(&[1, 0, 2, b'a', b' ']),
            Err(FrameError::PeerId)
        );
        assert_eq!(RelayFrame::parse(&[1, 0, 1, 0xff]), Err(FrameError::PeerId));
        assert_eq!(
            RelayFrame::parse(&[1, 1, 0, 0xff]),
            Err(FrameError::NotText)
        );
        let big = vec![0; MAX_RELAY_FRAME + 1];
        assert_eq!(
            RelayFrame::parse(&big),
            Err(FrameError::TooLarge(MAX_RELAY_FRAME + 1))
        );
        // An empty payload is a message too (an empty string).
        assert!(RelayFrame::parse(&[1, 1, 0]).is_ok());
    }
}
