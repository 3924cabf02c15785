//! `loadgen run`: users, then a burst of signed transactions and payments (and refunds of
//! some contracts, changes of the users' limits, a close of business), then every call's final
//! status, then the invariants checked against MySQL.
//!
//! `args` reads the command line, `load` drives the requests, `refunds` refunds approved
//! contracts, `limit_changes` changes the users' limits meanwhile, `cob` closes business days
//! meanwhile, `poll` follows the calls to their final status, `webhooks` receives and judges
//! the engine's deliveries, `report` judges and prints; `progress` shows it on a terminal.

mod args;
mod cob;
mod limit_changes;
mod load;
mod poll;
mod progress;
mod refunds;
mod report;
pub(crate) mod webhooks;

pub(crate) use args::RunArgs;
pub(crate) use limit_changes::{LimitPatch, PatchOutcome};

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
    Refund,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Transaction => "TRANSACTION",
            Kind::Payment => "PAYMENT",
            Kind::Refund => "REFUND",
        }
    }

    /// The status object's `type`.
    pub(crate) fn parse(s: &str) -> Option<Kind> {
        match s {
            "TRANSACTION" => Some(Kind::Transaction),
            "PAYMENT" => Some(Kind::Payment),
            "REFUND" => Some(Kind::Refund),
            _ => None,
        }
    }

    /// Sent with the merchant key (so told by webhooks); payments need the admin key.
    pub(crate) fn by_merchant(self) -> bool {
        self != Kind::Payment
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
    /// A payment's or a refund's `jumlah`, in cents.
    pub(crate) amount_cents: Option<i64>,
    /// A refund's contract's `jumlah_cicilan`, in cents.
    pub(crate) contract_total_cents: Option<i64>,
    /// When it was (scheduled to be) sent: the start of both latencies.
    pub(crate) sent_wall: DateTime<Utc>,
    pub(crate) accept_ms: Option<f64>,
    /// How late after its due time the request left the load generator (its own scheduling).
    pub(crate) send_late_ms: f64,
    pub(crate) api_call_id: Option<String>,
    pub(crate) via_conflict: bool,
    pub(crate) failure: Option<(u16, String)>,
}

impl CallRecord {
    pub(crate) fn new(kind: Kind, external_id: String) -> CallRecord {
        CallRecord {
            kind,
            external_id,
            user_id: None,
            nomor_kontrak: None,
            deliberate_overpay: false,
            amount_cents: None,
            contract_total_cents: None,
            sent_wall: Utc::now(),
            accept_ms: None,
            send_late_ms: 0.0,
            api_call_id: None,
            via_conflict: false,
            failure: None,
        }
    }
}

/// A final status as `GET /status` (or, with `--no-poll`, a webhook or MySQL) showed it.
#[derive(Debug, Clone)]
pub(crate) struct FinalSeen {
    pub(crate) state: String,
    pub(crate) reason: Option<String>,
    pub(crate) completed_at: Option<DateTime<Utc>>,
    pub(crate) seen_at: DateTime<Utc>,
    /// `nomor_kontrak` of an approved transaction, `kode_bayar` of an approved payment,
    /// `kode_refund` of an approved refund.
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
    /// Every tenor's granted limit of every user when the run created it, in cents.
    limit_at_creation: i64,
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
    /// Approved contracts to refund (`--refund-share`).
    refund_tx: mpsc::UnboundedSender<refunds::RefundJob>,
    /// Contracts queued for refunds or being refunded.
    refunds_in_flight: AtomicU64,
    refund_seq: AtomicU64,
    /// The limit changes sent so far (`--limit-changes`), with their answers.
    limit_patches: Mutex<Vec<LimitPatch>>,
    /// What the webhook receiver received (`--webhooks`).
    hooks: Option<Hooks>,
    /// The engine's database, read during the run only by `--no-poll` (payments' outcomes).
    db: Option<sqlx::MySqlPool>,
}

/// The run's webhook endpoint, as registered.
struct Hooks {
    tally: Mutex<webhooks::Tally>,
    registered_at: DateTime<Utc>,
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
        "loadgen run {run_id}: {} users, {} requests ({:.0}% payments, refunds of {:.0}% of the contracts), {}, {}, against {} (seed {seed})",
        args.users,
        args.requests,
        args.payment_share * 100.0,
        args.refund_share * 100.0,
        match args.rate {
            Some(r) => format!("open loop at {r} req/s"),
            None => format!("closed loop at concurrency {}", args.concurrency),
        },
        match (args.webhooks, args.no_poll) {
            (true, true) => "outcomes from webhooks only",
            (true, false) => "outcomes polled, webhooks received",
            (false, _) => "outcomes polled",
        },
        api.base()
    );
    if args.limit_changes > 0 {
        eprintln!(
            "limit changes: {} PATCH /users/{{id}}/limits spread over the load",
            args.limit_changes
        );
    }
    if let Some(date) = args.cob_date {
        eprintln!(
            "close of business through {date} during the load, on {}: fees are charged as if that day had come and closed dates never reopen (a scratch database only)",
            args.database_url
        );
    }
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

    // The receiver listens and is registered before the first request, so every event of
    // the run is recorded for it (SPEC §11 keeps nothing for a later registration).
    let receiving = if args.webhooks {
        let (receiver, deliveries) = webhooks::Receiver::start(args.webhook_listen).await?;
        let registered_at = Utc::now();
        let secret = webhooks::register(&patient_api, &merchant, &receiver.url()).await?;
        receiver.set_secret(&secret)?;
        eprintln!("webhooks: receiving at {}", receiver.url());
        Some((receiver, deliveries, registered_at))
    } else {
        None
    };
    let db = if args.no_poll {
        Some(
            shared::db::connect(&args.database_url, 2)
                .await
                .context("connecting to MySQL (--no-poll reads payments' outcomes there)")?,
        )
    } else {
        None
    };

    let (learn_tx, learn_rx) = mpsc::unbounded_channel();
    let (refund_tx, refund_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        api,
        poll_api: patient_api,
        merchant,
        admin,
        users,
        pacer: Pacer::new(args.poll_rate),
        hooks: receiving.as_ref().map(|(_, _, at)| Hooks {
            tally: Mutex::new(webhooks::Tally::default()),
            registered_at: *at,
        }),
        db,
        args,
        run_id,
        seed,
        otr: amounts.otr,
        admin_fee_max: amounts.admin_fee_max,
        limit_at_creation: amounts.limit,
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
        refund_tx,
        refunds_in_flight: AtomicU64::new(0),
        refund_seq: AtomicU64::new(0),
        limit_patches: Mutex::new(Vec::new()),
    });
    let refunder = tokio::spawn(refunds::refunder(
        ctx.clone(),
        refund_rx,
        ctx.args.concurrency.clamp(1, 64),
    ));
    let (receiver, consumer) = match receiving {
        Some((receiver, deliveries, _)) => (
            Some(receiver),
            Some(tokio::spawn(poll::consume_deliveries(
                ctx.clone(),
                deliveries,
            ))),
        ),
        None => (None, None),
    };

    // Load phase.
    let progress = Progress::sending(&ctx);
    let learner = tokio::spawn(poll::learn_contracts(ctx.clone(), learn_rx));
    ctx.api.warm(ctx.args.warm_connections()).await?;
    let cpu_before = read_cpu().await;
    let load_start = Instant::now();
    let load_start_wall = Utc::now();
    // Both race the load from its start: the limit changes spread over it, the close of
    // business at its point.
    let limit_changer = (ctx.args.limit_changes > 0)
        .then(|| tokio::spawn(limit_changes::change_limits(ctx.clone(), load_start)));
    let closer = ctx
        .args
        .cob_date
        .map(|date| tokio::spawn(cob::close_of_business(ctx.clone(), date, load_start)));
    load::drive_load(&ctx, load_start, load_start_wall).await?;
    let load_secs = load_start.elapsed().as_secs_f64();
    let cpu_after = read_cpu().await;
    let load_cpu = cpu_before
        .zip(cpu_after)
        .map(|(before, after)| cpu::usage(&before, &after, load_secs));
    ctx.load_done.store(true, Ordering::Relaxed);
    progress.finish().await;
    let _ = learner.await;
    if let Some(changer) = limit_changer {
        // The changes are synchronous: once sent, all are answered.
        let _ = changer.await;
    }

    // Every accepted call (refunds included), to its final status; then every delivery owed.
    poll::wait_for_finals(&ctx).await;
    refunder.abort();
    let cob_run = match closer {
        Some(task) => Some(
            task.await
                .map_err(|e| format!("the close of business task: {e}")),
        ),
        None => None,
    };
    let mut bad_signatures = None;
    if let Some(receiver) = receiver {
        poll::wait_for_webhooks(&ctx).await;
        if let Err(e) = webhooks::unregister(&ctx.poll_api, &ctx.merchant).await {
            eprintln!("loadgen: {e:#}");
        }
        bad_signatures = Some(receiver.bad_signatures());
        let _ = tokio::time::timeout(Duration::from_secs(5), receiver.stop()).await;
    }
    if let Some(consumer) = consumer {
        // The receiver stopped, so the channel closes once what it still holds is recorded.
        let abort = consumer.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), consumer)
            .await
            .is_err()
        {
            abort.abort();
        }
    }

    let records = lock(&ctx.records).clone();
    let finals = lock(&ctx.finals).clone();
    let status_404 = lock(&ctx.status_404).clone();
    let limit_patches = lock(&ctx.limit_patches).clone();
    let (mut violations, races) = report::outcome_violations(&records, &finals, &status_404);
    match &cob_run {
        Some(Ok(run)) => violations.extend(run.violation()),
        Some(Err(e)) => violations.push(e.clone()),
        None => {}
    }
    let cob_run = cob_run.and_then(Result::ok);
    let webhook_report = ctx.hooks.as_ref().zip(bad_signatures).map(|(hooks, bad)| {
        let r = report::WebhookReport::of(
            &lock(&hooks.tally),
            hooks.registered_at,
            &records,
            &finals,
            bad,
        );
        violations.extend(r.violations());
        r
    });
    let contract_events: Option<Vec<webhooks::ContractEvent>> =
        ctx.hooks.as_ref().map(|h| lock(&h.tally).contracts.clone());
    let mut verified = false;
    if !ctx.args.no_verify {
        eprintln!("verifying against MySQL ...");
        let facts = verify::RunFacts {
            users: &ctx.users,
            records: &records,
            finals: &finals,
            contract_events: contract_events.as_deref(),
            limit_patches: &limit_patches,
            granted_at_creation: rust_decimal::Decimal::new(ctx.limit_at_creation, 2),
        };
        match verify::verify(&ctx.args.database_url, &facts).await {
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
        &report::Findings {
            violations: &violations,
            verified,
            races,
            webhooks: webhook_report.as_ref(),
            limit_patches: &limit_patches,
            cob: cob_run.as_ref(),
        },
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
