//! The split judged by the fixed rule: per version, the Wilson interval of its share at
//! the corrected confidence against its tolerance band (see the rule in [`super`]).

use std::collections::BTreeMap;

use super::chi_square;
use super::planner::{self, plan};
use super::search;
use super::types::{Interval, Outcome, Settings, SplitVerdict, VersionVerdict};
use super::wilson::{band, classify, wilson, z_for};
use crate::expect::Expectation;

/// Judges observed counts per version (`(name, count)`, any order, unexpected names
/// allowed, repeated names summed; unexpected names with a zero count are dropped).
pub fn judge(expect: &Expectation, counts: &[(String, u64)], settings: &Settings) -> SplitVerdict {
    let mut observed: BTreeMap<&str, u64> = BTreeMap::new();
    for (name, count) in counts {
        let entry = observed.entry(name.as_str()).or_insert(0);
        *entry = entry.saturating_add(*count);
    }
    let total = observed.values().fold(0u64, |a, &c| a.saturating_add(c));
    let unexpected: Vec<(&str, u64)> = observed
        .iter()
        .filter(|&(name, &count)| count > 0 && expect.share_of(name).is_none())
        .map(|(&name, &count)| (name, count))
        .collect();
    let k = expect.versions().len() + unexpected.len();
    let per_version_confidence = planner::per_version_confidence(settings.confidence, k);
    let z = z_for(per_version_confidence);
    let planned = (total == 0).then(|| plan(expect, settings).samples);
    let n = total as f64;

    let mut versions = Vec::with_capacity(k);
    for v in expect.versions() {
        let count = observed.get(v.name.as_str()).copied().unwrap_or(0);
        let interval = wilson(count as f64, n, z);
        let band = band(v.share, settings.tolerance);
        let (outcome, reason, more_samples) = if let Some(planned) = planned {
            (Outcome::Inconclusive, "no samples yet", Some(planned))
        } else if v.share <= 0.0 {
            if count > 0 {
                (Outcome::Fail, "zero-weight version answered", None)
            } else {
                (Outcome::Pass, "zero-weight version never answered", None)
            }
        } else {
            match classify(interval, band) {
                Outcome::Pass => (Outcome::Pass, "interval inside the band", None),
                Outcome::Fail => (Outcome::Fail, "interval outside the band", None),
                Outcome::Inconclusive => (
                    Outcome::Inconclusive,
                    "interval overlaps the band edge",
                    more_to_decide(count, total, z, band),
                ),
            }
        };
        versions.push(VersionVerdict {
            name: v.name.clone(),
            expected: v.share,
            was_expected: true,
            count,
            share: if total == 0 { 0.0 } else { count as f64 / n },
            interval,
            band,
            outcome,
            reason: reason.to_owned(),
            more_samples,
        });
    }
    for (name, count) in unexpected {
        versions.push(VersionVerdict {
            name: name.to_owned(),
            expected: 0.0,
            was_expected: false,
            count,
            share: count as f64 / n,
            interval: wilson(count as f64, n, z),
            band: band(0.0, settings.tolerance),
            outcome: Outcome::Fail,
            reason: "not an expected version".to_owned(),
            more_samples: None,
        });
    }
    let outcome = versions
        .iter()
        .map(|v| v.outcome)
        .max()
        .unwrap_or(Outcome::Inconclusive);
    SplitVerdict {
        versions,
        outcome,
        per_version_confidence,
        total,
        chi_square: chi_square::goodness_of_fit(expect, &observed),
    }
}

/// How many more samples would decide a straddling interval if the share stayed at
/// `count / total`; `None` when it never would (the share sits exactly on a band edge)
/// or would take more than [`planner::MAX_PLANNED_SAMPLES`] in all.
fn more_to_decide(count: u64, total: u64, z: f64, band: Interval) -> Option<u64> {
    let share = count as f64 / total as f64;
    more_until(total, |n: u64| {
        let n = n as f64;
        classify(wilson(share * n, n, z), band) != Outcome::Inconclusive
    })
}

/// How many samples beyond `total` until `decided(n)` first holds (gallop, then bisect);
/// `None` beyond [`planner::MAX_PLANNED_SAMPLES`].
pub(crate) fn more_until(total: u64, decided: impl Fn(u64) -> bool) -> Option<u64> {
    let mut lo = total;
    let mut hi = total.saturating_mul(2).max(total + 1);
    while !decided(hi) {
        if hi >= planner::MAX_PLANNED_SAMPLES {
            return None;
        }
        lo = hi;
        hi = hi.saturating_mul(2).min(planner::MAX_PLANNED_SAMPLES);
    }
    Some(search::narrow(lo, hi, decided) - total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::Expectation;
    use crate::verdict::{SplitVerdict, VersionVerdict};

    fn counts(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|&(n, c)| (n.to_owned(), c)).collect()
    }

    fn judged(spec: &str, pairs: &[(&str, u64)]) -> SplitVerdict {
        let e: Expectation = spec.parse().unwrap();
        judge(&e, &counts(pairs), &Settings::default())
    }

    fn version<'a>(v: &'a SplitVerdict, name: &str) -> &'a VersionVerdict {
        v.versions.iter().find(|x| x.name == name).unwrap()
    }

    #[test]
    fn a_correct_split_at_the_planned_n_passes() {
        let v = judged("one=90,two=10", &[("one", 1053), ("two", 117)]);
        assert_eq!(v.outcome, Outcome::Pass, "{v:?}");
        assert_eq!(v.total, 1170);
        assert!((v.per_version_confidence - 0.995).abs() < 1e-12);
        let two = version(&v, "two");
        assert_eq!(two.reason, "interval inside the band");
        assert!((two.share - 0.1).abs() < 1e-12);
        assert!(two.interval.low >= 0.05 && two.interval.high <= 0.15);
        assert!((two.band.low - 0.05).abs() < 1e-12 && (two.band.high - 0.15).abs() < 1e-12);
        assert_eq!(two.more_samples, None);
        assert!(v.chi_square.p_value.unwrap() > 0.9);
    }

    #[test]
    fn a_clearly_wrong_split_fails() {
        let v = judged("one=90,two=10", &[("one", 800), ("two", 200)]);
        assert_eq!(v.outcome, Outcome::Fail);
        assert_eq!(version(&v, "two").reason, "interval outside the band");
        assert_eq!(version(&v, "one").outcome, Outcome::Fail);
        assert!(v.chi_square.p_value.unwrap() < 1e-10);
    }

    #[test]
    fn a_small_sample_is_inconclusive_with_an_estimate() {
        let v = judged("one=50,two=50", &[("one", 10), ("two", 10)]);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        let one = version(&v, "one");
        assert_eq!(one.reason, "interval overlaps the band edge");
        let more = one.more_samples.unwrap();
        // At a share of exactly 0.5 the 99.5% Wilson interval fits in 0.45..0.55 from
        // about (2.807 / 0.1)^2 = 788 samples on.
        assert!((700..850).contains(&(20 + more)), "{more}");
        let half = (20 + more).div_ceil(2);
        let then = judged("one=50,two=50", &[("one", half), ("two", half)]);
        assert_eq!(then.outcome, Outcome::Pass);
    }

    #[test]
    fn a_share_on_the_band_edge_never_decides() {
        let v = judged("one=50,two=50", &[("one", 55), ("two", 45)]);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert_eq!(version(&v, "one").more_samples, None);
    }

    #[test]
    fn a_zero_weight_version_that_answers_fails() {
        let v = judged("one=100,two=0", &[("one", 10_000), ("two", 1)]);
        assert_eq!(v.outcome, Outcome::Fail);
        let two = version(&v, "two");
        assert_eq!(
            (two.outcome, two.reason.as_str()),
            (Outcome::Fail, "zero-weight version answered")
        );
        assert_eq!(version(&v, "one").outcome, Outcome::Pass);
        // Not answering is a pass for it; the other version still needs enough samples.
        let v = judged("one=100,two=0", &[("one", 10_000)]);
        assert_eq!(v.outcome, Outcome::Pass);
        assert_eq!(
            version(&v, "two").reason,
            "zero-weight version never answered"
        );
        let v = judged("one=100,two=0", &[("one", 20)]);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert_eq!(version(&v, "two").outcome, Outcome::Pass);
    }

    #[test]
    fn an_unexpected_version_fails_and_counts_in_the_correction() {
        let v = judged(
            "one=50,two=50",
            &[
                ("one", 5000),
                ("zeta", 1),
                ("two", 5000),
                ("alpha", 2),
                ("ghost", 0),
            ],
        );
        assert_eq!(v.outcome, Outcome::Fail);
        let names: Vec<&str> = v.versions.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["one", "two", "alpha", "zeta"]);
        let zeta = version(&v, "zeta");
        assert!(!zeta.was_expected);
        assert_eq!(
            (zeta.outcome, zeta.reason.as_str()),
            (Outcome::Fail, "not an expected version")
        );
        assert_eq!(v.total, 10_003);
        assert!((v.per_version_confidence - (1.0 - 0.01 / 4.0)).abs() < 1e-12);
        assert_eq!(version(&v, "one").outcome, Outcome::Pass);
    }

    #[test]
    fn no_samples_is_inconclusive_everywhere_with_the_plan() {
        let e: Expectation = "one=90,two=10,three=0".parse().unwrap();
        let s = Settings::default();
        let v = judge(&e, &[], &s);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert_eq!(v.total, 0);
        let planned = plan(&e, &s).samples;
        for x in &v.versions {
            assert_eq!(x.outcome, Outcome::Inconclusive);
            assert_eq!(x.more_samples, Some(planned));
            assert_eq!((x.interval.low, x.interval.high), (0.0, 1.0));
            assert_eq!(x.share, 0.0);
        }
        assert_eq!(v.chi_square.p_value, None);
        assert_eq!(v.chi_square.degrees_of_freedom, 1);
    }

    #[test]
    fn repeated_names_are_summed() {
        let a = judged(
            "one=50,two=50",
            &[("one", 400), ("two", 1000), ("one", 600)],
        );
        let b = judged("one=50,two=50", &[("two", 1000), ("one", 1000)]);
        assert_eq!(a, b);
    }

    #[test]
    fn the_verdict_serialises_with_screaming_outcomes() {
        let v = judged("one=90,two=10", &[("one", 90), ("two", 10)]);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["outcome"], "INCONCLUSIVE");
        assert_eq!(json["versions"][0]["name"], "one");
        assert!(json["chi_square"]["p_value"].is_number());
    }
}
