//! `switchboard-loadtest`: run load scenarios against a Switchboard server on this machine, find
//! its capacity, or measure the kernel-only forwarding ceiling. See `docs/benchmarks.md`.
//!
//! Only loopback targets are accepted: this tool generates real load and must never be pointed
//! at somebody else's server.
//!
//! This file starts the run; `args.rs` turns flags and the `--config` file into [`Settings`],
//! `units.rs` parses bit rates, durations and shares, `spawned_server.rs` starts and stops a
//! server for `--spawn-server`, and `output.rs` prints the results and writes `--json`.

mod args;
mod output;
mod spawned_server;
mod units;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use switchboard_loadtest::baseline::{run_baseline, BaselineOptions};
use switchboard_loadtest::capacity::run_capacity;
use switchboard_loadtest::scenario::{run_scenario, Progress};
use switchboard_loadtest::soak::{run_soak, SoakSample};

use args::{settings, Args, Settings};
use output::{compare, print_capacity, print_comparison, write_json, Output};
use spawned_server::{report_server_log, SpawnedServer};

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
            return write_json(args.json.as_deref(), &out);
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
            if let Some(soak) = &mut settings.soak {
                soak.scenario.url = s.url.clone();
                soak.scenario.server_pid = Some(s.pid());
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
            if let Some(soak) = &settings.soak {
                let on_sample = |s: &SoakSample| {
                    if !quiet {
                        eprintln!("{}", s.row());
                    }
                };
                if !quiet {
                    eprintln!("{}", SoakSample::header());
                }
                let report = run_soak(soak, Some(&on_sample))
                    .await
                    .map_err(|e| e.to_string())?;
                print!("{}", report.table());
                out.soak = Some(report);
            } else if let Some(copts) = &settings.capacity {
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
    write_json(args.json.as_deref(), &out)?;
    match &out.soak {
        Some(soak) if soak.failed => Err(format!("the soak failed: {}", soak.failure.join("; "))),
        _ => Ok(()),
    }
}
