//! The environment simulator behind `checker rehearse`: the whole canary rollout walked
//! on one machine, no cluster. The checker binary includes it through its default
//! `rehearse` feature; it uses the checker library (`checker_core`) to verify each step.
//!
//! In-process echo servers ([`fleet`]) stand for the stable and canary Deployments,
//! the built-in weighted gateway, a real HAProxy or a real Envoy stands for Istio's
//! ingress ([`ingress`]), and the walk ([`walk`]) takes the steps ([`steps`]: the
//! built-in walk or a user's steps file) under long-lived connections
//! ([`checker_core::hold`]), verifying the split after every step, with faults injected
//! on request ([`walk::faults`]); [`summary`] holds the reports and their rendering. The flags and the signal handling live in the binary
//! (`checker/src/cli/rehearse.rs`).
//!
//! How connections close, so that a rehearsal leaves a small footprint: a connection
//! closed with a FIN leaves a TIME_WAIT socket and a connection-tracking entry for
//! about 120 s, and a rehearsal makes thousands (two entries per proxied connection,
//! some 7,300 per default walk, enough in a few dozen runs to fill a 262,144-entry
//! table, after which the kernel drops packets for every program on the host). So the
//! sampler closes each sample's connection with a reset (`reset_on_close`), the
//! built-in gateway passes a reset on to the other leg, and HAProxy resets its
//! server-side legs (`option nolinger`); reset entries expire after 10 s. The held
//! connections ([`checker_core::hold`]) still close with FINs, since proving a clean end
//! is their job; they are a few dozen per walk.

pub mod fleet;
pub mod ingress;
pub mod setting;
pub mod steps;
pub mod summary;
pub mod supervisor;
pub mod walk;

pub use setting::Setting;
pub use summary::{StepOutcome, StepReport, WalkReport};
pub use walk::{WalkConfig, WalkError, walk};
