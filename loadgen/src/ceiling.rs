//! `loadgen sql-ceiling`: the worker's own unit of work (`worker::unit::apply_batch`: the
//! limits locked, the idempotency rows, the contracts and their installments, the limits
//! written, the outcome rows, commit), run straight against MySQL in a scratch database, at
//! several concurrencies. Nothing else between the client and the
//! server: this is the most approved contracts per second the database allows.

use crate::util::{Percentiles, Rng, ms, round3};
use anyhow::{Context, Result, bail, ensure};
use chrono::Utc;
use serde_json::json;
use shared::contract::{ContractTerms, Tenor};
use shared::messages::{COMMAND_SCHEMA_VERSION, Command, CommandPayload, TransactionPayload};
use shared::money::{Money, Rate};
use shared::status::CallState;
use sqlx::mysql::MySqlPool;
use sqlx::{ConnectOptions, Executor, Row};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use worker::unit::{Decision, apply_batch, lock_order};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct CeilingArgs {
    /// A MySQL/MariaDB server it may create and drop a database on (the database in the URL
    /// is only used to connect).
    #[arg(
        long,
        env = "LOADGEN_DATABASE_URL",
        default_value = "mysql://root@127.0.0.1:3306/xyz",
        hide_env_values = true
    )]
    pub(crate) database_url: String,
    /// The scratch database, created (dropped first if it exists) and dropped at the end.
    #[arg(long, env = "LOADGEN_SCRATCH_DATABASE", default_value = "xyz_ceiling")]
    pub(crate) scratch_database: String,
    /// Keep the scratch database afterwards, for inspection.
    #[arg(long, env = "LOADGEN_KEEP_DATABASE")]
    pub(crate) keep_database: bool,
    /// Concurrency levels to measure (connections, each running transactions back to back).
    #[arg(
        long,
        env = "LOADGEN_CEILING_CONCURRENCY",
        value_delimiter = ',',
        default_value = "1,2,4,8,16,32"
    )]
    pub(crate) concurrency: Vec<usize>,
    /// Seconds per level.
    #[arg(long, env = "LOADGEN_CEILING_SECONDS", default_value_t = 5.0)]
    pub(crate) seconds: f64,
    /// Contracts per MySQL transaction (1 = one contract per transaction; the worker's
    /// default group commit is 32). Several values measure several series.
    #[arg(
        long,
        env = "LOADGEN_CEILING_BATCH",
        value_delimiter = ',',
        default_value = "1"
    )]
    pub(crate) batch: Vec<usize>,
    /// Fail unless innodb_flush_log_at_trx_commit is 1 (a durable commit per transaction).
    #[arg(long, env = "LOADGEN_REQUIRE_DURABLE")]
    pub(crate) require_durable: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_url_drops_the_database() {
        assert_eq!(
            super::server_url("mysql://root@127.0.0.1:3306/xyz"),
            "mysql://root@127.0.0.1:3306"
        );
        assert_eq!(
            super::server_url("mysql://u:p@h/xyz?ssl-mode=disabled"),
            "mysql://u:p@h?ssl-mode=disabled"
        );
        assert_eq!(super::server_url("mysql://u:p@h"), "mysql://u:p@h");
    }
}

#[derive(Debug, Clone, serde::Serialize)]
struct Level {
    batch: usize,
    concurrency: usize,
    seconds: f64,
    contracts: u64,
    transactions: u64,
    contracts_per_sec: f64,
    transactions_per_sec: f64,
    retries: u64,
    not_approved: u64,
    commit_latency_ms: Percentiles,
}

/// `mysql://u:p@host:3306/db?opts` → `mysql://u:p@host:3306?opts`.
fn server_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let (head, rest) = url.split_at(scheme_end);
    let (authority, after) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => return url.to_owned(),
    };
    let query = after.find('?').map(|i| &after[i..]).unwrap_or("");
    format!("{head}{authority}{query}")
}

fn valid_db_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(crate) async fn ceiling(args: CeilingArgs) -> Result<ExitCode> {
    ensure!(
        valid_db_name(&args.scratch_database),
        "--scratch-database must be [A-Za-z0-9_]{{1,64}}"
    );
    ensure!(
        !args.concurrency.is_empty() && args.concurrency.iter().all(|&c| c >= 1),
        "--concurrency needs levels >= 1"
    );
    ensure!(
        !args.batch.is_empty() && args.batch.iter().all(|&b| (1..=1000).contains(&b)),
        "--batch must be within 1..=1000"
    );
    ensure!(args.seconds > 0.0, "--seconds must be positive");
    // The server, without a database: the one in the URL need not exist.
    let server_options = shared::db::connect_options(&server_url(&args.database_url))?;
    let admin = shared::db::pool_options(2)
        .connect_with(server_options.clone())
        .await
        .context("connecting to MySQL (--database-url)")?;

    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&admin)
        .await?;
    let flush: String =
        sqlx::query_scalar("SELECT CAST(@@GLOBAL.innodb_flush_log_at_trx_commit AS CHAR)")
            .fetch_one(&admin)
            .await?;
    let sync_binlog: String = sqlx::query_scalar("SELECT CAST(@@GLOBAL.sync_binlog AS CHAR)")
        .fetch_one(&admin)
        .await?;
    let log_bin: String = sqlx::query_scalar("SELECT CAST(@@GLOBAL.log_bin AS CHAR)")
        .fetch_one(&admin)
        .await?;
    println!(
        "== sql-ceiling on {version}: innodb_flush_log_at_trx_commit={flush}, log_bin={log_bin}, sync_binlog={sync_binlog}"
    );
    if flush != "1" {
        eprintln!(
            "WARNING: innodb_flush_log_at_trx_commit={flush}: commits are not durable, the ceiling is inflated; the benchmark must run with 1"
        );
        if args.require_durable {
            bail!("innodb_flush_log_at_trx_commit is {flush}, not 1");
        }
    }

    let db = &args.scratch_database;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{db}`"
        )))
        .await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )))
        .await?;
    let max_conc = args.concurrency.iter().copied().max().unwrap_or(1);
    let max_batch = args.batch.iter().copied().max().unwrap_or(1);
    let pool = shared::db::pool_options(max_conc as u32 + 2)
        .connect_with(
            server_options
                .clone()
                .database(db)
                .disable_statement_logging(),
        )
        .await
        .context("connecting to the scratch database")?;

    let outcome = measure(&args, &pool, max_conc, max_batch, &version, &flush).await;
    pool.close().await;
    if args.keep_database {
        eprintln!("kept database {db}");
    } else {
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS `{db}`"
            )))
            .await?;
    }
    admin.close().await;
    outcome
}

async fn measure(
    args: &CeilingArgs,
    pool: &MySqlPool,
    max_conc: usize,
    max_batch: usize,
    version: &str,
    flush: &str,
) -> Result<ExitCode> {
    shared::db::MIGRATOR
        .run(pool)
        .await
        .context("migrating the scratch database")?;
    // Disjoint users per connection, enough for a whole batch of distinct users each: the
    // ceiling is the database's, not lock waits on a hot row.
    let users = (max_conc * max_batch * 2).max(64);
    seed_users(pool, users).await?;
    eprintln!(
        "seeded {users} users with huge limits in {}",
        args.scratch_database
    );

    let mut levels = Vec::new();
    for &batch in &args.batch {
        println!("batch {batch} contract(s) per transaction:");
        println!(
            "  {:>11} {:>12} {:>10} {:>9} {:>12} {:>12}",
            "concurrency", "contracts/s", "txn/s", "retries", "commit p50", "commit p99"
        );
        for &c in &args.concurrency {
            let level = run_level(pool, users, c, batch, args.seconds).await?;
            println!(
                "  {:>11} {:>12.1} {:>10.1} {:>9} {:>9.2} ms {:>9.2} ms",
                c,
                level.contracts_per_sec,
                level.transactions_per_sec,
                level.retries,
                level.commit_latency_ms.p50,
                level.commit_latency_ms.p99
            );
            if level.not_approved > 0 {
                eprintln!(
                    "WARNING: {} contracts were not approved at concurrency {c}",
                    level.not_approved
                );
            }
            levels.push(level);
        }
    }
    let best = |batch: usize| {
        levels
            .iter()
            .filter(|l| l.batch == batch)
            .max_by(|a, b| a.contracts_per_sec.total_cmp(&b.contracts_per_sec))
            .map(|l| json!({"batch": batch, "concurrency": l.concurrency, "contracts_per_sec": l.contracts_per_sec}))
    };
    let bests: Vec<_> = args.batch.iter().filter_map(|&b| best(b)).collect();
    for b in &bests {
        println!(
            "best for batch {}: {} contracts/s at concurrency {}",
            b["batch"], b["contracts_per_sec"], b["concurrency"]
        );
    }
    let single = levels
        .iter()
        .filter(|l| l.batch == 1)
        .map(|l| l.contracts_per_sec)
        .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))));
    let summary = json!({
        "kind": "sql-ceiling",
        "server_version": version,
        "innodb_flush_log_at_trx_commit": flush,
        "seconds_per_level": args.seconds,
        "users": users,
        "levels": levels,
        "best": bests,
        "single_contract_ceiling_per_sec": single,
    });
    println!("{summary}");
    let not_approved: u64 = levels.iter().map(|l| l.not_approved).sum();
    Ok(if not_approved == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `n` active users, each tenor's limit far beyond anything the run can spend.
async fn seed_users(pool: &MySqlPool, n: usize) -> Result<()> {
    let huge = rust_decimal::Decimal::new(100_000_000_000_000_000, 2);
    let now = Utc::now().naive_utc();
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let ids: Vec<String> = chunk
            .iter()
            .map(|i| format!("USR_ceiling_{i:06}"))
            .collect();
        let mut users = sqlx::QueryBuilder::<sqlx::MySql>::new(
            "INSERT INTO users (user_id, user_status, nik_ciphertext, nik_key_id, nik_blind_index, nik_masked,
                full_name, legal_name, tempat_lahir, tanggal_lahir, gaji, foto_ktp, foto_selfie,
                created_by, api_call_id, created_at, updated_at) ",
        );
        users.push_values(&ids, |mut b, id| {
            let blind: Vec<u8> = [
                uuid::Uuid::new_v4().into_bytes(),
                uuid::Uuid::new_v4().into_bytes(),
            ]
            .concat();
            b.push_bind(id.as_str())
                .push_bind("ACTIVE")
                .push_bind(vec![0u8; 44])
                .push_bind("ceiling")
                .push_bind(blind)
                .push_bind("3201********0001")
                .push_bind("Ceiling User")
                .push_bind("Ceiling User")
                .push_bind("Bandung")
                .push_bind(chrono::NaiveDate::from_ymd_opt(1990, 1, 15))
                .push_bind(rust_decimal::Decimal::new(1_500_000_000, 2))
                .push_bind("https://cdn.example.com/ktp.jpg")
                .push_bind("https://cdn.example.com/selfie.jpg")
                .push_bind("ceiling")
                .push_bind(format!("API_CALL_seed_{id}"))
                .push_bind(now)
                .push_bind(now);
        });
        users.build().execute(pool).await.context("seeding users")?;
        let mut limits = sqlx::QueryBuilder::<sqlx::MySql>::new(
            "INSERT INTO user_limit_balances (user_id, limit_one_month, limit_two_month, limit_three_month, limit_sixth,
                available_one_month, available_two_month, available_three_month, available_sixth, updated_at) ",
        );
        limits.push_values(&ids, |mut b, id| {
            b.push_bind(id.as_str());
            for _ in 0..8 {
                b.push_bind(huge);
            }
            b.push_bind(now);
        });
        limits
            .build()
            .execute(pool)
            .await
            .context("seeding limits")?;
    }
    Ok(())
}

/// A transaction command as the ingress would publish it (also `loadgen floor`'s payload).
pub(crate) fn command(user_id: &str, rng: &mut Rng) -> Result<Command> {
    let tenor = Tenor::ALL[rng.index(Tenor::ALL.len())];
    let otr = rng.range_i64(10_000_000, 500_000_000);
    let external_id = format!("CEIL-{}", uuid::Uuid::new_v4().simple());
    Ok(Command {
        v: COMMAND_SCHEMA_VERSION,
        api_call_id: shared::ids::new_api_call_id(),
        merchant_id: "ceiling-merchant".into(),
        client_id: "ck_ceiling".into(),
        body_sha256: shared::signature::sha256_hex(external_id.as_bytes()),
        external_id,
        accepted_at: Utc::now(),
        reply_to: None,
        payload: CommandPayload::Transaction(TransactionPayload {
            user_id: user_id.to_owned(),
            terms: ContractTerms {
                otr: Money::from_cents(otr),
                admin_fee: Money::from_cents(rng.range_i64(0, 5_000_000)),
                harga_aset: Money::from_cents(otr - rng.range_i64(0, otr / 10)),
                bunga_persen: Rate::parse_json(&format!(
                    "{}.{:02}",
                    rng.range_i64(0, 2),
                    rng.range_i64(0, 99)
                ))
                .map_err(|e| anyhow::anyhow!("rate: {e}"))?,
                tenor,
            },
            nama_aset: "Kulkas 2 Pintu".into(),
        }),
    })
}

async fn run_level(
    pool: &MySqlPool,
    users: usize,
    concurrency: usize,
    batch: usize,
    seconds: f64,
) -> Result<Level> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..concurrency {
        let pool = pool.clone();
        // Connection k owns users k, k + c, k + 2c, …
        let mine: Vec<String> = (k..users)
            .step_by(concurrency)
            .map(|i| format!("USR_ceiling_{i:06}"))
            .collect();
        tasks.spawn(async move {
            let mut rng = Rng::from_entropy();
            let mut stats = (0u64, 0u64, 0u64, 0u64, Vec::<f64>::new());
            while Instant::now() < deadline {
                // Distinct users within a batch, sorted the way the worker sorts.
                let first = rng.index(mine.len());
                let commands = (0..batch)
                    .map(|j| command(&mine[(first + j) % mine.len()], &mut rng))
                    .collect::<Result<Vec<_>>>()?;
                let mut refs: Vec<&Command> = commands.iter().collect();
                refs.sort_by_key(|c| lock_order(c));
                let t0 = Instant::now();
                let decisions = loop {
                    match apply_batch(&pool, &refs).await {
                        Ok(d) => break d,
                        Err(e) => {
                            stats.2 += 1;
                            if stats.2 > 1000 {
                                bail!("too many transient failures, last: {e}");
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                };
                stats.4.push(ms(t0.elapsed()));
                stats.1 += 1;
                for d in decisions {
                    match d {
                        Decision::Final(r) if r.status.status == CallState::Approved => {
                            stats.0 += 1
                        }
                        _ => stats.3 += 1,
                    }
                }
            }
            Ok::<_, anyhow::Error>(stats)
        });
    }
    let (mut contracts, mut txns, mut retries, mut not_approved, mut lat) =
        (0, 0, 0, 0, Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (c, t, re, na, l) = r.context("ceiling task panicked")??;
        contracts += c;
        txns += t;
        retries += re;
        not_approved += na;
        lat.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Make sure what was counted is there.
    let rows: i64 = sqlx::query("SELECT COUNT(*) AS n FROM async_outcomes")
        .fetch_one(pool)
        .await?
        .try_get("n")?;
    ensure!(rows > 0, "no outcome rows after a level");
    Ok(Level {
        batch,
        concurrency,
        seconds: round3(elapsed),
        contracts,
        transactions: txns,
        contracts_per_sec: round3(contracts as f64 / elapsed),
        transactions_per_sec: round3(txns as f64 / elapsed),
        retries,
        not_approved,
        commit_latency_ms: Percentiles::of(&mut lat),
    })
}
