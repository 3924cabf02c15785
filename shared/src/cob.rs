//! Close of business (SPEC §12), the pure part: the business date in Asia/Jakarta and the
//! late-fee rule. The SQL that applies it is `db::cob`.

use crate::money::{Money, round2};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

/// Days between charges after the first day overdue.
pub const FEE_PERIOD_DAYS: i64 = 30;

/// The calendar date in Asia/Jakarta at `now`: the business date.
pub fn jakarta_date(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&chrono_tz::Asia::Jakarta).date_naive()
}

/// Whether COB for a date `days_late` days after the due date charges a fee: days 1, 31, 61, ….
pub fn is_fee_day(days_late: i64) -> bool {
    days_late >= 1 && (days_late - 1) % FEE_PERIOD_DAYS == 0
}

/// The due dates whose installments COB for `date` charges, latest first, down to `earliest`.
pub fn fee_due_dates(date: NaiveDate, earliest: NaiveDate) -> Vec<NaiveDate> {
    let mut dates = Vec::new();
    let mut due = date - chrono::Duration::days(1);
    while due >= earliest {
        dates.push(due);
        due -= chrono::Duration::days(FEE_PERIOD_DAYS);
    }
    dates
}

/// An installment as COB sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overdue {
    pub harga: Money,
    /// harga − terbayar − dibatalkan.
    pub unpaid: Money,
    /// Σ fees charged so far.
    pub denda: Money,
}

/// The late fee COB charges an installment `days_late` days past its due date: `round2(unpaid
/// × percent / 100)` on fee days, reduced so Σ fees never passes `harga`; zero otherwise.
pub fn late_fee(installment: Overdue, days_late: i64, percent: Decimal) -> Money {
    if !is_fee_day(days_late) || installment.unpaid.is_zero() {
        return Money::ZERO;
    }
    let room = installment.harga.value() - installment.denda.value();
    let fee = round2(installment.unpaid.value() * percent / Decimal::ONE_HUNDRED)
        .min(room)
        .max(Decimal::ZERO);
    Money::new(fee).unwrap_or(Money::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(cents: i64) -> Money {
        Money::from_cents(cents)
    }

    #[test]
    fn fees_fall_on_days_1_31_61_and_no_other() {
        let fee_days: Vec<i64> = (0..100).filter(|d| is_fee_day(*d)).collect();
        assert_eq!(fee_days, vec![1, 31, 61, 91]);
    }

    #[test]
    fn a_fee_is_one_percent_of_the_unpaid_part_rounded_half_away_from_zero() {
        let i = Overdue {
            harga: m(100_050),
            unpaid: m(100_050),
            denda: Money::ZERO,
        };
        assert_eq!(late_fee(i, 1, Decimal::ONE), m(1_001));
        assert_eq!(late_fee(i, 2, Decimal::ONE), Money::ZERO);
    }

    #[test]
    fn the_fee_that_would_pass_the_price_is_reduced_to_what_is_left() {
        let i = Overdue {
            harga: m(10_000),
            unpaid: m(10_000),
            denda: m(9_000),
        };
        assert_eq!(late_fee(i, 31, Decimal::from(50)), m(1_000));
        let full = Overdue {
            denda: m(10_000),
            ..i
        };
        assert_eq!(late_fee(full, 61, Decimal::from(50)), Money::ZERO);
    }

    #[test]
    fn the_fee_dates_step_back_thirty_days_from_the_day_before() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default();
        let dates = fee_due_dates(d, d - chrono::Duration::days(70));
        assert_eq!(
            dates,
            vec![
                d - chrono::Duration::days(1),
                d - chrono::Duration::days(31),
                d - chrono::Duration::days(61)
            ]
        );
    }

    proptest! {
        #[test]
        fn fees_never_pass_the_price(
            harga in 1i64..10_000_000,
            paid_share in 0u8..=100,
            percent in 0u32..=100,
            days in 0i64..4000,
        ) {
            let unpaid = harga * i64::from(paid_share) / 100;
            let mut i = Overdue { harga: m(harga), unpaid: m(unpaid), denda: Money::ZERO };
            for day in 0..=days {
                let fee = late_fee(i, day, Decimal::from(percent));
                prop_assert!(fee.is_zero() || is_fee_day(day));
                i.denda = i.denda.checked_add(fee).unwrap_or(i.harga);
                prop_assert!(i.denda <= i.harga);
            }
        }
    }
}
