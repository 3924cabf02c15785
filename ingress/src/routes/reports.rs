//! `GET /reports/settlement` (SPEC §14): one Jakarta day of approved calls per merchant, as
//! pages of JSON with the day's totals, or the whole day streamed as CSV.

use crate::caller::Caller;
use crate::error::ApiError;
use crate::pipeline::{OwnBody, Reply};
use crate::routes::listings::{Page, after, parse_query, split_page};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, NaiveDateTime};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use shared::db::settlement::{self, CSV_HEADER, Day, Entry, Totals};
use shared::openapi::Date;
use utoipa::ToSchema;

/// Rows per CSV chunk: big enough to keep the per-chunk overhead small, small enough that
/// the stream's buffers stay a few hundred KiB whatever the day's size.
const CSV_ROWS_PER_CHUNK: usize = 512;

/// The merchant names keys are issued for: `xyzctl keys create --name`.
fn is_merchant_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One page of a day's settlement.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettlementPage {
    #[schema(value_type = Date)]
    date: String,
    /// The merchant reported on; null for all merchants (admin without `merchant`).
    #[schema(required = true)]
    merchant: Option<String>,
    /// Count and exact sum per type, for the whole day.
    totals: Totals,
    /// Ordered by (`accepted_at`, `api_call_id`).
    items: Vec<Entry>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[schema(required = true, pattern = "^[A-Za-z0-9_-]+$")]
    next_cursor: Option<String>,
}

/// The query, checked in order: `date`, `merchant`, `limit`, `cursor`.
struct Query {
    date: NaiveDate,
    merchant: Option<String>,
    page: Page,
}

fn parse(query: Option<&str>) -> Result<Query, ApiError> {
    let (mut date, mut merchant) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "date" => date = Some(v),
            "merchant" => merchant = Some(v),
            _ => {}
        }
    }
    let date = date.ok_or_else(|| ApiError::mandatory("date"))?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .filter(|_| date.len() == 10)
        .ok_or_else(|| ApiError::invalid_value("date", "must be a real date, YYYY-MM-DD"))?;
    if merchant.is_some_and(|m| !is_merchant_name(m)) {
        return Err(ApiError::invalid_value(
            "merchant",
            "must be a merchant name of 1-64 characters [A-Za-z0-9_-]",
        ));
    }
    Ok(Query {
        date,
        merchant: merchant.map(str::to_owned),
        page: parse_query(query)?,
    })
}

/// CSV when the client asks for `text/csv` and does not rank JSON above it; JSON otherwise
/// (including `*/*`, no `Accept`, and types the engine does not serve: no 406).
fn wants_csv(headers: &HeaderMap) -> bool {
    let mut best: Option<(f32, bool)> = None;
    for v in headers.get_all(header::ACCEPT) {
        let Ok(v) = v.to_str() else { continue };
        for range in v.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let csv = match media.as_str() {
                "text/csv" => true,
                "application/json" => false,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, csv));
            }
        }
    }
    best.is_some_and(|(_, csv)| csv)
}

/// A day's settlement.
///
/// Merchants: their own contracts (`merchant` only with their own name, else 404). Admins:
/// every merchant, or the one named. Lists the calls accepted on the Jakarta date `date`
/// ([D−1 17:00Z, D 17:00Z)) that are approved at the time of the request (pending ones are
/// not listed), each under its contract's merchant whoever submitted it; `totals` are for the
/// whole day. With `Accept: text/csv`, the whole day as CSV (RFC 4180, CRLF, header
/// `type,api_call_id,external_id,nomor_kontrak,amount,accepted_at`), streamed; `limit` and
/// `cursor` are checked but a CSV is never paged. Any other `Accept` gets JSON.
#[utoipa::path(
    get,
    path = "/reports/settlement",
    operation_id = "getSettlementReport",
    tag = "reports",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(
        ("date" = Date, Query, description = "The Jakarta (UTC+7) date, YYYY-MM-DD; missing is \
            `400 INVALID_MANDATORY`, not a real date `400 INVALID_VALUE`."),
        ("merchant" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{1,64}$",
            description = "One merchant (a merchant key: only its own name, else 404)."),
        crate::openapi::PageParams,
        crate::openapi::ExternalIdOptional,
    ),
    responses(
        (status = 200, description = "One page of the day (JSON), or the whole day (CSV, \
            not in the envelope).",
            content(
                (crate::openapi::SettlementEnvelope = "application/json"),
                (String = "text/csv"),
            )),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn settlement(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let q = parse(uri.query())?;
    let merchant = match (&q.merchant, caller.is_admin()) {
        (Some(m), false) if *m != caller.key.merchant_id => return Err(ApiError::not_found()),
        (None, false) => Some(caller.key.merchant_id.clone()),
        (m, _) => m.clone(),
    };
    let scope = format!(
        "cursor:settlement:{}:{}",
        q.date,
        merchant.as_deref().unwrap_or("*")
    );
    let position = after(&state, &scope, &q.page, |t| {
        NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok()
    })?;
    if let Some(m) = merchant.as_deref().filter(|_| caller.is_admin())
        && !settlement::merchant_exists(&state.pool, m).await?
    {
        return Err(ApiError::not_found());
    }
    let day = Day::jakarta(q.date);
    if wants_csv(&headers) {
        return Ok(csv(&state, q.date, day, merchant));
    }
    let m = merchant.as_deref();
    let totals = settlement::totals(&state.pool, day, m).await?;
    let rows = settlement::page(&state.pool, day, m, position, q.page.limit + 1).await?;
    let (items, next_cursor) = split_page(&state, &scope, &q.page, rows, |last| {
        format!(
            "{}|{}",
            last.accepted_naive.format("%Y-%m-%dT%H:%M:%S%.6f"),
            last.api_call_id
        )
    });
    Ok(Reply::ok(SettlementPage {
        date: q.date.to_string(),
        merchant,
        totals,
        items,
        next_cursor,
    })
    .into_response())
}

/// The whole day as CSV, streamed: a task reads MySQL's rows one by one and sends chunks of
/// CSV through a small bounded channel, so memory does not grow with the day. A database
/// failure mid-stream ends the body abruptly (the client sees a truncated transfer, never a
/// complete-looking file).
fn csv(state: &AppState, date: NaiveDate, day: Day, merchant: Option<String>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    let pool = state.pool.clone();
    let summary = json!({
        "content_type": "text/csv",
        "date": date.to_string(),
        "merchant": merchant,
        "body": "streamed, not kept",
    });
    tokio::spawn(async move {
        let mut rows = settlement::stream(&pool, day, merchant.as_deref());
        let mut chunk = String::from(CSV_HEADER);
        let mut n = 0;
        while let Some(row) = rows.next().await {
            match row {
                Ok(e) => settlement::write_csv_record(&mut chunk, &e),
                Err(e) => {
                    tracing::error!(error = %e, "settlement CSV stream failed");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            }
            n += 1;
            if n % CSV_ROWS_PER_CHUNK == 0 && tx.send(Ok(std::mem::take(&mut chunk))).await.is_err()
            {
                return; // the client went away
            }
        }
        let _ = tx.send(Ok(chunk)).await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    // nginx passes the chunks on as they come instead of buffering the day.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response.extensions_mut().insert(OwnBody { summary });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(header::ACCEPT, v);
        }
        h
    }

    #[test]
    fn csv_only_when_asked_for_and_not_ranked_below_json() {
        assert!(wants_csv(&accept("text/csv")));
        assert!(wants_csv(&accept("text/csv, application/json;q=0.5")));
        assert!(wants_csv(&accept("Text/CSV; charset=utf-8")));
        assert!(!wants_csv(&accept("application/json")));
        assert!(!wants_csv(&accept("application/json, text/csv;q=0.9")));
        assert!(!wants_csv(&accept("text/csv;q=0")));
        assert!(!wants_csv(&accept("*/*")));
        assert!(!wants_csv(&accept("text/html")));
        assert!(!wants_csv(&HeaderMap::new()));
    }

    #[test]
    fn the_date_must_be_real_and_come_first() {
        let code = |q: &str| parse(Some(q)).err().map(|e| (e.action, e.data.to_string()));
        assert!(parse(Some("date=2026-12-04")).is_ok());
        for bad in [
            "date=2026-02-30",
            "date=2026-1-04",
            "date=20261204",
            "date=",
            "date=2026-12-04x",
        ] {
            assert!(code(bad).is_some_and(|(_, d)| d.contains("date")), "{bad}");
        }
        assert!(code("limit=0").is_some_and(|(_, d)| d.contains("date")));
        assert!(
            code("date=2026-12-04&merchant=a%20b").is_some_and(|(_, d)| d.contains("merchant"))
        );
        assert!(code("date=2026-12-04&limit=0").is_some_and(|(_, d)| d.contains("limit")));
    }
}
