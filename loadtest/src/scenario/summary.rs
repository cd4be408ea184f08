//! The measurement window's totals, the participants' counters and the CPU samples turned into
//! a [`Report`], with the warnings that say when the figures describe something other than the
//! server (a saturated load tester, a busy machine, refused joins).

use super::collect::{loss_percent, pct_f64, rate, Delta};
use super::config::video_pps;
use super::report::{
    DataReport, ParticipantReport, Report, ScenarioInfo, ServerReport, TrackReport, VideoInfo,
};
use super::runner::Runner;
use crate::procstat::{self, CpuUsage, ProcSample};
use crate::stats::percentile;

/// How many server threads the report lists.
const TOP_THREADS: usize = 8;
/// CPU of other programs (percent of one core) above which a run is marked as disturbed.
const OTHER_LOAD: f64 = 15.0;
/// Publishers sending less than this fraction of their schedule: the load tester fell behind.
const SENT_SHORTFALL: f64 = 0.95;
/// Client CPU above this fraction of its threads' capacity marks the run as client-bound.
const SATURATION: f64 = 0.85;

impl Runner<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn report(
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
            streams_received += m.tally.window.values().filter(|(p, _)| *p > 0).count();
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
                    .tally
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
        let data = sc.data.map(|d| {
            let mut lat = total.data_latency_us.clone();
            lat.sort_unstable();
            DataReport {
                per_publisher: d.per_second,
                size: d.size,
                sent_per_s: rate(total.data_sent as f64, window_s),
                received_per_s: rate(total.data_received as f64, window_s),
                expected_per_s: sc.expected_data_per_second(),
                lost: total.data_lost,
                loss_percent: loss_percent(total.data_received, total.data_lost),
                latency_ms_p50: ms(percentile(&lat, 50.0)),
                latency_ms_p99: ms(percentile(&lat, 99.0)),
                latency_ms_max: ms(lat.last().copied().unwrap_or(0)),
            }
        });
        Report {
            data,
            scenario: ScenarioInfo {
                url: sc.url.clone(),
                rooms: sc.rooms,
                publishers_per_room: sc.publishers_per_room,
                subscribers_per_room: sc.subscribers_per_room,
                audio: sc.audio,
                red: sc.audio && sc.red,
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
            recovered: total.recovered,
            residual_loss_percent: loss_percent(
                total.packets + total.recovered,
                total.lost.saturating_sub(total.recovered),
            ),
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
