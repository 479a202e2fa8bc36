//! Docker Compose and Docker Swarm [Scaler](autoscale_core::Scaler)s for autoscale.
//!
//! This crate is not implemented yet: it exports nothing.
#![warn(missing_docs)]
