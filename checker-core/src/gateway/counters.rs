//! What the gateway counted: snapshots of connection counters per key (a cluster name,
//! or an Istio `destination_version`), the difference between two snapshots of one
//! source, and the differences of several sources (gateway pods) added up per version.
//!
//! A counter that went down was reset (the gateway restarted): the reset is reported
//! and the value after it is taken as the count since the restart, as Prometheus's
//! `increase()` does; a count is never negative.

use std::collections::BTreeMap;

use serde::Serialize;

use super::mapping::MapError;

/// The counter of opened connections (per cluster: `upstream_cx_total`).
pub const OPENED: &str = "upstream_cx_total";
/// Connections the gateway failed to open to the cluster.
pub const CONNECT_FAIL: &str = "upstream_cx_connect_fail";
/// Connections the upstream closed while requests were active.
pub const DESTROY_REMOTE_WITH_ACTIVE_RQ: &str = "upstream_cx_destroy_remote_with_active_rq";

/// The counters of one key at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Connections opened.
    pub opened: u64,
    /// Connect failures, where the source shows them.
    pub connect_fail: Option<u64>,
    /// Remote closes with active requests, where the source shows them.
    pub destroy_remote_with_active_rq: Option<u64>,
}

/// One source's counters at one moment, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The source (an admin URL, a scrape URL, a file).
    pub source: String,
    /// Counters by key (cluster name or version label value).
    pub keys: BTreeMap<String, Counters>,
}

/// A counter that went down between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reset {
    /// The source.
    pub source: String,
    /// The key (cluster or version label).
    pub key: String,
    /// The counter (`upstream_cx_total`, ...).
    pub counter: String,
    /// Its value before.
    pub before: u64,
    /// Its value after (0 when it vanished).
    pub after: u64,
}

/// What happened between two snapshots, by key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Delta {
    /// Connections opened in between.
    pub opened: u64,
    /// Connect failures in between, where shown.
    pub connect_fail: Option<u64>,
    /// Remote closes with active requests in between, where shown.
    pub destroy_remote_with_active_rq: Option<u64>,
}

impl Delta {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Delta) {
        self.opened = self.opened.saturating_add(other.opened);
        self.connect_fail = add_optional(self.connect_fail, other.connect_fail);
        self.destroy_remote_with_active_rq = add_optional(
            self.destroy_remote_with_active_rq,
            other.destroy_remote_with_active_rq,
        );
    }
}

fn add_optional(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}

/// One source's differences between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceDelta {
    /// The source.
    pub source: String,
    /// Differences by key.
    pub keys: BTreeMap<String, Delta>,
    /// Counters that went down (reset) in between.
    pub resets: Vec<Reset>,
}

/// The increase of one counter from `before` to `after`; a decrease is a reset, after
/// which `after` counts from zero.
fn increase(
    before: Option<u64>,
    after: Option<u64>,
    reset: &mut impl FnMut(&str, u64, u64),
    counter: &str,
) -> Option<u64> {
    match (before, after) {
        (None, None) => None,
        // Absent before: the counter (a series created on first use) started at 0.
        (None, Some(a)) => Some(a),
        (Some(b), a) => {
            let a_value = a.unwrap_or(0);
            if a_value < b {
                reset(counter, b, a_value);
                Some(a_value)
            } else {
                Some(a_value - b)
            }
        }
    }
}

/// The differences from `before` to `after` (snapshots of the same source), key by
/// key; keys that appear only after start from zero, keys that vanish are resets.
pub fn delta(before: &Snapshot, after: &Snapshot) -> SourceDelta {
    let mut out = SourceDelta {
        source: after.source.clone(),
        ..SourceDelta::default()
    };
    let keys: std::collections::BTreeSet<&String> =
        before.keys.keys().chain(after.keys.keys()).collect();
    let source = &after.source;
    for key in keys {
        let b = before.keys.get(key);
        let a = after.keys.get(key);
        let mut resets = Vec::new();
        let mut note = |counter: &str, before: u64, after: u64| {
            resets.push(Reset {
                source: source.clone(),
                key: key.clone(),
                counter: counter.to_owned(),
                before,
                after,
            });
        };
        let d = Delta {
            opened: increase(b.map(|c| c.opened), a.map(|c| c.opened), &mut note, OPENED)
                .unwrap_or(0),
            connect_fail: increase(
                b.and_then(|c| c.connect_fail),
                a.and_then(|c| c.connect_fail),
                &mut note,
                CONNECT_FAIL,
            ),
            destroy_remote_with_active_rq: increase(
                b.and_then(|c| c.destroy_remote_with_active_rq),
                a.and_then(|c| c.destroy_remote_with_active_rq),
                &mut note,
                DESTROY_REMOTE_WITH_ACTIVE_RQ,
            ),
        };
        out.resets.extend(resets);
        out.keys.insert(key.clone(), d);
    }
    out
}

/// The increase of a counter over a series of samples in time order: the sum of its
/// rises, a fall being a reset after which the new value counts from zero (as
/// Prometheus's `increase()` does, without its extrapolation to the window's edges).
pub fn series_increase(values: &[u64]) -> (u64, Vec<(u64, u64)>) {
    let mut total = 0u64;
    let mut resets = Vec::new();
    for pair in values.windows(2) {
        let (b, a) = (pair[0], pair[1]);
        if a < b {
            resets.push((b, a));
            total = total.saturating_add(a);
        } else {
            total = total.saturating_add(a - b);
        }
    }
    (total, resets)
}

/// Counts per version, every source added up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VersionCounts {
    /// The differences per version (all sources, all keys of that version).
    pub versions: BTreeMap<String, Delta>,
    /// Every reset of every source.
    pub resets: Vec<Reset>,
    /// How many sources were added.
    pub sources: usize,
}

impl VersionCounts {
    /// `(version, opened)` pairs, as the verdict takes them.
    pub fn opened(&self) -> Vec<(String, u64)> {
        self.versions
            .iter()
            .map(|(v, d)| (v.clone(), d.opened))
            .collect()
    }

    /// Connections opened, all versions.
    pub fn total_opened(&self) -> u64 {
        self.versions
            .values()
            .fold(0u64, |sum, d| sum.saturating_add(d.opened))
    }
}

/// Adds up the sources' differences per version; `version_of` maps a key to its version
/// (keys it returns `Ok(None)` for are not part of the split and are left out).
pub fn by_version(
    deltas: &[SourceDelta],
    mut version_of: impl FnMut(&str) -> Result<Option<String>, MapError>,
) -> Result<VersionCounts, MapError> {
    let mut out = VersionCounts {
        sources: deltas.len(),
        ..VersionCounts::default()
    };
    for d in deltas {
        for (key, delta) in &d.keys {
            if let Some(version) = version_of(key)? {
                out.versions.entry(version).or_default().add(delta);
            }
        }
        out.resets.extend(d.resets.iter().cloned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(source: &str, keys: &[(&str, u64, Option<u64>)]) -> Snapshot {
        Snapshot {
            source: source.to_owned(),
            keys: keys
                .iter()
                .map(|&(k, opened, fail)| {
                    (
                        k.to_owned(),
                        Counters {
                            opened,
                            connect_fail: fail,
                            destroy_remote_with_active_rq: None,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_delta_is_the_rise_of_each_counter() {
        let d = delta(
            &snap("pod-a", &[("a", 100, Some(1)), ("b", 50, None)]),
            &snap(
                "pod-a",
                &[("a", 180, Some(3)), ("b", 70, None), ("c", 5, None)],
            ),
        );
        assert_eq!(
            d.keys["a"],
            Delta {
                opened: 80,
                connect_fail: Some(2),
                destroy_remote_with_active_rq: None
            }
        );
        assert_eq!(d.keys["b"].opened, 20);
        assert_eq!(d.keys["c"].opened, 5, "a key that appears starts from zero");
        assert!(d.resets.is_empty());
    }

    #[test]
    fn a_counter_that_went_down_is_a_reset_never_a_negative_count() {
        let d = delta(
            &snap("pod-a", &[("a", 1000, Some(9)), ("b", 50, None)]),
            &snap("pod-a", &[("a", 30, Some(10))]),
        );
        assert_eq!(d.keys["a"].opened, 30, "counted since the restart");
        assert_eq!(d.keys["a"].connect_fail, Some(1));
        assert_eq!(d.keys["b"].opened, 0, "a vanished key counts nothing");
        assert_eq!(
            d.resets,
            [
                Reset {
                    source: "pod-a".into(),
                    key: "a".into(),
                    counter: OPENED.into(),
                    before: 1000,
                    after: 30
                },
                Reset {
                    source: "pod-a".into(),
                    key: "b".into(),
                    counter: OPENED.into(),
                    before: 50,
                    after: 0
                },
            ]
        );
    }

    #[test]
    fn a_series_increase_sums_rises_across_resets() {
        assert_eq!(series_increase(&[]), (0, vec![]));
        assert_eq!(series_increase(&[5]), (0, vec![]));
        assert_eq!(series_increase(&[5, 7, 7, 10]), (5, vec![]));
        assert_eq!(series_increase(&[5, 10, 2, 4]), (5 + 2 + 2, vec![(10, 2)]));
    }

    #[test]
    fn sources_add_up_per_version() {
        let a = delta(
            &snap("a", &[("c1", 0, None), ("c2", 0, None)]),
            &snap("a", &[("c1", 80, None), ("c2", 20, None)]),
        );
        let b = delta(
            &snap("b", &[("c1", 10, None)]),
            &snap(
                "b",
                &[("c1", 20, None), ("c2", 5, None), ("other", 99, None)],
            ),
        );
        let counts = by_version(&[a, b], |key| {
            Ok(match key {
                "c1" => Some("one".to_owned()),
                "c2" => Some("two".to_owned()),
                _ => None,
            })
        })
        .unwrap();
        assert_eq!(
            counts.opened(),
            [("one".to_owned(), 90), ("two".to_owned(), 25)]
        );
        assert_eq!(counts.total_opened(), 115);
        assert_eq!(counts.sources, 2);
        let err = by_version(
            &[delta(&snap("a", &[]), &snap("a", &[("x", 1, None)]))],
            |_| Err(MapError::UnknownVersionLabel),
        );
        assert!(err.is_err());
    }
}
