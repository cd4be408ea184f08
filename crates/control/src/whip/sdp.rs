//! The little of SDP the WHIP/WHEP endpoints read themselves: what each m-line of an offer does
//! (to refuse offers that publish or receive nothing, and to name the published tracks), the
//! client's ICE username fragment, and the `application/trickle-ice-sdpfrag` bodies of PATCH
//! (RFC 8840). Everything else about the SDP is for str0m, after [`screen_offer`] passed it.
//!
//! [`screen_offer`]: switchboard_core::screen::screen_offer

use switchboard_protocol::MediaKind;

/// The direction of an m-line as the client wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn parse(attr: &str) -> Option<Direction> {
        match attr {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The client sends media on it (it publishes).
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// The client receives media on it (it is a slot).
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// One m-line of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MLine {
    /// `None`: not audio or video (a data channel).
    pub kind: Option<MediaKind>,
    pub mid: Option<String>,
    pub direction: Direction,
}

/// What the endpoints need to know of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OfferSummary {
    pub mlines: Vec<MLine>,
    /// The first `a=ice-ufrag` (session or media level).
    pub ufrag: Option<String>,
}

fn attribute<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.strip_prefix("a=")?
        .strip_prefix(name)?
        .strip_prefix(':')
        .map(str::trim)
}

/// Read an offer that already passed the screen (so it is SDP str0m parses).
pub(crate) fn summarize(sdp: &str) -> OfferSummary {
    let mut session_direction = None;
    let mut mlines: Vec<MLine> = Vec::new();
    let mut explicit: Vec<bool> = Vec::new();
    let mut ufrag = None;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            let kind = match media.split(' ').next() {
                Some("audio") => Some(MediaKind::Audio),
                Some("video") => Some(MediaKind::Video),
                _ => None,
            };
            mlines.push(MLine {
                kind,
                mid: None,
                direction: session_direction.unwrap_or(Direction::SendRecv),
            });
            explicit.push(false);
            continue;
        }
        if let Some(found) = line.strip_prefix("a=").and_then(Direction::parse) {
            match (mlines.last_mut(), explicit.last_mut()) {
                (Some(m), Some(e)) => {
                    m.direction = found;
                    *e = true;
                }
                _ => session_direction = Some(found),
            }
            continue;
        }
        if let Some(mid) = attribute(line, "mid") {
            if let Some(m) = mlines.last_mut() {
                m.mid = Some(mid.to_owned());
            }
        }
        if ufrag.is_none() {
            ufrag = attribute(line, "ice-ufrag").map(str::to_owned);
        }
    }
    OfferSummary { mlines, ufrag }
}

/// A trickle-ice-sdpfrag body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fragment {
    pub ufrag: Option<String>,
    pub pwd: Option<String>,
    /// Candidate attributes, each as `candidate:...`.
    pub candidates: Vec<String>,
    pub end_of_candidates: bool,
}

/// Why an SDP fragment was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FragmentError {
    /// More candidates in one PATCH than a session may have at all.
    TooManyCandidates(usize),
    /// A line that is not SDP (`<type>=<value>`).
    NotSdp(usize),
}

impl std::fmt::Display for FragmentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FragmentError::TooManyCandidates(max) => {
                write!(f, "a session takes at most {max} remote candidates")
            }
            FragmentError::NotSdp(line) => {
                write!(f, "line {line} of the fragment is not an SDP line")
            }
        }
    }
}

/// Parse a PATCH body: at most `max_candidates` candidates.
pub(crate) fn fragment(body: &str, max_candidates: usize) -> Result<Fragment, FragmentError> {
    let mut out = Fragment::default();
    for (i, line) in body.lines().map(str::trim).enumerate() {
        if line.is_empty() {
            continue;
        }
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' {
            return Err(FragmentError::NotSdp(i + 1));
        }
        if let Some(c) = line.strip_prefix("a=candidate:") {
            if out.candidates.len() >= max_candidates {
                return Err(FragmentError::TooManyCandidates(max_candidates));
            }
            out.candidates.push(format!("candidate:{c}"));
        } else if line == "a=end-of-candidates" {
            out.end_of_candidates = true;
        } else if let Some(u) = attribute(line, "ice-ufrag") {
            out.ufrag.get_or_insert_with(|| u.to_owned());
        } else if let Some(p) = attribute(line, "ice-pwd") {
            out.pwd.get_or_insert_with(|| p.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=sendonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";

    #[test]
    fn offer_mlines() {
        let s = summarize(OFFER);
        assert_eq!(s.ufrag.as_deref(), Some("abcd"));
        assert_eq!(s.mlines.len(), 3);
        assert_eq!(s.mlines[0].kind, Some(MediaKind::Audio));
        assert_eq!(s.mlines[0].direction, Direction::SendOnly);
        assert_eq!(s.mlines[1].mid.as_deref(), Some("1"));
        assert_eq!(s.mlines[1].direction, Direction::RecvOnly);
        assert_eq!(s.mlines[2].kind, None);
        assert_eq!(s.mlines[2].direction, Direction::SendRecv);
    }

    #[test]
    fn fragments() {
        let body = "a=ice-ufrag:EsAw\r\na=ice-pwd:secret\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n\
            a=mid:0\r\na=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n\
            a=end-of-candidates\r\n";
        let f = fragment(body, 10).expect("parses");
        assert_eq!(f.ufrag.as_deref(), Some("EsAw"));
        assert_eq!(f.pwd.as_deref(), Some("secret"));
        assert_eq!(
            f.candidates,
            vec!["candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".to_owned()]
        );
        assert!(f.end_of_candidates);
        assert_eq!(fragment(body, 0), Err(FragmentError::TooManyCandidates(0)));
        assert_eq!(fragment("hello\n", 10), Err(FragmentError::NotSdp(1)));
    }
}
