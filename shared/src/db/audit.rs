//! `api_call_logs`: one row per audited request, written in batches off the request path.

use super::{DbError, to_naive};
use chrono::{DateTime, Utc};
use sqlx::MySqlPool;

/// Serialized as is into the ingress's spill file (rows MySQL could not take), so an operator
/// can load them later.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRow {
    pub api_call_id: String,
    pub method: String,
    pub path: String,
    pub merchant_id: Option<String>,
    pub client_id: Option<String>,
    pub external_id: Option<String>,
    pub http_status: u16,
    pub message_action: String,
    /// Already masked.
    pub request_body: Option<String>,
    /// Already masked.
    pub response_body: Option<String>,
    pub client_ip: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_us: u64,
}

impl AuditRow {
    /// Roughly the bytes the row takes in an insert statement: what bounds a batch.
    pub fn size(&self) -> usize {
        const FIXED: usize = 64;
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        FIXED
            + self.api_call_id.len()
            + self.method.len()
            + self.path.len()
            + text(&self.merchant_id)
            + text(&self.client_id)
            + text(&self.external_id)
            + self.message_action.len()
            + text(&self.request_body)
            + text(&self.response_body)
            + text(&self.client_ip)
    }
}

/// Writes rows in one multi-row insert. A duplicate api call id cannot happen (ids are
/// unique), but `IGNORE` keeps a retried batch from failing on rows it already wrote.
pub async fn insert_batch(pool: &MySqlPool, rows: &[AuditRow]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    super::write_rows(
        &mut conn,
        "INSERT IGNORE INTO api_call_logs (api_call_id, method, path, merchant_id, client_id, external_id,
            http_status, message_action, request_body, response_body, client_ip, started_at, duration_us) ",
        "",
        rows,
        |mut b, r| {
            b.push_bind(&r.api_call_id)
                .push_bind(&r.method)
                .push_bind(&r.path)
                .push_bind(&r.merchant_id)
                .push_bind(&r.client_id)
                .push_bind(&r.external_id)
                .push_bind(r.http_status)
                .push_bind(&r.message_action)
                .push_bind(&r.request_body)
                .push_bind(&r.response_body)
                .push_bind(&r.client_ip)
                .push_bind(to_naive(r.started_at))
                .push_bind(r.duration_us);
        },
    )
    .await?;
    Ok(())
}
