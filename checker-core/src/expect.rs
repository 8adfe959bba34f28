//! The expected split: version names and weights, parsed from `one=90,two=10`.
//!
//! Weights are proportions, normalised by their total as Istio does since 1.15, so
//! `one=9,two=1` and `one=90,two=10` mean the same split. Zero is allowed (that
//! version must not answer at all); all zero is an error.

use std::fmt;
use std::str::FromStr;

use protocol::validate_version;

/// One expected version and its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedVersion {
    /// The version string the server prefixes its replies with.
    pub name: String,
    /// The weight as given on the command line.
    pub weight: f64,
    /// The weight divided by the total of all weights, in 0..=1.
    pub share: f64,
}

/// The expected split over one or more versions (one alone: only it may answer).
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    versions: Vec<ExpectedVersion>,
}

/// Why an expectation cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExpectError {
    /// An item is not of the form `name=weight`.
    #[error("expected NAME=WEIGHT, got {0:?}")]
    Syntax(String),
    /// A weight is not a finite number of zero or more.
    #[error("the weight of {name:?} must be a number of zero or more, got {weight:?}")]
    Weight {
        /// The version whose weight is wrong.
        name: String,
        /// The weight as given.
        weight: String,
    },
    /// A version name is not usable as a reply prefix.
    #[error("{0}")]
    Version(#[from] protocol::VersionError),
    /// The same version appears twice.
    #[error("the version {0:?} is listed twice")]
    Duplicate(String),
    /// No version was given.
    #[error("at least one version is needed, e.g. one=90,two=10 (or one=100: only one may answer)")]
    TooFew,
    /// Every weight is zero.
    #[error("all weights are zero; at least one version must receive traffic")]
    AllZero,
    /// The weights add up to more than a floating-point number holds, so no share can be computed.
    #[error(
        "the weights add up to more than a number can hold; use smaller weights, e.g. one=90,two=10"
    )]
    TotalTooLarge,
}

impl Expectation {
    /// Builds an expectation from `(name, weight)` pairs.
    pub fn new<S: Into<String>>(
        pairs: impl IntoIterator<Item = (S, f64)>,
    ) -> Result<Self, ExpectError> {
        let mut versions: Vec<ExpectedVersion> = Vec::new();
        for (name, weight) in pairs {
            let name = name.into();
            validate_version(&name)?;
            if !weight.is_finite() || weight < 0.0 {
                return Err(ExpectError::Weight {
                    name,
                    weight: weight.to_string(),
                });
            }
            if versions.iter().any(|v| v.name == name) {
                return Err(ExpectError::Duplicate(name));
            }
            versions.push(ExpectedVersion {
                name,
                weight,
                share: 0.0,
            });
        }
        if versions.is_empty() {
            return Err(ExpectError::TooFew);
        }
        let total: f64 = versions.iter().map(|v| v.weight).sum();
        if total <= 0.0 {
            return Err(ExpectError::AllZero);
        }
        if !total.is_finite() {
            return Err(ExpectError::TotalTooLarge);
        }
        for v in &mut versions {
            v.share = v.weight / total;
        }
        Ok(Self { versions })
    }

    /// The expectation a split derived from manifests describes (`--expect-from`).
    pub fn from_derivation(derivation: &manifests::Derivation) -> Result<Self, ExpectError> {
        Self::new(derivation.weights())
    }

    /// The versions in the order given.
    pub fn versions(&self) -> &[ExpectedVersion] {
        &self.versions
    }

    /// The expected share of `name`, or `None` when it is not expected at all.
    pub fn share_of(&self, name: &str) -> Option<f64> {
        self.versions
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.share)
    }
}

impl FromStr for Expectation {
    type Err = ExpectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut pairs = Vec::new();
        for item in s.split(',').map(str::trim) {
            let (name, weight) = item
                .split_once('=')
                .ok_or_else(|| ExpectError::Syntax(item.to_owned()))?;
            let (name, weight) = (name.trim(), weight.trim());
            let value: f64 = weight.parse().map_err(|_| ExpectError::Weight {
                name: name.to_owned(),
                weight: weight.to_owned(),
            })?;
            pairs.push((name.to_owned(), value));
        }
        Self::new(pairs)
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.versions.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", v.name, v.weight)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_normalised_by_their_total() {
        let e: Expectation = "one=9,two=1".parse().unwrap();
        assert_eq!(e.share_of("one"), Some(0.9));
        assert_eq!(e.share_of("two"), Some(0.1));
        assert_eq!(e.share_of("three"), None);
        assert_eq!(e.to_string(), "one=9,two=1");
    }

    #[test]
    fn zero_is_allowed_but_not_all_zero() {
        let e: Expectation = "one=100, two=0".parse().unwrap();
        assert_eq!(e.share_of("two"), Some(0.0));
        assert_eq!(
            "one=0,two=0".parse::<Expectation>(),
            Err(ExpectError::AllZero)
        );
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(
            "one".parse::<Expectation>(),
            Err(ExpectError::Syntax("one".into()))
        );
        assert!(matches!(
            "one=x,two=1".parse::<Expectation>(),
            Err(ExpectError::Weight { .. })
        ));
        assert!(matches!(
            "one=-1,two=1".parse::<Expectation>(),
            Err(ExpectError::Weight { .. })
        ));
        assert!(matches!(
            "one=nan,two=1".parse::<Expectation>(),
            Err(ExpectError::Weight { .. })
        ));
        assert_eq!(
            "one=1,one=2".parse::<Expectation>(),
            Err(ExpectError::Duplicate("one".into()))
        );
        assert_eq!(
            Expectation::new(Vec::<(String, f64)>::new()),
            Err(ExpectError::TooFew)
        );
        // A single version is a split of 100%: only it may answer.
        let only: Expectation = "one=100".parse().unwrap();
        assert_eq!(only.share_of("one"), Some(1.0));
        // Each weight is finite, their total is not: every share would be 0.
        assert_eq!(
            "one=1e308,two=1e308".parse::<Expectation>(),
            Err(ExpectError::TotalTooLarge)
        );
        assert!(matches!(
            "o ne=1,two=1".parse::<Expectation>(),
            Err(ExpectError::Version(_))
        ));
    }
}
