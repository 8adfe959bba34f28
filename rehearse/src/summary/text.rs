//! The rehearsal as text: the header and notes printed around each step's verdict
//! table as the walk goes, and the final summary table with its result line. Settings
//! are named as the caller's `names` says (the checker: its flags).

use std::fmt::Write as _;

use super::{StepManifests, StepOutcome, StepReport, WalkReport};
use crate::fleet::DrainTotals;
use crate::setting::{Names, Setting};
use checker_core::hold::HeldSummary;
use checker_core::verdict::Outcome;
use report::reason::reason;

/// The word shown for an outcome in tables and result lines.
pub fn word(outcome: StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Pass => "PASS",
        StepOutcome::Inconclusive => "INCONCLUSIVE",
        StepOutcome::Errors => "FAIL (errors)",
        StepOutcome::Fail => "FAIL",
        StepOutcome::Interrupted => "INTERRUPTED",
    }
}

fn weights_text(w: &[(String, u32)]) -> String {
    w.iter()
        .map(|(g, w)| format!("{g}={w}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn held_text(h: &HeldSummary, drains: &DrainTotals) -> String {
    if h.opened == 0 && drains.replicas == 0 {
        return "-".to_owned();
    }
    let cut = if h.cut > 0 {
        format!(" ({} cut)", h.cut)
    } else {
        String::new()
    };
    format!("{}/{}{cut}", h.kept, h.lost + drains.cut)
}

/// The sentence about held connections cut by the gateway, e.g. `8 held connection(s)
/// were cut by the gateway 2.0 s after the weight change; 0 lost at the servers` (timed
/// from the first weight change after their set was opened).
pub fn cut_sentence(h: &HeldSummary, lost_at_servers: u64) -> String {
    let when = match h.cut_after_s {
        Some(t) if (t.last - t.first) < 0.05 => format!(" {:.1} s after", t.first),
        Some(t) => format!(" {:.1} to {:.1} s after", t.first, t.last),
        None => " after".to_owned(),
    };
    format!(
        "{} held connection(s) were cut by the gateway{when} the weight change; {lost_at_servers} lost at the servers",
        h.cut
    )
}

/// The header printed before a step's verdict table.
pub fn step_header(step: &StepReport, total: usize) -> String {
    format!(
        "== step {}/{}: {} (gateway {}; expect {}) ==\n",
        step.number,
        total,
        step.name,
        weights_text(&step.gateway_weights),
        step.expect
    )
}

/// The lines printed after a step's verdict table: events, drift, held connections.
pub fn step_notes(step: &StepReport, names: Names) -> String {
    let mut out = String::new();
    if let Some(m) = &step.manifests {
        let how = if m.kustomize {
            " (kubectl kustomize)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  manifests: {}{how}: {} routes {}",
            m.source, m.route, m.derived
        );
        for n in &m.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        if let Some(x) = &m.mismatch {
            let _ = writeln!(out, "  ! {x}");
        }
    }
    for e in &step.events {
        let _ = writeln!(out, "  event: {e}");
    }
    if let Some(e) = &step.verify_error {
        let _ = writeln!(out, "  verify could not run: {e}");
    }
    if let Some(d) = step.drift.as_ref().filter(|d| d.moved) {
        let _ = writeln!(
            out,
            "  ! the split MOVED during this step's sampling (a share shifted by {:.1} points between windows): its counts mix two splits",
            d.max_shift * 100.0
        );
    }
    for o in &step.off {
        let _ = writeln!(out, "  ! {o}");
    }
    let h = &step.held;
    if h.opened > 0 || h.lost > 0 {
        let versions: Vec<String> = h
            .by_version
            .iter()
            .map(|(v, n)| format!("{v} {n}"))
            .collect();
        let by_version = if versions.is_empty() {
            String::new()
        } else {
            format!(" ({})", versions.join(", "))
        };
        let _ = write!(
            out,
            "  held connections closed this step: {} opened, {} kept{by_version}, {} cut by the gateway, {} lost, {} lines exchanged",
            h.opened, h.kept, h.cut, h.lost, h.exchanges
        );
        if step.lost_to_crash > 0 {
            let _ = write!(
                out,
                " ({} lost in the step whose replica was killed: reported, not held against the step)",
                step.lost_to_crash
            );
        }
        if !h.reasons.is_empty() {
            let reasons: Vec<String> = h.reasons.iter().map(|(r, n)| format!("{r} x{n}")).collect();
            let _ = write!(out, ": {}", reasons.join("; "));
        }
        out.push('\n');
    }
    if h.cut > 0 {
        let _ = writeln!(
            out,
            "  ! {}{}",
            cut_sentence(h, h.lost),
            if step.fail_on_cut {
                format!(" ({}: the step fails)", names(Setting::FailOnCut))
            } else {
                format!(
                    " (a finding; {} makes it fail the step)",
                    names(Setting::FailOnCut)
                )
            }
        );
    }
    let d = &step.drains;
    if d.replicas > 0 {
        let _ = writeln!(
            out,
            "  drained replicas: {} stopped, {} connections finished during the drain, {} cut",
            d.replicas, d.drained, d.cut
        );
    }
    let _ = writeln!(out, "  step {}: {}", step.number, word(step.outcome));
    out
}

/// Every reason a step did not pass, one entry per cause, e.g. `FAIL: two is off by
/// +17.2 points (...)` and `lost 2 held connection(s) (reset x2)` for the same step;
/// `grace_s` is the grace period, named when drains cut connections.
pub fn step_causes(step: &StepReport, grace_s: f64, names: Names) -> Vec<String> {
    let mut causes: Vec<String> = step.off.iter().map(|o| format!("FAIL: {o}")).collect();
    if let Some(m) = StepManifests::mismatch(step) {
        causes.push(format!("FAIL: {m}"));
    }
    match &step.verify {
        None => causes.push(format!(
            "FAIL (errors): the verification could not run: {}",
            step.verify_error.as_deref().unwrap_or("no reason given")
        )),
        Some(r) => {
            if r.judgement.errors.outcome == Outcome::Fail {
                causes.push(reason(r).replacen("FAIL on errors", "FAIL (errors)", 1));
            } else if r.judgement.split.outcome == Outcome::Inconclusive {
                causes.push(reason(r));
            }
        }
    }
    if step.fail_on_cut && step.held.cut > 0 {
        causes.push(format!(
            "FAIL ({}): {}",
            names(Setting::FailOnCut),
            cut_sentence(&step.held, step.held.lost)
        ));
    }
    let held = step.held.lost.saturating_sub(step.lost_to_crash);
    if held > 0 {
        let reasons: Vec<String> = step
            .held
            .reasons
            .iter()
            .map(|(r, n)| format!("{r} x{n}"))
            .collect();
        causes.push(format!(
            "FAIL (errors): {held} held connection(s) lost ({})",
            reasons.join(", ")
        ));
    }
    if step.drains.cut > 0 {
        // Held connections stay open across a whole step: a step longer than the grace
        // period (e.g. many samples in a debug build) outlasts the drain.
        let grace = names(Setting::Grace);
        causes.push(format!(
            "FAIL (errors): {} connection(s) cut at a replica's drain deadline ({grace} {}; held connections stay open across a step, so steps longer than that need a longer {grace})",
            step.drains.cut,
            humantime::format_duration(std::time::Duration::from_secs_f64(grace_s.max(0.0)))
        ));
    }
    if causes.is_empty() && step.outcome == StepOutcome::Interrupted {
        causes.push("INTERRUPTED".to_owned());
    }
    causes
}

/// The final summary table and result line.
pub fn render_summary(walk: &WalkReport, names: Names) -> String {
    let mut rows = vec![vec![
        "STEP".to_owned(),
        "NAME".to_owned(),
        "GATEWAY".to_owned(),
        "EXPECT".to_owned(),
        "SAMPLES".to_owned(),
        "OBSERVED".to_owned(),
        "ERRORS".to_owned(),
        "HELD KEPT/LOST".to_owned(),
        "VERDICT".to_owned(),
    ]];
    for s in &walk.steps {
        let (samples, observed, errors) = match &s.verify {
            Some(r) => {
                let obs: Vec<String> = r
                    .judgement
                    .split
                    .versions
                    .iter()
                    .map(|v| format!("{}={:.1}", v.name, v.share * 100.0))
                    .collect();
                let mut errors = r.judgement.errors.total.to_string();
                if let Some(c) = r.main_error() {
                    let _ = write!(errors, " ({})", c.as_str());
                }
                (r.attempted.to_string(), obs.join(","), errors)
            }
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        let mut verdict = word(s.outcome).to_owned();
        if s.drift.as_ref().is_some_and(|d| d.moved) {
            verdict.push_str(", split moved");
        }
        rows.push(vec![
            s.number.to_string(),
            s.name.clone(),
            weights_text(&s.gateway_weights),
            s.expect.clone(),
            samples,
            observed,
            errors,
            held_text(&s.held, &s.drains),
            verdict,
        ]);
    }
    // HAProxy draws with its own generator: no seed decides anything there.
    let seed = walk.seed.map_or(String::new(), |s| format!(", seed {s}"));
    let what = match &walk.plan {
        Some(plan) => format!("plan {plan}"),
        None => format!("{} replicas per version", walk.replicas),
    };
    let mut out = format!(
        "\nRehearsal summary: {} gateway at {}{seed}, {what}, {:.1}s\n",
        walk.gateway.as_str(),
        walk.gateway_addr,
        walk.elapsed_s
    );
    out.push_str(&report::table::table(&rows));
    let held_kept: u64 = walk.steps.iter().map(|s| s.held.kept).sum();
    let held_lost: u64 = walk.steps.iter().map(|s| s.held.lost + s.drains.cut).sum();
    let held_cut: u64 = walk.steps.iter().map(|s| s.held.cut).sum();
    if let Some(e) = &walk.envoy {
        let _ = writeln!(
            out,
            "envoy: weights via the {}, --drain-time-s {}",
            e.weights_via.as_str(),
            e.drain_time_s
        );
    }
    let _ = writeln!(
        out,
        "open connections across the steps: {held_kept} kept, {held_cut} cut by the gateway, {held_lost} lost; teardown: {} drained, {} cut",
        walk.teardown.drains.drained + walk.teardown.gateway.drained,
        walk.teardown.drains.cut + walk.teardown.gateway.cut
    );
    if walk.interrupted {
        let _ = writeln!(
            out,
            "INTERRUPTED after {} step(s): every replica and the gateway were stopped (exit {})",
            walk.steps.len(),
            walk.exit_code
        );
    } else if let Some(w) = walk.worst() {
        let causes: Vec<String> = walk
            .steps
            .iter()
            .filter(|s| s.outcome != StepOutcome::Pass)
            .flat_map(|s| {
                step_causes(s, walk.grace_s, names)
                    .into_iter()
                    .map(move |c| format!("step {} ({}) {c}", s.number, s.name))
            })
            .collect();
        let _ = writeln!(
            out,
            "{}: step {} ({}) is the worst step (exit {}); {}",
            word(w.outcome),
            w.number,
            w.name,
            walk.exit_code,
            causes.join("; ")
        );
    } else {
        let crashed: u64 = walk.steps.iter().map(|s| s.lost_to_crash).sum();
        let lost = if crashed > 0 {
            format!(
                "no open connection was lost but the {crashed} on the replica killed on purpose"
            )
        } else {
            "no open connection was lost".to_owned()
        };
        let cut = if held_cut > 0 {
            format!(
                "; {held_cut} held connection(s) were cut by the gateway after a weight change (a finding; {} fails such steps)",
                names(Setting::FailOnCut)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "PASS: every step's traffic followed its weights and {lost}{cut} (exit 0)"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::tests::step;

    #[test]
    fn each_cause_of_a_step_is_named_on_its_own() {
        let mut s = step(4, StepOutcome::Pass);
        s.verify_error = Some("the gateway is gone".to_owned());
        s.held
            .add_losses(vec!["closed by the other side".to_owned(); 2]);
        s.drains.cut = 2;
        s.decide(false);
        let causes = step_causes(&s, 30.0, Setting::words);
        assert_eq!(causes.len(), 3, "{causes:?}");
        assert!(causes[0].contains("could not run: the gateway is gone"));
        assert!(causes[1].contains("2 held connection(s) lost (closed by the other side x2)"));
        assert!(
            causes[2].contains(
                "2 connection(s) cut at a replica's drain deadline (the grace period 30s;"
            )
        );
    }
}
