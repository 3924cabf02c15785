//! External-id records and the outcomes of asynchronous calls.

use super::users::IdempotencyRecord;
use super::{DbError, from_naive, to_naive};
use crate::envelope::RejectReason;
use crate::messages::CallType;
use crate::status::{CallState, CallStatus, ResultJson};
use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlConnection, QueryBuilder, Row};

pub async fn insert_idempotency(
    conn: &mut MySqlConnection,
    idem: &IdempotencyRecord<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    insert_idempotency_many(conn, &[(idem, now)]).await
}

/// Claims several external ids (each with its time), all or none within the caller's
/// transaction: a unique violation on any of them fails the call, and the caller rolls back.
pub async fn insert_idempotency_many(
    conn: &mut MySqlConnection,
    records: &[(&IdempotencyRecord<'_>, DateTime<Utc>)],
) -> Result<(), DbError> {
    super::write_rows(
        conn,
        "INSERT INTO idempotency_keys (merchant_id, endpoint, external_id, api_call_id, body_sha256, created_at) ",
        "",
        records,
        |mut b, (idem, at)| {
            b.push_bind(idem.merchant_id)
                .push_bind(idem.endpoint)
                .push_bind(idem.external_id)
                .push_bind(idem.api_call_id)
                .push_bind(&idem.body_sha256[..])
                .push_bind(to_naive(*at));
        },
    )
    .await?;
    Ok(())
}

/// The call that used an external id, and the SHA-256 of its body.
pub async fn find_idempotency<'e, E>(
    executor: E,
    merchant_id: &str,
    endpoint: &str,
    external_id: &str,
) -> Result<Option<(String, [u8; 32])>, DbError>
where
    E: sqlx::Executor<'e, Database = MySql>,
{
    let row = sqlx::query(
        "SELECT api_call_id, body_sha256 FROM idempotency_keys WHERE merchant_id = ? AND endpoint = ? AND external_id = ?",
    )
    .bind(merchant_id)
    .bind(endpoint)
    .bind(external_id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(call_and_sha).transpose()
}

/// An external id, as its key in `idempotency_keys`: (merchant, endpoint, external id).
pub type ExternalIdKey = (String, String, String);

/// Up to `limit` used external ids after `after`, in primary-key order (a keyset scan of
/// the whole table, chunk by chunk).
pub async fn idempotency_keys_after(
    pool: &sqlx::MySqlPool,
    after: Option<&ExternalIdKey>,
    limit: i64,
) -> Result<Vec<ExternalIdKey>, DbError> {
    let mut query =
        QueryBuilder::new("SELECT merchant_id, endpoint, external_id FROM idempotency_keys ");
    // Spelled out rather than as a row comparison, which MariaDB does not read as a range.
    if let Some((merchant, endpoint, external)) = after {
        query
            .push("WHERE merchant_id > ")
            .push_bind(merchant)
            .push(" OR (merchant_id = ")
            .push_bind(merchant)
            .push(" AND (endpoint > ")
            .push_bind(endpoint)
            .push(" OR (endpoint = ")
            .push_bind(endpoint)
            .push(" AND external_id > ")
            .push_bind(external)
            .push("))) ");
    }
    query
        .push("ORDER BY merchant_id, endpoint, external_id LIMIT ")
        .push_bind(limit);
    let rows = query.build_query_as().fetch_all(pool).await?;
    Ok(rows)
}

/// [`find_idempotency`] for many ids in one statement (a range read on the primary key): the
/// ids that are used, each with its call and body hash; unused ids are absent.
pub async fn find_idempotency_many<'e, E>(
    executor: E,
    keys: &[ExternalIdKey],
) -> Result<std::collections::HashMap<ExternalIdKey, (String, [u8; 32])>, DbError>
where
    E: sqlx::Executor<'e, Database = MySql>,
{
    let mut found = std::collections::HashMap::new();
    if keys.is_empty() {
        return Ok(found);
    }
    let mut select = QueryBuilder::new(
        "SELECT merchant_id, endpoint, external_id, api_call_id, body_sha256 FROM idempotency_keys \
         WHERE (merchant_id, endpoint, external_id) IN (",
    );
    let mut list = select.separated(", ");
    for (merchant, endpoint, external) in keys {
        list.push("(")
            .push_bind_unseparated(merchant.as_str())
            .push_unseparated(", ")
            .push_bind_unseparated(endpoint.as_str())
            .push_unseparated(", ")
            .push_bind_unseparated(external.as_str())
            .push_unseparated(")");
    }
    select.push(")");
    for row in select.build().fetch_all(executor).await? {
        let key = (
            row.try_get("merchant_id")?,
            row.try_get("endpoint")?,
            row.try_get("external_id")?,
        );
        found.insert(key, call_and_sha(&row)?);
    }
    Ok(found)
}

fn call_and_sha(row: &sqlx::mysql::MySqlRow) -> Result<(String, [u8; 32]), DbError> {
    let call: String = row.try_get("api_call_id")?;
    let sha: Vec<u8> = row.try_get("body_sha256")?;
    let sha: [u8; 32] = sha
        .try_into()
        .map_err(|_| DbError::Corrupt("body_sha256 length".into()))?;
    Ok((call, sha))
}

/// One decided asynchronous call.
pub struct Outcome<'a> {
    pub api_call_id: &'a str,
    pub merchant_id: &'a str,
    pub client_id: &'a str,
    pub external_id: &'a str,
    pub call_type: CallType,
    pub state: CallState,
    pub reason: Option<RejectReason>,
    pub result: Option<&'a ResultJson>,
    pub created_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
}

pub async fn insert_outcome(conn: &mut MySqlConnection, o: &Outcome<'_>) -> Result<(), DbError> {
    insert_outcomes(conn, std::slice::from_ref(o)).await
}

/// Several outcomes (`super::write_rows`).
pub async fn insert_outcomes(
    conn: &mut MySqlConnection,
    outcomes: &[Outcome<'_>],
) -> Result<(), DbError> {
    super::write_rows(
        conn,
        "INSERT INTO async_outcomes (api_call_id, merchant_id, client_id, external_id, call_type, status, reason, result, created_at, completed_at) ",
        "",
        outcomes,
        |mut b, o| {
            b.push_bind(o.api_call_id)
                .push_bind(o.merchant_id)
                .push_bind(o.client_id)
                .push_bind(o.external_id)
                .push_bind(o.call_type.as_str())
                .push_bind(o.state.as_str())
                .push_bind(o.reason.map(RejectReason::as_str))
                .push_bind(o.result.map(ResultJson::as_str))
                .push_bind(to_naive(o.created_at))
                .push_bind(to_naive(o.completed_at));
        },
    )
    .await?;
    Ok(())
}

const OUTCOME_COLUMNS: &str =
    "api_call_id, merchant_id, call_type, status, reason, result, created_at, completed_at";

/// The stored outcome of a call and its merchant.
pub async fn get_outcome<'e, E>(
    executor: E,
    api_call_id: &str,
) -> Result<Option<(String, CallStatus)>, DbError>
where
    E: sqlx::Executor<'e, Database = MySql>,
{
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {OUTCOME_COLUMNS} FROM async_outcomes WHERE api_call_id = ?"
    )))
    .bind(api_call_id)
    .fetch_optional(executor)
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some((r.try_get("merchant_id")?, status_from_row(&r)?)))
}

/// The stored outcomes of `api_call_ids`, by call (calls not decided are absent). One query.
pub async fn get_outcomes<'e, E>(
    executor: E,
    api_call_ids: &[String],
) -> Result<std::collections::HashMap<String, CallStatus>, DbError>
where
    E: sqlx::Executor<'e, Database = MySql>,
{
    if api_call_ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let mut query = QueryBuilder::<MySql>::new(format!(
        "SELECT {OUTCOME_COLUMNS} FROM async_outcomes WHERE api_call_id IN "
    ));
    super::push_in_list(&mut query, api_call_ids.iter().map(String::as_str));
    query
        .build()
        .fetch_all(executor)
        .await?
        .iter()
        .map(|r| status_from_row(r).map(|s| (s.api_call_id.clone(), s)))
        .collect()
}

fn status_from_row(r: &sqlx::mysql::MySqlRow) -> Result<CallStatus, DbError> {
    let call_type: String = r.try_get("call_type")?;
    let state: String = r.try_get("status")?;
    let reason: Option<String> = r.try_get("reason")?;
    let result: Option<String> = r.try_get("result")?;
    let created: chrono::NaiveDateTime = r.try_get("created_at")?;
    let completed: chrono::NaiveDateTime = r.try_get("completed_at")?;
    Ok(CallStatus {
        api_call_id: r.try_get("api_call_id")?,
        call_type: CallType::parse(&call_type)
            .ok_or_else(|| DbError::Corrupt(format!("call_type {call_type}")))?,
        status: CallState::parse(&state)
            .ok_or_else(|| DbError::Corrupt(format!("status {state}")))?,
        reason: reason.as_deref().and_then(RejectReason::parse),
        created_at: from_naive(created),
        completed_at: Some(from_naive(completed)),
        result: result
            .map(ResultJson::from_stored)
            .transpose()
            .map_err(|e| DbError::Corrupt(format!("result: {e}")))?,
    })
}

/// An asynchronous call the ingress accepted (202), as the audit log has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedCall {
    pub merchant_id: String,
    pub call_type: CallType,
    pub accepted_at: DateTime<Utc>,
}

/// An asynchronous call the ingress accepted (202) but no worker has decided yet, from the
/// audit log.
pub async fn find_accepted_call(
    pool: &sqlx::MySqlPool,
    api_call_id: &str,
) -> Result<Option<AcceptedCall>, DbError> {
    let row = sqlx::query(
        "SELECT merchant_id, path, started_at FROM api_call_logs
         WHERE api_call_id = ? AND http_status = 202 AND method = 'POST'",
    )
    .bind(api_call_id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let merchant: Option<String> = r.try_get("merchant_id")?;
    let path: String = r.try_get("path")?;
    let started: chrono::NaiveDateTime = r.try_get("started_at")?;
    let call_type = if path.starts_with("/transaction") {
        CallType::Transaction
    } else if path.starts_with("/payment") {
        CallType::Payment
    } else if path.starts_with("/refund") {
        CallType::Refund
    } else {
        return Ok(None);
    };
    Ok(merchant.map(|merchant_id| AcceptedCall {
        merchant_id,
        call_type,
        accepted_at: from_naive(started),
    }))
}
