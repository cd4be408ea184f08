//! The kernel-only ceiling: a bare UDP forwarder in this process. Sender sockets send datagrams
//! of the scenario's sizes and rates to a forwarder socket, which re-sends every datagram to
//! `fanout` receiver sockets — no ICE, DTLS, SRTP, RTP or bookkeeping. What it costs per egress
//! packet (and how many it can move when the senders are not paced) is the floor any SFU on
//! this machine sits on; the SFU's figure can then be stated as a fraction of it.
//!
//! Threads (named, so their CPU shows in `/proc/self/task/*/stat`): `bl-send` paces all sender
//! sockets, `bl-fwd-N` are the forwarders (one socket each, senders spread over them, like the
//! server's shards), `bl-recv` drains the receiver sockets (a current-thread tokio runtime).
//! Plain `send_to`/`recv_from`, one syscall a datagram: `sendmmsg` would need `unsafe` FFI and
//! saves only 7–17 % (see the performance notes).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

use crate::procstat::{self, ThreadCpu};
use crate::scenario::{video_pps, Scenario, AUDIO_PAYLOAD, AUDIO_PPS};

/// Kernel socket buffers asked for (the kernel caps them at net.core.{r,w}mem_max).
const SOCKET_BUFFER: usize = 4 << 20;
/// Warm-up before the measurement window.
const WARMUP: Duration = Duration::from_millis(500);
/// Upper bound on sockets (senders + receivers) of one run.
const MAX_SOCKETS: usize = 4000;

/// One periodic stream of a sender: `burst` datagrams of `size` bytes, `pps` datagrams a second
/// on average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StreamShape {
    pub pps: f64,
    pub burst: usize,
    pub size: usize,
}

/// The baseline's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineOptions {
    /// Sender sockets (one per publisher).
    pub senders: usize,
    /// Receivers each datagram is re-sent to.
    pub fanout: usize,
    /// Forwarder threads/sockets.
    pub forwarders: usize,
    /// What every sender sends.
    pub streams: Vec<StreamShape>,
    /// Measurement window.
    pub duration: Duration,
    /// `false`: senders send as fast as they can (the forwarders' ceiling).
    pub paced: bool,
}

impl BaselineOptions {
    /// The same shape as a scenario: a sender per publisher with its audio and video streams,
    /// each datagram re-sent to as many receivers as a publisher track has there.
    pub fn for_scenario(sc: &Scenario, forwarders: usize, paced: bool) -> Self {
        let mut streams = Vec::new();
        if sc.audio {
            streams.push(StreamShape {
                pps: AUDIO_PPS,
                burst: 1,
                size: AUDIO_PAYLOAD,
            });
        }
        if let Some(v) = &sc.video {
            streams.push(StreamShape {
                pps: video_pps(v),
                burst: v.packets_per_frame as usize,
                size: v.packet_size,
            });
        }
        BaselineOptions {
            senders: sc.rooms * sc.publishers_per_room,
            fanout: sc.publishers_per_room.saturating_sub(1) + sc.subscribers_per_room,
            forwarders: forwarders.max(1),
            streams,
            duration: sc.duration,
            paced,
        }
    }

    /// Datagrams per second all senders offer when paced.
    pub fn offered_pps(&self) -> f64 {
        self.senders as f64 * self.streams.iter().map(|s| s.pps).sum::<f64>()
    }
}

/// What the baseline measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineReport {
    pub options: BaselineOptions,
    pub duration_s: f64,
    /// Datagrams the senders sent per second.
    pub ingress_pps: f64,
    /// Datagrams the forwarders sent per second (ingress × fanout when nothing is dropped).
    pub forwarded_pps: f64,
    /// Datagrams the receivers got per second.
    pub egress_pps: f64,
    pub egress_mbps: f64,
    /// (forwarded − received) / forwarded, percent.
    pub loss_percent: f64,
    /// CPU of the forwarder threads together, percent of one core.
    pub forwarder_cpu_percent: f64,
    /// Forwarder CPU per received (egress) datagram.
    pub forwarder_us_per_egress_packet: f64,
    pub sender_cpu_percent: f64,
    pub receiver_cpu_percent: f64,
    /// The whole process (senders, forwarders, receivers).
    pub process_cpu_percent: f64,
    pub threads: Vec<ThreadCpu>,
}

impl BaselineReport {
    pub fn table(&self) -> String {
        let o = &self.options;
        format!(
            "  baseline ({}): {} senders → {} forwarder(s) → fan-out {}\n  \
             ingress {:.0} pkt/s, forwarded {:.0} pkt/s, egress {:.0} pkt/s ({:.1} Mbit/s), \
             loss {:.3} %\n  forwarder CPU {:.1} % ({:.2} µs per egress packet), senders {:.1} %, \
             receivers {:.1} %, process {:.1} %\n",
            if o.paced { "paced" } else { "unpaced ceiling" },
            o.senders,
            o.forwarders,
            o.fanout,
            self.ingress_pps,
            self.forwarded_pps,
            self.egress_pps,
            self.egress_mbps,
            self.loss_percent,
            self.forwarder_cpu_percent,
            self.forwarder_us_per_egress_packet,
            self.sender_cpu_percent,
            self.receiver_cpu_percent,
            self.process_cpu_percent,
        )
    }
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    forwarded: AtomicU64,
    received: AtomicU64,
    received_bytes: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> [u64; 4] {
        [
            self.sent.load(Ordering::Relaxed),
            self.forwarded.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
            self.received_bytes.load(Ordering::Relaxed),
        ]
    }
}

fn bind_loopback(nonblocking: bool) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(nonblocking)?;
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn spawn_named(name: String, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f)
}

/// Run the bare forwarder for `opts.duration` (plus a short warm-up). Blocking; call it from a
/// plain thread or `spawn_blocking`.
pub fn run_baseline(opts: &BaselineOptions) -> std::io::Result<BaselineReport> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    if opts.senders == 0 || opts.fanout == 0 || opts.streams.is_empty() {
        return Err(invalid(
            "baseline needs senders, streams and a fan-out".into(),
        ));
    }
    if opts.senders + opts.fanout + opts.forwarders > MAX_SOCKETS {
        return Err(invalid(format!("more than {MAX_SOCKETS} sockets")));
    }
    if opts.duration.is_zero() || opts.duration > Duration::from_secs(600) {
        return Err(invalid("baseline duration must be 1 s..=10 min".into()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let max_size = opts.streams.iter().map(|s| s.size).max().unwrap_or(1200);

    // Receivers.
    let receivers: Vec<UdpSocket> = (0..opts.fanout)
        .map(|_| bind_loopback(true))
        .collect::<Result<_, _>>()?;
    let receiver_addrs: Vec<SocketAddr> = receivers
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    // Forwarders.
    let forwarders: Vec<UdpSocket> = (0..opts.forwarders.max(1))
        .map(|_| bind_loopback(false))
        .collect::<Result<_, _>>()?;
    let forwarder_addrs: Vec<SocketAddr> = forwarders
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    // Senders, spread over the forwarders.
    let senders: Vec<(UdpSocket, SocketAddr)> = (0..opts.senders)
        .map(|i| bind_loopback(false).map(|s| (s, forwarder_addrs[i % forwarder_addrs.len()])))
        .collect::<Result<_, _>>()?;

    let mut threads = Vec::new();
    {
        let stop = stop.clone();
        let counters = counters.clone();
        threads.push(spawn_named("bl-recv".into(), move || {
            receive_all(receivers, max_size, &stop, &counters)
        })?);
    }
    for (i, socket) in forwarders.into_iter().enumerate() {
        let stop = stop.clone();
        let counters = counters.clone();
        let targets = receiver_addrs.clone();
        threads.push(spawn_named(format!("bl-fwd-{i}"), move || {
            forward(&socket, &targets, max_size, &stop, &counters)
        })?);
    }
    {
        let stop = stop.clone();
        let counters = counters.clone();
        let streams = opts.streams.clone();
        let paced = opts.paced;
        threads.push(spawn_named("bl-send".into(), move || {
            send(&senders, &streams, paced, &stop, &counters)
        })?);
    }

    std::thread::sleep(WARMUP);
    let before = counters.snapshot();
    let proc_before = procstat::sample_process(None, true)?;
    std::thread::sleep(opts.duration);
    let after = counters.snapshot();
    let proc_after = procstat::sample_process(None, true)?;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }

    let secs = proc_after
        .at
        .saturating_duration_since(proc_before.at)
        .as_secs_f64();
    let d = |i: usize| after[i].saturating_sub(before[i]) as f64;
    let usage = procstat::cpu_between(&proc_before, &proc_after);
    let cpu_of = |prefix: &str| -> f64 {
        usage
            .threads
            .iter()
            .filter(|t| t.name.starts_with(prefix))
            .map(|t| t.cpu_percent)
            .sum()
    };
    let forwarder_cpu = cpu_of("bl-fwd");
    let egress = d(2);
    Ok(BaselineReport {
        options: opts.clone(),
        duration_s: secs,
        ingress_pps: d(0) / secs,
        forwarded_pps: d(1) / secs,
        egress_pps: egress / secs,
        egress_mbps: d(3) * 8.0 / 1e6 / secs,
        loss_percent: if d(1) > 0.0 {
            ((d(1) - egress).max(0.0)) * 100.0 / d(1)
        } else {
            0.0
        },
        forwarder_cpu_percent: forwarder_cpu,
        forwarder_us_per_egress_packet: if egress > 0.0 {
            forwarder_cpu / 100.0 * secs * 1e6 / egress
        } else {
            0.0
        },
        sender_cpu_percent: cpu_of("bl-send"),
        receiver_cpu_percent: cpu_of("bl-recv"),
        process_cpu_percent: usage.cpu_percent,
        threads: usage
            .threads
            .into_iter()
            .filter(|t| t.name.starts_with("bl-"))
            .collect(),
    })
}

/// Pace every sender's streams (or blast them when `paced` is false).
fn send(
    senders: &[(UdpSocket, SocketAddr)],
    streams: &[StreamShape],
    paced: bool,
    stop: &AtomicBool,
    counters: &Counters,
) {
    let max_size = streams.iter().map(|s| s.size).max().unwrap_or(1200);
    let mut buf = vec![0u8; max_size];
    let mut counter = 0u64;
    let mut burst = |sender: usize, stream: &StreamShape, buf: &mut [u8]| {
        let (socket, to) = &senders[sender];
        let mut sent = 0;
        for _ in 0..stream.burst {
            buf[..8].copy_from_slice(&counter.to_be_bytes());
            counter += 1;
            if socket.send_to(&buf[..stream.size.max(8)], to).is_ok() {
                sent += 1;
            }
        }
        counters.sent.fetch_add(sent, Ordering::Relaxed);
    };
    if !paced {
        while !stop.load(Ordering::Relaxed) {
            for i in 0..senders.len() {
                for s in streams {
                    burst(i, s, &mut buf);
                }
            }
        }
        return;
    }
    // (due, sender, stream): a min-heap of the next burst of every stream. Start times are
    // spread over one period so the senders do not all fire at once.
    let start = Instant::now();
    let mut heap = BinaryHeap::new();
    let periods: Vec<Duration> = streams
        .iter()
        .map(|s| Duration::from_secs_f64(s.burst as f64 / s.pps.max(0.001)))
        .collect();
    for i in 0..senders.len() {
        for (j, period) in periods.iter().enumerate() {
            let offset = period.mul_f64(i as f64 / senders.len() as f64);
            heap.push(Reverse((start + offset, i, j)));
        }
    }
    while !stop.load(Ordering::Relaxed) {
        let Some(Reverse((due, i, j))) = heap.pop() else {
            break;
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
            heap.push(Reverse((due, i, j)));
            continue;
        }
        burst(i, &streams[j], &mut buf);
        // Behind by more than a period: skip ahead rather than burst to catch up.
        let next = (due + periods[j]).max(now - periods[j]);
        heap.push(Reverse((next, i, j)));
    }
}

/// Re-send every datagram to every target.
fn forward(
    socket: &UdpSocket,
    targets: &[SocketAddr],
    max_size: usize,
    stop: &AtomicBool,
    counters: &Counters,
) {
    let _ = socket.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; max_size.max(2048)];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, _)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let mut sent = 0;
        for t in targets {
            if socket.send_to(&buf[..n], t).is_ok() {
                sent += 1;
            }
        }
        counters.forwarded.fetch_add(sent, Ordering::Relaxed);
    }
}

/// Drain every receiver socket until `stop`.
fn receive_all(sockets: Vec<UdpSocket>, max_size: usize, stop: &AtomicBool, counters: &Counters) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        let shared = Arc::new(Counters::default());
        for s in sockets {
            let Ok(socket) = tokio::net::UdpSocket::from_std(s) else {
                continue;
            };
            let shared = shared.clone();
            tasks.spawn(async move {
                let mut buf = vec![0u8; max_size.max(2048)];
                while let Ok(n) = socket.recv(&mut buf).await {
                    shared.received.fetch_add(1, Ordering::Relaxed);
                    shared.received_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }
        // Publish the shared counts every 10 ms until told to stop.
        let mut last = [0u64; 2];
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = [
                shared.received.load(Ordering::Relaxed),
                shared.received_bytes.load(Ordering::Relaxed),
            ];
            counters
                .received
                .fetch_add(now[0] - last[0], Ordering::Relaxed);
            counters
                .received_bytes
                .fetch_add(now[1] - last[1], Ordering::Relaxed);
            last = now;
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        tasks.abort_all();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_everything_at_a_low_rate() {
        let opts = BaselineOptions {
            senders: 2,
            fanout: 3,
            forwarders: 1,
            streams: vec![StreamShape {
                pps: 200.0,
                burst: 4,
                size: 1200,
            }],
            duration: Duration::from_secs(1),
            paced: true,
        };
        assert_eq!(opts.offered_pps(), 400.0);
        let r = run_baseline(&opts).expect("baseline runs");
        assert!(r.ingress_pps > 200.0, "{r:?}");
        assert!(r.egress_pps > 2.0 * r.ingress_pps, "{r:?}");
        assert!(r.loss_percent < 5.0, "{r:?}");
        assert!(r.threads.iter().any(|t| t.name == "bl-fwd-0"), "{r:?}");
    }

    #[test]
    fn shape_follows_the_scenario() {
        let mut sc = Scenario::new("ws://127.0.0.1:1/v1/ws");
        sc.rooms = 3;
        sc.publishers_per_room = 4;
        sc.subscribers_per_room = 2;
        let o = BaselineOptions::for_scenario(&sc, 2, true);
        assert_eq!((o.senders, o.fanout, o.forwarders), (12, 5, 2));
        assert_eq!(o.streams.len(), 2);
        assert_eq!(o.offered_pps(), 12.0 * 320.0);
    }
}
