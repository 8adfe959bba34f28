//! tcp-canary's checker: samples fresh TCP connections through a gateway, attributes
//! each to the version that answered, and judges the split against expected weights.
//!
//! Data flows one way: flags (parsed in the `checker` binary, `checker/src/cli/`) → [`expect::Expectation`]
//! → [`verdict::plan`] → [`sampler`] → [`tally`] → [`verdict::judgement`] (judged once:
//! outcome and [`exit`] code) → a plain-data [`verify::Verification`], with [`verify`]
//! tying the steps together for the CLI and the `rehearse` crate. Showing it (text,
//! JSON, samples file, progress bar, plot) is the `report` crate's job; a run tells it
//! what it samples through an [`observer::RunObserver`]. The library never parses a
//! command line, installs signal handlers, prints or exits.

pub mod clock;
pub mod error_class;
pub mod exit;
pub mod expect;
pub mod expect_file;
pub mod gateway;
pub mod hold;
pub mod merge;
pub mod observer;
pub mod probe;
pub mod sampler;
pub mod snapshot;
pub mod sync;
pub mod tally;
pub mod target;
pub mod tls;
pub mod verdict;
pub mod verify;
pub mod watch;

pub use verify::{Verification, VerifyConfig, VerifyError, verify};
