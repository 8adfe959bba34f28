//! The error rates' confidence sequences, by themselves: each arm's rate as a
//! beta-binomial mixture (see [`super::sequential`]), and the difference of two rates.
//! A leaf below [`super::compare`] (which takes the sequential interval from here) and
//! [`super::compare_sequence`] (which re-exports it).

use super::margin::Range;
use super::sequential::{Component, Prior, share_interval};

/// The error rates the error-rate mixture is centred on: healthy services fail between
/// one connection in a thousand and one in ten; each component carries the weight of
/// [`RATE_PRIOR_SIZE`] prior samples. Fixed before any data: it affects how soon a
/// verdict comes, never its validity.
pub const RATE_PRIOR_MEANS: [f64; 3] = [0.001, 0.01, 0.1];

/// The prior weight (in samples) of each error-rate mixture component.
pub const RATE_PRIOR_SIZE: f64 = 100.0;

/// The mixing distribution of an arm's error-rate sequence.
pub fn rate_prior() -> Prior {
    Prior {
        components: RATE_PRIOR_MEANS
            .map(|m| Component::with_size(1.0 / RATE_PRIOR_MEANS.len() as f64, m, RATE_PRIOR_SIZE)),
    }
}

/// The confidence sequence of `x1/n1 - x2/n2` at the error `alpha`, valid at every
/// sample count at once: each arm's sequence at `alpha / 2`, combined at their ends.
pub fn rate_difference(x1: u64, n1: u64, x2: u64, n2: u64, alpha: f64) -> Range {
    let prior = rate_prior();
    let a = share_interval(x1, n1, prior, alpha / 2.0);
    let b = share_interval(x2, n2, prior, alpha / 2.0);
    Range {
        low: a.low - b.high,
        high: a.high - b.low,
    }
}
