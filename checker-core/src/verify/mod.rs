//! `verify` as a library call: resolve the target, plan, sample, tally, judge.
//!
//! The CLI and the rehearsal both call [`verify`] (or [`prepare`] then [`Prepared::run`]
//! to show the plan before sampling starts). Nothing here prints except the optional
//! progress bar on a terminal. [`config`] holds what a run needs and its validation,
//! [`run`] the run itself; the report it returns is modelled in [`crate::report::model`].

pub mod config;
pub mod run;
pub mod sequential;
pub mod settle;

pub use crate::report::model::*;
pub use config::*;
pub use run::*;
pub use sequential::{Mode, SequentialConfig, SequentialSummary};
pub use settle::{SettleEnd, SettleSummary};
