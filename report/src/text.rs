//! The human report: the plan line, a table per version and one verdict line that says why.

use std::fmt::Write;

use checker_core::hold::{EXCHANGE_EVERY, HeldReport};
use checker_core::sampler::{ErrorClass, StopReason};
use checker_core::tally::{MAX_TRACKED_VERSIONS, OTHER_VERSIONS};
use checker_core::verdict::compare_plan::{self, MetricPlan};
use checker_core::verdict::figures::duration_us;
use checker_core::verdict::{Outcome, Plan};
use checker_core::verify::{LatencySummary, Verification};

use crate::table::{confidence_pct, mark, outcome_word, p_value, pct, table};
use protocol::escape;

fn percentiles(l: &LatencySummary) -> String {
    if l.count == 0 {
        return "-".to_owned();
    }
    format!(
        "{}/{}/{}/{}",
        duration_us(l.p50),
        duration_us(l.p90),
        duration_us(l.p99),
        duration_us(l.max)
    )
}

/// The plan, one line, printed before sampling.
pub fn plan_line(plan: &Plan, tolerance: f64) -> String {
    format!(
        "plan: {} connections; a correctly routed split passes with probability {}, \
         a version off by {:.0} points fails with probability {}",
        plan.samples,
        pct(plan.pass_probability),
        tolerance * 200.0,
        pct(plan.detect_probability)
    )
}

/// The plan line of a `--duration` run: the count is not a promise there, only the
/// number of connections the guarantees need.
pub fn duration_plan_line(plan: &Plan, tolerance: f64, duration: std::time::Duration) -> String {
    format!(
        "plan: sampling for {}; the guarantees (a correctly routed split passes with \
         probability {}, a version off by {:.0} points fails with probability {}) need at \
         least {} connections",
        humantime::format_duration(duration),
        pct(plan.pass_probability),
        tolerance * 200.0,
        pct(plan.detect_probability),
        plan.samples
    )
}

/// The line saying what sequential sampling did.
pub fn sequential_line(s: &checker_core::verify::SequentialSummary) -> String {
    match s.deciding_batch {
        Some(batch) => format!(
            "sequential: decided at look {batch} after {} samples ({} of {} allowed; {})",
            s.samples_used, s.samples_used, s.max_samples, s.method
        ),
        None => format!(
            "sequential: undecided after {} looks and {} samples (at most {}; {})",
            s.looks, s.samples_used, s.max_samples, s.method
        ),
    }
}

/// The line saying how settling went, with the split in each window.
pub fn settle_line(s: &checker_core::verify::SettleSummary) -> String {
    use checker_core::verify::SettleEnd;
    let how = match s.end {
        SettleEnd::Consistent => "consistent with the expectation",
        SettleEnd::StoppedMoving => "stopped moving (not as expected)",
        SettleEnd::TimedOut => "not consistent before the timeout",
        SettleEnd::Interrupted => "interrupted",
    };
    let splits: Vec<String> = s
        .windows
        .iter()
        .map(|w| {
            let total: u64 = w.counts.values().sum();
            let shares: Vec<String> = w
                .counts
                .iter()
                .map(|(name, c)| {
                    let share = 100.0 * *c as f64 / total.max(1) as f64;
                    format!("{} {share:.0}%", escape(name))
                })
                .collect();
            shares.join(" ")
        })
        .collect();
    let n = s.windows.len();
    format!(
        "settle: {how} after {:.1}s and {n} window{} ({})",
        s.elapsed_s,
        if n == 1 { "" } else { "s" },
        splits.join(" -> ")
    )
}

/// The line saying how the held connections of `--hold` fared.
pub fn held_line(h: &HeldReport) -> String {
    let mut out = format!(
        "held connections: {} of {} survived {:.1}s of exchanging a line every {}s",
        h.survived,
        h.opened,
        h.hold_for_s,
        EXCHANGE_EVERY.as_secs_f64()
    );
    if h.opened < h.requested {
        out.push_str(&format!(
            " ({} of {} could not be opened)",
            h.requested - h.opened,
            h.requested
        ));
    }
    if h.ended > 0 {
        let when = match h.ended_after_s {
            Some(t) if t.last - t.first < 0.05 => format!("{:.1}s", t.first),
            Some(t) => format!("{:.1}s to {:.1}s", t.first, t.last),
            None => "?".to_owned(),
        };
        let reasons: Vec<String> = h.reasons.iter().map(|(r, n)| format!("{r} x{n}")).collect();
        out.push_str(&format!(
            "; {} ended {when} after they were opened ({})",
            h.ended,
            reasons.join(", ")
        ));
    }
    out
}

/// The line announcing a sequential run, before sampling.
pub fn sequential_plan_line(plan: &Plan, batch: u64, max_samples: u64) -> String {
    format!(
        "plan: sequential, a look every {batch} samples, stopping as soon as every version is decided \
         (at most {max_samples}; the fixed plan would take {})",
        plan.samples
    )
}

/// The clause saying which versions were counted as other versions (`count` of them,
/// `examples` the first few names): "4968 versions beyond the 32 tracked by name are
/// counted as "other versions" (v1, v10, v100 and 4965 more)".
pub fn folded_clause(count: usize, examples: &[&str]) -> String {
    let shown: Vec<String> = examples.iter().take(3).map(protocol::escape).collect();
    let more = count.saturating_sub(shown.len());
    let list = if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    };
    format!(
        "{count} versions beyond the {MAX_TRACKED_VERSIONS} tracked by name are counted as \"{OTHER_VERSIONS}\" ({list})"
    )
}

/// The line `checker merge` prints before its report when versions were folded.
pub fn folded_line(folded: &std::collections::BTreeSet<String>) -> String {
    let examples: Vec<&str> = folded.iter().map(String::as_str).collect();
    format!("merge: {}\n", folded_clause(folded.len(), &examples))
}

/// The line announcing a sequential run with a comparison of `canary` with `stable`,
/// before sampling: it stops only once both the split and the comparison are decided.
pub fn sequential_compare_plan_line(
    plan: &Plan,
    batch: u64,
    max_samples: u64,
    canary: &str,
    stable: &str,
) -> String {
    format!(
        "plan: sequential, a look every {batch} samples, stopping as soon as every version and \
         the comparison of {canary} with {stable} are decided (confidence sequences for both; at \
         most {} connections, what the comparison may need; the split's fixed plan would take {})",
        crate::explain::grouped(max_samples),
        crate::explain::grouped(plan.samples)
    )
}

/// What a fixed count can decide of the comparison, a line per metric (empty without
/// any), before sampling.
pub fn health_plan_lines(plans: &[MetricPlan]) -> String {
    if plans.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "health plan (for latency shaped like a lognormal of spread {} and {}% errors):\n",
        compare_plan::REFERENCE_SIGMA,
        compare_plan::REFERENCE_ERROR_RATE * 100.0
    );
    for p in plans {
        let _ = writeln!(out, "  {}", crate::explain::plan_sentence(p));
    }
    out
}

/// Renders the whole human report (the plan is printed separately, before sampling).
/// Every string that came from input (the target, names, a baseline's path) is escaped
/// through [`protocol::escape`]; malformed replies are kept escaped from the start.
pub fn render(report: &Verification) -> String {
    let judged = &report.judgement;
    let mut out = String::new();
    let i = &report.inputs;
    let expect: Vec<String> = i
        .expect
        .iter()
        .map(|e| format!("{}={}", escape(&e.name), e.weight))
        .collect();
    let _ = writeln!(
        out,
        "target {} ({}), expected {}, {} samples in {:.1}s",
        escape(&i.target),
        escape(i.addresses.join(", ")),
        expect.join(","),
        report.attempted,
        report.times.elapsed_s
    );
    match report.stop_reason {
        StopReason::Interrupted => {
            let _ = writeln!(
                out,
                "interrupted: the report covers the {} samples finished before the stop",
                report.attempted
            );
        }
        StopReason::Unreachable => {
            let _ = writeln!(
                out,
                "stopped early: all {} connections failed and none was ever established",
                report.attempted
            );
        }
        StopReason::Samples | StopReason::Duration | StopReason::Decided => {}
    }
    if let Some(s) = &report.settle {
        let _ = writeln!(out, "{}", settle_line(s));
    }
    if let Some(s) = &report.sequential {
        let _ = writeln!(out, "{}", sequential_line(s));
    }
    out.push('\n');
    let mut rows = vec![vec![
        "VERSION".to_owned(),
        "EXPECTED".to_owned(),
        "OBSERVED".to_owned(),
        format!(
            "INTERVAL ({})",
            confidence_pct(judged.split.per_version_confidence)
        ),
        "BAND".to_owned(),
        "VERDICT".to_owned(),
        "COUNT".to_owned(),
        "CONNECT p50/p90/p99/max".to_owned(),
        "REPLY p50/p90/p99/max".to_owned(),
    ]];
    // With TLS, the handshake between the two (a column only when any was timed).
    let tls = report.latency.values().any(|l| l.handshake.is_some());
    if tls {
        rows[0].insert(8, "HANDSHAKE p50/p90/p99/max".to_owned());
    }
    for v in &judged.split.versions {
        let lat = report.latency.get(&v.name);
        rows.push(vec![
            escape(&v.name),
            if v.was_expected {
                pct(v.expected)
            } else {
                "unexpected".to_owned()
            },
            pct(v.share),
            format!("{} .. {}", pct(v.interval.low), pct(v.interval.high)),
            format!("{} .. {}", pct(v.band.low), pct(v.band.high)),
            format!("{} {}", mark(v.outcome), outcome_word(v.outcome)),
            v.count.to_string(),
            lat.map_or("-".to_owned(), |l| percentiles(&l.connect)),
            lat.map_or("-".to_owned(), |l| percentiles(&l.reply)),
        ]);
        if tls {
            let handshake = lat
                .and_then(|l| l.handshake)
                .map_or("-".to_owned(), |h| percentiles(&h));
            if let Some(row) = rows.last_mut() {
                row.insert(8, handshake);
            }
        }
    }
    out.push_str(&table(&rows));
    for v in &judged.split.versions {
        if v.outcome != Outcome::Pass {
            let _ = write!(
                out,
                "  {} {}: {}",
                mark(v.outcome),
                escape(&v.name),
                v.reason
            );
            if let Some(n) = v.more_samples {
                let _ = write!(out, " (about {n} more connections would decide)");
            }
            out.push('\n');
        }
    }
    out.push('\n');
    let e = &judged.errors;
    let _ = write!(
        out,
        "{} errors: {} of {} samples ({}, budget {})",
        mark(e.outcome),
        e.total,
        report.attempted,
        pct(e.rate),
        pct(e.max_rate)
    );
    let classes: Vec<String> = e
        .by_class
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    if !classes.is_empty() {
        let _ = write!(out, ": {}", classes.join(", "));
    }
    out.push('\n');
    for m in &e.malformed_replies {
        let what = if e
            .by_class
            .get(&ErrorClass::NoVersion)
            .is_some_and(|n| *n > 0)
        {
            "reply without a version"
        } else {
            "malformed reply"
        };
        let _ = writeln!(out, "  {what} ({}x): \"{}\"", m.count, m.reply);
    }
    for r in &e.failure_reasons {
        let _ = writeln!(out, "  {} ({}x): {}", r.class, r.count, r.reason);
    }
    if let Some(cause) = &e.local_cause {
        let _ = writeln!(
            out,
            "  ⚠ likely local cause, not the target: {}",
            cause.message
        );
    }
    let chi = &judged.split.chi_square;
    let _ = write!(
        out,
        "  chi-square (information): {:.2} with {} degrees of freedom",
        chi.statistic, chi.degrees_of_freedom
    );
    match chi.p_value {
        Some(p) => {
            let _ = writeln!(out, ", {}", p_value(p));
        }
        None => out.push('\n'),
    }
    let d = &judged.drift;
    let left_out = match d.windows_left_out {
        0 => String::new(),
        1 => "; 1 window left out: samples still in flight when sampling stopped could skew it"
            .to_owned(),
        n => format!(
            "; {n} windows left out: samples still in flight when sampling stopped could skew them"
        ),
    };
    if d.moved {
        let _ = writeln!(
            out,
            "  ⚠ drift: the split moved during sampling: a share shifted by {:.1} points between windows ({}{left_out})",
            d.max_shift * 100.0,
            d.p_value.map_or_else(|| "p undefined".to_owned(), p_value)
        );
    } else if d.degrees_of_freedom > 0 {
        let _ = writeln!(
            out,
            "  drift: none (largest shift between windows {:.1} points{left_out})",
            d.max_shift * 100.0
        );
    }
    if let Some(s) = &report.schedule {
        let _ = writeln!(
            out,
            "  schedule: {}/s asked, {} samples started over 10ms late, lag p50 {} p99 {} max {}",
            s.rate,
            s.late,
            duration_us(s.lag_us.p50),
            duration_us(s.lag_us.p99),
            duration_us(s.lag_us.max)
        );
    }
    out.push_str(&crate::health_section::render(report));
    out.push_str(&crate::gateway::render(report));
    if let Some(h) = &report.held {
        let _ = writeln!(out, "  {}", held_line(h));
    }
    let _ = writeln!(
        out,
        "\n{} {}",
        mark(judged.outcome),
        crate::reason::reason(report)
    );
    out
}
