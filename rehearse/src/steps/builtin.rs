//! The built-in walk: the weight steps, then the primary's rolling update, the return
//! to stable and the canary's deletion, over a stable and a canary Deployment.

use checker_core::expect::{ExpectError, Expectation};

use super::{Step, StepKind};

/// The stable version's name.
pub const STABLE_VERSION: &str = "one";
/// The canary version's name.
pub const CANARY_VERSION: &str = "two";
/// The gateway group of the stable Deployment.
pub const STABLE_GROUP: &str = "stable";
/// The gateway group of the canary Deployment.
pub const CANARY_GROUP: &str = "canary";

/// The steps of the built-in walk over the canary `weights` (percent), in order.
pub fn steps(weights: &[u32]) -> Result<Vec<Step>, ExpectError> {
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
            Ok(Step {
                number: i + 1,
                kind,
                name,
                expect,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_is_the_weight_steps_then_promote_return_delete() {
        let walk = steps(&[0, 10, 20]).unwrap();
        let names: Vec<&str> = walk.iter().map(|s| s.name.as_str()).collect();
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
        let expects: Vec<String> = walk.iter().map(|s| s.expect.to_string()).collect();
        assert_eq!(expects[1], "one=90,two=10");
        assert_eq!(expects[3..], ["one=0,two=100"; 3]);
        assert_eq!(walk[5].number, 6);
    }
}
