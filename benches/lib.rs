//! Shared inputs for the Parmana benchmarks; the benchmarks themselves are under `benches/benches/`.
