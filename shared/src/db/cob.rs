//! Close of business (SPEC §12) in MySQL: the closed business dates, the one-runner lock, and
//! COB for a date in chunks that are safe to repeat (each installment records the last date it
//! was processed for, `cob_through`, so a rerun after a crash skips the rows already done).

use super::DbError;
use crate::cob::{self, Overdue};
use crate::money::Money;
use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::pool::PoolConnection;
use sqlx::{MySql, MySqlPool, QueryBuilder, Row};
use std::time::Duration;

/// `GET /business-date`: the last closed business date (Asia/Jakarta), `null` before the first COB.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BusinessDate {
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::Date>))]
    pub last_closed: Option<NaiveDate>,
}

/// The last closed business date, if any.
pub async fn last_closed(pool: &MySqlPool) -> Result<Option<NaiveDate>, DbError> {
    Ok(
        sqlx::query_scalar::<_, Option<NaiveDate>>("SELECT MAX(business_date) FROM business_dates")
            .fetch_one(pool)
            .await?,
    )
}

/// How a COB run goes.
#[derive(Debug, Clone, Copy)]
pub struct CobOptions {
    /// Installments per transaction.
    pub chunk: u32,
    /// LATE_FEE_PERCENT.
    pub fee_percent: Decimal,
    /// COB_DUTY_PERCENT (1..=100): the share of its time the run works; after a chunk that
    /// took t it rests t × (100 − p) / p.
    pub duty_percent: u8,
    /// How long to wait for another runner to finish (zero: give up at once).
    pub lock_wait: Duration,
}

/// What a COB run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CobOutcome {
    /// `date` (and every date before it) was already closed.
    AlreadyClosed { last_closed: NaiveDate },
    /// Another runner holds the lock.
    Busy,
    /// Dates `first ..= last` were closed now.
    Closed {
        first: NaiveDate,
        last: NaiveDate,
        installments: u64,
        fees_charged: u64,
        newly_overdue: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CobError {
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for CobError {
    fn from(e: sqlx::Error) -> Self {
        CobError::Db(DbError::Sqlx(e))
    }
}

/// Holds `GET_LOCK` on its own connection for a run: one runner across every process and host
/// using this database. The lock is the server's, so it goes with the connection if the runner dies.
struct RunnerLock {
    conn: PoolConnection<MySql>,
}

impl RunnerLock {
    async fn acquire(pool: &MySqlPool, wait: Duration) -> Result<Option<RunnerLock>, DbError> {
        let mut conn = pool.acquire().await?;
        let got: Option<i64> =
            sqlx::query_scalar("SELECT GET_LOCK(CONCAT('xyz_cob:', DATABASE()), ?)")
                .bind(wait.as_secs())
                .fetch_one(&mut *conn)
                .await?;
        Ok((got == Some(1)).then_some(RunnerLock { conn }))
    }

    async fn release(mut self) -> Result<(), DbError> {
        sqlx::query("DO RELEASE_LOCK(CONCAT('xyz_cob:', DATABASE()))")
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}

/// Closes every date after the last closed one up to `target`, in date order. When nothing was
/// ever closed, starts from the earliest contract's Jakarta date (or `target` without contracts).
pub async fn close_through(
    pool: &MySqlPool,
    target: NaiveDate,
    options: CobOptions,
) -> Result<CobOutcome, CobError> {
    let Some(lock) = RunnerLock::acquire(pool, options.lock_wait).await? else {
        return Ok(CobOutcome::Busy);
    };
    let outcome = close_locked(pool, target, options).await;
    // Dropping the connection would also free the lock; releasing returns it to the pool clean.
    let released = lock.release().await;
    let outcome = outcome?;
    released?;
    Ok(outcome)
}

async fn close_locked(
    pool: &MySqlPool,
    target: NaiveDate,
    options: CobOptions,
) -> Result<CobOutcome, CobError> {
    let first = match last_closed(pool).await? {
        Some(last) if last >= target => return Ok(CobOutcome::AlreadyClosed { last_closed: last }),
        Some(last) => last + chrono::Duration::days(1),
        None => earliest_contract_date(pool)
            .await?
            .unwrap_or(target)
            .min(target),
    };
    let mut totals = (0u64, 0u64, 0u64);
    let mut date = first;
    while date <= target {
        let (rows, fees, newly) = close_date(pool, date, options).await?;
        totals = (totals.0 + rows, totals.1 + fees, totals.2 + newly);
        date += chrono::Duration::days(1);
    }
    Ok(CobOutcome::Closed {
        first,
        last: target,
        installments: totals.0,
        fees_charged: totals.1,
        newly_overdue: totals.2,
    })
}

async fn earliest_contract_date(pool: &MySqlPool) -> Result<Option<NaiveDate>, DbError> {
    let earliest: Option<chrono::NaiveDateTime> =
        sqlx::query_scalar("SELECT MIN(tanggal_kontrak) FROM transactions")
            .fetch_one(pool)
            .await?;
    Ok(earliest.map(|t| cob::jakarta_date(t.and_utc())))
}

/// One installment row of a chunk.
struct Candidate {
    billing_id: String,
    tanggal_tagihan: NaiveDate,
    installment: Overdue,
    overdue_since: Option<NaiveDate>,
}

/// COB for one date: every unpaid installment due on a fee day of `date` (the day before, and
/// every 30 days back), in chunks by (tanggal_tagihan, billing_id). Returns (installments
/// processed, fees charged, installments overdue for the first time).
async fn close_date(
    pool: &MySqlPool,
    date: NaiveDate,
    options: CobOptions,
) -> Result<(u64, u64, u64), CobError> {
    let earliest: Option<NaiveDate> = sqlx::query_scalar(
        // Served by the due-date key alone; due dates without unpaid rows cost one probe each.
        "SELECT MIN(tanggal_tagihan) FROM monthly_billings",
    )
    .fetch_one(pool)
    .await?;
    let due_dates = earliest
        .map(|e| cob::fee_due_dates(date, e))
        .unwrap_or_default();
    let mut totals = (0u64, 0u64, 0u64);
    for due in due_dates {
        let mut after = String::new();
        loop {
            let started = std::time::Instant::now();
            let (done, last) = retry_chunk(pool, date, due, &after, options).await?;
            tokio::time::sleep(rest_after(started.elapsed(), options.duty_percent)).await;
            totals = (totals.0 + done.0, totals.1 + done.1, totals.2 + done.2);
            match last {
                Some(id) => after = id,
                None => break,
            }
        }
    }
    sqlx::query("INSERT INTO business_dates (business_date, closed_at) VALUES (?, ?)")
        .bind(date)
        .bind(Utc::now().naive_utc())
        .execute(pool)
        .await?;
    Ok(totals)
}

/// The rest after a chunk that took `worked`, so that the run works `duty_percent` of its time.
fn rest_after(worked: Duration, duty_percent: u8) -> Duration {
    let duty = u32::from(duty_percent.clamp(1, 100));
    worked * (100 - duty) / duty
}

type ChunkResult = ((u64, u64, u64), Option<String>);

async fn retry_chunk(
    pool: &MySqlPool,
    date: NaiveDate,
    due: NaiveDate,
    after: &str,
    options: CobOptions,
) -> Result<ChunkResult, CobError> {
    let mut attempt = 0u32;
    loop {
        match chunk(pool, date, due, after, options).await {
            Err(CobError::Db(DbError::Sqlx(e))) if super::is_transient(&e) && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

/// One transaction: the next `chunk` installments due on `due` after `after` (by billing_id),
/// locked, charged and marked processed for `date`. The last id scanned comes back (None at
/// the end), so the keyset advances over rows already done too.
async fn chunk(
    pool: &MySqlPool,
    date: NaiveDate,
    due: NaiveDate,
    after: &str,
    options: CobOptions,
) -> Result<ChunkResult, CobError> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT billing_id, tanggal_tagihan, harga_cicilan, terbayar, dibatalkan, denda, overdue_since, cob_through \
         FROM monthly_billings WHERE tanggal_tagihan = ? AND billing_id > ? \
         ORDER BY billing_id LIMIT ? FOR UPDATE",
    )
    .bind(due)
    .bind(after)
    .bind(options.chunk)
    .fetch_all(&mut *tx)
    .await?;
    let Some(last) = rows.last() else {
        tx.commit().await?;
        return Ok(((0, 0, 0), None));
    };
    let last_id: String = last.try_get("billing_id")?;
    let mut todo = Vec::new();
    for row in &rows {
        let through: Option<NaiveDate> = row.try_get("cob_through")?;
        let money = |name: &str| -> Result<Money, CobError> {
            let v: Decimal = row.try_get(name)?;
            Money::new(v).map_err(|_| CobError::Db(DbError::Corrupt(format!("{name} {v}"))))
        };
        let harga = money("harga_cicilan")?;
        let settled = money("terbayar")?.value() + money("dibatalkan")?.value();
        let unpaid = Money::new(harga.value() - settled).unwrap_or(Money::ZERO);
        if through.is_some_and(|t| t >= date) || unpaid.is_zero() {
            continue;
        }
        todo.push(Candidate {
            billing_id: row.try_get("billing_id")?,
            tanggal_tagihan: row.try_get("tanggal_tagihan")?,
            installment: Overdue {
                harga,
                unpaid,
                denda: money("denda")?,
            },
            overdue_since: row.try_get("overdue_since")?,
        });
    }
    let mut fees = 0u64;
    let mut newly = Vec::new();
    if !todo.is_empty() {
        let mut update = QueryBuilder::<MySql>::new("UPDATE monthly_billings m JOIN (");
        for (i, r) in todo.iter().enumerate() {
            let days = (date - r.tanggal_tagihan).num_days();
            let fee = cob::late_fee(r.installment, days, options.fee_percent);
            if !fee.is_zero() {
                fees += 1;
            }
            if r.overdue_since.is_none() {
                newly.push(r.billing_id.as_str());
            }
            update.push(if i == 0 {
                "SELECT "
            } else {
                " UNION ALL SELECT "
            });
            update.push_bind(r.billing_id.as_str());
            update.push(" AS id, ");
            update.push_bind(fee.value());
            update.push(" AS fee");
        }
        update.push(") v ON m.billing_id = v.id SET m.denda = m.denda + v.fee, m.overdue_since = COALESCE(m.overdue_since, ");
        update.push_bind(date);
        update.push("), m.cob_through = ");
        update.push_bind(date);
        update.build().execute(&mut *tx).await?;
        record_overdue_events(&mut tx, &newly, date).await?;
    }
    tx.commit().await?;
    let more = rows.len() as u64 == u64::from(options.chunk);
    Ok((
        (todo.len() as u64, fees, newly.len() as u64),
        more.then_some(last_id),
    ))
}

/// `installment.overdue` (SPEC §11) for the installments COB for `date` found overdue for the
/// first time, in the chunk's transaction (the outbox): one event per installment, for the
/// contract's merchant when it is subscribed, with the contract as it is on `date` as `data`.
async fn record_overdue_events(
    tx: &mut sqlx::Transaction<'_, MySql>,
    billing_ids: &[&str],
    date: NaiveDate,
) -> Result<(), DbError> {
    use super::webhooks::{NewEvent, insert_events, subscriptions};
    use crate::webhooks::EventType;
    if billing_ids.is_empty() {
        return Ok(());
    }
    let mut query = QueryBuilder::<MySql>::new(
        "SELECT m.billing_id, m.nomor_kontrak, t.merchant_id FROM monthly_billings m \
         JOIN transactions t ON t.nomor_kontrak = m.nomor_kontrak WHERE m.billing_id IN ",
    );
    super::push_in_list(&mut query, billing_ids.iter().copied());
    let rows: Vec<(String, String, String)> = query.build_query_as().fetch_all(&mut **tx).await?;
    let merchants: Vec<&str> = rows
        .iter()
        .map(|(_, _, m)| m.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let subscribed = subscriptions(&mut *tx, &merchants).await?;
    let wanted: Vec<&(String, String, String)> = rows
        .iter()
        .filter(|(_, _, merchant)| {
            subscribed
                .get(merchant)
                .is_some_and(|s| s.wants(EventType::InstallmentOverdue))
        })
        .collect();
    let nomors = wanted.iter().map(|(_, nomor, _)| nomor.as_str());
    let contracts = super::contracts::load_contracts_closing(&mut *tx, nomors, Some(date)).await?;
    let now = Utc::now();
    let mut events = Vec::new();
    for (billing_id, nomor_kontrak, merchant) in wanted {
        let Some((_, contract)) = contracts.get(nomor_kontrak) else {
            continue;
        };
        let event = NewEvent::new(
            merchant,
            EventType::InstallmentOverdue,
            billing_id,
            contract,
            now,
        )
        .map_err(|e| DbError::Corrupt(format!("installment.overdue payload: {e}")))?;
        events.push(event);
    }
    insert_events(&mut *tx, &events, None).await?;
    Ok(())
}

/// The users among `users` with an overdue installment that has anything outstanding (its
/// unpaid part or an unpaid fee): their new transactions are rejected `USER_OVERDUE` (SPEC §12).
/// One query per batch, on `monthly_billings_user_overdue`: it reads only the overdue rows.
pub async fn overdue_users(
    conn: &mut sqlx::MySqlConnection,
    users: &[&str],
) -> Result<std::collections::BTreeSet<String>, DbError> {
    if users.is_empty() {
        return Ok(Default::default());
    }
    let mut query = QueryBuilder::<MySql>::new(
        "SELECT DISTINCT user_id FROM monthly_billings WHERE user_id IN ",
    );
    super::push_in_list(&mut query, users.iter().copied());
    query.push(
        " AND overdue_since IS NOT NULL AND (terbayar + dibatalkan < harga_cicilan OR denda > denda_terbayar)",
    );
    let rows = query.build().fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("user_id").map_err(DbError::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::rest_after;
    use std::time::Duration;

    #[test]
    fn a_run_rests_so_that_it_works_its_duty_share_of_the_time() {
        let worked = Duration::from_millis(80);
        assert_eq!(rest_after(worked, 100), Duration::ZERO);
        assert_eq!(rest_after(worked, 50), Duration::from_millis(80));
        assert_eq!(rest_after(worked, 20), Duration::from_millis(320));
        assert_eq!(rest_after(worked, 1), Duration::from_millis(7920));
        // Out of range is clamped, never a division by zero.
        assert_eq!(rest_after(worked, 0), Duration::from_millis(7920));
    }
}
