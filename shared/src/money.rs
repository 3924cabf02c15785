//! Exact decimal parsing of JSON numbers and decimal strings (SPEC §4).
//!
//! Numbers are read from their JSON text, never through `f64`. Precision is judged by value
//! (`1.000` has 0 significant decimals), any JSON number notation (`1e3`, `1.5E-1`) is
//! accepted, and magnitudes are bounded before a `Decimal` is ever built, so `1e400` or a
//! thousand-digit number is a clean error rather than an overflow.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why a value is not an acceptable decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("must be a number or a decimal string")]
    NotANumber,
    #[error("has too many decimal places")]
    TooPrecise,
    #[error("is out of range")]
    OutOfRange,
}

/// Largest amount DECIMAL(20,2) holds: 999,999,999,999,999,999.99.
pub(crate) fn money_max() -> Decimal {
    Decimal::from_i128_with_scale(99_999_999_999_999_999_999, 2)
}

/// Digits allowed before the point for any value we parse (DECIMAL(20,2) has 18).
const MAX_INTEGER_DIGITS: usize = 18;

/// Parses the text of a JSON value (a number, or a string holding `-?[0-9]+(\.[0-9]+)?`)
/// into a decimal with at most `max_scale` significant decimals.
pub(crate) fn parse_json_decimal(raw: &str, max_scale: u32) -> Result<Decimal, DecimalError> {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner.strip_suffix('"').ok_or(DecimalError::NotANumber)?;
        if !is_plain_decimal(inner) {
            return Err(DecimalError::NotANumber);
        }
        return parse_number_text(inner, max_scale);
    }
    if is_json_number(raw) {
        parse_number_text(raw, max_scale)
    } else {
        Err(DecimalError::NotANumber)
    }
}

/// `-?[0-9]+(\.[0-9]+)?`
fn is_plain_decimal(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// The JSON number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// Parses text already known to match the JSON number grammar.
fn parse_number_text(s: &str, max_scale: u32) -> Result<Decimal, DecimalError> {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(pos) => (&s[..pos], &s[pos + 1..]),
        None => (s, ""),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = int.chars().chain(frac.chars()).collect();
    // position of the decimal point within `digits`, counted from the left
    let mut point: i64 = int.len() as i64;

    let leading = digits.len() - digits.trim_start_matches('0').len();
    digits.drain(..leading);
    point -= leading as i64;
    let trimmed_len = digits.trim_end_matches('0').len();
    digits.truncate(trimmed_len);
    if digits.is_empty() {
        return Ok(Decimal::ZERO);
    }

    // The exponent may be huge ("1e99999999999999999999"); anything beyond a few hundred is
    // out of range or too precise whatever the mantissa, so saturate instead of overflowing.
    let exp: i64 = if exponent.is_empty() {
        0
    } else {
        let (eneg, edigits) = match exponent.as_bytes()[0] {
            b'-' => (true, &exponent[1..]),
            b'+' => (false, &exponent[1..]),
            _ => (false, exponent),
        };
        let edigits = edigits.trim_start_matches('0');
        let magnitude: i64 = if edigits.len() > 6 {
            1_000_000
        } else if edigits.is_empty() {
            0
        } else {
            edigits.parse().map_err(|_| DecimalError::NotANumber)?
        };
        if eneg { -magnitude } else { magnitude }
    };
    point += exp;

    let scale = digits.len() as i64 - point;
    if scale > i64::from(max_scale) {
        return Err(DecimalError::TooPrecise);
    }
    if point > MAX_INTEGER_DIGITS as i64 {
        return Err(DecimalError::OutOfRange);
    }
    // Now digits.len() <= 18 + max_scale and the value fits an i128 comfortably.
    let (mantissa_digits, scale) = if scale < 0 {
        let zeros = usize::try_from(-scale).map_err(|_| DecimalError::OutOfRange)?;
        (format!("{digits}{}", "0".repeat(zeros)), 0u32)
    } else {
        (
            digits,
            u32::try_from(scale).map_err(|_| DecimalError::TooPrecise)?,
        )
    };
    let mut value: i128 = mantissa_digits
        .parse()
        .map_err(|_| DecimalError::OutOfRange)?;
    if negative {
        value = -value;
    }
    Decimal::try_from_i128_with_scale(value, scale).map_err(|_| DecimalError::OutOfRange)
}

/// A non-negative amount of money with 2 decimals, within DECIMAL(20,2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Accepts any decimal with at most 2 significant decimals in `0 ..= money_max()`.
    pub fn new(value: Decimal) -> Result<Money, DecimalError> {
        if value.normalize().scale() > 2 {
            return Err(DecimalError::TooPrecise);
        }
        if value.is_sign_negative() && !value.is_zero() {
            return Err(DecimalError::OutOfRange);
        }
        if value > money_max() {
            return Err(DecimalError::OutOfRange);
        }
        let mut v = value;
        v.rescale(2);
        // -0 is zero
        if v.is_zero() {
            v = Decimal::new(0, 2);
        }
        Ok(Money(v))
    }

    /// Parses the JSON text of a money field.
    pub fn parse_json(raw: &str) -> Result<Money, DecimalError> {
        Money::new(parse_json_decimal(raw, 2)?)
    }

    pub fn from_cents(cents: i64) -> Money {
        Money(Decimal::new(cents, 2))
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        Money::new(self.0.checked_add(other.0)?).ok()
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        Money::new(self.0.checked_sub(other.0)?).ok()
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

impl FromStr for Money {
    type Err = DecimalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !is_plain_decimal(s) {
            return Err(DecimalError::NotANumber);
        }
        Money::new(parse_number_text(s, 2)?)
    }
}

/// Responses carry money as a string with exactly 2 decimals.
impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl TryFrom<Decimal> for Money {
    type Error = DecimalError;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Money::new(value)
    }
}

/// Rounds half away from zero to 2 decimals (SPEC §4's `round2`).
pub(crate) fn round2(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// The flat monthly interest rate in percent: 0 ..= 100 with at most 4 decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate(Decimal);

impl Rate {
    pub fn new(value: Decimal) -> Result<Rate, DecimalError> {
        if value.normalize().scale() > 4 {
            return Err(DecimalError::TooPrecise);
        }
        if (value.is_sign_negative() && !value.is_zero()) || value > Decimal::from(100) {
            return Err(DecimalError::OutOfRange);
        }
        let mut v = value;
        v.rescale(4);
        if v.is_zero() {
            v = Decimal::new(0, 4);
        }
        Ok(Rate(v))
    }

    pub fn parse_json(raw: &str) -> Result<Rate, DecimalError> {
        Rate::new(parse_json_decimal(raw, 4)?)
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.4}", self.0)
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !is_plain_decimal(&s) {
            return Err(serde::de::Error::custom("not a decimal"));
        }
        parse_number_text(&s, 4)
            .and_then(Rate::new)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(s: &str) -> Result<String, DecimalError> {
        Money::parse_json(s).map(|m| m.to_string())
    }

    #[test]
    fn accepts_any_json_number_notation() {
        assert_eq!(m("1000").as_deref(), Ok("1000.00"));
        assert_eq!(m("1000.5").as_deref(), Ok("1000.50"));
        assert_eq!(m("1.000").as_deref(), Ok("1.00"));
        assert_eq!(m("1e3").as_deref(), Ok("1000.00"));
        assert_eq!(m("1.5E-1").as_deref(), Ok("0.15"));
        assert_eq!(m("12345E-2").as_deref(), Ok("123.45"));
        assert_eq!(m("0").as_deref(), Ok("0.00"));
        assert_eq!(m("-0").as_deref(), Ok("0.00"));
        assert_eq!(m("0e999999999999999999999").as_deref(), Ok("0.00"));
        assert_eq!(m("\"1200.5\"").as_deref(), Ok("1200.50"));
        assert_eq!(m("\"-0\"").as_deref(), Ok("0.00"));
    }

    #[test]
    fn judges_precision_by_value() {
        assert_eq!(m("1.001"), Err(DecimalError::TooPrecise));
        assert_eq!(m("0.001"), Err(DecimalError::TooPrecise));
        assert_eq!(m("1e-3"), Err(DecimalError::TooPrecise));
        assert_eq!(m("1.0010e1").as_deref(), Ok("10.01"));
        assert_eq!(m("1e-400"), Err(DecimalError::TooPrecise));
    }

    #[test]
    fn bounds_the_range() {
        assert_eq!(
            m("999999999999999999.99").as_deref(),
            Ok("999999999999999999.99")
        );
        assert_eq!(m("1000000000000000000"), Err(DecimalError::OutOfRange));
        assert_eq!(m("1e18"), Err(DecimalError::OutOfRange));
        assert_eq!(m("1e30"), Err(DecimalError::OutOfRange));
        assert_eq!(m("1e400"), Err(DecimalError::OutOfRange));
        assert_eq!(m("-1"), Err(DecimalError::OutOfRange));
        assert_eq!(m("-0.01"), Err(DecimalError::OutOfRange));
        assert_eq!(
            m(&format!("1{}", "0".repeat(1000))),
            Err(DecimalError::OutOfRange)
        );
    }

    #[test]
    fn rejects_what_is_not_a_decimal() {
        for bad in [
            "true", "null", "\"\"", "\"12,5\"", "\"NaN\"", "\"1e3\"", "\"+1\"", "\" 1\"", "\"1.\"",
            "\".5\"", "[]", "{}", "01", "1.", ".5", "+1", "NaN", "Infinity", "\"0x10\"",
        ] {
            assert_eq!(
                Money::parse_json(bad),
                Err(DecimalError::NotANumber),
                "{bad}"
            );
        }
    }

    #[test]
    fn rate_has_four_decimals() {
        assert_eq!(
            Rate::parse_json("2.5").map(|r| r.to_string()).as_deref(),
            Ok("2.5000")
        );
        assert_eq!(
            Rate::parse_json("100").map(|r| r.to_string()).as_deref(),
            Ok("100.0000")
        );
        assert_eq!(Rate::parse_json("100.0001"), Err(DecimalError::OutOfRange));
        assert_eq!(Rate::parse_json("2.00001"), Err(DecimalError::TooPrecise));
        assert_eq!(Rate::parse_json("-1"), Err(DecimalError::OutOfRange));
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(round2(Decimal::new(50025, 3)).to_string(), "50.03");
        assert_eq!(round2(Decimal::new(-50025, 3)).to_string(), "-50.03");
        assert_eq!(round2(Decimal::new(50024, 3)).to_string(), "50.02");
    }

    #[test]
    fn serde_uses_two_decimal_strings() {
        let money = Money::from_cents(120000);
        assert_eq!(
            serde_json::to_string(&money).expect("serializes"),
            "\"1200.00\""
        );
        let back: Money = serde_json::from_str("\"1200.00\"").expect("deserializes");
        assert_eq!(back, money);
    }

    proptest! {
        #[test]
        fn any_cents_value_round_trips_through_every_notation(cents in 0i64..=99_999_999_999_999_999) {
            let expected = Money::from_cents(cents);
            let plain = expected.to_string();
            prop_assert_eq!(Money::parse_json(&plain), Ok(expected));
            prop_assert_eq!(Money::parse_json(&format!("\"{plain}\"")), Ok(expected));
            let sci = format!("{cents}e-2");
            prop_assert_eq!(Money::parse_json(&sci), Ok(expected));
            let padded = format!("{plain}000");
            prop_assert_eq!(Money::parse_json(&padded), Ok(expected));
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in ".{0,64}") {
            let _ = Money::parse_json(&s);
            let _ = Rate::parse_json(&s);
        }

        #[test]
        fn never_panics_on_number_shaped_text(
            neg in any::<bool>(), int in "[0-9]{1,40}", frac in proptest::option::of("[0-9]{1,40}"),
            exp in proptest::option::of(-100_000i64..100_000)
        ) {
            let mut s = String::new();
            if neg { s.push('-'); }
            s.push_str(&int);
            if let Some(f) = frac { s.push('.'); s.push_str(&f); }
            if let Some(e) = exp { s.push_str(&format!("e{e}")); }
            if let Ok(v) = Money::parse_json(&s) {
                prop_assert!(v.value() <= money_max());
                prop_assert!(v.value() >= Decimal::ZERO);
            }
        }
    }
}

#[cfg(feature = "openapi")]
mod schema {
    use super::{Money, Rate};
    use crate::openapi::shaped_string;
    use utoipa::openapi::{RefOr, schema::Schema};
    use utoipa::{PartialSchema, ToSchema};

    impl PartialSchema for Money {
        fn schema() -> RefOr<Schema> {
            shaped_string(
                "An exact amount with exactly 2 decimals.",
                r"^[0-9]+\.[0-9]{2}$",
                "1200.00",
                None,
            )
        }
    }

    impl ToSchema for Money {}

    impl PartialSchema for Rate {
        fn schema() -> RefOr<Schema> {
            shaped_string(
                "A percentage with exactly 4 decimals.",
                r"^[0-9]+\.[0-9]{4}$",
                "2.5000",
                None,
            )
        }
    }

    impl ToSchema for Rate {}
}
