//! `checker rehearse`: the whole canary rollout walked on one machine, no cluster.
//!
//! In-process echo servers stand for the stable and canary Deployments, a local
//! weighted gateway ([`gateway`]) or a real HAProxy stands for Istio's ingress, and
//! the walk moves the weights step by step, verifying the split after every step.

pub mod gateway;
