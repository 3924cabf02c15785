//! Consumers that die are started again: a panic in one consumer task (a bug) must not leave
//! the process running with fewer consumers than configured, silently.

use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// How long a restarted consumer waits first: a bug that panics at once must not spin.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// Runs `consumer()` until it returns while `stop` is set; a consumer that ends any other way
/// (a panic, or returning early) is counted in `xyz_consumer_restarts_total` and started
/// again after a pause. Returns how many times it restarted.
pub(crate) async fn supervise<F, Fut>(index: usize, stop: watch::Receiver<bool>, consumer: F) -> u64
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut restarts = 0;
    loop {
        let ended = tokio::spawn(consumer()).await;
        if *stop.borrow() {
            return restarts;
        }
        match ended {
            Err(e) => {
                tracing::error!(consumer = index, error = %e, "consumer task died; restarting it")
            }
            Ok(()) => tracing::error!(consumer = index, "consumer ended early; restarting it"),
        }
        metrics::counter!("xyz_consumer_restarts_total").increment(1);
        restarts += 1;
        let mut stop = stop.clone();
        tokio::select! {
            () = tokio::time::sleep(RESTART_PAUSE) => {}
            _ = stop.wait_for(|s| *s) => return restarts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_consumer_that_panics_is_started_again_until_the_stop() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        let stop_after_third = Arc::new(stop_tx);
        let stopper = stop_after_third.clone();
        let restarts = supervise(0, stop_rx, move || {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            let stopper = stopper.clone();
            async move {
                if n < 3 {
                    panic!("consumer {n} dies");
                }
                // The third one runs until the stop, then returns as a consumer does.
                let _ = stopper.send(true);
            }
        })
        .await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert_eq!(restarts, 2);
    }
}
