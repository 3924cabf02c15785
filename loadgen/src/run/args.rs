//! `loadgen run`'s arguments, and the checks clap cannot make: shares within 0..1, amounts
//! that are rupiah, a range that is a range.

use crate::util::parse_cents;
use anyhow::{Context, Result, ensure};
use chrono::NaiveDate;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(super) engine: crate::util::EngineUrl,
    /// Admin key file, JSON as `xyzctl keys create --role admin` prints it.
    #[arg(
        long,
        env = "LOADGEN_ADMIN_KEY_FILE",
        default_value = ".local/admin.json"
    )]
    pub(super) admin_key_file: PathBuf,
    /// Merchant key file, JSON as `xyzctl keys create --role merchant` prints it.
    #[arg(
        long,
        env = "LOADGEN_MERCHANT_KEY_FILE",
        default_value = ".local/merchant.json"
    )]
    pub(super) merchant_key_file: PathBuf,
    /// The engine's database, read after the run to verify the invariants.
    #[arg(
        long,
        env = "LOADGEN_DATABASE_URL",
        default_value = "mysql://root@127.0.0.1:3306/xyz",
        hide_env_values = true
    )]
    pub(super) database_url: shared::nodes::Nodes,
    /// Skip the MySQL verification (the run then cannot prove the invariants).
    #[arg(long, env = "LOADGEN_NO_VERIFY")]
    pub(super) no_verify: bool,
    /// Users to create.
    #[arg(long, env = "LOADGEN_USERS", default_value_t = 20)]
    pub(super) users: usize,
    /// Granted limit of every tenor of every user.
    #[arg(long, env = "LOADGEN_LIMIT", default_value = "100000000")]
    pub(super) limit: String,
    /// Requests to send (transactions and payments).
    #[arg(long, env = "LOADGEN_REQUESTS", default_value_t = 2000)]
    pub(super) requests: usize,
    /// Fraction of the requests that are payments on contracts this run created.
    #[arg(long, env = "LOADGEN_PAYMENT_SHARE", default_value_t = 0.2)]
    pub(super) payment_share: f64,
    /// Fraction of the payments that deliberately exceed what is outstanding (OVERPAYMENT).
    #[arg(long, env = "LOADGEN_OVERPAY_SHARE", default_value_t = 0.05)]
    pub(super) overpay_share: f64,
    /// Closed loop: requests in flight at once.
    #[arg(long, env = "LOADGEN_CONCURRENCY", default_value_t = 64)]
    pub(super) concurrency: usize,
    /// Open loop: requests per second on a fixed schedule (overrides --concurrency). Latency
    /// is measured from each request's scheduled send time.
    #[arg(long, env = "LOADGEN_RATE")]
    pub(super) rate: Option<f64>,
    /// Open loop: most requests in flight at once (a safety valve, not a pacing knob).
    #[arg(long, env = "LOADGEN_MAX_INFLIGHT", default_value_t = 10_000)]
    pub(super) max_inflight: usize,
    /// How long to wait, after the last request, for every call to become final.
    #[arg(long, env = "LOADGEN_WAIT_TIMEOUT_SECS", default_value_t = 120)]
    pub(super) wait_timeout_secs: u64,
    /// Smallest otr (rupiah).
    #[arg(long, env = "LOADGEN_OTR_MIN", default_value = "100000")]
    pub(super) otr_min: String,
    /// Largest otr (rupiah).
    #[arg(long, env = "LOADGEN_OTR_MAX", default_value = "5000000")]
    pub(super) otr_max: String,
    /// Largest admin_fee (rupiah).
    #[arg(long, env = "LOADGEN_ADMIN_FEE_MAX", default_value = "50000")]
    pub(super) admin_fee_max: String,
    /// Seed of the request mix (random when absent).
    #[arg(long, env = "LOADGEN_SEED")]
    pub(super) seed: Option<u64>,
    /// Attempts per POST before giving up (429, 503 and transport errors are retried).
    #[arg(long, env = "LOADGEN_MAX_ATTEMPTS", default_value_t = 30)]
    pub(super) max_attempts: u32,
    /// Per-request HTTP timeout in milliseconds; a timed-out POST is retried with the same
    /// external id (a tiny value exercises the 409-after-retry path).
    #[arg(long, env = "LOADGEN_HTTP_TIMEOUT_MS", default_value_t = 30_000)]
    pub(super) http_timeout_ms: u64,
    /// While sending, keep polling accepted transactions until this many contracts are known
    /// to pay on.
    #[arg(long, env = "LOADGEN_LEARN_TARGET", default_value_t = 64)]
    pub(super) learn_target: usize,
    /// Status polls in flight at once.
    #[arg(long, env = "LOADGEN_POLL_CONCURRENCY", default_value_t = 16)]
    pub(super) poll_concurrency: usize,
    /// Most status polls per second (they share the keys' rate limits with the load).
    #[arg(long, env = "LOADGEN_POLL_RATE", default_value_t = 500.0)]
    pub(super) poll_rate: f64,
    /// Fraction of the approved contracts that get refunds (one, or a partial one and then a
    /// second; each partial or of all that is refundable, half the time each), sent as soon as
    /// the contract is known to be approved, racing the contract's payments.
    #[arg(long, env = "LOADGEN_REFUND_SHARE", default_value_t = 0.0)]
    pub(super) refund_share: f64,
    /// Receive the merchant's webhooks (SPEC §11): a receiver on --webhook-listen, registered
    /// with PUT /webhooks for call.completed, contract.paid_off and contract.cancelled (the
    /// engine must run with WEBHOOK_ALLOW_LOOPBACK=1), every delivery's signature checked, and
    /// every final call of the merchant owed one.
    #[arg(long, env = "LOADGEN_WEBHOOKS")]
    pub(super) webhooks: bool,
    /// Where the webhook receiver listens (port 0: any free port).
    #[arg(long, env = "LOADGEN_WEBHOOK_LISTEN", default_value = "127.0.0.1:0")]
    pub(super) webhook_listen: std::net::SocketAddr,
    /// How long to wait, once every call is final, for the deliveries still owed.
    #[arg(long, env = "LOADGEN_WEBHOOK_WAIT_SECS", default_value_t = 60)]
    pub(super) webhook_wait_secs: u64,
    /// With --webhooks: never call GET /status; the merchant's outcomes come from
    /// call.completed deliveries only, payments' (admin calls, which no webhook tells) from
    /// MySQL.
    #[arg(long, env = "LOADGEN_NO_POLL", requires = "webhooks")]
    pub(super) no_poll: bool,
    /// Limit changes (SPEC §13) racing the workers' debits: an admin-key task sends this many
    /// `PATCH /users/{user_id}/limits` spread evenly over the load (at the middles of equal
    /// slices of its requests), each on a random user of the run, setting a random non-empty
    /// subset of the four tenors to a new granted limit within 50%..150% of --limit. Each must
    /// answer 200 or 400 LIMIT_BELOW_USED; MySQL's `limit_changes` must then chain each
    /// tenor's granted limit from --limit to its current value.
    #[arg(long, env = "LOADGEN_LIMIT_CHANGES", default_value_t = 0)]
    pub(super) limit_changes: usize,
    /// Close of business (SPEC §12) through this date (YYYY-MM-DD), run by loadgen itself on
    /// its own connection to --database-url while the load runs, exactly as `xyzctl
    /// close-of-business` runs it (LATE_FEE_PERCENT, COB_CHUNK, COB_DUTY_PERCENT). FOR DRILLS AND
    /// BENCHMARKS ON A SCRATCH DATABASE ONLY, never production: it closes today or later
    /// dates too (no ALLOW_FUTURE_COB guard), charging late fees as if that day had come,
    /// and closed dates are never reopened (on a database where none was ever closed, it
    /// closes every date from the earliest contract's). A date more than a month ahead makes
    /// the run's first installments overdue, and their users' new transactions USER_OVERDUE.
    #[arg(long, env = "LOADGEN_COB_DATE", value_parser = parse_date)]
    pub(super) cob_date: Option<NaiveDate>,
    /// With --cob-date: seconds into the load at which the close of business starts (or
    /// when the load ends, if sooner). Default: half-way through the load, i.e. after
    /// requests/rate/2 seconds in an open loop, once half the requests are done in a closed one.
    #[arg(long, env = "LOADGEN_COB_AT_SECS", requires = "cob_date")]
    pub(super) cob_at_secs: Option<f64>,
    /// How the close of business of --cob-date runs.
    #[command(flatten)]
    pub(super) cob: shared::config::CobConfig,
    /// Also write every request as a CSV row (when it was due in ms from the start, its kind,
    /// how late it left in ms, its accept latency in ms, its failure status) to see where in
    /// the run the slow ones fall.
    #[arg(long, env = "LOADGEN_RECORDS_CSV")]
    pub(super) records_csv: Option<PathBuf>,
}

/// The run's amounts, in cents.
pub(super) struct Amounts {
    pub(super) otr: OtrRange,
    pub(super) admin_fee_max: i64,
    /// Granted limit of every tenor of every user.
    pub(super) limit: i64,
}

/// Smallest and largest otr.
#[derive(Debug, Clone, Copy)]
pub(super) struct OtrRange {
    pub(super) min: i64,
    pub(super) max: i64,
}

impl RunArgs {
    /// Checks what clap cannot and reads the amounts.
    pub(super) fn check(&self) -> Result<Amounts> {
        ensure!(self.requests > 0, "--requests must be at least 1");
        ensure!(self.users > 0, "--users must be at least 1");
        ensure!(
            (0.0..=1.0).contains(&self.payment_share),
            "--payment-share must be within 0..1"
        );
        ensure!(
            (0.0..=1.0).contains(&self.overpay_share),
            "--overpay-share must be within 0..1"
        );
        ensure!(
            (0.0..=1.0).contains(&self.refund_share),
            "--refund-share must be within 0..1"
        );
        ensure!(
            !self.no_poll || self.webhooks,
            "--no-poll needs --webhooks (the outcomes come from the deliveries)"
        );
        ensure!(
            !(self.no_poll && self.no_verify && self.payment_share > 0.0),
            "--no-poll reads payments' outcomes from MySQL: drop --no-verify, or use --payment-share 0"
        );
        if let Some(r) = self.rate {
            ensure!(r > 0.0 && r.is_finite(), "--rate must be positive");
        }
        if let Some(s) = self.cob_at_secs {
            ensure!(
                s >= 0.0 && s.is_finite(),
                "--cob-at-secs must be a number of seconds, 0 or more"
            );
        }
        let otr = OtrRange {
            min: rupiah_cents(&self.otr_min, "otr-min")?,
            max: rupiah_cents(&self.otr_max, "otr-max")?,
        };
        ensure!(
            otr.min >= 1 && otr.min <= otr.max,
            "--otr-min must be positive and at most --otr-max"
        );
        Ok(Amounts {
            otr,
            admin_fee_max: rupiah_cents(&self.admin_fee_max, "admin-fee-max")?,
            limit: rupiah_cents(&self.limit, "limit")?,
        })
    }

    /// Connections the load's client keeps: what the load has in flight at most (1024 for
    /// an open loop), plus the status polls, plus a few.
    pub(super) fn connections(&self) -> usize {
        self.rate
            .map_or(self.concurrency, |_| self.max_inflight.min(1024))
            + self.poll_concurrency
            + 8
    }

    /// Connections opened before the load starts: the closed loop's concurrency, or for an
    /// open loop as many as 64 requests in flight would use.
    pub(super) fn warm_connections(&self) -> usize {
        self.rate
            .map_or(self.concurrency, |_| self.max_inflight.min(64))
    }
}

/// A date as `YYYY-MM-DD`, 10 characters exactly: chrono's parser alone is lenient about
/// field widths and signs.
fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|_| s.len() == 10)
        .ok_or_else(|| format!("{s:?} is not a date of the form YYYY-MM-DD"))
}

fn rupiah_cents(s: &str, name: &str) -> Result<i64> {
    let m: shared::money::Money = s
        .parse()
        .map_err(|e| anyhow::anyhow!("--{name} {s}: {e}"))?;
    parse_cents(&m.to_string()).with_context(|| format!("--{name} {s}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn a_cob_date_is_exactly_yyyy_mm_dd() {
        assert_eq!(
            parse_date("2027-01-31"),
            Ok(NaiveDate::from_ymd_opt(2027, 1, 31).unwrap_or_default())
        );
        for bad in [
            "2027-1-31",
            "2027-02-30",
            "+2027-01-31",
            "27-01-31",
            "2027/01/31",
            "",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_close_of_business_point_needs_its_date_and_limit_changes_default_to_none() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["loadgen"], args].concat());
        assert!(parse(&["--cob-at-secs", "5"]).is_err());
        let cli = parse(&["--cob-date", "2027-01-31", "--cob-at-secs", "5"]);
        let Ok(cli) = cli else { panic!("parses") };
        assert_eq!(cli.run.cob_at_secs, Some(5.0));
        assert_eq!(cli.run.limit_changes, 0);
        let mut bad = cli.run.clone();
        bad.cob_at_secs = Some(-1.0);
        assert!(bad.check().is_err());
        assert!(cli.run.check().is_ok());
    }
}
