//! The nightly close of business (SPEC §12): wakes shortly after 00:00 Asia/Jakarta and closes
//! every date up to yesterday. Every worker process runs this task; the runner lock in
//! `shared::db::cob` lets one of them run and the others skip.

use crate::config::WorkerConfig;
use chrono::{Duration, NaiveTime, Utc};
use shared::db::cob::{CobOptions, CobOutcome, close_through};
use sqlx::MySqlPool;
use tokio::sync::watch;

/// After midnight, so a clock a little behind still sees the new date.
const WAKE_AFTER_MIDNIGHT: Duration = Duration::minutes(5);

pub(crate) fn options(config: &WorkerConfig) -> CobOptions {
    config.cob.options(std::time::Duration::ZERO)
}

/// How long until the next wake: 00:05 Asia/Jakarta of the next day.
fn until_next_wake(now: chrono::DateTime<Utc>) -> std::time::Duration {
    let today = shared::cob::jakarta_date(now);
    let next = (today + Duration::days(1))
        .and_time(NaiveTime::MIN)
        .and_local_timezone(chrono_tz::Asia::Jakarta)
        .single()
        .map(|t| t.with_timezone(&Utc) + WAKE_AFTER_MIDNIGHT);
    next.and_then(|t| (t - now).to_std().ok())
        .unwrap_or(std::time::Duration::from_secs(3600))
}

pub(crate) async fn schedule(
    pool: MySqlPool,
    options: CobOptions,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(until_next_wake(Utc::now())) => {}
            _ = stop.changed() => return,
        }
        let yesterday = shared::cob::jakarta_date(Utc::now()) - Duration::days(1);
        match close_through(&pool, yesterday, options).await {
            Ok(CobOutcome::Closed {
                first,
                last,
                installments,
                fees_charged,
                newly_overdue,
            }) => {
                tracing::info!(%first, %last, installments, fees_charged, newly_overdue, "close of business done");
            }
            Ok(CobOutcome::AlreadyClosed { last_closed }) => {
                tracing::info!(%last_closed, "close of business: already closed");
            }
            Ok(CobOutcome::Busy) => tracing::info!("close of business runs in another process"),
            // The next night's run closes the dates left open; an operator can run xyzctl now.
            Err(e) => tracing::error!(error = %e, "close of business failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_run_wakes_five_minutes_after_midnight_in_jakarta() {
        // 16:00 UTC is 23:00 in Jakarta: the wake is 00:05 Jakarta, 17:05 UTC.
        let now = Utc
            .with_ymd_and_hms(2026, 3, 1, 16, 0, 0)
            .single()
            .unwrap_or_default();
        assert_eq!(
            until_next_wake(now),
            std::time::Duration::from_secs(65 * 60)
        );
    }
}
