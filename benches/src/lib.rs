//! Shared pieces of tcp-canary's benchmarks: starting server processes and the
//! loopback workloads (fresh connections, ping-pong, idle connections).

pub mod load;
pub mod process;
