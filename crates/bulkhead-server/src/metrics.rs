//! Operator signals: per-tenant request counters and latency histograms, refusals by reason, and the
//! node's gauges (index memory, result-cache hits, rotation progress, the SIMD instruction set), in
//! the OpenMetrics text format on their own port (`bulkhead serve --metrics-listen`), beside the
//! `/healthz` liveness probe.
//!
//! A tenant appears in labels as its short opaque uid (as in the logs), never by name; a request
//! refused before its tenant is known is counted under `tenant="none"`. Nothing of a request's
//! content becomes a label: labels are uids, operation names and reason codes from fixed sets.

use bulkhead_query::Database;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The tenant label of the operator's admin-plane calls.
pub(crate) const OPERATOR: &str = "operator";

/// The label of a request refused before its tenant was known.
pub(crate) const NO_TENANT: &str = "none";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    tenant: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    tenant: String,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    tenant: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackgroundLabels {
    task: &'static str,
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CapLabel {
    cap: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IsaLabel {
    isa: String,
}

type LatencyFamily = Family<LatencyLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// One held refusal in `bulkhead_held_refusals`, taken off when dropped (its hold ended or its
/// call went away).
pub(crate) struct HeldGauge<'m>(&'m Gauge);

impl Drop for HeldGauge<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The server's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    denials: Family<DenialLabels, Counter>,
    lockouts: Family<DenialLabels, Counter>,
    index_memory: Gauge,
    cache_hits: Gauge<u64, AtomicU64>,
    cache_misses: Gauge<u64, AtomicU64>,
    rotation_done: Family<TenantLabel, Gauge<u64, AtomicU64>>,
    rotation_total: Family<TenantLabel, Gauge<u64, AtomicU64>>,
    background_failures: Family<BackgroundLabels, Counter>,
    held_refusals: Gauge,
    unheld_refusals: Family<CapLabel, Counter>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("bulkhead");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Calls that reached their operation, by tenant, operation and outcome (ok or a reason code)",
            requests.clone(),
        );
        let latency = LatencyFamily::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from a call's arrival to its answer, by tenant and operation",
            latency.clone(),
        );
        let denials = Family::<DenialLabels, Counter>::default();
        registry.register(
            "denials",
            "Calls refused by authentication or authorisation, by tenant (none if unknown) and reason",
            denials.clone(),
        );
        let lockouts = Family::<DenialLabels, Counter>::default();
        registry.register(
            "key_lockouts",
            "API keys locked until an operator unlocks them, by tenant and reason (burst, denials)",
            lockouts.clone(),
        );
        let index_memory = Gauge::default();
        registry.register(
            "index_memory_bytes",
            "Memory of loaded search state, all tenants (bounded by the index memory budget)",
            index_memory.clone(),
        );
        let cache_hits = Gauge::<u64, AtomicU64>::default();
        registry.register("result_cache_hits", "Searches answered from the result cache", cache_hits.clone());
        let cache_misses = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "result_cache_misses",
            "Searches the result cache could not answer",
            cache_misses.clone(),
        );
        let rotation_done = Family::<TenantLabel, Gauge<u64, AtomicU64>>::default();
        registry.register(
            "rotation_records_done",
            "Records re-sealed so far by the tenant's running key rotation",
            rotation_done.clone(),
        );
        let rotation_total = Family::<TenantLabel, Gauge<u64, AtomicU64>>::default();
        registry.register(
            "rotation_records_total",
            "Records the tenant's running key rotation re-seals in all (an estimate for automatic ones)",
            rotation_total.clone(),
        );
        let background_failures = Family::<BackgroundLabels, Counter>::default();
        registry.register(
            "background_failures",
            "Background steps (key-rotation, audit-prune) that failed for one tenant, by task and tenant; \
             the task goes on with the other tenants",
            background_failures.clone(),
        );
        let held_refusals = Gauge::default();
        registry.register(
            "held_refusals",
            "Refusals on a tenant's rate held until their turn now, all tenants (pushback)",
            held_refusals.clone(),
        );
        let unheld_refusals = Family::<CapLabel, Counter>::default();
        registry.register(
            "refusals_answered_at_once",
            "Refusals on a tenant's rate answered at once because its tenant's or its connection's \
             held refusals were at their cap, by cap (tenant, connection)",
            unheld_refusals.clone(),
        );
        let isa = Family::<IsaLabel, Gauge>::default();
        isa.get_or_create(&IsaLabel { isa: bulkhead_distance::active_isa().to_string() }).set(1);
        registry.register("simd_isa", "The SIMD instruction set the distance kernels use (value 1)", isa);
        Metrics {
            registry,
            requests,
            latency,
            denials,
            lockouts,
            index_memory,
            cache_hits,
            cache_misses,
            rotation_done,
            rotation_total,
            background_failures,
            held_refusals,
            unheld_refusals,
        }
    }

    /// Counts a refusal held until its turn while the returned guard lives.
    pub(crate) fn holding(&self) -> HeldGauge<'_> {
        self.held_refusals.inc();
        HeldGauge(&self.held_refusals)
    }

    /// Counts a refusal answered at once because `cap` (`tenant`, `connection`) was full.
    pub(crate) fn refusal_not_held(&self, cap: &'static str) {
        self.unheld_refusals.get_or_create(&CapLabel { cap }).inc();
    }

    /// Counts a background step that failed for one tenant.
    pub(crate) fn background_failure(&self, task: &'static str, tenant: String) {
        self.background_failures.get_or_create(&BackgroundLabels { task, tenant }).inc();
    }

    /// Counts a call that reached its operation.
    pub(crate) fn request(
        &self,
        tenant: String,
        operation: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        self.latency
            .get_or_create(&LatencyLabels { tenant: tenant.clone(), operation })
            .observe(took.as_secs_f64());
        self.requests.get_or_create(&RequestLabels { tenant, operation, outcome }).inc();
    }

    /// Counts a locked API key.
    pub(crate) fn lockout(&self, tenant: String, reason: &'static str) {
        self.lockouts.get_or_create(&DenialLabels { tenant, reason }).inc();
    }

    /// Counts a refused credential.
    pub(crate) fn denial(&self, tenant: String, reason: &'static str) {
        self.denials.get_or_create(&DenialLabels { tenant, reason }).inc();
    }

    /// The OpenMetrics text of every metric, with the node's gauges read now.
    pub(crate) fn render(&self, db: &Database) -> String {
        self.index_memory.set(i64::try_from(db.index_memory()).unwrap_or(i64::MAX));
        let cache = db.cache_stats();
        self.cache_hits.set(cache.hits);
        self.cache_misses.set(cache.misses);
        self.rotation_done.clear();
        self.rotation_total.clear();
        let op = db.operator();
        for tenant in op.pending_rotations().unwrap_or_default() {
            if let Ok(Some(progress)) = op.rotation_status(tenant) {
                let label = TenantLabel { tenant: tenant.short() };
                self.rotation_done.get_or_create(&label).set(progress.done);
                self.rotation_total.get_or_create(&label).set(progress.total);
            }
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        text
    }
}

/// Longest request head the metrics endpoint reads.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Answers `GET /metrics` and `GET /healthz` (`200 ok`, a liveness probe) over HTTP/1.1 on
/// `listener` until aborted, one request per connection, at most
/// [`crate::limits::MAX_METRICS_CONNECTIONS`] at once. Anything else gets 404 (or 400 if it is not a
/// request line).
pub(crate) async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, db: Arc<Database>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(crate::limits::MAX_METRICS_CONNECTIONS));
    loop {
        // A permit first, then a connection: a flood of connections waits in the kernel's backlog
        // instead of becoming tasks.
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let (metrics, db) = (Arc::clone(&metrics), Arc::clone(&db));
        tokio::spawn(async move {
            let _permit = permit;
            let mut head = Vec::with_capacity(512);
            let mut buf = [0u8; 1024];
            // One deadline for the whole request head, so a client sending a byte at a time cannot
            // hold a permit for longer.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let complete = loop {
                let read = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await;
                match read {
                    Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => break false,
                }
                if head.windows(4).any(|w| w == b"\r\n\r\n") {
                    break true;
                }
                if head.len() > MAX_REQUEST_HEAD {
                    break false;
                }
            };
            let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
            let (status, content_type, body) = if !complete {
                ("400 Bad Request", "text/plain", String::from("bad request\n"))
            } else if line.starts_with(b"GET /metrics ") {
                let text = tokio::task::spawn_blocking(move || metrics.render(&db)).await.unwrap_or_default();
                ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", text)
            } else if line.starts_with(b"GET /healthz ") {
                // Liveness: the process answers (gRPC readiness is grpc.health.v1 on the gRPC port).
                ("200 OK", "text/plain", String::from("ok\n"))
            } else {
                (
                    "404 Not Found",
                    "text/plain",
                    String::from("only GET /metrics and GET /healthz are served here\n"),
                )
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
