//! The loopback comparison's ratios against a committed baseline of ratios
//! (`benches/baseline.json`): ratios of our binaries to the bare loops on the same
//! machine in the same run, so a faster or slower machine moves both sides alike and
//! only a regression of ours moves the ratio. The margin is generous on purpose: noise
//! must not fail CI, a real regression must.

use serde::Deserialize;

/// The committed baseline.
#[derive(Debug, Clone, Deserialize)]
pub struct Baseline {
    /// How far a ratio may fall below its baseline (higher-is-better ratios) or rise
    /// above it (CPU ratios), as a fraction of the baseline: 0.35 = 35%.
    pub margin: f64,
    /// Ratios by name (see [`Measured`]).
    pub ratios: std::collections::BTreeMap<String, f64>,
}

/// One measured ratio.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Its name in the baseline (`fresh32`, `cpu_fresh256`...).
    pub name: &'static str,
    /// ours / bare loop.
    pub value: f64,
    /// True for rates (higher is better), false for CPU per operation (lower is better).
    pub higher_is_better: bool,
}

/// One line of the check.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The ratio's name.
    pub name: &'static str,
    /// Measured now.
    pub value: f64,
    /// The baseline's.
    pub baseline: f64,
    /// The worst value that passes.
    pub limit: f64,
    /// Whether it passes.
    pub ok: bool,
}

/// Reads the baseline file.
pub fn load(path: &std::path::Path) -> Result<Baseline, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the baseline {}: {e}", path.display()))?;
    let baseline: Baseline = serde_json::from_str(&text)
        .map_err(|e| format!("the baseline {} is not valid: {e}", path.display()))?;
    if !(baseline.margin > 0.0 && baseline.margin < 1.0) {
        return Err(format!(
            "the baseline {} has a margin of {}: it must be between 0 and 1",
            path.display(),
            baseline.margin
        ));
    }
    Ok(baseline)
}

/// Checks every measured ratio that the baseline names; a ratio missing from the
/// baseline is an error (the baseline must be updated with the benchmark).
pub fn check(baseline: &Baseline, measured: &[Measured]) -> Result<Vec<Checked>, String> {
    measured
        .iter()
        .map(|m| {
            let &base = baseline
                .ratios
                .get(m.name)
                .ok_or_else(|| format!("the baseline has no ratio {:?}", m.name))?;
            let limit = if m.higher_is_better {
                base * (1.0 - baseline.margin)
            } else {
                base * (1.0 + baseline.margin)
            };
            let ok = if m.higher_is_better {
                m.value >= limit
            } else {
                m.value <= limit
            };
            Ok(Checked {
                name: m.name,
                value: m.value,
                baseline: base,
                limit,
                ok,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_beyond_the_margin_fails_either_way() {
        let baseline: Baseline =
            serde_json::from_str(r#"{"margin": 0.3, "ratios": {"fresh32": 1.0, "cpu": 1.2}}"#)
                .unwrap();
        let m = |name, value, higher_is_better| Measured {
            name,
            value,
            higher_is_better,
        };
        let lines = check(
            &baseline,
            &[m("fresh32", 0.71, true), m("cpu", 1.55, false)],
        )
        .unwrap();
        assert!(lines.iter().all(|l| l.ok), "{lines:?}");
        let lines = check(
            &baseline,
            &[m("fresh32", 0.69, true), m("cpu", 1.57, false)],
        )
        .unwrap();
        assert!(lines.iter().all(|l| !l.ok), "{lines:?}");
        assert!(check(&baseline, &[m("ping_pong", 1.0, true)]).is_err());
    }
}
