//! How busy the engine is: requests and decisions over the last minute, counted in MySQL so
//! that the count covers every ingress and every worker (the console's health page).

use super::{DbError, to_naive};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{MySqlPool, Row};

/// The window the counts cover.
pub const WINDOW_SECONDS: u32 = 60;

/// How long after its acceptance a call's decision is still counted: the outcomes are found
/// by their time-ordered api call id (the primary key), so the count reads only the calls
/// accepted within this horizon. A decision on an older call (a dead letter replayed hours
/// later) is not counted.
const DECISION_HORIZON_MINUTES: i64 = 10;

/// Requests and decisions in the last minute.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Activity {
    pub window_seconds: u32,
    /// Audited requests (every signed request, answered by any ingress) that started in the
    /// window; rows still in an ingress's audit buffer (about 100 ms) are not yet counted.
    pub requests: u64,
    /// Asynchronous calls approved in the window.
    pub approved: u64,
    /// Asynchronous calls rejected in the window.
    pub rejected: u64,
}

/// The smallest api call id minted at `t` or later (`API_CALL_` + UUIDv7 hex: its first 12
/// hex digits are the milliseconds since the epoch).
fn first_call_id_at(t: DateTime<Utc>) -> String {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0);
    format!("API_CALL_{ms:012x}{}", "0".repeat(20))
}

pub async fn last_minute(pool: &MySqlPool, now: DateTime<Utc>) -> Result<Activity, DbError> {
    let since = now - Duration::seconds(i64::from(WINDOW_SECONDS));
    let requests: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM api_call_logs WHERE started_at >= ?")
            .bind(to_naive(since))
            .fetch_one(pool)
            .await?;
    let rows = sqlx::query(
        "SELECT status, COUNT(*) AS n FROM async_outcomes
         WHERE api_call_id >= ? AND completed_at >= ? GROUP BY status",
    )
    .bind(first_call_id_at(
        now - Duration::minutes(DECISION_HORIZON_MINUTES),
    ))
    .bind(to_naive(since))
    .fetch_all(pool)
    .await?;
    let mut activity = Activity {
        window_seconds: WINDOW_SECONDS,
        requests: u64::try_from(requests).unwrap_or(0),
        approved: 0,
        rejected: 0,
    };
    for r in rows {
        let status: String = r.try_get("status")?;
        let n = u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0);
        match status.as_str() {
            "APPROVED" => activity.approved += n,
            "REJECTED" => activity.rejected += n,
            _ => {}
        }
    }
    Ok(activity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The api call id a process minting at `ms` (plus `sub_ms` nanoseconds) could make.
    fn call_id_minted_at(ms: u64, sub_ms: u32) -> String {
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            ms / 1000,
            u32::try_from(ms % 1000).unwrap_or(0) * 1_000_000 + sub_ms,
        );
        format!("API_CALL_{}", uuid::Uuid::new_v7(ts).simple())
    }

    fn at(ms: u64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(0)).unwrap_or_default()
    }

    proptest! {
        #[test]
        fn the_bound_of_an_instant_orders_ids_by_their_millisecond(
            ms in 1_600_000_000_000u64..4_000_000_000_000u64,
            sub_ms in 0u32..1_000_000,
        ) {
            let id = call_id_minted_at(ms, sub_ms);
            prop_assert!(first_call_id_at(at(ms)) <= id, "minted at the instant: counted");
            prop_assert!(first_call_id_at(at(ms + 1)) > id, "minted before the next: not after it");
        }
    }

    #[test]
    fn the_first_call_id_of_an_instant_sorts_before_every_id_minted_then() {
        let before = Utc::now();
        let id = crate::ids::new_api_call_id();
        let bound = first_call_id_at(before);
        assert!(bound <= id, "{bound} {id}");
        assert_eq!(bound.len(), id.len());
        assert!(first_call_id_at(Utc::now() + Duration::seconds(1)) > id);
    }
}
