//! Learning outcomes: polling `GET /status` (while the load runs, accepted transactions until
//! enough contracts are known to pay on, or all of them when contracts are refunded; after it,
//! every accepted call until it is final), or with `--no-poll` the webhooks' `call.completed`
//! and, for payments, which no webhook tells (they are admin calls), MySQL. Polls are spaced
//! so they do not eat the keys' rate limits.

use super::progress::Progress;
use super::refunds::{self, RefundJob};
use super::webhooks::{self, Delivery, Recorded};
use super::{Ctx, FinalSeen, Kind, lock};
use crate::util::parse_cents;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::Value;
use sqlx::{MySql, QueryBuilder, Row};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Spaces status polls so they do not eat the keys' rate limit.
pub(super) struct Pacer {
    next: Mutex<Instant>,
    interval: Duration,
}

impl Pacer {
    pub(super) fn new(per_second: f64) -> Pacer {
        Pacer {
            next: Mutex::new(Instant::now()),
            interval: Duration::from_secs_f64(1.0 / per_second.max(1.0)),
        }
    }

    async fn wait(&self) {
        let at = {
            let mut next = lock(&self.next);
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// While the load runs, polls accepted transactions (oldest first) until enough approved
/// contracts are known to pay on.
pub(super) async fn learn_contracts(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<String>) {
    if ctx.args.no_poll {
        return;
    }
    let mut queue: VecDeque<String> = VecDeque::new();
    while !ctx.load_done.load(Ordering::Relaxed) {
        while let Ok(id) = rx.try_recv() {
            queue.push_back(id);
        }
        // Refunds are owed to a share of every approved contract: then every one is learned.
        let enough =
            ctx.args.refund_share == 0.0 && lock(&ctx.pool).payable() >= ctx.args.learn_target;
        if enough || queue.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let batch: Vec<String> = (0..8).filter_map(|_| queue.pop_front()).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let results = futures_util::future::join_all(
            batch
                .iter()
                .map(|id| poll_status(&ctx, Kind::Transaction, id, deadline)),
        )
        .await;
        for (id, r) in batch.into_iter().zip(results) {
            if r.is_none() {
                queue.push_back(id);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One `GET /status`; records and returns the status when final.
async fn poll_status(
    ctx: &Ctx,
    kind: Kind,
    api_call_id: &str,
    deadline: Instant,
) -> Option<FinalSeen> {
    ctx.pacer.wait().await;
    let key = if kind.by_merchant() {
        &ctx.merchant
    } else {
        &ctx.admin
    };
    let path = format!("/status/{api_call_id}");
    let r = ctx
        .poll_api
        .get(key, &path, deadline, &ctx.counters)
        .await?;
    if r.status != 200 {
        if r.status == 404 {
            lock(&ctx.status_404).insert(api_call_id.to_owned());
        }
        ctx.counters
            .count_poll_status(r.status, || format!("GET {path}: {} {}", r.status, r.body));
        return None;
    }
    on_final(ctx, kind, api_call_id, r.data())
}

/// A final status object (`GET /status`'s `message_data`, a `call.completed`'s `data`) as the
/// run keeps it; `None` while it is pending.
pub(super) fn final_seen(kind: Kind, d: &Value, seen_at: DateTime<Utc>) -> Option<FinalSeen> {
    let state = d["status"].as_str()?;
    if state == "PENDING" {
        return None;
    }
    let resource = match kind {
        Kind::Transaction => "nomor_kontrak",
        Kind::Payment => "kode_bayar",
        Kind::Refund => "kode_refund",
    };
    Some(FinalSeen {
        state: state.to_owned(),
        reason: d["reason"].as_str().map(str::to_owned),
        completed_at: d["completed_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc)),
        seen_at,
        resource_id: d["result"][resource].as_str().map(str::to_owned),
    })
}

/// Records a call's final status (the first time only) and learns from it: an approved
/// contract goes to the payments' pool while the load runs, and maybe to the refunder.
fn on_final(ctx: &Ctx, kind: Kind, api_call_id: &str, d: &Value) -> Option<FinalSeen> {
    let seen = final_seen(kind, d, Utc::now())?;
    if lock(&ctx.finals)
        .insert(api_call_id.to_owned(), seen.clone())
        .is_some()
    {
        return Some(seen);
    }
    let result = &d["result"];
    if kind == Kind::Transaction
        && seen.state == "APPROVED"
        && let (Some(nk), Some(cicilan), Some(jumlah)) = (
            seen.resource_id.as_deref(),
            result["cicilan_bulanan"].as_str().and_then(parse_cents),
            result["jumlah_cicilan"].as_str().and_then(parse_cents),
        )
    {
        if !ctx.load_done.load(Ordering::Relaxed) {
            lock(&ctx.pool).learn(nk, cicilan, jumlah);
        }
        if refunds::chosen(ctx.seed, nk, ctx.args.refund_share) {
            ctx.refunds_in_flight.fetch_add(1, Ordering::Relaxed);
            let job = RefundJob {
                nomor_kontrak: nk.to_owned(),
                jumlah_cicilan: jumlah,
            };
            if ctx.refund_tx.send(job).is_err() {
                ctx.refunds_in_flight.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
    Some(seen)
}

/// Records every valid delivery; with `--no-poll`, a call's first `call.completed` is how the
/// run learns its outcome.
pub(super) async fn consume_deliveries(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<Delivery>) {
    let Some(hooks) = &ctx.hooks else { return };
    while let Some(d) = rx.recv().await {
        let recorded = lock(&hooks.tally).record(&d);
        let Recorded::FirstCall { api_call_id, data } = recorded else {
            continue;
        };
        // Calls made before the registration are an earlier run's.
        let created = data["created_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        if ctx.args.no_poll
            && created.is_none_or(|t| t >= hooks.registered_at)
            && let Some(kind) = data["type"].as_str().and_then(Kind::parse)
        {
            on_final(&ctx, kind, &api_call_id, &data);
        }
    }
}

/// Accepted calls not final yet.
fn pending_calls(ctx: &Ctx) -> Vec<(String, Kind)> {
    let finals = lock(&ctx.finals);
    lock(&ctx.records)
        .iter()
        .filter_map(|r| r.api_call_id.as_ref().map(|id| (id.clone(), r.kind)))
        .filter(|(id, _)| !finals.contains_key(id))
        .collect()
}

/// Until every accepted call is final and every refund owed has been sent, or
/// `--wait-timeout-secs`.
pub(super) async fn wait_for_finals(ctx: &Arc<Ctx>) {
    let progress = Progress::finals(ctx);
    let deadline = Instant::now() + Duration::from_secs(ctx.args.wait_timeout_secs);
    loop {
        let pending = pending_calls(ctx);
        let refunding = ctx.refunds_in_flight.load(Ordering::Relaxed) > 0;
        if (pending.is_empty() && !refunding) || Instant::now() >= deadline {
            break;
        }
        let sweep_started = Instant::now();
        match &ctx.db {
            Some(db) if ctx.args.no_poll => {
                let payments: Vec<String> = pending
                    .into_iter()
                    .filter(|(_, kind)| *kind == Kind::Payment)
                    .map(|(id, _)| id)
                    .collect();
                if let Err(e) = payments_from_mysql(ctx, db, &payments).await {
                    eprintln!("loadgen: reading payments' outcomes: {e:#}");
                }
            }
            _ => {
                futures_util::stream::iter(pending)
                    .for_each_concurrent(
                        ctx.args.poll_concurrency.max(1),
                        |(id, kind)| async move {
                            poll_status(ctx, kind, &id, deadline).await;
                        },
                    )
                    .await;
            }
        }
        tokio::time::sleep_until(
            (sweep_started + Duration::from_millis(100))
                .max(Instant::now() + Duration::from_millis(10)),
        )
        .await;
    }
    progress.finish().await;
}

/// `--no-poll`: payments' outcomes from `async_outcomes` (the table `GET /status` falls back
/// to), read in one query per 500 calls.
async fn payments_from_mysql(
    ctx: &Ctx,
    db: &sqlx::MySqlPool,
    ids: &[String],
) -> anyhow::Result<()> {
    for chunk in ids.chunks(500) {
        let mut qb = QueryBuilder::<MySql>::new(
            "SELECT api_call_id, status, reason, completed_at, result FROM async_outcomes WHERE api_call_id IN (",
        );
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(id.as_str());
        }
        qb.push(")");
        for row in qb.build().fetch_all(db).await? {
            let id: String = row.try_get("api_call_id")?;
            let completed: chrono::NaiveDateTime = row.try_get("completed_at")?;
            let result: Option<String> = row.try_get("result")?;
            let result: Value = result
                .and_then(|r| serde_json::from_str(&r).ok())
                .unwrap_or(Value::Null);
            let status = serde_json::json!({
                "status": row.try_get::<String, _>("status")?,
                "reason": row.try_get::<Option<String>, _>("reason")?,
                "completed_at": completed.and_utc().to_rfc3339(),
                "result": result,
            });
            on_final(ctx, Kind::Payment, &id, &status);
        }
    }
    Ok(())
}

/// `--webhooks`: until every final call of the merchant has been told at least once by a
/// `call.completed`, and (when MySQL is read) every contract of the run that ended by a
/// `contract.paid_off` or `contract.cancelled`; or `--webhook-wait-secs`.
pub(super) async fn wait_for_webhooks(ctx: &Arc<Ctx>) {
    let Some(hooks) = &ctx.hooks else { return };
    let deadline = Instant::now() + Duration::from_secs(ctx.args.webhook_wait_secs);
    let calls: HashMap<String, Kind> = lock(&ctx.records)
        .iter()
        .filter_map(|r| r.api_call_id.clone().map(|id| (id, r.kind)))
        .collect();
    let finals = lock(&ctx.finals).clone();
    // The contract events owed are known from MySQL only: without it, only calls are awaited.
    let db = match (&ctx.db, ctx.args.no_verify) {
        (_, true) => None,
        (Some(db), false) => Some(db.clone()),
        (None, false) => shared::db::connect(&ctx.args.database_url, 2).await.ok(),
    };
    let mut ended: Option<HashSet<(String, webhooks::ContractEventKind)>> = None;
    loop {
        let untold = lock(&hooks.tally).untold(&calls, &finals).len();
        let mut contracts_untold = 0;
        if untold == 0 {
            if ended.is_none()
                && let Some(db) = &db
            {
                match crate::verify::ended_contracts(db, &ctx.users).await {
                    Ok(e) => ended = Some(e.into_iter().collect()),
                    Err(e) => {
                        eprintln!("loadgen: reading the run's contracts: {e:#}");
                        ended = Some(HashSet::new());
                    }
                }
            }
            let told: HashSet<(String, webhooks::ContractEventKind)> = lock(&hooks.tally)
                .contracts
                .iter()
                .map(|c| (c.nomor_kontrak.clone(), c.kind))
                .collect();
            contracts_untold = ended.as_ref().map_or(0, |e| e.difference(&told).count());
            if contracts_untold == 0 {
                return;
            }
        }
        if Instant::now() >= deadline {
            eprintln!(
                "webhooks: after --webhook-wait-secs, {untold} final calls not told by a call.completed, {contracts_untold} ended contracts not told by their event"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_final_status_names_the_resource_of_its_type_and_a_pending_one_is_not_final() {
        let at = Utc::now();
        let status = |status: &str, result: Value| {
            json!({"api_call_id": "API_CALL_1", "type": "REFUND", "status": status,
                   "reason": null, "created_at": "2026-12-04T10:00:00Z",
                   "completed_at": "2026-12-04T10:00:01.250Z", "result": result})
        };
        let refund = status(
            "APPROVED",
            json!({"kode_refund": "RFD_1", "nomor_kontrak": "K1"}),
        );
        let seen = final_seen(Kind::Refund, &refund, at);
        assert_eq!(
            seen.as_ref().and_then(|s| s.resource_id.as_deref()),
            Some("RFD_1")
        );
        assert_eq!(
            seen.and_then(|s| s.completed_at)
                .map(|t| t.timestamp_millis() % 1000),
            Some(250)
        );
        let contract = status("APPROVED", json!({"nomor_kontrak": "K1"}));
        assert_eq!(
            final_seen(Kind::Transaction, &contract, at).and_then(|s| s.resource_id),
            Some("K1".to_owned())
        );
        let mut rejected = status("REJECTED", Value::Null);
        rejected["reason"] = json!("REFUND_EXCEEDS");
        let seen = final_seen(Kind::Refund, &rejected, at);
        assert_eq!(
            seen.map(|s| (s.state, s.reason, s.resource_id)),
            Some(("REJECTED".into(), Some("REFUND_EXCEEDS".into()), None))
        );
        assert!(final_seen(Kind::Refund, &status("PENDING", Value::Null), at).is_none());
        assert!(final_seen(Kind::Refund, &json!({}), at).is_none());
    }
}
