//! # autoscale-core
//!
//! The heart of autoscale: the [`MetricSource`], [`Policy`] and [`Scaler`] traits, the value types they speak,
//! and a pure, deterministic decision [`Engine`] that makes Kubernetes-HPA-grade decisions (target tracking,
//! tolerance, stabilization windows, rate rules, cooldowns, fallback, scale to zero).
//!
//! This crate talks to no network and spawns no process; backends (`autoscale-prom`, `autoscale-docker`,
//! `autoscale-ansible`) implement the traits. The engine reads no clock: time is an input.
//!
//! ```
//! use std::sync::Arc;
//! use autoscale_core::{Check, Engine, EngineConfig, EngineState, Observation, ReplicaStatus, Timestamp};
//! use autoscale_core::policy::{TargetForm, TargetPolicy};
//!
//! let policy = TargetPolicy::new(0.6, TargetForm::PerReplica).unwrap();
//! let config = EngineConfig::builder(1, 10)
//!     .check(Check::new("cpu", Arc::new(policy)))
//!     .build()
//!     .unwrap();
//! let engine = Engine::new(config);
//!
//! // Two replicas at 90 % utilization against a 60 % target: ceil(1.5 * 2) = 3.
//! let (decision, state) = engine.evaluate(
//!     EngineState::default(),
//!     ReplicaStatus::all_ready(2),
//!     &[Observation::Value(0.9)],
//!     Timestamp::from_secs(0),
//! );
//! assert_eq!(decision.desired, 3);
//! assert_eq!(decision.reason.token.as_str(), "scale_up");
//! assert_eq!(state.recommendations.len(), 2);
//! ```
#![warn(missing_docs)]

pub mod controller;
pub mod engine;
mod error;
pub mod policy;
pub mod sim;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod traits;
mod types;

pub use engine::{Behavior, Check, Decision, Engine, EngineConfig, EngineState, Reason, Token};
pub use error::{BoxError, Error, Result, brief_error, root_cause};
pub use traits::{ChangeFeed, MetricSource, Policy, ScaleOutcome, Scaler};
#[cfg(any(test, feature = "mocks"))]
pub use traits::{MockMetricSource, MockPolicy, MockScaler};
pub use types::{Direction, FailureKind, Observation, ReplicaStatus, Replicas, Timestamp};
