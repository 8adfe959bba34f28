//! Everything the checker shows: the human table, the JSON document, the per-sample
//! file and the progress bar.

pub mod health;
pub mod json;
pub mod load;
pub mod model;
pub mod progress;
pub mod samples;
pub mod text;
