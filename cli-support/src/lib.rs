//! What both tcp-canary command lines (the checker and the echo server) share, written
//! once: the rule for durations and for yes/no values, the parts of the one sentence a
//! bad value gets (naming the environment variable it came from), and the signals that
//! stop a run gracefully.
//!
//! [`duration`] and [`boolean`] need nothing but the standard library and humantime, so a
//! library that reads user text (a threshold's `20ms`) uses the same rule. The
//! command-line parts are behind features the binaries turn on: `clap` for
//! [`bad_value`], `signals` for [`signals`] (tokio).

#[cfg(feature = "clap")]
pub mod bad_value;
pub mod boolean;
pub mod duration;
#[cfg(feature = "signals")]
pub mod signals;
