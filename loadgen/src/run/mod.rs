//! `loadgen run`: users, then a burst of signed transactions and payments, then every call's
//! final status, then the invariants checked against MySQL.
//!
//! `args` reads the command line, `load` drives the requests, `poll` follows the calls to
//! their final status, `report` judges and prints; `progress` shows it on a terminal.

mod args;
mod load;
mod poll;
mod progress;
mod report;

pub(crate) use args::RunArgs;

use crate::api::{Api, HttpCounters, Key, RetryPolicy};
use crate::util::Rng;
use crate::{cpu, verify};
use anyhow::{Context, Result, bail};
use args::OtrRange;
use chrono::{DateTime, Utc};
use load::ContractPool;
use poll::Pacer;
use progress::Progress;
use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Transaction,
    Payment,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Transaction => "TRANSACTION",
            Kind::Payment => "PAYMENT",
        }
    }
}

/// One request of the run and what became of it at the ingress.
#[derive(Debug, Clone)]
pub(crate) struct CallRecord {
    pub(crate) kind: Kind,
    pub(crate) external_id: String,
    pub(crate) user_id: Option<String>,
    pub(crate) nomor_kontrak: Option<String>,
    pub(crate) deliberate_overpay: bool,
    /// When it was (scheduled to be) sent: the start of both latencies.
    pub(crate) sent_wall: DateTime<Utc>,
    pub(crate) accept_ms: Option<f64>,
    /// How late after its due time the request left the load generator (its own scheduling).
    pub(crate) send_late_ms: f64,
    pub(crate) api_call_id: Option<String>,
    pub(crate) via_conflict: bool,
    pub(crate) failure: Option<(u16, String)>,
}

/// A final status as `GET /status` showed it.
#[derive(Debug, Clone)]
pub(crate) struct FinalSeen {
    pub(crate) state: String,
    pub(crate) reason: Option<String>,
    pub(crate) completed_at: Option<DateTime<Utc>>,
    pub(crate) seen_at: DateTime<Utc>,
    /// `nomor_kontrak` of an approved transaction, `kode_bayar` of an approved payment.
    pub(crate) resource_id: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What every task of the run shares: the clients, the keys, the arguments, and what has
/// happened so far.
struct Ctx {
    api: Api,
    poll_api: Api,
    merchant: Key,
    admin: Key,
    users: Vec<String>,
    args: RunArgs,
    run_id: String,
    seed: u64,
    otr: OtrRange,
    admin_fee_max: i64,
    policy: RetryPolicy,
    counters: HttpCounters,
    pool: Mutex<ContractPool>,
    /// Payments sent as transactions because no contract was known to pay on.
    substituted: AtomicU64,
    /// Set once a payment waited in vain: later ones do not wait while none is known.
    no_contracts: AtomicBool,
    records: Mutex<Vec<CallRecord>>,
    finals: Mutex<HashMap<String, FinalSeen>>,
    /// Calls whose GET /status answered 404 at least once.
    status_404: Mutex<HashSet<String>>,
    done: AtomicU64,
    accepted: AtomicU64,
    failed: AtomicU64,
    load_done: AtomicBool,
    pacer: Pacer,
    learn_tx: mpsc::UnboundedSender<String>,
}

pub(crate) async fn run(args: RunArgs) -> Result<ExitCode> {
    let amounts = args.check()?;
    let merchant = Key::load(&args.merchant_key_file, "merchant")?;
    let admin = Key::load(&args.admin_key_file, "admin")?;
    let api = Api::new(
        &args.engine.base_url,
        args.connections(),
        Duration::from_millis(args.http_timeout_ms.max(1)),
    )?;
    let seed = args.seed.unwrap_or_else(|| Rng::from_entropy().next_u64());
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let policy = RetryPolicy {
        max_attempts: args.max_attempts,
        max_retry_after_secs: 30,
    };
    eprintln!(
        "loadgen run {run_id}: {} users, {} requests ({:.0}% payments), {}, against {} (seed {seed})",
        args.users,
        args.requests,
        args.payment_share * 100.0,
        match args.rate {
            Some(r) => format!("open loop at {r} req/s"),
            None => format!("closed loop at concurrency {}", args.concurrency),
        },
        api.base()
    );
    readiness(&api).await?;

    let counters = HttpCounters::default();
    // Users and status polls are not the load: they use a patient client whatever
    // --http-timeout-ms says (a retried creation answers 409 without the user id).
    let patient_api = Api::new(
        &args.engine.base_url,
        args.poll_concurrency + 8,
        Duration::from_secs(30),
    )?;
    let users = load::create_users(
        &patient_api,
        &admin,
        &run_id,
        args.users,
        amounts.limit,
        &policy,
        &counters,
    )
    .await?;

    let (learn_tx, learn_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        api,
        poll_api: patient_api,
        merchant,
        admin,
        users,
        pacer: Pacer::new(args.poll_rate),
        args,
        run_id,
        seed,
        otr: amounts.otr,
        admin_fee_max: amounts.admin_fee_max,
        policy,
        counters,
        pool: Mutex::new(ContractPool::default()),
        substituted: AtomicU64::new(0),
        no_contracts: AtomicBool::new(false),
        records: Mutex::new(Vec::new()),
        finals: Mutex::new(HashMap::new()),
        status_404: Mutex::new(HashSet::new()),
        done: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        load_done: AtomicBool::new(false),
        learn_tx,
    });

    // Load phase.
    let progress = Progress::sending(&ctx);
    let learner = tokio::spawn(poll::learn_contracts(ctx.clone(), learn_rx));
    ctx.api.warm(ctx.args.warm_connections()).await?;
    let cpu_before = read_cpu().await;
    let load_start = Instant::now();
    let load_start_wall = Utc::now();
    load::drive_load(&ctx, load_start, load_start_wall).await?;
    let load_secs = load_start.elapsed().as_secs_f64();
    let cpu_after = read_cpu().await;
    let load_cpu = cpu_before
        .zip(cpu_after)
        .map(|(before, after)| cpu::usage(&before, &after, load_secs));
    ctx.load_done.store(true, Ordering::Relaxed);
    progress.finish().await;
    let _ = learner.await;

    // Every accepted call, to its final status.
    poll::wait_for_finals(&ctx).await;

    let records = lock(&ctx.records).clone();
    let finals = lock(&ctx.finals).clone();
    let status_404 = lock(&ctx.status_404).clone();
    let mut violations = report::outcome_violations(&records, &finals, &status_404);
    let mut verified = false;
    if !ctx.args.no_verify {
        eprintln!("verifying against MySQL ...");
        match verify::verify(&ctx.args.database_url, &ctx.users, &records, &finals).await {
            Ok(v) => {
                violations.extend(v);
                verified = true;
            }
            Err(e) => {
                violations.push(format!("verification could not run: {e:#}"));
            }
        }
    }
    if let Some(path) = &ctx.args.records_csv {
        report::write_records_csv(path, &records, load_start_wall)?;
    }
    report::report(
        &ctx,
        &records,
        &finals,
        &violations,
        verified,
        &report::LoadWindow {
            secs: load_secs,
            start_wall: load_start_wall,
            cpu: load_cpu,
        },
    )
}

/// A reading of every process's CPU time (a few hundred small files, read off the runtime).
async fn read_cpu() -> Option<cpu::Snapshot> {
    tokio::task::spawn_blocking(cpu::Snapshot::take)
        .await
        .ok()
        .flatten()
}

async fn readiness(api: &Api) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = format!("{}/readyz", api.base());
    let r = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}: is the engine running?"))?;
    if !r.status().is_success() {
        bail!("GET {url}: {} (the engine is not ready)", r.status());
    }
    Ok(())
}
