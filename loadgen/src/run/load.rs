//! Driving the load: the users, then each request of the mix (a transaction, or a payment on
//! a contract this run created) sent on a closed loop's workers or an open loop's schedule.

use super::{CallRecord, Ctx, Kind, lock};
use crate::api::{Api, HttpCounters, Key, PostOutcome, RetryPolicy};
use crate::util::{Rng, cents_text, ms};
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

const ASSETS: [&str; 6] = [
    "Kulkas 2 Pintu",
    "Televisi 43 inch",
    "Mesin Cuci",
    "Sepeda Motor",
    "Laptop",
    "AC 1 PK",
];
const TENORS: [u8; 4] = [1, 2, 3, 6];

struct PoolEntry {
    nomor_kontrak: String,
    cicilan_bulanan: i64,
    jumlah_cicilan: i64,
    /// What is outstanding at most, counting every payment sent so far as approved.
    remaining: i64,
}

/// Approved contracts of this run with something left to pay.
#[derive(Default)]
pub(super) struct ContractPool {
    entries: Vec<PoolEntry>,
    learned: usize,
    planned: u64,
}

struct PaymentPlan {
    nomor_kontrak: String,
    cents: i64,
    deliberate_overpay: bool,
}

impl ContractPool {
    /// An approved contract to pay on.
    pub(super) fn learn(&mut self, nomor_kontrak: &str, cicilan_bulanan: i64, jumlah_cicilan: i64) {
        self.learned += 1;
        self.entries.push(PoolEntry {
            nomor_kontrak: nomor_kontrak.to_owned(),
            cicilan_bulanan,
            jumlah_cicilan,
            remaining: jumlah_cicilan,
        });
    }

    /// A refund of `cents` sent on a contract: what is left to pay shrinks by as much at most,
    /// so the payments planned after it stay within what is outstanding.
    pub(super) fn note_refund(&mut self, nomor_kontrak: &str, cents: i64) {
        if let Some(i) = self
            .entries
            .iter()
            .position(|e| e.nomor_kontrak == nomor_kontrak)
        {
            self.entries[i].remaining -= cents;
            if self.entries[i].remaining <= 0 {
                self.entries.swap_remove(i);
            }
        }
    }

    /// Contracts learned so far.
    pub(super) fn learned(&self) -> usize {
        self.learned
    }

    /// Contracts with something left to pay.
    pub(super) fn payable(&self) -> usize {
        self.entries.len()
    }

    /// A payment on a known contract: at most the installment and what is left, so it must
    /// be approved; or, `overpay_share` of the time, more than the whole contract (more than
    /// twice it when late fees may be charged: they add up to the contract at most).
    fn plan_payment(
        &mut self,
        rng: &mut Rng,
        overpay_share: f64,
        fees_possible: bool,
    ) -> Option<PaymentPlan> {
        if self.entries.is_empty() {
            return None;
        }
        let i = rng.index(self.entries.len());
        let e = &mut self.entries[i];
        // Exactly `overpay_share` of the payments, evenly spread (the first is payment number
        // 1/overpay_share), so even a short run has some.
        let n = self.planned as f64;
        self.planned += 1;
        if ((n + 1.0) * overpay_share).floor() > (n * overpay_share).floor() {
            return Some(PaymentPlan {
                nomor_kontrak: e.nomor_kontrak.clone(),
                cents: if fees_possible {
                    2 * e.jumlah_cicilan + 1
                } else {
                    e.jumlah_cicilan + 1
                },
                deliberate_overpay: true,
            });
        }
        let max = e.cicilan_bulanan.min(e.remaining).max(1);
        let cents = if rng.unit() < 0.5 {
            max
        } else {
            rng.range_i64(1, max)
        };
        e.remaining -= cents;
        let plan = PaymentPlan {
            nomor_kontrak: e.nomor_kontrak.clone(),
            cents,
            deliberate_overpay: false,
        };
        if e.remaining <= 0 {
            self.entries.swap_remove(i);
        }
        Some(plan)
    }
}

/// The run's users, each with `limit_cents` granted on every tenor.
pub(super) async fn create_users(
    api: &Api,
    admin: &Key,
    run_id: &str,
    n: usize,
    limit_cents: i64,
    policy: &RetryPolicy,
    counters: &HttpCounters,
) -> Result<Vec<String>> {
    let limit = cents_text(limit_cents);
    let mut rng = Rng::from_entropy();
    let bodies: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let nik = format!("32{:014}", rng.next_u64() % 100_000_000_000_000);
            let body = format!(
                r#"{{"nik":"{nik}","full_name":"Loadgen User {i}","legal_name":"Loadgen User {i}","tempat_lahir":"Bandung","tanggal_lahir":"1990-01-15","gaji":15000000,"foto_ktp":"https://cdn.example.com/ktp/{run_id}-{i}.jpg","foto_selfie":"https://cdn.example.com/selfie/{run_id}-{i}.jpg","limit_one_month":{limit},"limit_two_month":{limit},"limit_three_month":{limit},"limit_sixth":{limit}}}"#
            );
            (format!("LG-{run_id}-U-{i}"), body.into_bytes())
        })
        .collect();
    let results: Vec<PostOutcome> = futures_util::stream::iter(bodies.iter())
        .map(|(ext, body)| api.post(admin, "/create-user", ext, body, policy, counters))
        .buffered(8)
        .collect()
        .await;
    let mut users = Vec::with_capacity(n);
    for r in results {
        match r {
            PostOutcome::Accepted {
                status: 201, body, ..
            } => {
                let id = body["message_data"]["user_id"]
                    .as_str()
                    .context("201 without message_data.user_id")?;
                users.push(id.to_owned());
            }
            PostOutcome::Accepted { body, .. } => {
                bail!("POST /create-user: unexpected answer {body} (a retry after a lost answer?)")
            }
            PostOutcome::Failed { status, detail } => {
                bail!("POST /create-user failed ({status}): {detail}")
            }
        }
    }
    eprintln!("created {} users with limit {limit} per tenor", users.len());
    Ok(users)
}

pub(super) async fn drive_load(
    ctx: &Arc<Ctx>,
    start: Instant,
    start_wall: DateTime<Utc>,
) -> Result<()> {
    let total = ctx.args.requests;
    if let Some(rate) = ctx.args.rate {
        // Open loop: request i is due at start + i/rate whatever happened to the others, and
        // its latency counts from then. The schedule is kept by a thread of its own: tokio's
        // timer rounds every sleep up to the next millisecond, which made the requests leave
        // 1 ms late on average (2 ms at p99) on an idle machine, an error of the load
        // generator's that the engine's figures would carry. A thread's sleep is precise to
        // tens of microseconds.
        let slots = Arc::new(Semaphore::new(ctx.args.max_inflight.max(1)));
        let runtime = tokio::runtime::Handle::current();
        let (spawned_tx, mut spawned) = mpsc::unbounded_channel();
        let pacer = {
            let ctx = ctx.clone();
            let start = start.into_std();
            std::thread::Builder::new()
                .name("loadgen-pacer".into())
                .spawn(move || {
                    for i in 0..total {
                        let offset = Duration::from_secs_f64(i as f64 / rate);
                        let due = start + offset;
                        if let Some(ahead) = due.checked_duration_since(std::time::Instant::now()) {
                            std::thread::sleep(ahead);
                        }
                        let Ok(slot) = runtime.block_on(slots.clone().acquire_owned()) else {
                            return;
                        };
                        let due_wall =
                            start_wall + chrono::Duration::from_std(offset).unwrap_or_default();
                        let c = ctx.clone();
                        let task = runtime.spawn(async move {
                            one_request(&c, i, Instant::from_std(due), due_wall).await;
                            drop(slot);
                        });
                        if spawned_tx.send(task).is_err() {
                            return;
                        }
                    }
                })
                .context("starting the pacing thread")?
        };
        while let Some(task) = spawned.recv().await {
            task.await.context("a request task failed")?;
        }
        pacer
            .join()
            .map_err(|_| anyhow::anyhow!("the pacing thread panicked"))?;
    } else {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..ctx.args.concurrency.max(1) {
            let c = ctx.clone();
            let next = next.clone();
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    one_request(&c, i, Instant::now(), Utc::now()).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// A point in the load phase.
#[derive(Debug, Clone, Copy)]
pub(super) enum LoadPoint {
    /// Seconds after the load started.
    Secs(f64),
    /// When this many of the load's requests are due (open loop) or done (closed loop).
    Requests(usize),
}

/// Waits until the load reaches `point`, or is over.
pub(super) async fn wait_for(ctx: &Ctx, start: Instant, point: LoadPoint) {
    let due = match (point, ctx.args.rate) {
        (LoadPoint::Secs(s), _) => Some(s),
        (LoadPoint::Requests(n), Some(rate)) => Some(n as f64 / rate),
        (LoadPoint::Requests(_), None) => None,
    };
    let due = due.map(|s| start + Duration::from_secs_f64(s.clamp(0.0, 1e9)));
    loop {
        if ctx.load_done.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        match (due, point) {
            (Some(at), _) if now >= at => return,
            (Some(at), _) => tokio::time::sleep((at - now).min(Duration::from_millis(10))).await,
            (None, LoadPoint::Requests(n)) if ctx.done.load(Ordering::Relaxed) as usize >= n => {
                return;
            }
            (None, _) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Sends request `i`: a payment when the mix asks for one and a contract is known (owed
/// payments are made up later), else a transaction.
async fn one_request(ctx: &Ctx, i: usize, due: Instant, due_wall: DateTime<Utc>) {
    let mut rng = Rng::new(ctx.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (mut due, mut due_wall) = (due, due_wall);
    let payment = if rng.unit() < ctx.args.payment_share {
        let p = next_payment(ctx, &mut rng).await;
        if p.is_none() {
            ctx.substituted.fetch_add(1, Ordering::Relaxed);
        }
        // A payment that waited for a contract to pay on starts when it has one: that wait is
        // the load generator's, not the engine's.
        let now = Instant::now();
        if now > due {
            due_wall += chrono::Duration::from_std(now - due).unwrap_or_default();
            due = now;
        }
        p
    } else {
        None
    };

    let mut record = CallRecord::new(Kind::Transaction, String::new());
    record.sent_wall = due_wall;
    let (key, path, body) = match payment {
        Some(p) => {
            record.kind = Kind::Payment;
            record.external_id = format!("LG-{}-P-{i}", ctx.run_id);
            record.deliberate_overpay = p.deliberate_overpay;
            record.amount_cents = Some(p.cents);
            let body = format!(
                r#"{{"nomor_kontrak":"{}","jumlah":{}}}"#,
                p.nomor_kontrak,
                cents_text(p.cents)
            );
            record.nomor_kontrak = Some(p.nomor_kontrak);
            (&ctx.admin, "/payment", body)
        }
        None => {
            let user = &ctx.users[rng.index(ctx.users.len())];
            let tenor = TENORS[rng.index(TENORS.len())];
            let otr = rng.range_i64(ctx.otr.min, ctx.otr.max);
            let harga_aset = (otr - rng.range_i64(0, otr / 10)).max(1);
            let admin_fee = rng.range_i64(0, ctx.admin_fee_max);
            let bunga = rng.range_i64(0, 300);
            let asset = ASSETS[rng.index(ASSETS.len())];
            record.external_id = format!("LG-{}-T-{i}", ctx.run_id);
            record.user_id = Some(user.clone());
            let body = format!(
                r#"{{"user_id":"{user}","otr":{},"admin_fee":{},"harga_aset":{},"bunga_persen":{},"tenor":{tenor},"nama_aset":"{asset}"}}"#,
                cents_text(otr),
                cents_text(admin_fee),
                cents_text(harga_aset),
                cents_text(bunga),
            );
            (&ctx.merchant, "/transaction", body)
        }
    };
    if ctx.args.rate.is_none() {
        record.sent_wall = Utc::now();
    }
    record.send_late_ms = ms(due.elapsed());
    let outcome = ctx
        .api
        .post(
            key,
            path,
            &record.external_id,
            body.as_bytes(),
            &ctx.policy,
            &ctx.counters,
        )
        .await;
    match outcome {
        PostOutcome::Accepted {
            api_call_id,
            via_conflict,
            ..
        } => {
            record.accept_ms = Some(ms(due.elapsed()));
            record.via_conflict = via_conflict;
            if record.kind == Kind::Transaction && !ctx.args.no_poll {
                let _ = ctx.learn_tx.send(api_call_id.clone());
            }
            record.api_call_id = Some(api_call_id);
            ctx.accepted.fetch_add(1, Ordering::Relaxed);
        }
        PostOutcome::Failed { status, detail } => {
            record.failure = Some((status, detail));
            ctx.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    lock(&ctx.records).push(record);
    ctx.done.fetch_add(1, Ordering::Relaxed);
}

/// A payment on a contract this run created; waits (up to 5 s) for the first contracts to be
/// known. `None` (send a transaction instead) when none is known in time.
async fn next_payment(ctx: &Ctx, rng: &mut Rng) -> Option<PaymentPlan> {
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let fees_possible = ctx.args.cob_date.is_some();
        if let Some(p) = lock(&ctx.pool).plan_payment(rng, ctx.args.overpay_share, fees_possible) {
            return Some(p);
        }
        if ctx.no_contracts.load(Ordering::Relaxed) || Instant::now() >= give_up {
            ctx.no_contracts.store(true, Ordering::Relaxed);
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payments_planned_after_a_refund_stay_within_what_it_left_outstanding() {
        let mut pool = ContractPool::default();
        pool.learn("K1", 40_000, 120_000);
        pool.note_refund("K1", 90_000);
        let mut rng = Rng::new(1);
        let mut paid = 0;
        while let Some(p) = pool.plan_payment(&mut rng, 0.0, false) {
            paid += p.cents;
        }
        assert_eq!(paid, 30_000);
        // A refund of what is left removes the contract from those to pay on.
        pool.learn("K2", 40_000, 120_000);
        pool.note_refund("K2", 120_000);
        pool.note_refund("K-unknown", 1);
        assert_eq!(pool.payable(), 0);
    }

    #[test]
    fn a_deliberate_overpayment_exceeds_the_contract_and_its_late_fees_too() {
        for (fees_possible, expected) in [(false, 120_001), (true, 240_001)] {
            let mut pool = ContractPool::default();
            pool.learn("K1", 40_000, 120_000);
            let mut rng = Rng::new(3);
            let p = pool.plan_payment(&mut rng, 1.0, fees_possible);
            assert!(p.as_ref().is_some_and(|p| p.deliberate_overpay));
            // Late fees total at most the contract (each installment's at most its price).
            assert_eq!(p.map(|p| p.cents), Some(expected));
        }
    }
}
