//! What a client is asked to do ([`ClientOptions`], [`VideoOptions`]), the media engine settings
//! every client uses ([`rtc_config`]) and the bounds of a session ([`LEAVE_TIMEOUT`]). Both the
//! [`Client`](crate::Client) handle and its driver task read these; neither owns them.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use str0m::Rtc;

/// How long [`Client::leave`](crate::Client::leave) waits for the server's `left` (or the close
/// of the WebSocket).
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client does in the room.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Signalling endpoint, e.g. `ws://127.0.0.1:7880/v1/ws`.
    pub url: String,
    pub room: String,
    pub name: Option<String>,
    pub peer_id: Option<String>,
    /// Publish a synthetic Opus track (50 packets/s of 160 bytes).
    pub audio: bool,
    /// Offer `audio/red` (RFC 2198) and, when the server accepts it, publish audio as RED: each
    /// packet carries the previous frame too, as Chrome does ([`crate::red`]). Received RED is
    /// unwrapped; a lost packet whose frame came in the next one counts as
    /// [`recovered`](crate::RecvStats::recovered).
    pub red: bool,
    /// Loss tests only: every this many audio packets one is not sent (its counter and sequence
    /// number are used up, as if the network lost it); 0: none.
    pub drop_audio_every: u32,
    /// Publish a synthetic VP8 track.
    pub video: Option<VideoOptions>,
    /// RecvOnly audio m-lines to pre-create in the first offer.
    pub recv_audio_slots: usize,
    /// RecvOnly video m-lines to pre-create in the first offer.
    pub recv_video_slots: usize,
    /// Local address the UDP socket binds to (port 0) and announces as host candidate.
    pub local_ip: IpAddr,
    /// Bound on [`Client::join`](crate::Client::join): WebSocket connect, `joined` and the
    /// first `answer`.
    pub join_timeout: Duration,
    /// Credential for servers that require one (minted by the application server).
    pub credential: Option<switchboard_protocol::Credential>,
    /// Extra fields merged into the `join` message (for admission checks of the application).
    pub extra_join_fields: Option<serde_json::Value>,
    /// `join.autoSubscribe` (`None`: the server's default, every track).
    pub auto_subscribe: Option<bool>,
    /// Names for the published audio and video tracks (their ids become `<peer>:<name>`);
    /// `None`: the server names them after their mids.
    pub audio_track_name: Option<String>,
    pub video_track_name: Option<String>,
    /// Reach the server over ICE-TCP only: the client's one candidate is an active TCP one, and
    /// it connects to the server's passive TCP candidate (as a browser whose UDP is blocked).
    pub ice_tcp: bool,
    /// Robustness tests only: the transport-wide-cc sequence numbers the first published
    /// packets carry (then counting on), instead of the engine's own (see [`crate::forged`]).
    pub forged_twcc: Option<Vec<u16>>,
    /// Open the relayed data channel `sb-reliable` with the first offer, and send on it
    /// ([`DataOptions`]; `per_second: 0` only receives).
    pub data: Option<DataOptions>,
}

/// Messages on the room's relayed data channel (docs/protocol.md "Data channels").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataOptions {
    /// Messages a second this client sends to everyone else (0: receive only).
    pub per_second: u32,
    /// Payload bytes per message (at least 16: send time and counter).
    pub size: usize,
}

/// Synthetic video shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoOptions {
    pub fps: u32,
    pub packets_per_frame: u32,
    /// Payload bytes per packet.
    pub packet_size: usize,
    /// A keyframe every this many frames (0: only the first frame and on request).
    pub keyframe_interval: u32,
}

impl Default for VideoOptions {
    fn default() -> Self {
        VideoOptions {
            fps: 30,
            packets_per_frame: 3,
            packet_size: 1200,
            keyframe_interval: 60,
        }
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            url: "ws://127.0.0.1:7880/v1/ws".into(),
            room: "loadtest".into(),
            name: None,
            peer_id: None,
            audio: true,
            red: false,
            drop_audio_every: 0,
            video: Some(VideoOptions::default()),
            recv_audio_slots: 0,
            recv_video_slots: 0,
            local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            join_timeout: Duration::from_secs(10),
            credential: None,
            extra_join_fields: None,
            ice_tcp: false,
            forged_twcc: None,
            auto_subscribe: None,
            audio_track_name: None,
            video_track_name: None,
            data: None,
        }
    }
}

impl ClientOptions {
    /// Options for `room` on `url`, publishing audio and video.
    pub fn new(url: impl Into<String>, room: impl Into<String>) -> Self {
        ClientOptions {
            url: url.into(),
            room: room.into(),
            ..Default::default()
        }
    }
}

/// The client's media engine settings: RTP mode (synthetic packets are written as RTP) and the
/// codecs Switchboard forwards, Opus without RED ([`ClientOptions::red`] adds it). Shared by
/// the client, its tests and the load tester.
pub fn rtc_config() -> str0m::RtcConfig {
    Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
}
