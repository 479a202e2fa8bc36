//! Runnable examples of embedding autoscale: see the `[[example]]` targets.
//!
//! The library also holds the demo stack's two programs (bins `webapp` and `loadgen`), so their tests can
//! drive one with the other.
#![warn(missing_docs)]

#[path = "../webapp/lib.rs"]
pub mod webapp;

#[path = "../loadgen/lib.rs"]
pub mod loadgen;
