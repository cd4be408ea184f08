//! How the server's `Rtc` for each participant is configured, built once per process and cloned.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::net::TcpType;
use str0m::{Candidate, IceCreds, Rtc, RtcConfig};

use crate::shard::interface::Transport;

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

/// Where each subscriber's bandwidth estimate starts, in Mbit/s (above any one link's need).
const INITIAL_ESTIMATE_MBPS: u64 = 50;

/// A new participant's engine and the ICE ufrag that routes its first STUN to it.
#[derive(Debug)]
pub struct NewRtc {
    pub rtc: Rtc,
    pub ufrag: String,
    /// The host candidates in SDP attribute form, for trickling.
    pub candidates: Vec<String>,
}

/// One configuration for every participant: ICE-lite (the server only answers checks), RTP mode
/// (forward packets, never reassemble frames), and the codecs browsers publish (Opus, VP8, H264,
/// VP9, AV1). An SFU cannot transcode: a subscriber gets a track only in a codec it accepted.
/// One DTLS certificate per process: generating one per participant costs CPU for nothing (a
/// certificate is an ECDSA key generation; the fingerprint in each answer is all a client checks).
#[derive(Debug, Clone)]
pub struct RtcTemplate {
    config: RtcConfig,
    bandwidth_estimation: bool,
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
            // With RED (audio/red): a browser publishes Opus with redundancy when the answer
            // offers it; subscribers that did not negotiate it get the primary (`crate::red`).
            .enable_opus(true, true)
            .enable_vp8(true)
            .enable_h264(true)
            // Forwarded as they come (single layer; keyframes detected in `fanout`). A
            // subscriber whose answer leaves one out does not get tracks in it.
            .enable_vp9(true)
            .enable_av1(true)
            // Per-stream NACK/PLI counters for metrics; one snapshot a second is cheap.
            .set_stats_interval(Some(std::time::Duration::from_secs(1)))
            .set_dtls_cert(cert);
        Ok(RtcTemplate {
            config,
            bandwidth_estimation: false,
        })
    }

    /// Send-side bandwidth estimation (TWCC) on what the server sends each subscriber, for the
    /// allocator (the runtime turns it on unless `media.bandwidth_estimation = false`). The
    /// estimate starts high: the allocator judges a link only once the estimate falls below
    /// what the link is sent, and str0m's first probes (capped at twice the desired rate the
    /// allocator sets once layer rates are measured) bring it down to the link's measure.
    /// Forwarded video is unpaced (see `Slot::attach`), so the estimate never holds media back.
    pub fn with_bandwidth_estimation(mut self) -> Self {
        self.config = self
            .config
            .enable_bwe(Some(str0m::bwe::Bitrate::mbps(INITIAL_ESTIMATE_MBPS)));
        self.bandwidth_estimation = true;
        self
    }

    /// Build an engine whose local candidates are `advertised` (what clients send to), UDP
    /// ones as host candidates and TCP ones as passive host candidates (the client connects; its
    /// priority is below every UDP one, so a client that has UDP uses it).
    /// Costs ~1.5 ms of CPU: call it off the media threads.
    pub fn build(
        &self,
        now: Instant,
        advertised: &[(Transport, SocketAddr)],
    ) -> Result<NewRtc, RtcSetupError> {
        let creds = IceCreds::new();
        let ufrag = creds.ufrag.clone();
        let mut candidates = Vec::with_capacity(advertised.len());
        for &(transport, addr) in advertised {
            let built = match transport {
                Transport::Udp => Candidate::host(addr, "udp"),
                Transport::Tcp => Candidate::builder()
                    .tcp()
                    .host(addr)
                    .tcptype(TcpType::Passive)
                    .build(),
            };
            candidates.push(built.map_err(|e| RtcSetupError::Candidate(e.to_string()))?);
        }
        if candidates.is_empty() {
            return Err(RtcSetupError::Candidate(
                "no address to advertise".to_owned(),
            ));
        }
        let mut rtc = self
            .config
            .clone()
            .set_local_ice_credentials(creds)
            .build(now);
        if self.bandwidth_estimation {
            // No 50 kbit/s of padding to every subscriber that receives less (everything muted or
            // unsubscribed): probes still find out what a link carries.
            rtc.bwe().set_automatic_padding(false);
        }
        let mut lines = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            lines.push(candidate.to_sdp_string());
            rtc.add_local_candidate(candidate);
        }
        Ok(NewRtc {
            rtc,
            ufrag,
            candidates: lines,
        })
    }
}
