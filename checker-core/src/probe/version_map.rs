//! Names for captured values: `7.0.15=stable,7.2.4=canary`, so that an expectation
//! reads `stable=90,canary=10` whatever the service calls its versions.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use protocol::{VersionError, validate_version};

/// The most entries a map may hold (a split has a handful of versions).
pub const MAX_ENTRIES: usize = 256;
/// The longest captured value a map entry may name, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;

/// Captured values and the version names they stand for; empty = every value is its own name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionMap {
    names: BTreeMap<String, String>,
}

/// Why a version map cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionMapError {
    /// An item is not `VALUE=NAME`.
    #[error("expected VALUE=NAME, got {0:?}")]
    Syntax(String),
    /// The name is not usable as a version name.
    #[error("the name of {value:?}: {source}")]
    Name {
        /// The captured value being named.
        value: String,
        /// Why the name is refused.
        source: VersionError,
    },
    /// The same value is named twice.
    #[error("the value {0:?} is named twice")]
    Duplicate(String),
    /// A value is longer than [`MAX_VALUE_LEN`].
    #[error("a value is {0} bytes long, the limit is {MAX_VALUE_LEN}")]
    ValueTooLong(usize),
    /// More than [`MAX_ENTRIES`] entries.
    #[error("more than {MAX_ENTRIES} values are named")]
    TooMany,
}

impl VersionMap {
    /// Builds a map from `(value, name)` pairs; names must be valid version names.
    pub fn new<V: Into<String>, N: Into<String>>(
        pairs: impl IntoIterator<Item = (V, N)>,
    ) -> Result<Self, VersionMapError> {
        let mut names = BTreeMap::new();
        for (value, name) in pairs {
            let (value, name) = (value.into(), name.into());
            if value.is_empty() {
                return Err(VersionMapError::Syntax(format!("={name}")));
            }
            if value.len() > MAX_VALUE_LEN {
                return Err(VersionMapError::ValueTooLong(value.len()));
            }
            if let Err(source) = validate_version(&name) {
                return Err(VersionMapError::Name { value, source });
            }
            if names.len() == MAX_ENTRIES {
                return Err(VersionMapError::TooMany);
            }
            if names.contains_key(&value) {
                return Err(VersionMapError::Duplicate(value));
            }
            names.insert(value, name);
        }
        Ok(Self { names })
    }

    /// The name of `value`, when the map names it.
    pub fn name_of(&self, value: &str) -> Option<&str> {
        if self.names.is_empty() {
            return None;
        }
        self.names.get(value).map(String::as_str)
    }

    /// True when nothing is named.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names given, each once, in order.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.names.values().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// `(value, name)` pairs, by value.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.names.iter().map(|(v, n)| (v.as_str(), n.as_str()))
    }
}

/// Parses `VALUE=NAME,VALUE=NAME`; a value may hold `=` (the last one separates the name).
impl FromStr for VersionMap {
    type Err = VersionMapError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut pairs = Vec::new();
        for item in s.split(',') {
            let (value, name) = item
                .rsplit_once('=')
                .ok_or_else(|| VersionMapError::Syntax(item.to_owned()))?;
            pairs.push((value, name));
        }
        Self::new(pairs)
    }
}

impl fmt::Display for VersionMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (value, name)) in self.names.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{value}={name}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_named_and_others_are_not() {
        let map: VersionMap = "7.0.15=stable,7.2.4=canary".parse().unwrap();
        assert_eq!(map.name_of("7.0.15"), Some("stable"));
        assert_eq!(map.name_of("7.2.4"), Some("canary"));
        assert_eq!(map.name_of("6.2.0"), None);
        assert_eq!(map.names(), vec!["canary", "stable"]);
        assert_eq!(map.to_string(), "7.0.15=stable,7.2.4=canary");
    }

    #[test]
    fn a_value_may_hold_equals_and_spaces() {
        let map: VersionMap = "CN=a b=one,O=x=two".parse().unwrap();
        assert_eq!(map.name_of("CN=a b"), Some("one"));
        assert_eq!(map.name_of("O=x"), Some("two"));
        assert_eq!(map.name_of("CN"), None);
        let map: VersionMap = "SSH-2.0-OpenSSH_9.2p1 canary=canary".parse().unwrap();
        assert_eq!(map.name_of("SSH-2.0-OpenSSH_9.2p1 canary"), Some("canary"));
    }

    #[test]
    fn bad_maps_are_refused_with_the_reason() {
        assert_eq!(
            "7.0.15".parse::<VersionMap>(),
            Err(VersionMapError::Syntax("7.0.15".into()))
        );
        assert_eq!(
            "=one".parse::<VersionMap>(),
            Err(VersionMapError::Syntax("=one".into()))
        );
        assert!(matches!(
            "1=a b".parse::<VersionMap>(),
            Err(VersionMapError::Name { .. })
        ));
        assert!(matches!(
            "1=".parse::<VersionMap>(),
            Err(VersionMapError::Name { .. })
        ));
        assert_eq!(
            "1=a,1=b".parse::<VersionMap>(),
            Err(VersionMapError::Duplicate("1".into()))
        );
        let many = (0..=MAX_ENTRIES)
            .map(|i| format!("{i}=v{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(many.parse::<VersionMap>(), Err(VersionMapError::TooMany));
        let long = format!("{}=one", "x".repeat(MAX_VALUE_LEN + 1));
        assert!(matches!(
            long.parse::<VersionMap>(),
            Err(VersionMapError::ValueTooLong(_))
        ));
    }
}
