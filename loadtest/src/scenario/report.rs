//! The shape of a scenario's [`Report`] (serialised as `--json`) and its human-readable table.

use serde::{Deserialize, Serialize};

use crate::procstat::ThreadCpu;

/// The scenario as run, for the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub url: String,
    pub rooms: usize,
    pub publishers_per_room: usize,
    pub subscribers_per_room: usize,
    pub audio: bool,
    /// Audio is published as RED (`--red`).
    #[serde(default)]
    pub red: bool,
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

/// The result of [`run_scenario`](super::run_scenario).
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
    /// Of `lost`, the audio packets whose frame a later RED packet carried (`--red`): the loss
    /// a listener hears is `lost - recovered`.
    #[serde(default)]
    pub recovered: u64,
    /// Loss after RED recovery, percent of (received + lost).
    #[serde(default)]
    pub residual_loss_percent: f64,
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
    /// The relayed data channel, when the scenario sends data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataReport>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<ParticipantReport>,
}

/// Messages on the relayed data channel over the measurement window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataReport {
    /// Messages a second each publisher sends, and their payload bytes.
    pub per_publisher: u32,
    pub size: usize,
    /// Messages the publishers wrote, a second.
    pub sent_per_s: f64,
    /// Copies the receivers got, a second, and what the scenario should deliver.
    pub received_per_s: f64,
    pub expected_per_s: f64,
    /// Counters that never arrived (the relay dropped them: budget, backpressure).
    pub lost: u64,
    pub loss_percent: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
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
                match (s.audio, s.red) {
                    (true, true) => "RED",
                    (true, false) => "on",
                    (false, _) => "off",
                },
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
        if s.red {
            row(
                "RED",
                format!(
                    "{} lost packets recovered from redundancy: {:.3} % loss after it",
                    self.recovered, self.residual_loss_percent
                ),
            );
        }
        row(
            "latency",
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
                self.latency_ms_p50, self.latency_ms_p99, self.latency_ms_max, self.latency_samples
            ),
        );
        if let Some(d) = &self.data {
            row(
                "data",
                format!(
                    "{:.0} msg/s relayed of {:.0} expected ({} B; {:.0} msg/s sent), loss {:.3} %, \
                     latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                    d.received_per_s,
                    d.expected_per_s,
                    d.size,
                    d.sent_per_s,
                    d.loss_percent,
                    d.latency_ms_p50,
                    d.latency_ms_p99,
                    d.latency_ms_max
                ),
            );
        }
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
