//! tcp-canary's checker: samples fresh TCP connections through a gateway, attributes
//! each to the version that answered, and judges the split against expected weights.

pub mod expect;
pub mod verdict;
pub mod rehearse;
