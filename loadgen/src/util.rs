//! Small helpers: a seeded PRNG, exact percentiles and money text.

use std::time::Duration;

/// Where the engine answers (the ingress, or nginx in front of it).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct EngineUrl {
    /// Base URL of the engine (the ingress, or nginx in front of it).
    #[arg(
        long,
        env = "LOADGEN_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub(crate) base_url: String,
}

/// SplitMix64: fast, seedable, good enough to pick amounts and tenors (not for secrets).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn from_entropy() -> Rng {
        let b = *uuid::Uuid::new_v4().as_bytes();
        Rng(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo ..= hi` (`hi < lo` gives `lo`).
    pub(crate) fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as i64
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn index(&mut self, len: usize) -> usize {
        if len == 0 {
            0
        } else {
            (self.next_u64() % len as u64) as usize
        }
    }
}

/// Cents as a JSON number text with exactly 2 decimals: `123456` → `1234.56`.
pub(crate) fn cents_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// `"1234.56"` (the engine's money strings) → cents.
pub(crate) fn parse_cents(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut f = frac.to_owned();
    while f.len() < 2 {
        f.push('0');
    }
    int.parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(f.parse::<i64>().ok()?)
}

/// Nearest-rank percentiles of a set of samples (milliseconds).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct Percentiles {
    pub(crate) count: usize,
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

impl Percentiles {
    pub(crate) fn of(samples: &mut [f64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let n = samples.len();
            let idx = ((p / 100.0) * n as f64).ceil() as usize;
            samples[idx.clamp(1, n) - 1]
        };
        let sum: f64 = samples.iter().sum();
        Percentiles {
            count: samples.len(),
            p50: round3(rank(50.0)),
            p95: round3(rank(95.0)),
            p99: round3(rank(99.0)),
            max: round3(samples[samples.len() - 1]),
            mean: round3(sum / samples.len() as f64),
        }
    }
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_round_trip() {
        for c in [0, 1, 10, 99, 100, 123_456, 999_999_999] {
            assert_eq!(parse_cents(&cents_text(c)), Some(c));
        }
        assert_eq!(cents_text(5), "0.05");
        assert_eq!(parse_cents("394.17"), Some(39_417));
        assert_eq!(parse_cents("394.1"), Some(39_410));
        assert_eq!(parse_cents("394"), Some(39_400));
        assert_eq!(parse_cents("1.001"), None);
        assert_eq!(parse_cents("-1"), None);
    }

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&mut []).count, 0);
    }

    #[test]
    fn rng_ranges() {
        let mut r = Rng::new(7);
        for _ in 0..1000 {
            let x = r.range_i64(3, 9);
            assert!((3..=9).contains(&x));
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(r.range_i64(5, 5), 5);
    }
}
