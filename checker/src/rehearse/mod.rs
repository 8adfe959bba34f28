//! `checker rehearse`: the whole canary rollout walked on one machine, no cluster.
//!
//! In-process echo servers ([`fleet`]) stand for the stable and canary Deployments,
//! the built-in weighted gateway ([`gateway`]) or a real HAProxy ([`haproxy`]) stands
//! for Istio's ingress ([`ingress`]), and the walk ([`walk`]) moves the weights step by
//! step under long-lived connections ([`holders`]), verifying the split after every
//! step; [`summary`] holds the reports and their rendering, [`cli`] the flags.

pub mod cli;
pub mod fleet;
pub mod gateway;
pub mod haproxy;
pub mod holders;
pub mod ingress;
pub mod summary;
pub mod walk;

pub use cli::{RehearseArgs, run};
pub use summary::{StepOutcome, StepReport, WalkReport};
pub use walk::{WalkConfig, WalkError, walk};
