//! What the checker shows, apart from what it measures and judges (`checker-core`): the
//! text tables, the JSON documents and their schemas (`report/schema/`), the samples
//! file, the progress bar, the picture, and reading our own reports back.
//!
//! Everything here takes plain data from `checker-core` (a
//! [`checker_core::verify::Verification`], a tally, samples) and turns it into text,
//! JSON or SVG; nothing here samples or judges. The progress bar and the samples file
//! follow a run as [`checker_core::observer::RunObserver`]s.

pub mod health_section;
pub mod json;
pub mod junit;
pub mod lint;
pub mod metrics;
pub mod plot;
pub mod progress;
pub mod read_back;
pub mod reason;
pub mod samples;
pub mod table;
pub mod text;
pub mod watch;
