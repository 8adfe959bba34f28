//! The walk's steps, each with the split it must show: the built-in walk's ([`builtin`]:
//! the weight steps, then promote, return and delete) or a user's steps file ([`file`],
//! `--plan`: one step per manifest source).

use checker_core::expect::Expectation;

pub mod builtin;
pub mod file;

use file::{ManifestStep, StepsFile};

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

/// One step of the walk.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based position.
    pub number: usize,
    /// What it does.
    pub kind: StepKind,
    /// Its name in reports.
    pub name: String,
    /// The expected split after it.
    pub expect: Expectation,
}

/// The steps of a user's steps file, in order.
pub fn of_file(file: &StepsFile) -> Vec<Step> {
    file.steps
        .iter()
        .enumerate()
        .map(|(i, step)| Step {
            number: i + 1,
            name: step.name.clone(),
            expect: step.expect.clone(),
            kind: StepKind::Manifests(Box::new(step.clone())),
        })
        .collect()
}
