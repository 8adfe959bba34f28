//! The Wilson score interval of a share, and the z value for a two-sided confidence.

use statrs::distribution::{ContinuousCDF, Normal};

use super::types::{Interval, Outcome};

/// The standard normal quantile `z` such that `P(|Z| <= z) = confidence`.
///
/// `confidence` must lie in (0, 1); callers validate it through
/// [`Settings::validate`](super::Settings::validate).
pub fn z_for(confidence: f64) -> f64 {
    Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0)
}

/// The Wilson score interval for `count` successes out of `n`, at the two-sided `z`.
///
/// `count` may be fractional (the planner asks "what if the share stayed the same at a
/// larger n"). With `n == 0` nothing is known and the interval is the whole 0..=1.
pub fn wilson(count: f64, n: f64, z: f64) -> Interval {
    if n <= 0.0 {
        return Interval {
            low: 0.0,
            high: 1.0,
        };
    }
    let p = (count / n).clamp(0.0, 1.0);
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    // At p = 0 (p = 1) the lower (upper) end is exactly 0 (1); rounding must not move it.
    let low = if p <= 0.0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if p >= 1.0 {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Interval { low, high }
}

/// The tolerance band `expected +- tolerance`, clamped to 0..=1.
pub fn band(expected: f64, tolerance: f64) -> Interval {
    Interval {
        low: (expected - tolerance).max(0.0),
        high: (expected + tolerance).min(1.0),
    }
}

/// The interval rule: PASS when `interval` lies wholly inside `band`, FAIL when it lies
/// wholly outside, INCONCLUSIVE when it straddles an edge.
pub fn classify(interval: Interval, band: Interval) -> Outcome {
    if interval.low >= band.low && interval.high <= band.high {
        Outcome::Pass
    } else if interval.high < band.low || interval.low > band.high {
        Outcome::Fail
    } else {
        Outcome::Inconclusive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, eps: f64) -> bool {
        (a - b).abs() <= eps
    }

    #[test]
    fn z_values_are_the_textbook_ones() {
        assert!(close(z_for(0.95), 1.959_964, 1e-5));
        assert!(close(z_for(0.99), 2.575_829, 1e-5));
        assert!(close(z_for(0.995), 2.807_034, 1e-5));
    }

    #[test]
    fn wilson_matches_closed_forms_at_the_edges() {
        // k = 0: [0, z^2 / (n + z^2)]; k = n: [n / (n + z^2), 1].
        let z = 1.959_964;
        let i = wilson(0.0, 10.0, z);
        assert_eq!(i.low, 0.0);
        assert!(close(i.high, z * z / (10.0 + z * z), 1e-12));
        assert!(close(i.high, 0.277_54, 1e-5));
        let i = wilson(10.0, 10.0, z);
        assert_eq!(i.high, 1.0);
        assert!(close(i.low, 0.722_46, 1e-5));
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), Statistics in Medicine 17:857, table I, method 3 (Wilson):
        // 81/263 -> 0.2553 to 0.3662; 15/148 -> 0.0624 to 0.1605; 0/20 -> 0 to 0.1611;
        // 1/29 -> 0.0061 to 0.1718 (95%).
        let z = z_for(0.95);
        for (k, n, low, high) in [
            (81.0, 263.0, 0.2553, 0.3662),
            (15.0, 148.0, 0.0624, 0.1605),
            (0.0, 20.0, 0.0, 0.1611),
            (1.0, 29.0, 0.0061, 0.1718),
        ] {
            let i = wilson(k, n, z);
            assert!(close(i.low, low, 6e-5), "{k}/{n}: low {}", i.low);
            assert!(close(i.high, high, 6e-5), "{k}/{n}: high {}", i.high);
        }
    }

    #[test]
    fn wilson_is_symmetric_and_whole_without_data() {
        let z = 2.5;
        let a = wilson(30.0, 100.0, z);
        let b = wilson(70.0, 100.0, z);
        assert!(close(a.low, 1.0 - b.high, 1e-12));
        assert!(close(a.high, 1.0 - b.low, 1e-12));
        let none = wilson(0.0, 0.0, z);
        assert_eq!((none.low, none.high), (0.0, 1.0));
    }

    #[test]
    fn band_is_clamped_and_classify_covers_three_cases() {
        let b = band(0.01, 0.05);
        assert_eq!(b.low, 0.0);
        assert!(close(b.high, 0.06, 1e-12));
        let b = band(0.5, 0.05);
        let i = |low, high| Interval { low, high };
        assert_eq!(classify(i(0.46, 0.54), b), Outcome::Pass);
        assert_eq!(classify(i(0.56, 0.60), b), Outcome::Fail);
        assert_eq!(classify(i(0.40, 0.44), b), Outcome::Fail);
        assert_eq!(classify(i(0.50, 0.56), b), Outcome::Inconclusive);
        assert_eq!(classify(i(0.40, 0.60), b), Outcome::Inconclusive);
    }
}
