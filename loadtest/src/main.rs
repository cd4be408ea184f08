//! `switchboard-loadtest`: run load scenarios against a Switchboard server on this machine, find
//! its capacity, or measure the kernel-only forwarding ceiling. See `docs/benchmarks.md`.
//!
//! Only loopback targets are accepted: this tool generates real load and must never be pointed
//! at somebody else's server.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use switchboard_loadtest::baseline::{run_baseline, BaselineOptions, BaselineReport};
use switchboard_loadtest::capacity::{run_capacity, CapacityOptions, CapacityReport, Dimension};
use switchboard_loadtest::procstat;
use switchboard_loadtest::scenario::{
    check_loopback_url, default_video, run_scenario, video_for_bitrate, Progress, Report, Scenario,
};

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
struct Args {
    /// Scenario file (TOML, keys as the long flags with '_' for '-'); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Signalling URL of the server [default: ws://127.0.0.1:7880/v1/ws].
    #[arg(long)]
    url: Option<String>,
    /// Rooms [default: 1].
    #[arg(long)]
    rooms: Option<usize>,
    /// Publishers per room (send audio and/or video, receive everyone else) [default: 2].
    #[arg(long)]
    publishers: Option<usize>,
    /// Subscribers per room (publish nothing, receive every publisher) [default: 0].
    #[arg(long)]
    subscribers: Option<usize>,
    /// Publishers send audio (the default).
    #[arg(long, overrides_with = "no_audio")]
    audio: bool,
    /// Publishers send no audio.
    #[arg(long, overrides_with = "audio")]
    no_audio: bool,
    /// Publishers send no video.
    #[arg(long)]
    no_video: bool,
    /// Video payload bit rate per publisher, e.g. 2500000, 2500k, 2.5M [default: 2.5M].
    #[arg(long, value_parser = parse_bitrate)]
    video_bitrate: Option<u64>,
    /// Video frames per second [default: 30].
    #[arg(long)]
    video_fps: Option<u32>,
    /// Video payload bytes per packet [default: 1200].
    #[arg(long)]
    packet_size: Option<usize>,
    /// Seconds between video keyframes (0: only on request) [default: 2].
    #[arg(long)]
    keyframe_secs: Option<f64>,
    /// Measurement window in seconds (after everybody joined and media settled) [default: 10].
    #[arg(long)]
    duration: Option<f64>,
    /// Joins started per second (0: all at once) [default: 20].
    #[arg(long)]
    ramp: Option<f64>,
    /// Worker threads of the client runtime [default: number of CPUs].
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds one join may take [default: 20].
    #[arg(long)]
    join_timeout: Option<f64>,
    /// Seconds to wait after the last join for media to reach every receiver [default: 15].
    #[arg(long)]
    settle_timeout: Option<f64>,
    /// Sample this server process's CPU (total and per thread) and memory from /proc.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Start this server binary on free loopback ports, measure it, stop it at the end.
    #[arg(long, value_name = "PATH")]
    spawn_server: Option<PathBuf>,
    /// --shards for the spawned server [default: the server's own, one per core].
    #[arg(long)]
    server_shards: Option<usize>,
    /// Pin the spawned server to these CPUs (`taskset -c LIST`, e.g. "0"); run the load tester
    /// itself under `taskset -c` for the others to keep the two apart.
    #[arg(long, value_name = "LIST")]
    server_cpus: Option<String>,
    /// Extra argument for the spawned server (repeat for several).
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Write the full results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Include every participant's received tracks in the JSON.
    #[arg(long)]
    per_participant: bool,
    /// Search the capacity: grow the scenario in steps until loss or latency p99 exceeds the
    /// thresholds; report the last good step.
    #[arg(long)]
    capacity: bool,
    /// What grows per step [default: subscribers if --subscribers > 0, else rooms].
    #[arg(long, value_enum)]
    capacity_dimension: Option<DimensionArg>,
    /// Added per step [default: the starting value, or 10 when it is 0].
    #[arg(long)]
    step: Option<usize>,
    /// At most this many capacity steps [default: 10].
    #[arg(long)]
    max_steps: Option<usize>,
    /// Capacity threshold: loss percent [default: 1].
    #[arg(long)]
    max_loss: Option<f64>,
    /// Capacity threshold: latency p99 in ms [default: 50].
    #[arg(long)]
    max_p99_ms: Option<f64>,
    /// Measure a bare in-process UDP forwarder of the same shape (paced, then unpaced for its
    /// ceiling). With --spawn-server or --server-pid the SFU scenario runs too and is compared.
    #[arg(long)]
    baseline: bool,
    /// Forwarder threads of the baseline [default: number of CPUs, like the server's shards].
    #[arg(long)]
    baseline_forwarders: Option<usize>,
    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DimensionArg {
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
    video: Option<bool>,
    video_bitrate: Option<u64>,
    video_fps: Option<u32>,
    packet_size: Option<usize>,
    keyframe_secs: Option<f64>,
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
}

/// Everything the run produced, for `--json`.
#[derive(Debug, Default, Serialize)]
struct Output {
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity: Option<CapacityReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline_paced: Option<BaselineReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline_ceiling: Option<BaselineReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comparison: Option<Comparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_log: Option<PathBuf>,
}

/// The SFU against the bare forwarder.
#[derive(Debug, Serialize)]
struct Comparison {
    /// SFU server CPU per egress packet.
    sfu_us_per_packet: f64,
    /// Bare forwarder CPU per egress packet, same load.
    baseline_us_per_packet: f64,
    /// baseline / SFU cost per packet: the share of the SFU's work that is the kernel's.
    cost_fraction: f64,
    /// Egress the SFU would reach on every CPU at its per-packet cost.
    sfu_projected_pps: f64,
    /// The bare forwarder's unpaced egress.
    baseline_ceiling_pps: f64,
    /// sfu_projected_pps / baseline_ceiling_pps.
    ceiling_fraction: f64,
}

fn parse_bitrate(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('m' | 'M') => (&s[..s.len() - 1], 1e6),
        Some('g' | 'G') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected bits per second like 2500000, 2500k or 2.5M"))?;
    if !(v > 0.0 && v.is_finite()) {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok((v * mult).round() as u64)
}

fn secs(v: f64, what: &str) -> Result<Duration, String> {
    if !(v > 0.0 && v.is_finite() && v <= 3600.0) {
        return Err(format!("{what} must be between 0 and 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The run's settings: flags over the config file over defaults.
#[derive(Debug)]
struct Settings {
    scenario: Scenario,
    spawn_server: Option<PathBuf>,
    server_shards: Option<usize>,
    server_cpus: Option<String>,
    server_args: Vec<String>,
    capacity: Option<CapacityOptions>,
    baseline: bool,
    baseline_forwarders: usize,
}

fn settings(args: &Args) -> Result<Settings, String> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--config {}: {e}", path.display()))?;
            toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))?
        }
        None => FileConfig::default(),
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
    })
}

// -------------------------------------------------------------------- spawned server

/// A server process this tool started; stopped (SIGTERM, then SIGKILL) when dropped.
struct SpawnedServer {
    child: Child,
    url: String,
    log: PathBuf,
}

impl SpawnedServer {
    fn start(
        path: &Path,
        shards: Option<usize>,
        cpus: Option<&str>,
        extra: &[String],
    ) -> Result<Self, String> {
        let http = free_tcp_port()?;
        let ports = shards.unwrap_or_else(procstat::cpu_count).max(1);
        let udp = free_udp_range(ports)?;
        let log = std::env::temp_dir().join(format!(
            "switchboard-loadtest-server-{}.log",
            std::process::id()
        ));
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = match cpus {
            Some(list) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(list).arg(path);
                c
            }
            None => Command::new(path),
        };
        cmd.arg("--http")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--udp-ports")
            .arg(format!("{}-{}", udp, udp + ports as u16 - 1))
            .arg("--udp-bind")
            .arg("127.0.0.1")
            .arg("--log")
            .arg("warn")
            // Every load-test client connects from 127.0.0.1: the per-address join rate and the
            // room size limits meant for real users would refuse the scenarios. Extra
            // --server-arg flags come after these and win.
            .arg("--max-participants-per-room")
            .arg("0")
            .arg("--joins-per-ip-per-minute")
            .arg("0");
        if let Some(n) = shards {
            cmd.arg("--shards").arg(n.to_string());
        }
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
        let mut server = SpawnedServer {
            child,
            url: format!("ws://127.0.0.1:{http}/v1/ws"),
            log,
        };
        let addr: SocketAddr = ([127, 0, 0, 1], http).into();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "the server exited at start ({status}); see {}",
                    server.log.display()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the server did not listen on {addr} within 15 s; see {}",
                    server.log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGTERM lets it tell its participants and close cleanly.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_tcp_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free TCP port: {e}"))
}

/// `n` consecutive free UDP ports on 127.0.0.1 (checked by binding them; the race with other
/// programs is accepted: the server takes the first free ones of the range anyway).
fn free_udp_range(n: usize) -> Result<u16, String> {
    for _ in 0..50 {
        let base = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free UDP port: {e}"))?;
        if usize::from(base) + n > usize::from(u16::MAX) {
            continue;
        }
        let held: Result<Vec<UdpSocket>, _> = (0..n)
            .map(|i| UdpSocket::bind(("127.0.0.1", base + i as u16)))
            .collect();
        if held.is_ok() {
            return Ok(base);
        }
    }
    Err(format!("no {n} consecutive free UDP ports found"))
}

// -------------------------------------------------------------------- main

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOADTEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = match settings(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchboard-loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    match run(settings, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard-loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut settings: Settings, args: &Args) -> Result<(), String> {
    let mut out = Output::default();

    if settings.baseline {
        let sc = &settings.scenario;
        let paced = BaselineOptions::for_scenario(sc, settings.baseline_forwarders, true);
        eprintln!(
            "baseline: bare UDP forwarder, {} senders × {:.0} pkt/s → fan-out {} ({:.0} pkt/s \
             egress expected), {:.0} s",
            paced.senders,
            paced.offered_pps() / paced.senders.max(1) as f64,
            paced.fanout,
            paced.offered_pps() * paced.fanout as f64,
            sc.duration.as_secs_f64()
        );
        let r = run_baseline(&paced).map_err(|e| format!("baseline: {e}"))?;
        print!("{}", r.table());
        out.baseline_paced = Some(r);
        let unpaced = BaselineOptions {
            paced: false,
            ..paced
        };
        let r = run_baseline(&unpaced).map_err(|e| format!("baseline ceiling: {e}"))?;
        print!("{}", r.table());
        out.baseline_ceiling = Some(r);
        if settings.spawn_server.is_none() && settings.scenario.server_pid.is_none() {
            return write_json(args, &out);
        }
        // Let the machine calm down before the SFU run.
        std::thread::sleep(Duration::from_secs(1));
    }

    let mut server = match &settings.spawn_server {
        Some(path) => {
            let s = SpawnedServer::start(
                path,
                settings.server_shards,
                settings.server_cpus.as_deref(),
                &settings.server_args,
            )?;
            eprintln!(
                "started {} (pid {}) on {}; log: {}",
                path.display(),
                s.pid(),
                s.url,
                s.log.display()
            );
            settings.scenario.url = s.url.clone();
            settings.scenario.server_pid = Some(s.pid());
            if let Some(c) = &mut settings.capacity {
                c.base.url = s.url.clone();
                c.base.server_pid = Some(s.pid());
            }
            out.server_log = Some(s.log.clone());
            Some(s)
        }
        None => None,
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.scenario.threads)
        .thread_name("loadtest")
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let quiet = args.quiet;
    let progress = move |p: &Progress| {
        if !quiet {
            eprintln!("{p}");
        }
    };
    let progress: &(dyn Fn(&Progress) + Send + Sync) = &progress;

    let result: Result<(), String> = rt.block_on(async {
        let work = async {
            if let Some(copts) = &settings.capacity {
                let on_step = |s: &switchboard_loadtest::capacity::StepReport| {
                    eprintln!(
                        "step {}: {} = {} → {} streams, {:.0} pkt/s, {:.1} Mbit/s, loss {:.2} %, \
                         p99 {:.1} ms, server cpu {}, client cpu {:.0} % → {}",
                        s.step,
                        copts.dimension,
                        s.value,
                        s.streams,
                        s.egress_pps,
                        s.egress_mbps,
                        s.loss_percent,
                        s.latency_ms_p99,
                        s.server_cpu_percent
                            .map_or("-".to_owned(), |c| format!("{c:.0} %")),
                        s.client_cpu_percent,
                        s.reason.as_deref().unwrap_or("ok"),
                    );
                };
                let report = run_capacity(copts, Some(progress), Some(&on_step))
                    .await
                    .map_err(|e| e.to_string())?;
                print_capacity(&report);
                out.capacity = Some(report);
            } else {
                let report = run_scenario(&settings.scenario, Some(progress))
                    .await
                    .map_err(|e| e.to_string())?;
                println!("{}", report.table());
                if let (Some(paced), Some(ceiling)) = (&out.baseline_paced, &out.baseline_ceiling) {
                    if let Some(c) = compare(&report, paced, ceiling) {
                        print_comparison(&c);
                        out.comparison = Some(c);
                    }
                }
                out.report = Some(report);
            }
            Ok::<(), String>(())
        };
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    if let Some(s) = &mut server {
        s.stop();
        report_server_log(&s.log);
    }
    result?;
    write_json(args, &out)
}

fn compare(
    report: &Report,
    paced: &BaselineReport,
    ceiling: &BaselineReport,
) -> Option<Comparison> {
    let sfu = report.server.as_ref()?.cpu_us_per_egress_packet;
    if sfu <= 0.0 {
        return None;
    }
    let projected = report.cpus as f64 * 1e6 / sfu;
    Some(Comparison {
        sfu_us_per_packet: sfu,
        baseline_us_per_packet: paced.forwarder_us_per_egress_packet,
        cost_fraction: paced.forwarder_us_per_egress_packet / sfu,
        sfu_projected_pps: projected,
        baseline_ceiling_pps: ceiling.egress_pps,
        ceiling_fraction: if ceiling.egress_pps > 0.0 {
            projected / ceiling.egress_pps
        } else {
            0.0
        },
    })
}

fn print_comparison(c: &Comparison) {
    println!(
        "  SFU vs bare forwarder: {:.2} µs vs {:.2} µs CPU per egress packet (the kernel's part \
         is {:.0} %);\n  at its cost the SFU would forward ~{:.0} pkt/s on all CPUs = {:.0} % of \
         the bare forwarder's unpaced {:.0} pkt/s",
        c.sfu_us_per_packet,
        c.baseline_us_per_packet,
        c.cost_fraction * 100.0,
        c.sfu_projected_pps,
        c.ceiling_fraction * 100.0,
        c.baseline_ceiling_pps
    );
}

fn print_capacity(r: &CapacityReport) {
    println!(
        "  {:>5} {:>8} {:>8} {:>10} {:>8} {:>7} {:>8} {:>8} {:>8}  result",
        "step", "value", "streams", "pkt/s", "Mbit/s", "loss%", "p99 ms", "srv cpu", "cli cpu"
    );
    for s in &r.steps {
        println!(
            "  {:>5} {:>8} {:>8} {:>10.0} {:>8.1} {:>7.2} {:>8.1} {:>8} {:>7.0}%  {}",
            s.step,
            s.value,
            s.streams,
            s.egress_pps,
            s.egress_mbps,
            s.loss_percent,
            s.latency_ms_p99,
            s.server_cpu_percent
                .map_or("-".to_owned(), |c| format!("{c:.0}%")),
            s.client_cpu_percent,
            s.reason.as_deref().unwrap_or("ok")
        );
    }
    println!("  {}", r.verdict);
}

/// Point at warnings and errors the spawned server logged.
fn report_server_log(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
        .collect();
    if !lines.is_empty() {
        eprintln!(
            "the server logged {} warning/error line(s) ({}); first ones:",
            lines.len(),
            path.display()
        );
        for l in lines.iter().take(5) {
            eprintln!("  {l}");
        }
    }
}

fn write_json(args: &Args, out: &Output) -> Result<(), String> {
    let Some(path) = &args.json else {
        return Ok(());
    };
    let text = serde_json::to_string_pretty(out).map_err(|e| format!("JSON: {e}"))?;
    let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let mut v = vec!["switchboard-loadtest"];
        v.extend_from_slice(args);
        settings(&Args::try_parse_from(v).map_err(|e| e.to_string())?)
    }

    #[test]
    fn bitrates() {
        assert_eq!(parse_bitrate("2500000"), Ok(2_500_000));
        assert_eq!(parse_bitrate("2500k"), Ok(2_500_000));
        assert_eq!(parse_bitrate("2.5M"), Ok(2_500_000));
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("-1k").is_err());
    }

    #[test]
    fn defaults_and_flags() {
        let s = parse(&[]).expect("defaults");
        assert_eq!(s.scenario.url, DEFAULT_URL);
        assert_eq!((s.scenario.rooms, s.scenario.publishers_per_room), (1, 2));
        assert!(s.scenario.audio);
        assert_eq!(s.scenario.video, Some(default_video()));
        assert!(s.capacity.is_none() && !s.baseline);

        let s = parse(&[
            "--rooms",
            "3",
            "--publishers",
            "1",
            "--subscribers",
            "5",
            "--no-audio",
            "--video-bitrate",
            "1M",
            "--video-fps",
            "25",
            "--packet-size",
            "1000",
            "--duration",
            "2.5",
            "--capacity",
            "--max-loss",
            "2",
        ])
        .expect("flags");
        assert_eq!(s.scenario.subscribers_per_room, 5);
        assert!(!s.scenario.audio);
        let v = s.scenario.video.expect("video");
        assert_eq!((v.fps, v.packets_per_frame, v.packet_size), (25, 5, 1000));
        assert_eq!(s.scenario.duration, Duration::from_millis(2500));
        let c = s.capacity.expect("capacity");
        assert_eq!(
            (c.dimension, c.step, c.max_loss_percent),
            (Dimension::Subscribers, 5, 2.0)
        );

        assert!(parse(&["--audio", "--no-audio"]).is_ok_and(|s| !s.scenario.audio));
        assert!(parse(&["--no-audio", "--audio"]).is_ok_and(|s| s.scenario.audio));
        assert!(parse(&["--no-video"]).is_ok_and(|s| s.scenario.video.is_none()));
    }

    #[test]
    fn remote_targets_are_refused() {
        assert!(parse(&["--url", "ws://10.1.2.3:7880/v1/ws"]).is_err());
        assert!(parse(&["--url", "ws://[::1]:7880/v1/ws"]).is_ok());
        assert!(parse(&["--spawn-server", "x", "--url", "ws://127.0.0.1:1/"]).is_err());
    }

    #[test]
    fn shipped_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("loadtest/scenarios") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let p = path.to_str().expect("utf-8 path");
                let s = parse(&["--config", p]).unwrap_or_else(|e| panic!("{p}: {e}"));
                s.scenario.validate().unwrap_or_else(|e| panic!("{p}: {e}"));
                n += 1;
            }
        }
        assert!(n >= 4, "the standard scenarios are in {}", dir.display());
        let s =
            parse(&["--config", &format!("{}/fanout-200.toml", dir.display())]).expect("fanout");
        assert_eq!(
            (
                s.scenario.publishers_per_room,
                s.scenario.subscribers_per_room
            ),
            (1, 200)
        );
    }

    #[test]
    fn config_file_under_flags() {
        let dir = std::env::temp_dir().join(format!("sblt-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("s.toml");
        std::fs::write(
            &path,
            "# one publisher, many viewers\nrooms = 2\npublishers = 1\nsubscribers = 50\n\
             video = false\nduration = 3\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf-8 path");
        let s = parse(&["--config", p, "--subscribers", "7"]).expect("config");
        assert_eq!(s.scenario.rooms, 2);
        assert_eq!(s.scenario.subscribers_per_room, 7);
        assert!(s.scenario.video.is_none());
        assert_eq!(s.scenario.duration, Duration::from_secs(3));
        std::fs::write(&path, "bogus_key = 1\n").expect("write");
        assert!(parse(&["--config", p]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
