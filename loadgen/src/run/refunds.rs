//! Refunds in the mix (`--refund-share`, SPEC §9): once a contract of the run is known to be
//! approved, a share of them get one or two refunds, partial or of all that is refundable.
//! They are sent at once, while the load's payments may be picking the same contract: some
//! refunds race its payments on purpose.

use super::{CallRecord, Ctx, Kind, lock};
use crate::api::PostOutcome;
use crate::util::{Rng, cents_text, ms};
use chrono::Utc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

/// A contract to refund: its number and its `jumlah_cicilan` T in cents.
#[derive(Debug, Clone)]
pub(super) struct RefundJob {
    pub(super) nomor_kontrak: String,
    pub(super) jumlah_cicilan: i64,
}

/// Whether the contract gets refunds: `share` of the contracts, the same ones for a seed.
pub(super) fn chosen(seed: u64, nomor_kontrak: &str, share: f64) -> bool {
    share > 0.0 && contract_rng(seed, nomor_kontrak).unit() < share
}

fn contract_rng(seed: u64, nomor_kontrak: &str) -> Rng {
    let h = nomor_kontrak
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |a, b| {
            (a ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    Rng::new(seed ^ h)
}

/// One refund's `jumlah` in cents, within `(0, refundable]`: all of it half the time, else a
/// part. `None` when nothing is refundable.
pub(super) fn draw(rng: &mut Rng, refundable: i64) -> Option<i64> {
    if refundable < 1 {
        return None;
    }
    if refundable == 1 || rng.unit() < 0.5 {
        return Some(refundable);
    }
    Some(rng.range_i64(1, refundable - 1))
}

/// The refunds of a contract of total `jumlah_cicilan`, in the order they are sent: one, and
/// after a partial one, half the time a second from what is left. Each is at most T minus the
/// ones before it, so together they never exceed T.
pub(super) fn plan(rng: &mut Rng, jumlah_cicilan: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let Some(first) = draw(rng, jumlah_cicilan) else {
        return out;
    };
    out.push(first);
    if first < jumlah_cicilan
        && rng.unit() < 0.5
        && let Some(second) = draw(rng, jumlah_cicilan - first)
    {
        out.push(second);
    }
    out
}

/// Sends the refunds of each contract it is given, `concurrency` contracts at a time, until
/// aborted. `ctx.refunds_in_flight` counts the contracts queued or being sent.
pub(super) async fn refunder(
    ctx: Arc<Ctx>,
    mut rx: mpsc::UnboundedReceiver<RefundJob>,
    concurrency: usize,
) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    while let Some(job) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            send_refunds(&ctx, job).await;
            ctx.refunds_in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
}

async fn send_refunds(ctx: &Ctx, job: RefundJob) {
    let mut rng = contract_rng(ctx.seed ^ 0x5EED_2EF0, &job.nomor_kontrak);
    for cents in plan(&mut rng, job.jumlah_cicilan) {
        lock(&ctx.pool).note_refund(&job.nomor_kontrak, cents);
        let n = ctx.refund_seq.fetch_add(1, Ordering::Relaxed);
        let mut record = CallRecord::new(Kind::Refund, format!("LG-{}-R-{n}", ctx.run_id));
        record.nomor_kontrak = Some(job.nomor_kontrak.clone());
        record.amount_cents = Some(cents);
        record.contract_total_cents = Some(job.jumlah_cicilan);
        let body = format!(
            r#"{{"nomor_kontrak":"{}","jumlah":{},"alasan":"barang dikembalikan"}}"#,
            job.nomor_kontrak,
            cents_text(cents)
        );
        let started = Instant::now();
        record.sent_wall = Utc::now();
        let outcome = ctx
            .api
            .post(
                &ctx.merchant,
                "/refund",
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
                record.accept_ms = Some(ms(started.elapsed()));
                record.via_conflict = via_conflict;
                record.api_call_id = Some(api_call_id);
                ctx.accepted.fetch_add(1, Ordering::Relaxed);
            }
            PostOutcome::Failed { status, detail } => {
                record.failure = Some((status, detail));
                ctx.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        lock(&ctx.records).push(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drawn_refund_is_never_zero_nor_above_what_is_refundable() {
        let mut rng = Rng::new(42);
        let (mut full, mut partial) = (0, 0);
        for refundable in [1, 2, 3, 100, 118_250, 999_999_999] {
            for _ in 0..2000 {
                let Some(c) = draw(&mut rng, refundable) else {
                    panic!("{refundable} is refundable")
                };
                assert!((1..=refundable).contains(&c), "{c} of {refundable}");
                // Whole cents, so the body's jumlah has 2 decimals.
                assert_eq!(cents_text(c).split('.').nth(1).map(str::len), Some(2));
                if c == refundable {
                    full += 1;
                } else {
                    partial += 1;
                }
            }
        }
        assert_eq!(draw(&mut rng, 0), None);
        assert_eq!(draw(&mut rng, -5), None);
        // About half each (refundable 1 can only be whole).
        assert!(
            full > 5000 && partial > 4000,
            "{full} full, {partial} partial"
        );
    }

    #[test]
    fn a_contracts_refunds_together_never_exceed_its_total() {
        let mut rng = Rng::new(7);
        let mut seconds = 0;
        for total in [1, 2, 50, 118_250, 10_000_000] {
            for _ in 0..2000 {
                let p = plan(&mut rng, total);
                assert!(!p.is_empty() && p.len() <= 2);
                assert!(p.iter().all(|c| *c >= 1));
                assert!(p.iter().sum::<i64>() <= total, "{p:?} of {total}");
                if p.len() == 2 {
                    seconds += 1;
                    assert!(p[0] < total);
                }
            }
        }
        assert!(seconds > 1000);
    }

    #[test]
    fn the_share_chooses_about_that_many_contracts_the_same_for_a_seed() {
        let n = (0..10_000)
            .filter(|i| chosen(3, &format!("KTR-{i}"), 0.3))
            .count();
        assert!((2700..3300).contains(&n), "{n}");
        assert_eq!(chosen(3, "KTR-1", 0.3), chosen(3, "KTR-1", 0.3));
        assert!(!(0..1000).any(|i| chosen(3, &format!("KTR-{i}"), 0.0)));
        assert!((0..1000).all(|i| chosen(3, &format!("KTR-{i}"), 1.0)));
    }
}
