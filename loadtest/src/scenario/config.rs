//! What a scenario is: rooms × (publishers + subscribers), the media they send, the bounds of
//! each phase, and the checks that keep a run within what this tool should do (loopback only,
//! at most [`MAX_PARTICIPANTS`]).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::options::{ClientOptions, DataOptions, VideoOptions};

/// Upper bound on participants in one run (a typo must not start 100 000 clients).
pub const MAX_PARTICIPANTS: usize = 2000;
/// Upper bound on the measurement window.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Synthetic Opus: one packet every 20 ms (see the client's driver).
pub const AUDIO_PPS: f64 = 50.0;
/// Synthetic Opus payload bytes.
pub const AUDIO_PAYLOAD: usize = 160;

/// One load scenario: `rooms` rooms, each with publishers (audio and/or video) and subscribers
/// (publish nothing, only receive).
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Signalling endpoint, e.g. `ws://127.0.0.1:7880/v1/ws` (loopback only).
    pub url: String,
    pub rooms: usize,
    pub publishers_per_room: usize,
    pub subscribers_per_room: usize,
    /// Publishers send synthetic Opus (50 packets/s of 160 bytes).
    pub audio: bool,
    /// Audio goes as RED (RFC 2198: each packet also carries the previous frame), and
    /// receivers count what the redundancy recovers.
    pub red: bool,
    /// Publishers send synthetic VP8 of this shape.
    pub video: Option<VideoOptions>,
    /// Length of the measurement window (after the ramp and the settle phase).
    pub duration: Duration,
    /// Joins started per second (0: all at once).
    pub ramp_per_sec: f64,
    /// Worker threads of the client runtime (informational here: the caller builds the runtime,
    /// see [`run_scenario_blocking`](super::run_scenario_blocking)); used to judge whether the
    /// client side saturated.
    pub threads: usize,
    /// The server's process id, when known: its CPU and memory are sampled from `/proc`.
    pub server_pid: Option<u32>,
    /// Bound on each participant's join (WebSocket, `joined`, first answer).
    pub join_timeout: Duration,
    /// Longest wait after the ramp for every participant to connect and receive every track.
    pub settle_timeout: Duration,
    /// Room names are `<prefix>-<n>`; empty: a fresh random prefix per run.
    pub room_prefix: String,
    /// Keep a per-participant breakdown in the report.
    pub per_participant: bool,
    /// Every participant opens the relayed data channel; publishers send this many messages a
    /// second of this size to their room (docs/protocol.md "Data channels").
    pub data: Option<DataOptions>,
}

impl Scenario {
    /// Two publishers in one room, audio and default video, 10 s.
    pub fn new(url: impl Into<String>) -> Self {
        Scenario {
            url: url.into(),
            rooms: 1,
            publishers_per_room: 2,
            subscribers_per_room: 0,
            audio: true,
            red: false,
            video: Some(default_video()),
            duration: Duration::from_secs(10),
            ramp_per_sec: 20.0,
            threads: 2,
            server_pid: None,
            join_timeout: Duration::from_secs(20),
            settle_timeout: Duration::from_secs(15),
            room_prefix: String::new(),
            per_participant: true,
            data: None,
        }
    }

    /// Participants in the whole run.
    pub fn participants(&self) -> usize {
        self.rooms * (self.publishers_per_room + self.subscribers_per_room)
    }

    /// Tracks each publisher sends.
    pub fn tracks_per_publisher(&self) -> usize {
        usize::from(self.audio) + usize::from(self.video.is_some())
    }

    /// Packets per second one publisher sends.
    pub fn publisher_pps(&self) -> f64 {
        let audio = if self.audio { AUDIO_PPS } else { 0.0 };
        audio + self.video.as_ref().map_or(0.0, video_pps)
    }

    /// Receive streams (publisher tracks × receivers) in the whole run.
    pub fn expected_streams(&self) -> usize {
        let receivers = self.publishers_per_room.saturating_sub(1) + self.subscribers_per_room;
        self.rooms * self.publishers_per_room * self.tracks_per_publisher() * receivers
    }

    /// Egress packets per second the scenario should produce if nothing is lost.
    pub fn expected_egress_pps(&self) -> f64 {
        let receivers = self.publishers_per_room.saturating_sub(1) + self.subscribers_per_room;
        self.rooms as f64
            * self.publishers_per_room as f64
            * receivers as f64
            * self.publisher_pps()
    }

    /// Publishers a participant receives from: every one in its room but itself.
    pub fn receives_from(&self, publisher: bool) -> usize {
        if publisher {
            self.publishers_per_room.saturating_sub(1)
        } else {
            self.publishers_per_room
        }
    }

    /// The options a participant of this scenario joins with. It pre-creates a receive slot per
    /// expected track: the server binds tracks to free slots and would otherwise renegotiate
    /// once per new track. A subscriber needs them anyway: an offer needs at least one m-line.
    pub fn client_options(&self, room: &str, name: &str, publisher: bool) -> ClientOptions {
        let others = self.receives_from(publisher);
        let mut opts = ClientOptions::new(self.url.clone(), room);
        opts.name = Some(name.to_owned());
        opts.audio = publisher && self.audio;
        opts.red = self.red;
        opts.video = if publisher { self.video.clone() } else { None };
        opts.recv_audio_slots = if self.audio { others } else { 0 };
        opts.recv_video_slots = if self.video.is_some() { others } else { 0 };
        if !publisher && opts.recv_audio_slots + opts.recv_video_slots == 0 {
            opts.recv_audio_slots = 1;
        }
        opts.join_timeout = self.join_timeout;
        opts.data = self.data.map(|d| DataOptions {
            per_second: if publisher { d.per_second } else { 0 },
            size: d.size,
        });
        opts
    }

    /// Relayed data messages per second the scenario should deliver (every receiver's copy).
    pub fn expected_data_per_second(&self) -> f64 {
        let receivers = (self.publishers_per_room + self.subscribers_per_room).saturating_sub(1);
        self.data.map_or(0.0, |d| {
            (self.rooms * self.publishers_per_room * receivers) as f64 * f64::from(d.per_second)
        })
    }

    /// [`Scenario::room_prefix`], or a fresh `<tag><random hex>` when it is empty, so runs
    /// against a long-lived server do not meet each other's rooms.
    pub fn room_prefix_or(&self, tag: &str) -> String {
        if self.room_prefix.is_empty() {
            format!("{tag}{:x}", crate::synth::now_us() & 0xff_ffff)
        } else {
            self.room_prefix.clone()
        }
    }

    /// Every participant's place: rooms interleaved so they fill evenly, publishers first in
    /// every room (they join first under a ramp).
    pub fn seats(&self, prefix: &str) -> Vec<Seat> {
        let per_room = self.publishers_per_room + self.subscribers_per_room;
        let mut seats = Vec::with_capacity(self.participants());
        for i in 0..per_room {
            for r in 0..self.rooms {
                let publisher = i < self.publishers_per_room;
                seats.push(Seat {
                    room: format!("{prefix}-{r}"),
                    name: if publisher {
                        format!("pub{i}")
                    } else {
                        format!("sub{}", i - self.publishers_per_room)
                    },
                    publisher,
                });
            }
        }
        seats
    }

    /// Check the scenario is something this tool should run.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        check_loopback_url(&self.url).map_err(ScenarioError::Invalid)?;
        let invalid = |m: &str| Err(ScenarioError::Invalid(m.to_owned()));
        if self.rooms == 0 {
            return invalid("at least one room");
        }
        if self.publishers_per_room == 0 {
            return invalid("at least one publisher per room (nothing to forward otherwise)");
        }
        if self.tracks_per_publisher() == 0 && self.data.is_none() {
            return invalid("publishers need audio, video or data");
        }
        if self.participants() > MAX_PARTICIPANTS {
            return Err(ScenarioError::Invalid(format!(
                "{} participants is more than the limit of {MAX_PARTICIPANTS}",
                self.participants()
            )));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return invalid("duration must be between 1 s and 1 h");
        }
        if !(self.ramp_per_sec >= 0.0 && self.ramp_per_sec.is_finite()) {
            return invalid("ramp must be a non-negative number of joins per second");
        }
        if let Some(v) = &self.video {
            if v.fps == 0 || v.fps > 240 || v.packets_per_frame == 0 || v.packets_per_frame > 200 {
                return invalid("video: fps 1..=240 and 1..=200 packets per frame");
            }
            if !(64..=1400).contains(&v.packet_size) {
                return invalid("video packet size must be 64..=1400 bytes");
            }
        }
        if let Some(d) = &self.data {
            if d.per_second == 0 || d.per_second > 1000 {
                return invalid("data: 1..=1000 messages a second per publisher");
            }
            // The relay frame's header and our 16 bytes of send time and counter fit in it.
            if !(16..=60_000).contains(&d.size) {
                return invalid("data message size must be 16..=60000 bytes");
            }
        }
        Ok(())
    }
}

/// One participant's place in a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// `<prefix>-<n>`.
    pub room: String,
    /// `pub<i>` or `sub<i>`, numbered within the room.
    pub name: String,
    pub publisher: bool,
}

/// The load tester's standard video: ~2.6 Mbit/s of 1200-byte packets, 30 fps, 9 packets per
/// frame, a keyframe every 2 s (roughly a 720p camera).
pub fn default_video() -> VideoOptions {
    VideoOptions {
        fps: 30,
        packets_per_frame: 9,
        packet_size: 1200,
        keyframe_interval: 60,
    }
}

/// Video of about `bitrate_bps` (payload) at `fps` frames/s of `packet_size`-byte packets, with a
/// keyframe every `keyframe_secs` seconds.
pub fn video_for_bitrate(
    bitrate_bps: u64,
    fps: u32,
    packet_size: usize,
    keyframe_secs: f64,
) -> VideoOptions {
    let fps = fps.max(1);
    let per_frame_bits = (packet_size.max(1) * 8) as f64 * f64::from(fps);
    let packets_per_frame = (bitrate_bps as f64 / per_frame_bits).round().max(1.0) as u32;
    VideoOptions {
        fps,
        packets_per_frame,
        packet_size,
        keyframe_interval: (keyframe_secs * f64::from(fps)).round().max(0.0) as u32,
    }
}

/// Packets per second of one video track.
pub fn video_pps(v: &VideoOptions) -> f64 {
    f64::from(v.fps) * f64::from(v.packets_per_frame)
}

/// Accept only `ws://` URLs whose host is loopback: 127.0.0.0/8, `::1` or `localhost`.
pub fn check_loopback_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| format!("{url}: expected a ws:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "{url}: the load tester only targets loopback (127.0.0.0/8, ::1, localhost), \
             not {host:?}"
        ))
    }
}

/// Why a scenario did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScenarioError {
    Invalid(String),
    Runtime(String),
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::Invalid(m) => write!(f, "invalid scenario: {m}"),
            ScenarioError::Runtime(m) => write!(f, "cannot run the scenario: {m}"),
        }
    }
}

impl std::error::Error for ScenarioError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls() {
        for ok in [
            "ws://127.0.0.1:7880/v1/ws",
            "ws://127.3.2.1/v1/ws",
            "ws://localhost:1/v1/ws",
            "ws://[::1]:7880/v1/ws",
            "ws://LOCALHOST",
        ] {
            assert!(check_loopback_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ws://10.0.0.1:7880/v1/ws",
            "ws://example.com/v1/ws",
            "ws://[2001:db8::1]:80/",
            "ws://127.0.0.1.example.com/",
            "http://127.0.0.1/",
            "ws://user@192.168.1.1/",
            "ws://localhost.evil/",
        ] {
            assert!(check_loopback_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shape_arithmetic() {
        let mut s = Scenario::new("ws://127.0.0.1:7880/v1/ws");
        s.rooms = 2;
        s.publishers_per_room = 3;
        s.subscribers_per_room = 1;
        assert_eq!(s.participants(), 8);
        assert_eq!(s.tracks_per_publisher(), 2);
        assert_eq!(s.publisher_pps(), 50.0 + 270.0);
        // 2 rooms × 3 publishers × 2 tracks × (2 other publishers + 1 subscriber)
        assert_eq!(s.expected_streams(), 36);
        assert_eq!(s.expected_egress_pps(), 2.0 * 3.0 * 3.0 * 320.0);
        assert_eq!((s.receives_from(true), s.receives_from(false)), (2, 3));
        let seats = s.seats("x");
        assert_eq!(seats.len(), 8);
        let names: Vec<String> = seats
            .iter()
            .map(|s| format!("{}/{}", s.room, s.name))
            .collect();
        assert_eq!(
            names[..4],
            ["x-0/pub0", "x-1/pub0", "x-0/pub1", "x-1/pub1"],
            "rooms interleave, publishers first"
        );
        assert!(seats[6..].iter().all(|s| !s.publisher && s.name == "sub0"));
        let sub = s.client_options("x-0", "sub0", false);
        assert_eq!((sub.audio, sub.video.is_some()), (false, false));
        assert_eq!((sub.recv_audio_slots, sub.recv_video_slots), (3, 3));
        let publ = s.client_options("x-0", "pub0", true);
        assert_eq!((publ.recv_audio_slots, publ.recv_video_slots), (2, 2));
        assert!(publ.audio && publ.video.is_some());
        s.room_prefix = "fixed".into();
        assert_eq!(s.room_prefix_or("lt"), "fixed");
        assert!(s.validate().is_ok());
        s.url = "ws://192.168.0.1/v1/ws".into();
        assert!(s.validate().is_err());
        s.url = "ws://127.0.0.1/v1/ws".into();
        s.rooms = 1000;
        assert!(s.validate().is_err());
        s.rooms = 1;
        s.audio = false;
        s.video = None;
        assert!(s.validate().is_err());
    }

    #[test]
    fn video_for_a_bitrate() {
        let v = video_for_bitrate(2_500_000, 30, 1200, 2.0);
        assert_eq!(
            (v.fps, v.packets_per_frame, v.keyframe_interval),
            (30, 9, 60)
        );
        assert_eq!(default_video(), v);
        let v = video_for_bitrate(100, 30, 1200, 0.0);
        assert_eq!((v.packets_per_frame, v.keyframe_interval), (1, 0));
    }
}
