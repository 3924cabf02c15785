//! Changing a user's granted limits and the record of every change (`limit_changes`,
//! SPEC §13).
//!
//! A change takes the user's `user_limit_balances` row lock, the lock the workers take
//! (`users::lock_limits`) before they debit or restore it, so it waits for a batch that holds
//! it and a batch waits for it: the available limit moves by exactly the granted difference,
//! whatever the workers do meanwhile.

use super::users::{LIMIT_COLUMNS, limits_from_row};
use super::{DbError, from_naive, to_naive};
use crate::contract::Tenor;
use crate::limits::{BelowUsed, LimitChange, plan};
use crate::money::Money;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{MySqlConnection, MySqlPool, QueryBuilder, Row};

/// Who changed the limits: the call and its API key.
pub struct ChangedBy<'a> {
    pub api_call_id: &'a str,
    pub client_id: &'a str,
}

/// What a request to change limits did.
#[derive(Debug, PartialEq, Eq)]
pub enum LimitsChanged {
    NoSuchUser,
    /// Nothing changed: this tenor's new granted limit is below what is in use.
    BelowUsed(Tenor),
    /// These tenors changed (none when every value equalled the current one).
    Applied(Vec<LimitChange>),
}

/// Sets the granted limits of `requested` (in one transaction: all or nothing), each tenor's
/// available limit moving by the same difference, and records each change.
pub async fn change_limits(
    pool: &MySqlPool,
    user_id: &str,
    requested: &[(Tenor, Money)],
    by: &ChangedBy<'_>,
    now: DateTime<Utc>,
) -> Result<LimitsChanged, DbError> {
    let mut tx = pool.begin().await?;
    // The old granted limits are what the record keeps, so they are read under the lock.
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {LIMIT_COLUMNS} FROM user_limit_balances WHERE user_id = ? FOR UPDATE"
    )))
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let outcome = match row {
        None => LimitsChanged::NoSuchUser,
        Some(row) => match plan(&limits_from_row(&row)?, requested) {
            Ok(changes) => LimitsChanged::Applied(changes),
            Err(BelowUsed(tenor)) => LimitsChanged::BelowUsed(tenor),
        },
    };
    match &outcome {
        LimitsChanged::Applied(changes) if !changes.is_empty() => {
            write_changes(&mut tx, user_id, changes, by, now).await?;
            tx.commit().await?;
        }
        // Nothing to write: the row lock goes at once, not at the connection's next use.
        _ => tx.rollback().await?,
    }
    Ok(outcome)
}

/// The changes, in the transaction that holds the row's lock.
async fn write_changes(
    tx: &mut MySqlConnection,
    user_id: &str,
    changes: &[LimitChange],
    by: &ChangedBy<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    // One statement for every changed tenor. Its WHERE states the rule on its own: what is in
    // use (granted − available) must fit under the new granted limit. MySQL assigns left to
    // right with the values already assigned, so each available is set before its granted.
    let mut update = QueryBuilder::new("UPDATE user_limit_balances SET ");
    for c in changes {
        let (granted, available) = c.tenor.limit_columns();
        update
            .push(format!("{available} = {available} + ("))
            .push_bind(c.new.granted.value())
            .push(format!(" - {granted}), {granted} = "))
            .push_bind(c.new.granted.value())
            .push(", ");
    }
    update
        .push("updated_at = ")
        .push_bind(to_naive(now))
        .push(" WHERE user_id = ")
        .push_bind(user_id);
    for c in changes {
        let (granted, available) = c.tenor.limit_columns();
        update
            .push(format!(" AND {granted} - {available} <= "))
            .push_bind(c.new.granted.value());
    }
    let updated = update.build().execute(&mut *tx).await?;
    if updated.rows_affected() != 1 {
        // Under the row lock the plan's arithmetic is the row's: this is a bug, not a race.
        return Err(DbError::Corrupt(format!(
            "the limits of {user_id} refused a change planned under their lock"
        )));
    }
    super::write_rows(
        tx,
        "INSERT INTO limit_changes (user_id, tenor, old_granted, new_granted, api_call_id, client_id, changed_at) ",
        "",
        changes,
        |mut b, c| {
            b.push_bind(user_id)
                .push_bind(c.tenor.months())
                .push_bind(c.old.granted.value())
                .push_bind(c.new.granted.value())
                .push_bind(by.api_call_id)
                .push_bind(by.client_id)
                .push_bind(to_naive(now));
        },
    )
    .await?;
    Ok(())
}

/// One recorded change of a granted limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = LimitChange))]
#[serde(deny_unknown_fields)]
pub struct LimitChangeView {
    pub tenor: Tenor,
    /// The granted limit before the change.
    pub old_granted: Money,
    /// The granted limit after it.
    pub new_granted: Money,
    /// The `PATCH /users/{user_id}/limits` call that made it.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::ApiCallId))]
    pub api_call_id: String,
    /// The API key that signed that call.
    pub client_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Instant))]
    pub changed_at: String,
}

/// Up to `limit` of a user's changes after the change `after` (its id), oldest first, each
/// with its id (the keyset position).
pub async fn changes_page(
    pool: &MySqlPool,
    user_id: &str,
    after: Option<u64>,
    limit: u32,
) -> Result<Vec<(u64, LimitChangeView)>, DbError> {
    let rows = sqlx::query(
        "SELECT id, tenor, old_granted, new_granted, api_call_id, client_id, changed_at
         FROM limit_changes WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?",
    )
    .bind(user_id)
    .bind(after.unwrap_or(0))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let tenor: u8 = r.try_get("tenor")?;
            let at: chrono::NaiveDateTime = r.try_get("changed_at")?;
            let view = LimitChangeView {
                tenor: Tenor::from_months(u32::from(tenor))
                    .ok_or_else(|| DbError::Corrupt(format!("tenor {tenor}")))?,
                old_granted: super::contracts::money(r, "old_granted")?,
                new_granted: super::contracts::money(r, "new_granted")?,
                api_call_id: r.try_get("api_call_id")?,
                client_id: r.try_get("client_id")?,
                changed_at: crate::status::format_instant(&from_naive(at)),
            };
            Ok((r.try_get("id")?, view))
        })
        .collect()
}
