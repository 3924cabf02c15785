//! Webhooks in MySQL (SPEC §11): a merchant's endpoint (its secret encrypted at rest), the
//! outbox of events, the dispatchers' leases on them, and the attempts.

use super::outcomes::{find_idempotency, insert_idempotency};
use super::users::IdempotencyRecord;
use super::{DbError, from_naive, push_in_list, to_naive};
use crate::crypto::Keyring;
use crate::status::format_instant;
use crate::webhooks::{DeliveryStatus, EventType};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sqlx::mysql::MySqlRow;
use sqlx::{MySql, MySqlConnection, MySqlPool, QueryBuilder, Row};
use std::collections::BTreeMap;

fn secret_aad(merchant_id: &str) -> Vec<u8> {
    format!("webhook-secret:{merchant_id}").into_bytes()
}

/// A merchant's registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub events: Vec<EventType>,
    pub created_at: DateTime<Utc>,
}

fn events_column(events: &[EventType]) -> String {
    events
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_events(column: &str) -> Vec<EventType> {
    column.split(',').filter_map(EventType::parse).collect()
}

fn endpoint_from_row(r: &MySqlRow) -> Result<Endpoint, DbError> {
    let events: String = r.try_get("events")?;
    let created: NaiveDateTime = r.try_get("created_at")?;
    Ok(Endpoint {
        url: r.try_get("url")?,
        events: parse_events(&events),
        created_at: from_naive(created),
    })
}

/// The endpoint as stored, and its secret when this call created or rotated it.
pub struct PutEndpoint {
    pub endpoint: Endpoint,
    pub secret: Option<String>,
}

/// Registers or updates the merchant's endpoint. A fresh secret when there was none (or it
/// was deleted) or when `rotate` asks for one; otherwise the secret stays and is not shown.
pub async fn put_endpoint(
    pool: &MySqlPool,
    keyring: &Keyring,
    merchant_id: &str,
    url: &str,
    events: &[EventType],
    rotate: bool,
    now: DateTime<Utc>,
) -> Result<PutEndpoint, DbError> {
    // Two first registrations racing: the loser's insert is a duplicate, and its second pass
    // finds and locks the winner's row.
    for _ in 0..2 {
        match try_put_endpoint(pool, keyring, merchant_id, url, events, rotate, now).await {
            Err(e) if e.is_unique_violation() => continue,
            other => return other,
        }
    }
    try_put_endpoint(pool, keyring, merchant_id, url, events, rotate, now).await
}

async fn try_put_endpoint(
    pool: &MySqlPool,
    keyring: &Keyring,
    merchant_id: &str,
    url: &str,
    events: &[EventType],
    rotate: bool,
    now: DateTime<Utc>,
) -> Result<PutEndpoint, DbError> {
    let ts = to_naive(now);
    let mut tx = pool.begin().await?;
    let existing = sqlx::query(
        "SELECT created_at, deleted_at FROM webhook_endpoints WHERE merchant_id = ? FOR UPDATE",
    )
    .bind(merchant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let live_since: Option<NaiveDateTime> = match &existing {
        Some(r) => {
            let deleted: Option<NaiveDateTime> = r.try_get("deleted_at")?;
            match deleted {
                None => Some(r.try_get("created_at")?),
                Some(_) => None,
            }
        }
        None => None,
    };
    let secret = match (live_since, rotate) {
        (Some(_), false) => None,
        _ => Some(crate::webhooks::new_secret().map_err(|e| DbError::Corrupt(e.to_string()))?),
    };
    let created_at = live_since.unwrap_or(ts);
    let events_col = events_column(events);
    match (&existing, &secret) {
        (None, Some(secret)) => {
            let (key_id, ct) = keyring
                .encrypt(secret.as_bytes(), &secret_aad(merchant_id))
                .map_err(|e| DbError::Corrupt(e.to_string()))?;
            sqlx::query(
                "INSERT INTO webhook_endpoints (merchant_id, url, events, secret_key_id, secret_ciphertext, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(merchant_id)
            .bind(url)
            .bind(&events_col)
            .bind(key_id)
            .bind(ct)
            .bind(ts)
            .bind(ts)
            .execute(&mut *tx)
            .await?;
        }
        (Some(_), Some(secret)) => {
            let (key_id, ct) = keyring
                .encrypt(secret.as_bytes(), &secret_aad(merchant_id))
                .map_err(|e| DbError::Corrupt(e.to_string()))?;
            sqlx::query(
                "UPDATE webhook_endpoints SET url = ?, events = ?, secret_key_id = ?, secret_ciphertext = ?,
                    created_at = ?, updated_at = ?, deleted_at = NULL
                 WHERE merchant_id = ?",
            )
            .bind(url)
            .bind(&events_col)
            .bind(key_id)
            .bind(ct)
            .bind(created_at)
            .bind(ts)
            .bind(merchant_id)
            .execute(&mut *tx)
            .await?;
        }
        (_, None) => {
            sqlx::query(
                "UPDATE webhook_endpoints SET url = ?, events = ?, updated_at = ? WHERE merchant_id = ?",
            )
            .bind(url)
            .bind(&events_col)
            .bind(ts)
            .bind(merchant_id)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(PutEndpoint {
        endpoint: Endpoint {
            url: url.to_owned(),
            events: events.to_vec(),
            created_at: from_naive(created_at),
        },
        secret,
    })
}

/// The merchant's endpoint, if one is registered.
pub async fn get_endpoint(
    pool: &MySqlPool,
    merchant_id: &str,
) -> Result<Option<Endpoint>, DbError> {
    let row = sqlx::query(
        "SELECT url, events, created_at FROM webhook_endpoints WHERE merchant_id = ? AND deleted_at IS NULL",
    )
    .bind(merchant_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(endpoint_from_row).transpose()
}

/// Where a merchant's events go, with the secret still sealed: read with the events (by the
/// outbox in the batch's transaction, by a dispatcher with its lease) and opened only to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEndpoint {
    pub url: String,
    pub secret_key_id: String,
    pub secret_ciphertext: Vec<u8>,
}

impl SealedEndpoint {
    fn from_row(r: &MySqlRow) -> Result<SealedEndpoint, sqlx::Error> {
        Ok(SealedEndpoint {
            url: r.try_get("url")?,
            secret_key_id: r.try_get("secret_key_id")?,
            secret_ciphertext: r.try_get("secret_ciphertext")?,
        })
    }

    /// The `whsec_…` secret of `merchant_id`'s endpoint.
    pub fn open(&self, keyring: &Keyring, merchant_id: &str) -> Result<String, DbError> {
        let secret = keyring
            .decrypt(
                &self.secret_key_id,
                &self.secret_ciphertext,
                &secret_aad(merchant_id),
            )
            .map_err(|e| DbError::Corrupt(format!("webhook secret of {merchant_id}: {e}")))?;
        String::from_utf8(secret).map_err(|_| DbError::Corrupt("webhook secret not UTF-8".into()))
    }
}

/// Deletes the merchant's endpoint (its secret wiped) and cancels its pending deliveries.
/// False when nothing was registered.
pub async fn delete_endpoint(
    pool: &MySqlPool,
    merchant_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let ts = to_naive(now);
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query(
        "UPDATE webhook_endpoints SET deleted_at = ?, updated_at = ?, secret_ciphertext = ''
         WHERE merchant_id = ? AND deleted_at IS NULL",
    )
    .bind(ts)
    .bind(ts)
    .bind(merchant_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE webhook_events SET status = 'failed', lease_id = ''
         WHERE merchant_id = ? AND status = 'pending'",
    )
    .bind(merchant_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Re-encrypts every endpoint secret not under the active master key (master key rotation).
pub async fn reencrypt_secrets(pool: &MySqlPool, keyring: &Keyring) -> Result<u64, DbError> {
    let rows = sqlx::query(
        "SELECT merchant_id, secret_key_id, secret_ciphertext FROM webhook_endpoints
         WHERE secret_key_id <> ? AND deleted_at IS NULL",
    )
    .bind(keyring.active_key_id())
    .fetch_all(pool)
    .await?;
    let mut n = 0;
    for r in rows {
        let merchant_id: String = r.try_get("merchant_id")?;
        let key_id: String = r.try_get("secret_key_id")?;
        let ct: Vec<u8> = r.try_get("secret_ciphertext")?;
        let aad = secret_aad(&merchant_id);
        let plain = keyring
            .decrypt(&key_id, &ct, &aad)
            .map_err(|e| DbError::Corrupt(format!("webhook secret of {merchant_id}: {e}")))?;
        let (new_id, new_ct) = keyring
            .encrypt(&plain, &aad)
            .map_err(|e| DbError::Corrupt(e.to_string()))?;
        n += sqlx::query(
            "UPDATE webhook_endpoints SET secret_key_id = ?, secret_ciphertext = ?
             WHERE merchant_id = ? AND secret_key_id = ?",
        )
        .bind(new_id)
        .bind(new_ct)
        .bind(&merchant_id)
        .bind(&key_id)
        .execute(pool)
        .await?
        .rows_affected();
    }
    Ok(n)
}

/// A merchant's endpoint as an event being recorded sees it.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub events: Vec<EventType>,
    pub endpoint: SealedEndpoint,
}

impl Subscription {
    pub fn wants(&self, event_type: EventType) -> bool {
        self.events.contains(&event_type)
    }
}

/// The endpoints of `merchants` (merchants without one are absent). One query.
pub async fn subscriptions(
    conn: &mut MySqlConnection,
    merchants: &[&str],
) -> Result<BTreeMap<String, Subscription>, sqlx::Error> {
    if merchants.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut query = QueryBuilder::<MySql>::new(
        "SELECT merchant_id, events, url, secret_key_id, secret_ciphertext FROM webhook_endpoints \
         WHERE deleted_at IS NULL AND merchant_id IN ",
    );
    push_in_list(&mut query, merchants.iter().copied());
    let mut found = BTreeMap::new();
    for r in query.build().fetch_all(&mut *conn).await? {
        let events: String = r.try_get("events")?;
        let subscription = Subscription {
            events: parse_events(&events),
            endpoint: SealedEndpoint::from_row(&r)?,
        };
        found.insert(r.try_get("merchant_id")?, subscription);
    }
    Ok(found)
}

/// An event to record in the outbox.
pub struct NewEvent {
    pub event_id: String,
    pub merchant_id: String,
    pub event_type: EventType,
    /// What caused it, an api call or (`installment.overdue`) an installment: an event per
    /// (source, type) at most.
    pub source_id: String,
    /// The exact body every attempt sends. Stored only for the types whose body is not
    /// rendered again from what caused them ([`EventType::renders_from_outcome`]).
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

/// The body every attempt sends (Standard Webhooks): `type`, `timestamp`, `data`.
#[derive(Serialize)]
struct EventBody<'a, T: Serialize> {
    #[serde(rename = "type")]
    event_type: &'static str,
    timestamp: &'a str,
    data: &'a T,
}

/// The body of an event of `event_type` recorded at `created_at` about `data`. A pure
/// function of its arguments, so a body rendered again from the same stored facts is the same
/// bytes.
pub fn event_body<T: Serialize>(
    event_type: EventType,
    created_at: &DateTime<Utc>,
    data: &T,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&EventBody {
        event_type: event_type.as_str(),
        timestamp: &format_instant(created_at),
        data,
    })
}

impl NewEvent {
    /// A fresh event of `merchant_id` about `data`, caused by `source_id`, recorded `now`.
    pub fn new<T: Serialize>(
        merchant_id: &str,
        event_type: EventType,
        source_id: &str,
        data: &T,
        now: DateTime<Utc>,
    ) -> Result<Self, serde_json::Error> {
        // Stored to the microsecond: the instant in the body is the stored one.
        let now = chrono::SubsecRound::trunc_subsecs(now, 6);
        Ok(Self {
            event_id: crate::ids::new_event_id(),
            merchant_id: merchant_id.to_owned(),
            event_type,
            source_id: source_id.to_owned(),
            payload: event_body(event_type, &now, data)?,
            created_at: now,
        })
    }
}

/// A dispatcher's lease, written with the events it covers: the process that records events
/// and hands them to its own dispatcher once they commit holds them until `until`; after that
/// any dispatcher takes them, as from a dispatcher that died.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub id: &'a str,
    pub until: DateTime<Utc>,
}

/// Writes `events`, due now or under `lease`, and the bodies that are stored. An event its
/// call already caused (a redelivered command) is kept as it was and its new body not
/// written. For each event, whether it was written now; those count in
/// `xyz_webhook_events_recorded_total`.
pub async fn insert_events(
    conn: &mut MySqlConnection,
    events: &[NewEvent],
    lease: Option<Lease<'_>>,
) -> Result<Vec<bool>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // IGNORE skips only the rows whose (source, type) exists: every value is ours and fits.
    let inserted = super::write_rows(
        conn,
        "INSERT IGNORE INTO webhook_events (event_id, merchant_id, type, source_id, status, attempts, next_attempt_at, lease_id, created_at) ",
        "",
        events,
        |mut b, e| {
            let at = to_naive(e.created_at);
            b.push_bind(e.event_id.clone());
            b.push_bind(e.merchant_id.clone());
            b.push_bind(e.event_type.as_str());
            b.push_bind(e.source_id.clone());
            b.push_bind("pending");
            b.push_bind(0u32);
            b.push_bind(lease.map_or(at, |l| to_naive(l.until)));
            b.push_bind(lease.map_or("", |l| l.id));
            b.push_bind(at);
        },
    )
    .await?;
    let written: Vec<bool> = if inserted == events.len() as u64 {
        vec![true; events.len()]
    } else {
        // A redelivery found some: which ones are new.
        let mut query =
            QueryBuilder::<MySql>::new("SELECT event_id FROM webhook_events WHERE event_id IN ");
        push_in_list(&mut query, events.iter().map(|e| e.event_id.as_str()));
        let found = event_ids(query, &mut *conn).await?;
        events.iter().map(|e| found.contains(&e.event_id)).collect()
    };
    let bodies: Vec<&NewEvent> = events
        .iter()
        .zip(&written)
        .filter(|(_, w)| **w)
        .map(|(e, _)| e)
        .collect();
    for e in &bodies {
        metrics::counter!("xyz_webhook_events_recorded_total", "type" => e.event_type.as_str())
            .increment(1);
    }
    let stored: Vec<&&NewEvent> = bodies
        .iter()
        .filter(|e| !e.event_type.renders_from_outcome())
        .collect();
    super::write_rows(
        conn,
        "INSERT INTO webhook_payloads (event_id, payload) ",
        "",
        &stored,
        |mut b, e| {
            b.push_bind(e.event_id.clone());
            b.push_bind(e.payload.clone());
        },
    )
    .await?;
    Ok(written)
}

/// The event ids `query` (a `SELECT event_id …`) finds.
async fn event_ids(
    mut query: QueryBuilder<MySql>,
    conn: &mut MySqlConnection,
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let ids: Vec<String> = query.build_query_scalar().fetch_all(conn).await?;
    Ok(ids.into_iter().collect())
}

/// One attempt, as the deliveries listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = WebhookAttempt))]
#[serde(deny_unknown_fields)]
pub struct AttemptView {
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Instant))]
    pub at: String,
    /// The receiver's HTTP status; null when none came (refused, unreachable, timed out).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub http_status: Option<u16>,
    /// Why it failed; null when the receiver answered 2xx.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub error: Option<String>,
    pub duration_ms: u32,
}

/// An event and its deliveries so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = WebhookDelivery))]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// The `webhook-id` of every attempt.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "evt_019ae5b2c3d47e8f9a0b1c2d3e4f5a6b")
    )]
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub status: DeliveryStatus,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Instant))]
    pub created_at: String,
    /// Oldest first.
    pub attempts: Vec<AttemptView>,
}

fn delivery_from_row(r: &MySqlRow) -> Result<Delivery, DbError> {
    let t: String = r.try_get("type")?;
    let s: String = r.try_get("status")?;
    let created: NaiveDateTime = r.try_get("created_at")?;
    Ok(Delivery {
        event_id: r.try_get("event_id")?,
        event_type: EventType::parse(&t)
            .ok_or_else(|| DbError::Corrupt(format!("event type {t}")))?,
        status: DeliveryStatus::parse(&s)
            .ok_or_else(|| DbError::Corrupt(format!("delivery status {s}")))?,
        created_at: format_instant(&from_naive(created)),
        attempts: Vec::new(),
    })
}

async fn attach_attempts(pool: &MySqlPool, deliveries: &mut [Delivery]) -> Result<(), DbError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let mut query = QueryBuilder::<MySql>::new(
        "SELECT event_id, at, http_status, error, duration_ms FROM webhook_attempts WHERE event_id IN ",
    );
    push_in_list(&mut query, deliveries.iter().map(|d| d.event_id.as_str()));
    query.push(" ORDER BY event_id, attempt_id");
    let rows = query.build().fetch_all(pool).await?;
    let mut by_event: BTreeMap<String, Vec<AttemptView>> = BTreeMap::new();
    for r in rows {
        let at: NaiveDateTime = r.try_get("at")?;
        let status: Option<u16> = r.try_get("http_status")?;
        let duration: u32 = r.try_get("duration_ms")?;
        by_event
            .entry(r.try_get("event_id")?)
            .or_default()
            .push(AttemptView {
                at: format_instant(&from_naive(at)),
                http_status: status,
                error: r.try_get("error")?,
                duration_ms: duration,
            });
    }
    for d in deliveries {
        d.attempts = by_event.remove(&d.event_id).unwrap_or_default();
    }
    Ok(())
}

/// One page of the merchant's events, newest first, before the event `before` (a cursor).
pub async fn deliveries_page(
    pool: &MySqlPool,
    merchant_id: &str,
    status: Option<DeliveryStatus>,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Delivery>, DbError> {
    let mut query = QueryBuilder::<MySql>::new(
        "SELECT event_id, type, status, created_at FROM webhook_events WHERE merchant_id = ",
    );
    query.push_bind(merchant_id);
    if let Some(s) = status {
        query.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(before) = before {
        query.push(" AND event_id < ").push_bind(before);
    }
    query
        .push(" ORDER BY event_id DESC LIMIT ")
        .push_bind(limit);
    let rows = query.build().fetch_all(pool).await?;
    let mut deliveries = rows
        .iter()
        .map(delivery_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    attach_attempts(pool, &mut deliveries).await?;
    Ok(deliveries)
}

/// One of the merchant's events with its attempts.
pub async fn get_delivery(
    pool: &MySqlPool,
    merchant_id: &str,
    event_id: &str,
) -> Result<Option<Delivery>, DbError> {
    let row = sqlx::query(
        "SELECT event_id, type, status, created_at FROM webhook_events WHERE event_id = ? AND merchant_id = ?",
    )
    .bind(event_id)
    .bind(merchant_id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let mut one = [delivery_from_row(&r)?];
    attach_attempts(pool, &mut one).await?;
    let [d] = one;
    Ok(Some(d))
}

/// What a manual retry did.
pub enum RetryOutcome {
    /// Due now (or already being attempted): the delivery as it stands.
    Scheduled(Delivery),
    NotFound,
    ExternalIdUsed {
        original_api_call_id: String,
        original_body_sha256: [u8; 32],
    },
}

/// Schedules one more attempt of the merchant's event now, whatever its status, atomically
/// with the external id's MySQL record. An event a dispatcher holds right now is left to that
/// attempt (two at once would break "no two at once").
pub async fn retry(
    pool: &MySqlPool,
    merchant_id: &str,
    event_id: &str,
    idem: &IdempotencyRecord<'_>,
    now: DateTime<Utc>,
) -> Result<RetryOutcome, DbError> {
    let ts = to_naive(now);
    let mut tx = pool.begin().await?;
    if let Err(e) = insert_idempotency(&mut tx, idem, now).await {
        if e.is_unique_violation() {
            drop(tx);
            let (original, sha) =
                find_idempotency(pool, idem.merchant_id, idem.endpoint, idem.external_id)
                    .await?
                    .ok_or_else(|| DbError::Corrupt("idempotency row vanished".into()))?;
            return Ok(RetryOutcome::ExternalIdUsed {
                original_api_call_id: original,
                original_body_sha256: sha,
            });
        }
        return Err(e);
    }
    let exists = sqlx::query(
        "SELECT status, lease_id, next_attempt_at FROM webhook_events
         WHERE event_id = ? AND merchant_id = ? FOR UPDATE",
    )
    .bind(event_id)
    .bind(merchant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(r) = exists else {
        // SPEC §3: a resource check keeps the claim.
        tx.commit().await?;
        return Ok(RetryOutcome::NotFound);
    };
    let status: String = r.try_get("status")?;
    let lease: String = r.try_get("lease_id")?;
    let due: NaiveDateTime = r.try_get("next_attempt_at")?;
    let in_flight = status == "pending" && !lease.is_empty() && due > ts;
    if !in_flight {
        sqlx::query(
            "UPDATE webhook_events SET status = 'pending', next_attempt_at = ?, lease_id = ''
             WHERE event_id = ?",
        )
        .bind(ts)
        .bind(event_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    get_delivery(pool, merchant_id, event_id)
        .await?
        .map(RetryOutcome::Scheduled)
        .ok_or_else(|| DbError::Corrupt("retried event vanished".into()))
}

/// An event a dispatcher holds under a lease.
#[derive(Debug, Clone)]
pub struct LeasedEvent {
    pub event_id: String,
    pub merchant_id: String,
    pub payload: String,
    /// Attempts finished before this one.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    /// When the lease runs out: after that another dispatcher may take the event.
    pub lease_until: DateTime<Utc>,
    /// The merchant's endpoint when the event was leased; None once it was deleted.
    pub endpoint: Option<SealedEndpoint>,
}

/// Takes up to `limit` due events that no other dispatcher holds (`SKIP LOCKED`), of any
/// merchant but those in `skip`, and leases them until `lease_until` under `lease_id`, in one
/// short transaction; then reads their bodies (stored, or rendered from the call's outcome)
/// and their endpoints.
pub async fn lease_due(
    pool: &MySqlPool,
    lease_id: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
    skip: &[&str],
) -> Result<Vec<LeasedEvent>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut query = QueryBuilder::<MySql>::new(
        "SELECT event_id FROM webhook_events WHERE status = 'pending' AND next_attempt_at <= ",
    );
    query.push_bind(to_naive(now));
    if !skip.is_empty() {
        query.push(" AND merchant_id NOT IN ");
        push_in_list(&mut query, skip.iter().copied());
    }
    query
        .push(" ORDER BY next_attempt_at LIMIT ")
        .push_bind(limit)
        .push(" FOR UPDATE SKIP LOCKED");
    let ids: Vec<String> = query.build_query_scalar().fetch_all(&mut *tx).await?;
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<MySql>::new("UPDATE webhook_events SET next_attempt_at = ");
    query
        .push_bind(to_naive(lease_until))
        .push(", lease_id = ")
        .push_bind(lease_id)
        .push(" WHERE event_id IN ");
    push_in_list(&mut query, ids.iter().map(String::as_str));
    query.build().execute(&mut *tx).await?;
    tx.commit().await?;
    // Bodies and outcomes never change once written: read outside the lease's transaction.
    let mut query = QueryBuilder::<MySql>::new(
        "SELECT e.event_id, e.merchant_id, e.type, e.source_id, e.attempts, e.created_at, p.payload, \
         w.url, w.secret_key_id, w.secret_ciphertext FROM webhook_events e \
         LEFT JOIN webhook_payloads p ON p.event_id = e.event_id \
         LEFT JOIN webhook_endpoints w ON w.merchant_id = e.merchant_id AND w.deleted_at IS NULL \
         WHERE e.event_id IN ",
    );
    push_in_list(&mut query, ids.iter().map(String::as_str));
    let rows = query.build().fetch_all(pool).await?;
    let calls: Vec<String> = rows
        .iter()
        .filter(|r| {
            r.try_get::<Option<String>, _>("payload")
                .is_ok_and(|p| p.is_none())
        })
        .map(|r| r.try_get::<String, _>("source_id"))
        .collect::<Result<_, _>>()?;
    let mut outcomes = super::outcomes::get_outcomes(pool, &calls)
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("webhook bodies: {e}")))?;
    let leased = rows.iter().map(|r| {
        let event_id: String = r.try_get("event_id")?;
        let created_at = from_naive(r.try_get("created_at")?);
        let payload = match r.try_get::<Option<String>, _>("payload")? {
            Some(payload) => payload,
            None => {
                let source: String = r.try_get("source_id")?;
                let event_type: String = r.try_get("type")?;
                let status = outcomes
                    .remove(&source)
                    .filter(|_| event_type == EventType::CallCompleted.as_str())
                    .ok_or_else(|| {
                        sqlx::Error::Protocol(format!("webhook event {event_id} has no body"))
                    })?;
                event_body(EventType::CallCompleted, &created_at, &status)
                    .map_err(|e| sqlx::Error::Protocol(format!("webhook body: {e}")))?
            }
        };
        let endpoint = match r.try_get::<Option<String>, _>("url")? {
            Some(_) => Some(SealedEndpoint::from_row(r)?),
            None => None,
        };
        Ok(LeasedEvent {
            merchant_id: r.try_get("merchant_id")?,
            attempts: r.try_get("attempts")?,
            event_id,
            payload,
            created_at,
            lease_until,
            endpoint,
        })
    });
    // An event whose body cannot be had stays leased, and is logged again when it comes back.
    Ok(leased
        .filter_map(|event: Result<LeasedEvent, sqlx::Error>| {
            event
                .inspect_err(|e| tracing::error!(error = %e, "a webhook event cannot be sent"))
                .ok()
        })
        .collect())
}

/// One finished attempt of a leased event, and what comes after it.
#[derive(Debug, Clone)]
pub struct Finished {
    pub event_id: String,
    pub at: DateTime<Utc>,
    pub http_status: Option<u16>,
    /// Why it failed (cut to 512 characters when written); None when delivered.
    pub error: Option<String>,
    pub duration_ms: u32,
    pub next: Next,
}

/// What comes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(DateTime<Utc>),
    Failed,
}

/// Records `finished` attempts in one transaction, so that many deliveries cost one commit
/// (the redo log's flushes are shared with the workers' batches), and moves each event on
/// unless its lease is no longer this dispatcher's (it ran out and another took the event,
/// or the endpoint was deleted): then only its attempt is recorded. For each, in order,
/// whether it moved on. A few statements whatever the number: the delivered events move in
/// one.
pub async fn finish_attempts(
    pool: &MySqlPool,
    lease_id: &str,
    finished: &[Finished],
) -> Result<Vec<bool>, sqlx::Error> {
    if finished.is_empty() {
        return Ok(Vec::new());
    }
    // Almost always every event is still this dispatcher's, each finished once: the updates,
    // conditioned on the lease, say so by the rows they change, and nothing is read.
    if let Some(moved) = record_attempts(pool, lease_id, finished, Check::ByUpdates).await? {
        return Ok(moved);
    }
    // Some were not (that transaction rolled back): which ones, read under lock first.
    record_attempts(pool, lease_id, finished, Check::ReadFirst)
        .await?
        .ok_or_else(|| sqlx::Error::Protocol("held webhook events changed under lock".into()))
}

/// How [`record_attempts`] learns which events are still this dispatcher's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Each update moves only an event leased here and pending; if any moves fewer rows than
    /// it names, the transaction is given up (None).
    ByUpdates,
    /// `SELECT … FOR UPDATE` of those leased here and pending, then only those are updated.
    ReadFirst,
}

async fn record_attempts(
    pool: &MySqlPool,
    lease_id: &str,
    finished: &[Finished],
    check: Check,
) -> Result<Option<Vec<bool>>, sqlx::Error> {
    const ERROR_CHARS: usize = 512;
    let mut tx = pool.begin().await?;
    super::write_rows(
        &mut tx,
        "INSERT INTO webhook_attempts (event_id, at, http_status, error, duration_ms) ",
        "",
        finished,
        |mut b, f| {
            b.push_bind(f.event_id.clone())
                .push_bind(to_naive(f.at))
                .push_bind(f.http_status)
                .push_bind(
                    f.error
                        .as_ref()
                        .map(|e| e.chars().take(ERROR_CHARS).collect::<String>()),
                )
                .push_bind(f.duration_ms);
        },
    )
    .await?;
    let moved: Vec<bool> = match check {
        Check::ByUpdates => vec![true; finished.len()],
        Check::ReadFirst => {
            let mut query =
                QueryBuilder::<MySql>::new("SELECT event_id FROM webhook_events WHERE lease_id = ");
            query
                .push_bind(lease_id)
                .push(" AND status = 'pending' AND event_id IN ");
            push_in_list(&mut query, finished.iter().map(|f| f.event_id.as_str()));
            query.push(" FOR UPDATE");
            let held = event_ids(query, &mut tx).await?;
            finished
                .iter()
                .map(|f| held.contains(&f.event_id))
                .collect()
        }
    };
    // Under ByUpdates each update carries the condition ReadFirst has read.
    let guarded = check == Check::ByUpdates;
    let delivered: Vec<&Finished> = finished
        .iter()
        .zip(&moved)
        .filter(|(f, m)| **m && f.next == Next::Delivered)
        .map(|(f, _)| f)
        .collect();
    if let Some(last) = delivered.iter().map(|f| f.at).max() {
        let mut query = QueryBuilder::<MySql>::new(
            "UPDATE webhook_events SET status = 'delivered', attempts = attempts + 1, lease_id = '', next_attempt_at = ",
        );
        query.push_bind(to_naive(last)).push(" WHERE ");
        if guarded {
            query
                .push("status = 'pending' AND lease_id = ")
                .push_bind(lease_id)
                .push(" AND ");
        }
        query.push("event_id IN ");
        push_in_list(&mut query, delivered.iter().map(|f| f.event_id.as_str()));
        let changed = query.build().execute(&mut *tx).await?.rows_affected();
        if guarded && changed != delivered.len() as u64 {
            // Dropping the transaction rolls it back.
            return Ok(None);
        }
    }
    for (f, _) in finished.iter().zip(&moved).filter(|(_, m)| **m) {
        let (status, due) = match f.next {
            Next::Delivered => continue,
            Next::RetryAt(t) => ("pending", t),
            Next::Failed => ("failed", f.at),
        };
        let mut query = QueryBuilder::<MySql>::new("UPDATE webhook_events SET status = ");
        query
            .push_bind(status)
            .push(", attempts = attempts + 1, lease_id = '', next_attempt_at = ")
            .push_bind(to_naive(due))
            .push(" WHERE event_id = ")
            .push_bind(&f.event_id);
        if guarded {
            query
                .push(" AND status = 'pending' AND lease_id = ")
                .push_bind(lease_id);
        }
        let changed = query.build().execute(&mut *tx).await?.rows_affected();
        if guarded && changed != 1 {
            return Ok(None);
        }
    }
    tx.commit().await?;
    Ok(Some(moved))
}

/// Events waiting for a delivery, across merchants (the pending gauge).
pub async fn count_pending(pool: &MySqlPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE status = 'pending'")
        .fetch_one(pool)
        .await
}
