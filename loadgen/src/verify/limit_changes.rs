//! SPEC §13 after the run, for the run's users: each (user, tenor)'s `limit_changes` rows, in
//! the order they were made, chain its granted limit from its value at creation to its value
//! now; each applied PATCH left a row for every tenor it changed, and a refused one
//! (`LIMIT_BELOW_USED`) none.

use super::{dec, rows_in};
use crate::run::{LimitPatch, PatchOutcome};
use anyhow::Result;
use rust_decimal::Decimal;
use shared::contract::Tenor;
use sqlx::{MySqlPool, Row};
use std::collections::HashMap;

/// One `limit_changes` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChangeRow {
    pub(super) old_granted: Decimal,
    pub(super) new_granted: Decimal,
    pub(super) api_call_id: String,
}

/// Each user's changes of each tenor, in the order they were made.
pub(super) type Chains = HashMap<(String, Tenor), Vec<ChangeRow>>;

pub(super) async fn limit_changes(
    pool: &MySqlPool,
    users: &[String],
    created: Decimal,
    patches: &[LimitPatch],
    v: &mut Vec<String>,
) -> Result<()> {
    let mut chains: Chains = HashMap::new();
    for r in rows_in(
        pool,
        "SELECT user_id, tenor, old_granted, new_granted, api_call_id FROM limit_changes WHERE user_id IN",
        users,
        // The id is the order the changes were made in (each under the user's row lock).
        "ORDER BY user_id, id",
    )
    .await?
    {
        let user: String = r.try_get("user_id")?;
        let months: u8 = r.try_get("tenor")?;
        let Some(tenor) = Tenor::from_months(u32::from(months)) else {
            v.push(format!("limit_changes has a row of user {user} for tenor {months}"));
            continue;
        };
        chains.entry((user, tenor)).or_default().push(ChangeRow {
            old_granted: dec(&r, "old_granted")?,
            new_granted: dec(&r, "new_granted")?,
            api_call_id: r.try_get("api_call_id")?,
        });
    }
    for r in rows_in(
        pool,
        "SELECT user_id, limit_one_month, limit_two_month, limit_three_month, limit_sixth
         FROM user_limit_balances WHERE user_id IN",
        users,
        "",
    )
    .await?
    {
        let user: String = r.try_get("user_id")?;
        for tenor in Tenor::ALL {
            let current = dec(&r, tenor.limit_columns().0)?;
            let rows = chains
                .get(&(user.clone(), tenor))
                .map(Vec::as_slice)
                .unwrap_or_default();
            v.extend(chain_violations(&user, tenor, created, current, rows));
        }
    }
    v.extend(patch_violations(patches, &chains, created));
    Ok(())
}

/// Where a (user, tenor)'s chain breaks: each change starts where the one before it left the
/// granted limit (the first, at its value at creation) and changes it, and the last leaves it
/// at its value now (with no change, it is still its value at creation).
pub(super) fn chain_violations(
    user: &str,
    tenor: Tenor,
    created: Decimal,
    current: Decimal,
    rows: &[ChangeRow],
) -> Vec<String> {
    let m = tenor.months();
    let mut v = Vec::new();
    let mut at = created;
    for (i, r) in rows.iter().enumerate() {
        if r.old_granted != at {
            v.push(format!(
                "user {user} tenor {m}: limit change #{} ({}) starts from {}, the granted limit was {at}",
                i + 1,
                r.api_call_id,
                r.old_granted
            ));
        }
        if r.new_granted == r.old_granted {
            v.push(format!(
                "user {user} tenor {m}: limit change #{} ({}) records {} → {}, no change",
                i + 1,
                r.api_call_id,
                r.old_granted,
                r.new_granted
            ));
        }
        at = r.new_granted;
    }
    if at != current {
        v.push(if rows.is_empty() {
            format!(
                "user {user} tenor {m}: granted limit {current}, yet no limit change since its creation at {created}"
            )
        } else {
            format!(
                "user {user} tenor {m}: granted limit {current}, yet its {} limit change(s) end at {at}",
                rows.len()
            )
        });
    }
    v
}

/// Each applied PATCH left, for every tenor it named, one row of its call setting that value,
/// unless the tenor already had it (then no row, and the tenor's chain holds that value
/// somewhere); no row of its call is of another user or tenor. A refused PATCH left no row.
pub(super) fn patch_violations(
    patches: &[LimitPatch],
    chains: &Chains,
    created: Decimal,
) -> Vec<String> {
    let mut by_call: HashMap<&str, Vec<(&str, Tenor, &ChangeRow)>> = HashMap::new();
    for ((user, tenor), rows) in chains {
        for r in rows {
            by_call
                .entry(r.api_call_id.as_str())
                .or_default()
                .push((user.as_str(), *tenor, r));
        }
    }
    let mut v = Vec::new();
    for p in patches {
        match &p.outcome {
            PatchOutcome::Applied { api_call_id } => {
                let rows = by_call
                    .get(api_call_id.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for (user, tenor, _) in rows {
                    if *user != p.user_id || !p.requested.iter().any(|(t, _)| t == tenor) {
                        v.push(format!(
                            "limit change of {api_call_id} on user {user} tenor {}, which that PATCH (of user {}) did not name",
                            tenor.months(),
                            p.user_id
                        ));
                    }
                }
                for (tenor, value) in &p.requested {
                    let value = value.value();
                    let mine: Vec<&ChangeRow> = rows
                        .iter()
                        .filter(|(user, t, _)| *user == p.user_id && t == tenor)
                        .map(|(_, _, r)| *r)
                        .collect();
                    let what = format!(
                        "PATCH {api_call_id} (200) set user {} tenor {} to {value}",
                        p.user_id,
                        tenor.months()
                    );
                    match mine.as_slice() {
                        [] => {
                            let held = value == created
                                || chains
                                    .get(&(p.user_id.clone(), *tenor))
                                    .is_some_and(|c| c.iter().any(|r| r.new_granted == value));
                            if !held {
                                v.push(format!(
                                    "{what}, yet no limit change carries it and the granted limit never was {value}"
                                ));
                            }
                        }
                        [r] if r.new_granted != value => v.push(format!(
                            "{what}, yet its limit change sets {}",
                            r.new_granted
                        )),
                        [_] => {}
                        more => v.push(format!("{what}: {} limit changes carry it", more.len())),
                    }
                }
            }
            PatchOutcome::BelowUsed { api_call_id } => {
                if let Some(rows) = by_call.get(api_call_id.as_str()) {
                    v.push(format!(
                        "PATCH {api_call_id} answered 400 LIMIT_BELOW_USED, yet {} limit change(s) carry it",
                        rows.len()
                    ));
                }
            }
            // Nothing is known of what it did.
            PatchOutcome::Failed { .. } => {}
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::money::Money;

    fn d(cents: i64) -> Decimal {
        Decimal::new(cents, 2)
    }

    fn row(old: i64, new: i64, call: &str) -> ChangeRow {
        ChangeRow {
            old_granted: d(old),
            new_granted: d(new),
            api_call_id: call.into(),
        }
    }

    fn patch(user: &str, requested: &[(Tenor, i64)], outcome: PatchOutcome) -> LimitPatch {
        LimitPatch {
            user_id: user.into(),
            requested: requested
                .iter()
                .map(|(t, c)| (*t, Money::from_cents(*c)))
                .collect(),
            outcome,
        }
    }

    fn applied(call: &str) -> PatchOutcome {
        PatchOutcome::Applied {
            api_call_id: call.into(),
        }
    }

    #[test]
    fn a_chain_runs_from_the_granted_limit_at_creation_to_the_granted_limit_now() {
        let rows = [
            row(1000, 1200, "A"),
            row(1200, 600, "B"),
            row(600, 1500, "C"),
        ];
        assert!(chain_violations("U", Tenor::Three, d(1000), d(1500), &rows).is_empty());
        // No change: still its value at creation.
        assert!(chain_violations("U", Tenor::Three, d(1000), d(1000), &[]).is_empty());
        let v = chain_violations("U", Tenor::Three, d(1000), d(900), &[]);
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("no limit change"), "{v:?}");
    }

    #[test]
    fn a_chain_breaks_at_a_wrong_start_a_gap_a_non_change_or_a_wrong_end() {
        // Starts from something else than the creation value.
        let v = chain_violations("U", Tenor::One, d(1000), d(1200), &[row(900, 1200, "A")]);
        assert!(
            v.len() == 1 && v[0].contains("#1 (A) starts from 9.00"),
            "{v:?}"
        );
        // A gap: B does not start where A left it (a lost or reordered change).
        let v = chain_violations(
            "U",
            Tenor::One,
            d(1000),
            d(700),
            &[row(1000, 1200, "A"), row(1100, 700, "B")],
        );
        assert!(v.len() == 1 && v[0].contains("#2 (B)"), "{v:?}");
        // A row that changes nothing.
        let v = chain_violations("U", Tenor::One, d(1000), d(1000), &[row(1000, 1000, "A")]);
        assert!(v.len() == 1 && v[0].contains("no change"), "{v:?}");
        // The granted limit now is not where the changes left it.
        let v = chain_violations("U", Tenor::Six, d(1000), d(1300), &[row(1000, 1200, "A")]);
        assert!(v.len() == 1 && v[0].contains("end at 12.00"), "{v:?}");
    }

    #[test]
    fn an_applied_patch_has_a_row_per_tenor_it_changed_and_a_refused_one_none() {
        let mut chains = Chains::new();
        chains.insert(
            ("U1".into(), Tenor::One),
            vec![row(1000, 1200, "A"), row(1200, 800, "C")],
        );
        chains.insert(("U1".into(), Tenor::Two), vec![row(1000, 1400, "A")]);
        let patches = [
            patch(
                "U1",
                &[(Tenor::One, 1200), (Tenor::Two, 1400)],
                applied("A"),
            ),
            // Tenor 3 already held 1000 (its value at creation): no row is right.
            patch(
                "U1",
                &[(Tenor::One, 800), (Tenor::Three, 1000)],
                applied("C"),
            ),
            // Tenor 1 was 1200 when D came after A: its value then, no row.
            patch("U1", &[(Tenor::One, 1200)], applied("D")),
            patch(
                "U1",
                &[(Tenor::Six, 1)],
                PatchOutcome::BelowUsed {
                    api_call_id: "E".into(),
                },
            ),
            patch(
                "U1",
                &[(Tenor::Six, 5)],
                PatchOutcome::Failed {
                    status: 0,
                    detail: "gave up".into(),
                },
            ),
        ];
        assert_eq!(
            patch_violations(&patches, &chains, d(1000)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_missing_a_wrong_or_a_stray_row_of_a_patch_is_found() {
        let mut chains = Chains::new();
        chains.insert(("U1".into(), Tenor::One), vec![row(1000, 1100, "A")]);
        chains.insert(("U2".into(), Tenor::Two), vec![row(1000, 900, "B")]);
        chains.insert(("U1".into(), Tenor::Six), vec![row(1000, 1300, "E")]);
        let below = |call: &str| PatchOutcome::BelowUsed {
            api_call_id: call.into(),
        };
        let cases = [
            // Its row sets another value.
            (
                patch("U1", &[(Tenor::One, 1150)], applied("A")),
                "sets 11.00",
            ),
            // No row, and the tenor never held the value.
            (
                patch("U1", &[(Tenor::Three, 1234)], applied("Z")),
                "never was 12.34",
            ),
            // Its row is of another user.
            (
                patch("U1", &[(Tenor::Two, 900)], applied("B")),
                "did not name",
            ),
            // Refused, yet recorded.
            (
                patch("U1", &[(Tenor::Six, 1300)], below("E")),
                "LIMIT_BELOW_USED",
            ),
        ];
        for (p, expected) in cases {
            let v = patch_violations(std::slice::from_ref(&p), &chains, d(1000));
            assert!(
                v.iter().any(|m| m.contains(expected)),
                "{expected}: {v:?} for {p:?}"
            );
        }
    }
}
