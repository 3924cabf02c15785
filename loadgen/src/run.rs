//! `loadgen run`: users, then a burst of signed transactions and payments, then every call's
//! final status, then the invariants checked against MySQL.

use crate::api::{Api, HttpCounters, Key, PostOutcome, RetryPolicy};
use crate::util::{Percentiles, Progress, Rng, cents_text, ms, parse_cents, round3};
use crate::{cpu, verify};
use anyhow::{Context, Result, bail, ensure};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Base URL of the engine (the ingress, or nginx in front of it).
    #[arg(
        long,
        env = "LOADGEN_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub base_url: String,
    /// Admin key file, JSON as `xyzctl keys create --role admin` prints it.
    #[arg(
        long,
        env = "LOADGEN_ADMIN_KEY_FILE",
        default_value = ".local/admin.json"
    )]
    pub admin_key_file: PathBuf,
    /// Merchant key file, JSON as `xyzctl keys create --role merchant` prints it.
    #[arg(
        long,
        env = "LOADGEN_MERCHANT_KEY_FILE",
        default_value = ".local/merchant.json"
    )]
    pub merchant_key_file: PathBuf,
    /// The engine's database, read after the run to verify the invariants.
    #[arg(
        long,
        env = "LOADGEN_DATABASE_URL",
        default_value = "mysql://root@127.0.0.1:3306/xyz",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Skip the MySQL verification (the run then cannot prove the invariants).
    #[arg(long, env = "LOADGEN_NO_VERIFY")]
    pub no_verify: bool,
    /// Users to create.
    #[arg(long, env = "LOADGEN_USERS", default_value_t = 20)]
    pub users: usize,
    /// Granted limit of every tenor of every user.
    #[arg(long, env = "LOADGEN_LIMIT", default_value = "100000000")]
    pub limit: String,
    /// Requests to send (transactions and payments).
    #[arg(long, env = "LOADGEN_REQUESTS", default_value_t = 2000)]
    pub requests: usize,
    /// Fraction of the requests that are payments on contracts this run created.
    #[arg(long, env = "LOADGEN_PAYMENT_SHARE", default_value_t = 0.2)]
    pub payment_share: f64,
    /// Fraction of the payments that deliberately exceed what is outstanding (OVERPAYMENT).
    #[arg(long, env = "LOADGEN_OVERPAY_SHARE", default_value_t = 0.05)]
    pub overpay_share: f64,
    /// Closed loop: requests in flight at once.
    #[arg(long, env = "LOADGEN_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,
    /// Open loop: requests per second on a fixed schedule (overrides --concurrency). Latency
    /// is measured from each request's scheduled send time.
    #[arg(long, env = "LOADGEN_RATE")]
    pub rate: Option<f64>,
    /// Open loop: most requests in flight at once (a safety valve, not a pacing knob).
    #[arg(long, env = "LOADGEN_MAX_INFLIGHT", default_value_t = 10_000)]
    pub max_inflight: usize,
    /// How long to wait, after the last request, for every call to become final.
    #[arg(long, env = "LOADGEN_WAIT_TIMEOUT_SECS", default_value_t = 120)]
    pub wait_timeout_secs: u64,
    /// Smallest otr (rupiah).
    #[arg(long, env = "LOADGEN_OTR_MIN", default_value = "100000")]
    pub otr_min: String,
    /// Largest otr (rupiah).
    #[arg(long, env = "LOADGEN_OTR_MAX", default_value = "5000000")]
    pub otr_max: String,
    /// Largest admin_fee (rupiah).
    #[arg(long, env = "LOADGEN_ADMIN_FEE_MAX", default_value = "50000")]
    pub admin_fee_max: String,
    /// Seed of the request mix (random when absent).
    #[arg(long, env = "LOADGEN_SEED")]
    pub seed: Option<u64>,
    /// Attempts per POST before giving up (429, 503 and transport errors are retried).
    #[arg(long, env = "LOADGEN_MAX_ATTEMPTS", default_value_t = 30)]
    pub max_attempts: u32,
    /// Per-request HTTP timeout in milliseconds; a timed-out POST is retried with the same
    /// external id (a tiny value exercises the 409-after-retry path).
    #[arg(long, env = "LOADGEN_HTTP_TIMEOUT_MS", default_value_t = 30_000)]
    pub http_timeout_ms: u64,
    /// While sending, keep polling accepted transactions until this many contracts are known
    /// to pay on.
    #[arg(long, env = "LOADGEN_LEARN_TARGET", default_value_t = 64)]
    pub learn_target: usize,
    /// Status polls in flight at once.
    #[arg(long, env = "LOADGEN_POLL_CONCURRENCY", default_value_t = 16)]
    pub poll_concurrency: usize,
    /// Most status polls per second (they share the keys' rate limits with the load).
    #[arg(long, env = "LOADGEN_POLL_RATE", default_value_t = 500.0)]
    pub poll_rate: f64,
    /// Also write every request as a CSV row (when it was due in ms from the start, its kind,
    /// how late it left in ms, its accept latency in ms, its failure status) to see where in
    /// the run the slow ones fall.
    #[arg(long, env = "LOADGEN_RECORDS_CSV")]
    pub records_csv: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Transaction,
    Payment,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Transaction => "TRANSACTION",
            Kind::Payment => "PAYMENT",
        }
    }
}

/// One request of the run and what became of it at the ingress.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub kind: Kind,
    pub external_id: String,
    pub user_id: Option<String>,
    pub nomor_kontrak: Option<String>,
    pub deliberate_overpay: bool,
    /// When it was (scheduled to be) sent: the start of both latencies.
    pub sent_wall: DateTime<Utc>,
    pub accept_ms: Option<f64>,
    /// How late after its due time the request left the load generator (its own scheduling).
    pub send_late_ms: f64,
    pub api_call_id: Option<String>,
    pub via_conflict: bool,
    pub failure: Option<(u16, String)>,
}

/// A final status as `GET /status` showed it.
#[derive(Debug, Clone)]
pub struct FinalSeen {
    pub state: String,
    pub reason: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub seen_at: DateTime<Utc>,
    /// `nomor_kontrak` of an approved transaction, `kode_bayar` of an approved payment.
    pub resource_id: Option<String>,
}

struct PoolEntry {
    nomor_kontrak: String,
    cicilan_bulanan: i64,
    jumlah_cicilan: i64,
    /// What is outstanding at most, counting every payment sent so far as approved.
    remaining: i64,
}

#[derive(Default)]
struct ContractPool {
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
    /// A payment on a known contract: at most the installment and what is left, so it must
    /// be approved; or, `overpay_share` of the time, more than the whole contract.
    fn plan_payment(&mut self, rng: &mut Rng, overpay_share: f64) -> Option<PaymentPlan> {
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
                cents: e.jumlah_cicilan + 1,
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

/// Spaces status polls so they do not eat the keys' rate limit.
struct Pacer {
    next: Mutex<Instant>,
    interval: Duration,
}

impl Pacer {
    fn new(per_second: f64) -> Pacer {
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Ctx {
    api: Api,
    poll_api: Api,
    merchant: Key,
    admin: Key,
    users: Vec<String>,
    args: RunArgs,
    run_id: String,
    seed: u64,
    otr: (i64, i64),
    fee_max: i64,
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

const ASSETS: [&str; 6] = [
    "Kulkas 2 Pintu",
    "Televisi 43 inch",
    "Mesin Cuci",
    "Sepeda Motor",
    "Laptop",
    "AC 1 PK",
];
const TENORS: [u8; 4] = [1, 2, 3, 6];

fn rupiah_cents(s: &str, name: &str) -> Result<i64> {
    let m: shared::money::Money = s
        .parse()
        .map_err(|e| anyhow::anyhow!("--{name} {s}: {e}"))?;
    parse_cents(&m.to_string()).with_context(|| format!("--{name} {s}: too large"))
}

pub async fn run(args: RunArgs) -> Result<ExitCode> {
    ensure!(args.requests > 0, "--requests must be at least 1");
    ensure!(args.users > 0, "--users must be at least 1");
    ensure!(
        (0.0..=1.0).contains(&args.payment_share),
        "--payment-share must be within 0..1"
    );
    ensure!(
        (0.0..=1.0).contains(&args.overpay_share),
        "--overpay-share must be within 0..1"
    );
    if let Some(r) = args.rate {
        ensure!(r > 0.0 && r.is_finite(), "--rate must be positive");
    }
    let merchant = Key::load(&args.merchant_key_file, "merchant")?;
    let admin = Key::load(&args.admin_key_file, "admin")?;
    let otr = (
        rupiah_cents(&args.otr_min, "otr-min")?,
        rupiah_cents(&args.otr_max, "otr-max")?,
    );
    ensure!(
        otr.0 >= 1 && otr.0 <= otr.1,
        "--otr-min must be positive and at most --otr-max"
    );
    let fee_max = rupiah_cents(&args.admin_fee_max, "admin-fee-max")?;
    let limit_cents = rupiah_cents(&args.limit, "limit")?;
    let connections = args
        .rate
        .map_or(args.concurrency, |_| args.max_inflight.min(1024))
        + args.poll_concurrency
        + 8;
    let api = Api::new(
        &args.base_url,
        connections,
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
        &args.base_url,
        args.poll_concurrency + 8,
        Duration::from_secs(30),
    )?;
    let users = create_users(
        &patient_api,
        &admin,
        &run_id,
        args.users,
        limit_cents,
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
        otr,
        fee_max,
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
    let total = ctx.args.requests as u64;
    let progress = {
        let c = ctx.clone();
        Progress::start("requests", total, move || {
            let retries = c.counters.retries.load(Ordering::Relaxed);
            let by = c.counters.by_status();
            (
                c.done.load(Ordering::Relaxed),
                format!(
                    "accepted {} failed {} retries {} 429s {} 503s {} contracts known {}",
                    c.accepted.load(Ordering::Relaxed),
                    c.failed.load(Ordering::Relaxed),
                    retries,
                    by.get(&429).copied().unwrap_or(0),
                    by.get(&503).copied().unwrap_or(0),
                    lock(&c.pool).learned
                ),
            )
        })
    };
    let learner = tokio::spawn(learn_contracts(ctx.clone(), learn_rx));
    ctx.api.warm(warm_connections(&ctx.args)).await?;
    let cpu_before = read_cpu().await;
    let load_start = Instant::now();
    let load_start_wall = Utc::now();
    drive_load(&ctx, load_start, load_start_wall).await?;
    let load_secs = load_start.elapsed().as_secs_f64();
    let cpu_after = read_cpu().await;
    let load_cpu = cpu_before
        .zip(cpu_after)
        .map(|(before, after)| cpu::usage(&before, &after, load_secs));
    ctx.load_done.store(true, Ordering::Relaxed);
    progress.finish().await;
    let _ = learner.await;

    // Every accepted call, to its final status.
    wait_for_finals(&ctx).await;

    let records = lock(&ctx.records).clone();
    let finals = lock(&ctx.finals).clone();
    let status_404 = lock(&ctx.status_404).clone();
    let mut violations = outcome_violations(&records, &finals, &status_404);
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
        write_records_csv(path, &records, load_start_wall)?;
    }
    report(
        &ctx,
        &records,
        &finals,
        &violations,
        verified,
        &LoadWindow {
            secs: load_secs,
            start_wall: load_start_wall,
            cpu: load_cpu,
        },
    )
}

/// When the requests were being sent, and what the machine did meanwhile.
struct LoadWindow {
    secs: f64,
    start_wall: DateTime<Utc>,
    cpu: Option<cpu::Usage>,
}

/// A reading of every process's CPU time (a few hundred small files, read off the runtime).
async fn read_cpu() -> Option<cpu::Snapshot> {
    tokio::task::spawn_blocking(cpu::Snapshot::take)
        .await
        .ok()
        .flatten()
}

fn write_records_csv(
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

/// Connections opened before the load starts: the closed loop's concurrency, or for an open
/// loop as many as 64 requests in flight would use.
fn warm_connections(args: &RunArgs) -> usize {
    args.rate
        .map_or(args.concurrency, |_| args.max_inflight.min(64))
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

async fn create_users(
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

async fn drive_load(ctx: &Arc<Ctx>, start: Instant, start_wall: DateTime<Utc>) -> Result<()> {
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

    let mut record = CallRecord {
        kind: Kind::Transaction,
        external_id: String::new(),
        user_id: None,
        nomor_kontrak: None,
        deliberate_overpay: false,
        sent_wall: due_wall,
        accept_ms: None,
        send_late_ms: 0.0,
        api_call_id: None,
        via_conflict: false,
        failure: None,
    };
    let (key, path, body) = match payment {
        Some(p) => {
            record.kind = Kind::Payment;
            record.external_id = format!("LG-{}-P-{i}", ctx.run_id);
            record.deliberate_overpay = p.deliberate_overpay;
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
            let otr = rng.range_i64(ctx.otr.0, ctx.otr.1);
            let harga_aset = (otr - rng.range_i64(0, otr / 10)).max(1);
            let admin_fee = rng.range_i64(0, ctx.fee_max);
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
            if record.kind == Kind::Transaction {
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
        if let Some(p) = lock(&ctx.pool).plan_payment(rng, ctx.args.overpay_share) {
            return Some(p);
        }
        if ctx.no_contracts.load(Ordering::Relaxed) || Instant::now() >= give_up {
            ctx.no_contracts.store(true, Ordering::Relaxed);
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// While the load runs, polls accepted transactions (oldest first) until enough approved
/// contracts are known to pay on.
async fn learn_contracts(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<String>) {
    let mut queue: VecDeque<String> = VecDeque::new();
    while !ctx.load_done.load(Ordering::Relaxed) {
        while let Ok(id) = rx.try_recv() {
            queue.push_back(id);
        }
        let known = lock(&ctx.pool).entries.len();
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
            let mut pool = lock(&ctx.pool);
            pool.learned += 1;
            pool.entries.push(PoolEntry {
                nomor_kontrak: nk.to_owned(),
                cicilan_bulanan: cicilan,
                jumlah_cicilan: jumlah,
                remaining: jumlah,
            });
        }
    }
    lock(&ctx.finals).insert(api_call_id.to_owned(), seen.clone());
    Some(seen)
}

async fn wait_for_finals(ctx: &Arc<Ctx>) {
    let mut pending: Vec<(String, Kind)> = {
        let finals = lock(&ctx.finals);
        lock(&ctx.records)
            .iter()
            .filter_map(|r| r.api_call_id.as_ref().map(|id| (id.clone(), r.kind)))
            .filter(|(id, _)| !finals.contains_key(id))
            .collect()
    };
    let accepted = ctx.accepted.load(Ordering::Relaxed);
    let progress = {
        let c = ctx.clone();
        Progress::start("final", accepted, move || {
            (lock(&c.finals).len() as u64, String::new())
        })
    };
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

/// What the API said about each call, against what this run knows it must be.
fn outcome_violations(
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

fn report(
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
