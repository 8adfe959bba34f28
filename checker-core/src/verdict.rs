//! The statistics: Wilson intervals, the sample-size planner, PASS / FAIL /
//! INCONCLUSIVE per version and overall, Pearson's chi-square as information, and the
//! drift check (did the split move during the run).
//!
//! Pure and deterministic: numbers in, numbers out, no sockets, no clocks.
//!
//! The rule, per version, over the attributed samples:
//! * the Wilson score interval of its share, at the per-version confidence
//!   `1 - (1 - confidence) / k` (Bonferroni). `k` counts every version in the verdict:
//!   all expected versions (zero-weight ones included) plus the unexpected versions
//!   that answered. The planner uses `k` = the number of expected versions, which is
//!   the `k` of any run in which no unexpected version answers.
//! * the band `expected +- tolerance`, clamped to 0..=1.
//! * PASS when the whole interval lies inside the band; FAIL when it lies wholly
//!   outside, when a zero-weight version answers even once, or when a version answers
//!   that was not expected at all; otherwise INCONCLUSIVE, with an estimate of how
//!   many more connections would decide it if the share stayed where it is. A
//!   zero-weight version that never answered PASSes (the other versions' intervals
//!   carry the evidence). With no samples at all every version is INCONCLUSIVE and
//!   the estimate is the planned N.
//! * Overall: FAIL if any version fails, else INCONCLUSIVE if any is, else PASS.
//!
//! See [`planner`] for how the sample count is planned, and [`judgement`] for a whole run
//! judged once: the split by its rule, the error budget, drift and the health checks, then
//! the outcome and the exit code.

pub mod baseline;
pub mod chi_square;
pub mod compare;
pub mod compare_plan;
pub mod compare_sequence;
pub mod figures;
pub mod health;
pub mod judgement;
pub mod local;
pub mod margin;
pub mod planner;
pub mod quantile;
pub mod rate_sequence;
mod search;
pub mod sequential;
pub mod split;
pub mod thresholds;
mod types;
pub mod wilson;

pub use chi_square::{Drift, drift};
pub use planner::plan;
pub use split::judge;
pub use types::{
    ChiSquare, Interval, Outcome, Plan, Settings, SettingsError, SplitVerdict, VersionVerdict,
};
