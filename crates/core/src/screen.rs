//! Screening of client SDP and candidates before they go near a shard.
//!
//! The signalling task runs these on the client's text: they bound the size and the number of
//! m-lines and tracks, refuse the constructs known to crash the media engine, and parse with
//! str0m's parser under `catch_unwind`. A parser panic therefore costs the sender one error reply
//! on its own connection, never a turn of the shard. What passes goes to the shard already
//! parsed (`Command::Offer { offer, .. }`), where applying it is guarded again.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::Candidate;

/// What the screen enforces.
#[derive(Debug, Clone, Copy)]
pub struct SdpLimits {
    /// m-lines one SDP may carry (sent and received together).
    pub max_mlines: usize,
    /// m-lines on which the client may send (its published tracks).
    pub max_tracks: usize,
}

impl Default for SdpLimits {
    fn default() -> Self {
        SdpLimits {
            max_mlines: switchboard_protocol::MAX_MLINES_PER_SESSION,
            max_tracks: switchboard_protocol::MAX_TRACKS_PER_PARTICIPANT,
        }
    }
}

/// Why a client's SDP or candidate was refused. `Display` is the text the client receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// More m-lines than a session may have: send fewer (`tooManyTracks`).
    TooManyMlines { found: usize, max: usize },
    /// More sending m-lines than a participant may publish (`tooManyTracks`).
    TooManyTracks { found: usize, max: usize },
    /// A payload type declared twice in one m-line: the SDP is ambiguous (`badSdp`).
    DuplicatePayloadType { pt: u8, mline: usize },
    /// An `a=rtpmap` for a payload type its m-line does not list: the SDP is malformed (RFC
    /// 8866 §6.6), and str0m 0.25 counts the stray codec as offered and panics ("Pt locked
    /// multiple times") when a later m-line declares the same PT (`badSdp`). Found by the
    /// `sdp_offer` fuzz target.
    UnlistedPayloadType { pt: u8, mline: usize },
    /// A payload type that means one codec in one m-line and another in a later one; bundled
    /// m-lines must agree (RFC 8843 §9.1), and str0m 0.25 panics on it (`badSdp`).
    ConflictingPayloadType {
        pt: u8,
        first: String,
        second: String,
    },
    /// Not SDP, or SDP the media engine cannot read (`badSdp` / `badCandidate`).
    Unparsable(String),
    /// The parser failed on this input (a bug in it); the input is refused (`badSdp` /
    /// `badCandidate`).
    ParserFailed,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooManyMlines { found, max } => {
                write!(f, "{found} m-lines; a session may have at most {max}")
            }
            Refusal::TooManyTracks { found, max } => write!(
                f,
                "{found} sending m-lines; a participant may publish at most {max} tracks"
            ),
            Refusal::DuplicatePayloadType { pt, mline } => {
                write!(f, "payload type {pt} is declared twice in m-line {mline}")
            }
            Refusal::UnlistedPayloadType { pt, mline } => write!(
                f,
                "a=rtpmap:{pt} in m-line {mline}, which does not list payload type {pt}"
            ),
            Refusal::ConflictingPayloadType { pt, first, second } => write!(
                f,
                "payload type {pt} is {first} in one m-line and {second} in another; bundled \
                 m-lines must agree"
            ),
            Refusal::Unparsable(e) => write!(f, "not valid SDP: {e}"),
            Refusal::ParserFailed => write!(f, "the SDP parser could not handle this input"),
        }
    }
}

impl std::error::Error for Refusal {}

impl Refusal {
    /// The error code the client receives for this refusal of an SDP.
    pub fn code(&self) -> switchboard_protocol::ErrorCode {
        use switchboard_protocol::ErrorCode;
        match self {
            Refusal::TooManyMlines { .. } | Refusal::TooManyTracks { .. } => {
                ErrorCode::TooManyTracks
            }
            _ => ErrorCode::BadSdp,
        }
    }
}

/// Screen a client offer and parse it.
pub fn screen_offer(sdp: &str, limits: &SdpLimits) -> Result<SdpOffer, Refusal> {
    check_text(sdp, limits, true)?;
    guarded(|| SdpOffer::from_sdp_string(sdp).map_err(|e| Refusal::Unparsable(e.to_string())))
}

/// Screen a client answer (to a server offer) and parse it.
pub fn screen_answer(sdp: &str, limits: &SdpLimits) -> Result<SdpAnswer, Refusal> {
    check_text(sdp, limits, false)?;
    guarded(|| SdpAnswer::from_sdp_string(sdp).map_err(|e| Refusal::Unparsable(e.to_string())))
}

/// Parse a trickled candidate line (`candidate:...`, with or without `a=`). `Ok(None)` is the
/// end of candidates (an empty line).
pub fn screen_candidate(line: &str) -> Result<Option<Candidate>, Refusal> {
    let line = line.trim();
    let line = line.strip_prefix("a=").unwrap_or(line);
    if line.is_empty() {
        return Ok(None);
    }
    guarded(|| {
        Candidate::from_sdp_string(line)
            .map(Some)
            .map_err(|e| Refusal::Unparsable(e.to_string()))
    })
}

fn guarded<T>(parse: impl FnOnce() -> Result<T, Refusal>) -> Result<T, Refusal> {
    catch_unwind(AssertUnwindSafe(parse)).unwrap_or(Err(Refusal::ParserFailed))
}

/// The checks that need no parser: counts and the duplicate payload types that make str0m 0.25
/// panic ("Pt locked multiple times") when it applies the SDP.
fn check_text(sdp: &str, limits: &SdpLimits, offer: bool) -> Result<(), Refusal> {
    let mut mlines = 0;
    let mut sending = 0;
    let mut session_direction_sends = true;
    let mut section: Option<Section> = None;
    // What each payload type means in the whole SDP (bundled m-lines share one PT space).
    let mut codec_of_pt: HashMap<u8, String> = HashMap::new();
    for raw in sdp.lines() {
        let line = raw.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("m=") {
            finish(section.take(), session_direction_sends, &mut sending);
            mlines += 1;
            if mlines > limits.max_mlines {
                return Err(Refusal::TooManyMlines {
                    found: count_mlines(sdp),
                    max: limits.max_mlines,
                });
            }
            let mut s = Section::new(mlines, rest);
            for pt in rest.split_whitespace().skip(3) {
                if let Ok(pt) = pt.parse::<u8>() {
                    s.declare_format(pt)?;
                }
            }
            section = Some(s);
            continue;
        }
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        match section.as_mut() {
            None => {
                // A session-level direction applies to m-lines without their own.
                if matches!(attr, "recvonly" | "inactive") {
                    session_direction_sends = false;
                }
            }
            Some(s) => {
                if let Some(rest) = attr.strip_prefix("rtpmap:") {
                    let mut fields = rest.split_whitespace();
                    if let Some(pt) = fields.next().and_then(|p| p.parse().ok()) {
                        s.declare_rtpmap(pt)?;
                        let codec = fields.next().unwrap_or_default().to_ascii_lowercase();
                        match codec_of_pt.get(&pt) {
                            Some(first) if *first != codec => {
                                return Err(Refusal::ConflictingPayloadType {
                                    pt,
                                    first: first.clone(),
                                    second: codec,
                                })
                            }
                            Some(_) => {}
                            None => {
                                codec_of_pt.insert(pt, codec);
                            }
                        }
                    }
                }
                match attr {
                    "sendrecv" | "sendonly" => s.direction_sends = Some(true),
                    "recvonly" | "inactive" => s.direction_sends = Some(false),
                    _ => {}
                }
            }
        }
    }
    finish(section.take(), session_direction_sends, &mut sending);
    // An answer's sending m-lines are the server's own offers being accepted; only offers
    // publish.
    if offer && sending > limits.max_tracks {
        return Err(Refusal::TooManyTracks {
            found: sending,
            max: limits.max_tracks,
        });
    }
    Ok(())
}

fn finish(section: Option<Section>, session_default: bool, sending: &mut usize) {
    if section.is_some_and(|s| s.sends(session_default)) {
        *sending += 1;
    }
}

fn count_mlines(sdp: &str) -> usize {
    sdp.lines().filter(|l| l.starts_with("m=")).count()
}

/// What the screen tracks of one m-section.
struct Section {
    index: usize,
    /// Port 0: the m-line is rejected or stopped and carries nothing.
    disabled: bool,
    media: bool,
    direction_sends: Option<bool>,
    formats: HashSet<u8>,
    rtpmaps: HashSet<u8>,
}

impl Section {
    fn new(index: usize, rest: &str) -> Self {
        let mut fields = rest.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        let port = fields.next().unwrap_or_default();
        Section {
            index,
            disabled: port == "0",
            media: matches!(kind, "audio" | "video"),
            direction_sends: None,
            formats: HashSet::new(),
            rtpmaps: HashSet::new(),
        }
    }

    fn declare_format(&mut self, pt: u8) -> Result<(), Refusal> {
        if !self.formats.insert(pt) {
            return Err(Refusal::DuplicatePayloadType {
                pt,
                mline: self.index,
            });
        }
        Ok(())
    }

    fn declare_rtpmap(&mut self, pt: u8) -> Result<(), Refusal> {
        if self.media && !self.formats.contains(&pt) {
            return Err(Refusal::UnlistedPayloadType {
                pt,
                mline: self.index,
            });
        }
        if !self.rtpmaps.insert(pt) {
            return Err(Refusal::DuplicatePayloadType {
                pt,
                mline: self.index,
            });
        }
        Ok(())
    }

    fn sends(&self, session_default: bool) -> bool {
        self.media && !self.disabled && self.direction_sends.unwrap_or(session_default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer_with(mlines: &[&str]) -> String {
        let mut sdp =
            String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n");
        for (i, m) in mlines.iter().enumerate() {
            sdp.push_str(m);
            sdp.push_str(&format!(
                "c=IN IP4 0.0.0.0\r\na=mid:{i}\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11\r\na=setup:actpass\r\na=rtcp-mux\r\n"
            ));
        }
        sdp
    }

    #[test]
    fn counts_mlines_and_sending_tracks() {
        let video = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=sendonly\r\n";
        let recv = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=recvonly\r\n";
        let limits = SdpLimits {
            max_mlines: 4,
            max_tracks: 2,
        };
        assert_eq!(
            check_text(&offer_with(&[video, video]), &limits, true),
            Ok(())
        );
        assert_eq!(
            check_text(&offer_with(&[video, video, video]), &limits, true),
            Err(Refusal::TooManyTracks { found: 3, max: 2 })
        );
        assert_eq!(
            check_text(&offer_with(&[video, recv, recv, recv]), &limits, true),
            Ok(())
        );
        assert_eq!(
            check_text(&offer_with(&[recv; 5]), &limits, true),
            Err(Refusal::TooManyMlines { found: 5, max: 4 })
        );
        assert_eq!(
            Refusal::TooManyMlines { found: 5, max: 4 }.code(),
            switchboard_protocol::ErrorCode::TooManyTracks
        );
    }

    #[test]
    fn refuses_a_payload_type_declared_twice() {
        let twice = "m=video 9 UDP/TLS/RTP/SAVPF 102 103\r\na=rtpmap:102 H264/90000\r\na=rtpmap:102 rtx/90000\r\na=fmtp:102 apt=102\r\na=sendonly\r\n";
        assert_eq!(
            check_text(&offer_with(&[twice]), &SdpLimits::default(), true),
            Err(Refusal::DuplicatePayloadType { pt: 102, mline: 1 })
        );
        let listed_twice = "m=video 9 UDP/TLS/RTP/SAVPF 96 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert!(matches!(
            check_text(&offer_with(&[listed_twice]), &SdpLimits::default(), true),
            Err(Refusal::DuplicatePayloadType { pt: 96, .. })
        ));
    }

    #[test]
    fn refuses_an_rtpmap_for_a_payload_type_the_mline_does_not_list() {
        // The audio m-line lists 111 only but maps 96 too; the video m-line lists 96.
        let audio = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:96 VP8/90000\r\na=recvonly\r\n";
        let video = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=recvonly\r\n";
        let refused = check_text(&offer_with(&[audio, video]), &SdpLimits::default(), true);
        assert_eq!(
            refused,
            Err(Refusal::UnlistedPayloadType { pt: 96, mline: 1 })
        );
        assert_eq!(
            refused.map_err(|r| r.code()),
            Err(switchboard_protocol::ErrorCode::BadSdp)
        );
        // An application m-line has no payload types to list.
        let data = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:5000\r\n";
        assert_eq!(
            check_text(&offer_with(&[data, video]), &SdpLimits::default(), true),
            Ok(())
        );
    }

    #[test]
    fn refuses_a_payload_type_that_means_two_codecs() {
        let vp8 = "m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:102 rtx/90000\r\na=fmtp:102 apt=96\r\na=recvonly\r\n";
        let h264 = "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\na=recvonly\r\n";
        assert_eq!(
            check_text(&offer_with(&[vp8, h264]), &SdpLimits::default(), true),
            Err(Refusal::ConflictingPayloadType {
                pt: 102,
                first: "rtx/90000".into(),
                second: "h264/90000".into()
            })
        );
        // The same codec on the same PT in every m-line is what browsers send.
        assert_eq!(
            check_text(&offer_with(&[vp8, vp8]), &SdpLimits::default(), true),
            Ok(())
        );
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert!(matches!(
            screen_offer("hello", &SdpLimits::default()),
            Err(Refusal::Unparsable(_))
        ));
        assert!(screen_candidate("candidate:garbage").is_err());
        assert_eq!(screen_candidate("  ").map(|c| c.is_none()), Ok(true));
        let ok = screen_candidate("a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host")
            .expect("a host candidate parses");
        assert!(ok.is_some());
    }
}
