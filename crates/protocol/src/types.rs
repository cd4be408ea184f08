//! What messages describe: members, tracks, what they send.

use serde::{Deserialize, Serialize};

/// A member of a room as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub peer_id: String,
    pub name: String,
    pub tracks: Vec<TrackInfo>,
    /// What the member sends right now (derived from its live, unmuted tracks).
    #[serde(default)]
    pub media_state: MediaState,
}

/// A track: `trackId` (`<peerId>:<name>`) is unique within the room while the track exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    pub track_id: String,
    pub kind: MediaKind,
    /// What the track carries. Absent in messages of older servers: a camera or a microphone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<TrackSource>,
    /// Free text from the publisher (at most [`MAX_TRACK_DESCRIPTION`] characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Media flows for it (false: defined only, discoverable before it is sent).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub live: bool,
    /// Not forwarded (muted by its owner or an operator); omitted when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub muted: bool,
}

/// Longest track description accepted, in characters.
pub const MAX_TRACK_DESCRIPTION: usize = 256;

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MediaKind {
    Audio,
    Video,
}

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackSource {
    Camera,
    Microphone,
    Screen,
    ScreenAudio,
    Other,
}

impl TrackSource {
    /// What a track of `kind` carries when its publisher does not say.
    pub fn default_for(kind: MediaKind) -> TrackSource {
        match kind {
            MediaKind::Audio => TrackSource::Microphone,
            MediaKind::Video => TrackSource::Camera,
        }
    }

    /// The kinds of media this source can carry.
    pub fn fits(self, kind: MediaKind) -> bool {
        match self {
            TrackSource::Camera | TrackSource::Screen => kind == MediaKind::Video,
            TrackSource::Microphone | TrackSource::ScreenAudio => kind == MediaKind::Audio,
            TrackSource::Other => true,
        }
    }
}

/// How good a video track a subscriber wants: the simulcast layer it asks for at most (`low`:
/// the lowest, `high`: the highest the publisher sends; `medium`: the middle one of three).
/// Tracks sent in one layer look the same at every quality.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Quality {
    Low,
    Medium,
    #[default]
    High,
}

/// Why the server stopped forwarding a track to one subscriber (it stays subscribed, and the
/// server resumes it with `trackResumed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PauseReason {
    /// The subscriber's link does not carry even the track's lowest layer next to the tracks
    /// it ranks higher; it resumes when the bandwidth estimate recovers.
    Bandwidth,
}

/// Who muted a track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MuteOrigin {
    Owner,
    /// The admin API (the default, as older servers only had operator mutes).
    #[default]
    Operator,
}

/// What one member sends right now: a live, unmuted microphone (`audio`), camera (`video`),
/// screen or screen audio (`screenShare`) track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaState {
    pub audio: bool,
    pub video: bool,
    pub screen_share: bool,
}

/// A STUN or TURN server the client may use, in the shape of WebRTC's `RTCIceServer` (a client
/// passes it to `RTCPeerConnection` as it is). For TURN, `username` and `credential` are
/// time-limited: `username` is `<expiry Unix seconds>:<peerId>` and `credential` is
/// `base64(HMAC-SHA1(shared secret, username))`, the TURN REST form coturn's `use-auth-secret`
/// checks (docs/credentials.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    /// `turn:host:port?transport=udp`, `turns:host:port?transport=tcp`, `stun:host:port`.
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// One encoding of a published track in `layersWanted`: its `rid` (`None` for a track sent
/// without simulcast) and whether anybody receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerWanted {
    pub rid: Option<String>,
    pub active: bool,
}

/// One member who is talking, in `activeSpeakers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveSpeaker {
    pub peer_id: String,
    pub level: AudioLevel,
}

/// How loud a speaker is: linear amplitude from 0 (silence) to 1 (full scale), smoothed over
/// about a second. Kept in thousandths, so messages compare exactly; on the wire a number
/// with at most three decimals (`0.125`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct AudioLevel(u16);

impl AudioLevel {
    /// From a linear amplitude; values outside 0..=1 are clamped (NaN is silence).
    pub fn from_amplitude(amplitude: f32) -> Self {
        let clamped = if amplitude.is_nan() {
            0.0
        } else {
            amplitude.clamp(0.0, 1.0)
        };
        AudioLevel((clamped * 1000.0).round() as u16)
    }

    pub fn thousandths(self) -> u16 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl Serialize for AudioLevel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for AudioLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        Ok(AudioLevel::from_amplitude(value as f32))
    }
}
