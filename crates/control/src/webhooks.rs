//! Delivery of webhook events and the admission check: HTTP calls to the application, kept off
//! the media path. Shards hand notifications to a bounded queue; a task here turns them into
//! signed POSTs with retries. A slow or failing endpoint only fills that queue (new events are
//! then dropped and counted), it never stalls a shard or a signalling connection.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use switchboard_core::Notification;
use switchboard_protocol::webhook::{AdmissionRequest, WebhookEvent, WebhookPayload};
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, warn};

use crate::config::{AdmissionConfig, WebhookConfig};
use crate::metrics::Metrics;

/// Deliveries in flight at once (each may be waiting out a retry backoff).
const MAX_IN_FLIGHT: usize = 256;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"): the `X-Switchboard-Signature`
/// header. Signing the timestamp with the body lets receivers refuse replays.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256=");
    for b in tag.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Where events become webhook deliveries: the runtime's notifications and the exchange's
/// presence and call events share one queue and one id sequence.
#[derive(Debug, Clone)]
pub(crate) struct WebhookSink {
    queue: Option<mpsc::Sender<WebhookPayload>>,
    seq: Arc<std::sync::atomic::AtomicU64>,
    boot: u64,
    metrics: Arc<Metrics>,
}

impl WebhookSink {
    /// Queue `event` for delivery; a full queue drops it (counted).
    pub fn fire(&self, event: WebhookEvent) {
        let Some(tx) = &self.queue else { return };
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let payload = WebhookPayload {
            id: format!("{:x}-{seq}", self.boot),
            at_ms: unix_ms(),
            event,
        };
        if tx.try_send(payload).is_err() {
            self.metrics
                .webhook_deliveries
                .with_label_values(&["dropped"])
                .inc();
        }
    }
}

/// Start webhook delivery (when URLs are configured) and return the sink events go to.
pub(crate) fn start(
    config: WebhookConfig,
    secret: String,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
) -> WebhookSink {
    let queue = (!config.urls.is_empty()).then(|| {
        let (tx, rx) = mpsc::channel::<WebhookPayload>(config.queue.max(1));
        tokio::spawn(deliver_all(
            rx,
            config.clone(),
            secret,
            http,
            metrics.clone(),
        ));
        tx
    });
    WebhookSink {
        queue,
        seq: Arc::default(),
        boot: unix_ms(),
        metrics,
    }
}

/// Consume the runtime's notifications: metrics for connect times, webhooks for events.
pub(crate) fn spawn_notifications(
    mut notifications: mpsc::Receiver<Notification>,
    sink: WebhookSink,
) {
    tokio::spawn(async move {
        while let Some(note) = notifications.recv().await {
            match note {
                Notification::Connected { after, .. } => {
                    sink.metrics.join_to_media.observe(after.as_secs_f64());
                }
                Notification::Event(event) => sink.fire(event),
            }
        }
    });
}

async fn deliver_all(
    mut queue: mpsc::Receiver<WebhookPayload>,
    config: WebhookConfig,
    secret: String,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let secret: Arc<str> = secret.into();
    while let Some(payload) = queue.recv().await {
        let body = match serde_json::to_vec(&payload) {
            Ok(b) => Arc::new(b),
            Err(e) => {
                warn!(error = %e, "could not serialize a webhook event");
                continue;
            }
        };
        let name = payload.event.name();
        for url in &config.urls {
            // Waiting here is the back-pressure: the bounded queue in front fills, not memory.
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let job = Delivery {
                http: http.clone(),
                url: url.clone(),
                secret: secret.clone(),
                body: body.clone(),
                event: name,
                id: payload.id.clone(),
                attempts: config.max_attempts.max(1),
                timeout: Duration::from_millis(config.timeout_ms.max(1)),
                metrics: metrics.clone(),
            };
            tokio::spawn(async move {
                job.run().await;
                drop(permit);
            });
        }
    }
}

struct Delivery {
    http: reqwest::Client,
    url: String,
    secret: Arc<str>,
    body: Arc<Vec<u8>>,
    event: &'static str,
    id: String,
    attempts: u32,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Delivery {
    async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=self.attempts {
            let timestamp = unix_ms() / 1000;
            let result = self
                .http
                .post(&self.url)
                .timeout(self.timeout)
                .header("content-type", "application/json")
                .header("x-switchboard-event", self.event)
                .header("x-switchboard-delivery", &self.id)
                .header("x-switchboard-timestamp", timestamp.to_string())
                .header(
                    "x-switchboard-signature",
                    signature(&self.secret, timestamp, &self.body),
                )
                .body(self.body.as_ref().clone())
                .send()
                .await;
            match result {
                Ok(resp) if resp.status().is_success() => {
                    self.metrics
                        .webhook_deliveries
                        .with_label_values(&["delivered"])
                        .inc();
                    return;
                }
                Ok(resp) => {
                    debug!(url = %self.url, status = %resp.status(), attempt, "webhook refused")
                }
                Err(e) => debug!(url = %self.url, error = %e, attempt, "webhook failed"),
            }
            if attempt < self.attempts {
                self.metrics
                    .webhook_deliveries
                    .with_label_values(&["retried"])
                    .inc();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        warn!(url = %self.url, event = self.event, id = %self.id, "webhook given up after all attempts");
        self.metrics
            .webhook_deliveries
            .with_label_values(&["failed"])
            .inc();
    }
}

/// Ask the application whether to admit a join: any 2xx admits. The error says why not.
pub(crate) async fn admission(
    http: &reqwest::Client,
    config: &AdmissionConfig,
    request: &AdmissionRequest,
) -> Result<(), String> {
    ask_application(http, config, request, "join").await
}

/// With `every_signal`: ask before acting on one later client message.
pub(crate) async fn admission_signal(
    http: &reqwest::Client,
    config: &AdmissionConfig,
    request: &switchboard_protocol::webhook::SignalCheck,
) -> Result<(), String> {
    ask_application(http, config, request, "message").await
}

async fn ask_application(
    http: &reqwest::Client,
    config: &AdmissionConfig,
    request: &impl serde::Serialize,
    what: &str,
) -> Result<(), String> {
    let resp = http
        .post(&config.url)
        .timeout(Duration::from_millis(config.timeout_ms.max(1)))
        .json(request)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "the admission check did not answer in time".to_owned()
            } else {
                "the admission check could not be reached".to_owned()
            }
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "the application refused this {what} (admission check answered {})",
            resp.status().as_u16()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_implementation() {
        // Python: "sha256=" + hmac.new(b"whsec", b"1700000000." + body, sha256).hexdigest()
        let body = br#"{"event":"roomStarted","room":"r"}"#;
        assert_eq!(
            signature("whsec", 1_700_000_000, body),
            "sha256=fe4d6d52594c0ecfbbdb5f523ea0f4c35e52ae140b8d6a9e7b7d4a75ece70c49"
        );
    }
}
