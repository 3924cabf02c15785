//! The settlement report's query (SPEC §14), shared by the ingress and `xyzctl report`: one
//! Jakarta day of approved transactions, refunds and payments, each belonging to its
//! contract's merchant, in (`accepted_at`, `api_call_id`) order; the day's totals; the CSV form.

use super::{DbError, from_naive};
use crate::money::Money;
use crate::status::format_instant;
use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlPool, Row};

/// Jakarta (WIB) is UTC+7 all year.
const WIB_OFFSET_HOURS: i64 = 7;

/// The header row of the CSV form.
pub const CSV_HEADER: &str = "type,api_call_id,external_id,nomor_kontrak,amount,accepted_at\r\n";

/// A Jakarta date as the half-open UTC interval [D 00:00 WIB, D+1 00:00 WIB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub from: NaiveDateTime,
    pub until: NaiveDateTime,
}

impl Day {
    pub fn jakarta(date: NaiveDate) -> Day {
        let from = date.and_time(NaiveTime::MIN) - Duration::hours(WIB_OFFSET_HOURS);
        Day {
            from,
            until: from + Duration::days(1),
        }
    }
}

/// What a row of the report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryType {
    Transaction,
    Refund,
    Payment,
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Transaction => "TRANSACTION",
            EntryType::Refund => "REFUND",
            EntryType::Payment => "PAYMENT",
        }
    }

    fn parse(s: &str) -> Option<EntryType> {
        [
            EntryType::Transaction,
            EntryType::Refund,
            EntryType::Payment,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// One approved call of the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entry {
    #[serde(rename = "type")]
    pub entry_type: EntryType,
    pub api_call_id: String,
    pub external_id: String,
    pub nomor_kontrak: String,
    /// jumlah_cicilan, the refund's jumlah, or the payment's terbayarkan.
    pub amount: Money,
    /// When the ingress accepted the call: RFC 3339, UTC.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Instant))]
    pub accepted_at: String,
    /// The keyset position; not part of the answer.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub accepted_naive: NaiveDateTime,
}

/// Count and exact sum of one type for the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TypeTotal {
    pub count: u64,
    pub sum: Money,
}

/// The day's totals, every type present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Totals {
    #[serde(rename = "TRANSACTION")]
    pub transaction: TypeTotal,
    #[serde(rename = "REFUND")]
    pub refund: TypeTotal,
    #[serde(rename = "PAYMENT")]
    pub payment: TypeTotal,
}

/// The three branches, each a range scan on its instant's key, filtered to the contract's
/// merchant (`?` is NULL for all merchants). Binds per branch: from, until, merchant, merchant.
const BRANCHES: &str = "
    SELECT 'TRANSACTION' AS kind, t.api_call_id, t.external_id, t.nomor_kontrak,
           t.jumlah_cicilan AS amount, t.tanggal_kontrak AS accepted_at
    FROM transactions t
    WHERE t.tanggal_kontrak >= ? AND t.tanggal_kontrak < ? AND (? IS NULL OR t.merchant_id = ?)
      AND (t.tanggal_kontrak > ? OR (t.tanggal_kontrak = ? AND t.api_call_id > ?))
  UNION ALL
    SELECT 'REFUND' AS kind, r.api_call_id, r.external_id, r.nomor_kontrak,
           r.jumlah AS amount, r.tanggal_refund AS accepted_at
    FROM refunds r JOIN transactions t ON t.nomor_kontrak = r.nomor_kontrak
    WHERE r.tanggal_refund >= ? AND r.tanggal_refund < ? AND (? IS NULL OR t.merchant_id = ?)
      AND (r.tanggal_refund > ? OR (r.tanggal_refund = ? AND r.api_call_id > ?))
  UNION ALL
    SELECT 'PAYMENT' AS kind, b.api_call_id, b.external_id, b.nomor_kontrak,
           b.terbayarkan AS amount, b.tanggal_bayar AS accepted_at
    FROM bills b JOIN transactions t ON t.nomor_kontrak = b.nomor_kontrak
    WHERE b.tanggal_bayar >= ? AND b.tanggal_bayar < ? AND (? IS NULL OR t.merchant_id = ?)
      AND (b.tanggal_bayar > ? OR (b.tanggal_bayar = ? AND b.api_call_id > ?))";

fn entries_query(
    sql: &'static str,
    day: Day,
    merchant: Option<&str>,
    after: Option<(NaiveDateTime, String)>,
    limit: Option<u32>,
) -> sqlx::query::Query<'static, sqlx::MySql, sqlx::mysql::MySqlArguments> {
    // Before the day's start: every row of the day is after it.
    let (at, id) = after.unwrap_or((day.from - Duration::microseconds(1), String::new()));
    let mut q = sqlx::query(sql);
    for _ in 0..3 {
        q = q
            .bind(day.from)
            .bind(day.until)
            .bind(merchant.map(str::to_owned))
            .bind(merchant.map(str::to_owned))
            .bind(at)
            .bind(at)
            .bind(id.clone());
        if let Some(limit) = limit {
            q = q.bind(limit);
        }
    }
    match limit {
        Some(limit) => q.bind(limit),
        None => q,
    }
}

/// The statements, built once from [`BRANCHES`].
struct Statements {
    ordered: String,
    ordered_limited: String,
    totals: String,
}

fn statements() -> &'static Statements {
    static STATEMENTS: std::sync::OnceLock<Statements> = std::sync::OnceLock::new();
    STATEMENTS.get_or_init(|| Statements {
        ordered: format!("{BRANCHES}\n  ORDER BY accepted_at, api_call_id"),
        // A page reads at most `limit` rows of each branch, in its key's order.
        ordered_limited: format!(
            "({}\n  ORDER BY accepted_at, api_call_id LIMIT ?)\n  ORDER BY accepted_at, api_call_id LIMIT ?",
            BRANCHES.replace(
                "\n  UNION ALL",
                "\n    ORDER BY accepted_at, api_call_id LIMIT ?)\n  UNION ALL (",
            )
        ),
        totals: format!(
            "SELECT kind, COUNT(*) AS n, COALESCE(SUM(amount), 0) AS total FROM ({BRANCHES}) e GROUP BY kind"
        ),
    })
}

fn entry_from_row(r: &MySqlRow) -> Result<Entry, DbError> {
    let kind: String = r.try_get("kind")?;
    let at: NaiveDateTime = r.try_get("accepted_at")?;
    let amount: rust_decimal::Decimal = r.try_get("amount")?;
    Ok(Entry {
        entry_type: EntryType::parse(&kind)
            .ok_or_else(|| DbError::Corrupt(format!("kind: {kind}")))?,
        api_call_id: r.try_get("api_call_id")?,
        external_id: r.try_get("external_id")?,
        nomor_kontrak: r.try_get("nomor_kontrak")?,
        amount: Money::new(amount).map_err(|e| DbError::Corrupt(format!("amount: {e}")))?,
        accepted_at: format_instant(&from_naive(at)),
        accepted_naive: at,
    })
}

/// Up to `limit` entries of the day after the keyset position `after`.
pub async fn page(
    pool: &MySqlPool,
    day: Day,
    merchant: Option<&str>,
    after: Option<(NaiveDateTime, String)>,
    limit: u32,
) -> Result<Vec<Entry>, DbError> {
    let rows = entries_query(
        &statements().ordered_limited,
        day,
        merchant,
        after,
        Some(limit),
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(entry_from_row).collect()
}

/// Every entry of the day, streamed from MySQL row by row (memory does not grow with the day).
pub fn stream<'a>(
    pool: &'a MySqlPool,
    day: Day,
    merchant: Option<&'a str>,
) -> impl Stream<Item = Result<Entry, DbError>> + Send + 'a {
    entries_query(&statements().ordered, day, merchant, None, None)
        .fetch(pool)
        .map(|row| entry_from_row(&row?))
}

/// The day's count and exact sum per type.
pub async fn totals(pool: &MySqlPool, day: Day, merchant: Option<&str>) -> Result<Totals, DbError> {
    let rows = entries_query(&statements().totals, day, merchant, None, None)
        .fetch_all(pool)
        .await?;
    let zero = TypeTotal {
        count: 0,
        sum: Money::from_cents(0),
    };
    let mut totals = Totals {
        transaction: zero,
        refund: zero,
        payment: zero,
    };
    for r in &rows {
        let kind: String = r.try_get("kind")?;
        let n: i64 = r.try_get("n")?;
        let total: rust_decimal::Decimal = r.try_get("total")?;
        let t = TypeTotal {
            count: u64::try_from(n).map_err(|e| DbError::Corrupt(format!("count: {e}")))?,
            sum: Money::new(total.round_dp(2))
                .map_err(|e| DbError::Corrupt(format!("sum: {e}")))?,
        };
        match EntryType::parse(&kind) {
            Some(EntryType::Transaction) => totals.transaction = t,
            Some(EntryType::Refund) => totals.refund = t,
            Some(EntryType::Payment) => totals.payment = t,
            None => return Err(DbError::Corrupt(format!("kind: {kind}"))),
        }
    }
    Ok(totals)
}

/// Whether keys were ever issued for this merchant name.
pub async fn merchant_exists(pool: &MySqlPool, merchant: &str) -> Result<bool, DbError> {
    let row = sqlx::query("SELECT 1 FROM merchants WHERE merchant_id = ?")
        .bind(merchant)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Appends one entry as a CSV record (RFC 4180: CRLF, fields with `,` `"` CR or LF quoted,
/// quotes doubled).
pub fn write_csv_record(out: &mut String, e: &Entry) {
    let fields = [
        e.entry_type.as_str(),
        &e.api_call_id,
        &e.external_id,
        &e.nomor_kontrak,
        &e.amount.to_string(),
        &e.accepted_at,
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_csv_field(out, f);
    }
    out.push_str("\r\n");
}

fn push_csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jakarta_day_starts_at_17_utc_the_day_before() {
        let d = Day::jakarta(NaiveDate::from_ymd_opt(2026, 12, 4).unwrap_or_default());
        assert_eq!(d.from.to_string(), "2026-12-03 17:00:00");
        assert_eq!(d.until.to_string(), "2026-12-04 17:00:00");
    }

    #[test]
    fn csv_fields_are_quoted_only_when_rfc_4180_needs_it() {
        for (raw, quoted) in [
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\r\nlines", "\"two\r\nlines\""),
        ] {
            let mut out = String::new();
            push_csv_field(&mut out, raw);
            assert_eq!(out, quoted);
        }
    }
}
