//! The report: what the API said of each call against what the run knows it must be, then a
//! human summary and one JSON line on stdout (scripts/bench.sh records that line), and the
//! optional CSV of every request.

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

/// What the API said about each call, against what this run knows it must be.
pub(super) fn outcome_violations(
    records: &[CallRecord],
    finals: &HashMap<String, FinalSeen>,
    status_404: &HashSet<String>,
) -> Vec<String> {
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
        match (r.kind, f.state.as_str()) {
            (Kind::Transaction, "APPROVED") if f.resource_id.is_some() => {}
            (Kind::Transaction, "REJECTED") if reason == "INSUFFICIENT_LIMIT" => {}
            (Kind::Payment, "APPROVED") if !r.deliberate_overpay && f.resource_id.is_some() => {}
            (Kind::Payment, "REJECTED") if r.deliberate_overpay && reason == "OVERPAYMENT" => {}
            (kind, state) => v.push(format!(
                "{} {id} ({}) ended {state} {reason}, unexpected{}",
                kind.as_str(),
                r.external_id,
                if r.deliberate_overpay {
                    " for a deliberate overpayment"
                } else if kind == Kind::Payment {
                    " for a payment within what is outstanding"
                } else {
                    ""
                }
            )),
        }
    }
    v
}

pub(super) fn report(
    ctx: &Ctx,
    records: &[CallRecord],
    finals: &HashMap<String, FinalSeen>,
    violations: &[String],
    verified: bool,
    window: &LoadWindow,
) -> Result<ExitCode> {
    let (load_secs, load_start_wall, load_cpu) = (window.secs, window.start_wall, &window.cpu);
    let accepted: Vec<&CallRecord> = records.iter().filter(|r| r.api_call_id.is_some()).collect();
    let failed: Vec<&CallRecord> = records.iter().filter(|r| r.failure.is_some()).collect();
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
    let payments = records.len() - transactions;
    let overpays = records.iter().filter(|r| r.deliberate_overpay).count();

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
        failed.len()
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
            "invariants      {} violation(s) (SPEC §5 per user and tenor, one contract/bill per external id, outcomes vs rows, every 202 final)",
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
            "failed": failed.len(),
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
    });
    println!("{summary}");
    let ok = violations.is_empty()
        && unexpected_5xx == 0
        && failed.is_empty()
        && (verified || ctx.args.no_verify);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
