//! Operator CLI: migrations and API keys.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use shared::config::CryptoConfig;
use shared::db::keys::{self, Role};

#[derive(Parser, Debug)]
#[command(name = "xyzctl", about = "Operator CLI of the XYZ MultiFinance engine", version)]
struct Cli {
    /// Database URL with the rights the command needs (DDL for `migrate`).
    #[arg(
        long = "database-url",
        env = "MIGRATION_DATABASE_URL",
        default_value = "mysql://root@127.0.0.1:3306/xyz",
        hide_env_values = true,
        global = true
    )]
    database_url: String,
    #[command(flatten)]
    crypto: CryptoConfig,
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init("warn");
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate => migrate(&cli.database_url).await,
        Command::Keys { command } => {
            let pool = shared::db::connect(&cli.database_url, 2).await?;
            match command {
                KeysCommand::Create { name, role } => {
                    let role = Role::parse(&role).context("role must be admin or merchant")?;
                    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                        bail!("--name must be 1-64 characters of [A-Za-z0-9_-]");
                    }
                    let keyring = cli.crypto.keyring()?;
                    let client_id = shared::ids::new_client_id();
                    let secret = shared::crypto::random_token(32)?;
                    keys::create_key(&pool, &keyring, &client_id, &name, role, &secret).await?;
                    println!(
                        "{}",
                        serde_json::json!({"client_id": client_id, "secret": secret, "role": role.as_str(), "name": name})
                    );
                }
                KeysCommand::List => {
                    for k in keys::list_keys(&pool).await? {
                        println!("{}", serde_json::to_string(&k)?);
                    }
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
                }
                KeysCommand::Revoke { client_id } => {
                    if !keys::revoke_key(&pool, &client_id).await? {
                        bail!("no active key {client_id}");
                    }
                    println!("{}", serde_json::json!({"client_id": client_id, "revoked": true}));
                }
            }
            Ok(())
        }
    }
}

/// Creates the database named in the URL if it is missing, then applies migrations.
async fn migrate(url: &str) -> anyhow::Result<()> {
    use sqlx::ConnectOptions;
    let options = shared::db::connect_options(url)?;
    let database = options
        .get_database()
        .context("the database URL must name a database")?
        .to_owned();
    if !database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
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
    println!("{}", serde_json::json!({"database": database, "migrated": true}));
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
