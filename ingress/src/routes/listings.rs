//! `GET /users/{id}/billings`, `GET /users/{id}/bills` and `GET /users/{id}/limit-changes`:
//! keyset pagination with opaque, tamper-proof cursors (`[A-Za-z0-9_-]` only), stable under
//! concurrent inserts.

use crate::caller::Caller;
use crate::error::ApiError;
use crate::pipeline::Reply;
use crate::routes::PathId;
use crate::state::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;
use shared::contract::InstallmentStatus;
use shared::db::contracts::{BillView, InstallmentView};
use shared::db::limit_changes::LimitChangeView;
use shared::ids::is_plausible_id;
use shared::money::Money;
use shared::openapi::Date;
use utoipa::ToSchema;

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;
const MAC_HEX_LEN: usize = 16;

/// The page a listing is asked for: `limit` and `cursor` from the query (other parameters are
/// ignored).
pub(crate) struct Page {
    pub limit: u32,
    pub cursor: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Page, ApiError> {
        parse_query(parts.uri.query())
    }
}

/// One page of a user's installments, ordered by (`tanggal_tagihan`, `billing_id`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BillingsPage {
    items: Vec<BillingItem>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[schema(required = true, pattern = "^[A-Za-z0-9_-]+$")]
    next_cursor: Option<String>,
}

/// One page of a user's approved payments, ordered by (`tanggal_bayar`, `kode_bayar`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BillsPage {
    items: Vec<BillView>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[schema(required = true, pattern = "^[A-Za-z0-9_-]+$")]
    next_cursor: Option<String>,
}

/// One page of a user's limit changes, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitChangesPage {
    items: Vec<LimitChangeView>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[schema(required = true, pattern = "^[A-Za-z0-9_-]+$")]
    next_cursor: Option<String>,
}

/// An installment in a user's billings, with its contract.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BillingItem {
    billing_id: String,
    #[schema(minimum = 1, maximum = 6)]
    cicilan_ke: u32,
    harga_cicilan: Money,
    terbayar: Money,
    /// Cancelled by refunds; the unpaid part is `harga_cicilan - terbayar - dibatalkan`.
    dibatalkan: Money,
    /// Late fees charged.
    denda: Money,
    denda_terbayar: Money,
    /// Days past due as of the last closed business date; 0 when not overdue.
    hari_terlambat: u32,
    #[schema(value_type = Date)]
    tanggal_tagihan: String,
    status: InstallmentStatus,
    nomor_kontrak: String,
}

impl BillingItem {
    fn of(nomor_kontrak: String, i: InstallmentView) -> BillingItem {
        BillingItem {
            billing_id: i.billing_id,
            cicilan_ke: i.cicilan_ke,
            harga_cicilan: i.harga_cicilan,
            terbayar: i.terbayar,
            dibatalkan: i.dibatalkan,
            denda: i.denda,
            denda_terbayar: i.denda_terbayar,
            hari_terlambat: i.hari_terlambat,
            tanggal_tagihan: i.tanggal_tagihan,
            status: i.status,
            nomor_kontrak,
        }
    }
}

pub(crate) fn parse_query(query: Option<&str>) -> Result<Page, ApiError> {
    let mut page = Page {
        limit: DEFAULT_LIMIT,
        cursor: None,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "limit" => {
                page.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| {
                        (1..=MAX_LIMIT).contains(n) && v.bytes().all(|b| b.is_ascii_digit())
                    })
                    .ok_or_else(|| {
                        ApiError::invalid_value("limit", "must be an integer from 1 to 100")
                    })?;
            }
            "cursor" => page.cursor = Some(v.to_owned()),
            _ => {}
        }
    }
    Ok(page)
}

/// MAC || base64url(position): only this endpoint, for this user, can have issued it.
pub(crate) fn seal(state: &AppState, scope: &str, position: &str) -> String {
    let mac = state.keyring.blind_index(scope, position);
    format!(
        "{}{}",
        &hex::encode(mac)[..MAC_HEX_LEN],
        URL_SAFE_NO_PAD.encode(position)
    )
}

pub(crate) fn open(state: &AppState, scope: &str, cursor: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid_value("cursor", "was not issued by this endpoint");
    if cursor.len() <= MAC_HEX_LEN || !cursor.is_ascii() {
        return Err(bad());
    }
    let (mac, encoded) = cursor.split_at(MAC_HEX_LEN);
    let position = URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let expected = &hex::encode(state.keyring.blind_index(scope, &position))[..MAC_HEX_LEN];
    if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
        return Err(bad());
    }
    Ok(position)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn ensure_user(state: &AppState, user_id: &str) -> Result<(), ApiError> {
    if !is_plausible_id(user_id) {
        return Err(ApiError::not_found());
    }
    shared::db::users::get_limits(&state.pool, user_id)
        .await?
        .map(|_| ())
        .ok_or_else(ApiError::not_found)
}

/// A user's installments.
///
/// Admin only. Across its contracts, ordered by (`tanggal_tagihan`, `billing_id`).
#[utoipa::path(
    get,
    path = "/users/{user_id}/billings",
    operation_id = "getUserBillings",
    tag = "users",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(
        ("user_id" = String, Path, description = "The user's id (`USR_…`)."),
        crate::openapi::PageParams,
        crate::openapi::ExternalIdOptional,
    ),
    responses(
        (status = 200, description = "One page of installments.", body = crate::openapi::BillingsEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn billings(
    State(state): State<AppState>,
    _: Caller,
    PathId(user_id): PathId,
    page: Page,
) -> Result<Reply<BillingsPage>, ApiError> {
    let (state, user_id) = (&state, user_id.as_str());
    let scope = format!("cursor:billings:{user_id}");
    let after = after(state, &scope, &page, |d| {
        NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()
    })?;
    ensure_user(state, user_id).await?;
    let rows =
        shared::db::contracts::billings_page(&state.pool, user_id, after, page.limit + 1).await?;
    let (rows, next) = split_page(state, &scope, &page, rows, |(_, last)| {
        format!("{}|{}", last.tanggal_tagihan, last.billing_id)
    });
    let items = rows
        .into_iter()
        .map(|(nomor_kontrak, installment)| BillingItem::of(nomor_kontrak, installment))
        .collect();
    Ok(Reply::ok(BillingsPage {
        items,
        next_cursor: next,
    }))
}

/// A user's payments.
///
/// Admin only. The approved payments, ordered by (`tanggal_bayar`, `kode_bayar`).
#[utoipa::path(
    get,
    path = "/users/{user_id}/bills",
    operation_id = "getUserBills",
    tag = "users",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(
        ("user_id" = String, Path, description = "The user's id (`USR_…`)."),
        crate::openapi::PageParams,
        crate::openapi::ExternalIdOptional,
    ),
    responses(
        (status = 200, description = "One page of payments.", body = crate::openapi::BillsEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn bills(
    State(state): State<AppState>,
    _: Caller,
    PathId(user_id): PathId,
    page: Page,
) -> Result<Reply<BillsPage>, ApiError> {
    let (state, user_id) = (&state, user_id.as_str());
    let scope = format!("cursor:bills:{user_id}");
    let after = after(state, &scope, &page, |t| {
        NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok()
    })?;
    ensure_user(state, user_id).await?;
    let rows =
        shared::db::contracts::bills_page(&state.pool, user_id, after, page.limit + 1).await?;
    let (rows, next) = split_page(state, &scope, &page, rows, |last| {
        let at = chrono::DateTime::parse_from_rfc3339(&last.tanggal_bayar)
            .map(|t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
            .unwrap_or_default();
        format!("{at}|{}", last.kode_bayar)
    });
    Ok(Reply::ok(BillsPage {
        items: rows,
        next_cursor: next,
    }))
}

/// A user's limit changes.
///
/// Admin only. Every change of a granted limit (`PATCH /users/{user_id}/limits`), oldest
/// first: the tenor, the granted limit before and after, the call and the key that made it.
/// Creating the user is not a change.
#[utoipa::path(
    get,
    path = "/users/{user_id}/limit-changes",
    operation_id = "getUserLimitChanges",
    tag = "users",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(
        ("user_id" = String, Path, description = "The user's id (`USR_…`)."),
        crate::openapi::PageParams,
        crate::openapi::ExternalIdOptional,
    ),
    responses(
        (status = 200, description = "One page of limit changes.", body = crate::openapi::LimitChangesEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn limit_changes(
    State(state): State<AppState>,
    _: Caller,
    PathId(user_id): PathId,
    page: Page,
) -> Result<Reply<LimitChangesPage>, ApiError> {
    let (state, user_id) = (&state, user_id.as_str());
    let scope = format!("cursor:limit-changes:{user_id}");
    let after = page
        .cursor
        .as_deref()
        .map(|cursor| {
            open(state, &scope, cursor)?
                .parse::<u64>()
                .map_err(|_| ApiError::invalid_value("cursor", "was not issued by this endpoint"))
        })
        .transpose()?;
    ensure_user(state, user_id).await?;
    let rows = shared::db::limit_changes::changes_page(&state.pool, user_id, after, page.limit + 1)
        .await?;
    let (rows, next) = split_page(state, &scope, &page, rows, |(id, _)| id.to_string());
    Ok(Reply::ok(LimitChangesPage {
        items: rows.into_iter().map(|(_, change)| change).collect(),
        next_cursor: next,
    }))
}

/// The keyset position a cursor carries: (sort key, id), sealed by `seal`.
pub(crate) fn after<K>(
    state: &AppState,
    scope: &str,
    page: &Page,
    parse_key: impl Fn(&str) -> Option<K>,
) -> Result<Option<(K, String)>, ApiError> {
    let Some(cursor) = &page.cursor else {
        return Ok(None);
    };
    let position = open(state, scope, cursor)?;
    position
        .split_once('|')
        .and_then(|(k, id)| Some((parse_key(k)?, id.to_owned())))
        .map(Some)
        .ok_or_else(|| ApiError::invalid_value("cursor", "was not issued by this endpoint"))
}

/// Keeps `page.limit` of the `limit + 1` rows fetched; a next cursor when there were more.
pub(crate) fn split_page<T>(
    state: &AppState,
    scope: &str,
    page: &Page,
    mut rows: Vec<T>,
    position: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > page.limit as usize;
    rows.truncate(page.limit as usize);
    let next = match (more, rows.last()) {
        (true, Some(last)) => Some(seal(state, scope, &position(last))),
        _ => None,
    };
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_parsing() {
        assert_eq!(parse_query(None).map(|p| p.limit).ok(), Some(20));
        assert_eq!(parse_query(Some("limit=2")).map(|p| p.limit).ok(), Some(2));
        for bad in [
            "limit=0",
            "limit=101",
            "limit=abc",
            "limit=",
            "limit=+5",
            "limit=1.0",
        ] {
            assert!(parse_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
