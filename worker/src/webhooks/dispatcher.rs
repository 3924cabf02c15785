//! The dispatcher: takes the events its own process's batches hand it as they commit (written
//! already leased to it), and leases due webhook events (`SELECT … FOR UPDATE SKIP LOCKED` in a
//! short transaction, so no two dispatchers hold one event at once); delivers each outside any
//! transaction with bounded concurrency, then records the attempt and either marks the event
//! delivered or schedules its next attempt. Attempts are recorded by one task per process,
//! as many in one transaction as are waiting, so a burst of deliveries costs a few commits,
//! not one each. A dispatcher that dies leaves its leased events
//! due again when the lease runs out: at least once, never lost.
//!
//! Every attempt resolves the receiver's host here, refuses addresses that are not public,
//! and connects only to the addresses it checked (the client's resolver answers from what
//! this module pinned, never from DNS), so a DNS answer that changes in between cannot
//! redirect a delivery.

use crate::config::DispatchConfig;
use shared::crypto::Keyring;
use shared::db::webhooks::{Finished, LeasedEvent, Next, finish_attempts, lease_due};
use shared::webhooks::{Loopback, WebhookUrl, resolve_public, secret_key, sign};
use sqlx::MySqlPool;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

/// How often the pending gauge is refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(5);
/// After a wake, a moment for the batch that rang it to commit.
const COMMIT_GRACE: Duration = Duration::from_millis(10);
/// Tries at recording attempts before leaving their events to their leases.
const FINISH_TRIES: u32 = 5;
/// Most attempts recorded in one transaction.
const RECORD_BATCH: usize = 256;
/// Most events waiting in a process for a lane of their endpoint; beyond this an event that
/// would wait is let go, and a poll takes it once its lease runs out (as when the handoff is
/// full). Events of endpoints with a free lane still start at once.
const WAITING_MAX: usize = 4096;
/// How long the recorder waits for more attempts before it writes what it has: each
/// transaction's commit waits for the redo log's flush, so under load one commit per 100 ms
/// (some 40 attempts each) costs MariaDB far less than one per batch of deliveries. An
/// attempt is recorded at most this much later; its event's lease covers the wait.
const RECORD_LINGER: Duration = Duration::from_millis(100);

/// A finished attempt on its way to MySQL, with when its event was recorded (for the
/// delivery latency).
struct Done {
    finished: Finished,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// What the dispatcher needs.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    pool: MySqlPool,
    keyring: Keyring,
    config: DispatchConfig,
    loopback: Loopback,
    client: reqwest::Client,
    pins: Pins,
    /// Names this process's leases.
    lease_id: String,
}

/// The addresses each host was checked to have, for the client's resolver.
#[derive(Clone, Default)]
struct Pins(Arc<Mutex<HashMap<String, Vec<SocketAddr>>>>);

impl Pins {
    fn set(&self, host: &str, addrs: Vec<SocketAddr>) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(host.to_owned(), addrs);
        }
    }

    fn get(&self, host: &str) -> Option<Vec<SocketAddr>> {
        self.0.lock().ok()?.get(host).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("host `{0}` was not checked before connecting")]
struct Unpinned(String);

impl reqwest::dns::Resolve for Pins {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let found = self.get(name.as_str());
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = found.ok_or_else(|| Box::new(Unpinned(host)))?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Each merchant's endpoint gets at most `per_endpoint` of the process's deliveries at once
/// (its lanes); its further events wait here, oldest first, for one of its own to finish, so
/// a receiver that hangs with a backlog never holds every slot.
struct Lanes {
    per_endpoint: usize,
    /// The least lease a waiting event must have left to start: an attempt ends within the
    /// timeout and is recorded a moment later.
    min_lease_left: chrono::Duration,
    /// The lanes of the merchants with deliveries in flight or events waiting.
    endpoints: HashMap<String, Arc<Semaphore>>,
    waiting: HashMap<String, VecDeque<LeasedEvent>>,
    queued: usize,
}

impl Lanes {
    fn new(per_endpoint: usize, attempt_timeout: Duration) -> Lanes {
        let attempt = attempt_timeout + RECORD_LINGER + Duration::from_secs(1);
        Lanes {
            per_endpoint: per_endpoint.max(1),
            min_lease_left: chrono::Duration::from_std(attempt).unwrap_or(chrono::Duration::MAX),
            endpoints: HashMap::new(),
            waiting: HashMap::new(),
            queued: 0,
        }
    }

    fn lane(&mut self, merchant: &str) -> Option<OwnedSemaphorePermit> {
        let per_endpoint = self.per_endpoint;
        self.endpoints
            .entry(merchant.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(per_endpoint)))
            .clone()
            .try_acquire_owned()
            .ok()
    }

    /// A free lane of `merchant`'s endpoint, unless its events wait already (they go first).
    fn take(&mut self, merchant: &str) -> Option<OwnedSemaphorePermit> {
        if self.waiting.contains_key(merchant) {
            return None;
        }
        self.lane(merchant)
    }

    fn wait(&mut self, event: LeasedEvent) {
        if self.queued >= WAITING_MAX {
            metrics::counter!("xyz_webhook_handoff_overflow_total").increment(1);
            return;
        }
        self.queued += 1;
        self.waiting
            .entry(event.merchant_id.clone())
            .or_default()
            .push_back(event);
    }

    /// The merchants whose lanes are all taken or whose events wait: a poll leaves their due
    /// events to later, or to another process.
    fn busy(&self) -> Vec<&str> {
        let full = self
            .endpoints
            .iter()
            .filter(|(m, lanes)| lanes.available_permits() == 0 && !self.waiting.contains_key(*m))
            .map(|(m, _)| m.as_str());
        self.waiting
            .keys()
            .map(String::as_str)
            .chain(full)
            .collect()
    }

    /// A waiting event that may start now, with its lane. An event whose lease has less than
    /// `min_lease_left` to run is let go: the lease brings it back to a poll, and no attempt of it
    /// may outlive the lease (another dispatcher would then send it at the same time).
    fn next_ready(&mut self) -> Option<(LeasedEvent, OwnedSemaphorePermit)> {
        let now = chrono::Utc::now();
        let merchants: Vec<String> = self.waiting.keys().cloned().collect();
        let mut ready = None;
        for merchant in merchants {
            let Some(lane) = self.lane(&merchant) else {
                continue;
            };
            let Some(queue) = self.waiting.get_mut(&merchant) else {
                continue;
            };
            while let Some(event) = queue.pop_front() {
                self.queued -= 1;
                if event.lease_until - now >= self.min_lease_left {
                    ready = Some((event, lane));
                    break;
                }
                tracing::debug!(event_id = %event.event_id, "a webhook event waited out its lease; a poll takes it again");
            }
            if queue.is_empty() {
                self.waiting.remove(&merchant);
            }
            if ready.is_some() {
                break;
            }
        }
        ready
    }

    /// Forgets the endpoints with nothing in flight and nothing waiting.
    fn forget_idle(&mut self) {
        let per_endpoint = self.per_endpoint;
        let waiting = &self.waiting;
        self.endpoints
            .retain(|m, lanes| lanes.available_permits() < per_endpoint || waiting.contains_key(m));
    }
}

impl Dispatcher {
    pub(crate) fn new(
        pool: MySqlPool,
        keyring: Keyring,
        config: DispatchConfig,
        loopback: Loopback,
    ) -> Result<Dispatcher, String> {
        if config.lease_ms <= config.timeout_ms {
            return Err("WEBHOOK_LEASE_MS must be longer than WEBHOOK_TIMEOUT_MS".into());
        }
        let timeout = Duration::from_millis(config.timeout_ms);
        let pins = Pins::default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // Connections are kept between attempts: every attempt resolves and checks the
            // host again before it sends (refused if the host no longer resolves to public
            // addresses), and a kept connection goes to an address that was checked when it
            // was made. A new connection per delivery cost both ends a TCP handshake each.
            .pool_idle_timeout(Duration::from_secs(30))
            .dns_resolver(Arc::new(pins.clone()))
            .user_agent("xyz-webhooks/1")
            .build()
            .map_err(|e| format!("webhook HTTP client: {e}"))?;
        Ok(Dispatcher {
            pool,
            keyring,
            config,
            loopback,
            client,
            pins,
            lease_id: format!("lease_{}", uuid::Uuid::new_v4().simple()),
        })
    }

    /// The way this process's batches hand it the events they record, and its end.
    pub(crate) fn handoff(&self) -> (super::Handoff, mpsc::Receiver<LeasedEvent>) {
        super::Handoff::new(&self.lease_id, Duration::from_millis(self.config.lease_ms))
    }

    /// Delivers until `stop` flips: the events `handed` over as their batches commit, and
    /// those a poll finds due. Then waits for the deliveries in flight up to `grace`; those
    /// cut short come back to some dispatcher when their lease runs out.
    pub(crate) async fn run(
        self,
        mut stop: watch::Receiver<bool>,
        mut handed: mpsc::Receiver<LeasedEvent>,
        grace: Duration,
    ) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut lanes = Lanes::new(
            self.config
                .endpoint_concurrency
                .min(self.config.concurrency.max(1)),
            Duration::from_millis(self.config.timeout_ms),
        );
        let poll = Duration::from_millis(self.config.poll_ms.max(1));
        let mut in_flight = JoinSet::new();
        let (done_tx, done_rx) = mpsc::channel(self.config.concurrency.max(1) * 2);
        let recorder = tokio::spawn(record(self.pool.clone(), self.lease_id.clone(), done_rx));
        let mut gauge_at = Instant::now();
        let mut poll_at = tokio::time::Instant::now();
        let mut handing = true;
        while !*stop.borrow() {
            while in_flight.try_join_next().is_some() {}
            self.start_waiting(&slots, &mut lanes, &mut in_flight, &done_tx);
            if gauge_at.elapsed() >= GAUGE_EVERY {
                gauge_at = Instant::now();
                self.report_pending().await;
            }
            if tokio::time::Instant::now() >= poll_at {
                let full = self
                    .poll(&slots, &mut lanes, &mut in_flight, &done_tx)
                    .await;
                poll_at = tokio::time::Instant::now() + if full { Duration::ZERO } else { poll };
            }
            tokio::select! {
                event = handed.recv(), if handing => match event {
                    Some(event) => {
                        let Some(lane) = lanes.take(&event.merchant_id) else {
                            lanes.wait(event);
                            continue;
                        };
                        let permit = tokio::select! {
                            permit = slots.clone().acquire_owned() => permit,
                            _ = stop.changed() => break,
                        };
                        let Ok(permit) = permit else { break };
                        self.spawn_delivery(event, [permit, lane], &mut in_flight, &done_tx);
                    }
                    // The batches are gone: the poll alone is left.
                    None => handing = false,
                },
                // A delivery finished: its endpoint's waiting events may start.
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                () = tokio::time::sleep_until(poll_at) => {}
                () = super::WRITTEN.notified() => {
                    tokio::time::sleep(COMMIT_GRACE).await;
                    poll_at = tokio::time::Instant::now();
                }
                _ = stop.changed() => {}
            }
        }
        let started = Instant::now();
        if tokio::time::timeout(grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!(
                left = in_flight.len(),
                "webhook deliveries still in flight at the stop; their leases bring them back"
            );
            in_flight.abort_all();
        }
        // The recorder ends once every delivery's sender is gone and what they sent is written.
        drop(done_tx);
        let left = grace
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        if tokio::time::timeout(left, recorder).await.is_err() {
            tracing::warn!(
                "webhook attempts still unrecorded at the stop; their leases bring the events back"
            );
        }
    }

    /// Leases as many due events as there are free slots, of the merchants with a free lane,
    /// and starts their deliveries (or has them wait for their endpoint's lanes); true when it
    /// found as many as it could take (more may be due).
    async fn poll(
        &self,
        slots: &Arc<Semaphore>,
        lanes: &mut Lanes,
        in_flight: &mut JoinSet<()>,
        done: &mpsc::Sender<Done>,
    ) -> bool {
        let free = slots.available_permits();
        if free == 0 {
            return false;
        }
        let now = chrono::Utc::now();
        let lease_until = now + Duration::from_millis(self.config.lease_ms);
        let wanted = u32::try_from(free).unwrap_or(u32::MAX);
        lanes.forget_idle();
        let busy = lanes.busy();
        let leased = lease_due(&self.pool, &self.lease_id, now, lease_until, wanted, &busy).await;
        let leased = match leased {
            Ok(leased) => leased,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for due webhook events");
                return false;
            }
        };
        let full = leased.len() == free;
        for event in leased {
            let Some(lane) = lanes.take(&event.merchant_id) else {
                lanes.wait(event);
                continue;
            };
            // Nothing else takes slots meanwhile: this task is the only one that does.
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                lanes.wait(event);
                continue;
            };
            self.spawn_delivery(event, [permit, lane], in_flight, done);
        }
        full
    }

    /// Starts the waiting events whose endpoints have a free lane, while slots are free.
    fn start_waiting(
        &self,
        slots: &Arc<Semaphore>,
        lanes: &mut Lanes,
        in_flight: &mut JoinSet<()>,
        done: &mpsc::Sender<Done>,
    ) {
        while lanes.queued > 0 {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                return;
            };
            let Some((event, lane)) = lanes.next_ready() else {
                return;
            };
            self.spawn_delivery(event, [permit, lane], in_flight, done);
        }
    }

    /// Delivers `event` in a task of its own, holding its slot and its endpoint's lane.
    fn spawn_delivery(
        &self,
        event: LeasedEvent,
        held: [OwnedSemaphorePermit; 2],
        in_flight: &mut JoinSet<()>,
        done: &mpsc::Sender<Done>,
    ) {
        let this = self.clone();
        let done = done.clone();
        in_flight.spawn(async move {
            this.deliver(event, &done).await;
            drop(held);
        });
    }

    async fn report_pending(&self) {
        match shared::db::webhooks::count_pending(&self.pool).await {
            Ok(n) => metrics::gauge!("xyz_webhook_events_pending").set(n as f64),
            Err(e) => tracing::warn!(error = %e, "could not count pending webhook events"),
        }
    }

    /// One attempt, handed to the recorder; then delivered, retried later or failed.
    async fn deliver(&self, event: LeasedEvent, done: &mpsc::Sender<Done>) {
        let at = chrono::Utc::now();
        let started = Instant::now();
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let result = match tokio::time::timeout(timeout, self.attempt(&event)).await {
            Ok(result) => result,
            Err(_) => Outcome::failed(
                "timeout",
                None,
                format!("no answer within {} ms", self.config.timeout_ms),
            ),
        };
        let elapsed = started.elapsed();
        metrics::histogram!("xyz_webhook_attempt_seconds").record(elapsed.as_secs_f64());
        metrics::counter!("xyz_webhook_attempts_total", "outcome" => result.kind).increment(1);
        let next = if result.error.is_none() {
            Next::Delivered
        } else {
            match self.config.retry_schedule.after(event.attempts + 1) {
                Some(wait) => Next::RetryAt(chrono::Utc::now() + wait),
                None => Next::Failed,
            }
        };
        let finished = Finished {
            event_id: event.event_id,
            at,
            http_status: result.http_status,
            error: result.error,
            duration_ms: u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX),
            next,
        };
        let created_at = event.created_at;
        // A closed channel means the process is stopping: the lease brings the event back.
        let _ = done
            .send(Done {
                finished,
                created_at,
            })
            .await;
    }

    /// Sends the event once: endpoint, address check, signature, POST.
    async fn attempt(&self, event: &LeasedEvent) -> Outcome {
        let Some(endpoint) = &event.endpoint else {
            return Outcome::failed("error", None, "no endpoint is registered".into());
        };
        let secret = match endpoint.open(&self.keyring, &event.merchant_id) {
            Ok(secret) => secret,
            Err(e) => return Outcome::failed("error", None, format!("endpoint unreadable: {e}")),
        };
        let url = match WebhookUrl::parse(&endpoint.url, self.loopback) {
            Ok(url) => url,
            Err(why) => return Outcome::failed("refused", None, format!("url {why}")),
        };
        let addrs = match resolve_public(&url, self.loopback).await {
            Ok(addrs) => addrs,
            Err(why) => return Outcome::failed("refused", None, why),
        };
        self.pins.set(&url.host(), addrs);
        let Some(key) = secret_key(&secret) else {
            return Outcome::failed("error", None, "the endpoint's secret is malformed".into());
        };
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(&key, &event.event_id, timestamp, event.payload.as_bytes());
        let sent = self
            .client
            .post(url.as_str())
            .header("webhook-id", &event.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(event.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Outcome {
                kind: "delivered",
                http_status: Some(response.status().as_u16()),
                error: None,
            },
            Ok(response) => {
                let status = response.status();
                let why = if status.is_redirection() {
                    format!("HTTP {status} (redirects are not followed)")
                } else {
                    format!("HTTP {status}")
                };
                Outcome::failed("http_error", Some(status.as_u16()), why)
            }
            Err(e) if e.is_timeout() => Outcome::failed("timeout", None, error_chain(&e)),
            Err(e) => Outcome::failed("error", None, error_chain(&e)),
        }
    }
}

/// Records finished attempts as they come, as many in one transaction as are waiting.
async fn record(pool: MySqlPool, lease_id: String, mut done: mpsc::Receiver<Done>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while done.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        // A moment for the attempts finishing alongside: one commit records them all.
        if batch.len() < RECORD_BATCH {
            tokio::time::sleep(RECORD_LINGER).await;
            while batch.len() < RECORD_BATCH {
                match done.try_recv() {
                    Ok(d) => batch.push(d),
                    Err(_) => break,
                }
            }
        }
        let (finished, created): (Vec<Finished>, Vec<_>) =
            batch.drain(..).map(|d| (d.finished, d.created_at)).unzip();
        let mut pause = Duration::from_millis(100);
        for tries in 1..=FINISH_TRIES {
            match finish_attempts(&pool, &lease_id, &finished).await {
                Ok(moved) => {
                    for ((f, created_at), moved) in finished.iter().zip(&created).zip(moved) {
                        if moved {
                            count(f.next, *created_at);
                        }
                        if let Some(error) = &f.error {
                            tracing::info!(event_id = %f.event_id, %error, next = ?f.next, "webhook attempt failed");
                        }
                    }
                    break;
                }
                Err(e) if tries < FINISH_TRIES => {
                    tracing::warn!(attempts = finished.len(), error = %e, "could not record webhook attempts; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    tracing::error!(attempts = finished.len(), error = %e, "could not record webhook attempts; their leases bring the events back");
                }
            }
        }
    }
}

/// Counts an attempt that moved its event on; `created_at`: when the event was recorded.
fn count(next: Next, created_at: chrono::DateTime<chrono::Utc>) {
    match next {
        Next::Delivered => {
            metrics::counter!("xyz_webhook_delivered_total").increment(1);
            let latency = (chrono::Utc::now() - created_at)
                .to_std()
                .unwrap_or_default();
            metrics::histogram!("xyz_webhook_delivery_latency_seconds")
                .record(latency.as_secs_f64());
        }
        Next::Failed => metrics::counter!("xyz_webhook_failed_total").increment(1),
        Next::RetryAt(_) => {}
    }
}

/// What one attempt came to.
struct Outcome {
    /// The metric label.
    kind: &'static str,
    http_status: Option<u16>,
    error: Option<String>,
}

impl Outcome {
    fn failed(kind: &'static str, http_status: Option<u16>, error: String) -> Outcome {
        Outcome {
            kind,
            http_status,
            error: Some(error),
        }
    }
}

/// The error and its causes, outermost first (reqwest's own message alone says little).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(merchant: &str, id: &str, lease_left_secs: i64) -> LeasedEvent {
        let now = chrono::Utc::now();
        LeasedEvent {
            event_id: id.into(),
            merchant_id: merchant.into(),
            payload: "{}".into(),
            attempts: 0,
            created_at: now,
            lease_until: now + chrono::Duration::seconds(lease_left_secs),
            endpoint: None,
        }
    }

    /// Lanes whose waiting events need 5.1 s of lease left (a 4 s attempt timeout).
    fn lanes(per_endpoint: usize) -> Lanes {
        Lanes::new(per_endpoint, Duration::from_secs(4))
    }

    fn ids(lanes: &mut Lanes) -> Vec<String> {
        let mut held = Vec::new();
        let mut out = Vec::new();
        while let Some((e, lane)) = lanes.next_ready() {
            out.push(e.event_id);
            held.push(lane);
        }
        out
    }

    #[test]
    fn an_endpoint_gets_its_lanes_and_no_more() {
        let mut lanes = lanes(2);
        let a1 = lanes.take("a");
        let a2 = lanes.take("a");
        assert!(a1.is_some() && a2.is_some());
        assert!(lanes.take("a").is_none(), "a third lane of a");
        assert!(
            lanes.take("b").is_some(),
            "another endpoint's lanes are its own"
        );
        assert_eq!(lanes.busy(), ["a"]);
        drop(a1);
        assert!(
            lanes.take("a").is_some(),
            "a finished delivery frees its lane"
        );
    }

    #[test]
    fn waiting_events_go_first_oldest_first_and_two_at_a_time() {
        let mut lanes = lanes(2);
        for id in ["e1", "e2", "e3"] {
            lanes.wait(event("a", id, 60));
        }
        assert!(
            lanes.take("a").is_none(),
            "a new event does not overtake waiting ones"
        );
        assert_eq!(lanes.busy(), ["a"]);
        assert_eq!(ids(&mut lanes), ["e1", "e2"]);
        assert_eq!(lanes.queued, 1);
    }

    #[test]
    fn an_event_without_time_left_on_its_lease_is_let_go() {
        let mut lanes = lanes(2);
        lanes.wait(event("a", "stale", 3));
        lanes.wait(event("a", "fresh", 60));
        assert_eq!(ids(&mut lanes), ["fresh"]);
        assert_eq!(lanes.queued, 0);
        assert!(lanes.waiting.is_empty());
    }

    #[test]
    fn beyond_the_most_waiting_an_event_is_left_to_its_lease_and_idle_endpoints_are_forgotten() {
        let mut lanes = lanes(1);
        for i in 0..WAITING_MAX + 3 {
            lanes.wait(event("a", &format!("e{i}"), 60));
        }
        assert_eq!(lanes.queued, WAITING_MAX);
        assert_eq!(lanes.waiting["a"].len(), WAITING_MAX);
        let lane = lanes.take("b");
        drop(lane);
        lanes.forget_idle();
        assert!(!lanes.endpoints.contains_key("b"));
    }
}
