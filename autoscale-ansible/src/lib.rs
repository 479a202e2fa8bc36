//! An Ansible playbook [Scaler](autoscale_core::Scaler) for autoscale.
//!
//! This crate is not implemented yet: it exports nothing.
#![warn(missing_docs)]
