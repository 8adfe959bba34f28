//! Shared pieces of tcp-canary's benchmarks: starting server processes and the
//! loopback workloads (fresh connections, ping-pong, idle connections).

pub mod load;
pub mod process;
pub mod ratios;

/// The median of `values` (the upper one of an even count), 0 when there are none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}
