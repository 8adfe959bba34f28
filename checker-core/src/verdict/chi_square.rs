//! Pearson's chi-square: goodness of fit to the expected split, and homogeneity of
//! consecutive windows (the drift check).

use std::collections::BTreeMap;

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::types::{ChiSquare, Settings};
use crate::expect::Expectation;

/// The upper-tail probability of a chi-square statistic with `df` degrees of freedom.
pub fn p_value(statistic: f64, df: u64) -> Option<f64> {
    if df == 0 || !statistic.is_finite() {
        return None;
    }
    let dist = ChiSquared::new(df as f64).ok()?;
    Some(dist.sf(statistic.max(0.0)).clamp(0.0, 1.0))
}

/// Goodness of fit over the versions with a non-zero expected share.
///
/// Zero-weight and unexpected versions are left out (their expected count is zero, and
/// the per-version rule fails them anyway); the total is the sum over those included.
pub fn goodness_of_fit(expect: &Expectation, counts: &BTreeMap<&str, u64>) -> ChiSquare {
    let included: Vec<(f64, u64)> = expect
        .versions()
        .iter()
        .filter(|v| v.share > 0.0)
        .map(|v| (v.share, counts.get(v.name.as_str()).copied().unwrap_or(0)))
        .collect();
    let n: u64 = included.iter().map(|&(_, c)| c).sum();
    let degrees_of_freedom = (included.len() as u64).saturating_sub(1);
    if n == 0 {
        return ChiSquare {
            statistic: 0.0,
            degrees_of_freedom,
            p_value: None,
        };
    }
    let statistic: f64 = included
        .iter()
        .map(|&(share, count)| {
            let expected = share * n as f64;
            let diff = count as f64 - expected;
            diff * diff / expected
        })
        .sum();
    ChiSquare {
        statistic,
        degrees_of_freedom,
        p_value: p_value(statistic, degrees_of_freedom),
    }
}

/// Whether the split moved between consecutive windows of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    /// True when the windows differ significantly (chi-square homogeneity at
    /// `1 - confidence`) AND some version's share moved by more than the tolerance.
    pub moved: bool,
    /// The chi-square homogeneity statistic over windows x versions.
    pub statistic: f64,
    /// `(windows - 1) * (versions - 1)`, counting only non-empty windows and versions.
    pub degrees_of_freedom: u64,
    /// The p-value; `None` with fewer than two non-empty windows or versions.
    pub p_value: Option<f64>,
    /// The largest difference in any version's share between two windows, 0..=1.
    pub max_shift: f64,
    /// Windows not judged: samples left out of them (in flight when sampling stopped)
    /// could move a share by more than half the tolerance. Set by the judgement.
    pub windows_left_out: u64,
}

/// Checks whether the split moved during sampling.
///
/// Each window holds the counts per version (`(name, count)`, any order, repeated names
/// summed) of a consecutive slice of the run. Empty windows and versions that never
/// answered are ignored. A chi-square test of homogeneity alone would flag differences
/// too small to matter once N is large, so `moved` also needs a practical shift larger
/// than the tolerance.
pub fn drift(windows: &[Vec<(String, u64)>], settings: &Settings) -> Drift {
    let tables: Vec<BTreeMap<&str, u64>> = windows
        .iter()
        .map(|w| {
            let mut m = BTreeMap::new();
            for (name, count) in w {
                *m.entry(name.as_str()).or_insert(0) += count;
            }
            m
        })
        .filter(|m| m.values().sum::<u64>() > 0)
        .collect();
    let mut column_totals: BTreeMap<&str, u64> = BTreeMap::new();
    for t in &tables {
        for (&name, &count) in t {
            *column_totals.entry(name).or_insert(0) += count;
        }
    }
    column_totals.retain(|_, c| *c > 0);
    let row_totals: Vec<u64> = tables.iter().map(|t| t.values().sum()).collect();
    let grand: u64 = row_totals.iter().sum();

    let mut max_shift: f64 = 0.0;
    for &name in column_totals.keys() {
        let shares = tables
            .iter()
            .zip(&row_totals)
            .map(|(t, &r)| t.get(name).copied().unwrap_or(0) as f64 / r as f64);
        let (lo, hi) = shares.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s), hi.max(s))
        });
        if hi >= lo {
            max_shift = max_shift.max(hi - lo);
        }
    }

    let degrees_of_freedom =
        (tables.len() as u64).saturating_sub(1) * (column_totals.len() as u64).saturating_sub(1);
    if degrees_of_freedom == 0 {
        return Drift {
            moved: false,
            statistic: 0.0,
            degrees_of_freedom,
            p_value: None,
            max_shift,
            windows_left_out: 0,
        };
    }
    let mut statistic = 0.0;
    for (t, &r) in tables.iter().zip(&row_totals) {
        for (&name, &c) in &column_totals {
            let expected = r as f64 * c as f64 / grand as f64;
            let diff = t.get(name).copied().unwrap_or(0) as f64 - expected;
            statistic += diff * diff / expected;
        }
    }
    let p = p_value(statistic, degrees_of_freedom);
    let significant = p.is_some_and(|p| p < 1.0 - settings.confidence);
    Drift {
        moved: significant && max_shift > settings.tolerance,
        statistic,
        degrees_of_freedom,
        p_value: p,
        max_shift,
        windows_left_out: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|&(n, c)| (n.to_owned(), c)).collect()
    }

    #[test]
    fn p_values_match_tables() {
        // Critical values: chi2(1) 3.841459 -> 0.05, chi2(2) 5.991465 -> 0.05,
        // chi2(3) 11.344867 -> 0.01, and chi2(2) has sf(x) = exp(-x / 2).
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
        assert!(close(p_value(3.841_459, 1), 0.05));
        assert!(close(p_value(5.991_465, 2), 0.05));
        assert!(close(p_value(11.344_867, 3), 0.01));
        assert!(close(p_value(7.0, 2), (-3.5f64).exp()));
        assert_eq!(p_value(1.0, 0), None);
    }

    #[test]
    fn goodness_of_fit_counts_only_weighted_versions() {
        let e: Expectation = "one=90,two=10,three=0".parse().unwrap();
        let counts = BTreeMap::from([("one", 880), ("two", 120), ("three", 5), ("x", 7)]);
        let g = goodness_of_fit(&e, &counts);
        // (880-900)^2/900 + (120-100)^2/100 = 0.4444 + 4 = 4.4444, df 1.
        assert!((g.statistic - (400.0 / 900.0 + 4.0)).abs() < 1e-9);
        assert_eq!(g.degrees_of_freedom, 1);
        let p = g.p_value.unwrap();
        assert!((0.03..0.04).contains(&p), "{p}");
        let empty = goodness_of_fit(&e, &BTreeMap::new());
        assert_eq!(empty.p_value, None);
    }

    #[test]
    fn a_steady_split_has_not_moved() {
        let w = vec![
            window(&[("one", 900), ("two", 100)]),
            window(&[("one", 905), ("two", 95)]),
            window(&[("one", 895), ("two", 105)]),
        ];
        let d = drift(&w, &Settings::default());
        assert!(!d.moved, "{d:?}");
        assert_eq!(d.degrees_of_freedom, 2);
        assert!(d.p_value.unwrap() > 0.5);
        assert!((d.max_shift - 0.01).abs() < 1e-9);
    }

    #[test]
    fn a_split_that_moved_is_flagged() {
        let w = vec![
            window(&[("one", 900), ("two", 100)]),
            window(&[("two", 200), ("one", 800)]),
        ];
        let d = drift(&w, &Settings::default());
        assert!(d.moved, "{d:?}");
        assert!(d.p_value.unwrap() < 1e-6);
        assert!((d.max_shift - 0.1).abs() < 1e-9);
    }

    #[test]
    fn a_tiny_but_significant_shift_is_not_flagged() {
        // 2 points apart: significant at this N, but below the 5-point tolerance.
        let w = vec![
            window(&[("one", 500_000), ("two", 500_000)]),
            window(&[("one", 520_000), ("two", 480_000)]),
        ];
        let d = drift(&w, &Settings::default());
        assert!(d.p_value.unwrap() < 1e-9);
        assert!(!d.moved, "{d:?}");
    }

    #[test]
    fn too_little_data_is_not_drift() {
        let d = drift(&[window(&[("one", 5), ("two", 5)])], &Settings::default());
        assert_eq!((d.moved, d.degrees_of_freedom, d.p_value), (false, 0, None));
        let d = drift(&[], &Settings::default());
        assert!(!d.moved);
        let d = drift(
            &[window(&[("one", 5)]), window(&[]), window(&[("one", 9)])],
            &Settings::default(),
        );
        assert_eq!(
            (d.moved, d.degrees_of_freedom, d.max_shift),
            (false, 0, 0.0)
        );
    }
}
