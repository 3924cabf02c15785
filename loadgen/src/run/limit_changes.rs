//! Limit changes in the mix (`--limit-changes`, SPEC §13): an admin sends `PATCH
//! /users/{user_id}/limits` spread evenly over the load, racing the workers' debits of the
//! same users. Each must answer 200 (applied) or 400 `LIMIT_BELOW_USED` (nothing changed); the
//! verifier then finds each applied one in `limit_changes`.

use super::load::{self, LoadPoint};
use super::{Ctx, lock};
use crate::api::Resp;
use crate::util::Rng;
use rust_decimal::Decimal;
use shared::contract::Tenor;
use shared::money::Money;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What became of one PATCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PatchOutcome {
    /// 200: every named tenor has its new granted limit (one already at its value is not
    /// recorded as a change).
    Applied { api_call_id: String },
    /// 400 `LIMIT_BELOW_USED`: nothing changed.
    BelowUsed { api_call_id: String },
    /// Any other answer, or retries exhausted (status 0).
    Failed { status: u16, detail: String },
}

/// One PATCH of the run: whose limits, the new granted limit of each tenor named, and its
/// answer.
#[derive(Debug, Clone)]
pub(crate) struct LimitPatch {
    pub(crate) user_id: String,
    pub(crate) requested: Vec<(Tenor, Money)>,
    pub(crate) outcome: PatchOutcome,
}

/// The PATCHes by answer, for the report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(super) struct LimitChangeCounts {
    pub(super) sent: u64,
    pub(super) applied: u64,
    pub(super) below_used: u64,
    pub(super) failed: u64,
}

impl LimitChangeCounts {
    pub(super) fn of(patches: &[LimitPatch]) -> LimitChangeCounts {
        let mut c = LimitChangeCounts::default();
        for p in patches {
            c.sent += 1;
            match p.outcome {
                PatchOutcome::Applied { .. } => c.applied += 1,
                PatchOutcome::BelowUsed { .. } => c.below_used += 1,
                PatchOutcome::Failed { .. } => c.failed += 1,
            }
        }
        c
    }
}

/// How many of the load's requests are due before the `k`-th of `n` limit changes: the
/// middle of the k-th of n equal slices of the load, so they spread evenly over it and the
/// last does not wait for the load's last request.
pub(super) fn due_after(k: usize, n: usize, requests: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let at = (2 * k as u128 + 1) * requests as u128 / (2 * n as u128);
    usize::try_from(at).unwrap_or(usize::MAX)
}

/// A new granted limit within 50%..=150% of `created_cents` (the granted limit at creation),
/// uniform over whole cents, so it has 2 decimals and never leaves the range by rounding.
pub(super) fn new_granted(rng: &mut Rng, created_cents: i64) -> Money {
    let created = i128::from(created_cents.max(0));
    let lo = (created + 1) / 2;
    let hi = created * 3 / 2;
    // hi − lo + 1 <= created + 1 <= i64::MAX + 1: fits a u64.
    let span = u64::try_from(hi - lo + 1).unwrap_or(u64::MAX);
    let cents = lo + i128::from(rng.next_u64() % span);
    Decimal::try_from_i128_with_scale(cents, 2)
        .ok()
        .and_then(|d| Money::new(d).ok())
        .unwrap_or(Money::ZERO)
}

/// A random non-empty subset of the four tenors (each of the 15 equally likely), each with a
/// new granted limit drawn by [`new_granted`], in the body's field order.
pub(super) fn draw_patch(rng: &mut Rng, created_cents: i64) -> Vec<(Tenor, Money)> {
    let mask = rng.range_i64(1, 15);
    Tenor::ALL
        .into_iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, tenor)| (tenor, new_granted(rng, created_cents)))
        .collect()
}

/// The PATCH body: each tenor's field (named as its granted column) and its value as a JSON
/// number with 2 decimals.
pub(super) fn patch_body(requested: &[(Tenor, Money)]) -> String {
    let fields: Vec<String> = requested
        .iter()
        .map(|(tenor, value)| format!(r#""{}":{value}"#, tenor.limit_columns().0))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// The answer to a PATCH, as the contract allows it: 200, or 400 `LIMIT_BELOW_USED`, each with
/// its api call id; anything else failed.
pub(super) fn judge(r: &Resp) -> PatchOutcome {
    let call = r.api_call_id().map(str::to_owned);
    match (r.status, r.action(), call) {
        (200, _, Some(api_call_id)) => PatchOutcome::Applied { api_call_id },
        (400, "LIMIT_BELOW_USED", Some(api_call_id)) => PatchOutcome::BelowUsed { api_call_id },
        (status, action, _) => PatchOutcome::Failed {
            status,
            detail: format!("{action} {}", r.data()),
        },
    }
}

/// Sends the run's `--limit-changes` PATCHes, each when the load reaches its point
/// ([`due_after`]), each without waiting for the ones before; returns once all are answered.
pub(super) async fn change_limits(ctx: Arc<Ctx>, start: Instant) {
    let n = ctx.args.limit_changes;
    let mut sent = JoinSet::new();
    for k in 0..n {
        let due = due_after(k, n, ctx.args.requests);
        load::wait_for(&ctx, start, LoadPoint::Requests(due)).await;
        let c = ctx.clone();
        sent.spawn(async move {
            let patch = send_one(&c, k).await;
            lock(&c.limit_patches).push(patch);
        });
    }
    while sent.join_next().await.is_some() {}
}

/// The `k`-th PATCH: a random user of the run, a random subset of its tenors.
async fn send_one(ctx: &Ctx, k: usize) -> LimitPatch {
    let mut rng = Rng::new(
        ctx.seed ^ 0x11A1_7C4A_96E5_0D3B ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let user_id = ctx.users[rng.index(ctx.users.len())].clone();
    let requested = draw_patch(&mut rng, ctx.limit_at_creation);
    let path = format!("/users/{user_id}/limits");
    // An external id is signed, never claimed: it makes each PATCH's signature its own.
    let external_id = format!("LG-{}-L-{k}", ctx.run_id);
    let answer = ctx
        .poll_api
        .patch(
            &ctx.admin,
            &path,
            &external_id,
            patch_body(&requested).as_bytes(),
            &ctx.policy,
            &ctx.counters,
        )
        .await;
    let outcome = match answer {
        Ok(r) => judge(&r),
        Err(detail) => PatchOutcome::Failed { status: 0, detail },
    };
    if let PatchOutcome::Failed { status, detail } = &outcome
        && *status != 0
    {
        ctx.counters
            .count_status(*status, || format!("PATCH {path}: {status} {detail}"));
    }
    LimitPatch {
        user_id,
        requested,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

    #[test]
    fn limit_changes_fall_at_the_middles_of_equal_slices_of_the_load() {
        assert_eq!(
            (0..4).map(|k| due_after(k, 4, 1000)).collect::<Vec<_>>(),
            vec![125, 375, 625, 875]
        );
        assert_eq!(due_after(0, 1, 2000), 1000);
        // Never at or past the load's last request, so none waits for the load to end.
        for (n, requests) in [(1, 1), (3, 2), (7, 100), (1000, 999), (50, 2000)] {
            let due: Vec<usize> = (0..n).map(|k| due_after(k, n, requests)).collect();
            assert!(due.windows(2).all(|w| w[0] <= w[1]), "{due:?}");
            assert!(due.iter().all(|d| *d < requests), "{n} of {requests}");
        }
        // Evenly: the gaps differ by one request at most.
        let due: Vec<usize> = (0..7).map(|k| due_after(k, 7, 1000)).collect();
        let gaps: Vec<usize> = due.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter()
                .max()
                .zip(gaps.iter().min())
                .is_some_and(|(a, b)| a - b <= 1)
        );
        assert_eq!(due_after(0, 0, 1000), 0);
    }

    #[test]
    fn a_new_granted_limit_stays_within_half_and_one_and_a_half_of_the_first_with_2_decimals() {
        let mut rng = Rng::new(11);
        for created in [0, 1, 2, 3, 99, 10_000, 10_000_000_000, i64::MAX] {
            let c = Decimal::new(created, 2);
            let (lo, hi) = (c / Decimal::TWO, c * Decimal::new(15, 1));
            let (mut below, mut above) = (false, false);
            for _ in 0..2000 {
                let g = new_granted(&mut rng, created).value();
                assert!(g >= lo && g <= hi, "{g} outside {lo}..={hi}");
                assert_eq!(g.scale(), 2, "{g}");
                below |= g < c;
                above |= g > c;
            }
            // Both ways, wherever whole cents allow.
            if created >= 10_000 {
                assert!(below && above, "{created}");
            }
        }
        // Whole cents only: 0.03 gives 0.02 ..= 0.04.
        let seen: HashSet<Money> = (0..500).map(|_| new_granted(&mut rng, 3)).collect();
        assert_eq!(seen, [2, 3, 4].into_iter().map(Money::from_cents).collect());
    }

    #[test]
    fn a_patch_names_a_non_empty_subset_of_the_tenors_in_field_order_every_subset_in_time() {
        let mut rng = Rng::new(5);
        let mut subsets = HashSet::new();
        for _ in 0..2000 {
            let p = draw_patch(&mut rng, 10_000_000_000);
            assert!(!p.is_empty() && p.len() <= 4);
            let tenors: Vec<Tenor> = p.iter().map(|(t, _)| *t).collect();
            assert!(tenors.windows(2).all(|w| w[0] < w[1]), "{tenors:?}");
            subsets.insert(tenors);
        }
        assert_eq!(subsets.len(), 15);
    }

    #[test]
    fn the_body_names_each_tenors_field_with_a_2_decimal_number() {
        let body = patch_body(&[
            (Tenor::One, Money::from_cents(5_000_000)),
            (Tenor::Six, Money::from_cents(12_345)),
        ]);
        assert_eq!(body, r#"{"limit_one_month":50000.00,"limit_sixth":123.45}"#);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(parsed["limit_sixth"].to_string(), "123.45");
    }

    #[test]
    fn only_200_and_limit_below_used_are_answers_a_limit_change_may_get() {
        let resp = |status: u16, action: &str| Resp {
            status,
            retry_after: None,
            body: json!({"message_action": action, "message_data": "x", "api_call_id": "API_CALL_1"}),
        };
        assert_eq!(
            judge(&resp(200, "SUCCESS")),
            PatchOutcome::Applied {
                api_call_id: "API_CALL_1".into()
            }
        );
        assert_eq!(
            judge(&resp(400, "LIMIT_BELOW_USED")),
            PatchOutcome::BelowUsed {
                api_call_id: "API_CALL_1".into()
            }
        );
        for (status, action) in [
            (400, "INVALID_VALUE"),
            (404, "NOT_FOUND"),
            (409, "CONFLICT_EXTERNAL_ID"),
            (500, "INTERNAL"),
        ] {
            assert!(matches!(
                judge(&resp(status, action)),
                PatchOutcome::Failed { status: s, .. } if s == status
            ));
        }
        let anonymous = Resp {
            status: 200,
            retry_after: None,
            body: json!("<html>"),
        };
        assert!(matches!(
            judge(&anonymous),
            PatchOutcome::Failed { status: 200, .. }
        ));
        let patches: Vec<LimitPatch> = [
            judge(&resp(200, "SUCCESS")),
            judge(&resp(400, "LIMIT_BELOW_USED")),
            judge(&resp(200, "SUCCESS")),
            judge(&resp(404, "NOT_FOUND")),
        ]
        .into_iter()
        .map(|outcome| LimitPatch {
            user_id: "USR_1".into(),
            requested: vec![],
            outcome,
        })
        .collect();
        assert_eq!(
            LimitChangeCounts::of(&patches),
            LimitChangeCounts {
                sent: 4,
                applied: 2,
                below_used: 1,
                failed: 1
            }
        );
    }
}
