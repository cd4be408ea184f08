//! Load scenarios: many [`Client`]s in many rooms, joined at a bounded rate, then a measurement
//! window in which every receiver's counters are summed into a [`Report`]: what the SFU forwarded
//! (as seen by the receivers), the loss, the one-way latency, join times and CPU/memory use.
//!
//! A run always ends by itself: joins have a timeout, the wait for media to settle and the
//! measurement window are bounded, and leaving is bounded too. Only loopback targets are allowed
//! ([`check_loopback_url`]): this is a load generator.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::client::Client;
use crate::error::ClientError;
use crate::options::{ClientOptions, VideoOptions};
use crate::procstat::{self, CpuUsage, ProcSample, ThreadCpu};
use crate::stats::{percentile, ClientStats, LATENCY_SAMPLES};
use switchboard_protocol::MediaKind;

/// Upper bound on participants in one run (a typo must not start 100 000 clients).
pub const MAX_PARTICIPANTS: usize = 2000;
/// Upper bound on the measurement window.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Synthetic Opus: one packet every 20 ms (see the client's driver).
pub const AUDIO_PPS: f64 = 50.0;
/// Synthetic Opus payload bytes.
pub const AUDIO_PAYLOAD: usize = 160;
/// Latency samples kept per measurement window; beyond it, ticks are thinned evenly.
const MAX_WINDOW_SAMPLES: usize = 4_000_000;
/// How many join errors are kept verbatim in the report.
const MAX_JOIN_ERRORS: usize = 10;
/// How many server threads the report lists.
const TOP_THREADS: usize = 8;
/// Bound on the final `leave` of every participant.
const LEAVE_BUDGET: Duration = Duration::from_secs(8);
/// CPU of other programs (percent of one core) above which a run is marked as disturbed.
const OTHER_LOAD: f64 = 15.0;
/// Publishers sending less than this fraction of their schedule: the load tester fell behind.
const SENT_SHORTFALL: f64 = 0.95;
/// Client CPU above this fraction of its threads' capacity marks the run as client-bound.
const SATURATION: f64 = 0.85;

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
    /// Publishers send synthetic VP8 of this shape.
    pub video: Option<VideoOptions>,
    /// Length of the measurement window (after the ramp and the settle phase).
    pub duration: Duration,
    /// Joins started per second (0: all at once).
    pub ramp_per_sec: f64,
    /// Worker threads of the client runtime (informational here: the caller builds the runtime,
    /// see [`run_scenario_blocking`]); used to judge whether the client side saturated.
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
            video: Some(default_video()),
            duration: Duration::from_secs(10),
            ramp_per_sec: 20.0,
            threads: 2,
            server_pid: None,
            join_timeout: Duration::from_secs(20),
            settle_timeout: Duration::from_secs(15),
            room_prefix: String::new(),
            per_participant: true,
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
        if self.tracks_per_publisher() == 0 {
            return invalid("publishers need audio or video");
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
        Ok(())
    }
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

/// What a scenario is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Participants are joining.
    Ramp,
    /// Everybody joined; waiting for media to reach every receiver.
    Settle,
    /// The measurement window.
    Measure,
}

/// One progress line (about once a second), computed over the last interval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    pub elapsed_s: f64,
    pub planned: usize,
    pub joined: usize,
    pub failed: usize,
    pub connected: usize,
    pub egress_pps: f64,
    pub egress_mbps: f64,
    pub loss_percent: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub client_cpu_percent: f64,
    pub server_cpu_percent: Option<f64>,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.phase {
            Phase::Ramp => "ramp",
            Phase::Settle => "settle",
            Phase::Measure => "measure",
        };
        write!(
            f,
            "[{:6.1}s {phase:>7}] joined {}/{} (failed {}, connected {}) | egress {:8.0} pkt/s \
             {:7.1} Mbit/s | loss {:5.2} % | latency p50 {:6.2} ms p99 {:7.2} ms | cpu client \
             {:5.1} %",
            self.elapsed_s,
            self.joined,
            self.planned,
            self.failed,
            self.connected,
            self.egress_pps,
            self.egress_mbps,
            self.loss_percent,
            self.latency_ms_p50,
            self.latency_ms_p99,
            self.client_cpu_percent,
        )?;
        if let Some(s) = self.server_cpu_percent {
            write!(f, " server {s:5.1} %")?;
        }
        Ok(())
    }
}

/// The scenario as run, for the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub url: String,
    pub rooms: usize,
    pub publishers_per_room: usize,
    pub subscribers_per_room: usize,
    pub audio: bool,
    pub video: Option<VideoInfo>,
    pub duration_s: f64,
    pub ramp_per_sec: f64,
    pub threads: usize,
}

/// Synthetic video shape, for the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VideoInfo {
    pub fps: u32,
    pub packets_per_frame: u32,
    pub packet_size: usize,
    pub keyframe_interval: u32,
    /// Payload bit rate of one video track.
    pub kbps: f64,
}

/// Server process figures over the measurement window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerReport {
    pub pid: u32,
    /// Percent of one core.
    pub cpu_percent: f64,
    /// Busiest threads (shards, control plane) first.
    pub threads: Vec<ThreadCpu>,
    /// CPU microseconds per packet the receivers got (all server work divided by egress).
    pub cpu_us_per_egress_packet: f64,
    pub rss_kb_before: Option<u64>,
    pub rss_kb: Option<u64>,
    /// (RSS during the run − RSS before the first join) / participants joined.
    pub rss_kb_per_participant: Option<f64>,
}

/// What one participant received in the measurement window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParticipantReport {
    pub room: String,
    pub name: String,
    pub peer_id: String,
    pub publisher: bool,
    pub connected: bool,
    /// Tracks it should receive (every other publisher's).
    pub tracks_expected: usize,
    pub received: Vec<TrackReport>,
    pub server_errors: Vec<String>,
}

/// One received track.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackReport {
    pub owner: String,
    pub kind: String,
    pub packets: u64,
    pub lost: u64,
}

/// The result of [`run_scenario`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub scenario: ScenarioInfo,
    pub planned: usize,
    pub joined: usize,
    pub failed: usize,
    /// Joined participants whose media (ICE + DTLS) connected.
    pub connected: usize,
    pub join_errors: Vec<String>,
    /// Time of `Client::join` (WebSocket, `joined`, first offer/answer), ms.
    pub join_ms_p50: f64,
    pub join_ms_p99: f64,
    pub join_ms_max: f64,
    pub ramp_s: f64,
    pub settle_s: f64,
    /// Every receiver got at least one packet of every expected track before the window.
    pub settled: bool,
    /// The measurement window.
    pub duration_s: f64,
    /// Receive streams that should exist (publisher tracks × their receivers, joined only).
    pub streams_expected: usize,
    /// Receive streams that delivered packets in the window.
    pub streams_received: usize,
    /// Packets received by all participants in the window: what the SFU forwarded and
    /// delivered.
    pub egress_packets: u64,
    /// RTP payload bytes of those packets.
    pub egress_bytes: u64,
    pub egress_pps: f64,
    /// Payload bit rate (RTP/SRTP/UDP/IP headers, ~60 bytes a packet, not included).
    pub egress_mbps: f64,
    /// What the scenario should deliver with every participant joined and nothing lost.
    pub expected_egress_pps: f64,
    /// Packets the publishers handed to str0m in the window.
    pub sent_packets: u64,
    pub sent_pps: f64,
    /// What the joined publishers should send per their schedule.
    pub expected_sent_pps: f64,
    pub lost: u64,
    pub loss_percent: f64,
    pub latency_samples: u64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    pub seq_gaps: u64,
    /// Late packets that filled a hole (retransmissions arrive this way), whole run.
    pub reordered: u64,
    /// Packets seen twice, whole run.
    pub duplicates: u64,
    pub corrupt: u64,
    pub wrong_owner: u64,
    /// `error` messages the server sent (all participants, whole run).
    pub server_errors: u64,
    /// Client-side problems (str0m errors, unparseable messages), whole run.
    pub local_errors: u64,
    pub server: Option<ServerReport>,
    /// The load tester's own CPU, percent of one core.
    pub client_cpu_percent: f64,
    /// CPU used by the whole machine in the window, percent of one core.
    pub machine_cpu_percent: Option<f64>,
    /// Machine CPU neither the server nor the load tester used (other programs: noise).
    pub other_cpu_percent: Option<f64>,
    /// CPUs of the machine (server and load tester share them unless pinned apart).
    pub cpus: usize,
    /// The client side was (nearly) out of CPU: figures measure the client, not the server.
    pub client_saturated: bool,
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<ParticipantReport>,
}

impl Report {
    /// A short multi-line table of the essentials.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
        let s = &self.scenario;
        row(
            "scenario",
            format!(
                "{} room(s) × ({} pub + {} sub), audio {}, video {}",
                s.rooms,
                s.publishers_per_room,
                s.subscribers_per_room,
                if s.audio { "on" } else { "off" },
                s.video.as_ref().map_or("off".to_owned(), |v| format!(
                    "{:.0} kbit/s ({} fps × {} × {} B)",
                    v.kbps, v.fps, v.packets_per_frame, v.packet_size
                )),
            ),
        );
        row(
            "participants",
            format!(
                "{} joined, {} failed, {} connected (of {})",
                self.joined, self.failed, self.connected, self.planned
            ),
        );
        row(
            "join time",
            format!(
                "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (ramp {:.1} s, settle {:.1} s{})",
                self.join_ms_p50,
                self.join_ms_p99,
                self.join_ms_max,
                self.ramp_s,
                self.settle_s,
                if self.settled { "" } else { ", NOT settled" }
            ),
        );
        row(
            "streams",
            format!(
                "{} of {} receive streams delivered",
                self.streams_received, self.streams_expected
            ),
        );
        row(
            "egress",
            format!(
                "{:.0} pkt/s, {:.1} Mbit/s payload (expected {:.0} pkt/s) over {:.1} s",
                self.egress_pps, self.egress_mbps, self.expected_egress_pps, self.duration_s
            ),
        );
        row(
            "sent",
            format!(
                "{:.0} pkt/s by the publishers ({:.0} % of their schedule)",
                self.sent_pps,
                if self.expected_sent_pps > 0.0 {
                    self.sent_pps * 100.0 / self.expected_sent_pps
                } else {
                    0.0
                }
            ),
        );
        row(
            "loss",
            format!(
                "{:.3} % ({} lost, {} seq gaps, {} late, {} duplicate, {} corrupt, {} wrong owner)",
                self.loss_percent,
                self.lost,
                self.seq_gaps,
                self.reordered,
                self.duplicates,
                self.corrupt,
                self.wrong_owner
            ),
        );
        row(
            "latency",
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
                self.latency_ms_p50, self.latency_ms_p99, self.latency_ms_max, self.latency_samples
            ),
        );
        if let Some(sv) = &self.server {
            row(
                "server cpu",
                format!(
                    "{:.1} % ({:.1} µs per egress packet)",
                    sv.cpu_percent, sv.cpu_us_per_egress_packet
                ),
            );
            let threads: Vec<String> = sv
                .threads
                .iter()
                .filter(|t| t.cpu_percent >= 0.5)
                .map(|t| format!("{} {:.1} %", t.name, t.cpu_percent))
                .collect();
            row("server threads", threads.join(", "));
            row(
                "server rss",
                format!(
                    "{} KiB (before {} KiB; {} KiB per participant)",
                    opt(sv.rss_kb),
                    opt(sv.rss_kb_before),
                    sv.rss_kb_per_participant
                        .map_or("-".to_owned(), |v| format!("{v:.0}"))
                ),
            );
        }
        row(
            "client cpu",
            format!(
                "{:.1} % on {} thread(s), {} CPUs{}",
                self.client_cpu_percent,
                self.scenario.threads,
                self.cpus,
                if self.client_saturated {
                    " — SATURATED"
                } else {
                    ""
                }
            ),
        );
        if let Some(m) = self.machine_cpu_percent {
            row(
                "machine cpu",
                format!(
                    "{m:.1} % of {} CPUs ({:.1} % by other programs)",
                    self.cpus,
                    self.other_cpu_percent.unwrap_or(0.0)
                ),
            );
        }
        row(
            "errors",
            format!(
                "{} from the server, {} client-side",
                self.server_errors, self.local_errors
            ),
        );
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("  {k:<width$}  {v}\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("  WARNING: {w}\n"));
        }
        for e in &self.join_errors {
            out.push_str(&format!("  join error: {e}\n"));
        }
        out
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-".to_owned(), |v| v.to_string())
}

/// Progress callback.
pub type ProgressFn<'a> = &'a (dyn Fn(&Progress) + Send + Sync);

/// One participant to be.
#[derive(Debug, Clone)]
struct Plan {
    room: String,
    name: String,
    publisher: bool,
    tracks_expected: usize,
}

/// Counters of one received track at the last tick.
#[derive(Debug, Default, Clone, Copy)]
struct Cursor {
    packets: u64,
    bytes: u64,
    lost: u64,
    latency_total: u64,
}

/// A joined participant and what the collector has already counted of it.
#[derive(Debug)]
struct Member {
    plan: usize,
    client: Client,
    cursors: HashMap<(String, MediaKind), Cursor>,
    sent: u64,
    /// Window totals per track.
    window: HashMap<(String, MediaKind), (u64, u64)>,
}

/// What changed since the last tick.
#[derive(Debug, Default)]
struct Delta {
    packets: u64,
    bytes: u64,
    lost: u64,
    sent: u64,
    latency_us: Vec<u32>,
}

impl Member {
    /// Walk the client's live stats (under its lock) and return the change since last time.
    fn collect(&mut self, into: &mut Delta, in_window: bool) {
        let cursors = &mut self.cursors;
        let window = &mut self.window;
        let sent = self.client.with_stats(|s: &ClientStats| {
            for (key, r) in &s.received {
                let cur = match cursors.get_mut(key) {
                    Some(c) => c,
                    None => cursors.entry(key.clone()).or_default(),
                };
                let packets = r.packets.saturating_sub(cur.packets);
                let lost = r.lost.saturating_sub(cur.lost);
                into.packets += packets;
                into.bytes += r.bytes.saturating_sub(cur.bytes);
                into.lost += lost;
                // Latency samples n in [cur.latency_total, r.latency_total) sit at
                // n % LATENCY_SAMPLES; older ones than the ring holds are gone.
                let new = r.latency_total.saturating_sub(cur.latency_total);
                let keep = new.min(r.latency_us.len() as u64);
                for n in (r.latency_total - keep)..r.latency_total {
                    if let Some(v) = r.latency_us.get((n % LATENCY_SAMPLES as u64) as usize) {
                        into.latency_us.push(*v);
                    }
                }
                if in_window {
                    let w = window.entry(key.clone()).or_default();
                    w.0 += packets;
                    w.1 += lost;
                }
                *cur = Cursor {
                    packets: r.packets,
                    bytes: r.bytes,
                    lost: r.lost,
                    latency_total: r.latency_total,
                };
            }
            s.sent_packets
        });
        into.sent += sent.saturating_sub(self.sent);
        self.sent = sent;
    }
}

/// Runs one scenario on the current tokio runtime (use a multi-threaded one: every client is a
/// task). `progress` is called about once a second.
pub async fn run_scenario(
    scenario: &Scenario,
    progress: Option<ProgressFn<'_>>,
) -> Result<Report, ScenarioError> {
    scenario.validate()?;
    Runner::new(scenario, progress).run().await
}

/// [`run_scenario`] on a fresh multi-threaded runtime with `scenario.threads` workers.
pub fn run_scenario_blocking(
    scenario: &Scenario,
    progress: Option<ProgressFn<'_>>,
) -> Result<Report, ScenarioError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(scenario.threads.max(1))
        .thread_name("loadtest")
        .enable_all()
        .build()
        .map_err(|e| ScenarioError::Runtime(e.to_string()))?;
    let report = rt.block_on(run_scenario(scenario, progress));
    rt.shutdown_timeout(Duration::from_secs(2));
    report
}

struct Runner<'a> {
    sc: &'a Scenario,
    progress: Option<ProgressFn<'a>>,
    plans: Vec<Plan>,
    members: Vec<Member>,
    join_ms: Vec<f64>,
    join_errors: Vec<String>,
    failed: usize,
    started: Instant,
    next_tick: Instant,
    last_tick: Instant,
    client_prev: Option<ProcSample>,
    server_prev: Option<ProcSample>,
}

impl<'a> Runner<'a> {
    fn new(sc: &'a Scenario, progress: Option<ProgressFn<'a>>) -> Self {
        let prefix = if sc.room_prefix.is_empty() {
            format!("lt{:x}", crate::synth::now_us() & 0xff_ffff)
        } else {
            sc.room_prefix.clone()
        };
        let per_room = sc.publishers_per_room + sc.subscribers_per_room;
        let tracks = sc.tracks_per_publisher();
        let mut plans = Vec::with_capacity(sc.participants());
        // Interleave rooms so they fill evenly; publishers first in every room.
        for i in 0..per_room {
            for r in 0..sc.rooms {
                let publisher = i < sc.publishers_per_room;
                let others = if publisher {
                    sc.publishers_per_room - 1
                } else {
                    sc.publishers_per_room
                };
                plans.push(Plan {
                    room: format!("{prefix}-{r}"),
                    name: if publisher {
                        format!("pub{i}")
                    } else {
                        format!("sub{}", i - sc.publishers_per_room)
                    },
                    publisher,
                    tracks_expected: others * tracks,
                });
            }
        }
        let now = Instant::now();
        Runner {
            sc,
            progress,
            plans,
            members: Vec::new(),
            join_ms: Vec::new(),
            join_errors: Vec::new(),
            failed: 0,
            started: now,
            next_tick: now + Duration::from_secs(1),
            last_tick: now,
            client_prev: None,
            server_prev: None,
        }
    }

    fn options(&self, plan: &Plan) -> ClientOptions {
        let sc = self.sc;
        let others = plan.tracks_expected / sc.tracks_per_publisher().max(1);
        // Pre-create a receive slot per expected track: the server binds tracks to free slots
        // and would otherwise renegotiate once per new track. A subscriber needs them anyway:
        // an offer needs at least one m-line.
        let mut opts = ClientOptions::new(sc.url.clone(), plan.room.clone());
        opts.name = Some(plan.name.clone());
        opts.audio = plan.publisher && sc.audio;
        opts.video = if plan.publisher {
            sc.video.clone()
        } else {
            None
        };
        opts.recv_audio_slots = if sc.audio { others } else { 0 };
        opts.recv_video_slots = if sc.video.is_some() { others } else { 0 };
        if !plan.publisher && opts.recv_audio_slots + opts.recv_video_slots == 0 {
            opts.recv_audio_slots = 1;
        }
        opts.join_timeout = sc.join_timeout;
        opts
    }

    async fn run(mut self) -> Result<Report, ScenarioError> {
        let sc = self.sc;
        let server_before = sc
            .server_pid
            .map(|pid| procstat::sample_process(Some(pid), false))
            .transpose()
            .map_err(|e| ScenarioError::Runtime(format!("server pid: {e}")))?;
        self.client_prev = procstat::sample_process(None, false).ok();
        self.server_prev = server_before.clone();

        // ---- ramp
        let mut joins: JoinSet<(usize, f64, Result<Client, ClientError>)> = JoinSet::new();
        let gap = if sc.ramp_per_sec > 0.0 {
            Duration::from_secs_f64(1.0 / sc.ramp_per_sec)
        } else {
            Duration::ZERO
        };
        let mut next = 0usize;
        let ramp_start = Instant::now();
        while next < self.plans.len() || !joins.is_empty() {
            let spawn_at = ramp_start + gap * next as u32;
            let more = next < self.plans.len();
            tokio::select! {
                _ = tokio::time::sleep_until(spawn_at.into()), if more => {
                    let opts = self.options(&self.plans[next]);
                    let idx = next;
                    joins.spawn(async move {
                        let t0 = Instant::now();
                        let r = Client::join(opts).await;
                        (idx, t0.elapsed().as_secs_f64() * 1000.0, r)
                    });
                    next += 1;
                }
                Some(done) = joins.join_next(), if !joins.is_empty() => match done {
                    Ok((idx, ms, Ok(client))) => {
                        self.join_ms.push(ms);
                        self.members.push(Member {
                            plan: idx,
                            client,
                            cursors: HashMap::new(),
                            sent: 0,
                            window: HashMap::new(),
                        });
                    }
                    Ok((idx, _, Err(e))) => {
                        self.failed += 1;
                        if self.join_errors.len() < MAX_JOIN_ERRORS {
                            let p = &self.plans[idx];
                            self.join_errors.push(format!("{}/{}: {e}", p.room, p.name));
                        }
                    }
                    Err(e) => {
                        self.failed += 1;
                        if self.join_errors.len() < MAX_JOIN_ERRORS {
                            self.join_errors.push(format!("join task: {e}"));
                        }
                    }
                },
                _ = tokio::time::sleep_until(self.next_tick.into()) => {
                    self.tick(Phase::Ramp, false);
                }
            }
        }
        let ramp_s = ramp_start.elapsed().as_secs_f64();

        // ---- settle: every joined participant connected and receiving every expected track
        let settle_start = Instant::now();
        let settle_deadline = settle_start + sc.settle_timeout;
        let mut settled = false;
        while Instant::now() < settle_deadline {
            if self.all_flowing() {
                settled = true;
                break;
            }
            let at = (Instant::now() + Duration::from_millis(100)).min(settle_deadline);
            tokio::time::sleep_until(at.into()).await;
            if Instant::now() >= self.next_tick {
                self.tick(Phase::Settle, false);
            }
        }
        let settle_s = settle_start.elapsed().as_secs_f64();

        // ---- measure
        // Reset the cursors: the window counts from here.
        let mut discard = Delta::default();
        for m in &mut self.members {
            m.collect(&mut discard, false);
        }
        let window_start = Instant::now();
        let client_start = procstat::sample_process(None, false).ok();
        let machine_start = procstat::sample_machine();
        let server_start = sc
            .server_pid
            .and_then(|pid| procstat::sample_process(Some(pid), true).ok());
        self.client_prev = client_start.clone();
        self.server_prev = server_start.clone();
        self.last_tick = window_start;
        self.next_tick = window_start + Duration::from_secs(1);
        let window_end = window_start + sc.duration;
        let mut total = Delta::default();
        let mut thin = 1usize;
        loop {
            let now = Instant::now();
            if now >= window_end {
                break;
            }
            tokio::time::sleep_until(self.next_tick.min(window_end).into()).await;
            let final_tick = Instant::now() >= window_end;
            let delta = self.tick(Phase::Measure, true);
            total.packets += delta.packets;
            total.bytes += delta.bytes;
            total.lost += delta.lost;
            total.sent += delta.sent;
            if total.latency_us.len() + delta.latency_us.len() > MAX_WINDOW_SAMPLES {
                thin = thin.max(2);
            }
            total
                .latency_us
                .extend(delta.latency_us.iter().step_by(thin).copied());
            if final_tick {
                break;
            }
        }
        let window_s = window_start.elapsed().as_secs_f64();
        let client_end = procstat::sample_process(None, false).ok();
        let machine_end = procstat::sample_machine();
        let server_end = sc
            .server_pid
            .and_then(|pid| procstat::sample_process(Some(pid), true).ok());

        // ---- report (before leaving, while the participants still exist)
        let report = self.report(
            ramp_s,
            settle_s,
            settled,
            window_s,
            &total,
            client_start.zip(client_end),
            machine_start.zip(machine_end),
            server_before,
            server_start.zip(server_end),
        );

        // ---- leave, bounded
        let mut leaves = JoinSet::new();
        for m in self.members.drain(..) {
            leaves.spawn(async move {
                let _ = m.client.leave().await;
            });
        }
        let _ = tokio::time::timeout(LEAVE_BUDGET, async {
            while leaves.join_next().await.is_some() {}
        })
        .await;
        leaves.abort_all();
        Ok(report)
    }

    /// Every joined participant is connected and got something from every expected track.
    fn all_flowing(&self) -> bool {
        self.members.iter().all(|m| {
            let want = self.plans[m.plan].tracks_expected;
            m.client.with_stats(|s| {
                s.connected && s.received.values().filter(|r| r.packets > 0).count() >= want
            })
        })
    }

    /// Collect from every member, report progress, return the delta.
    fn tick(&mut self, phase: Phase, in_window: bool) -> Delta {
        let now = Instant::now();
        let mut delta = Delta::default();
        let mut connected = 0;
        for m in &mut self.members {
            m.collect(&mut delta, in_window);
            if m.client.with_stats(|s| s.connected) {
                connected += 1;
            }
        }
        let secs = now.saturating_duration_since(self.last_tick).as_secs_f64();
        self.last_tick = now;
        while self.next_tick <= now {
            self.next_tick += Duration::from_secs(1);
        }
        let client_now = procstat::sample_process(None, false).ok();
        let client_cpu = match (&self.client_prev, &client_now) {
            (Some(a), Some(b)) => procstat::cpu_between(a, b).cpu_percent,
            _ => 0.0,
        };
        self.client_prev = client_now;
        let server_now = self
            .sc
            .server_pid
            .and_then(|pid| procstat::sample_process(Some(pid), false).ok());
        let server_cpu = match (&self.server_prev, &server_now) {
            (Some(a), Some(b)) => Some(procstat::cpu_between(a, b).cpu_percent),
            _ => None,
        };
        self.server_prev = server_now;
        if let Some(progress) = self.progress {
            let mut lat = delta.latency_us.clone();
            lat.sort_unstable();
            let p = Progress {
                phase,
                elapsed_s: self.started.elapsed().as_secs_f64(),
                planned: self.plans.len(),
                joined: self.members.len(),
                failed: self.failed,
                connected,
                egress_pps: rate(delta.packets as f64, secs),
                egress_mbps: rate(delta.bytes as f64 * 8.0 / 1e6, secs),
                loss_percent: loss_percent(delta.packets, delta.lost),
                latency_ms_p50: f64::from(percentile(&lat, 50.0)) / 1000.0,
                latency_ms_p99: f64::from(percentile(&lat, 99.0)) / 1000.0,
                client_cpu_percent: client_cpu,
                server_cpu_percent: server_cpu,
            };
            progress(&p);
        }
        delta
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        ramp_s: f64,
        settle_s: f64,
        settled: bool,
        window_s: f64,
        total: &Delta,
        client: Option<(ProcSample, ProcSample)>,
        machine: Option<(procstat::MachineSample, procstat::MachineSample)>,
        server_before: Option<ProcSample>,
        server: Option<(ProcSample, ProcSample)>,
    ) -> Report {
        let sc = self.sc;
        let mut join_ms = self.join_ms.clone();
        join_ms.sort_by(f64::total_cmp);
        let mut streams_expected = 0;
        let mut streams_received = 0;
        let mut connected = 0;
        let (mut seq_gaps, mut corrupt, mut wrong_owner) = (0, 0, 0);
        let (mut reordered, mut duplicates) = (0, 0);
        let (mut server_errors, mut local_errors) = (0u64, 0u64);
        let mut participants = Vec::new();
        for m in &self.members {
            let plan = &self.plans[m.plan];
            streams_expected += plan.tracks_expected;
            streams_received += m.window.values().filter(|(p, _)| *p > 0).count();
            let (conn, peer_id, errors) = m.client.with_stats(|s| {
                seq_gaps += s.total(|r| r.seq_gaps);
                reordered += s.total(|r| r.reordered);
                duplicates += s.total(|r| r.duplicates);
                corrupt += s.total(|r| r.corrupt);
                wrong_owner += s.wrong_owner;
                server_errors += s.errors.len() as u64;
                local_errors += s.local_error_count;
                let errors: Vec<String> = s
                    .errors
                    .iter()
                    .take(5)
                    .map(|(c, msg)| format!("{c:?}: {msg}"))
                    .collect();
                (s.connected, s.peer_id.clone(), errors)
            });
            connected += usize::from(conn);
            if sc.per_participant {
                let mut received: Vec<TrackReport> = m
                    .window
                    .iter()
                    .map(|((owner, kind), (packets, lost))| TrackReport {
                        owner: owner.clone(),
                        kind: format!("{kind:?}").to_lowercase(),
                        packets: *packets,
                        lost: *lost,
                    })
                    .collect();
                received.sort_by(|a, b| a.owner.cmp(&b.owner).then(a.kind.cmp(&b.kind)));
                participants.push(ParticipantReport {
                    room: plan.room.clone(),
                    name: plan.name.clone(),
                    peer_id,
                    publisher: plan.publisher,
                    connected: conn,
                    tracks_expected: plan.tracks_expected,
                    received,
                    server_errors: errors,
                });
            }
        }
        participants.sort_by(|a, b| a.room.cmp(&b.room).then(a.name.cmp(&b.name)));

        let mut lat = total.latency_us.clone();
        lat.sort_unstable();
        let ms = |us: u32| f64::from(us) / 1000.0;
        let cpus = procstat::machine_cpus();
        let client_cpu = client
            .as_ref()
            .map_or(0.0, |(a, b)| procstat::cpu_between(a, b).cpu_percent);
        let capacity = sc.threads.min(procstat::cpu_count()).max(1) as f64 * 100.0;
        let publishers = self
            .members
            .iter()
            .filter(|m| self.plans[m.plan].publisher)
            .count();
        let expected_sent_pps = publishers as f64 * sc.publisher_pps();
        let sent_pps = rate(total.sent as f64, window_s);
        let behind = expected_sent_pps > 0.0 && sent_pps < SENT_SHORTFALL * expected_sent_pps;
        let client_saturated = client_cpu > SATURATION * capacity || behind;
        let mut warnings = Vec::new();
        if client_cpu > SATURATION * capacity {
            warnings.push(format!(
                "the load tester used {client_cpu:.0} % CPU of {capacity:.0} % available to its \
                 {} thread(s): the figures may measure the client, not the server",
                sc.threads
            ));
        }
        if behind {
            warnings.push(format!(
                "publishers sent {sent_pps:.0} pkt/s, {:.0} % of their schedule: the load \
                 tester did not get enough CPU, the offered load was lower than planned",
                sent_pps * 100.0 / expected_sent_pps
            ));
        }
        let server_report = server.map(|(a, b)| {
            let usage: CpuUsage = procstat::cpu_between(&a, &b);
            let rss_before = server_before.as_ref().and_then(|s| s.rss_kb);
            let per_participant = match (rss_before, b.rss_kb) {
                (Some(before), Some(now)) if !self.members.is_empty() => {
                    Some(now.saturating_sub(before) as f64 / self.members.len() as f64)
                }
                _ => None,
            };
            ServerReport {
                pid: sc.server_pid.unwrap_or(0),
                cpu_percent: usage.cpu_percent,
                threads: usage.threads.into_iter().take(TOP_THREADS).collect(),
                cpu_us_per_egress_packet: if total.packets > 0 {
                    usage.cpu_seconds * 1e6 / total.packets as f64
                } else {
                    0.0
                },
                rss_kb_before: rss_before,
                rss_kb: b.rss_kb,
                rss_kb_per_participant: per_participant,
            }
        });
        if let Some(sv) = &server_report {
            let busy = (sv.cpu_percent + client_cpu) / (cpus as f64 * 100.0);
            if busy > 0.9 {
                warnings.push(format!(
                    "server ({:.0} %) and load tester ({client_cpu:.0} %) together used {:.0} % \
                     of the {cpus} CPUs: they compete for the same cores",
                    sv.cpu_percent,
                    busy * 100.0
                ));
            }
        }
        let machine_cpu = machine.map(|(a, b)| procstat::machine_busy_percent(&a, &b));
        let other_cpu = machine_cpu.map(|m| {
            let server = server_report.as_ref().map_or(0.0, |s| s.cpu_percent);
            (m - server - client_cpu).max(0.0)
        });
        if let Some(other) = other_cpu.filter(|o| *o > OTHER_LOAD) {
            warnings.push(format!(
                "other programs used {other:.0} % CPU during the window: the machine was not quiet"
            ));
        }
        if self.failed > 0 {
            warnings.push(format!("{} participant(s) failed to join", self.failed));
            let limited = self
                .join_errors
                .iter()
                .any(|e| e.contains("RateLimited") || e.contains("RoomFull"));
            if limited {
                warnings.push(
                    "the server's admission limits refused joins: start it with \
                     --joins-per-ip-per-minute=0 --max-participants-per-room=0 for load tests"
                        .into(),
                );
            }
        }
        if !settled {
            warnings.push(format!(
                "media did not reach every receiver within {:.0} s of the last join",
                sc.settle_timeout.as_secs_f64()
            ));
        }
        if streams_received < streams_expected {
            warnings.push(format!(
                "{} receive stream(s) delivered nothing in the window",
                streams_expected - streams_received
            ));
        }
        Report {
            scenario: ScenarioInfo {
                url: sc.url.clone(),
                rooms: sc.rooms,
                publishers_per_room: sc.publishers_per_room,
                subscribers_per_room: sc.subscribers_per_room,
                audio: sc.audio,
                video: sc.video.as_ref().map(|v| VideoInfo {
                    fps: v.fps,
                    packets_per_frame: v.packets_per_frame,
                    packet_size: v.packet_size,
                    keyframe_interval: v.keyframe_interval,
                    kbps: video_pps(v) * v.packet_size as f64 * 8.0 / 1000.0,
                }),
                duration_s: sc.duration.as_secs_f64(),
                ramp_per_sec: sc.ramp_per_sec,
                threads: sc.threads,
            },
            planned: self.plans.len(),
            joined: self.members.len(),
            failed: self.failed,
            connected,
            join_errors: self.join_errors.clone(),
            join_ms_p50: pct_f64(&join_ms, 50.0),
            join_ms_p99: pct_f64(&join_ms, 99.0),
            join_ms_max: join_ms.last().copied().unwrap_or(0.0),
            ramp_s,
            settle_s,
            settled,
            duration_s: window_s,
            streams_expected,
            streams_received,
            egress_packets: total.packets,
            egress_bytes: total.bytes,
            egress_pps: rate(total.packets as f64, window_s),
            egress_mbps: rate(total.bytes as f64 * 8.0 / 1e6, window_s),
            expected_egress_pps: sc.expected_egress_pps(),
            sent_packets: total.sent,
            sent_pps,
            expected_sent_pps,
            lost: total.lost,
            loss_percent: loss_percent(total.packets, total.lost),
            latency_samples: lat.len() as u64,
            latency_ms_p50: ms(percentile(&lat, 50.0)),
            latency_ms_p99: ms(percentile(&lat, 99.0)),
            latency_ms_max: ms(lat.last().copied().unwrap_or(0)),
            seq_gaps,
            reordered,
            duplicates,
            corrupt,
            wrong_owner,
            server_errors,
            local_errors,
            server: server_report,
            client_cpu_percent: client_cpu,
            machine_cpu_percent: machine_cpu,
            other_cpu_percent: other_cpu,
            cpus,
            client_saturated,
            warnings,
            participants,
        }
    }
}

fn rate(x: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        x / secs
    } else {
        0.0
    }
}

/// Lost as a percentage of (received + lost).
pub fn loss_percent(received: u64, lost: u64) -> f64 {
    let all = received + lost;
    if all == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / all as f64
    }
}

/// Nearest-rank percentile of sorted values (0 for none).
fn pct_f64(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

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

    #[test]
    fn percent_helpers() {
        assert_eq!(loss_percent(0, 0), 0.0);
        assert_eq!(loss_percent(99, 1), 1.0);
        assert_eq!(pct_f64(&[], 50.0), 0.0);
        assert_eq!(pct_f64(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(pct_f64(&[1.0, 2.0, 3.0, 4.0], 99.0), 4.0);
    }
}
