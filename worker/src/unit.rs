//! The unit of work: a batch of commands in one MySQL transaction, each with its own outcome
//! row. Group commit: one fsync for the whole batch. Set-based first (a few multi-row
//! statements for the whole batch); command by command, a savepoint each, when that path
//! cannot decide it.

use crate::handlers;
use crate::handlers::transaction::insert_contracts;
use crate::webhooks::Handoff;
use crate::webhooks::outbox::Recorded;
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use shared::cache::StatusRecord;
use shared::contract::Tenor;
use shared::db::contracts::owners_of;
use shared::db::outcomes::{
    Outcome, find_idempotency, get_outcome, insert_idempotency, insert_idempotency_many,
    insert_outcome, insert_outcomes,
};
use shared::db::users::{IdempotencyRecord, LIMIT_COLUMNS, LockedLimits, lock_limits};
use shared::db::{DbError, to_naive};
use shared::envelope::RejectReason;
use shared::ids::is_plausible_id;
use shared::messages::{Command, CommandPayload, Subject};
use shared::metrics::Stages;
use shared::status::{CallState, CallStatus, ResultJson};
use sqlx::{MySqlConnection, MySqlPool};
use std::collections::{BTreeMap, BTreeSet};

/// What happened to one command of a batch.
#[derive(Debug)]
pub enum Decision {
    /// Decided (now, or by an earlier delivery of the same call): ack and publish.
    Final(StatusRecord),
    /// Failed for a reason retrying cannot fix: dead-letter it.
    Poison(String),
}

/// A transient failure: the whole batch is retried with the deliveries still unacked.
#[derive(Debug, thiserror::Error)]
#[error("transient database failure: {0}")]
pub struct Transient(#[from] pub sqlx::Error);

/// A command's own verdict, before its outcome row is written.
pub(crate) enum Verdict {
    Approved(ResultJson),
    Rejected(RejectReason),
}

/// Approved with `view` (the contract or the bill) as the call's result, serialized once here.
pub(crate) fn approved<T: serde::Serialize>(view: &T) -> Result<Verdict, CommandError> {
    call_result(view).map(Verdict::Approved)
}

/// A call's result, serialized once; a value that cannot be serialized is poison.
fn call_result<T: serde::Serialize>(value: &T) -> Result<ResultJson, CommandError> {
    ResultJson::of(value).map_err(|e| CommandError::Poison(format!("result not serializable: {e}")))
}

/// Errors inside one command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    #[error(transparent)]
    Transient(#[from] Transient),
    #[error("{0}")]
    Poison(String),
}

impl From<sqlx::Error> for CommandError {
    fn from(e: sqlx::Error) -> Self {
        if shared::db::is_transient(&e) {
            CommandError::Transient(Transient(e))
        } else {
            CommandError::Poison(e.to_string())
        }
    }
}

impl From<DbError> for CommandError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Sqlx(e) => e.into(),
            DbError::Corrupt(m) => CommandError::Poison(m),
        }
    }
}

/// Orders a batch so concurrent workers take row locks in the same order: transactions by
/// user, then payments and refunds by contract.
pub fn lock_order(command: &Command) -> (u8, String) {
    match command.payload.subject() {
        Subject::User(user) => (0, user.to_owned()),
        Subject::Contract(nomor) => (1, nomor.to_owned()),
    }
}

/// Applies every command in one transaction and commits. Returns one decision per command,
/// in the order given. Within a batch, transactions are decided before payments and refunds
/// (the order [`lock_order`] sorts them in).
///
/// The batch first locks the limits rows of every user it touches, in user id order. Then
/// the set-based path decides all of it with a handful of multi-row statements; when it
/// cannot (an external id already used, a redelivery, a command that cannot be applied), the
/// transaction is rolled back and the batch is applied command by command, each in its own
/// savepoint, where duplicates and poison are told apart one by one.
pub async fn apply_batch(
    pool: &MySqlPool,
    commands: &[&Command],
) -> Result<Vec<Decision>, Transient> {
    apply_batch_handing_off(pool, commands, None).await
}

/// [`apply_batch`], the webhook events it records handed to this process's dispatcher once
/// the batch commits.
pub(crate) async fn apply_batch_handing_off(
    pool: &MySqlPool,
    commands: &[&Command],
    handoff: Option<&Handoff>,
) -> Result<Vec<Decision>, Transient> {
    let (decisions, path) = apply_batch_on_path(pool, commands, handoff).await?;
    metrics::counter!("xyz_batches_total", "path" => path.as_str()).increment(1);
    Ok(decisions)
}

/// How a batch was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchPath {
    /// A few multi-row statements for the whole batch.
    SetBased,
    /// Command by command, each in its own savepoint.
    OneByOne,
}

impl BatchPath {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchPath::SetBased => "set",
            BatchPath::OneByOne => "each",
        }
    }
}

/// [`apply_batch`], telling which path decided the batch.
pub async fn apply_batch_on_path(
    pool: &MySqlPool,
    commands: &[&Command],
    handoff: Option<&Handoff>,
) -> Result<(Vec<Decision>, BatchPath), Transient> {
    let mut stages = Stages::start("xyz_batch_stage_seconds");
    let mut tx = pool.begin().await?;
    stages.mark("begin");
    match set_based(&mut tx, commands, handoff, &mut stages).await {
        Ok((decisions, recorded)) => {
            tx.commit().await?;
            stages.mark("commit");
            if let Some(handoff) = handoff {
                handoff.committed(recorded);
            }
            return Ok((decisions, BatchPath::SetBased));
        }
        Err(CommandError::Transient(e)) => return Err(e),
        Err(CommandError::Poison(why)) => {
            tracing::info!(reason = %why, batch = commands.len(), "deciding the batch one by one");
        }
    }
    tx.rollback().await?;

    let mut tx = pool.begin().await?;
    // The same lock order as the set-based path; the limits it read are not needed here.
    if let Err(CommandError::Transient(e)) = lock_users(&mut tx, commands).await {
        return Err(e);
    }
    let mut decisions = Vec::with_capacity(commands.len());
    for (i, command) in commands.iter().enumerate() {
        let savepoint = format!("c{i}");
        sqlx::query(sqlx::AssertSqlSafe(format!("SAVEPOINT {savepoint}")))
            .execute(&mut *tx)
            .await?;
        match apply_one(&mut tx, command).await {
            Ok(record) => decisions.push(Decision::Final(record)),
            Err(CommandError::Transient(e)) => return Err(e),
            Err(CommandError::Poison(why)) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "ROLLBACK TO SAVEPOINT {savepoint}"
                )))
                .execute(&mut *tx)
                .await?;
                tracing::error!(api_call_id = %command.api_call_id, reason = %why, "command cannot be applied; dead-lettering it");
                decisions.push(Decision::Poison(why));
            }
        }
    }
    let recorded = crate::webhooks::outbox::record_decisions(&mut tx, &decisions, handoff).await?;
    tx.commit().await?;
    if let Some(handoff) = handoff {
        handoff.committed(recorded);
    }
    Ok((decisions, BatchPath::OneByOne))
}

/// Locks the limits of every user the batch touches: the transactions' users and the owners
/// of the contracts its payments and refunds name (a contract's owner never changes, so a
/// plain read finds it). Every contract row is locked after its owner's limits, so two
/// batches that share a contract queue on the owner before either locks the contract.
async fn lock_users(
    conn: &mut MySqlConnection,
    commands: &[&Command],
) -> Result<BTreeMap<String, LockedLimits>, CommandError> {
    let mut users: BTreeSet<&str> = BTreeSet::new();
    let mut contracts: Vec<&str> = Vec::new();
    for command in commands {
        match command.payload.subject() {
            Subject::User(user) if is_plausible_id(user) => {
                users.insert(user);
            }
            Subject::Contract(nomor) if is_plausible_id(nomor) => contracts.push(nomor),
            _ => {}
        }
    }
    let owners = owners_of(&mut *conn, contracts).await?;
    users.extend(owners.values().map(String::as_str));
    Ok(lock_limits(conn, &users).await?)
}

/// The batch as a few multi-row statements: the limits locked, all external ids at once, the
/// contracts decided in memory on the locked limits and written with their installments,
/// then the payments and refunds (see `ledger::apply_many`), one write of the limits, then
/// all outcomes. A poison error means only that this path cannot decide the whole batch (an
/// external id already used, a redelivery, a command that cannot be applied): the caller
/// rolls back and goes command by command.
async fn set_based(
    conn: &mut MySqlConnection,
    commands: &[&Command],
    handoff: Option<&Handoff>,
    stages: &mut Stages,
) -> Result<(Vec<Decision>, Recorded), CommandError> {
    let mut users = lock_users(conn, commands).await?;
    stages.mark("lock");
    let records = commands
        .iter()
        .map(|c| idempotency_record(c))
        .collect::<Result<Vec<_>, _>>()?;
    let claims: Vec<_> = records
        .iter()
        .zip(commands)
        .map(|(r, c)| (r, c.accepted_at))
        .collect();
    insert_idempotency_many(&mut *conn, &claims).await?;
    stages.mark("claim");

    let buyers: Vec<&str> = commands
        .iter()
        .filter_map(|c| match &c.payload {
            CommandPayload::Transaction(t) if users.contains_key(&t.user_id) => {
                Some(t.user_id.as_str())
            }
            _ => None,
        })
        .collect();
    // Read after the owners' limits are locked: payments that settle an overdue installment
    // lock them first too, so this sees them whole.
    let overdue = shared::db::cob::overdue_users(&mut *conn, &buyers).await?;
    let mut verdicts: Vec<Option<Verdict>> = commands.iter().map(|_| None).collect();
    let mut drafts = Vec::new();
    // When each user's limits last changed in this batch.
    let mut touched: BTreeMap<String, NaiveDateTime> = BTreeMap::new();
    for (i, command) in commands.iter().enumerate() {
        let CommandPayload::Transaction(t) = &command.payload else {
            continue;
        };
        if !is_plausible_id(&t.user_id) {
            verdicts[i] = Some(Verdict::Rejected(RejectReason::UserNotFound));
            continue;
        }
        let draft = handlers::transaction::Draft::new(command, t)?;
        let Some(user) = users.get_mut(&t.user_id) else {
            verdicts[i] = Some(Verdict::Rejected(RejectReason::UserNotFound));
            continue;
        };
        if !user.active {
            verdicts[i] = Some(Verdict::Rejected(RejectReason::UserNotActive));
            continue;
        }
        if overdue.contains(&t.user_id) {
            verdicts[i] = Some(Verdict::Rejected(RejectReason::UserOverdue));
            continue;
        }
        let pair = user
            .limits
            .0
            .get_mut(draft.tenor().key())
            .ok_or_else(|| CommandError::Poison("a tenor without limits".into()))?;
        let Some(left) = pair.available.checked_sub(draft.cost()) else {
            verdicts[i] = Some(Verdict::Rejected(RejectReason::InsufficientLimit));
            continue;
        };
        pair.available = left;
        note_change(&mut touched, &t.user_id, to_naive(command.accepted_at));
        drafts.push((i, draft, user.limits.clone()));
    }
    let written: Vec<_> = drafts.iter().map(|(_, d, _)| d).collect();
    insert_contracts(conn, &written).await?;
    stages.mark("contracts");
    for (i, draft, limits) in drafts {
        verdicts[i] = Some(approved(&draft.into_view(limits))?);
    }

    let (indices, on_contracts): (Vec<usize>, Vec<&Command>) = commands
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.payload.subject(), Subject::Contract(_)))
        .map(|(i, c)| (i, *c))
        .unzip();
    if !on_contracts.is_empty() {
        let decided =
            handlers::ledger::apply_many(conn, &on_contracts, &mut users, &mut touched).await?;
        for (i, verdict) in indices.into_iter().zip(decided) {
            verdicts[i] = Some(verdict);
        }
    }
    stages.mark("payments");
    write_limits(conn, &users, &touched).await?;
    stages.mark("limits");

    let completed_at = Utc::now().trunc_subsecs(6);
    let records = commands
        .iter()
        .zip(verdicts)
        .map(|(command, verdict)| {
            verdict
                .map(|v| decided(command, v, completed_at))
                .ok_or_else(|| CommandError::Poison("a command was left undecided".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<Outcome> = commands
        .iter()
        .zip(&records)
        .map(|(c, r)| outcome_row(c, r))
        .collect();
    insert_outcomes(&mut *conn, &rows).await?;
    stages.mark("outcomes");
    let recorded = crate::webhooks::outbox::record(conn, &records, handoff).await?;
    stages.mark("outbox");
    Ok((records.into_iter().map(Decision::Final).collect(), recorded))
}

/// Records that `user`'s limits changed at `at` (the latest change wins).
pub(crate) fn note_change(
    touched: &mut BTreeMap<String, NaiveDateTime>,
    user: &str,
    at: NaiveDateTime,
) {
    touched
        .entry(user.to_owned())
        .and_modify(|last| *last = (*last).max(at))
        .or_insert(at);
}

/// Writes the limits of every user the batch changed in one statement. The rows are locked
/// by [`lock_users`], so their new values are exactly what was read minus what the batch's
/// contracts took plus what its payments gave back, and the CHECK constraints still refuse a
/// negative available limit should the arithmetic ever be wrong.
///
/// An upsert, not `UPDATE … WHERE user_id IN (…)`: InnoDB scans such an UPDATE as a range and
/// takes next-key locks on the neighbouring users' rows, which deadlocks batches that hold
/// those users; a duplicate-key update locks exactly the rows it names, which this batch
/// already holds. The rows exist (locked, and never deleted), so it never inserts.
async fn write_limits(
    conn: &mut MySqlConnection,
    users: &BTreeMap<String, LockedLimits>,
    touched: &BTreeMap<String, NaiveDateTime>,
) -> Result<(), sqlx::Error> {
    if touched.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = touched
        .iter()
        .filter_map(|(user, at)| users.get(user).map(|locked| (user, locked, at)))
        .collect();
    let mut update = String::from(" ON DUPLICATE KEY UPDATE ");
    for tenor in Tenor::ALL {
        let column = tenor.limit_columns().1;
        update.push_str(&format!("{column} = VALUES({column}), "));
    }
    update.push_str("updated_at = VALUES(updated_at)");
    shared::db::write_rows(
        conn,
        &format!("INSERT INTO user_limit_balances (user_id, {LIMIT_COLUMNS}, updated_at) "),
        &update,
        &rows,
        |mut b, &(user, locked, at)| {
            b.push_bind(user);
            for tenor in Tenor::ALL {
                b.push_bind(locked.limits.get(tenor).map(|p| p.granted.value()));
            }
            for tenor in Tenor::ALL {
                b.push_bind(locked.limits.get(tenor).map(|p| p.available.value()));
            }
            b.push_bind(*at);
        },
    )
    .await?;
    Ok(())
}

fn idempotency_record(command: &Command) -> Result<IdempotencyRecord<'_>, CommandError> {
    let body_sha256: [u8; 32] = hex::decode(&command.body_sha256)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| CommandError::Poison("body_sha256 is not 32 bytes of hex".into()))?;
    Ok(IdempotencyRecord {
        merchant_id: &command.merchant_id,
        endpoint: command.payload.call_type().endpoint(),
        external_id: &command.external_id,
        api_call_id: &command.api_call_id,
        body_sha256,
    })
}

async fn apply_one(
    conn: &mut MySqlConnection,
    command: &Command,
) -> Result<StatusRecord, CommandError> {
    let idem = idempotency_record(command)?;
    let verdict = match insert_idempotency(&mut *conn, &idem, command.accepted_at).await {
        Ok(()) => match &command.payload {
            CommandPayload::Transaction(t) => {
                handlers::transaction::apply(conn, command, t).await?
            }
            CommandPayload::Payment(_) | CommandPayload::Refund(_) => {
                apply_on_contract(conn, command).await?
            }
        },
        Err(e) if e.is_unique_violation() => {
            let owner = find_idempotency(
                &mut *conn,
                idem.merchant_id,
                idem.endpoint,
                idem.external_id,
            )
            .await?;
            match owner {
                // This very call was decided by an earlier delivery: report that decision.
                Some((call, _)) if call == command.api_call_id => {
                    let (merchant_id, status) = get_outcome(&mut *conn, &command.api_call_id)
                        .await?
                        .ok_or_else(|| {
                            CommandError::Poison("decided call without an outcome".into())
                        })?;
                    tracing::info!(api_call_id = %command.api_call_id, "redelivered command already decided");
                    return Ok(StatusRecord {
                        merchant_id,
                        status,
                    });
                }
                Some((original, _)) => {
                    return reject_duplicate(conn, command, &original).await;
                }
                None => {
                    return Err(CommandError::Poison(
                        "unique violation without a row".into(),
                    ));
                }
            }
        }
        Err(e) => return Err(e.into()),
    };
    record_outcome(conn, command, verdict).await
}

/// A payment or a refund alone, the way the set-based path decides a batch of them.
async fn apply_on_contract(
    conn: &mut MySqlConnection,
    command: &Command,
) -> Result<Verdict, CommandError> {
    // The batch holds these rows already; locking them again only reads them.
    let mut users = lock_users(conn, &[command]).await?;
    let mut touched = BTreeMap::new();
    let verdict = handlers::ledger::apply_many(conn, &[command], &mut users, &mut touched)
        .await?
        .pop()
        .ok_or_else(|| CommandError::Poison("a command was left undecided".into()))?;
    write_limits(conn, &users, &touched).await?;
    Ok(verdict)
}

/// A second call with a used external id: rejected, and its outcome names the original.
async fn reject_duplicate(
    conn: &mut MySqlConnection,
    command: &Command,
    original: &str,
) -> Result<StatusRecord, CommandError> {
    if let Some((merchant_id, status)) = get_outcome(&mut *conn, &command.api_call_id).await? {
        return Ok(StatusRecord {
            merchant_id,
            status,
        });
    }
    let mut record = decided(
        command,
        Verdict::Rejected(RejectReason::DuplicateExternalId),
        Utc::now().trunc_subsecs(6),
    );
    record.status.result = Some(call_result(&shared::status::DuplicateOf {
        original_api_call_id: original.to_owned(),
    })?);
    insert_outcome(&mut *conn, &outcome_row(command, &record)).await?;
    Ok(record)
}

async fn record_outcome(
    conn: &mut MySqlConnection,
    command: &Command,
    verdict: Verdict,
) -> Result<StatusRecord, CommandError> {
    let record = decided(command, verdict, Utc::now().trunc_subsecs(6));
    insert_outcome(&mut *conn, &outcome_row(command, &record)).await?;
    Ok(record)
}

/// A command's final status.
fn decided(command: &Command, verdict: Verdict, completed_at: DateTime<Utc>) -> StatusRecord {
    let (status, reason, result) = match verdict {
        Verdict::Approved(result) => (CallState::Approved, None, Some(result)),
        Verdict::Rejected(reason) => (CallState::Rejected, Some(reason), None),
    };
    StatusRecord {
        merchant_id: command.merchant_id.clone(),
        status: CallStatus {
            api_call_id: command.api_call_id.clone(),
            call_type: command.payload.call_type(),
            status,
            reason,
            created_at: command.accepted_at,
            completed_at: Some(completed_at),
            result,
        },
    }
}

/// The outcome row of a final status.
fn outcome_row<'a>(command: &'a Command, record: &'a StatusRecord) -> Outcome<'a> {
    let status = &record.status;
    Outcome {
        api_call_id: &command.api_call_id,
        merchant_id: &command.merchant_id,
        client_id: &command.client_id,
        external_id: &command.external_id,
        call_type: status.call_type,
        state: status.status,
        reason: status.reason,
        result: status.result.as_ref(),
        created_at: status.created_at,
        completed_at: status.completed_at.unwrap_or(status.created_at),
    }
}
