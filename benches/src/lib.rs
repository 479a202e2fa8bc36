//! Criterion benchmarks of autoscale: see the `[[bench]]` targets.
