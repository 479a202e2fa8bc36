//! # autoscale-prom
//!
//! A [`MetricSource`](autoscale_core::MetricSource) over the Prometheus HTTP API, built to be exact and
//! strict: a wrong reading is a wrong scaling action, so anything but one clear number is an error with a
//! kind the engine acts on (an outage must never read as zero load).
//!
//! - **Queries**: instant queries to `/api/v1/query` with `time` set to the evaluation time (a form POST
//!   once the parameters pass [`POST_THRESHOLD`] bytes), or `query_range` over a [`RangeWindow`] ending at
//!   the evaluation time, reduced per series by avg, max, min or last. Identical requests of one evaluation
//!   round are fetched once.
//! - **The past**: [`MetricSource::fetch_range`](autoscale_core::MetricSource::fetch_range), to fill a
//!   forecasting check's history at start, is one `query_range` at a minute's step (wider past 11,000
//!   points); several series are combined per timestamp by the check's [`Reduce`], NaN points skipped.
//! - **Results**: one sample of a vector, or a scalar. Empty is an error unless `on_empty = "zero"`; several
//!   series are an error naming their label sets unless a [`Reduce`] combines them; NaN is always an error,
//!   ±Inf unless accepted; matrices (from an instant query) and strings are errors; Prometheus's own
//!   `errorType`, `error` and `warnings` are surfaced.
//! - **Transport**: rustls; bearer token file re-read when it changes; basic auth with a password file;
//!   custom headers (`X-Scope-OrgID`); CA file, client certificate (mTLS); `insecure_skip_verify` with a
//!   warning; a per-query timeout; a response size cap (8 MiB by default); retries only for connection
//!   errors and 502/503/504, within the timeout.
//! - **Start-up**: [`PrometheusClient::wait_ready`] waits for `/-/ready` with jittered exponential backoff.
//!
//! Errors are this crate's [`Error`], which converts into [`autoscale_core::Error`] by kind. Messages carry
//! the URL without credentials and the query, never a secret; `Debug` output redacts tokens and passwords.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use autoscale_prom::response::{evaluate, parse, Envelope};
//! use autoscale_prom::{
//!     OnEmpty, PrometheusClient, PrometheusConfig, PrometheusSource, QueryOptions, RangeReduce,
//!     RangeWindow, Reduce,
//! };
//!
//! // One client per Prometheus server; building it sends nothing.
//! let config = PrometheusConfig::new("http://127.0.0.1:9090")?
//!     .timeout(Duration::from_secs(5))
//!     .header("X-Scope-OrgID", "team-a")?;
//! let client = Arc::new(PrometheusClient::new(config)?);
//!
//! // One source per check: here the per-replica average over 5 minutes, summed over the series.
//! let window = RangeWindow::new(Duration::from_secs(300), Duration::from_secs(15))?
//!     .reduce(RangeReduce::Avg);
//! let options = QueryOptions::new().range(window).reduce(Reduce::Sum);
//! let _source = PrometheusSource::new(Arc::clone(&client), options);
//!
//! // How an answer becomes a value, strictly: two series and no `reduce` is an error naming them.
//! let body = br#"{"status":"success","data":{"resultType":"vector","result":[
//!     {"metric":{"job":"a"},"value":[1700000000,"0.5"]},
//!     {"metric":{"job":"b"},"value":[1700000000,"0.25"]}]}}"#;
//! let Envelope::Success(answer) = parse(body)? else { unreachable!() };
//! let strict = evaluate(&answer.data, &QueryOptions::new(), OnEmpty::Error);
//! assert!(strict.unwrap_err().to_string().contains(r#"{job="a"}, {job="b"}"#));
//! let summed = evaluate(&answer.data, &QueryOptions::new().reduce(Reduce::Sum), OnEmpty::Error);
//! assert_eq!(summed.unwrap(), 0.75);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In a daemon, wait for the server once at start-up, then hand the sources to the engine:
//!
//! ```no_run
//! # async fn run() -> Result<(), autoscale_prom::Error> {
//! use std::sync::Arc;
//! use autoscale_core::{MetricSource, Timestamp};
//! use autoscale_prom::{PrometheusClient, PrometheusConfig, PrometheusSource, QueryOptions};
//!
//! let url = autoscale_prom::url_from_env()?.unwrap_or_else(|| "http://prometheus:9090".to_owned());
//! let client = Arc::new(PrometheusClient::new(PrometheusConfig::new(&url)?)?);
//! client.wait_ready(client.ready_timeout()).await?;
//! let source = PrometheusSource::new(client, QueryOptions::new());
//! let value = source.fetch("sum(rate(webapp_requests_total[30s]))", Timestamp::from_secs(1_700_000_000)).await;
//! # let _ = value;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod auth;
mod backoff;
mod cache;
mod client;
mod config;
mod error;
mod options;
pub mod response;
mod source;

pub use backoff::Backoff;
pub use client::{POST_THRESHOLD, PrometheusClient};
pub use config::{
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_READY_TIMEOUT, DEFAULT_ROUND_CACHE_TTL, DEFAULT_TIMEOUT,
    PrometheusConfig, read_url_file, url_from_env, url_from_env_with,
};
pub use error::{BACKEND, Error, QueryTarget};
pub use options::{
    MAX_RANGE_POINTS, NonFinite, OnEmpty, QueryOptions, RangeReduce, RangeWindow, Reduce,
};
pub use source::PrometheusSource;
