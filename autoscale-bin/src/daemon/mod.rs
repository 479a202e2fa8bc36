//! The daemon: one [`ServiceLoop`](autoscale_core::controller::ServiceLoop) task per service, wired from the
//! configuration, plus state persistence, the history, metrics, HTTP endpoints and signal handling.
//!
//! - SIGTERM or SIGINT: stop scheduling, let running rounds (and their scale calls) finish up to
//!   `daemon.shutdown_timeout`, persist every state, exit 0.
//! - SIGHUP: load and validate the configuration again; if it is valid, restart the loops of the services
//!   it adds, changes or removes, keeping each one's state, and leave the others running; if not, log the
//!   error and keep running the old one.
//! - `[[discover]]`: one task per section lists its Docker endpoint at start, every `resync`, when the
//!   endpoint's events report a service changed, and on [`Control::Discover`]; the services it finds are
//!   started, restarted and stopped the same way.
//!
//! One job per file: `run.rs` is the run loop and its signals ([`run`], [`run_with`]), `backends.rs` turns a
//! configuration into loops ([`Backends`]), `supervise.rs` runs them, each with its own stop, `discovery.rs`
//! turns what the `[[discover]]` sections find into services, [`wiring`] builds one service's loop,
//! `shared.rs` holds what the loops and the endpoints share ([`Shared`]), `health.rs` tells whether each
//! service and the state writer are healthy and the daemon ready, [`http`] serves the endpoints,
//! [`preflight`] checks at start that each scaler can run, and [`history`], [`metrics`] and [`store`] keep
//! what the daemon remembers. The commands that talk to a daemon (`once`, `healthcheck`, `status`) live in
//! [`crate::commands`].

mod backends;
mod describe;
mod discovery;
mod ha;
mod health;
pub mod history;
pub mod http;
pub mod metrics;
pub mod preflight;
pub mod report;
mod run;
mod shared;
pub mod store;
mod supervise;
pub mod wiring;

use std::path::PathBuf;

pub use self::backends::{Backends, RealBackends};
pub use self::run::{run, run_with};
pub use self::shared::Shared;
use self::wiring::WiringError;

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration could not be wired into running parts.
    #[error(transparent)]
    Wiring(#[from] WiringError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The state directory could not be used.
    #[error("state_dir {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process owns the state directory (or it could not be locked).
    #[error(transparent)]
    Lock(#[from] store::LockError),
    /// The history file could not be opened.
    #[error("cannot open the history: {0}")]
    History(std::io::Error),
    /// Installing a signal handler failed.
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
    /// The election of `[daemon] ha` could not be joined.
    #[error("cannot join the election of [daemon] ha: {0}")]
    Ha(String),
}

/// What the daemon is told to do from outside: the signals, as values (so tests can send them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGTERM or SIGINT: stop scheduling, let running rounds finish, persist, exit.
    Shutdown,
    /// SIGHUP: reload the configuration.
    Reload,
    /// List every `[[discover]]` section's endpoint now rather than at its next resync (for a watcher of the
    /// endpoint's events; [`Shared::trigger_discovery`] is the same from inside the daemon).
    Discover,
}
