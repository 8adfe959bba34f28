//! Long-lived connections held open through the gateway across a rollout step: the
//! checker library's [`checker_core::hold`], which `checker verify --hold` uses too.

pub use checker_core::hold::*;
