//! A Prometheus [MetricSource](autoscale_core::MetricSource) for autoscale.
//!
//! This crate is not implemented yet: it exports nothing.
#![warn(missing_docs)]
