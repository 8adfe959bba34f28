//! Everything the checker shows: the human table, the JSON document, the per-sample
//! file, the progress bar and the picture.

pub mod health;
pub mod json;
pub mod lint;
pub mod load;
pub mod plot;
pub mod progress;
pub mod reason;
pub mod samples;
pub mod text;
