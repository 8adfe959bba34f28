//! Distribution-free intervals for a latency quantile, read off an HdrHistogram, and
//! the interval of the ratio of two arms' quantiles.
//!
//! Both intervals rest on one fact: for samples `X_1..X_n` from a continuous
//! distribution with `q`-quantile `xi`, the count `K = #{X_i <= xi}` is
//! Binomial(n, q), and for order statistics `X_(l) <= xi < X_(u)` holds exactly when
//! `l <= K <= u - 1`. So any set of counts `[l, u - 1]` that holds `K` with
//! probability `1 - alpha` gives the interval `[X_(l), X_(u))` for `xi`. With ties
//! (latency is recorded in whole microseconds, in buckets) the closed interval
//! `[X_(l), X_(u)]` keeps the guarantee, at every `n` at once too: writing `X_i =
//! F^-1(U_i)` with uniform `U_i`, `U_i <= q` implies `X_i <= xi` and `X_i < xi` implies
//! `U_i < q`, so the counts of the `U_i` bound those of the `X_i` sample by sample.
//! The intervals here are closed.
//!
//! * Fixed N ([`exact_ranks`]): the classic order-statistic interval with exact
//!   binomial tails, each at most `alpha / 2` (the textbook distribution-free interval
//!   for a quantile, e.g. David and Nagaraja, *Order Statistics*, 3rd ed., 2003).
//! * Sequential ([`sequence_ranks`]): the counts `l <= K_t <= u - 1` for every `t` at
//!   once, from the beta-binomial mixture martingale of [`super::sequential`] applied
//!   to the indicators `1{X_i <= xi}` (mean exactly `q`): by Ville's inequality
//!   `M_t(q; K_t) < 1/alpha` for all `t` with probability at least `1 - alpha`, and the
//!   counts where it holds are an interval (`ln M_t` is convex in the count). This is
//!   the fixed-quantile confidence sequence of Howard and Ramdas, *Sequential
//!   estimation of quantiles with applications to A/B-testing and best-arm
//!   identification*, Bernoulli 28(3), 2022, Theorem 1 (order statistics at ranks
//!   `t q -+ f_t` for any uniform boundary `f_t` of the centred Bernoulli sums), with
//!   the beta-binomial mixture as the boundary (Howard, Ramdas, McAuliffe and Sekhon,
//!   Annals of Statistics 49(2), 2021, section 3; the same mixture their confseq
//!   library uses for fixed quantiles).
//!
//! Reading the histograms: values are stored in buckets; a lower end is read as the
//! lowest value of its bucket and an upper end as the highest, so the discretisation
//! only widens the interval. Without a valid lower rank the lower end is 0; without a
//! valid upper rank the upper end is the histogram's highest trackable value (longer
//! latencies were clamped to it when recorded). The estimate `X_(ceil(n q))` always
//! lies inside the interval.

use hdrhistogram::Histogram;
use statrs::distribution::{Binomial, DiscreteCDF};

use super::margin::Range;
use super::sequential::{Component, Prior};

/// The ranks (1-based) of the order statistics bounding a quantile: `X_(lower) <= xi <
/// X_(upper)`; `None` where no rank holds the confidence (the end is unbounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRanks {
    /// The lower end's rank.
    pub lower: Option<u64>,
    /// The upper end's rank.
    pub upper: Option<u64>,
}

/// The exact order-statistic ranks for the `q`-quantile of `n` samples, each end
/// missing the quantile with probability at most `tail`: the largest `lower` with
/// `P(K <= lower - 1) <= tail` and the smallest `upper` with `P(K >= upper) <= tail`,
/// `K ~ Binomial(n, q)`.
pub fn exact_ranks(n: u64, q: f64, tail: f64) -> OrderRanks {
    let none = OrderRanks {
        lower: None,
        upper: None,
    };
    if n == 0 || !(0.0..=1.0).contains(&q) {
        return none;
    }
    let Ok(k) = Binomial::new(q, n) else {
        return none;
    };
    // P(K <= r - 1) grows with r: the last r in 1..=n where it is at most `tail`.
    let below = |r: u64| k.cdf(r - 1) <= tail;
    let lower = below(1).then(|| last_true(1, n, below));
    // P(K >= r) shrinks with r: the first r in 1..=n where it is at most `tail`.
    let above = |r: u64| k.sf(r - 1) <= tail;
    let upper = above(n).then(|| first_true(1, n, above));
    OrderRanks { lower, upper }
}

/// The last `r` in `lo..=hi` where `pred` holds, `pred(lo)` true, `pred` true then false.
fn last_true(mut lo: u64, mut hi: u64, pred: impl Fn(u64) -> bool) -> u64 {
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if pred(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// The first `r` in `lo..=hi` where `pred` holds, `pred(hi)` true, `pred` false then true.
fn first_true(mut lo: u64, mut hi: u64, pred: impl Fn(u64) -> bool) -> u64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    hi
}

/// The sample counts at which the sequential mixture is tuned to be tightest: a mixture
/// of three Beta components around `q`, one per count, each with the prior weight
/// that the normal-mixture tuning rule gives for its count (Howard et al. 2021, as in
/// their confseq library: `rho = t / (2 ln(1/alpha) + ln(1 + 2 ln(1/alpha)))`, here
/// prior samples `rho / (q (1 - q)) - 1`). Health metrics
/// decide between a few thousand and a few hundred thousand samples per version; the
/// mixture costs `ln 3` in the threshold and keeps the boundary near its best across
/// that range (tuning affects how soon a verdict comes, never its validity).
pub const TUNED_AT: [f64; 3] = [2_000.0, 10_000.0, 50_000.0];

/// The mixing distribution for the indicators `1{X <= xi}` of the `q`-quantile at `alpha`.
pub fn quantile_prior(q: f64, alpha: f64) -> Prior {
    let l = (1.0 / alpha).ln();
    let per = 2.0 * l + (1.0 + 2.0 * l).ln();
    Prior {
        components: TUNED_AT
            .map(|t| Component::with_size(1.0 / TUNED_AT.len() as f64, q, t / per - 1.0)),
    }
}

/// The confidence-sequence ranks for the `q`-quantile after `t` samples at the error
/// `alpha` (valid at every `t` at once): the counts `k` with `M_t(q; k) < 1/alpha` are
/// `k_lo..=k_hi`, and the ranks are `k_lo` (if at least 1) and `k_hi + 1` (if at most `t`).
pub fn sequence_ranks(t: u64, q: f64, alpha: f64) -> OrderRanks {
    let none = OrderRanks {
        lower: None,
        upper: None,
    };
    if t == 0 || !(q > 0.0 && q < 1.0) {
        return none;
    }
    let marginal = quantile_prior(q, alpha).at(t as f64);
    let threshold = (1.0 / alpha).ln();
    let tf = t as f64;
    let (ln_q, ln_not_q) = (q.ln(), (1.0 - q).ln());
    let inside = |k: u64| {
        let kf = k as f64;
        marginal.ln(kf) - (kf * ln_q + (tf - kf) * ln_not_q) < threshold
    };
    // The martingale is at most 1 at the count nearest `t q` (the mixture's marginal
    // is at most the maximum likelihood), so that count is inside.
    let centre = ((tf * q).round() as u64).min(t);
    if !inside(centre) {
        return none;
    }
    // The edges lie a few binomial standard deviations out: gallop from there.
    let step = (3.0 * (tf * q * (1.0 - q)).sqrt()).ceil().max(1.0) as u64;
    let k_lo = gallop_down(centre, step, inside);
    let k_hi = gallop_up(centre, t, step, inside);
    OrderRanks {
        lower: (k_lo >= 1).then_some(k_lo),
        upper: (k_hi < t).then_some(k_hi + 1),
    }
}

/// The smallest `k` in `0..=from` where `inside` holds, given `inside(from)` and that
/// it holds on an interval: steps down by `step`, doubling, until outside, then bisects.
fn gallop_down(from: u64, step: u64, inside: impl Fn(u64) -> bool) -> u64 {
    let (mut hi, mut step) = (from, step);
    let outside = loop {
        if hi == 0 {
            return 0;
        }
        let probe = hi.saturating_sub(step);
        if !inside(probe) {
            break probe;
        }
        hi = probe;
        step = step.saturating_mul(2);
    };
    first_true(outside + 1, hi, inside)
}

/// The largest `k` in `from..=top` where `inside` holds, given `inside(from)` and that
/// it holds on an interval (the mirror of [`gallop_down`]).
fn gallop_up(from: u64, top: u64, step: u64, inside: impl Fn(u64) -> bool) -> u64 {
    let (mut lo, mut step) = (from, step);
    let outside = loop {
        if lo == top {
            return top;
        }
        let probe = lo.saturating_add(step).min(top);
        if !inside(probe) {
            break probe;
        }
        lo = probe;
        step = step.saturating_mul(2);
    };
    last_true(lo, outside - 1, inside)
}

/// The value of rank `rank` (1-based, at most `h.len()`) in `h`: the highest value
/// of its bucket.
fn value_at_rank(h: &Histogram<u64>, rank: u64) -> u64 {
    // hdrhistogram looks up the count ceil(quantile n): half a rank below keeps it exact.
    h.value_at_quantile((rank as f64 - 0.5) / h.len() as f64)
}

/// The interval `[X_(lower), X_(upper)]` of `ranks` in `h` (unbounded ends at 0 and
/// at the highest trackable value); `None` when `h` is empty.
pub fn interval(h: &Histogram<u64>, ranks: OrderRanks) -> Option<(f64, f64)> {
    if h.is_empty() {
        return None;
    }
    let n = h.len();
    let low = ranks
        .lower
        .filter(|&r| r <= n)
        .map_or(0, |r| h.lowest_equivalent(value_at_rank(h, r)));
    let high = ranks
        .upper
        .filter(|&r| r <= n)
        .map_or(h.high(), |r| value_at_rank(h, r));
    Some((low as f64, high as f64))
}

/// The interval of the relative change `canary / stable - 1` of two quantiles from
/// the arms' intervals `(low, high)`: if each arm's interval holds its quantile, the
/// ratio lies between `canary low / stable high` and `canary high / stable low` (so the
/// ratio's error is at most the sum of the arms').
pub fn ratio_interval(canary: (f64, f64), stable: (f64, f64)) -> Range {
    Range {
        low: change(canary.0, stable.1),
        high: change(canary.1, stable.0),
    }
}

/// The relative change `a / b - 1` (latency is at least 1 µs: no division by zero).
pub fn change(a: f64, b: f64) -> f64 {
    a / b.max(1.0) - 1.0
}

#[cfg(test)]
pub(crate) fn histogram(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(
        1,
        crate::tally::MAX_LATENCY_US,
        crate::tally::LATENCY_SIGFIG,
    )
    .expect("valid bounds");
    for v in values {
        h.record(v).expect("a value within the bounds");
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::distribution::Discrete;

    /// `P(lower <= K <= upper - 1)` for `K ~ Binomial(n, q)`, unbounded ends included:
    /// the exact coverage of `[X_(lower), X_(upper))` for a continuous distribution.
    fn coverage(n: u64, q: f64, r: OrderRanks) -> f64 {
        let k = Binomial::new(q, n).unwrap();
        let lo = r.lower.unwrap_or(0);
        let hi = r.upper.map_or(n, |u| u - 1);
        (lo..=hi).map(|x| k.pmf(x)).sum()
    }

    #[test]
    fn exact_ranks_cover_and_are_the_tightest_that_do() {
        for (n, q, tail) in [
            (20u64, 0.5, 0.025),
            (50, 0.9, 0.025),
            (100, 0.99, 0.005),
            (137, 0.95, 0.01),
            (1000, 0.99, 0.0025),
            (7, 0.5, 0.05),
        ] {
            let r = exact_ranks(n, q, tail);
            let k = Binomial::new(q, n).unwrap();
            // Each end misses with probability at most `tail`...
            if let Some(l) = r.lower {
                assert!(k.cdf(l - 1) <= tail, "n={n} q={q}: {r:?}");
                // ...and one rank tighter would miss more often.
                if l < n {
                    assert!(k.cdf(l) > tail, "n={n} q={q}: {r:?}");
                }
            } else {
                assert!(k.cdf(0) > tail);
            }
            if let Some(u) = r.upper {
                assert!(k.sf(u - 1) <= tail, "n={n} q={q}: {r:?}");
                if u > 1 {
                    assert!(k.sf(u - 2) > tail, "n={n} q={q}: {r:?}");
                }
            } else {
                assert!(k.sf(n - 1) > tail);
            }
            assert!(
                coverage(n, q, r) >= 1.0 - 2.0 * tail - 1e-12,
                "n={n} q={q}: {r:?}"
            );
        }
    }

    #[test]
    fn exact_ranks_match_the_textbook_median_interval() {
        // n = 20, the median at 95%: the classic interval is [X_(6), X_(15)], coverage
        // 1 - 2 P(K <= 5) = 0.9586 (e.g. Conover, Practical Nonparametric Statistics).
        let r = exact_ranks(20, 0.5, 0.025);
        assert_eq!(
            r,
            OrderRanks {
                lower: Some(6),
                upper: Some(15)
            }
        );
        assert!((coverage(20, 0.5, r) - 0.958_611).abs() < 1e-6);
        // Too few samples for a p99: both ends unbounded.
        let r = exact_ranks(100, 0.99, 0.005);
        assert_eq!(r.upper, None);
    }

    #[test]
    fn sequence_ranks_are_wider_than_fixed_and_narrow_with_n() {
        let alpha = 0.01 / 6.0;
        for (t, q) in [
            (5_000u64, 0.99),
            (20_000, 0.99),
            (2_000, 0.5),
            (50_000, 0.95),
        ] {
            let fixed = exact_ranks(t, q, alpha / 2.0);
            let seq = sequence_ranks(t, q, alpha);
            let (fl, fu) = (fixed.lower.unwrap(), fixed.upper.unwrap());
            let (sl, su) = (seq.lower.unwrap(), seq.upper.unwrap());
            assert!(sl <= fl && su >= fu, "t={t} q={q}: {seq:?} vs {fixed:?}");
            // Not absurdly wider: at most 1.6 times the fixed width at these counts.
            assert!(
                (su - sl) as f64 <= 1.6 * (fu - fl) as f64,
                "t={t}: {seq:?} vs {fixed:?}"
            );
            // The exact coverage at this one t is at least the fixed interval's.
            assert!(coverage(t, q, seq) >= coverage(t, q, fixed) - 1e-12);
        }
        let width = |t: u64| {
            let r = sequence_ranks(t, 0.99, alpha);
            (r.upper.unwrap() - r.lower.unwrap()) as f64 / t as f64
        };
        assert!(width(40_000) < width(10_000));
        // Few samples: the upper end of a p99 is unbounded.
        assert_eq!(sequence_ranks(300, 0.99, alpha).upper, None);
    }

    #[test]
    fn the_mixture_holds_a_binomial_count_at_every_t_with_the_confidence() {
        // Brute force: the chance that K_t ever leaves [lower, upper - 1] up to t = 3000,
        // computed exactly by dynamic programming over the counts, is at most alpha.
        let (q, alpha) = (0.9, 0.05);
        let t_max = 3_000usize;
        let mut alive = vec![1.0f64]; // P(K_t = k and never out so far)
        let mut escaped = 0.0;
        for t in 1..=t_max {
            let mut next = vec![0.0; t + 1];
            for (k, p) in alive.iter().enumerate() {
                next[k] += p * (1.0 - q);
                next[k + 1] += p * q;
            }
            let r = sequence_ranks(t as u64, q, alpha);
            let lo = r.lower.unwrap_or(0) as usize;
            let hi = r.upper.map_or(t, |u| u as usize - 1);
            for (k, p) in next.iter_mut().enumerate() {
                if k < lo || k > hi {
                    escaped += *p;
                    *p = 0.0;
                }
            }
            alive = next;
        }
        assert!(escaped <= alpha, "escaped {escaped}");
        assert!(escaped > 0.0);
    }

    #[test]
    fn intervals_read_the_order_statistics() {
        let h = histogram(1..=1000);
        let ranks = |lower, upper| OrderRanks { lower, upper };
        assert_eq!(
            interval(&h, ranks(Some(400), Some(601))),
            Some((400.0, 601.0))
        );
        let open = interval(&h, ranks(None, None)).unwrap();
        assert_eq!(open, (0.0, h.high() as f64));
        // Above 2048 µs buckets are 2 µs wide: ends widen to the bucket's edges.
        let h = histogram((0..1000).map(|i| 3000 + 2 * i + 1));
        assert_eq!(
            interval(&h, ranks(Some(1), Some(1000))),
            Some((3000.0, 4999.0))
        );
        assert_eq!(interval(&histogram([]), ranks(None, None)), None);
    }

    #[test]
    fn the_estimate_lies_inside_every_interval() {
        // The sample quantile X_(ceil(n q)) lies between the exact and the sequence
        // ranks' ends, for any n.
        for n in [1u64, 2, 5, 20, 99, 100, 101, 1000, 5000] {
            let h = histogram(1..=n);
            for q in [0.5, 0.9, 0.99, 0.999] {
                let estimate = h.value_at_quantile(q) as f64;
                for r in [exact_ranks(n, q, 0.0025), sequence_ranks(n, q, 0.005)] {
                    let (low, high) = interval(&h, r).unwrap();
                    assert!(low <= estimate && estimate <= high, "n={n} q={q} {r:?}");
                }
            }
        }
    }

    #[test]
    fn the_ratio_interval_spans_the_ends() {
        let r = ratio_interval((240.0, 360.0), (180.0, 240.0));
        assert!(
            (r.low - 0.0).abs() < 1e-12 && (r.high - 1.0).abs() < 1e-12,
            "{r:?}"
        );
        assert!((change(300.0, 200.0) - 0.5).abs() < 1e-12);
        assert!(change(5.0, 0.0) == 4.0);
    }
}
