//! What the run prints and writes: the comparison with the bare forwarder, the capacity table,
//! and the `--json` file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use switchboard_loadtest::baseline::BaselineReport;
use switchboard_loadtest::capacity::CapacityReport;
use switchboard_loadtest::scenario::Report;
use switchboard_loadtest::soak::SoakReport;

/// Everything the run produced, for `--json`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Output {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) report: Option<Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) capacity: Option<CapacityReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) baseline_paced: Option<BaselineReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) baseline_ceiling: Option<BaselineReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) comparison: Option<Comparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) soak: Option<SoakReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) server_log: Option<PathBuf>,
}

/// The SFU against the bare forwarder.
#[derive(Debug, Serialize)]
pub(crate) struct Comparison {
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

pub(crate) fn compare(
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

pub(crate) fn print_comparison(c: &Comparison) {
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

pub(crate) fn print_capacity(r: &CapacityReport) {
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

pub(crate) fn write_json(path: Option<&Path>, out: &Output) -> Result<(), String> {
    let Some(path) = path else {
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
