//! The walk's steps, each with the split it must show: the built-in walk's (the weight
//! steps, then promote, return and delete) or a user's plan of manifests, one step per
//! manifest source.

use checker_core::expect::Expectation;

use super::manifest_plan::{ManifestPlan, ManifestStep};
use super::walk::{CANARY_VERSION, STABLE_VERSION, WalkError};

/// What one step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// Set the canary's weight (percent).
    Weight(u32),
    /// Replace the stable replicas with the new version, one by one.
    RollingUpdate,
    /// All traffic back to the (new) stable.
    BackToStable,
    /// Remove the canary and drain it.
    CanaryDelete,
    /// Make the fleets and the gateway what a step's manifests describe.
    Manifests(Box<ManifestStep>),
}

/// One planned step.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    /// 1-based position.
    pub number: usize,
    /// What it does.
    pub kind: StepKind,
    /// Its name in reports.
    pub name: String,
    /// The expected split after it.
    pub expect: Expectation,
}

/// The steps of a walk, in order.
pub fn plan_steps(weights: &[u32]) -> Result<Vec<PlannedStep>, WalkError> {
    let mut kinds: Vec<StepKind> = weights.iter().map(|&w| StepKind::Weight(w)).collect();
    kinds.extend([
        StepKind::RollingUpdate,
        StepKind::BackToStable,
        StepKind::CanaryDelete,
    ]);
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let (name, one, two) = match &kind {
                StepKind::Weight(w) => (format!("canary {w}%"), 100 - w, *w),
                StepKind::RollingUpdate => ("primary rolling update".to_owned(), 0, 100),
                StepKind::BackToStable => ("back to stable".to_owned(), 0, 100),
                StepKind::CanaryDelete | StepKind::Manifests(_) => {
                    ("canary delete".to_owned(), 0, 100)
                }
            };
            let expect = Expectation::new([
                (STABLE_VERSION, f64::from(one)),
                (CANARY_VERSION, f64::from(two)),
            ])?;
            Ok(PlannedStep {
                number: i + 1,
                kind,
                name,
                expect,
            })
        })
        .collect()
}

/// The steps of a user's plan, in order.
pub fn manifest_steps(plan: &ManifestPlan) -> Vec<PlannedStep> {
    plan.steps
        .iter()
        .enumerate()
        .map(|(i, step)| PlannedStep {
            number: i + 1,
            name: step.name.clone(),
            expect: step.expect.clone(),
            kind: StepKind::Manifests(Box::new(step.clone())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_is_the_weight_steps_then_promote_return_delete() {
        let plan = plan_steps(&[0, 10, 20]).unwrap();
        let names: Vec<&str> = plan.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "canary 0%",
                "canary 10%",
                "canary 20%",
                "primary rolling update",
                "back to stable",
                "canary delete"
            ]
        );
        let expects: Vec<String> = plan.iter().map(|s| s.expect.to_string()).collect();
        assert_eq!(expects[1], "one=90,two=10");
        assert_eq!(expects[3..], ["one=0,two=100"; 3]);
        assert_eq!(plan[5].number, 6);
    }
}
