//! The report: what the API said of each call against what the run knows it must be, then a
//! human summary and one JSON line on stdout (scripts/bench.sh records that line), and the
//! optional CSV of every request.

use super::cob::CobRun;
use super::limit_changes::{LimitChangeCounts, LimitPatch, PatchOutcome};
use super::webhooks::{ContractEventKind, Judged, Tally, judge};
use super::{CallRecord, Ctx, FinalSeen, Kind, lock};
use crate::cpu;
use crate::util::{Percentiles, round3};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// When the requests were being sent, and what the machine did meanwhile.
pub(super) struct LoadWindow {
    pub(super) secs: f64,
    pub(super) start_wall: DateTime<Utc>,
    pub(super) cpu: Option<cpu::Usage>,
}

/// Every request as a CSV row, in the order they were due.
pub(super) fn write_records_csv(
    path: &std::path::Path,
    records: &[CallRecord],
    start: DateTime<Utc>,
) -> Result<()> {
    use std::fmt::Write as _;
    let mut rows: Vec<&CallRecord> = records.iter().collect();
    rows.sort_by_key(|r| r.sent_wall);
    // sent_unix_ms lines a request up with other records of the machine's time
    // (scripts/trace_stalls.py: what the disk was doing while a cluster of requests waited).
    let mut out = String::from("due_ms,kind,send_late_ms,accept_ms,failed_status,sent_unix_ms\n");
    for r in rows {
        let due = (r.sent_wall - start).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        let accept = r.accept_ms.map(|v| format!("{v:.3}")).unwrap_or_default();
        let failed = r
            .failure
            .as_ref()
            .map(|f| f.0.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{due:.3},{},{:.3},{accept},{failed},{:.3}",
            r.kind.as_str(),
            r.send_late_ms,
            r.sent_wall.timestamp_micros() as f64 / 1000.0
        );
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// What the run's approved refunds add up to, per contract, in cents.
fn approved_refunds(
    records: &[CallRecord],
    finals: &HashMap<String, FinalSeen>,
) -> HashMap<String, i64> {
    let mut sums: HashMap<String, i64> = HashMap::new();
    for r in records.iter().filter(|r| r.kind == Kind::Refund) {
        let approved = r
            .api_call_id
            .as_ref()
            .and_then(|id| finals.get(id))
            .is_some_and(|f| f.state == "APPROVED");
        if let (true, Some(nk), Some(cents)) = (approved, &r.nomor_kontrak, r.amount_cents) {
            *sums.entry(nk.clone()).or_default() += cents;
        }
    }
    sums
}

/// Rejections that racing made legitimate: a refund whose `jumlah` no longer fit once the
/// contract's other refunds were approved (`REFUND_EXCEEDS`), a payment on a contract that
/// refunds had cancelled part of (`OVERPAYMENT`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(super) struct Races {
    pub(super) refund_exceeds: u64,
    pub(super) overpayments_after_refund: u64,
}

/// What the API said about each call, against what this run knows it must be; and the
/// rejections that racing explains.
pub(super) fn outcome_violations(
    records: &[CallRecord],
    finals: &HashMap<String, FinalSeen>,
    status_404: &HashSet<String>,
) -> (Vec<String>, Races) {
    let refunded = approved_refunds(records, finals);
    let mut races = Races::default();
    let mut v = Vec::new();
    for r in records {
        let Some(id) = &r.api_call_id else { continue };
        let Some(f) = finals.get(id) else {
            let why = match (r.via_conflict, status_404.contains(id)) {
                (true, true) => {
                    ": a retry's 409 CONFLICT_EXTERNAL_ID named it as the original call, yet \
                     GET /status answers 404 (an orphaned claim: the first attempt claimed the \
                     id and never published)"
                }
                (false, true) => ", and GET /status answers 404",
                (true, false) => " (named by a retry's 409 CONFLICT_EXTERNAL_ID)",
                (false, false) => "",
            };
            v.push(format!(
                "{} {id} ({}) accepted but never became final{why}",
                r.kind.as_str(),
                r.external_id
            ));
            continue;
        };
        let reason = f.reason.as_deref().unwrap_or("");
        let contract_refunded = r
            .nomor_kontrak
            .as_ref()
            .and_then(|nk| refunded.get(nk))
            .copied()
            .unwrap_or(0);
        match (r.kind, f.state.as_str()) {
            (Kind::Transaction, "APPROVED") if f.resource_id.is_some() => {}
            (Kind::Transaction, "REJECTED") if reason == "INSUFFICIENT_LIMIT" => {}
            // After a close of business made one of the user's installments overdue; the
            // verifier checks that it did.
            (Kind::Transaction, "REJECTED") if reason == "USER_OVERDUE" => {}
            (Kind::Payment, "APPROVED") if !r.deliberate_overpay && f.resource_id.is_some() => {}
            (Kind::Payment, "REJECTED") if r.deliberate_overpay && reason == "OVERPAYMENT" => {}
            (Kind::Payment, "REJECTED") if reason == "OVERPAYMENT" && contract_refunded > 0 => {
                races.overpayments_after_refund += 1;
            }
            (Kind::Refund, "APPROVED") if f.resource_id.is_some() => {}
            // Legitimate only when this refund and the contract's approved ones exceed T.
            (Kind::Refund, "REJECTED")
                if reason == "REFUND_EXCEEDS"
                    && r.amount_cents.unwrap_or(0) + contract_refunded
                        > r.contract_total_cents.unwrap_or(i64::MAX) =>
            {
                races.refund_exceeds += 1;
            }
            (kind, state) => v.push(format!(
                "{} {id} ({}) ended {state} {reason}, unexpected{}",
                kind.as_str(),
                r.external_id,
                if r.deliberate_overpay {
                    " for a deliberate overpayment".to_owned()
                } else if kind == Kind::Payment {
                    " for a payment within what is outstanding".to_owned()
                } else if kind == Kind::Refund {
                    format!(
                        " for a refund of {} cents on a contract of {:?} whose other approved refunds are {contract_refunded}",
                        r.amount_cents.unwrap_or(0),
                        r.contract_total_cents
                    )
                } else {
                    String::new()
                }
            )),
        }
    }
    (v, races)
}

/// The calls of one type, by what became of them.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub(super) struct TypeOutcomes {
    pub(super) sent: u64,
    pub(super) accepted: u64,
    /// Refused at the ingress, or given up on.
    pub(super) failed: u64,
    #[serde(rename = "APPROVED")]
    pub(super) approved: u64,
    /// By reason.
    #[serde(rename = "REJECTED")]
    pub(super) rejected: BTreeMap<String, u64>,
    pub(super) never_final: u64,
}

/// Every call of the run by type (`TRANSACTION`, `PAYMENT`, `REFUND`) and outcome.
pub(super) fn outcomes_by_type(
    records: &[CallRecord],
    finals: &HashMap<String, FinalSeen>,
) -> BTreeMap<&'static str, TypeOutcomes> {
    let mut out: BTreeMap<&'static str, TypeOutcomes> = BTreeMap::new();
    for r in records {
        let t = out.entry(r.kind.as_str()).or_default();
        t.sent += 1;
        if r.failure.is_some() {
            t.failed += 1;
        }
        let Some(id) = &r.api_call_id else { continue };
        t.accepted += 1;
        match finals.get(id) {
            None => t.never_final += 1,
            Some(f) if f.state == "APPROVED" => t.approved += 1,
            Some(f) => {
                *t.rejected
                    .entry(f.reason.clone().unwrap_or_else(|| "NONE".into()))
                    .or_default() += 1;
            }
        }
    }
    out
}

/// What the webhook receiver got, judged.
#[derive(Debug)]
pub(super) struct WebhookReport {
    pub(super) deliveries: u64,
    pub(super) duplicates: u64,
    pub(super) calls_told: usize,
    /// Accepted calls of the merchant with no `call.completed` (with `--no-poll`, the calls
    /// whose outcome the run never learned).
    pub(super) never_told: usize,
    pub(super) repeated_calls: u64,
    pub(super) paid_off: usize,
    pub(super) cancelled: usize,
    pub(super) judged: Judged,
    pub(super) bad_signatures: u64,
    pub(super) bad_samples: Vec<String>,
}

impl WebhookReport {
    pub(super) fn of(
        tally: &Tally,
        registered_at: DateTime<Utc>,
        records: &[CallRecord],
        finals: &HashMap<String, FinalSeen>,
        (bad_signatures, bad_samples): (u64, Vec<String>),
    ) -> WebhookReport {
        let calls: HashMap<String, Kind> = records
            .iter()
            .filter_map(|r| r.api_call_id.clone().map(|id| (id, r.kind)))
            .collect();
        let contracts: HashSet<String> = records
            .iter()
            .filter(|r| r.kind == Kind::Transaction)
            .filter_map(|r| r.api_call_id.as_ref().and_then(|id| finals.get(id)))
            .filter(|f| f.state == "APPROVED")
            .filter_map(|f| f.resource_id.clone())
            .collect();
        let count = |k: ContractEventKind| tally.contracts.iter().filter(|c| c.kind == k).count();
        WebhookReport {
            deliveries: tally.deliveries,
            duplicates: tally.duplicates,
            calls_told: tally.calls.len(),
            never_told: calls
                .iter()
                .filter(|(id, kind)| kind.by_merchant() && !tally.calls.contains_key(*id))
                .count(),
            repeated_calls: tally.repeated_calls,
            paid_off: count(ContractEventKind::PaidOff),
            cancelled: count(ContractEventKind::Cancelled),
            judged: judge(tally, &calls, finals, &contracts, registered_at),
            bad_signatures,
            bad_samples,
        }
    }

    pub(super) fn violations(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .judged
            .missing
            .iter()
            .chain(&self.judged.unexpected)
            .map(|m| format!("webhook: {m}"))
            .collect();
        if self.bad_signatures > 0 {
            v.push(format!(
                "webhook: {} deliveries failed the signature check (answered 401), e.g. {:?}",
                self.bad_signatures, self.bad_samples
            ));
        }
        v
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "deliveries": self.deliveries,
            "duplicates": self.duplicates,
            "calls_told": self.calls_told,
            "calls_never_told": self.never_told,
            "repeated_calls": self.repeated_calls,
            "contract_paid_off": self.paid_off,
            "contract_cancelled": self.cancelled,
            "missing_calls": self.judged.missing.len(),
            "unexpected_events": self.judged.unexpected.len(),
            "bad_signatures": self.bad_signatures,
            "earlier_events": self.judged.earlier,
            "lag_p50_ms": self.judged.lag.p50,
            "lag_p99_ms": self.judged.lag.p99,
            "lag_ms": self.judged.lag,
        })
    }
}

/// What the run found beyond each call's own outcome.
pub(super) struct Findings<'a> {
    pub(super) violations: &'a [String],
    pub(super) verified: bool,
    pub(super) races: Races,
    pub(super) webhooks: Option<&'a WebhookReport>,
    /// The limit changes sent (`--limit-changes`), with their answers.
    pub(super) limit_patches: &'a [LimitPatch],
    /// The close of business run during the load (`--cob-date`).
    pub(super) cob: Option<&'a CobRun>,
}

pub(super) fn report(
    ctx: &Ctx,
    all_records: &[CallRecord],
    finals: &HashMap<String, FinalSeen>,
    findings: &Findings<'_>,
    window: &LoadWindow,
) -> Result<ExitCode> {
    let (violations, verified) = (findings.violations, findings.verified);
    let (load_secs, load_start_wall, load_cpu) = (window.secs, window.start_wall, &window.cpu);
    // The load's figures are of its transactions and payments; refunds are counted apart.
    let load_records: Vec<CallRecord> = all_records
        .iter()
        .filter(|r| r.kind != Kind::Refund)
        .cloned()
        .collect();
    let records = load_records.as_slice();
    let by_type = outcomes_by_type(all_records, finals);
    let refunds = by_type
        .get(Kind::Refund.as_str())
        .cloned()
        .unwrap_or_default();
    let accepted: Vec<&CallRecord> = records.iter().filter(|r| r.api_call_id.is_some()).collect();
    let failed: Vec<&CallRecord> = all_records.iter().filter(|r| r.failure.is_some()).collect();
    let load_failed = records.iter().filter(|r| r.failure.is_some()).count();
    let mut accept_ms: Vec<f64> = accepted.iter().filter_map(|r| r.accept_ms).collect();
    let mut e2e_ms = Vec::new();
    let mut rejections: BTreeMap<String, u64> = BTreeMap::new();
    let (mut approved, mut rejected, mut approved_contracts, mut approved_payments, mut pending) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut last_contract_end: Option<DateTime<Utc>> = None;
    let mut last_end: Option<DateTime<Utc>> = None;
    for r in &accepted {
        let Some(f) = r.api_call_id.as_ref().and_then(|id| finals.get(id)) else {
            pending += 1;
            continue;
        };
        let end = f.completed_at.unwrap_or(f.seen_at);
        let lat = (end - r.sent_wall).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        e2e_ms.push(lat.max(0.0));
        last_end = Some(last_end.map_or(end, |t| t.max(end)));
        match f.state.as_str() {
            "APPROVED" => {
                approved += 1;
                match r.kind {
                    Kind::Transaction => {
                        approved_contracts += 1;
                        last_contract_end = Some(last_contract_end.map_or(end, |t| t.max(end)));
                    }
                    Kind::Payment => approved_payments += 1,
                    Kind::Refund => {}
                }
            }
            _ => {
                rejected += 1;
                *rejections
                    .entry(f.reason.clone().unwrap_or_else(|| "NONE".into()))
                    .or_default() += 1;
            }
        }
    }
    let accept = Percentiles::of(&mut accept_ms);
    let e2e = Percentiles::of(&mut e2e_ms);
    let accepted_per_sec = accepted.len() as f64 / load_secs.max(1e-9);
    let contracts_secs = last_contract_end
        .map(|t| (t - load_start_wall).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .unwrap_or(0.0);
    let approved_contracts_per_sec = if contracts_secs > 0.0 {
        approved_contracts as f64 / contracts_secs
    } else {
        0.0
    };
    let decided_secs = last_end
        .map(|t| (t - load_start_wall).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .unwrap_or(0.0);
    let decided_per_sec = if decided_secs > 0.0 {
        (approved + rejected) as f64 / decided_secs
    } else {
        0.0
    };
    let by_status = ctx.counters.by_status();
    let unexpected_5xx = ctx.counters.unexpected_5xx.load(Ordering::Relaxed);
    let transactions = records
        .iter()
        .filter(|r| r.kind == Kind::Transaction)
        .count();
    let payments = records.iter().filter(|r| r.kind == Kind::Payment).count();
    let overpays = records.iter().filter(|r| r.deliberate_overpay).count();
    let limit_changes = LimitChangeCounts::of(findings.limit_patches);

    println!("== loadgen run {} against {}", ctx.run_id, ctx.api.base());
    match ctx.args.rate {
        Some(rate) => println!("mode            open loop, {rate} req/s scheduled"),
        None => println!(
            "mode            closed loop, concurrency {}",
            ctx.args.concurrency
        ),
    }
    println!(
        "requests        {} ({transactions} transactions, {payments} payments of which {overpays} deliberate overpayments; {} payments sent as transactions for want of a contract) for {} users",
        records.len(),
        ctx.substituted.load(Ordering::Relaxed),
        ctx.users.len()
    );
    println!(
        "accepted        {} in {load_secs:.2}s = {accepted_per_sec:.1}/s ({} via 409 after a retry); failed {}",
        accepted.len(),
        ctx.counters.resolved_by_conflict.load(Ordering::Relaxed),
        load_failed
    );
    println!(
        "final           approved {approved} ({approved_contracts} contracts, {approved_payments} payments), rejected {rejected}, never final {pending}"
    );
    println!(
        "approved/s e2e  {approved_contracts_per_sec:.1} contracts/s (load start to the last contract's completed_at, {contracts_secs:.2}s)"
    );
    println!(
        "decided/s e2e   {decided_per_sec:.1} calls/s, approved or rejected (load start to the last completed_at, {decided_secs:.2}s)"
    );
    println!(
        "accept latency  p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms{}",
        accept.p50,
        accept.p95,
        accept.p99,
        accept.max,
        if ctx.args.rate.is_some() {
            " (from the scheduled send time)"
        } else {
            ""
        }
    );
    println!(
        "e2e latency     p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms (send to completed_at)",
        e2e.p50, e2e.p95, e2e.p99, e2e.max
    );
    match load_cpu {
        Some(u) => println!(
            "CPU while sending busy {:.1} %, stolen by the host {:.1} % of {} cores; by program {:?}",
            u.busy_percent,
            u.steal_percent,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            u.share_percent
        ),
        None => println!("CPU while sending: no reading (/proc is not readable here)"),
    }
    println!("rejections      {rejections:?}");
    if ctx.args.refund_share > 0.0 || refunds.sent > 0 {
        println!(
            "refunds         {} sent on {:.0}% of the contracts: accepted {}, approved {}, rejected {:?}, never final {}, failed {}",
            refunds.sent,
            ctx.args.refund_share * 100.0,
            refunds.accepted,
            refunds.approved,
            refunds.rejected,
            refunds.never_final,
            refunds.failed
        );
        println!(
            "races           {} refunds REFUND_EXCEEDS after the contract's other refunds, {} payments OVERPAYMENT after a refund (legitimate, not violations)",
            findings.races.refund_exceeds, findings.races.overpayments_after_refund
        );
    }
    if ctx.args.limit_changes > 0 {
        println!(
            "limit changes   {} sent: applied {}, LIMIT_BELOW_USED {}, failed {}",
            limit_changes.sent,
            limit_changes.applied,
            limit_changes.below_used,
            limit_changes.failed
        );
        let failed_patches = findings
            .limit_patches
            .iter()
            .filter_map(|p| match &p.outcome {
                PatchOutcome::Failed { status, detail } => Some(format!(
                    "  failed PATCH /users/{}/limits: {status} {detail}",
                    p.user_id
                )),
                _ => None,
            });
        for line in failed_patches.take(5) {
            println!("{line}");
        }
    }
    if let Some(cob) = findings.cob {
        println!("COB             {}", cob.line());
    }
    for (kind, t) in &by_type {
        println!(
            "  {kind:<12}  approved {}, rejected {:?}, never final {}",
            t.approved, t.rejected, t.never_final
        );
    }
    if let Some(w) = findings.webhooks {
        println!(
            "webhooks        {} deliveries ({} duplicates), {} calls told, {} never ({} more than once under another id), contract events paid_off {} cancelled {}{}",
            w.deliveries,
            w.duplicates,
            w.calls_told,
            w.never_told,
            w.repeated_calls,
            w.paid_off,
            w.cancelled,
            if ctx.args.no_poll {
                "; the only source of the merchant's outcomes (--no-poll)"
            } else {
                ""
            }
        );
        println!(
            "                missing {}, unexpected {}, bad signatures {}, events of earlier runs {}; lag p50 {:.2} ms p99 {:.2} ms max {:.2} ms (receipt - completed_at)",
            w.judged.missing.len(),
            w.judged.unexpected.len(),
            w.bad_signatures,
            w.judged.earlier,
            w.judged.lag.p50,
            w.judged.lag.p99,
            w.judged.lag.max
        );
    }
    println!(
        "HTTP errors     {by_status:?} (every attempt; 429/503 are retried), transport errors {}, retries {}, unexpected 5xx {unexpected_5xx}",
        ctx.counters.transport_errors.load(Ordering::Relaxed),
        ctx.counters.retries.load(Ordering::Relaxed)
    );
    println!(
        "status polls    non-200 answers {:?}",
        ctx.counters.poll_by_status()
    );
    for s in lock(&ctx.counters.samples)
        .iter()
        .chain(lock(&ctx.counters.poll_samples).iter())
    {
        println!("  error sample: {s}");
    }
    for f in failed.iter().take(5) {
        if let Some((status, detail)) = &f.failure {
            println!(
                "  failed {} {}: {status} {detail}",
                f.kind.as_str(),
                f.external_id
            );
        }
    }
    if verified {
        println!(
            "invariants      {} violation(s) (SPEC §9's limit equation per user and tenor, one contract/bill/refund per external id, outcomes vs rows, refunds vs installments, every 202 final, limit changes chained, late fees and payments' allocations vs installments)",
            violations.len()
        );
    } else {
        println!(
            "invariants      {} violation(s); MySQL verification NOT run",
            violations.len()
        );
    }
    for v in violations.iter().take(20) {
        println!("  VIOLATION: {v}");
    }
    if violations.len() > 20 {
        println!("  ... and {} more", violations.len() - 20);
    }

    let summary = json!({
        "kind": "loadgen-run",
        "run_id": ctx.run_id,
        "base_url": ctx.api.base(),
        "mode": if ctx.args.rate.is_some() { "open" } else { "closed" },
        "concurrency": ctx.args.rate.map_or(Some(ctx.args.concurrency), |_| None),
        "rate": ctx.args.rate,
        "users": ctx.users.len(),
        "seed": ctx.seed,
        "duration_secs": round3(load_secs),
        "accepted_per_sec": round3(accepted_per_sec),
        "approved_contracts_per_sec_end_to_end": round3(approved_contracts_per_sec),
        "decided_per_sec_end_to_end": round3(decided_per_sec),
        "accept_p50_ms": accept.p50,
        "accept_p95_ms": accept.p95,
        "accept_p99_ms": accept.p99,
        "e2e_p50_ms": e2e.p50,
        "e2e_p95_ms": e2e.p95,
        "e2e_p99_ms": e2e.p99,
        "accept_latency_ms": accept,
        "e2e_latency_ms": e2e,
        "load_window_cpu": load_cpu,
        "engine_cpu_ms_per_accepted": load_cpu.as_ref().map(|u| u.engine_ms_per(accepted.len())),
        "counts": {
            "requests": records.len(),
            "transactions": transactions,
            "payments": payments,
            "deliberate_overpayments": overpays,
            "payments_sent_as_transactions": ctx.substituted.load(Ordering::Relaxed),
            "accepted": accepted.len(),
            "approved": approved,
            "approved_contracts": approved_contracts,
            "approved_payments": approved_payments,
            "rejected": rejected,
            "never_final": pending,
            "failed": load_failed,
        },
        "rejections_by_reason": rejections,
        "errors_by_status": by_status.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "status_poll_errors_by_status": ctx.counters.poll_by_status().iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "transport_errors": ctx.counters.transport_errors.load(Ordering::Relaxed),
        "retries": ctx.counters.retries.load(Ordering::Relaxed),
        "resolved_by_conflict": ctx.counters.resolved_by_conflict.load(Ordering::Relaxed),
        "unexpected_5xx": unexpected_5xx,
        "verified": verified,
        "invariant_violations": violations.len(),
        "refund_share": ctx.args.refund_share,
        "no_poll": ctx.args.no_poll,
        "refunds": {
            "sent": refunds.sent,
            "accepted": refunds.accepted,
            "approved": refunds.approved,
            "rejected": refunds.rejected.values().sum::<u64>(),
            "never_final": refunds.never_final,
            "failed": refunds.failed,
        },
        "outcomes_by_type": by_type,
        "races": findings.races,
        "webhooks": findings.webhooks.map(WebhookReport::json),
        "limit_changes": limit_changes,
        "cob": findings.cob.map(CobRun::json),
    });
    println!("{summary}");
    let ok = violations.is_empty()
        && unexpected_5xx == 0
        && failed.is_empty()
        && limit_changes.failed == 0
        && (verified || ctx.args.no_verify);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(kind: Kind, id: &str, nk: &str) -> CallRecord {
        let mut r = CallRecord::new(kind, format!("EXT-{id}"));
        r.api_call_id = Some(id.to_owned());
        r.nomor_kontrak = Some(nk.to_owned());
        r
    }

    fn refund(id: &str, nk: &str, cents: i64, total: i64) -> CallRecord {
        let mut r = call(Kind::Refund, id, nk);
        r.amount_cents = Some(cents);
        r.contract_total_cents = Some(total);
        r
    }

    fn seen(state: &str, reason: Option<&str>, resource: Option<&str>) -> FinalSeen {
        FinalSeen {
            state: state.into(),
            reason: reason.map(str::to_owned),
            completed_at: None,
            seen_at: Utc::now(),
            resource_id: resource.map(str::to_owned),
        }
    }

    fn finals(list: &[(&str, FinalSeen)]) -> HashMap<String, FinalSeen> {
        list.iter()
            .map(|(id, f)| ((*id).to_owned(), f.clone()))
            .collect()
    }

    #[test]
    fn outcomes_are_counted_by_type_and_reason() {
        let mut failed = CallRecord::new(Kind::Refund, "EXT-F".into());
        failed.failure = Some((400, "INVALID_VALUE".into()));
        let records = vec![
            call(Kind::Transaction, "T1", "K1"),
            call(Kind::Transaction, "T2", "K2"),
            call(Kind::Payment, "P1", "K1"),
            refund("R1", "K1", 100, 1000),
            refund("R2", "K1", 900, 1000),
            refund("R3", "K2", 50, 500),
            failed,
        ];
        let f = finals(&[
            ("T1", seen("APPROVED", None, Some("K1"))),
            ("T2", seen("REJECTED", Some("INSUFFICIENT_LIMIT"), None)),
            ("P1", seen("REJECTED", Some("OVERPAYMENT"), None)),
            ("R1", seen("APPROVED", None, Some("RF1"))),
            ("R2", seen("REJECTED", Some("REFUND_EXCEEDS"), None)),
        ]);
        let by = outcomes_by_type(&records, &f);
        let t = &by["TRANSACTION"];
        assert_eq!(
            (t.sent, t.accepted, t.approved, t.never_final),
            (2, 2, 1, 0)
        );
        assert_eq!(t.rejected.get("INSUFFICIENT_LIMIT"), Some(&1));
        let r = &by["REFUND"];
        assert_eq!(
            (r.sent, r.accepted, r.failed, r.approved, r.never_final),
            (4, 3, 1, 1, 1)
        );
        assert_eq!(r.rejected.get("REFUND_EXCEEDS"), Some(&1));
        assert_eq!(by["PAYMENT"].rejected.get("OVERPAYMENT"), Some(&1));
        let json = serde_json::to_value(r).unwrap_or_default();
        assert_eq!(json["APPROVED"], 1);
        assert_eq!(json["REJECTED"]["REFUND_EXCEEDS"], 1);
    }

    #[test]
    fn a_rejection_is_a_race_only_when_the_contracts_approved_refunds_explain_it() {
        let records = vec![
            call(Kind::Payment, "P1", "K1"),
            call(Kind::Payment, "P2", "K2"),
            refund("R1", "K1", 700, 1000),
            // 700 + 400 > 1000: no longer fits once R1 was approved.
            refund("R2", "K1", 400, 1000),
            // 100 + 0 approved <= 500: the engine had no reason to refuse it.
            refund("R3", "K2", 100, 500),
        ];
        let f = finals(&[
            ("P1", seen("REJECTED", Some("OVERPAYMENT"), None)),
            ("P2", seen("REJECTED", Some("OVERPAYMENT"), None)),
            ("R1", seen("APPROVED", None, Some("RF1"))),
            ("R2", seen("REJECTED", Some("REFUND_EXCEEDS"), None)),
            ("R3", seen("REJECTED", Some("REFUND_EXCEEDS"), None)),
        ]);
        let (v, races) = outcome_violations(&records, &f, &HashSet::new());
        assert_eq!(
            races,
            Races {
                refund_exceeds: 1,
                overpayments_after_refund: 1
            }
        );
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v.iter().any(|m| m.contains("P2")));
        assert!(v.iter().any(|m| m.contains("R3")));
    }

    #[test]
    fn a_transaction_may_be_refused_for_want_of_limit_or_an_overdue_installment_only() {
        let mut records = vec![
            call(Kind::Transaction, "T1", "K1"),
            call(Kind::Transaction, "T2", "K2"),
            call(Kind::Transaction, "T3", "K3"),
        ];
        for r in &mut records {
            r.nomor_kontrak = None;
        }
        let f = finals(&[
            ("T1", seen("REJECTED", Some("INSUFFICIENT_LIMIT"), None)),
            ("T2", seen("REJECTED", Some("USER_OVERDUE"), None)),
            ("T3", seen("REJECTED", Some("USER_NOT_ACTIVE"), None)),
        ]);
        let (v, _) = outcome_violations(&records, &f, &HashSet::new());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("T3") && v[0].contains("USER_NOT_ACTIVE"));
    }

    #[test]
    fn a_refund_approved_or_never_final_is_judged_like_any_call() {
        let records = vec![refund("R1", "K1", 10, 100), refund("R2", "K1", 10, 100)];
        let f = finals(&[("R1", seen("APPROVED", None, Some("RF1")))]);
        let (v, races) = outcome_violations(&records, &f, &HashSet::new());
        assert_eq!(races, Races::default());
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("R2") && v[0].contains("never became final"));
    }
}
