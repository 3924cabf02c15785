//! Operator CLI: migrations, API keys, master-key rotation, signed calls, dead letters.

mod call;
mod dlq;
mod report;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use shared::amqp::Topology;
use shared::config::{AmqpConfig, CryptoConfig, RedisConfig};
use shared::db::keys::{self, Role};
use shared::nodes::{Nodes, NodesParser};

#[derive(Parser, Debug)]
#[command(
    name = "xyzctl",
    about = "Operator CLI of the XYZ MultiFinance engine",
    version
)]
struct Cli {
    /// Database URL with the rights the command needs (DDL for `migrate`). One node's URL,
    /// also on a Galera cluster: DDL runs on one node and the cluster replicates it.
    #[arg(
        long = "database-url",
        env = "MIGRATION_DATABASE_URL",
        default_value = "mysql://root@127.0.0.1:3306/xyz",
        hide_env_values = true,
        global = true,
        value_parser = NodesParser::single()
    )]
    database_url: Nodes,
    #[command(flatten)]
    crypto: CryptoConfig,
    #[command(flatten)]
    amqp: AmqpConfig,
    #[command(flatten)]
    redis: RedisConfig,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the database if needed and apply pending migrations (safe to run twice).
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Create (or update) the application's database user with data rights only: SELECT,
    /// INSERT and UPDATE on the database, no DDL, no DELETE. Safe to run twice.
    GrantAppUser {
        #[arg(long, env = "APP_DB_USER", default_value = "xyz_app")]
        user: String,
        #[arg(long, env = "APP_DB_PASSWORD", hide_env_values = true)]
        password: String,
        /// Hosts the user may connect from (MySQL account hosts), comma separated.
        #[arg(
            long,
            env = "APP_DB_HOSTS",
            value_delimiter = ',',
            default_value = "127.0.0.1,localhost"
        )]
        hosts: Vec<String>,
    },
    /// Re-encrypt stored key secrets and NIKs under MASTER_KEY_ID. MASTER_KEYS must list the
    /// old and the new key; running ingresses with that list keep working throughout.
    RotateMasterKey,
    /// Sign and send one request with CLIENT_ID / CLIENT_SECRET, print the answer.
    Call {
        /// GET, POST, PATCH, …
        method: String,
        /// Path and query, exactly as it will be signed, e.g. /users/USR_…/limits
        path: String,
        /// JSON body
        body: Option<String>,
        #[arg(long, env = "BASE_URL", default_value = "http://127.0.0.1:8080")]
        base_url: String,
        #[arg(long, env = "CLIENT_ID")]
        client_id: String,
        #[arg(long, env = "CLIENT_SECRET", hide_env_values = true)]
        client_secret: String,
        /// X-External-Id (a fresh one is made for POSTs when absent).
        #[arg(long)]
        external_id: Option<String>,
        /// Send `Prefer: wait=N`.
        #[arg(long)]
        wait: Option<u32>,
    },
    /// Reports for finance.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Close of business (SPEC §12): close every date after the last closed one up to
    /// --date (default: yesterday in Asia/Jakarta), marking overdue installments and charging
    /// late fees. Safe to rerun; one runner at a time across all hosts.
    CloseOfBusiness {
        /// The business date to close through, YYYY-MM-DD.
        #[arg(long)]
        date: Option<String>,
        /// Allow today or a later date; refused unless ALLOW_FUTURE_COB=1 too.
        #[arg(long)]
        allow_future: bool,
        #[command(flatten)]
        cob: shared::config::CobConfig,
        /// Seconds to wait for another runner to finish (0: exit at once).
        #[arg(long, default_value_t = 0)]
        wait_secs: u64,
    },
    /// Inspect and re-drive dead-lettered commands.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ReportCommand {
    /// A Jakarta day's settlement (SPEC §14) as CSV on stdout, the same rows and bytes as
    /// `GET /reports/settlement` with `Accept: text/csv`.
    Settlement {
        /// The Jakarta (UTC+7) date, YYYY-MM-DD.
        #[arg(long, value_parser = parse_date)]
        date: chrono::NaiveDate,
        /// One merchant; all merchants when absent.
        #[arg(long)]
        merchant: Option<String>,
    },
}

fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|_| s.len() == 10)
        .ok_or_else(|| format!("{s:?} is not a date YYYY-MM-DD"))
}

#[derive(Subcommand, Debug)]
enum DlqCommand {
    /// Print every dead-lettered message (they stay in the queue).
    List,
    /// Re-publish dead-lettered commands to the command queue.
    Replay {
        /// api call ids to replay
        #[arg(long = "id", required_unless_present = "all")]
        ids: Vec<String>,
        /// Replay every decodable command.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Issue a key; prints {"client_id","secret","role","name"} once. The secret is not
    /// retrievable later.
    Create {
        /// The merchant the key belongs to (admin keys belong to the platform).
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["admin", "merchant"])]
        role: String,
    },
    /// List keys (never secrets).
    List,
    /// Give a key its own rate limit (without flags: back to the deployment default).
    SetRate {
        client_id: String,
        /// Requests per second the key may sustain.
        #[arg(long)]
        per_second: Option<u32>,
        /// Requests the key may send at once.
        #[arg(long)]
        burst: Option<u32>,
    },
    /// Revoke a key; every ingress stops accepting it within 5 seconds.
    Revoke { client_id: String },
    /// Issue a new secret for a key; the old one keeps working for the grace period.
    Rotate {
        client_id: String,
        /// Seconds the previous secret stays valid (at most 30 days).
        #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u32).range(0..=2_592_000))]
        grace_secs: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init("warn");
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate => migrate(cli.database_url.url(0)).await,
        Command::GrantAppUser {
            user,
            password,
            hosts,
        } => grant_app_user(cli.database_url.url(0), &user, &password, &hosts).await,
        Command::RotateMasterKey => {
            let pool = shared::db::connect(&cli.database_url, 2).await?;
            let keyring = cli.crypto.keyring()?;
            let secrets = keys::reencrypt_secrets(&pool, &keyring).await?;
            let niks = shared::db::users::reencrypt_niks(&pool, &keyring).await?;
            let webhook_secrets = shared::db::webhooks::reencrypt_secrets(&pool, &keyring).await?;
            println!(
                "{}",
                serde_json::json!({"master_key_id": keyring.active_key_id(), "key_secrets_reencrypted": secrets, "niks_reencrypted": niks, "webhook_secrets_reencrypted": webhook_secrets})
            );
            Ok(())
        }
        Command::Call {
            method,
            path,
            body,
            base_url,
            client_id,
            client_secret,
            external_id,
            wait,
        } => {
            let ok = call::call(call::CallArgs {
                base_url: &base_url,
                client_id: &client_id,
                secret: &client_secret,
                method: &method,
                path: &path,
                body: body.as_deref(),
                external_id,
                wait,
            })
            .await?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Report {
            command: ReportCommand::Settlement { date, merchant },
        } => report::settlement(&cli.database_url, date, merchant.as_deref()).await,
        Command::CloseOfBusiness {
            date,
            allow_future,
            cob,
            wait_secs,
        } => {
            let allowed_env = std::env::var("ALLOW_FUTURE_COB").is_ok_and(|v| v == "1");
            let options = cob.options(std::time::Duration::from_secs(wait_secs));
            close_of_business(
                &cli.database_url,
                date.as_deref(),
                allow_future,
                allowed_env,
                options,
            )
            .await
        }
        Command::Dlq { command } => {
            let topology = Topology::new(&cli.amqp.prefix);
            match command {
                DlqCommand::List => dlq::list(&cli.amqp.url, &topology).await,
                DlqCommand::Replay { ids, all } => {
                    dlq::replay(&cli.amqp.url, &topology, &ids, all).await
                }
            }
        }
        Command::Keys { command } => {
            let pool = shared::db::connect(&cli.database_url, 2).await?;
            let changed = match command {
                KeysCommand::Create { name, role } => {
                    let role = Role::parse(&role).context("role must be admin or merchant")?;
                    if !keys::is_valid_merchant_name(&name) {
                        bail!("--name must be 1-64 characters of [A-Za-z0-9_-]");
                    }
                    let keyring = cli.crypto.keyring()?;
                    let issued = keys::issue_key(
                        &pool,
                        &keyring,
                        &name,
                        role,
                        keys::KeyRate::default(),
                        None,
                    )
                    .await?;
                    println!(
                        "{}",
                        serde_json::json!({"client_id": issued.client_id, "secret": issued.secret, "role": role.as_str(), "name": name})
                    );
                    Some(issued.client_id)
                }
                KeysCommand::List => {
                    for k in keys::list_keys(&pool).await? {
                        println!("{}", serde_json::to_string(&k)?);
                    }
                    None
                }
                KeysCommand::SetRate {
                    client_id,
                    per_second,
                    burst,
                } => {
                    if per_second == Some(0) || burst == Some(0) {
                        bail!("limits must be at least 1");
                    }
                    if !keys::set_rate(&pool, &client_id, per_second, burst).await? {
                        bail!("no active key {client_id}");
                    }
                    println!(
                        "{}",
                        serde_json::json!({"client_id": client_id, "rate_per_second": per_second, "rate_burst": burst})
                    );
                    Some(client_id)
                }
                KeysCommand::Rotate {
                    client_id,
                    grace_secs,
                } => {
                    let keyring = cli.crypto.keyring()?;
                    let grace = chrono::Duration::seconds(i64::from(grace_secs));
                    let rotated = keys::rotate_key(&pool, &keyring, &client_id, grace, None)
                        .await?
                        .with_context(|| format!("no active key {client_id}"))?;
                    println!("{}", serde_json::to_string(&rotated)?);
                    Some(client_id)
                }
                KeysCommand::Revoke { client_id } => {
                    if !keys::revoke_key(&pool, &client_id).await? {
                        bail!("no active key {client_id}");
                    }
                    println!(
                        "{}",
                        serde_json::json!({"client_id": client_id, "revoked": true})
                    );
                    Some(client_id)
                }
            };
            if let Some(client_id) = changed {
                announce_key_change(&cli.redis, &client_id).await;
            }
            Ok(())
        }
    }
}

/// `close-of-business`: checks the date before touching anything, then runs COB.
async fn close_of_business(
    url: &Nodes,
    date: Option<&str>,
    allow_future: bool,
    allowed_env: bool,
    options: shared::db::cob::CobOptions,
) -> anyhow::Result<()> {
    use shared::db::cob::CobOutcome;
    let today = shared::cob::jakarta_date(chrono::Utc::now());
    let target = match date {
        Some(text) => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .filter(|_| text.len() == 10)
            .with_context(|| format!("--date {text:?} is not a date of the form YYYY-MM-DD"))?,
        None => today - chrono::Duration::days(1),
    };
    if target >= today {
        if !allow_future {
            bail!(
                "{target} is not over yet in Asia/Jakarta (today is {today}); closing it needs --allow-future"
            );
        }
        if !allowed_env {
            bail!("--allow-future is refused: ALLOW_FUTURE_COB=1 is not set in this environment");
        }
    }
    let pool = shared::db::connect(url, 3).await?;
    match shared::db::cob::close_through(&pool, target, options).await? {
        CobOutcome::AlreadyClosed { last_closed } => println!(
            "{}",
            serde_json::json!({"closed": false, "already_closed": true, "date": target, "last_closed": last_closed})
        ),
        CobOutcome::Busy => {
            eprintln!("another close of business is running; not started");
            std::process::exit(3);
        }
        CobOutcome::Closed {
            first,
            last,
            installments,
            fees_charged,
            newly_overdue,
        } => println!(
            "{}",
            serde_json::json!({"closed": true, "first": first, "last": last, "installments": installments, "fees_charged": fees_charged, "newly_overdue": newly_overdue})
        ),
    }
    Ok(())
}

/// Tells every ingress to reload its keys now. Best effort: without Redis they reload within
/// `KEY_REFRESH_MS` anyway.
async fn announce_key_change(redis: &RedisConfig, client_id: &str) {
    let announced = match shared::cache::connect(&redis.url) {
        Ok(conn) => shared::cache::Cache::new(conn, &redis.prefix)
            .announce_key_change(client_id)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = announced {
        eprintln!(
            "warning: could not announce the change on Redis ({e}); every ingress reloads its keys within KEY_REFRESH_MS"
        );
    }
}

/// The application's rights: data only. Migrations (DDL) run as another user.
pub(crate) const APP_PRIVILEGES: &str = "SELECT, INSERT, UPDATE";

async fn grant_app_user(
    url: &str,
    user: &str,
    password: &str,
    hosts: &[String],
) -> anyhow::Result<()> {
    use sqlx::ConnectOptions;
    let options = shared::db::connect_options(url)?;
    let database = options
        .get_database()
        .context("the database URL must name a database")?
        .to_owned();
    let safe = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.%".contains(&b))
    };
    if !safe(user) || !safe(&database) || !hosts.iter().all(|h| safe(h)) {
        bail!("user, hosts and database name must be [A-Za-z0-9_.%-]");
    }
    if password.len() < 12 || password.contains(['\'', '\\']) {
        bail!("the password must be at least 12 characters, without quotes or backslashes");
    }
    let mut conn = options.connect().await?;
    for host in hosts {
        for statement in [
            format!("CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{password}'"),
            format!("ALTER USER '{user}'@'{host}' IDENTIFIED BY '{password}'"),
            format!("GRANT {APP_PRIVILEGES} ON `{database}`.* TO '{user}'@'{host}'"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut conn)
                .await?;
        }
    }
    println!(
        "{}",
        serde_json::json!({"user": user, "hosts": hosts, "database": database, "privileges": APP_PRIVILEGES})
    );
    Ok(())
}

/// Creates the database named in the URL if it is missing, then applies migrations.
async fn migrate(url: &str) -> anyhow::Result<()> {
    use sqlx::ConnectOptions;
    let options = shared::db::connect_options(url)?;
    let database = options
        .get_database()
        .context("the database URL must name a database")?
        .to_owned();
    if !database
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        bail!("database name must be [A-Za-z0-9_]");
    }
    let mut server = options.clone().database("").connect().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    )))
    .execute(&mut server)
    .await?;
    let pool = shared::db::pool_options(2).connect_with(options).await?;
    shared::db::MIGRATOR.run(&pool).await?;
    println!(
        "{}",
        serde_json::json!({"database": database, "migrated": true})
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
