//! Prometheus metrics: one recorder per process. The ingress serves it on `/metrics`; the
//! worker binary on its own listener (`METRICS_ADDR`).

use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::OnceLock;

/// Latency buckets in seconds, from a fast Redis round trip to a long `Prefer: wait`.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .unwrap_or_else(|_| PrometheusBuilder::new())
}

/// The process's recorder, installed on first use (a second install in the same process, as
/// in tests, reuses the first).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| match builder().install_recorder() {
            Ok(h) => h,
            // Another recorder is already global: keep a detached one so rendering still works.
            Err(_) => builder().build_recorder().handle(),
        })
        .clone()
}

/// Installs the recorder with an HTTP listener serving the text format on `addr`.
pub fn serve(addr: SocketAddr) -> Result<(), BuildError> {
    builder().with_http_listener(addr).install()
}

/// Describes every series once so `/metrics` documents them.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "xyz_http_requests_total",
        "HTTP requests by route and status"
    );
    describe_histogram!(
        "xyz_http_request_duration_seconds",
        "HTTP request latency by route"
    );
    describe_counter!(
        "xyz_publish_total",
        "Command publishes by result (ok, nack, returned, timeout, not_connected, blocked, error)"
    );
    describe_counter!(
        "xyz_request_deadline_exceeded_total",
        "Requests answered 503 because they reached REQUEST_TIMEOUT_MS"
    );
    describe_counter!(
        "xyz_audit_rows_spilled_total",
        "Audit rows written to the spill file (AUDIT_SPILL_PATH) instead of MySQL, by cause (channel_full, refused, shutdown, writer_gone)"
    );
    describe_counter!(
        "xyz_audit_rows_lost_total",
        "Audit rows neither MySQL nor the spill file took (each logged in full at error)"
    );
    describe_counter!(
        "xyz_claims_total",
        "External-id claims by result (claimed, taken_over, conflict, conflict_mysql)"
    );
    describe_counter!(
        "xyz_rate_limited_total",
        "Requests refused by the per-key rate limit"
    );
    describe_counter!(
        "xyz_rate_limiter_fail_open_total",
        "Requests let through because Redis could not be asked"
    );
    describe_counter!(
        "xyz_consumer_restarts_total",
        "Worker consumer tasks that died (a bug) and were started again"
    );
    describe_counter!(
        "xyz_api_keys_stale_total",
        "Signed requests answered 503 because the API keys could not be refreshed from MySQL"
    );
    describe_gauge!(
        "xyz_waiters",
        "Requests holding a connection with Prefer: wait"
    );
    describe_counter!(
        "xyz_messages_consumed_total",
        "Commands delivered to workers"
    );
    describe_counter!(
        "xyz_messages_acked_total",
        "Commands acked after their commit"
    );
    describe_counter!(
        "xyz_messages_dead_lettered_total",
        "Commands sent to the dead-letter queue, by cause"
    );
    describe_counter!(
        "xyz_batch_retries_total",
        "MySQL transactions retried after a transient failure"
    );
    describe_histogram!(
        "xyz_db_transaction_seconds",
        "Duration of a worker batch's MySQL transaction"
    );
    describe_histogram!("xyz_batch_size", "Commands per worker batch");
    describe_histogram!(
        "xyz_batch_stage_seconds",
        "Time of each stage of a set-based worker batch (begin, lock, claim, contracts, payments, limits, outcomes, commit)"
    );
    describe_histogram!(
        "xyz_submit_stage_seconds",
        "Time of each stage of accepting a submission in the ingress (claim with its rate limit and MySQL lookup, publish, accept)"
    );
    describe_counter!(
        "xyz_external_id_lookups_total",
        "Submissions whose MySQL external-id lookup was skipped because the filter of claimed ids proved the id new"
    );
    describe_histogram!(
        "xyz_external_id_lookup_batch",
        "External ids read from MySQL by one statement of the ingress's batched lookup"
    );
    describe_counter!(
        "xyz_batches_total",
        "Worker batches by the path that decided them: set (multi-row statements) or each (command by command)"
    );
    describe_counter!(
        "xyz_outcomes_total",
        "Decided calls by type, status and reason"
    );
    describe_gauge!("xyz_queue_depth", "Messages ready in a queue");
    describe_gauge!(
        "xyz_db_node",
        "The DATABASE_URL node (0-based) this process writes to; it changes when that node fails"
    );
    describe_gauge!("xyz_queue_consumers", "Consumers on the command queue");
    describe_gauge!(
        "xyz_webhook_events_pending",
        "Webhook events waiting for a delivery, across merchants (every worker reports the same figure)"
    );
    describe_counter!(
        "xyz_webhook_attempts_total",
        "Webhook delivery attempts by outcome: delivered, http_error, timeout, refused, error"
    );
    describe_counter!(
        "xyz_webhook_delivered_total",
        "Webhook events delivered (a 2xx)"
    );
    describe_counter!(
        "xyz_webhook_failed_total",
        "Webhook events given up after the last retry"
    );
    describe_histogram!(
        "xyz_webhook_attempt_seconds",
        "Duration of one webhook delivery attempt"
    );
    describe_histogram!(
        "xyz_webhook_delivery_latency_seconds",
        "From a webhook event's commit to its delivery"
    );
    describe_counter!(
        "xyz_webhook_events_recorded_total",
        "Webhook events written to the outbox, by type"
    );
}

/// Times consecutive stages of one unit of work into a histogram labelled `stage`: where a
/// slow request or batch spends its time.
pub struct Stages {
    metric: &'static str,
    last: std::time::Instant,
}

impl Stages {
    pub fn start(metric: &'static str) -> Self {
        Stages {
            metric,
            last: std::time::Instant::now(),
        }
    }

    /// Records the time since the previous mark (or the start) as `stage`.
    pub fn mark(&mut self, stage: &'static str) {
        let now = std::time::Instant::now();
        metrics::histogram!(self.metric, "stage" => stage).record((now - self.last).as_secs_f64());
        self.last = now;
    }
}
