//! How the server's `Rtc` for each participant is configured, built once per process and cloned.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::{Candidate, IceCreds, Rtc, RtcConfig};

/// What failed while preparing a participant's media engine.
#[derive(Debug)]
pub enum RtcSetupError {
    /// The crypto provider could not make a DTLS certificate (a broken crypto backend build).
    Certificate,
    /// The advertised address cannot be an ICE host candidate (unspecified, multicast, ...).
    /// Fix the `public_ip`/bind configuration.
    Candidate(String),
}

impl std::fmt::Display for RtcSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RtcSetupError::Certificate => write!(f, "could not generate a DTLS certificate"),
            RtcSetupError::Candidate(e) => write!(f, "bad ICE candidate address: {e}"),
        }
    }
}

impl std::error::Error for RtcSetupError {}

/// A new participant's engine and the ICE ufrag that routes its first STUN to it.
#[derive(Debug)]
pub struct NewRtc {
    pub rtc: Rtc,
    pub ufrag: String,
    /// The host candidate in SDP attribute form, for trickling.
    pub candidate: String,
}

/// One configuration for every participant: ICE-lite (the server only answers checks), RTP mode
/// (forward packets, never reassemble frames), and only codecs every browser decodes, because an
/// SFU cannot transcode. One DTLS certificate per process: generating one per participant costs
/// CPU for nothing (a certificate is an ECDSA key generation; the fingerprint in each answer is
/// all a client checks).
#[derive(Debug, Clone)]
pub struct RtcTemplate {
    config: RtcConfig,
}

impl RtcTemplate {
    pub fn new() -> Result<Self, RtcSetupError> {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or(RtcSetupError::Certificate)?;
        let config = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            // RED would need unwrapping for subscribers that did not negotiate it.
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            // Per-stream NACK/PLI counters for metrics; one snapshot a second is cheap.
            .set_stats_interval(Some(std::time::Duration::from_secs(1)))
            .set_dtls_cert(cert);
        Ok(RtcTemplate { config })
    }

    /// Build an engine whose only local candidate is `advertised` (what clients send to).
    /// Costs ~1.5 ms of CPU: call it off the media threads.
    pub fn build(&self, now: Instant, advertised: SocketAddr) -> Result<NewRtc, RtcSetupError> {
        let creds = IceCreds::new();
        let ufrag = creds.ufrag.clone();
        let candidate = Candidate::host(advertised, "udp")
            .map_err(|e| RtcSetupError::Candidate(e.to_string()))?;
        let line = candidate.to_sdp_string();
        let mut rtc = self
            .config
            .clone()
            .set_local_ice_credentials(creds)
            .build(now);
        rtc.add_local_candidate(candidate);
        Ok(NewRtc {
            rtc,
            ufrag,
            candidate: line,
        })
    }
}
