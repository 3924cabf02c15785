//! `loadgen run --webhooks`: a receiver of the engine's webhook deliveries (SPEC §11) inside the
//! load generator. It checks each delivery's Standard Webhooks signature (401 when it does not
//! hold), keeps what arrived, deduplicated by `webhook-id`, and judges it against what the run
//! did: every final call of the merchant told at least once, nothing told that the run did not
//! do, each told outcome the one `GET /status` (or MySQL) gives.

use super::{FinalSeen, Kind};
use crate::api::{Api, Key};
use crate::util::Percentiles;
use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The events the run subscribes to.
pub(crate) const EVENTS: [&str; 3] = ["call.completed", "contract.paid_off", "contract.cancelled"];

/// How far `webhook-timestamp` may be from our clock, as the reference libraries allow.
const TOLERANCE_SECS: i64 = 300;

/// Why a delivery's signature does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadSignature {
    MissingHeader(&'static str),
    MalformedTimestamp,
    /// `webhook-timestamp` more than five minutes from our clock (a replay).
    OutsideTolerance,
    /// No `v1,` signature of the header matches.
    NoMatch,
}

/// The key bytes of a `whsec_…` secret: the base64 after the prefix.
pub(crate) fn secret_key(secret: &str) -> Option<Vec<u8>> {
    BASE64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, as the engine signs.
#[cfg(test)]
pub(crate) fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v1,{}",
        BASE64.encode(mac(key, id, timestamp, body).finalize().into_bytes())
    )
}

/// Standard Webhooks verification: any of the space-separated `v1,` signatures matches
/// (compared in constant time), and the timestamp is within five minutes of `now_unix`.
pub(crate) fn verify_signature(
    key: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), BadSignature> {
    let id = id.ok_or(BadSignature::MissingHeader("webhook-id"))?;
    let timestamp = timestamp.ok_or(BadSignature::MissingHeader("webhook-timestamp"))?;
    let signatures = signatures.ok_or(BadSignature::MissingHeader("webhook-signature"))?;
    let at: i64 = timestamp
        .parse()
        .map_err(|_| BadSignature::MalformedTimestamp)?;
    if (now_unix - at).abs() > TOLERANCE_SECS {
        return Err(BadSignature::OutsideTolerance);
    }
    let expected = mac(key, id, timestamp, body);
    let matched = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| BASE64.decode(s).ok())
        .any(|sig| expected.clone().verify_slice(&sig).is_ok());
    if matched {
        Ok(())
    } else {
        Err(BadSignature::NoMatch)
    }
}

/// A delivery whose signature held, as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) event_id: String,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) body: Vec<u8>,
}

struct ReceiverState {
    key: OnceLock<Vec<u8>>,
    bad_signatures: AtomicU64,
    bad_samples: Mutex<Vec<String>>,
    tx: mpsc::UnboundedSender<Delivery>,
}

/// The HTTP receiver: `POST /hook` on a port of its own.
pub(crate) struct Receiver {
    state: Arc<ReceiverState>,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Receiver {
    /// Binds `listen` and serves; valid deliveries come out of the returned channel.
    pub(crate) async fn start(
        listen: SocketAddr,
    ) -> Result<(Receiver, mpsc::UnboundedReceiver<Delivery>)> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the webhook receiver to {listen}"))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(ReceiverState {
            key: OnceLock::new(),
            bad_signatures: AtomicU64::new(0),
            bad_samples: Mutex::new(Vec::new()),
            tx,
        });
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok((
            Receiver {
                state,
                addr,
                stop,
                server,
            },
            rx,
        ))
    }

    /// The URL the engine is given.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The secret deliveries are signed with (until it is known, every delivery is refused).
    pub(crate) fn set_secret(&self, secret: &str) -> Result<()> {
        let key = secret_key(secret)
            .with_context(|| format!("the webhook secret is not whsec_ + base64: {secret:.10}…"))?;
        let _ = self.state.key.set(key);
        Ok(())
    }

    /// Deliveries answered 401, and a few of them as samples.
    pub(crate) fn bad_signatures(&self) -> (u64, Vec<String>) {
        (
            self.state.bad_signatures.load(Ordering::Relaxed),
            super::lock(&self.state.bad_samples).clone(),
        )
    }

    /// Stops serving; the delivery channel closes once the last handler is done.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

async fn hook(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let received_at = Utc::now();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let checked = match state.key.get() {
        Some(key) => verify_signature(
            key,
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            &body,
            received_at.timestamp(),
        ),
        None => Err(BadSignature::NoMatch),
    };
    match (checked, header("webhook-id")) {
        (Ok(()), Some(id)) => {
            let _ = state.tx.send(Delivery {
                event_id: id.to_owned(),
                received_at,
                body: body.to_vec(),
            });
            StatusCode::NO_CONTENT
        }
        (checked, _) => {
            let why = checked
                .err()
                .unwrap_or(BadSignature::MissingHeader("webhook-id"));
            state.bad_signatures.fetch_add(1, Ordering::Relaxed);
            let mut samples = super::lock(&state.bad_samples);
            if samples.len() < 5 {
                samples.push(format!(
                    "{why:?}: webhook-id {:?}, webhook-timestamp {:?}, webhook-signature {:?}",
                    header("webhook-id"),
                    header("webhook-timestamp"),
                    header("webhook-signature")
                ));
            }
            StatusCode::UNAUTHORIZED
        }
    }
}

/// `PUT /webhooks` for the merchant, subscribing `url` to [`EVENTS`]; the secret. An endpoint
/// left by an earlier run keeps its secret unless asked to rotate it, so then it is rotated.
pub(crate) async fn register(api: &Api, merchant: &Key, url: &str) -> Result<String> {
    for body in [
        json!({"url": url, "events": EVENTS}),
        json!({"url": url, "events": EVENTS, "rotate_secret": true}),
    ] {
        let r = api
            .call(
                merchant,
                Method::PUT,
                "/webhooks",
                body.to_string().as_bytes(),
            )
            .await
            .context("PUT /webhooks")?;
        if r.status != 200 {
            bail!(
                "PUT /webhooks: {} {} (does the engine run with WEBHOOK_ALLOW_LOOPBACK=1?)",
                r.status,
                r.body
            );
        }
        if let Some(secret) = r.data()["secret"].as_str() {
            return Ok(secret.to_owned());
        }
    }
    bail!("PUT /webhooks answered no secret, even when asked to rotate it")
}

/// `DELETE /webhooks`: the merchant's later runs without `--webhooks` leave no deliveries
/// pending to a port that is gone.
pub(crate) async fn unregister(api: &Api, merchant: &Key) -> Result<()> {
    let r = api
        .call(merchant, Method::DELETE, "/webhooks", b"")
        .await
        .context("DELETE /webhooks")?;
    if r.status != 200 {
        bail!("DELETE /webhooks: {} {}", r.status, r.body);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ContractEventKind {
    PaidOff,
    Cancelled,
}

impl ContractEventKind {
    pub(crate) fn status_kontrak(self) -> &'static str {
        match self {
            ContractEventKind::PaidOff => "PAID_OFF",
            ContractEventKind::Cancelled => "CANCELLED",
        }
    }
}

/// The first `call.completed` of an api call.
#[derive(Debug, Clone)]
pub(crate) struct CallEvent {
    pub(crate) event_at: Option<DateTime<Utc>>,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) data: Value,
}

/// A `contract.paid_off` or `contract.cancelled`.
#[derive(Debug, Clone)]
pub(crate) struct ContractEvent {
    pub(crate) kind: ContractEventKind,
    pub(crate) event_at: Option<DateTime<Utc>>,
    pub(crate) nomor_kontrak: String,
    pub(crate) status_kontrak: Option<String>,
}

/// What a delivery added to the tally.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Recorded {
    /// A `webhook-id` already received.
    Duplicate,
    /// The first `call.completed` of this api call: its status object.
    FirstCall {
        api_call_id: String,
        data: Value,
    },
    /// Anything else that was well formed.
    Other,
    Malformed,
}

/// Every valid delivery received, deduplicated by `webhook-id`.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    event_ids: HashSet<String>,
    pub(crate) deliveries: u64,
    pub(crate) duplicates: u64,
    pub(crate) calls: HashMap<String, CallEvent>,
    /// Events with a `webhook-id` of their own about a call already told.
    pub(crate) repeated_calls: u64,
    pub(crate) contracts: Vec<ContractEvent>,
    /// Deliveries that are not an event of ours, described.
    pub(crate) malformed: Vec<String>,
}

fn instant(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

impl Tally {
    pub(crate) fn record(&mut self, d: &Delivery) -> Recorded {
        self.deliveries += 1;
        if !self.event_ids.insert(d.event_id.clone()) {
            self.duplicates += 1;
            return Recorded::Duplicate;
        }
        let mut malformed = |why: String| {
            if self.malformed.len() < 1000 {
                self.malformed.push(format!("event {}: {why}", d.event_id));
            }
            Recorded::Malformed
        };
        let Ok(body) = serde_json::from_slice::<Value>(&d.body) else {
            return malformed("body is not JSON".into());
        };
        let event_at = instant(&body["timestamp"]);
        let data = &body["data"];
        let kind = match body["type"].as_str() {
            Some("call.completed") => None,
            Some("contract.paid_off") => Some(ContractEventKind::PaidOff),
            Some("contract.cancelled") => Some(ContractEventKind::Cancelled),
            other => return malformed(format!("type {other:?}, not one subscribed to")),
        };
        if let Some(kind) = kind {
            let Some(nk) = data["nomor_kontrak"].as_str() else {
                return malformed(format!("{kind:?} without data.nomor_kontrak"));
            };
            self.contracts.push(ContractEvent {
                kind,
                event_at,
                nomor_kontrak: nk.to_owned(),
                status_kontrak: data["status_kontrak"].as_str().map(str::to_owned),
            });
            return Recorded::Other;
        }
        let Some(call) = data["api_call_id"].as_str() else {
            return malformed("call.completed without data.api_call_id".into());
        };
        if let Some(first) = self.calls.get(call) {
            self.repeated_calls += 1;
            let told = |d: &Value| (d["status"].clone(), d["reason"].clone());
            if told(&first.data) != told(data) {
                let why = format!(
                    "call.completed for {call} tells {:?} after an earlier event told {:?}",
                    told(data),
                    told(&first.data)
                );
                return malformed(why);
            }
            return Recorded::Other;
        }
        self.calls.insert(
            call.to_owned(),
            CallEvent {
                event_at,
                received_at: d.received_at,
                data: data.clone(),
            },
        );
        Recorded::FirstCall {
            api_call_id: call.to_owned(),
            data: data.clone(),
        }
    }

    /// The merchant's final calls (of `calls`, every call of the run) not told yet.
    pub(crate) fn untold<'a>(
        &self,
        calls: &'a HashMap<String, Kind>,
        finals: &HashMap<String, FinalSeen>,
    ) -> Vec<&'a str> {
        calls
            .iter()
            .filter(|(id, kind)| {
                kind.by_merchant() && finals.contains_key(*id) && !self.calls.contains_key(*id)
            })
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

/// What the run learns from the tally.
#[derive(Debug, Default)]
pub(crate) struct Judged {
    /// Final calls of the merchant never told (violations).
    pub(crate) missing: Vec<String>,
    /// Events about something the run did not do, or telling another outcome (violations).
    pub(crate) unexpected: Vec<String>,
    /// Events created before this run registered (an earlier run's, delivered late).
    pub(crate) earlier: u64,
    /// Receive time − the call's `completed_at`, first delivery of each call, in ms.
    pub(crate) lag: Percentiles,
}

/// Judges the tally. `calls`: every call the run made (payments with the admin key, so the
/// platform's, never told to the merchant);
/// `finals`: their outcomes as the run learned them; `contracts`: the run's contracts.
pub(crate) fn judge(
    tally: &Tally,
    calls: &HashMap<String, Kind>,
    finals: &HashMap<String, FinalSeen>,
    contracts: &HashSet<String>,
    registered_at: DateTime<Utc>,
) -> Judged {
    let mut j = Judged::default();
    let earlier = |at: Option<DateTime<Utc>>| at.is_some_and(|t| t < registered_at);
    let mut lags = Vec::new();
    for id in tally.untold(calls, finals) {
        j.missing.push(format!(
            "{} {id} became final but no call.completed arrived",
            calls[id].as_str()
        ));
    }
    for (id, e) in &tally.calls {
        let status = e.data["status"].as_str().unwrap_or("");
        let reason = e.data["reason"].as_str();
        let Some(kind) = calls.get(id) else {
            if earlier(e.event_at) {
                j.earlier += 1;
            } else {
                j.unexpected.push(format!(
                    "call.completed for {id} ({status}), a call this run never made"
                ));
            }
            continue;
        };
        if !kind.by_merchant() {
            j.unexpected.push(format!(
                "call.completed for {id}, a {} the run made with the admin key (the platform's call, not the merchant's)",
                kind.as_str()
            ));
            continue;
        }
        if e.data["type"].as_str() != Some(kind.as_str()) {
            j.unexpected.push(format!(
                "call.completed for {id} says type {:?}, the run sent a {}",
                e.data["type"],
                kind.as_str()
            ));
        }
        match finals.get(id) {
            _ if status != "APPROVED" && status != "REJECTED" => j.unexpected.push(format!(
                "call.completed for {id} with status {status:?}, not final"
            )),
            Some(f) if f.state != status || f.reason.as_deref() != reason => {
                j.unexpected.push(format!(
                    "call.completed for {id} says {status} {reason:?}, GET /status said {} {:?}",
                    f.state, f.reason
                ));
            }
            _ => {}
        }
        if let Some(done) = instant(&e.data["completed_at"]) {
            let ms = (e.received_at - done).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            lags.push(ms);
        }
    }
    for c in &tally.contracts {
        if !contracts.contains(&c.nomor_kontrak) {
            if earlier(c.event_at) {
                j.earlier += 1;
            } else {
                j.unexpected.push(format!(
                    "{:?} event for contract {}, not one of this run's",
                    c.kind, c.nomor_kontrak
                ));
            }
            continue;
        }
        // The data is the contract when the event was recorded, which may be after a later
        // command of the same batch: a paid-off contract may show as cancelled since, never
        // as active again.
        let fits = |s: &str| match c.kind {
            ContractEventKind::PaidOff => s == "PAID_OFF" || s == "CANCELLED",
            ContractEventKind::Cancelled => s == "CANCELLED",
        };
        if let Some(s) = &c.status_kontrak
            && !fits(s)
        {
            j.unexpected.push(format!(
                "{:?} event for contract {} whose data says status_kontrak {s}",
                c.kind, c.nomor_kontrak
            ));
        }
    }
    j.unexpected.extend(tally.malformed.iter().cloned());
    j.lag = Percentiles::of(&mut lags);
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks reference libraries' vector (libraries/rust/src/lib.rs,
    // `test_sign`), recomputed independently with Python's hmac module.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: &str = "1649367553";
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn key() -> Vec<u8> {
        secret_key(SECRET).unwrap_or_default()
    }

    fn check(sigs: &str, body: &[u8], now: i64) -> Result<(), BadSignature> {
        verify_signature(&key(), Some(ID), Some(TS), Some(sigs), body, now)
    }

    #[test]
    fn signing_matches_the_standard_webhooks_vector() {
        assert_eq!(key().len(), 24);
        assert_eq!(sign(&key(), ID, TS, BODY), SIGNATURE);
    }

    #[test]
    fn the_vector_verifies_alone_and_among_other_signatures() {
        let now = 1_649_367_553;
        assert_eq!(check(SIGNATURE, BODY, now), Ok(()));
        let several = format!(
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1a,abc {SIGNATURE} v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q="
        );
        assert_eq!(check(&several, BODY, now + 299), Ok(()));
    }

    #[test]
    fn a_changed_body_or_other_signatures_do_not_verify() {
        let now = 1_649_367_553;
        let changed = br#"{"email":"test@example.com","username":"test_user2"}"#;
        assert_eq!(check(SIGNATURE, changed, now), Err(BadSignature::NoMatch));
        assert_eq!(
            check(
                "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,not-base64",
                BODY,
                now
            ),
            Err(BadSignature::NoMatch)
        );
        // The right signature under another version tag is not a v1 signature.
        let v2 = SIGNATURE.replacen("v1,", "v2,", 1);
        assert_eq!(check(&v2, BODY, now), Err(BadSignature::NoMatch));
    }

    #[test]
    fn timestamps_more_than_five_minutes_away_are_refused() {
        let at = 1_649_367_553;
        assert_eq!(
            check(SIGNATURE, BODY, at + 301),
            Err(BadSignature::OutsideTolerance)
        );
        assert_eq!(
            check(SIGNATURE, BODY, at - 301),
            Err(BadSignature::OutsideTolerance)
        );
        assert_eq!(
            verify_signature(&key(), Some(ID), Some("soon"), Some(SIGNATURE), BODY, at),
            Err(BadSignature::MalformedTimestamp)
        );
        assert_eq!(
            verify_signature(&key(), None, Some(TS), Some(SIGNATURE), BODY, at),
            Err(BadSignature::MissingHeader("webhook-id"))
        );
    }

    fn delivery(id: &str, body: Value) -> Delivery {
        Delivery {
            event_id: id.into(),
            received_at: DateTime::parse_from_rfc3339("2026-12-04T10:00:01.5Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            body: body.to_string().into_bytes(),
        }
    }

    fn completed(call: &str, status: &str, reason: Option<&str>) -> Value {
        json!({"type": "call.completed", "timestamp": "2026-12-04T10:00:01Z", "data": {
            "api_call_id": call, "type": "TRANSACTION", "status": status, "reason": reason,
            "created_at": "2026-12-04T10:00:00Z", "completed_at": "2026-12-04T10:00:01Z",
            "result": null}})
    }

    fn seen(state: &str, reason: Option<&str>) -> FinalSeen {
        FinalSeen {
            state: state.into(),
            reason: reason.map(str::to_owned),
            completed_at: None,
            seen_at: Utc::now(),
            resource_id: None,
        }
    }

    #[test]
    fn the_tally_counts_duplicates_missing_and_unexpected_events() {
        let registered = DateTime::parse_from_rfc3339("2026-12-04T09:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let mut t = Tally::default();
        let a = delivery("evt_a", completed("CALL_A", "APPROVED", None));
        assert!(matches!(t.record(&a), Recorded::FirstCall { .. }));
        assert_eq!(t.record(&a), Recorded::Duplicate);
        t.record(&delivery(
            "evt_b",
            completed("CALL_B", "REJECTED", Some("OVERPAYMENT")),
        ));
        t.record(&delivery("evt_x", completed("CALL_X", "APPROVED", None)));
        // The same outcome under another event id is counted; another outcome is not so.
        t.record(&delivery("evt_a2", completed("CALL_A", "APPROVED", None)));
        t.record(&delivery(
            "evt_a3",
            completed("CALL_A", "REJECTED", Some("INSUFFICIENT_LIMIT")),
        ));
        // A payment is the platform's call (admin key), never the merchant's to be told.
        t.record(&delivery("evt_pay", completed("CALL_P", "APPROVED", None)));
        let mut stale = completed("CALL_OLD", "APPROVED", None);
        stale["timestamp"] = json!("2026-12-04T08:00:00Z");
        t.record(&delivery("evt_old", stale));
        t.record(&delivery(
            "evt_p",
            json!({"type": "contract.paid_off", "timestamp": "2026-12-04T10:00:01Z",
                   "data": {"nomor_kontrak": "K1", "status_kontrak": "PAID_OFF"}}),
        ));
        t.record(&delivery(
            "evt_p2",
            json!({"type": "contract.paid_off", "timestamp": "2026-12-04T10:00:02Z",
                   "data": {"nomor_kontrak": "K1", "status_kontrak": "CANCELLED"}}),
        ));
        t.record(&delivery(
            "evt_p3",
            json!({"type": "contract.paid_off", "timestamp": "2026-12-04T10:00:02Z",
                   "data": {"nomor_kontrak": "K1", "status_kontrak": "ACTIVE"}}),
        ));
        t.record(&delivery(
            "evt_q",
            json!({"type": "contract.cancelled", "timestamp": "2026-12-04T10:00:01Z",
                   "data": {"nomor_kontrak": "K9"}}),
        ));
        t.record(&delivery(
            "evt_z",
            json!({"type": "installment.overdue", "data": {}}),
        ));
        assert_eq!((t.deliveries, t.duplicates, t.repeated_calls), (13, 1, 2));

        let mut calls: HashMap<String, Kind> = ["CALL_A", "CALL_B", "CALL_C", "CALL_D"]
            .iter()
            .map(|c| ((*c).to_owned(), Kind::Transaction))
            .collect();
        calls.insert("CALL_P".into(), Kind::Payment);
        let finals: HashMap<String, FinalSeen> = [
            ("CALL_A".to_owned(), seen("APPROVED", None)),
            (
                "CALL_B".to_owned(),
                seen("REJECTED", Some("INSUFFICIENT_LIMIT")),
            ),
            ("CALL_C".to_owned(), seen("APPROVED", None)),
        ]
        .into_iter()
        .collect();
        let contracts: HashSet<String> = ["K1".to_owned()].into_iter().collect();
        let j = judge(&t, &calls, &finals, &contracts, registered);
        // CALL_C final and never told; CALL_D never final, so not owed.
        assert_eq!(j.missing.len(), 1);
        assert!(j.missing[0].contains("CALL_C"));
        // CALL_A told twice differently, CALL_B told another reason than polled, CALL_X never
        // made, CALL_P a payment, K1 paid off yet active, K9 not ours, an unsubscribed type.
        assert_eq!(j.unexpected.len(), 7, "{:?}", j.unexpected);
        assert_eq!(j.earlier, 1);
        assert_eq!(j.lag.count, 2);
        assert_eq!(j.lag.p50, 500.0);
    }

    #[tokio::test]
    async fn the_receiver_answers_2xx_to_signed_deliveries_and_401_to_the_rest() -> Result<()> {
        let (receiver, mut rx) = Receiver::start("127.0.0.1:0".parse()?).await?;
        let http = reqwest::Client::new();
        let body = completed("CALL_A", "APPROVED", None).to_string();
        let now = Utc::now().timestamp().to_string();
        let deliver = |id: &str, signature: &str| {
            http.post(receiver.url())
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", &now)
                .header("webhook-signature", signature)
                .body(body.clone())
                .send()
        };
        let good = sign(&key(), "evt_1", &now, body.as_bytes());
        // Before the secret is known nothing can be checked, so nothing is taken.
        assert_eq!(deliver("evt_1", &good).await?.status(), 401);
        receiver.set_secret(SECRET)?;
        assert_eq!(deliver("evt_1", &good).await?.status(), 204);
        let other = sign(b"another secret", "evt_2", &now, body.as_bytes());
        assert_eq!(deliver("evt_2", &other).await?.status(), 401);
        // Signed for another id: the id is part of what is signed.
        assert_eq!(deliver("evt_3", &good).await?.status(), 401);
        assert_eq!(receiver.bad_signatures().0, 3);
        receiver.stop().await;
        let d = rx.recv().await.context("the valid delivery")?;
        assert_eq!(d.event_id, "evt_1");
        assert_eq!(d.body, body.as_bytes());
        assert!(
            rx.recv().await.is_none(),
            "only the valid delivery comes out"
        );
        Ok(())
    }
}
