//! tcp-canary's checker: samples fresh TCP connections through a gateway, attributes
//! each to the version that answered, and judges the split against expected weights.
//!
//! Data flows one way: flags (parsed in the `checker` binary, `checker/src/cli/`) → [`expect::Expectation`]
//! → [`verdict::plan`] → [`sampler`] → [`tally`] → [`verdict::judge`] → [`report`] →
//! [`exit`] code, with [`verify`] tying the steps together for the CLI and the `rehearse` crate.
//! The library never parses a command line, installs signal handlers or exits.

pub mod clock;
pub mod exit;
pub mod expect;
pub mod gateway;
pub mod hold;
pub mod merge;
pub mod probe;
pub mod report;
pub mod sampler;
pub mod snapshot;
pub mod sync;
pub mod tally;
pub mod target;
pub mod tls;
pub mod verdict;
pub mod verify;
pub mod watch;

pub use verify::{VerifyConfig, VerifyError, VerifyReport, verify};
