//! The run's invariants, read from MySQL (the source of truth):
//! - SPEC §5 for every user the run created and every tenor:
//!   `available = granted − Σ jumlah_cicilan of its contracts + Σ terbayarkan of its bills`,
//!   `0 <= available <= granted`;
//! - at most one contract (or bill) per external id, and exactly one, carrying the call's api
//!   call id, for every approved call; none for a rejected one;
//! - `async_outcomes` agrees with `GET /status`, and its APPROVED rows for the run's calls are
//!   as many as the contract and bill rows those calls wrote;
//! - every contract's installments sum to it, and its paid amounts agree with its bills.

use crate::run::{CallRecord, FinalSeen, Kind};
use anyhow::{Context, Result};
use rust_decimal::Decimal;
use sqlx::mysql::MySqlRow;
use sqlx::{MySql, MySqlPool, QueryBuilder, Row};
use std::collections::HashMap;

const CHUNK: usize = 500;

/// `prefix (?, ?, …) suffix` over `ids`, in chunks; the rows of every chunk.
async fn rows_in(
    pool: &MySqlPool,
    prefix: &str,
    ids: &[String],
    suffix: &str,
) -> Result<Vec<MySqlRow>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let mut qb = QueryBuilder::<MySql>::new(prefix);
        qb.push(" (");
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(id.as_str());
        }
        qb.push(") ");
        qb.push(suffix);
        out.extend(
            qb.build()
                .fetch_all(pool)
                .await
                .with_context(|| format!("query {prefix} … {suffix}"))?,
        );
    }
    Ok(out)
}

fn dec(row: &MySqlRow, col: &str) -> Result<Decimal> {
    let v: Option<Decimal> = row.try_get(col)?;
    Ok(v.unwrap_or_default())
}

pub(crate) async fn verify(
    url: &str,
    users: &[String],
    records: &[CallRecord],
    finals: &HashMap<String, FinalSeen>,
) -> Result<Vec<String>> {
    let pool = shared::db::connect(url, 4)
        .await
        .context("connecting to MySQL")?;
    shared::db::ping(&pool)
        .await
        .with_context(|| "MySQL unreachable (--database-url)")?;
    let mut v = Vec::new();
    limit_equation(&pool, users, &mut v).await?;
    one_row_per_external_id(&pool, records, finals, &mut v).await?;
    outcomes_match_rows(&pool, records, finals, &mut v).await?;
    contracts_consistent(&pool, users, &mut v).await?;
    pool.close().await;
    Ok(v)
}

/// SPEC §5, exactly, for every user and tenor.
async fn limit_equation(pool: &MySqlPool, users: &[String], v: &mut Vec<String>) -> Result<()> {
    let balances = rows_in(
        pool,
        "SELECT user_id, limit_one_month, limit_two_month, limit_three_month, limit_sixth,
                available_one_month, available_two_month, available_three_month, available_sixth
         FROM user_limit_balances WHERE user_id IN",
        users,
        "",
    )
    .await?;
    let mut debits: HashMap<(String, u8), Decimal> = HashMap::new();
    for r in rows_in(
        pool,
        "SELECT user_id, tenor, SUM(jumlah_cicilan) AS s FROM transactions WHERE user_id IN",
        users,
        "GROUP BY user_id, tenor",
    )
    .await?
    {
        debits.insert((r.try_get("user_id")?, r.try_get("tenor")?), dec(&r, "s")?);
    }
    let mut credits: HashMap<(String, u8), Decimal> = HashMap::new();
    for r in rows_in(
        pool,
        "SELECT t.user_id, t.tenor, SUM(b.terbayarkan) AS s
         FROM bills b JOIN transactions t ON t.nomor_kontrak = b.nomor_kontrak WHERE t.user_id IN",
        users,
        "GROUP BY t.user_id, t.tenor",
    )
    .await?
    {
        credits.insert((r.try_get("user_id")?, r.try_get("tenor")?), dec(&r, "s")?);
    }
    let mut seen = 0usize;
    for r in &balances {
        seen += 1;
        let user: String = r.try_get("user_id")?;
        for (tenor, g, a) in [
            (1u8, "limit_one_month", "available_one_month"),
            (2, "limit_two_month", "available_two_month"),
            (3, "limit_three_month", "available_three_month"),
            (6, "limit_sixth", "available_sixth"),
        ] {
            let granted = dec(r, g)?;
            let available = dec(r, a)?;
            let debited = debits
                .get(&(user.clone(), tenor))
                .copied()
                .unwrap_or_default();
            let paid = credits
                .get(&(user.clone(), tenor))
                .copied()
                .unwrap_or_default();
            let expected = granted - debited + paid;
            if available != expected {
                v.push(format!(
                    "user {user} tenor {tenor}: available {available} != granted {granted} - approved {debited} + paid {paid} = {expected}"
                ));
            }
            if available < Decimal::ZERO || available > granted {
                v.push(format!(
                    "user {user} tenor {tenor}: available {available} outside 0..={granted}"
                ));
            }
        }
    }
    if seen != users.len() {
        v.push(format!(
            "{} of the run's {} users have no limits row",
            users.len() - seen,
            users.len()
        ));
    }
    Ok(())
}

/// At most one contract or bill per external id; exactly the approved calls wrote one, with
/// their own api call id and the resource `GET /status` named.
async fn one_row_per_external_id(
    pool: &MySqlPool,
    records: &[CallRecord],
    finals: &HashMap<String, FinalSeen>,
    v: &mut Vec<String>,
) -> Result<()> {
    for (kind, table, resource) in [
        (Kind::Transaction, "transactions", "nomor_kontrak"),
        (Kind::Payment, "bills", "kode_bayar"),
    ] {
        let mine: Vec<&CallRecord> = records.iter().filter(|r| r.kind == kind).collect();
        let ext_ids: Vec<String> = mine.iter().map(|r| r.external_id.clone()).collect();
        let mut rows: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in rows_in(
            pool,
            &format!("SELECT external_id, api_call_id, {resource} AS resource FROM {table} WHERE external_id IN"),
            &ext_ids,
            "",
        )
        .await?
        {
            rows.entry(r.try_get("external_id")?)
                .or_default()
                .push((r.try_get("api_call_id")?, r.try_get("resource")?));
        }
        for r in mine {
            let found = rows
                .get(&r.external_id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if found.len() > 1 {
                v.push(format!(
                    "external id {} has {} rows in {table}",
                    r.external_id,
                    found.len()
                ));
                continue;
            }
            let Some(call) = &r.api_call_id else {
                // Never accepted: only a request given up on mid-retry (status 0) may have landed.
                if !found.is_empty() && r.failure.as_ref().is_some_and(|(s, _)| *s != 0) {
                    v.push(format!(
                        "external id {} was refused ({:?}) yet has a row in {table}",
                        r.external_id, r.failure
                    ));
                }
                continue;
            };
            let Some(f) = finals.get(call) else { continue };
            match (f.state.as_str(), found.first()) {
                ("APPROVED", Some((row_call, row_resource))) => {
                    if row_call != call {
                        v.push(format!(
                            "{table} row of external id {} carries api call {row_call}, not {call}",
                            r.external_id
                        ));
                    }
                    if f.resource_id.as_deref() != Some(row_resource.as_str()) {
                        v.push(format!(
                            "{call}: GET /status named {resource} {:?}, {table} has {row_resource}",
                            f.resource_id
                        ));
                    }
                }
                ("APPROVED", None) => v.push(format!(
                    "{call} ({}) APPROVED but no row in {table}",
                    r.external_id
                )),
                (_, Some((row_call, _))) => v.push(format!(
                    "{call} ({}) {} but {table} has a row (call {row_call})",
                    r.external_id, f.state
                )),
                (_, None) => {}
            }
        }
    }
    Ok(())
}

/// `async_outcomes` says what `GET /status` said, and its APPROVED count for the run's calls
/// equals the contract and bill rows they wrote.
async fn outcomes_match_rows(
    pool: &MySqlPool,
    records: &[CallRecord],
    finals: &HashMap<String, FinalSeen>,
    v: &mut Vec<String>,
) -> Result<()> {
    let calls: Vec<String> = records
        .iter()
        .filter_map(|r| r.api_call_id.clone())
        .collect();
    let mut outcomes: HashMap<String, (String, Option<String>)> = HashMap::new();
    for r in rows_in(
        pool,
        "SELECT api_call_id, status, reason FROM async_outcomes WHERE api_call_id IN",
        &calls,
        "",
    )
    .await?
    {
        outcomes.insert(
            r.try_get("api_call_id")?,
            (r.try_get("status")?, r.try_get("reason")?),
        );
    }
    let mut approved_outcomes = 0u64;
    for (call, (status, reason)) in &outcomes {
        if status == "APPROVED" {
            approved_outcomes += 1;
        }
        if let Some(f) = finals.get(call)
            && (f.state != *status || f.reason != *reason)
        {
            v.push(format!(
                "{call}: GET /status said {} {:?}, async_outcomes says {status} {reason:?}",
                f.state, f.reason
            ));
        }
    }
    for call in finals.keys() {
        if !outcomes.contains_key(call) {
            v.push(format!(
                "{call} is final per GET /status but has no async_outcomes row"
            ));
        }
    }
    let mut rows = 0u64;
    for table in ["transactions", "bills"] {
        for r in rows_in(
            pool,
            &format!("SELECT COUNT(*) AS n FROM {table} WHERE api_call_id IN"),
            &calls,
            "",
        )
        .await?
        {
            let n: i64 = r.try_get("n")?;
            rows += n as u64;
        }
    }
    if approved_outcomes != rows {
        v.push(format!(
            "async_outcomes has {approved_outcomes} APPROVED rows for this run's calls, but transactions + bills have {rows} rows for them"
        ));
    }
    Ok(())
}

/// Each contract of the run's users: `tenor` installments summing to `jumlah_cicilan`, and
/// `terbayar` equal to its installments' and its bills' paid amounts, never above the total.
async fn contracts_consistent(
    pool: &MySqlPool,
    users: &[String],
    v: &mut Vec<String>,
) -> Result<()> {
    let mut billed: HashMap<String, Decimal> = HashMap::new();
    for r in rows_in(
        pool,
        "SELECT nomor_kontrak, SUM(terbayarkan) AS s FROM bills WHERE user_id IN",
        users,
        "GROUP BY nomor_kontrak",
    )
    .await?
    {
        billed.insert(r.try_get("nomor_kontrak")?, dec(&r, "s")?);
    }
    let contracts = rows_in(
        pool,
        "SELECT t.nomor_kontrak, t.tenor, t.jumlah_cicilan, t.terbayar,
                COUNT(m.billing_id) AS n, SUM(m.harga_cicilan) AS h, SUM(m.terbayar) AS mt
         FROM transactions t LEFT JOIN monthly_billings m ON m.nomor_kontrak = t.nomor_kontrak
         WHERE t.user_id IN",
        users,
        "GROUP BY t.nomor_kontrak, t.tenor, t.jumlah_cicilan, t.terbayar",
    )
    .await?;
    for r in &contracts {
        let nk: String = r.try_get("nomor_kontrak")?;
        let tenor: u8 = r.try_get("tenor")?;
        let n: i64 = r.try_get("n")?;
        let total = dec(r, "jumlah_cicilan")?;
        let paid = dec(r, "terbayar")?;
        let installments = dec(r, "h")?;
        let installments_paid = dec(r, "mt")?;
        let bills = billed.remove(&nk).unwrap_or_default();
        if n != i64::from(tenor) {
            v.push(format!("contract {nk}: {n} installments for tenor {tenor}"));
        }
        if installments != total {
            v.push(format!(
                "contract {nk}: installments sum to {installments}, jumlah_cicilan is {total}"
            ));
        }
        if installments_paid != paid || bills != paid {
            v.push(format!("contract {nk}: terbayar {paid}, installments paid {installments_paid}, bills {bills}"));
        }
        if paid > total {
            v.push(format!(
                "contract {nk}: terbayar {paid} above jumlah_cicilan {total}"
            ));
        }
    }
    for nk in billed.keys() {
        v.push(format!(
            "bills on {nk}, which is not a contract of the run's users"
        ));
    }
    Ok(())
}
