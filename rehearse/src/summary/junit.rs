//! `checker rehearse --output junit`: the walk as a JUnit suite ([`report::junit`]), a
//! case per step, its causes (as the summary names them) as the failure message.

use report::junit::{Case, Suite, Verdict, kind};

use super::text::{render_summary, step_causes};
use super::{StepOutcome, WalkReport};
use crate::setting::Names;

/// The suite of a walk: one case per step, named `step N: NAME`.
pub fn suite(walk: &WalkReport, names: Names, started_at: &str) -> Suite {
    let cases = walk
        .steps
        .iter()
        .map(|step| {
            let causes = step_causes(step, walk.grace_s, names).join("; ");
            let verdict = match step.outcome {
                StepOutcome::Pass => Verdict::Pass,
                StepOutcome::Fail => Verdict::Fail(kind::FAIL, causes),
                StepOutcome::Errors => Verdict::Fail(kind::ERRORS, causes),
                StepOutcome::Inconclusive => Verdict::Inconclusive(causes),
                StepOutcome::Interrupted => Verdict::Fail(kind::INTERRUPTED, causes),
            };
            Case {
                name: format!("step {}: {}", step.number, step.name),
                classname: "checker.rehearse.step".to_owned(),
                time_s: step.verify.as_ref().map_or(0.0, |v| v.times.elapsed_s),
                verdict,
            }
        })
        .collect();
    let mut properties = vec![
        (
            "gateway".to_owned(),
            format!("{:?}", walk.gateway).to_lowercase(),
        ),
        ("gateway_addr".to_owned(), walk.gateway_addr.clone()),
        ("exit_code".to_owned(), walk.exit_code.to_string()),
    ];
    if let Some(plan) = &walk.plan {
        properties.push(("plan".to_owned(), plan.clone()));
    }
    Suite {
        name: match &walk.plan {
            Some(plan) => format!("checker rehearse: the steps of {plan}"),
            None => "checker rehearse".to_owned(),
        },
        package: "checker.rehearse".to_owned(),
        timestamp: started_at.to_owned(),
        time_s: walk.elapsed_s,
        properties,
        cases,
        system_out: render_summary(walk, names),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::tests::walk;

    #[test]
    fn each_step_is_a_case_and_its_outcome_its_result() {
        let w = walk(
            &[
                StepOutcome::Pass,
                StepOutcome::Fail,
                StepOutcome::Inconclusive,
                StepOutcome::Errors,
            ],
            false,
        );
        let s = suite(&w, crate::setting::Setting::words, "2026-12-03T10:00:00Z");
        let verdicts: Vec<&Verdict> = s.cases.iter().map(|c| &c.verdict).collect();
        assert_eq!(verdicts[0], &Verdict::Pass);
        assert!(matches!(verdicts[1], Verdict::Fail(kind::FAIL, _)));
        assert!(matches!(verdicts[2], Verdict::Inconclusive(_)));
        assert!(matches!(verdicts[3], Verdict::Fail(kind::ERRORS, _)));
        assert_eq!(s.cases[1].name, "step 2: s2");
    }
}
