//! A close of business racing the load (`--cob-date`, SPEC §12): at a point of the load phase
//! loadgen itself closes every date through `--cob-date` on its own MySQL connection, with the
//! function `xyzctl close-of-business` and the workers' nightly run call, while transactions,
//! payments and refunds keep coming. For drills and benchmarks on a scratch database: it may
//! close dates that have not come yet, and closed dates never reopen.

use super::Ctx;
use super::load::{self, LoadPoint};
use crate::util::{ms, round3};
use chrono::NaiveDate;
use serde_json::{Value, json};
use shared::db::cob::{CobOutcome, close_through};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What the close of business did, and when in the load.
#[derive(Debug, Clone)]
pub(crate) struct CobRun {
    pub(crate) date: NaiveDate,
    /// Milliseconds after the load started.
    pub(crate) started_at_ms: f64,
    pub(crate) duration_ms: f64,
    /// The outcome, or why there is none.
    pub(crate) outcome: Result<CobOutcome, String>,
}

impl CobRun {
    /// `closed`, `already closed`, `busy`, or `error`.
    pub(super) fn outcome_name(&self) -> &'static str {
        match &self.outcome {
            Ok(CobOutcome::Closed { .. }) => "closed",
            Ok(CobOutcome::AlreadyClosed { .. }) => "already closed",
            Ok(CobOutcome::Busy) => "busy",
            Err(_) => "error",
        }
    }

    /// A run that could not close is a failure of the run; one that found the date closed, or
    /// another runner at work, is not (it is reported).
    pub(super) fn violation(&self) -> Option<String> {
        self.outcome
            .as_ref()
            .err()
            .map(|e| format!("close of business through {} failed: {e}", self.date))
    }

    /// The report's `cob` section.
    pub(super) fn json(&self) -> Value {
        let (installments, fees_charged, newly_overdue) = match &self.outcome {
            Ok(CobOutcome::Closed {
                installments,
                fees_charged,
                newly_overdue,
                ..
            }) => (*installments, *fees_charged, *newly_overdue),
            _ => (0, 0, 0),
        };
        let mut out = json!({
            "date": self.date,
            "started_at_ms": round3(self.started_at_ms),
            "duration_ms": round3(self.duration_ms),
            "outcome": self.outcome_name(),
            "installments": installments,
            "fees_charged": fees_charged,
            "newly_overdue": newly_overdue,
        });
        match &self.outcome {
            Ok(CobOutcome::Closed { first, last, .. }) => {
                out["first"] = json!(first);
                out["last"] = json!(last);
            }
            Ok(CobOutcome::AlreadyClosed { last_closed }) => {
                out["last_closed"] = json!(last_closed);
            }
            Ok(CobOutcome::Busy) => {}
            Err(e) => out["error"] = json!(e),
        }
        out
    }

    /// The human summary's line.
    pub(super) fn line(&self) -> String {
        let what = match &self.outcome {
            Ok(CobOutcome::Closed {
                first,
                last,
                installments,
                fees_charged,
                newly_overdue,
            }) => format!(
                "closed {first} ..= {last}: {installments} installments, {fees_charged} fees charged, {newly_overdue} newly overdue"
            ),
            Ok(CobOutcome::AlreadyClosed { last_closed }) => {
                format!("already closed (last closed {last_closed}): nothing charged")
            }
            Ok(CobOutcome::Busy) => {
                "busy: another close of business held the lock; nothing done".into()
            }
            Err(e) => format!("FAILED: {e}"),
        };
        format!(
            "through {} at {:.0} ms into the load, {:.0} ms: {what}",
            self.date, self.started_at_ms, self.duration_ms
        )
    }
}

/// Where in the load the close of business starts: `--cob-at-secs`, else half-way through.
fn start_point(cob_at_secs: Option<f64>, requests: usize) -> LoadPoint {
    match cob_at_secs {
        Some(s) => LoadPoint::Secs(s),
        None => LoadPoint::Requests(requests / 2),
    }
}

/// Connects, waits for its point of the load (or its end), then closes through `date`.
pub(super) async fn close_of_business(ctx: Arc<Ctx>, date: NaiveDate, start: Instant) -> CobRun {
    // Connected before the wait, so the time measured is the close's own.
    let pool = match shared::db::connect(&ctx.args.database_url, 3).await {
        Ok(pool) => match shared::db::ping(&pool).await {
            Ok(()) => Ok(pool),
            Err(e) => Err(format!("MySQL unreachable (--database-url): {e}")),
        },
        Err(e) => Err(format!("connecting to MySQL (--database-url): {e}")),
    };
    let point = start_point(ctx.args.cob_at_secs, ctx.args.requests);
    load::wait_for(&ctx, start, point).await;
    let began = Instant::now();
    eprintln!(
        "close of business through {date}: starting {:.2} s into the load",
        (began - start).as_secs_f64()
    );
    let outcome = match pool {
        Ok(pool) => {
            let closed = close_through(&pool, date, ctx.args.cob.options(Duration::ZERO))
                .await
                .map_err(|e| format!("{:#}", anyhow::Error::new(e)));
            pool.close().await;
            closed
        }
        Err(e) => Err(e),
    };
    let run = CobRun {
        date,
        started_at_ms: ms(began - start),
        duration_ms: ms(began.elapsed()),
        outcome,
    };
    eprintln!("close of business {}", run.line());
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(outcome: Result<CobOutcome, String>) -> CobRun {
        CobRun {
            date: NaiveDate::from_ymd_opt(2027, 1, 20).unwrap_or_default(),
            started_at_ms: 1500.25,
            duration_ms: 80.5,
            outcome,
        }
    }

    #[test]
    fn the_cob_section_names_the_outcome_and_counts_only_what_was_closed() {
        let d = |day| NaiveDate::from_ymd_opt(2027, 1, day).unwrap_or_default();
        let closed = run(Ok(CobOutcome::Closed {
            first: d(1),
            last: d(20),
            installments: 30,
            fees_charged: 12,
            newly_overdue: 10,
        }))
        .json();
        assert_eq!(closed["outcome"], "closed");
        assert_eq!(closed["date"], "2027-01-20");
        assert_eq!(
            (
                &closed["installments"],
                &closed["fees_charged"],
                &closed["newly_overdue"]
            ),
            (&json!(30), &json!(12), &json!(10))
        );
        assert_eq!(closed["started_at_ms"], json!(1500.25));
        let again = run(Ok(CobOutcome::AlreadyClosed { last_closed: d(25) }));
        assert_eq!(again.json()["outcome"], "already closed");
        assert_eq!(again.json()["fees_charged"], 0);
        assert_eq!(again.violation(), None);
        assert_eq!(run(Ok(CobOutcome::Busy)).json()["outcome"], "busy");
        let failed = run(Err("deadlock".into()));
        assert_eq!(failed.json()["outcome"], "error");
        assert!(failed.violation().is_some_and(|v| v.contains("deadlock")));
    }

    #[test]
    fn by_default_the_close_starts_half_way_through_the_load() {
        assert!(matches!(start_point(None, 2001), LoadPoint::Requests(1000)));
        assert!(matches!(start_point(Some(7.5), 2001), LoadPoint::Secs(s) if s == 7.5));
    }
}
