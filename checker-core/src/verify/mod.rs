//! `verify` as a library call: resolve the target, plan, sample, tally, judge once.
//!
//! The CLI and the rehearsal both call [`verify`] (or [`prepare`] then [`Prepared::run`]
//! to show the plan before sampling starts). Nothing here prints or writes files: an
//! optional [`crate::observer::RunObserver`] follows the sampling. [`config`] holds what a run needs and its validation,
//! [`run`] the run itself, [`verification`] the plain-data result it returns.

pub mod config;
pub mod looks;
pub mod run;
pub mod settle;
pub mod verification;

pub use config::*;
pub use looks::{SequentialConfig, SequentialSummary};
pub use run::*;
pub use settle::{SettleEnd, SettleSummary};
pub use verification::{
    ExpectedInput, Inputs, LatencySummary, RecordedRun, ScheduleSummary, Times, Verification,
    VersionLatency,
};
