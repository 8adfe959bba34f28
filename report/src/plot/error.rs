//! Why no picture could be drawn.

use std::path::PathBuf;

/// Why no picture could be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A samples file (or directory) cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A samples file is not a regular file, or cannot be opened.
    #[error("cannot read {}: {why}", protocol::escape(.path.as_os_str().as_encoded_bytes()))]
    Input {
        /// The file.
        path: PathBuf,
        /// Why.
        why: input_file::InputError,
    },
    /// A line is not a samples line.
    #[error("{path} line {line} is not a samples line: {why}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        why: String,
    },
    /// A directory holds no samples file.
    #[error("the directory {0} holds no .jsonl samples file")]
    EmptyDir(PathBuf),
    /// The input holds no sample at all.
    #[error("no sample in {0}: nothing to draw")]
    NoSamples(String),
    /// The output's extension names no known format.
    #[error("{0}: the picture is written as .svg or .html; name the output file so")]
    Extension(PathBuf),
    /// The confidence is not in (0, 1).
    #[error("the confidence must be strictly between 0 and 1 (e.g. 0.99), got {0}")]
    Confidence(f64),
    /// The window is zero.
    #[error("the window must be longer than zero")]
    Window,
    /// The drawing library failed.
    #[error("cannot draw the picture: {0}")]
    Draw(String),
}
