//! The transactional outbox: the webhook events a batch's outcomes cause, written in the
//! batch's own transaction, so an outcome and its events commit together or not at all.
//! Recorded only for merchants subscribed to the event type at that moment (SPEC §11).

use super::Handoff;
use crate::unit::{CommandError, Decision, Transient};
use serde::{Deserialize, Serialize};
use shared::cache::StatusRecord;
use shared::db::contracts::contract_rows;
use shared::db::webhooks::{LeasedEvent, NewEvent, Subscription, insert_events, subscriptions};
use shared::messages::CallType;
use shared::status::CallState;
use shared::webhooks::EventType;
use sqlx::MySqlConnection;
use std::collections::{BTreeMap, BTreeSet};

/// The events a batch wrote, for its process's dispatcher once the batch commits
/// ([`Handoff::committed`]); dropped with the batch when it rolls back.
#[derive(Default)]
pub(crate) struct Recorded(Vec<LeasedEvent>);

impl Recorded {
    pub(crate) fn into_events(self) -> Vec<LeasedEvent> {
        self.0
    }
}

/// Records the events of `records` (final statuses written in this transaction), leased to
/// `handoff`'s dispatcher when there is one. One query when no merchant of the batch has an
/// endpoint.
pub(crate) async fn record(
    conn: &mut MySqlConnection,
    records: &[StatusRecord],
    handoff: Option<&Handoff>,
) -> Result<Recorded, CommandError> {
    record_all(conn, records.iter().collect(), handoff).await
}

async fn record_all(
    conn: &mut MySqlConnection,
    mut records: Vec<&StatusRecord>,
    handoff: Option<&Handoff>,
) -> Result<Recorded, CommandError> {
    records.retain(|r| r.status.is_final());
    if records.is_empty() {
        return Ok(Recorded::default());
    }
    let contract_events: Vec<(&StatusRecord, EventType, String)> = records
        .iter()
        .filter_map(|r| contract_event(r).map(|(t, n)| (*r, t, n)))
        .collect();
    // The contracts' rows first: they name each contract's merchant, whose subscription
    // decides whether the rest of the contract is read.
    let rows = contract_rows(conn, contract_events.iter().map(|(_, _, n)| n.as_str())).await?;
    let owners = rows.owners()?;
    let merchants: Vec<&str> = records
        .iter()
        .map(|r| r.merchant_id.as_str())
        .chain(owners.values().map(String::as_str))
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .collect();
    let subscribed = subscriptions(conn, &merchants).await?;
    if subscribed.is_empty() {
        return Ok(Recorded::default());
    }
    let now = chrono::Utc::now();
    let mut events = Vec::new();
    for r in &records {
        if wants(&subscribed, &r.merchant_id, EventType::CallCompleted) {
            events.push(event(
                &r.merchant_id,
                EventType::CallCompleted,
                &r.status.api_call_id,
                &r.status,
                now,
            )?);
        }
    }
    // The contracts whose events are wanted, as this transaction leaves them: read together.
    let wanted: Vec<(&StatusRecord, EventType, &str, &str)> = contract_events
        .iter()
        .filter_map(|(r, t, nomor)| {
            let owner = owners.get(nomor)?;
            wants(&subscribed, owner, *t).then_some((*r, *t, nomor.as_str(), owner.as_str()))
        })
        .collect();
    let nomors = wanted.iter().map(|(_, _, n, _)| *n);
    let contracts = rows.closing(conn, nomors, None).await?;
    for (r, event_type, nomor, owner) in wanted {
        let Some((_, contract)) = contracts.get(nomor) else {
            continue;
        };
        events.push(event(
            owner,
            event_type,
            &r.status.api_call_id,
            contract,
            now,
        )?);
    }
    if events.is_empty() {
        return Ok(Recorded::default());
    }
    let lease = handoff.map(|h| h.lease(now));
    let written = insert_events(conn, &events, lease).await?;
    let Some(lease) = lease else {
        super::WRITTEN.notify_waiters();
        return Ok(Recorded::default());
    };
    Ok(Recorded(
        events
            .into_iter()
            .zip(written)
            .filter(|(_, written)| *written)
            .map(|(e, _)| LeasedEvent {
                endpoint: subscribed.get(&e.merchant_id).map(|s| s.endpoint.clone()),
                event_id: e.event_id,
                merchant_id: e.merchant_id,
                payload: e.payload,
                attempts: 0,
                created_at: e.created_at,
                lease_until: lease.until,
            })
            .collect(),
    ))
}

/// [`record`] for the batch decided one command at a time: only a transient failure fails
/// the batch; any other is logged, and the outcomes commit without their events.
pub(crate) async fn record_decisions(
    conn: &mut MySqlConnection,
    decisions: &[Decision],
    handoff: Option<&Handoff>,
) -> Result<Recorded, Transient> {
    let records = decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Final(r) => Some(r),
            Decision::Poison(_) => None,
        })
        .collect();
    match record_all(conn, records, handoff).await {
        Ok(recorded) => Ok(recorded),
        Err(CommandError::Transient(e)) => Err(e),
        Err(CommandError::Poison(why)) => {
            tracing::error!(reason = %why, "webhook events of a batch could not be recorded");
            Ok(Recorded::default())
        }
    }
}

fn wants(subscribed: &BTreeMap<String, Subscription>, merchant: &str, t: EventType) -> bool {
    subscribed.get(merchant).is_some_and(|s| s.wants(t))
}

/// What an approved payment or refund says about its contract.
#[derive(Deserialize)]
struct ContractEffect {
    nomor_kontrak: Option<String>,
    status_bayar: Option<String>,
    status_kontrak: Option<String>,
}

/// The contract event an approved call causes: nothing outstanding after a payment
/// (`status_bayar` SUCCESS) or a refund (`status_kontrak` PAID_OFF) is `contract.paid_off`; a
/// refund that cancels is `contract.cancelled`.
fn contract_event(r: &StatusRecord) -> Option<(EventType, String)> {
    // A transaction's result is the new contract: it neither pays off nor cancels.
    if r.status.status != CallState::Approved || r.status.call_type == CallType::Transaction {
        return None;
    }
    let effect: ContractEffect = serde_json::from_str(r.status.result.as_ref()?.as_str()).ok()?;
    let event_type = match (
        effect.status_bayar.as_deref(),
        effect.status_kontrak.as_deref(),
    ) {
        (_, Some("CANCELLED")) => EventType::ContractCancelled,
        (Some("SUCCESS"), _) | (_, Some("PAID_OFF")) => EventType::ContractPaidOff,
        _ => return None,
    };
    Some((event_type, effect.nomor_kontrak?))
}

fn event<T: Serialize>(
    merchant_id: &str,
    event_type: EventType,
    source_id: &str,
    data: &T,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<NewEvent, CommandError> {
    NewEvent::new(merchant_id, event_type, source_id, data, now)
        .map_err(|e| CommandError::Poison(format!("webhook payload not serializable: {e}")))
}
