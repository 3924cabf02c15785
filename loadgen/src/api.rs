//! The engine's API as a merchant uses it: requests signed by `shared::client` (SPEC §2), with
//! a merchant's retry discipline: 429 and 503 are retried after `Retry-After` with the same
//! `X-External-Id`.

use anyhow::{Context, Result};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use shared::client::{Credentials, SignedClient};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// An API key as `xyzctl keys create` prints it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Key {
    pub(crate) client_id: String,
    pub(crate) secret: String,
    #[serde(default)]
    pub(crate) role: Option<String>,
}

impl Key {
    /// Reads a key file; when it names a role, it must be `role`.
    pub(crate) fn load(path: &Path, role: &str) -> Result<Key> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading key file {}", path.display()))?;
        let key: Key = serde_json::from_str(text.trim()).with_context(|| {
            format!(
                "{}: expected {{\"client_id\", \"secret\", ...}}",
                path.display()
            )
        })?;
        if let Some(r) = &key.role
            && r != role
        {
            anyhow::bail!("{}: a {r} key where a {role} key is needed", path.display());
        }
        Ok(key)
    }

    fn credentials(&self) -> Credentials<'_> {
        Credentials {
            client_id: &self.client_id,
            secret: &self.secret,
        }
    }
}

/// One answer: status, `Retry-After` in seconds, and the body (JSON, or the raw text as a
/// JSON string when it is not JSON).
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<u64>,
    pub(crate) body: Value,
}

impl Resp {
    pub(crate) fn action(&self) -> &str {
        self.body["message_action"].as_str().unwrap_or("")
    }

    pub(crate) fn data(&self) -> &Value {
        &self.body["message_data"]
    }

    pub(crate) fn api_call_id(&self) -> Option<&str> {
        self.body["api_call_id"].as_str()
    }

    /// The call a 202 or 201 is about: the id in `status_url` (a retry after a lost confirm
    /// re-sends an earlier call, which the request's own api call id is not), else the
    /// decided status's id, else the request's.
    pub(crate) fn call_id(&self) -> Option<&str> {
        self.data()["status_url"]
            .as_str()
            .and_then(|u| u.strip_prefix("/status/"))
            .or_else(|| self.data()["api_call_id"].as_str())
            .or_else(|| self.api_call_id())
    }
}

/// HTTP outcomes counted over a whole run, every attempt included.
#[derive(Default)]
pub(crate) struct HttpCounters {
    /// Every non-2xx answer to a POST, by status (429 and 503 included even when the retry
    /// succeeded).
    pub(crate) by_status: Mutex<BTreeMap<u16, u64>>,
    pub(crate) transport_errors: AtomicU64,
    /// 5xx other than 503: always a defect (SPEC §3).
    pub(crate) unexpected_5xx: AtomicU64,
    pub(crate) retries: AtomicU64,
    /// A retry answered 409 CONFLICT_EXTERNAL_ID: an earlier attempt had been accepted.
    pub(crate) resolved_by_conflict: AtomicU64,
    /// Non-200 answers to GET /status, by status.
    pub(crate) poll_by_status: Mutex<BTreeMap<u16, u64>>,
    pub(crate) samples: Mutex<Vec<String>>,
    pub(crate) poll_samples: Mutex<Vec<String>>,
}

impl HttpCounters {
    pub(crate) fn count_status(&self, status: u16, sample: impl FnOnce() -> String) {
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry(status).or_default() += 1;
        }
        if status >= 500 && status != 503 {
            self.unexpected_5xx.fetch_add(1, Ordering::Relaxed);
        }
        if status != 429
            && status != 503
            && let Ok(mut s) = self.samples.lock()
            && s.len() < 10
        {
            s.push(sample());
        }
    }

    pub(crate) fn count_poll_status(&self, status: u16, sample: impl FnOnce() -> String) {
        if let Ok(mut m) = self.poll_by_status.lock() {
            *m.entry(status).or_default() += 1;
        }
        if status >= 500 && status != 503 {
            self.unexpected_5xx.fetch_add(1, Ordering::Relaxed);
        }
        if status != 429
            && status != 503
            && let Ok(mut s) = self.poll_samples.lock()
            && s.len() < 3
        {
            s.push(sample());
        }
    }

    pub(crate) fn by_status(&self) -> BTreeMap<u16, u64> {
        self.by_status.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub(crate) fn poll_by_status(&self) -> BTreeMap<u16, u64> {
        self.poll_by_status
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

pub(crate) struct Api {
    client: SignedClient,
}

impl Api {
    pub(crate) fn new(base: &str, connections: usize, timeout: Duration) -> Result<Api> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections.max(1))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            client: SignedClient::new(http, base),
        })
    }

    pub(crate) fn base(&self) -> &str {
        self.client.base()
    }

    /// `GET /healthz` (unsigned), its body read; an error unless it answers 2xx.
    pub(crate) async fn healthz(&self) -> Result<()> {
        let url = format!("{}/healthz", self.base());
        let r = self
            .client
            .http()
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = r.status();
        r.bytes().await.with_context(|| format!("GET {url}"))?;
        anyhow::ensure!(status.is_success(), "GET {url}: {status}");
        Ok(())
    }

    /// Opens up to `connections` kept-alive connections (as many `GET /healthz` at once), as a
    /// merchant's long-running client has them: the load's first requests then measure the
    /// engine, not TCP set-up on a cold pool.
    pub(crate) async fn warm(&self, connections: usize) -> Result<()> {
        futures_util::future::try_join_all((0..connections.max(1)).map(|_| self.healthz()))
            .await
            .context("warming the connections")?;
        Ok(())
    }

    /// One signed request, signed now.
    async fn send(
        &self,
        key: &Key,
        method: Method,
        path: &str,
        external_id: Option<&str>,
        body: &[u8],
    ) -> Result<Resp, reqwest::Error> {
        let r = self
            .client
            .request(key.credentials(), method, path)
            .external_id(external_id)
            .body(body)
            .send()
            .await?;
        Ok(Resp {
            status: r.status,
            retry_after: r.retry_after_secs(),
            body: r.json().unwrap_or_else(|_| Value::String(r.text())),
        })
    }

    /// One signed request without an external id (`PUT`, `DELETE` of a resource), retried
    /// after `Retry-After` while it answers 429 or 503, up to five times.
    pub(crate) async fn call(
        &self,
        key: &Key,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<Resp, reqwest::Error> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let r = self.send(key, method.clone(), path, None, body).await?;
            if attempt >= 5 || (r.status != 429 && r.status != 503) {
                return Ok(r);
            }
            let secs = r.retry_after.unwrap_or(1).clamp(1, 5);
            tokio::time::sleep(Duration::from_secs(secs) + jitter(path, attempt)).await;
        }
    }

    /// A signed write (`POST`, `PATCH`) retried like a merchant would: 429/503 after
    /// `Retry-After`, transport errors after a short pause, always with the same external id
    /// and body, re-signed each time. The first other answer comes back.
    async fn send_retrying(
        &self,
        key: &Key,
        w: Write<'_>,
        policy: &RetryPolicy,
        counters: &HttpCounters,
    ) -> Retried {
        // A write other than a POST is claimed by its signature, not its external id, and
        // SPEC §2's timestamp has whole seconds: its retry must wait for the next second to be
        // signed anew, or the ingress takes it for a replay.
        let transport_pause = if w.method == Method::POST {
            Duration::from_millis(250)
        } else {
            Duration::from_millis(1_050)
        };
        let mut retried = false;
        let mut last = String::new();
        for attempt in 0..policy.max_attempts.max(1) {
            if attempt > 0 {
                counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            match self
                .send(key, w.method.clone(), w.path, Some(w.external_id), w.body)
                .await
            {
                Ok(r) if r.status == 429 || r.status == 503 => {
                    counters.count_status(r.status, String::new);
                    last = format!("{} {}", r.status, r.action());
                    retried = true;
                    let secs = r
                        .retry_after
                        .unwrap_or(1)
                        .clamp(1, policy.max_retry_after_secs);
                    tokio::time::sleep(Duration::from_secs(secs) + jitter(w.external_id, attempt))
                        .await;
                }
                Ok(resp) => return Retried::Answer { resp, retried },
                Err(e) => {
                    counters.transport_errors.fetch_add(1, Ordering::Relaxed);
                    last = format!("transport: {e}");
                    retried = true;
                    tokio::time::sleep(transport_pause + jitter(w.external_id, attempt)).await;
                }
            }
        }
        Retried::GaveUp {
            detail: format!(
                "gave up after {} attempts; last: {last}",
                policy.max_attempts
            ),
        }
    }

    /// A POST retried like a merchant would (`send_retrying`); a retry's 409 naming the
    /// call an earlier attempt created is that call.
    pub(crate) async fn post(
        &self,
        key: &Key,
        path: &str,
        external_id: &str,
        body: &[u8],
        policy: &RetryPolicy,
        counters: &HttpCounters,
    ) -> PostOutcome {
        let write = Write {
            method: Method::POST,
            path,
            external_id,
            body,
        };
        let answer = self.send_retrying(key, write, policy, counters).await;
        let (r, retried) = match answer {
            Retried::Answer { resp, retried } => (resp, retried),
            Retried::GaveUp { detail } => return PostOutcome::Failed { status: 0, detail },
        };
        match r.status {
            201 | 202 => match r.call_id() {
                Some(id) => PostOutcome::Accepted {
                    status: r.status,
                    api_call_id: id.to_owned(),
                    via_conflict: false,
                    body: r.body,
                },
                None => PostOutcome::Failed {
                    status: r.status,
                    detail: format!("no api_call_id in {}", r.body),
                },
            },
            409 if r.action() == "CONFLICT_EXTERNAL_ID" && retried => {
                // An earlier attempt of ours was accepted: that call is the call.
                if let Some(original) = r.data()["original_api_call_id"].as_str() {
                    counters
                        .resolved_by_conflict
                        .fetch_add(1, Ordering::Relaxed);
                    return PostOutcome::Accepted {
                        status: 202,
                        api_call_id: original.to_owned(),
                        via_conflict: true,
                        body: r.body,
                    };
                }
                counters.count_status(r.status, || {
                    format!(
                        "POST {path} {external_id}: 409 without original_api_call_id: {}",
                        r.body
                    )
                });
                PostOutcome::Failed {
                    status: r.status,
                    detail: r.body.to_string(),
                }
            }
            _ => {
                counters.count_status(r.status, || {
                    format!("POST {path} {external_id}: {} {}", r.status, r.body)
                });
                PostOutcome::Failed {
                    status: r.status,
                    detail: format!("{} {}", r.action(), r.data()),
                }
            }
        }
    }

    /// A signed PATCH, retried as a POST is (`send_retrying`): the answer that is neither
    /// 429 nor 503, or why none came (retries exhausted). The caller judges and counts it.
    pub(crate) async fn patch(
        &self,
        key: &Key,
        path: &str,
        external_id: &str,
        body: &[u8],
        policy: &RetryPolicy,
        counters: &HttpCounters,
    ) -> Result<Resp, String> {
        let write = Write {
            method: Method::PATCH,
            path,
            external_id,
            body,
        };
        match self.send_retrying(key, write, policy, counters).await {
            Retried::Answer { resp, .. } => Ok(resp),
            Retried::GaveUp { detail } => Err(detail),
        }
    }

    /// `GET path`, retrying 429/503 and transport errors until `deadline`.
    pub(crate) async fn get(
        &self,
        key: &Key,
        path: &str,
        deadline: tokio::time::Instant,
        counters: &HttpCounters,
    ) -> Option<Resp> {
        let mut attempt = 0u32;
        while tokio::time::Instant::now() < deadline {
            attempt += 1;
            match self.send(key, Method::GET, path, None, b"").await {
                Ok(r) if r.status == 429 || r.status == 503 => {
                    counters.count_poll_status(r.status, String::new);
                    let secs = r.retry_after.unwrap_or(1).clamp(1, 5);
                    tokio::time::sleep(Duration::from_secs(secs) + jitter(path, attempt)).await;
                }
                Ok(r) => return Some(r),
                Err(_) => {
                    counters.transport_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200) + jitter(path, attempt)).await;
                }
            }
        }
        None
    }
}

/// Up to 100 ms, different per request and attempt, so retries do not arrive in lockstep.
fn jitter(seed: &str, attempt: u32) -> Duration {
    let h = seed
        .bytes()
        .fold(u64::from(attempt).wrapping_mul(0x9E37_79B9), |a, b| {
            a.rotate_left(5) ^ u64::from(b).wrapping_mul(0x100_0000_01B3)
        });
    Duration::from_millis(h % 100)
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) max_retry_after_secs: u64,
}

/// A signed write, the same on every attempt (re-signed each time).
struct Write<'a> {
    method: Method,
    path: &'a str,
    external_id: &'a str,
    body: &'a [u8],
}

/// What `send_retrying` came to.
enum Retried {
    /// An answer other than 429 and 503; `retried` when an earlier attempt was sent.
    Answer { resp: Resp, retried: bool },
    /// Every attempt met 429, 503 or a transport error.
    GaveUp { detail: String },
}

#[derive(Debug)]
pub(crate) enum PostOutcome {
    /// 201/202, or a retry's 409 naming the call an earlier attempt created.
    Accepted {
        status: u16,
        api_call_id: String,
        via_conflict: bool,
        body: Value,
    },
    /// Any other answer, or retries exhausted (status 0).
    Failed { status: u16, detail: String },
}
