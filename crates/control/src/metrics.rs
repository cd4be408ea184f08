//! Prometheus metrics at `/metrics`.
//!
//! Shards keep plain counters on their own threads (`ShardStats`, copied out every ~100 ms);
//! the packet path never touches a shared metric. A scrape folds the shards' counters into the
//! registry; control-plane events (WebSocket connections, join outcomes, webhook deliveries,
//! connect times) are recorded where they happen.

use parking_lot::Mutex;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use switchboard_core::{FailureKind, Op, ShardStats};
use switchboard_runtime::{EgressStats, MediaRuntime};

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rooms: IntGauge,
    participants: IntGauge,
    tracks: IntGauge,
    datagrams: IntCounterVec,
    bytes: IntCounterVec,
    rtp_received: IntCounter,
    rtp_forwarded: IntCounter,
    codec_refusals: IntCounter,
    layer_switches: IntCounter,
    red_in: IntCounter,
    bandwidth_pauses: IntCounter,
    dynacast: IntCounterVec,
    nacks: IntCounterVec,
    keyframe_requests: IntCounterVec,
    dropped: IntCounterVec,
    data_messages: IntCounterVec,
    participant_failures: IntCounterVec,
    shard_busy: IntCounterVec,
    udp_send_calls: IntCounterVec,
    udp_datagrams_sent: IntCounterVec,
    udp_send_dropped: IntCounterVec,
    shard_up: prometheus::IntGaugeVec,
    notifications_dropped: IntCounter,
    pub websocket_connections: IntGauge,
    /// Live WHIP and WHEP sessions, by `protocol` (`whip`, `whep`).
    pub http_sessions: prometheus::IntGaugeVec,
    /// Peers registered on `/v1/peer` (in the reconnect grace included).
    pub peers_registered: IntGauge,
    /// Calls that have not ended.
    pub calls_active: IntGauge,
    /// Mesh rooms with at least one member.
    pub mesh_rooms: IntGauge,
    pub join_outcomes: IntCounterVec,
    pub join_to_media: Histogram,
    pub webhook_deliveries: IntCounterVec,
    pub messages_rate_limited: IntCounter,
    pub connections_refused: IntCounter,
    pub slow_clients_dropped: IntCounter,
    last: Mutex<Folded>,
}

#[derive(Debug, Default)]
struct Folded {
    stats: ShardStats,
    busy_us: Vec<u64>,
    egress: Vec<EgressStats>,
    notifications_dropped: u64,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(g.clone()))
        .expect("metric names are unique");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let metrics = Metrics::unlabelled();
        // Export every label value from the start, so dashboards and alerts see zeros rather than
        // missing series.
        for result in ["delivered", "retried", "failed", "dropped"] {
            metrics.webhook_deliveries.with_label_values(&[result]);
        }
        metrics.join_outcomes.with_label_values(&["ok"]);
        for kind in FailureKind::ALL {
            for op in Op::ALL {
                metrics
                    .participant_failures
                    .with_label_values(&[kind.label(), op.label()]);
            }
        }
        metrics
    }

    fn unlabelled() -> Metrics {
        let r = Registry::new();
        let join_to_media = Histogram::with_opts(
            HistogramOpts::new(
                "switchboard_join_to_media_seconds",
                "Time from a join reaching its shard to ICE+DTLS connected.",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]),
        )
        .expect("static metric definition");
        r.register(Box::new(join_to_media.clone()))
            .expect("metric names are unique");
        Metrics {
            rooms: gauge(&r, "switchboard_rooms", "Rooms with at least one participant."),
            participants: gauge(&r, "switchboard_participants", "Participants in rooms."),
            tracks: gauge(&r, "switchboard_tracks", "Published tracks."),
            datagrams: counter_vec(
                &r,
                "switchboard_datagrams_total",
                "UDP datagrams received (in) and sent (out) by the media shards.",
                &["direction"],
            ),
            bytes: counter_vec(
                &r,
                "switchboard_bytes_total",
                "UDP payload bytes received (in) and sent (out) by the media shards.",
                &["direction"],
            ),
            rtp_received: counter(
                &r,
                "switchboard_rtp_received_total",
                "RTP packets received from publishers.",
            ),
            rtp_forwarded: counter(
                &r,
                "switchboard_rtp_forwarded_total",
                "RTP packets written to subscribers (one per copy).",
            ),
            codec_refusals: counter(
                &r,
                "switchboard_codec_refusals_total",
                "Tracks not forwarded to a subscriber because its answer did not accept the \
                 codec the publisher sends (one per track and time it was offered).",
            ),
            layer_switches: counter(
                &r,
                "switchboard_layer_switches_total",
                "Times a subscriber's copy of a simulcast track moved to another layer (at a \
                 keyframe of the new layer).",
            ),
            red_in: counter(
                &r,
                "switchboard_red_packets_total",
                "RED (audio/red) packets received from publishers: audio that carries a copy of \
                 the frame before it.",
            ),
            bandwidth_pauses: counter(
                &r,
                "switchboard_bandwidth_pauses_total",
                "Times a video track was paused for one subscriber because its link could not \
                 carry it (trackPaused).",
            ),
            dynacast: counter_vec(
                &r,
                "switchboard_dynacast_layers_total",
                "Simulcast encodings publishers were told to stop because nobody receives them \
                 (stopped), or to start again (started): dynacast.",
                &["change"],
            ),
            nacks: counter_vec(
                &r,
                "switchboard_nacks_total",
                "NACKs received from subscribers (received) and sent to publishers (sent).",
                &["direction"],
            ),
            keyframe_requests: counter_vec(
                &r,
                "switchboard_keyframe_requests_total",
                "PLI/FIR: received from subscribers, sent to publishers, coalesced by the throttle.",
                &["kind"],
            ),
            dropped: counter_vec(
                &r,
                "switchboard_dropped_packets_total",
                "Datagrams or RTP copies not processed or not forwarded, by reason.",
                &["reason"],
            ),
            data_messages: counter_vec(
                &r,
                "switchboard_data_messages_total",
                "Messages on data channels the SFU relays: received from clients, relayed (one \
                 per copy), and dropped by reason (invalid, rate_limited, no_channel, \
                 backpressure).",
                &["outcome"],
            ),
            participant_failures: counter_vec(
                &r,
                "switchboard_participant_failures_total",
                "Participants removed because their media engine failed: cause panic or error, \
                 during which operation.",
                &["cause", "during"],
            ),
            shard_up: {
                let g = prometheus::IntGaugeVec::new(
                    Opts::new(
                        "switchboard_shard_up",
                        "1 while the media shard's thread runs, 0 once it has died.",
                    ),
                    &["shard"],
                )
                .expect("static metric definition");
                r.register(Box::new(g.clone()))
                    .expect("metric names are unique");
                g
            },
            shard_busy: counter_vec(
                &r,
                "switchboard_shard_busy_microseconds_total",
                "Time each shard's loop spent working rather than waiting.",
                &["shard"],
            ),
            udp_send_calls: counter_vec(
                &r,
                "switchboard_udp_send_calls_total",
                "System calls each shard made to send media datagrams (one carries a run of them \
                 to one client with UDP GSO).",
                &["shard"],
            ),
            udp_datagrams_sent: counter_vec(
                &r,
                "switchboard_udp_datagrams_sent_total",
                "Datagrams each shard's send calls carried (over send calls: datagrams per call).",
                &["shard"],
            ),
            udp_send_dropped: counter_vec(
                &r,
                "switchboard_udp_send_dropped_total",
                "Datagrams a shard could not send: refused by the kernel (full send buffer, \
                 unreachable client) or for a closed or full ICE-TCP connection.",
                &["shard"],
            ),
            notifications_dropped: counter(
                &r,
                "switchboard_notifications_dropped_total",
                "Shard notifications lost to a full queue (webhook events, connect times).",
            ),
            websocket_connections: gauge(
                &r,
                "switchboard_websocket_connections",
                "Open signalling WebSockets.",
            ),
            peers_registered: gauge(
                &r,
                "switchboard_peers_registered",
                "Peers registered on the peer connection (presence), reconnecting ones included.",
            ),
            calls_active: gauge(&r, "switchboard_calls_active", "Calls that have not ended."),
            mesh_rooms: gauge(&r, "switchboard_mesh_rooms", "Mesh rooms with members."),
            http_sessions: {
                let g = prometheus::IntGaugeVec::new(
                    Opts::new(
                        "switchboard_http_sessions",
                        "Live WHIP publishers and WHEP players (participants without a WebSocket).",
                    ),
                    &["protocol"],
                )
                .expect("static metric definition");
                r.register(Box::new(g.clone()))
                    .expect("metric names are unique");
                g
            },
            join_outcomes: counter_vec(
                &r,
                "switchboard_joins_total",
                "Join requests by outcome (ok or the error code).",
                &["outcome"],
            ),
            join_to_media,
            webhook_deliveries: counter_vec(
                &r,
                "switchboard_webhook_deliveries_total",
                "Webhook POSTs: delivered, retried, failed after all attempts, dropped (queue full).",
                &["result"],
            ),
            messages_rate_limited: counter(
                &r,
                "switchboard_messages_rate_limited_total",
                "Data messages dropped because their connection exceeded its rate.",
            ),
            connections_refused: counter(
                &r,
                "switchboard_connections_refused_total",
                "Signalling connections refused at the total or per-address limit.",
            ),
            slow_clients_dropped: counter(
                &r,
                "switchboard_slow_clients_dropped_total",
                "Connections dropped because the client stopped reading (send timeout).",
            ),
            registry: r,
            last: Mutex::new(Folded::default()),
        }
    }

    /// Fold the shards' counters in and render the text exposition format.
    pub fn render(&self, runtime: &MediaRuntime) -> String {
        self.fold(runtime);
        let mut out = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut out) {
            return format!("# encoding metrics failed: {e}\n");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    fn fold(&self, runtime: &MediaRuntime) {
        let now = ShardStats::sum(&runtime.stats());
        let busy: Vec<u64> = runtime
            .busy_time()
            .iter()
            .map(|d| d.as_micros() as u64)
            .collect();
        let egress = runtime.egress();
        let dropped_notes = runtime.notifications_dropped();
        let mut last = self.last.lock();
        let was = last.stats;
        let d = |new: u64, old: u64| new.saturating_sub(old);
        self.rooms.set(now.rooms as i64);
        self.participants.set(now.participants as i64);
        self.tracks.set(now.tracks as i64);
        self.datagrams
            .with_label_values(&["in"])
            .inc_by(d(now.datagrams_in, was.datagrams_in));
        self.datagrams
            .with_label_values(&["out"])
            .inc_by(d(now.datagrams_out, was.datagrams_out));
        self.bytes
            .with_label_values(&["in"])
            .inc_by(d(now.bytes_in, was.bytes_in));
        self.bytes
            .with_label_values(&["out"])
            .inc_by(d(now.bytes_out, was.bytes_out));
        self.rtp_received.inc_by(d(now.rtp_in, was.rtp_in));
        self.rtp_forwarded
            .inc_by(d(now.rtp_forwarded, was.rtp_forwarded));
        self.codec_refusals
            .inc_by(d(now.codec_refusals, was.codec_refusals));
        self.layer_switches
            .inc_by(d(now.layer_switches, was.layer_switches));
        self.red_in.inc_by(d(now.red_in, was.red_in));
        self.bandwidth_pauses
            .inc_by(d(now.bandwidth_pauses, was.bandwidth_pauses));
        self.dynacast
            .with_label_values(&["stopped"])
            .inc_by(d(now.dynacast_stops, was.dynacast_stops));
        self.dynacast
            .with_label_values(&["started"])
            .inc_by(d(now.dynacast_starts, was.dynacast_starts));
        self.nacks
            .with_label_values(&["received"])
            .inc_by(d(now.nacks_received, was.nacks_received));
        self.nacks
            .with_label_values(&["sent"])
            .inc_by(d(now.nacks_sent, was.nacks_sent));
        for (kind, new, old) in [
            (
                "received",
                now.keyframe_requests_received,
                was.keyframe_requests_received,
            ),
            (
                "sent",
                now.keyframe_requests_sent,
                was.keyframe_requests_sent,
            ),
            (
                "coalesced",
                now.keyframe_requests_coalesced,
                was.keyframe_requests_coalesced,
            ),
        ] {
            self.keyframe_requests
                .with_label_values(&[kind])
                .inc_by(d(new, old));
        }
        for (reason, new, old) in [
            ("malformed", now.dropped_malformed, was.dropped_malformed),
            (
                "unknown_source",
                now.dropped_unknown_source,
                was.dropped_unknown_source,
            ),
            (
                "unauthenticated",
                now.dropped_unauthenticated,
                was.dropped_unauthenticated,
            ),
            (
                "awaiting_keyframe",
                now.dropped_awaiting_keyframe,
                was.dropped_awaiting_keyframe,
            ),
            (
                "before_switch",
                now.dropped_before_switch,
                was.dropped_before_switch,
            ),
            ("no_codec", now.dropped_no_codec, was.dropped_no_codec),
            ("unrouted", now.dropped_unrouted, was.dropped_unrouted),
            ("muted", now.dropped_muted, was.dropped_muted),
            ("paused", now.dropped_paused, was.dropped_paused),
            ("bad_red", now.dropped_bad_red, was.dropped_bad_red),
            ("path_limit", now.dropped_path_limit, was.dropped_path_limit),
            ("flood", now.dropped_flood, was.dropped_flood),
        ] {
            self.dropped
                .with_label_values(&[reason])
                .inc_by(d(new, old));
        }
        for (outcome, new, old) in [
            ("received", now.data_received, was.data_received),
            ("relayed", now.data_relayed, was.data_relayed),
            (
                "invalid",
                now.data_dropped_invalid,
                was.data_dropped_invalid,
            ),
            ("rate_limited", now.data_dropped_rate, was.data_dropped_rate),
            (
                "no_channel",
                now.data_dropped_no_channel,
                was.data_dropped_no_channel,
            ),
            (
                "backpressure",
                now.data_dropped_backpressure,
                was.data_dropped_backpressure,
            ),
        ] {
            self.data_messages
                .with_label_values(&[outcome])
                .inc_by(d(new, old));
        }
        for kind in FailureKind::ALL {
            for op in Op::ALL {
                self.participant_failures
                    .with_label_values(&[kind.label(), op.label()])
                    .inc_by(d(now.failures.get(kind, op), was.failures.get(kind, op)));
            }
        }
        for shard in 0..runtime.shard_count() {
            self.shard_up
                .with_label_values(&[&shard.to_string()])
                .set(i64::from(runtime.shard_alive(shard)));
        }
        for (i, us) in busy.iter().enumerate() {
            let old = last.busy_us.get(i).copied().unwrap_or(0);
            self.shard_busy
                .with_label_values(&[&i.to_string()])
                .inc_by(d(*us, old));
        }
        for (i, e) in egress.iter().enumerate() {
            let old = last.egress.get(i).copied().unwrap_or_default();
            let shard = i.to_string();
            self.udp_send_calls
                .with_label_values(&[&shard])
                .inc_by(d(e.send_calls, old.send_calls));
            self.udp_datagrams_sent
                .with_label_values(&[&shard])
                .inc_by(d(e.datagrams, old.datagrams));
            self.udp_send_dropped
                .with_label_values(&[&shard])
                .inc_by(d(e.dropped, old.dropped));
        }
        self.notifications_dropped
            .inc_by(d(dropped_notes, last.notifications_dropped));
        *last = Folded {
            stats: now,
            busy_us: busy,
            egress,
            notifications_dropped: dropped_notes,
        };
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
