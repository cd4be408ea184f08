//! The command line and the `--config` file, merged into the run's [`Settings`]: flags over the
//! file over defaults, checked before anything starts.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use switchboard_loadtest::capacity::{CapacityOptions, Dimension};
use switchboard_loadtest::procstat;
use switchboard_loadtest::scenario::{
    check_loopback_url, default_video, video_for_bitrate, Scenario,
};
use switchboard_loadtest::soak::SoakOptions;

use crate::units::{parse_bitrate, parse_duration, parse_fraction, secs};

const DEFAULT_URL: &str = "ws://127.0.0.1:7880/v1/ws";

#[derive(Debug, Parser)]
#[command(
    name = "switchboard-loadtest",
    version,
    about = "Load tester for the Switchboard SFU: synthetic WebRTC publishers and subscribers \
             on loopback, measuring forwarding throughput, loss, latency and capacity.",
    after_help = "Only loopback targets (127.0.0.0/8, ::1, localhost) are accepted. \
                  Examples: see docs/benchmarks.md."
)]
pub(crate) struct Args {
    /// Scenario file (TOML, keys as the long flags with '_' for '-'); flags override it.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Signalling URL of the server [default: ws://127.0.0.1:7880/v1/ws].
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Rooms [default: 1].
    #[arg(long)]
    pub(crate) rooms: Option<usize>,
    /// Publishers per room (send audio and/or video, receive everyone else) [default: 2].
    #[arg(long)]
    pub(crate) publishers: Option<usize>,
    /// Subscribers per room (publish nothing, receive every publisher) [default: 0].
    #[arg(long)]
    pub(crate) subscribers: Option<usize>,
    /// Publishers send audio (the default).
    #[arg(long, overrides_with = "no_audio")]
    pub(crate) audio: bool,
    /// Publishers send no audio.
    #[arg(long, overrides_with = "audio")]
    pub(crate) no_audio: bool,
    /// Audio goes as RED (RFC 2198, as Chrome sends it: each packet carries the previous frame
    /// too); the report counts the lost packets the redundancy recovers.
    #[arg(long)]
    pub(crate) red: bool,
    /// Publishers send no video.
    #[arg(long)]
    pub(crate) no_video: bool,
    /// Video payload bit rate per publisher, e.g. 2500000, 2500k, 2.5M [default: 2.5M].
    #[arg(long, value_parser = parse_bitrate)]
    pub(crate) video_bitrate: Option<u64>,
    /// Video frames per second [default: 30].
    #[arg(long)]
    pub(crate) video_fps: Option<u32>,
    /// Video payload bytes per packet [default: 1200].
    #[arg(long)]
    pub(crate) packet_size: Option<usize>,
    /// Seconds between video keyframes (0: only on request) [default: 2].
    #[arg(long)]
    pub(crate) keyframe_secs: Option<f64>,
    /// Relayed data-channel messages a second each publisher sends to its room (everyone opens
    /// the channel) [default: 0, no data channel].
    #[arg(long)]
    pub(crate) data_rate: Option<u32>,
    /// Payload bytes of each data message [default: 256].
    #[arg(long)]
    pub(crate) data_size: Option<usize>,
    /// Measurement window in seconds (after everybody joined and media settled) [default: 10].
    #[arg(long)]
    pub(crate) duration: Option<f64>,
    /// Joins started per second (0: all at once) [default: 20].
    #[arg(long)]
    pub(crate) ramp: Option<f64>,
    /// Worker threads of the client runtime [default: number of CPUs].
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Seconds one join may take [default: 20].
    #[arg(long)]
    pub(crate) join_timeout: Option<f64>,
    /// Seconds to wait after the last join for media to reach every receiver [default: 15].
    #[arg(long)]
    pub(crate) settle_timeout: Option<f64>,
    /// Sample this server process's CPU (total and per thread) and memory from /proc.
    #[arg(long, value_name = "PID")]
    pub(crate) server_pid: Option<u32>,
    /// Start this server binary on free loopback ports, measure it, stop it at the end.
    #[arg(long, value_name = "PATH")]
    pub(crate) spawn_server: Option<PathBuf>,
    /// --shards for the spawned server [default: the server's own, one per core].
    #[arg(long)]
    pub(crate) server_shards: Option<usize>,
    /// Pin the spawned server to these CPUs (`taskset -c LIST`, e.g. "0"); run the load tester
    /// itself under `taskset -c` for the others to keep the two apart.
    #[arg(long, value_name = "LIST")]
    pub(crate) server_cpus: Option<String>,
    /// Extra argument for the spawned server (repeat for several).
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub(crate) server_args: Vec<String>,
    /// Write the full results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Include every participant's received tracks in the JSON.
    #[arg(long)]
    pub(crate) per_participant: bool,
    /// Search the capacity: grow the scenario in steps until loss or latency p99 exceeds the
    /// thresholds; report the last good step.
    #[arg(long)]
    pub(crate) capacity: bool,
    /// What grows per step [default: subscribers if --subscribers > 0, else rooms].
    #[arg(long, value_enum)]
    pub(crate) capacity_dimension: Option<DimensionArg>,
    /// Added per step [default: the starting value, or 10 when it is 0].
    #[arg(long)]
    pub(crate) step: Option<usize>,
    /// At most this many capacity steps [default: 10].
    #[arg(long)]
    pub(crate) max_steps: Option<usize>,
    /// Capacity threshold: loss percent [default: 1].
    #[arg(long)]
    pub(crate) max_loss: Option<f64>,
    /// Capacity threshold: latency p99 in ms [default: 50].
    #[arg(long)]
    max_p99_ms: Option<f64>,
    /// Measure a bare in-process UDP forwarder of the same shape (paced, then unpaced for its
    /// ceiling). With --spawn-server or --server-pid the SFU scenario runs too and is compared.
    #[arg(long)]
    pub(crate) baseline: bool,
    /// Forwarder threads of the baseline [default: number of CPUs, like the server's shards].
    #[arg(long)]
    pub(crate) baseline_forwarders: Option<usize>,
    /// Soak: keep the scenario running this long (e.g. 90s, 10m, 1h), with churn, sampling the
    /// server's memory, descriptors and CPU; ends with the RSS slope. --duration is not used.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) soak: Option<Duration>,
    /// Soak: time between churn rounds [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) churn_every: Option<Duration>,
    /// Soak: share of the seats whose clients leave and are replaced per round, e.g. 0.1 or
    /// 10% (0: no churn) [default: 10%].
    #[arg(long, value_name = "SHARE", value_parser = parse_fraction)]
    pub(crate) churn_fraction: Option<f64>,
    /// Soak: time between samples [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) sample_every: Option<Duration>,
    /// No progress lines.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DimensionArg {
    Subscribers,
    Rooms,
}

/// The `--config` file: the scenario flags, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    url: Option<String>,
    rooms: Option<usize>,
    publishers: Option<usize>,
    subscribers: Option<usize>,
    audio: Option<bool>,
    red: Option<bool>,
    video: Option<bool>,
    video_bitrate: Option<u64>,
    video_fps: Option<u32>,
    packet_size: Option<usize>,
    keyframe_secs: Option<f64>,
    data_rate: Option<u32>,
    data_size: Option<usize>,
    duration: Option<f64>,
    ramp: Option<f64>,
    threads: Option<usize>,
    join_timeout: Option<f64>,
    settle_timeout: Option<f64>,
    server_pid: Option<u32>,
    spawn_server: Option<PathBuf>,
    server_shards: Option<usize>,
    server_cpus: Option<String>,
    server_args: Option<Vec<String>>,
    capacity: Option<bool>,
    capacity_dimension: Option<DimensionArg>,
    step: Option<usize>,
    max_steps: Option<usize>,
    max_loss: Option<f64>,
    max_p99_ms: Option<f64>,
    baseline: Option<bool>,
    baseline_forwarders: Option<usize>,
    /// Durations as on the command line (`"1h"`), the churn share as a number or `"10%"`.
    soak: Option<String>,
    churn_every: Option<String>,
    churn_fraction: Option<FileShare>,
    sample_every: Option<String>,
}

/// A share in the config file: `0.1` or `"10%"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum FileShare {
    Number(f64),
    Text(String),
}

impl FileShare {
    fn parse(&self) -> Result<f64, String> {
        match self {
            FileShare::Number(v) => parse_fraction(&v.to_string()),
            FileShare::Text(t) => parse_fraction(t),
        }
    }
}

/// A duration from the config file, named by its key for the error.
fn file_duration(v: Option<String>, key: &str) -> Result<Option<Duration>, String> {
    v.map(|s| parse_duration(&s).map_err(|e| format!("--config {key}: {e}")))
        .transpose()
}

/// The run's settings: flags over the config file over defaults.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) scenario: Scenario,
    pub(crate) spawn_server: Option<PathBuf>,
    pub(crate) server_shards: Option<usize>,
    pub(crate) server_cpus: Option<String>,
    pub(crate) server_args: Vec<String>,
    pub(crate) capacity: Option<CapacityOptions>,
    pub(crate) baseline: bool,
    pub(crate) baseline_forwarders: usize,
    pub(crate) soak: Option<SoakOptions>,
}

pub(crate) fn settings(args: &Args) -> Result<Settings, String> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--config {}: {e}", path.display()))?;
            toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let file_soak = FileSoak {
        soak: file.soak,
        churn_every: file.churn_every,
        churn_fraction: file.churn_fraction,
        sample_every: file.sample_every,
    };
    let cpus = procstat::cpu_count();
    let mut sc = Scenario::new(
        args.url
            .clone()
            .or(file.url)
            .unwrap_or_else(|| DEFAULT_URL.to_owned()),
    );
    sc.rooms = args.rooms.or(file.rooms).unwrap_or(1);
    sc.publishers_per_room = args.publishers.or(file.publishers).unwrap_or(2);
    sc.subscribers_per_room = args.subscribers.or(file.subscribers).unwrap_or(0);
    let cli_audio = if args.no_audio {
        Some(false)
    } else if args.audio {
        Some(true)
    } else {
        None
    };
    sc.audio = cli_audio.or(file.audio).unwrap_or(true);
    sc.red = args.red || file.red.unwrap_or(false);
    let video_on = if args.no_video {
        false
    } else {
        file.video.unwrap_or(true)
    };
    sc.video = if video_on {
        let d = default_video();
        let fps = args.video_fps.or(file.video_fps).unwrap_or(d.fps);
        let size = args
            .packet_size
            .or(file.packet_size)
            .unwrap_or(d.packet_size);
        let bitrate = args
            .video_bitrate
            .or(file.video_bitrate)
            .unwrap_or(2_500_000);
        let kf = args.keyframe_secs.or(file.keyframe_secs).unwrap_or(2.0);
        if !(kf >= 0.0 && kf.is_finite()) {
            return Err("--keyframe-secs must be ≥ 0".into());
        }
        Some(video_for_bitrate(bitrate, fps, size, kf))
    } else {
        None
    };
    sc.data = match args.data_rate.or(file.data_rate).unwrap_or(0) {
        0 => None,
        per_second => Some(switchboard_loadtest::DataOptions {
            per_second,
            size: args.data_size.or(file.data_size).unwrap_or(256),
        }),
    };
    sc.duration = secs(
        args.duration.or(file.duration).unwrap_or(10.0),
        "--duration",
    )?;
    sc.ramp_per_sec = args.ramp.or(file.ramp).unwrap_or(20.0);
    sc.threads = args.threads.or(file.threads).unwrap_or(cpus).clamp(1, 64);
    sc.join_timeout = secs(
        args.join_timeout.or(file.join_timeout).unwrap_or(20.0),
        "--join-timeout",
    )?;
    sc.settle_timeout = secs(
        args.settle_timeout.or(file.settle_timeout).unwrap_or(15.0),
        "--settle-timeout",
    )?;
    sc.server_pid = args.server_pid.or(file.server_pid);
    sc.per_participant = args.per_participant;

    let spawn_server = args.spawn_server.clone().or(file.spawn_server);
    if spawn_server.is_some() && sc.server_pid.is_some() {
        return Err("--spawn-server and --server-pid exclude each other".into());
    }
    if spawn_server.is_some() && (args.url.is_some()) {
        return Err("--spawn-server picks its own URL; drop --url".into());
    }
    let mut server_args = file.server_args.unwrap_or_default();
    server_args.extend(args.server_args.iter().cloned());

    let capacity = if args.capacity || file.capacity.unwrap_or(false) {
        let dim = args
            .capacity_dimension
            .or(file.capacity_dimension)
            .unwrap_or(if sc.subscribers_per_room > 0 {
                DimensionArg::Subscribers
            } else {
                DimensionArg::Rooms
            });
        let dimension = match dim {
            DimensionArg::Subscribers => Dimension::Subscribers,
            DimensionArg::Rooms => Dimension::Rooms,
        };
        let start = match dimension {
            Dimension::Subscribers => sc.subscribers_per_room,
            Dimension::Rooms => sc.rooms,
        };
        Some(CapacityOptions {
            base: sc.clone(),
            dimension,
            step: args
                .step
                .or(file.step)
                .unwrap_or(if start == 0 { 10 } else { start }),
            max_steps: args.max_steps.or(file.max_steps).unwrap_or(10),
            max_loss_percent: args.max_loss.or(file.max_loss).unwrap_or(1.0),
            max_p99_ms: args.max_p99_ms.or(file.max_p99_ms).unwrap_or(50.0),
        })
    } else {
        None
    };
    let baseline = args.baseline || file.baseline.unwrap_or(false);
    if baseline && capacity.is_some() {
        return Err("--baseline and --capacity are separate runs".into());
    }
    if spawn_server.is_none() {
        check_loopback_url(&sc.url)?;
    }
    let soak = soak_options(args, &file_soak, &sc)?;
    if soak.is_some() && (baseline || capacity.is_some()) {
        return Err("--soak is a run of its own: drop --baseline and --capacity".into());
    }
    Ok(Settings {
        scenario: sc,
        spawn_server,
        server_shards: args.server_shards.or(file.server_shards),
        server_cpus: args.server_cpus.clone().or(file.server_cpus),
        server_args,
        capacity,
        baseline,
        baseline_forwarders: args
            .baseline_forwarders
            .or(file.baseline_forwarders)
            .unwrap_or(cpus)
            .max(1),
        soak,
    })
}

/// The soak settings of the config file (taken out before the rest is consumed).
#[derive(Debug, Default)]
struct FileSoak {
    soak: Option<String>,
    churn_every: Option<String>,
    churn_fraction: Option<FileShare>,
    sample_every: Option<String>,
}

/// `--soak` and its interval flags (over the file's) into [`SoakOptions`] for `sc`; `None`
/// without `--soak`, an error when its interval flags come without it.
fn soak_options(
    args: &Args,
    file: &FileSoak,
    sc: &Scenario,
) -> Result<Option<SoakOptions>, String> {
    let duration = match args.soak {
        Some(d) => Some(d),
        None => file_duration(file.soak.clone(), "soak")?,
    };
    let churn_every = match args.churn_every {
        Some(d) => Some(d),
        None => file_duration(file.churn_every.clone(), "churn_every")?,
    };
    let churn_fraction = match args.churn_fraction {
        Some(f) => Some(f),
        None => file
            .churn_fraction
            .as_ref()
            .map(|f| {
                f.parse()
                    .map_err(|e| format!("--config churn_fraction: {e}"))
            })
            .transpose()?,
    };
    let sample_every = match args.sample_every {
        Some(d) => Some(d),
        None => file_duration(file.sample_every.clone(), "sample_every")?,
    };
    let Some(duration) = duration else {
        if churn_every.is_some() || churn_fraction.is_some() || sample_every.is_some() {
            return Err("--churn-every, --churn-fraction and --sample-every need --soak".into());
        }
        return Ok(None);
    };
    let mut soak = SoakOptions::new(sc.clone(), duration);
    soak.churn_every = churn_every.unwrap_or(soak.churn_every);
    soak.churn_fraction = churn_fraction.unwrap_or(soak.churn_fraction);
    soak.sample_every = sample_every.unwrap_or(soak.sample_every);
    // The URL of a spawned server is not known yet; everything else is checked now.
    let mut check = soak.clone();
    check.scenario.url = DEFAULT_URL.to_owned();
    check.validate().map_err(|e| e.to_string())?;
    Ok(Some(soak))
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
