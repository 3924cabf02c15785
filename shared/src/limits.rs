//! Changing a user's granted limits (SPEC §13), decided on the limits as they are: which
//! tenors change, and where each one's available limit lands. What is in use
//! (`granted − available`) stays in use, so a new granted below it is refused. Pure: the
//! conditional `UPDATE` in `db::limit_changes` applies the plan under the row's lock.

use crate::contract::Tenor;
use crate::db::users::{LimitPair, LimitsMap};
use crate::money::Money;

/// One tenor's granted limit changed: before, and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitChange {
    pub tenor: Tenor,
    pub old: LimitPair,
    pub new: LimitPair,
}

/// The first tenor, in `Tenor::ALL` order, whose new granted limit is below what is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BelowUsed(pub Tenor);

/// The changes `requested` makes to `current`: a tenor absent from `requested`, or asked for
/// its current granted limit, does not change. All or nothing: one tenor below what is in use
/// refuses the whole request.
pub fn plan(
    current: &LimitsMap,
    requested: &[(Tenor, Money)],
) -> Result<Vec<LimitChange>, BelowUsed> {
    let mut changes = Vec::new();
    for tenor in Tenor::ALL {
        let Some(&(_, granted)) = requested.iter().find(|(t, _)| *t == tenor) else {
            continue;
        };
        let Some(old) = current.get(tenor) else {
            continue;
        };
        if granted == old.granted {
            continue;
        }
        // available <= granted holds in the table (a CHECK constraint), so `used` exists.
        let used = old
            .granted
            .checked_sub(old.available)
            .ok_or(BelowUsed(tenor))?;
        let available = granted.checked_sub(used).ok_or(BelowUsed(tenor))?;
        changes.push(LimitChange {
            tenor,
            old,
            new: LimitPair { granted, available },
        });
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn money(s: &str) -> Money {
        s.parse().expect("money")
    }

    fn limits(pairs: [(&str, &str); 4]) -> LimitsMap {
        let mut map = BTreeMap::new();
        for (tenor, (granted, available)) in Tenor::ALL.into_iter().zip(pairs) {
            map.insert(
                tenor.key(),
                LimitPair {
                    granted: money(granted),
                    available: money(available),
                },
            );
        }
        LimitsMap(map)
    }

    #[test]
    fn a_raise_and_a_cut_move_available_by_the_difference() {
        let current = limits([
            ("1000.00", "600.00"),
            ("500.00", "500.00"),
            ("0.00", "0.00"),
            ("100.00", "100.00"),
        ]);
        let changes = plan(
            &current,
            &[
                (Tenor::One, money("1500")),
                (Tenor::Two, money("200.50")),
                (Tenor::Six, money("100")),
            ],
        )
        .expect("within use");
        assert_eq!(changes.len(), 2, "the equal value is no change");
        assert_eq!(changes[0].tenor, Tenor::One);
        assert_eq!(changes[0].new.granted, money("1500.00"));
        assert_eq!(changes[0].new.available, money("1100.00"));
        assert_eq!(changes[1].tenor, Tenor::Two);
        assert_eq!(changes[1].new.available, money("200.50"));
    }

    #[test]
    fn a_cut_to_exactly_what_is_used_leaves_nothing_available() {
        let current = limits([("1000", "600"), ("0", "0"), ("0", "0"), ("0", "0")]);
        let changes = plan(&current, &[(Tenor::One, money("400"))]).expect("equal to used");
        assert_eq!(changes[0].new.available, Money::from_cents(0));
        assert_eq!(
            plan(&current, &[(Tenor::One, money("399.99"))]),
            Err(BelowUsed(Tenor::One))
        );
    }

    #[test]
    fn the_first_tenor_below_use_is_named_whatever_the_request_order() {
        let current = limits([("10", "10"), ("10", "5"), ("10", "10"), ("10", "0")]);
        let requested = [
            (Tenor::Six, money("1")),
            (Tenor::One, money("20")),
            (Tenor::Two, money("1")),
        ];
        assert_eq!(plan(&current, &requested), Err(BelowUsed(Tenor::Two)));
    }

    fn arb_pair() -> impl Strategy<Value = LimitPair> {
        (0i64..1_000_000, 0i64..1_000_000).prop_map(|(a, b)| LimitPair {
            granted: Money::from_cents(a.max(b)),
            available: Money::from_cents(a.min(b)),
        })
    }

    proptest! {
        #[test]
        fn a_plan_keeps_what_is_used_or_names_the_first_tenor_below_it(
            pairs in proptest::array::uniform4(arb_pair()),
            asked in proptest::array::uniform4(proptest::option::of(0i64..1_000_000)),
        ) {
            let current = LimitsMap(
                Tenor::ALL.iter().zip(pairs).map(|(t, p)| (t.key(), p)).collect(),
            );
            let requested: Vec<(Tenor, Money)> = Tenor::ALL
                .iter()
                .zip(asked)
                .filter_map(|(t, a)| a.map(|c| (*t, Money::from_cents(c))))
                .collect();
            let used = |p: &LimitPair| p.granted.value() - p.available.value();
            let first_below = requested
                .iter()
                .find(|(t, g)| g.value() < used(&pairs[Tenor::ALL.iter().position(|x| x == t).unwrap_or(0)]))
                .map(|(t, _)| *t);
            match plan(&current, &requested) {
                Err(BelowUsed(t)) => prop_assert_eq!(Some(t), first_below),
                Ok(changes) => {
                    prop_assert_eq!(first_below, None);
                    let changed = requested
                        .iter()
                        .filter(|(t, g)| current.get(*t).map(|p| p.granted) != Some(*g))
                        .count();
                    prop_assert_eq!(changes.len(), changed);
                    for c in changes {
                        prop_assert_eq!(used(&c.new), used(&c.old));
                        prop_assert!(c.new.available.value() <= c.new.granted.value());
                        prop_assert!(c.new.granted != c.old.granted);
                    }
                }
            }
        }
    }
}
