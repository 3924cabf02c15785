//! The run's invariants, read from MySQL (the source of truth), in a few set-based queries:
//! - SPEC §9's limit equation for every user the run created and every tenor, with `granted`
//!   as it is now (SPEC §13):
//!   `available = granted − Σ jumlah_cicilan of its contracts + Σ installment parts paid
//!   (monthly_billings.terbayar; late fees never restore limits) + Σ mengurangi_tagihan of its
//!   refunds`, and from the installments alone `available = granted − Σ (harga_cicilan −
//!   terbayar − dibatalkan)`; `0 <= available <= granted`;
//! - at most one contract, bill or refund per external id, and exactly one, carrying the
//!   call's api call id, for every approved call; none for a rejected one;
//! - `async_outcomes` agrees with what the run learned (`GET /status`, or the webhooks), and
//!   every APPROVED outcome of the run's calls has its contract, bill or refund row, one per
//!   api call id, and no row lacks one;
//! - every contract's installments sum to it, its paid amounts agree with its bills, its
//!   installments' `dibatalkan` with its refunds' `mengurangi_tagihan`, its `total_refund` with
//!   its refunds' `jumlah`; no installment has more paid and cancelled than its price;
//! - with `--webhooks`, each `contract.paid_off` / `contract.cancelled` names a contract that is
//!   so now, and every contract of the run that is so was told;
//! - `limit_changes` chains each tenor's granted limit from creation to now, with a row for
//!   what each applied PATCH changed and none for a refused one (`limit_changes`);
//! - every installment's late fees within bounds, every approved payment's allocation adding
//!   up to it and, per installment, to what it paid; `USER_OVERDUE` only for a user with an
//!   overdue installment (`fees`).

#[cfg(test)]
mod against_mariadb;
mod fees;
mod limit_changes;

use crate::run::webhooks::{ContractEvent, ContractEventKind};
use crate::run::{CallRecord, FinalSeen, Kind, LimitPatch};
use anyhow::{Context, Result};
use rust_decimal::Decimal;
use sqlx::mysql::MySqlRow;
use sqlx::{MySql, MySqlPool, QueryBuilder, Row};
use std::collections::{HashMap, HashSet};

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

/// What the run did, to be checked against MySQL.
pub(crate) struct RunFacts<'a> {
    pub(crate) users: &'a [String],
    pub(crate) records: &'a [CallRecord],
    pub(crate) finals: &'a HashMap<String, FinalSeen>,
    /// The contract events received, with `--webhooks`.
    pub(crate) contract_events: Option<&'a [ContractEvent]>,
    /// The limit changes sent, with their answers.
    pub(crate) limit_patches: &'a [LimitPatch],
    /// Every tenor's granted limit of every user when the run created it.
    pub(crate) granted_at_creation: Decimal,
}

pub(crate) async fn verify(
    url: &shared::nodes::Nodes,
    facts: &RunFacts<'_>,
) -> Result<Vec<String>> {
    let pool = shared::db::connect(url, 4)
        .await
        .context("connecting to MySQL")?;
    shared::db::ping(&pool)
        .await
        .with_context(|| "MySQL unreachable (--database-url)")?;
    let mut v = Vec::new();
    limit_equation(&pool, facts.users, &mut v).await?;
    one_row_per_external_id(&pool, facts.records, facts.finals, &mut v).await?;
    outcomes_match_rows(&pool, facts.records, facts.finals, &mut v).await?;
    contracts_consistent(&pool, facts.users, &mut v).await?;
    if let Some(events) = facts.contract_events {
        contract_events_agree(&pool, facts.users, events, &mut v).await?;
    }
    limit_changes::limit_changes(
        &pool,
        facts.users,
        facts.granted_at_creation,
        facts.limit_patches,
        &mut v,
    )
    .await?;
    fees::fees(&pool, facts, &mut v).await?;
    pool.close().await;
    Ok(v)
}

/// `(?, ?, …)` of `ids`.
fn push_in(qb: &mut QueryBuilder<MySql>, ids: &[String]) {
    qb.push(" (");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id.clone());
    }
    qb.push(") ");
}

/// SPEC §9's equation, exactly, for every user and tenor, with the granted limits as they are
/// now: the balances, then each tenor's debits, installment parts paid, refunds' reductions
/// and installments' unpaid parts in one query.
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
    // part 1: approved jumlah_cicilan, 2: installment parts paid, 3: mengurangi_tagihan,
    // 4: unpaid parts (harga_cicilan − terbayar − dibatalkan; late fees are not in it).
    let mut parts: HashMap<(String, u8, i64), Decimal> = HashMap::new();
    for chunk in users.chunks(CHUNK) {
        let mut qb = QueryBuilder::<MySql>::new(
            "SELECT user_id, tenor, 1 AS part, SUM(jumlah_cicilan) AS s FROM transactions WHERE user_id IN",
        );
        push_in(&mut qb, chunk);
        qb.push(
            "GROUP BY user_id, tenor UNION ALL
             SELECT user_id, tenor, 2, SUM(terbayar) FROM monthly_billings WHERE user_id IN",
        );
        push_in(&mut qb, chunk);
        qb.push(
            "GROUP BY user_id, tenor UNION ALL
             SELECT user_id, tenor, 4, SUM(harga_cicilan - terbayar - dibatalkan)
             FROM monthly_billings WHERE user_id IN",
        );
        push_in(&mut qb, chunk);
        qb.push(
            "GROUP BY user_id, tenor UNION ALL
             SELECT t.user_id, t.tenor, 3, SUM(r.mengurangi_tagihan)
             FROM transactions t JOIN refunds r ON r.nomor_kontrak = t.nomor_kontrak
             WHERE t.user_id IN",
        );
        // Through the contracts (indexed by user): refunds are indexed by contract only.
        push_in(&mut qb, chunk);
        qb.push("GROUP BY t.user_id, t.tenor");
        for r in qb
            .build()
            .fetch_all(pool)
            .await
            .context("the limit equation's sums")?
        {
            parts.insert(
                (
                    r.try_get("user_id")?,
                    r.try_get("tenor")?,
                    r.try_get("part")?,
                ),
                dec(&r, "s")?,
            );
        }
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
            let part = |p: i64| {
                parts
                    .get(&(user.clone(), tenor, p))
                    .copied()
                    .unwrap_or_default()
            };
            let (debited, paid, reduced, unpaid) = (part(1), part(2), part(3), part(4));
            let expected = granted - debited + paid + reduced;
            if available != expected {
                v.push(format!(
                    "user {user} tenor {tenor}: available {available} != granted {granted} - approved {debited} + installment parts paid {paid} + refunds' mengurangi_tagihan {reduced} = {expected}"
                ));
            }
            if available != granted - unpaid {
                v.push(format!(
                    "user {user} tenor {tenor}: available {available} != granted {granted} - installments' unpaid parts {unpaid} = {} (late fees never enter the limit)",
                    granted - unpaid
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

/// At most one contract, bill or refund per external id; exactly the approved calls wrote one, with
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
        (Kind::Refund, "refunds", "kode_refund"),
    ] {
        let mine: Vec<&CallRecord> = records.iter().filter(|r| r.kind == kind).collect();
        if mine.is_empty() {
            continue;
        }
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

/// `async_outcomes` says what the run learned, and its APPROVED outcomes of the run's calls
/// are exactly the calls with a contract, bill or refund row, one each.
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
    let mut outcomes: HashMap<String, (String, Option<String>, String)> = HashMap::new();
    for r in rows_in(
        pool,
        "SELECT api_call_id, status, reason, call_type FROM async_outcomes WHERE api_call_id IN",
        &calls,
        "",
    )
    .await?
    {
        outcomes.insert(
            r.try_get("api_call_id")?,
            (
                r.try_get("status")?,
                r.try_get("reason")?,
                r.try_get("call_type")?,
            ),
        );
    }
    let mut approved: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (call, (status, reason, call_type)) in &outcomes {
        if status == "APPROVED" {
            approved
                .entry(call_type.as_str())
                .or_default()
                .insert(call.as_str());
        }
        if let Some(f) = finals.get(call)
            && (f.state != *status || f.reason != *reason)
        {
            v.push(format!(
                "{call}: the run learned {} {:?}, async_outcomes says {status} {reason:?}",
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
    // Per type: the APPROVED outcomes and the rows written are the same calls, one row each.
    for (kind, table) in [
        (Kind::Transaction, "transactions"),
        (Kind::Payment, "bills"),
        (Kind::Refund, "refunds"),
    ] {
        if kind == Kind::Refund && !records.iter().any(|r| r.kind == Kind::Refund) {
            continue;
        }
        let mut rows: HashMap<String, u64> = HashMap::new();
        for r in rows_in(
            pool,
            &format!("SELECT api_call_id, COUNT(*) AS n FROM {table} WHERE api_call_id IN"),
            &calls,
            "GROUP BY api_call_id",
        )
        .await?
        {
            let n: i64 = r.try_get("n")?;
            rows.insert(r.try_get("api_call_id")?, n as u64);
        }
        let want = approved.get(kind.as_str()).cloned().unwrap_or_default();
        for (call, n) in &rows {
            if *n > 1 {
                v.push(format!("{call} has {n} rows in {table}"));
            }
            if !want.contains(call.as_str()) {
                v.push(format!(
                    "{table} has a row of {call}, which has no APPROVED {} outcome",
                    kind.as_str()
                ));
            }
        }
        for call in want {
            if !rows.contains_key(call) {
                v.push(format!(
                    "{call}: APPROVED {} in async_outcomes, but no row in {table}",
                    kind.as_str()
                ));
            }
        }
    }
    Ok(())
}

/// Each contract of the run's users: `tenor` installments summing to `jumlah_cicilan`;
/// `terbayar` equal to its installments' paid parts, and its bills to those plus the late fees
/// paid; its installments' `dibatalkan` equal to its refunds' `mengurangi_tagihan`, its
/// `total_refund` to their `jumlah`, never above the total; no installment with more paid and
/// cancelled than its price; each refund's `jumlah` split exactly into what it cancelled and
/// what it gives back, and no more given back than was paid.
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
    struct Refunded {
        jumlah: Decimal,
        reduced: Decimal,
        returned: Decimal,
        unsplit: i64,
    }
    let mut refunded: HashMap<String, Refunded> = HashMap::new();
    for r in rows_in(
        pool,
        "SELECT r.nomor_kontrak, SUM(r.jumlah) AS j, SUM(r.mengurangi_tagihan) AS m,
                SUM(r.dikembalikan_ke_konsumen) AS d,
                SUM(CASE WHEN r.jumlah <> r.mengurangi_tagihan + r.dikembalikan_ke_konsumen THEN 1 ELSE 0 END) AS unsplit
         FROM transactions t JOIN refunds r ON r.nomor_kontrak = t.nomor_kontrak
         WHERE t.user_id IN",
        users,
        "GROUP BY r.nomor_kontrak",
    )
    .await?
    {
        let unsplit: Decimal = dec(&r, "unsplit")?;
        refunded.insert(
            r.try_get("nomor_kontrak")?,
            Refunded {
                jumlah: dec(&r, "j")?,
                reduced: dec(&r, "m")?,
                returned: dec(&r, "d")?,
                unsplit: i64::try_from(unsplit).unwrap_or(i64::MAX),
            },
        );
    }
    let contracts = rows_in(
        pool,
        "SELECT t.nomor_kontrak, t.tenor, t.jumlah_cicilan, t.terbayar, t.total_refund,
                COUNT(m.billing_id) AS n, SUM(m.harga_cicilan) AS h, SUM(m.terbayar) AS mt,
                SUM(m.dibatalkan) AS md, SUM(m.denda_terbayar) AS mdt,
                SUM(CASE WHEN m.terbayar + m.dibatalkan > m.harga_cicilan THEN 1 ELSE 0 END) AS overdrawn
         FROM transactions t LEFT JOIN monthly_billings m ON m.nomor_kontrak = t.nomor_kontrak
         WHERE t.user_id IN",
        users,
        "GROUP BY t.nomor_kontrak, t.tenor, t.jumlah_cicilan, t.terbayar, t.total_refund",
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
        let fees_paid = dec(r, "mdt")?;
        let cancelled = dec(r, "md")?;
        let total_refund = dec(r, "total_refund")?;
        let overdrawn = dec(r, "overdrawn")?;
        let bills = billed.remove(&nk).unwrap_or_default();
        let refunds = refunded.remove(&nk);
        if n != i64::from(tenor) {
            v.push(format!("contract {nk}: {n} installments for tenor {tenor}"));
        }
        if installments != total {
            v.push(format!(
                "contract {nk}: installments sum to {installments}, jumlah_cicilan is {total}"
            ));
        }
        if installments_paid != paid || bills != paid + fees_paid {
            v.push(format!("contract {nk}: terbayar {paid}, installments paid {installments_paid} (and late fees {fees_paid}), bills {bills}"));
        }
        if paid > total {
            v.push(format!(
                "contract {nk}: terbayar {paid} above jumlah_cicilan {total}"
            ));
        }
        if overdrawn > Decimal::ZERO {
            v.push(format!(
                "contract {nk}: {overdrawn} installment(s) with terbayar + dibatalkan above harga_cicilan"
            ));
        }
        let (jumlah, reduced, returned) = refunds
            .as_ref()
            .map_or((Decimal::ZERO, Decimal::ZERO, Decimal::ZERO), |f| {
                (f.jumlah, f.reduced, f.returned)
            });
        if cancelled != reduced {
            v.push(format!(
                "contract {nk}: installments' dibatalkan {cancelled}, refunds' mengurangi_tagihan {reduced}"
            ));
        }
        if total_refund != jumlah || total_refund > total {
            v.push(format!(
                "contract {nk}: total_refund {total_refund}, refunds' jumlah {jumlah}, jumlah_cicilan {total}"
            ));
        }
        if returned > installments_paid {
            v.push(format!(
                "contract {nk}: {returned} given back to the consumer, only {installments_paid} paid"
            ));
        }
        if let Some(f) = refunds
            && f.unsplit > 0
        {
            v.push(format!(
                "contract {nk}: {} refund(s) whose jumlah is not mengurangi_tagihan + dikembalikan_ke_konsumen",
                f.unsplit
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

/// A contract as MySQL has it now, for its `status_kontrak` (SPEC §9).
#[derive(Debug, Clone, Copy)]
struct ContractState {
    jumlah_cicilan: Decimal,
    total_refund: Decimal,
    /// Unpaid parts plus unpaid late fees.
    outstanding: Decimal,
}

impl ContractState {
    /// `CANCELLED` when all of it was refunded, else `PAID_OFF` when nothing is outstanding.
    fn ended(&self) -> Option<ContractEventKind> {
        if self.total_refund == self.jumlah_cicilan {
            Some(ContractEventKind::Cancelled)
        } else if self.outstanding == Decimal::ZERO {
            Some(ContractEventKind::PaidOff)
        } else {
            None
        }
    }
}

async fn contract_states(
    pool: &MySqlPool,
    users: &[String],
) -> Result<HashMap<String, ContractState>> {
    let mut out = HashMap::new();
    for r in rows_in(
        pool,
        "SELECT t.nomor_kontrak, t.jumlah_cicilan, t.total_refund,
                SUM(m.harga_cicilan - m.terbayar - m.dibatalkan + m.denda - m.denda_terbayar) AS outstanding
         FROM transactions t JOIN monthly_billings m ON m.nomor_kontrak = t.nomor_kontrak
         WHERE t.user_id IN",
        users,
        "GROUP BY t.nomor_kontrak, t.jumlah_cicilan, t.total_refund",
    )
    .await?
    {
        out.insert(
            r.try_get("nomor_kontrak")?,
            ContractState {
                jumlah_cicilan: dec(&r, "jumlah_cicilan")?,
                total_refund: dec(&r, "total_refund")?,
                outstanding: dec(&r, "outstanding")?,
            },
        );
    }
    Ok(out)
}

/// The run's contracts that are `PAID_OFF` or `CANCELLED` now: the contract events owed.
pub(crate) async fn ended_contracts(
    pool: &MySqlPool,
    users: &[String],
) -> Result<Vec<(String, ContractEventKind)>> {
    Ok(contract_states(pool, users)
        .await?
        .into_iter()
        .filter_map(|(nk, s)| s.ended().map(|k| (nk, k)))
        .collect())
}

/// Each contract event names a contract that is so now (a paid-off contract may since have
/// been cancelled by a refund, but never owes again), and each contract of the run that is
/// `PAID_OFF` or `CANCELLED` was told so.
async fn contract_events_agree(
    pool: &MySqlPool,
    users: &[String],
    events: &[ContractEvent],
    v: &mut Vec<String>,
) -> Result<()> {
    let states = contract_states(pool, users).await?;
    for e in events {
        // One that is not the run's is the webhook judge's finding.
        let Some(s) = states.get(&e.nomor_kontrak) else {
            continue;
        };
        let holds = match e.kind {
            ContractEventKind::Cancelled => s.total_refund == s.jumlah_cicilan,
            ContractEventKind::PaidOff => s.outstanding == Decimal::ZERO,
        };
        if !holds {
            v.push(format!(
                "webhook: {:?} for contract {}, yet MySQL has total_refund {} of {} and {} outstanding",
                e.kind, e.nomor_kontrak, s.total_refund, s.jumlah_cicilan, s.outstanding
            ));
        }
    }
    let told: HashSet<(&str, ContractEventKind)> = events
        .iter()
        .map(|e| (e.nomor_kontrak.as_str(), e.kind))
        .collect();
    for (nk, s) in &states {
        if let Some(k) = s.ended()
            && !told.contains(&(nk.as_str(), k))
        {
            v.push(format!(
                "webhook: contract {nk} is {} in MySQL, but no such event arrived",
                k.status_kontrak()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(total: i64, refunded: i64, outstanding: i64) -> ContractState {
        ContractState {
            jumlah_cicilan: Decimal::new(total, 2),
            total_refund: Decimal::new(refunded, 2),
            outstanding: Decimal::new(outstanding, 2),
        }
    }

    #[test]
    fn a_contract_ends_cancelled_when_all_of_it_was_refunded_else_paid_off_when_nothing_is_owed() {
        // SPEC §9's example: paid 394.17, refunded 500.00 then 682.50.
        assert_eq!(
            state(118_250, 118_250, 0).ended(),
            Some(ContractEventKind::Cancelled)
        );
        // A cancelled contract may still owe late fees charged before the refund.
        assert_eq!(
            state(118_250, 118_250, 1_000).ended(),
            Some(ContractEventKind::Cancelled)
        );
        assert_eq!(
            state(118_250, 50_000, 0).ended(),
            Some(ContractEventKind::PaidOff)
        );
        assert_eq!(state(118_250, 50_000, 28_833).ended(), None);
        assert_eq!(state(118_250, 0, 1).ended(), None);
    }
}
