//! Criterion suites for tcp-canary; the benchmarks live in `benches/`, this library is empty.
