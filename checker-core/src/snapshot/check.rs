//! A snapshot read back is checked before it becomes a tally: every name is a version
//! name, every count agrees with the histograms and the windows that count the same
//! samples, nothing adds past 2^64-1, and versions beyond
//! [`MAX_TRACKED_VERSIONS`] are folded into [`OTHER_VERSIONS`] as a run folds them.
//! Each refusal names the field, as the report's JSON spells it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::model::{HISTOGRAM_ENCODING, SnapshotError, TallySnapshot, WindowingSnapshot, decode};
use crate::sampler::ErrorClass;
use crate::tally::{
    MALFORMED_KEPT, MAX_TRACKED_VERSIONS, OTHER_VERSIONS, REASONS_KEPT, Tally, TallyParts,
    VersionTally, WINDOWS, Window, Windowing,
};

/// A tally read back, with the versions folded to keep it bounded.
#[derive(Debug, Clone)]
pub struct ReadBack {
    /// The tally.
    pub tally: Tally,
    /// The versions counted as [`OTHER_VERSIONS`] because more than
    /// [`MAX_TRACKED_VERSIONS`] were named, by name.
    pub folded: Vec<String>,
}

fn field(field: impl Into<String>, why: impl Into<String>) -> SnapshotError {
    SnapshotError::Field {
        field: field.into(),
        why: why.into(),
    }
}

/// `a + b`, or the error that names `at`.
fn add(a: u64, b: u64, at: &str) -> Result<u64, SnapshotError> {
    a.checked_add(b)
        .ok_or_else(|| field(at, "adds up to more than 2^64-1"))
}

/// Refuses a name that no version could have (and that is not the fold's own name).
fn check_name(at: &str, name: &str) -> Result<(), SnapshotError> {
    if name == OTHER_VERSIONS {
        return Ok(());
    }
    protocol::validate_version(name).map_err(|e| {
        field(
            at,
            format!(
                "holds \"{}\", which is not a version name ({e})",
                protocol::escape(name)
            ),
        )
    })
}

/// The versions that keep their names: all of them when they fit, else the ones in
/// `prefer`, then the largest (by name among equals), up to [`MAX_TRACKED_VERSIONS`].
fn kept<'a>(s: &'a TallySnapshot, prefer: &[&str]) -> BTreeSet<&'a str> {
    let mut named: Vec<(&str, u64)> = s
        .versions
        .iter()
        .filter(|(name, _)| *name != OTHER_VERSIONS)
        .map(|(name, v)| (name.as_str(), v.count))
        .collect();
    if named.len() > MAX_TRACKED_VERSIONS {
        named.sort_by(|a, b| {
            let preferred = |n: &str| !prefer.contains(&n);
            (preferred(a.0), std::cmp::Reverse(a.1), a.0).cmp(&(
                preferred(b.0),
                std::cmp::Reverse(b.1),
                b.0,
            ))
        });
        named.truncate(MAX_TRACKED_VERSIONS);
    }
    named.into_iter().map(|(name, _)| name).collect()
}

/// Failed samples per class, in [`ErrorClass::ALL`] order, and their total.
fn errors(s: &TallySnapshot) -> Result<([u64; ErrorClass::ALL.len()], u64), SnapshotError> {
    let mut errors = [0; ErrorClass::ALL.len()];
    let mut total = 0u64;
    for (name, n) in &s.errors_by_class {
        let class = ErrorClass::ALL
            .iter()
            .find(|c| c.as_str() == name)
            .ok_or_else(|| {
                field(
                    "tally.errors_by_class",
                    format!(
                        "names an unknown error class \"{}\"",
                        protocol::escape(name)
                    ),
                )
            })?;
        errors[class.index()] = *n;
        total = add(total, *n, "tally.errors_by_class")?;
    }
    Ok((errors, total))
}

/// Checks the windows against the versions and the errors: the same samples, counted
/// per window. Returns nothing; the windows are folded by [`fold_windows`].
fn check_windows(s: &TallySnapshot, errors: u64) -> Result<(), SnapshotError> {
    if s.windows.len() != WINDOWS {
        return Err(field(
            "tally.windows",
            format!(
                "has {} windows; the checker writes {WINDOWS}",
                s.windows.len()
            ),
        ));
    }
    let mut failed = 0u64;
    let mut per_version: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, w) in s.windows.iter().enumerate() {
        failed = add(failed, w.errors, "tally.windows")?;
        for (name, n) in &w.counts {
            if !s.versions.contains_key(name) {
                return Err(field(
                    format!("tally.windows[{i}].counts"),
                    format!(
                        "names \"{}\", which tally.versions does not",
                        protocol::escape(name)
                    ),
                ));
            }
            let sum = per_version.entry(name).or_default();
            *sum = add(*sum, *n, "tally.windows")?;
        }
    }
    if failed != errors {
        return Err(field(
            "tally.errors_by_class",
            format!("counts {errors} failed samples, but tally.windows count {failed}"),
        ));
    }
    for (name, v) in &s.versions {
        let counted = per_version.get(name.as_str()).copied().unwrap_or(0);
        if counted != v.count {
            return Err(field(
                format!("tally.versions.{name}.count"),
                format!(
                    "is {}, but tally.windows count {counted} samples of {name}",
                    v.count
                ),
            ));
        }
    }
    Ok(())
}

/// Decodes each version's histograms, checks them against its count, and folds the
/// versions not `kept` into [`OTHER_VERSIONS`]. Returns the versions, the names folded
/// and the samples attributed.
#[allow(clippy::type_complexity)]
fn versions(
    s: &TallySnapshot,
    kept: &BTreeSet<&str>,
) -> Result<(BTreeMap<String, VersionTally>, Vec<String>, u64), SnapshotError> {
    let mut out: BTreeMap<String, VersionTally> = BTreeMap::new();
    let mut folded = Vec::new();
    let mut attributed = 0u64;
    for (name, v) in &s.versions {
        let at = |what: &str| format!("tally.versions.{name}.{what}");
        let connect_us = decode(&at("connect_us"), &v.connect_us)?;
        let reply_us = decode(&at("reply_us"), &v.reply_us)?;
        let handshake_us = match &v.handshake_us {
            Some(text) => decode(&at("handshake_us"), text)?,
            None => VersionTally::default().handshake_us,
        };
        // A handshake is timed on every sample of a TLS run, none without TLS.
        if !handshake_us.is_empty() && handshake_us.len() != v.count {
            return Err(field(
                at("count"),
                format!(
                    "is {}, but its handshake_us histogram holds {} samples",
                    v.count,
                    handshake_us.len()
                ),
            ));
        }
        for (what, h) in [("connect_us", &connect_us), ("reply_us", &reply_us)] {
            if h.len() != v.count {
                return Err(field(
                    at("count"),
                    format!(
                        "is {}, but its {what} histogram holds {} samples",
                        v.count,
                        h.len()
                    ),
                ));
            }
        }
        attributed = add(attributed, v.count, "tally.versions")?;
        let target = if kept.contains(name.as_str()) {
            name.as_str()
        } else {
            if name != OTHER_VERSIONS {
                folded.push(name.clone());
            }
            OTHER_VERSIONS
        };
        match out.get_mut(target) {
            None => {
                out.insert(
                    target.to_owned(),
                    VersionTally {
                        count: v.count,
                        connect_us,
                        handshake_us,
                        reply_us,
                    },
                );
            }
            Some(into) => {
                // The sum of counts that fit together fits; the bounds are the same.
                into.count = add(into.count, v.count, "tally.versions")?;
                let same = into
                    .connect_us
                    .add(&connect_us)
                    .and_then(|()| into.handshake_us.add(&handshake_us))
                    .and_then(|()| into.reply_us.add(&reply_us));
                same.map_err(|_| field(at("connect_us"), "cannot be added to the others"))?;
            }
        }
    }
    Ok((out, folded, attributed))
}

/// The windows with the versions not `kept` counted as [`OTHER_VERSIONS`].
fn fold_windows(s: &TallySnapshot, kept: &BTreeSet<&str>) -> Vec<Window> {
    s.windows
        .iter()
        .map(|w| {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for (name, n) in &w.counts {
                let target = if kept.contains(name.as_str()) {
                    name.as_str()
                } else {
                    OTHER_VERSIONS
                };
                // Checked against the versions' counts already: the sums fit.
                let sum = counts.entry(target.to_owned()).or_default();
                *sum = sum.saturating_add(*n);
            }
            Window {
                counts,
                errors: w.errors,
                left_out: w.left_out,
            }
        })
        .collect()
}

/// The malformed replies and the versions they name, checked against the malformed
/// replies counted.
fn check_malformed(s: &TallySnapshot, malformed: u64) -> Result<(), SnapshotError> {
    let mut named = 0u64;
    for (name, n) in &s.version_errors {
        check_name("tally.version_errors", name)?;
        named = add(named, *n, "tally.version_errors")?;
    }
    if named > malformed {
        return Err(field(
            "tally.version_errors",
            format!(
                "counts {named} malformed replies, more than the {malformed} of tally.errors_by_class.malformed_reply"
            ),
        ));
    }
    if s.malformed_replies.len() > MALFORMED_KEPT {
        return Err(field(
            "tally.malformed_replies",
            format!(
                "holds {} replies; the checker keeps {MALFORMED_KEPT}",
                s.malformed_replies.len()
            ),
        ));
    }
    let mut shown = 0u64;
    for (i, m) in s.malformed_replies.iter().enumerate() {
        // The checker writes replies escaped: escaping again only doubles backslashes.
        if protocol::escape(&m.reply) != m.reply.replace('\\', "\\\\") {
            return Err(field(
                format!("tally.malformed_replies[{i}].reply"),
                "holds raw control characters; the checker writes replies escaped",
            ));
        }
        shown = add(shown, m.count, "tally.malformed_replies")?;
    }
    if shown > malformed {
        return Err(field(
            "tally.malformed_replies",
            format!(
                "counts {shown} replies, more than the {malformed} of tally.errors_by_class.malformed_reply"
            ),
        ));
    }
    Ok(())
}

/// The failure reasons: at most [`REASONS_KEPT`], escaped as the checker writes them, and
/// none counting more samples than failed with its class.
fn check_reasons(s: &TallySnapshot, errors: &[u64]) -> Result<(), SnapshotError> {
    if s.failure_reasons.len() > REASONS_KEPT {
        return Err(field(
            "tally.failure_reasons",
            format!(
                "holds {} reasons; the checker keeps at most {REASONS_KEPT}",
                s.failure_reasons.len()
            ),
        ));
    }
    let mut by_class = vec![0u64; errors.len()];
    for (i, r) in s.failure_reasons.iter().enumerate() {
        if protocol::escape(&r.reason) != r.reason.replace('\\', "\\\\") {
            return Err(field(
                format!("tally.failure_reasons[{i}].reason"),
                "holds raw control characters; the checker writes reasons escaped",
            ));
        }
        let sum = &mut by_class[r.class.index()];
        *sum = add(*sum, r.count, "tally.failure_reasons")?;
        if *sum > errors[r.class.index()] {
            return Err(field(
                format!("tally.failure_reasons[{i}].count"),
                format!(
                    "counts {} samples failing with {}, more than the {} of tally.errors_by_class",
                    *sum,
                    r.class.as_str(),
                    errors[r.class.index()]
                ),
            ));
        }
    }
    Ok(())
}

/// The malformed replies per version, the versions beyond [`MAX_TRACKED_VERSIONS`]
/// counted as [`OTHER_VERSIONS`] (their sum fits: checked by [`check_malformed`]).
fn fold_version_errors(s: &TallySnapshot) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (name, n) in &s.version_errors {
        let target = if out.contains_key(name) || out.len() < MAX_TRACKED_VERSIONS {
            name.as_str()
        } else {
            OTHER_VERSIONS
        };
        let sum = out.entry(target.to_owned()).or_default();
        *sum = sum.saturating_add(*n);
    }
    out
}

/// Checks `s` and rebuilds its tally (see the module's documentation).
pub(super) fn rebuild(s: &TallySnapshot, prefer: &[&str]) -> Result<ReadBack, SnapshotError> {
    if s.histogram_encoding != HISTOGRAM_ENCODING {
        return Err(SnapshotError::Encoding(s.histogram_encoding.clone()));
    }
    for name in s.versions.keys() {
        check_name("tally.versions", name)?;
    }
    let windowing = match s.windowing {
        WindowingSnapshot::Id { total } => Windowing::ById { total },
        WindowingSnapshot::Time { duration_s } => Windowing::ByTime {
            duration: Duration::try_from_secs_f64(duration_s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    field(
                        "tally.windowing.duration_s",
                        format!("is {duration_s}, not a positive number of seconds"),
                    )
                })?,
        },
    };
    let (errors, failed) = errors(s)?;
    let kept = kept(s, prefer);
    let (versions, folded, attributed) = versions(s, &kept)?;
    check_windows(s, failed)?;
    let attempted = attributed
        .checked_add(failed)
        .ok_or_else(|| field("tally", "counts more than 2^64-1 samples in all"))?;
    check_malformed(s, errors[ErrorClass::MalformedReply.index()])?;
    check_reasons(s, &errors)?;
    let lag_us = match &s.lag_us {
        Some(text) => {
            let lag = decode("tally.lag_us", text)?;
            if lag.len() > attempted {
                return Err(field(
                    "tally.lag_us",
                    format!(
                        "holds {} samples, more than the {attempted} the tally counts",
                        lag.len()
                    ),
                ));
            }
            Some(lag)
        }
        None => None,
    };
    let tally = Tally::from_parts(TallyParts {
        versions,
        errors,
        windowing,
        windows: fold_windows(s, &kept),
        lag_us,
        malformed: s.malformed_replies.clone(),
        version_errors: fold_version_errors(s),
        reasons: s.failure_reasons.clone(),
    });
    Ok(ReadBack { tally, folded })
}
