//! # autoscale-docker
//!
//! Docker Compose and Docker Swarm [`Scaler`](autoscale_core::Scaler)s for autoscale. Status reads and Swarm
//! scaling use the Docker Engine API, one snapshot per endpoint per round shared by every scaler on it
//! ([`EngineEndpoint`]); Compose scaling drives the Compose CLI.
//!
//! - [`ComposeScaler`] reads a Compose service's replicas by counting its containers (`docker ps` on the
//!   Compose labels; `ready` = running and healthy or without a healthcheck) and scales with
//!   `up -d --no-recreate --scale SERVICE=N SERVICE`, through the v2 plugin (`docker compose`) or v1
//!   (`docker-compose`), detected on first use unless configured.
//! - [`SwarmScaler`] reads a Swarm service's spec replicas and running tasks and scales with
//!   `docker service scale SERVICE=N --detach`. Global services are refused.
//! - [`EngineEndpoint::discover`] finds the Swarm services, or the Compose services, carrying a label
//!   ([`Selector`], `autoscale.enable=true` by default) in the same snapshots, with their `autoscale.*` labels
//!   uninterpreted; [`endpoint`] gives the shared client of an endpoint.
//! - Both scalers have a change feed ([`Scaler::changes`](autoscale_core::Scaler::changes)) fed by one Docker
//!   event stream per endpoint (`GET /events`, started with the first feed and stopped with the last): an event
//!   about a service's containers, or a Swarm service's update, drops the endpoint's snapshot and notifies that
//!   service's feeds, so the control loop reads the outside change within a second rather than at its next
//!   round. A broken stream is reopened with a backoff ([`RECONNECT_FIRST`] doubling to [`RECONNECT_MAX`], back
//!   to the first after [`HEALTHY_AFTER`] connected), and the endpoint is polled every [`POLL_EVERY`] meanwhile;
//!   [`RequestCounts`] counts the stream's connections and breaks.
//!
//! Every command is an argument vector, never a shell line; project, service, profile and context names are
//! checked against Docker's rules before anything runs. Every call has a timeout that kills the command and
//! every process it started ([`autoscale_exec`]). The standard `DOCKER_HOST`, `DOCKER_CONTEXT`, `DOCKER_TLS_VERIFY` and
//! `DOCKER_CERT_PATH` are inherited, or set per scaler with [`DockerEnv`]. Setting the count a service already
//! has runs nothing and returns [`ScaleOutcome::Unchanged`](autoscale_core::ScaleOutcome::Unchanged).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use autoscale_core::Scaler;
//! use autoscale_docker::{ComposeScaler, DockerCli, DockerEnv, Error, SwarmScaler};
//!
//! let docker = DockerCli::new()
//!     .env(DockerEnv::new().host("unix:///run/docker.sock"))
//!     .timeout(Duration::from_secs(30));
//!
//! let compose = ComposeScaler::builder("shop", "webapp")
//!     .file("/srv/shop/docker-compose.yml")
//!     .profile("demo")
//!     .docker(docker.clone())
//!     .build()?;
//! let swarm = SwarmScaler::new(docker, "shop_webapp")?;
//! let scalers: Vec<Arc<dyn Scaler>> = vec![Arc::new(compose), Arc::new(swarm)];
//! assert_eq!(scalers.len(), 2);
//!
//! // A name Docker would refuse is reported at start-up, before any command runs.
//! let err = ComposeScaler::builder("shop; rm -rf /", "webapp").build().unwrap_err();
//! assert!(matches!(err, Error::InvalidName { .. }));
//! assert!(err.to_string().contains("shell metacharacter"));
//! # Ok::<(), Error>(())
//! ```
//!
//! Reading and scaling (needs a Docker engine):
//!
//! ```no_run
//! # async fn demo() -> autoscale_core::Result<()> {
//! use autoscale_core::{ScaleOutcome, Scaler};
//! use autoscale_docker::{DockerCli, SwarmScaler};
//!
//! let swarm = SwarmScaler::new(DockerCli::new(), "shop_webapp")?;
//! let status = swarm.status().await?;
//! println!("{} replicas, {} ready", status.current, status.ready);
//! if swarm.scale(status.current + 1).await? == ScaleOutcome::Scaled {
//!     println!("scaled up");
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod compose;
mod discovery;
mod docker;
mod engine;
mod error;
mod events;
mod last_change;
mod lease;
mod names;
mod parse;
mod settings;
mod swarm;

pub use compose::{
    BACKEND as COMPOSE_BACKEND, ComposeCommand, ComposeScaler, ComposeScalerBuilder, ONEOFF_LABEL,
    PROJECT_LABEL, SERVICE_LABEL,
};
pub use discovery::{
    CONFIG_FILES_LABEL, COOLDOWN_DOWN_LABEL, DiscoverKind, DiscoveredService, Discovery,
    ENABLE_LABEL, INTERVAL_LABEL, LABEL_PREFIX, MAX_LABEL, MIN_LABEL, QUERY_LABEL,
    SCALE_DOWN_BELOW_LABEL, SCALE_UP_ABOVE_LABEL, Selector, SkippedService, TARGET_LABEL,
    WORKING_DIR_LABEL,
};
pub use docker::{DEFAULT_TIMEOUT, DockerCli, DockerEnv};
pub use engine::{DEFAULT_FRESHNESS, EngineEndpoint, RequestCounts, endpoint, endpoints};
pub use error::{ApiError, BACKEND, Cause, Error};
pub use events::{HEALTHY_AFTER, POLL_EVERY, RECONNECT_FIRST, RECONNECT_MAX};
pub use lease::{
    DEFAULT_LOCK_SERVICE, DURATION_LABEL, HOLDER_LABEL, MONOTONIC_LABEL, RENEWED_LABEL,
    SwarmLeaseStore, TRANSITIONS_LABEL,
};
pub use names::{Rule as NameRule, check as check_name};
pub use settings::{
    ComposeSettings, DEFAULT_DOCKER_COMMAND, DEFAULT_FILE, DEFAULT_PROJECT, SwarmSettings,
};
pub use swarm::{BACKEND as SWARM_BACKEND, SwarmScaler};
