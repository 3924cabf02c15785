//! The unit of work: a batch of commands in one MySQL transaction, a savepoint per command so
//! one that fails alone rolls back alone, each with its own outcome row. Group commit: one
//! fsync for the whole batch.

use crate::handlers;
use chrono::{SubsecRound, Utc};
use serde_json::json;
use shared::cache::StatusRecord;
use shared::db::DbError;
use shared::db::outcomes::{
    Outcome, find_idempotency, get_outcome, insert_idempotency, insert_outcome,
};
use shared::db::users::IdempotencyRecord;
use shared::envelope::RejectReason;
use shared::messages::{Command, CommandPayload};
use shared::status::{CallState, CallStatus};
use sqlx::{MySqlConnection, MySqlPool};

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
pub enum Verdict {
    Approved(serde_json::Value),
    Rejected(RejectReason),
}

/// Errors inside one command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
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

/// Orders a batch so concurrent workers take row locks in the same order.
pub fn lock_order(command: &Command) -> (u8, String) {
    match &command.payload {
        CommandPayload::Transaction(t) => (0, t.user_id.clone()),
        CommandPayload::Payment(p) => (1, p.nomor_kontrak.clone()),
    }
}

/// Applies every command in one transaction and commits. Returns one decision per command,
/// in the order given.
pub async fn apply_batch(
    pool: &MySqlPool,
    commands: &[&Command],
) -> Result<Vec<Decision>, Transient> {
    let mut tx = pool.begin().await?;
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
    tx.commit().await?;
    Ok(decisions)
}

async fn apply_one(
    conn: &mut MySqlConnection,
    command: &Command,
) -> Result<StatusRecord, CommandError> {
    let call_type = command.payload.call_type();
    let body_sha256: [u8; 32] = hex::decode(&command.body_sha256)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| CommandError::Poison("body_sha256 is not 32 bytes of hex".into()))?;
    let idem = IdempotencyRecord {
        merchant_id: &command.merchant_id,
        endpoint: call_type.endpoint(),
        external_id: &command.external_id,
        api_call_id: &command.api_call_id,
        body_sha256,
    };
    let verdict = match insert_idempotency(&mut *conn, &idem, command.accepted_at).await {
        Ok(()) => match &command.payload {
            CommandPayload::Transaction(t) => {
                handlers::transaction::apply(conn, command, t).await?
            }
            CommandPayload::Payment(p) => handlers::payment::apply(conn, command, p).await?,
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
    let (state, reason, result) = match verdict {
        Verdict::Approved(result) => (CallState::Approved, None, Some(result)),
        Verdict::Rejected(reason) => (CallState::Rejected, Some(reason), None),
    };
    record_outcome(conn, command, state, reason, result).await
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
    let result = json!({"original_api_call_id": original});
    record_outcome(
        conn,
        command,
        CallState::Rejected,
        Some(RejectReason::DuplicateExternalId),
        Some(result),
    )
    .await
}

async fn record_outcome(
    conn: &mut MySqlConnection,
    command: &Command,
    state: CallState,
    reason: Option<RejectReason>,
    result: Option<serde_json::Value>,
) -> Result<StatusRecord, CommandError> {
    let completed_at = Utc::now().trunc_subsecs(6);
    insert_outcome(
        &mut *conn,
        &Outcome {
            api_call_id: &command.api_call_id,
            merchant_id: &command.merchant_id,
            client_id: &command.client_id,
            external_id: &command.external_id,
            call_type: command.payload.call_type(),
            state,
            reason,
            result: result.as_ref(),
            created_at: command.accepted_at,
            completed_at,
        },
    )
    .await?;
    Ok(StatusRecord {
        merchant_id: command.merchant_id.clone(),
        status: CallStatus {
            api_call_id: command.api_call_id.clone(),
            call_type: command.payload.call_type(),
            status: state,
            reason,
            created_at: command.accepted_at,
            completed_at: Some(completed_at),
            result,
        },
    })
}
