//! `loadgen`: drives the XYZ MultiFinance engine with signed requests and verifies its
//! invariants against MySQL (`run`), and measures the database's own ceiling for the
//! worker's unit of work (`sql-ceiling`), the round trips under accept latency (`floor`) and
//! the cost of an unsigned flood (`unsigned`).

mod api;
mod ceiling;
mod cpu;
mod floor;
mod poison;
mod run;
mod unsigned;
mod util;
mod verify;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator and benchmarks of the XYZ MultiFinance engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create users, fire signed transactions and payments (and refunds of a share of the
    /// contracts, limit changes racing the debits, a close of business during the load), wait
    /// for every outcome (polled, or told by webhooks), verify SPEC §9's limit equation, the
    /// refunds, the limit changes' chain, late fees and payments' allocations, and idempotency
    /// against MySQL; a human summary then one JSON line on stdout.
    Run(Box<run::RunArgs>),
    /// Run the worker's exact SQL for approved contracts straight against MySQL (a scratch
    /// database) at several concurrencies; a table then one JSON line on stdout.
    SqlCeiling(ceiling::CeilingArgs),
    /// Publish three poison messages (undecodable, unknown type, unknown schema version)
    /// straight to the command queue; the workers must dead-letter them.
    Poison(poison::PoisonArgs),
    /// Time, one at a time on an idle engine, the round trips every acceptance makes (the
    /// broker's confirm, a Redis command, HTTP through nginx) and a wake-up between threads:
    /// the machine's floor under accept latency. A table then one JSON line on stdout.
    Floor(floor::FloorArgs),
    /// Send POSTs of a ~64 KiB body under a made-up signature (every one must be refused
    /// with 401) and report the engine's CPU per refused request; one JSON line on stdout.
    Unsigned(unsigned::UnsignedArgs),
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init("error");
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run(args) => run::run(*args).await,
        Cmd::SqlCeiling(args) => ceiling::ceiling(args).await,
        Cmd::Poison(args) => poison::poison(args).await,
        Cmd::Floor(args) => floor::floor(args).await,
        Cmd::Unsigned(args) => unsigned::unsigned(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
