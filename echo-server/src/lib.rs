//! tcp-canary's echo server: prefixes every echoed line with its version.
//!
//! The binary is a thin wrapper over this library; the checker reuses [`protocol`]
//! so that both sides agree on the wire, and `checker rehearse` runs servers in-process.

pub mod protocol;
