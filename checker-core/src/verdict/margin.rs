//! The health gate's rule for one metric: an effect's interval against a margin.
//!
//! The effect is the canary's change against the stable (a rate difference, or a
//! relative latency change `canary / stable - 1`); the margin bounds it in the metric's
//! [`Direction`]. As the split's band rule:
//! * PASS only when the whole interval lies within the margin,
//! * FAIL when the whole interval lies beyond it,
//! * otherwise INCONCLUSIVE, with the factor by which the samples would have to grow
//!   for the interval (shrinking as `1 / sqrt(n)` about the same estimate) to decide.
//!
//! So a canary whose estimate lies beyond the margin never PASSes (its interval holds
//! its estimate), and an identical canary FAILs only when its interval misses the true
//! effect, which the interval's confidence bounds.

use serde::{Deserialize, Serialize};

use super::Outcome;

/// Which way a change is bad, as Kayenta has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Only an increase is bad (the default for latency and errors).
    #[default]
    Increase,
    /// Only a decrease is bad.
    Decrease,
    /// A change either way is bad.
    Either,
}

impl Direction {
    /// All directions, in the order shown in help texts.
    pub const ALL: [Direction; 3] = [Direction::Increase, Direction::Decrease, Direction::Either];

    /// The lowercase name (`increase`, `decrease`, `either`).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Increase => "increase",
            Direction::Decrease => "decrease",
            Direction::Either => "either",
        }
    }

    /// Whether this is the default (for `skip_serializing_if`).
    pub fn is_increase(&self) -> bool {
        *self == Direction::Increase
    }
}

impl std::str::FromStr for Direction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Direction::ALL
            .into_iter()
            .find(|d| d.as_str() == s.trim())
            .ok_or_else(|| format!("{s:?} is not a direction: increase, decrease or either"))
    }
}

/// Why a metric got its verdict, as plain data (the text layer words it, see
/// [`super::explain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// The whole interval lies within the margin: proven within it (PASS).
    Within,
    /// The whole interval lies beyond the margin: proven beyond it (FAIL).
    Beyond,
    /// The estimate is within the margin, but the interval reaches beyond it.
    NotProvenWithin,
    /// The estimate is beyond the margin, but the interval reaches back within it.
    NotProvenBeyond,
    /// The canary or the stable has no samples for this metric.
    NoSamples,
}

impl Finding {
    /// The verdict this finding gives.
    pub fn outcome(self) -> Outcome {
        match self {
            Finding::Within => Outcome::Pass,
            Finding::Beyond => Outcome::Fail,
            Finding::NotProvenWithin | Finding::NotProvenBeyond | Finding::NoSamples => {
                Outcome::Inconclusive
            }
        }
    }

    /// A few words (the `reason` of a metric in reports).
    pub fn words(self) -> &'static str {
        match self {
            Finding::Within => "within the margin",
            Finding::Beyond => "beyond the margin",
            Finding::NotProvenWithin => "could be beyond the margin: not proven within it",
            Finding::NotProvenBeyond => "could be beyond the margin: not proven",
            Finding::NoSamples => "no samples to compare",
        }
    }
}

/// A signed interval (differences and relative changes can be negative).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// The lower end.
    pub low: f64,
    /// The upper end.
    pub high: f64,
}

/// Whether the effect `x` lies within the margin.
fn within(x: f64, margin: f64, direction: Direction) -> bool {
    match direction {
        Direction::Increase => x <= margin,
        Direction::Decrease => x >= -margin,
        Direction::Either => (-margin..=margin).contains(&x),
    }
}

/// The rule's verdict on an `interval` against `margin` (the estimate does not change it).
pub fn verdict(interval: Range, margin: f64, direction: Direction) -> Outcome {
    if within(interval.low, margin, direction) && within(interval.high, margin, direction) {
        return Outcome::Pass;
    }
    let wholly_beyond = match direction {
        Direction::Increase => interval.low > margin,
        Direction::Decrease => interval.high < -margin,
        Direction::Either => interval.low > margin || interval.high < -margin,
    };
    if wholly_beyond {
        Outcome::Fail
    } else {
        Outcome::Inconclusive
    }
}

/// The rule on one metric: `estimate` with its `interval` against `margin`.
pub fn judge(estimate: f64, interval: Range, margin: f64, direction: Direction) -> Finding {
    match verdict(interval, margin, direction) {
        Outcome::Pass => Finding::Within,
        Outcome::Fail => Finding::Beyond,
        Outcome::Inconclusive if within(estimate, margin, direction) => Finding::NotProvenWithin,
        Outcome::Inconclusive => Finding::NotProvenBeyond,
    }
}

/// How an effect's interval shrinks with more samples: linearly in the effect
/// (differences of rates) or in `ln(1 + effect)` (ratios, whose intervals are skewed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// The effect itself.
    Linear,
    /// `ln(1 + effect)`: relative changes.
    Log,
}

impl Scale {
    fn to(self, x: f64) -> f64 {
        match self {
            Scale::Linear => x,
            // A relative change is above -100%; keep the logarithm finite.
            Scale::Log => (1.0 + x).max(f64::MIN_POSITIVE).ln(),
        }
    }
}

/// By how much the sample count must grow for an undecided interval to decide, if the
/// estimate stayed and the interval's distances from it shrank as `1 / sqrt(n)`:
/// `None` when it never would (the estimate sits on the margin's edge) or when the
/// interval is decided already.
pub fn growth_to_decide(
    estimate: f64,
    interval: Range,
    margin: f64,
    direction: Direction,
    scale: Scale,
) -> Option<f64> {
    let finding = judge(estimate, interval, margin, direction);
    if finding.outcome() != Outcome::Inconclusive {
        return None;
    }
    let (e, lo, hi) = (
        scale.to(estimate),
        scale.to(interval.low),
        scale.to(interval.high),
    );
    let (up, down) = (scale.to(margin), scale.to(-margin));
    let below = (e - lo).max(0.0);
    let above = (hi - e).max(0.0);
    // The factor on the interval's distances that brings an end to a margin edge.
    let ratio = |distance: f64, room: f64| (room > 0.0).then(|| distance / room);
    let shrink = match direction {
        Direction::Increase if e < up => ratio(above, up - e),
        Direction::Increase => ratio(below, e - up),
        Direction::Decrease if e > down => ratio(below, e - down),
        Direction::Decrease => ratio(above, down - e),
        Direction::Either if e > up => ratio(below, e - up),
        Direction::Either if e < down => ratio(above, down - e),
        Direction::Either => match (ratio(above, up - e), ratio(below, e - down)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        },
    }?;
    let growth = shrink * shrink;
    (growth.is_finite() && growth > 1.0).then_some(growth)
}

/// The overall health outcome of metric verdicts: the worst verdict among the metrics
/// that count (critical ones, or every one when `strict`); a non-critical metric is
/// reported but does not decide without `strict`. PASS when nothing counts.
pub fn overall(verdicts: impl IntoIterator<Item = (Outcome, bool)>, strict: bool) -> Outcome {
    verdicts
        .into_iter()
        .filter(|&(_, critical)| critical || strict)
        .map(|(outcome, _)| outcome)
        .max()
        .unwrap_or(Outcome::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(low: f64, high: f64) -> Range {
        Range { low, high }
    }

    #[test]
    fn pass_only_inside_fail_only_wholly_beyond() {
        use Direction::*;
        use Finding::*;
        // The example: +70% with -15%..+128% against 50% is not a PASS.
        assert_eq!(judge(0.70, r(-0.15, 1.28), 0.5, Increase), NotProvenBeyond);
        assert_eq!(judge(0.05, r(-0.10, 0.19), 0.2, Increase), Within);
        assert_eq!(judge(0.05, r(-0.10, 0.25), 0.2, Increase), NotProvenWithin);
        assert_eq!(judge(0.40, r(0.21, 0.60), 0.2, Increase), Beyond);
        // At the edge: an interval ending on the margin is within it.
        assert_eq!(judge(0.1, r(0.0, 0.2), 0.2, Increase), Within);
        // Decrease: only a drop below -margin is bad.
        assert_eq!(judge(0.9, r(0.5, 1.5), 0.2, Decrease), Within);
        assert_eq!(judge(-0.3, r(-0.4, -0.25), 0.2, Decrease), Beyond);
        assert_eq!(judge(-0.1, r(-0.3, 0.1), 0.2, Decrease), NotProvenWithin);
        // Either: both edges.
        assert_eq!(judge(0.0, r(-0.1, 0.1), 0.2, Either), Within);
        assert_eq!(judge(0.0, r(-0.3, 0.1), 0.2, Either), NotProvenWithin);
        assert_eq!(judge(-0.5, r(-0.6, -0.3), 0.2, Either), Beyond);
        assert_eq!(judge(0.5, r(0.3, 0.6), 0.2, Either), Beyond);
        assert_eq!(judge(0.3, r(0.1, 0.5), 0.2, Either), NotProvenBeyond);
    }

    #[test]
    fn an_estimate_beyond_the_margin_never_passes() {
        for direction in Direction::ALL {
            for e in [-0.9, -0.5, -0.21, 0.21, 0.5, 3.0] {
                for w in [0.0, 0.01, 0.1, 1.0] {
                    let f = judge(e, r(e - w, e + w), 0.2, direction);
                    if !within(e, 0.2, direction) {
                        assert_ne!(f.outcome(), Outcome::Pass, "{direction:?} {e} {w}");
                    }
                }
            }
        }
    }

    #[test]
    fn growth_follows_the_square_of_the_distance_to_the_margin() {
        // +5% with the upper end at +35% against 20%: the distance (30 points) must
        // shrink to 15: 2x narrower, 4x the samples.
        let g = growth_to_decide(0.05, r(-0.2, 0.35), 0.2, Direction::Increase, Scale::Linear);
        assert!((g.unwrap() - 4.0).abs() < 1e-9, "{g:?}");
        // Beyond the margin: the lower end must rise above it.
        let g = growth_to_decide(0.5, r(0.1, 0.9), 0.2, Direction::Increase, Scale::Linear);
        assert!((g.unwrap() - (0.4f64 / 0.3).powi(2)).abs() < 1e-9, "{g:?}");
        // On the edge: no number of samples decides; decided: nothing to grow.
        let edge = growth_to_decide(0.2, r(0.1, 0.3), 0.2, Direction::Increase, Scale::Linear);
        assert_eq!(edge, None);
        let done = growth_to_decide(0.0, r(-0.1, 0.1), 0.2, Direction::Increase, Scale::Linear);
        assert_eq!(done, None);
        // Either: the farther edge rules.
        let g = growth_to_decide(0.0, r(-0.4, 0.3), 0.2, Direction::Either, Scale::Linear);
        assert!((g.unwrap() - 4.0).abs() < 1e-9, "{g:?}");
        // Ratios shrink in the logarithm.
        let g = growth_to_decide(0.0, r(-0.5, 1.0), 0.2, Direction::Increase, Scale::Log);
        let expect = (2f64.ln() / 1.2f64.ln()).powi(2);
        assert!((g.unwrap() - expect).abs() < 1e-9, "{g:?}");
    }

    #[test]
    fn only_counted_metrics_decide_the_overall_outcome() {
        use Outcome::*;
        let verdicts = [(Pass, true), (Fail, false), (Inconclusive, false)];
        assert_eq!(overall(verdicts, false), Pass);
        assert_eq!(overall(verdicts, true), Fail);
        assert_eq!(
            overall([(Inconclusive, true), (Pass, true)], false),
            Inconclusive
        );
        assert_eq!(overall([], false), Pass);
        assert_eq!("either".parse::<Direction>(), Ok(Direction::Either));
        assert!("up".parse::<Direction>().is_err());
    }
}
