//! Polling `GET /status`: while the load runs, accepted transactions until enough contracts
//! are known to pay on; after it, every accepted call until it is final. Polls are spaced so
//! they do not eat the keys' rate limits.

use super::progress::Progress;
use super::{Ctx, FinalSeen, Kind, lock};
use crate::util::parse_cents;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::collections::VecDeque;
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
    let mut queue: VecDeque<String> = VecDeque::new();
    while !ctx.load_done.load(Ordering::Relaxed) {
        while let Ok(id) = rx.try_recv() {
            queue.push_back(id);
        }
        let known = lock(&ctx.pool).payable();
        if known >= ctx.args.learn_target || queue.is_empty() {
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
    let key = match kind {
        Kind::Transaction => &ctx.merchant,
        Kind::Payment => &ctx.admin,
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
    let d = r.data();
    let state = d["status"].as_str()?;
    if state == "PENDING" {
        return None;
    }
    let result = &d["result"];
    let resource_id = match kind {
        Kind::Transaction => result["nomor_kontrak"].as_str(),
        Kind::Payment => result["kode_bayar"].as_str(),
    };
    let seen = FinalSeen {
        state: state.to_owned(),
        reason: d["reason"].as_str().map(str::to_owned),
        completed_at: d["completed_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc)),
        seen_at: Utc::now(),
        resource_id: resource_id.map(str::to_owned),
    };
    if kind == Kind::Transaction && state == "APPROVED" && !ctx.load_done.load(Ordering::Relaxed) {
        let cicilan = result["cicilan_bulanan"].as_str().and_then(parse_cents);
        let jumlah = result["jumlah_cicilan"].as_str().and_then(parse_cents);
        if let (Some(nk), Some(cicilan), Some(jumlah)) = (resource_id, cicilan, jumlah) {
            lock(&ctx.pool).learn(nk, cicilan, jumlah);
        }
    }
    lock(&ctx.finals).insert(api_call_id.to_owned(), seen.clone());
    Some(seen)
}

pub(super) async fn wait_for_finals(ctx: &Arc<Ctx>) {
    let mut pending: Vec<(String, Kind)> = {
        let finals = lock(&ctx.finals);
        lock(&ctx.records)
            .iter()
            .filter_map(|r| r.api_call_id.as_ref().map(|id| (id.clone(), r.kind)))
            .filter(|(id, _)| !finals.contains_key(id))
            .collect()
    };
    let progress = Progress::finals(ctx);
    let deadline = Instant::now() + Duration::from_secs(ctx.args.wait_timeout_secs);
    while !pending.is_empty() && Instant::now() < deadline {
        let sweep_started = Instant::now();
        let results: Vec<((String, Kind), bool)> = futures_util::stream::iter(pending)
            .map(|(id, kind)| async move {
                let done = poll_status(ctx, kind, &id, deadline).await.is_some();
                ((id, kind), done)
            })
            .buffer_unordered(ctx.args.poll_concurrency.max(1))
            .collect()
            .await;
        pending = results
            .into_iter()
            .filter(|(_, done)| !done)
            .map(|(c, _)| c)
            .collect();
        if !pending.is_empty() {
            tokio::time::sleep_until(
                (sweep_started + Duration::from_millis(100))
                    .max(Instant::now() + Duration::from_millis(10)),
            )
            .await;
        }
    }
    progress.finish().await;
}
