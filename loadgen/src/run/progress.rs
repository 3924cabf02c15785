//! What `loadgen run` shows while it works, on stderr: a bar of the requests sent (with how
//! many were accepted, became final, failed or met errors), then one of the calls becoming
//! final. indicatif draws nothing when stderr is not a terminal, so what a script captures
//! (the report and JSON line on stdout that scripts/bench.sh reads, or stderr sent to a file)
//! carries none of it.

use super::{Ctx, lock};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// A bar redrawn from the run's counters until [`Progress::finish`].
pub(super) struct Progress {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// The requests going out, and what became of them so far.
    pub(super) fn sending(ctx: &Arc<Ctx>) -> Progress {
        let c = ctx.clone();
        Progress::start("sent", ctx.args.requests as u64, move |bar| {
            let by_status = c.counters.by_status();
            let errors = by_status.values().sum::<u64>()
                + c.counters.transport_errors.load(Ordering::Relaxed);
            bar.set_position(c.done.load(Ordering::Relaxed));
            bar.set_message(format!(
                "accepted {}, final {}, failed {}, errors {errors} (429: {}, 503: {}), retries {}, contracts {}",
                c.accepted.load(Ordering::Relaxed),
                lock(&c.finals).len(),
                c.failed.load(Ordering::Relaxed),
                by_status.get(&429).copied().unwrap_or(0),
                by_status.get(&503).copied().unwrap_or(0),
                c.counters.retries.load(Ordering::Relaxed),
                lock(&c.pool).learned(),
            ));
        })
    }

    /// Every accepted call, polled to its final status.
    pub(super) fn finals(ctx: &Arc<Ctx>) -> Progress {
        let c = ctx.clone();
        Progress::start("final", ctx.accepted.load(Ordering::Relaxed), move |bar| {
            let errors: u64 = c.counters.poll_by_status().values().sum();
            bar.set_position(lock(&c.finals).len() as u64);
            bar.set_message(format!("status poll errors {errors}"));
        })
    }

    fn start<F>(label: &'static str, total: u64, update: F) -> Progress
    where
        F: Fn(&ProgressBar) + Send + 'static,
    {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let stop = Arc::new(AtomicBool::new(false));
        if bar.is_hidden() {
            return Progress {
                bar,
                stop,
                ticker: None,
            };
        }
        let style = ProgressStyle::with_template(
            "{prefix:>5} [{bar:30}] {pos}/{len} {elapsed:>4} {wide_msg}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label);
        let ticker = tokio::spawn({
            let (bar, stop) = (bar.clone(), stop.clone());
            async move {
                loop {
                    // Read before the update, so the last update comes after the work ended.
                    let stopping = stop.load(Ordering::Relaxed);
                    update(&bar);
                    if stopping {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        });
        Progress {
            bar,
            stop,
            ticker: Some(ticker),
        }
    }

    /// Draws the final counts and leaves the bar where it is.
    pub(super) async fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.await;
        }
        self.bar.finish();
    }
}
