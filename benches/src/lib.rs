//! Shared pieces of tcp-canary's benchmarks.
