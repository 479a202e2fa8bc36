//! The commands that run or ask the daemon, one per file: `autoscale once` ([`once`]), `autoscale healthcheck`
//! ([`healthcheck`]), `autoscale status` ([`status`]), and `autoscale pause` and `resume` ([`pause`]). `autoscale run` is the [`daemon`](crate::daemon)
//! itself; `check` and `simulate` need no daemon.

pub mod healthcheck;
pub mod once;
pub mod pause;
pub mod status;

use std::net::SocketAddr;

use crate::CliError;
use crate::cli::ProbeArgs;
use crate::config::{Config, Env, LoadOptions};

/// The daemon's address: --listen, else daemon.listen of --config, else AUTOSCALE_LISTEN, else the default.
fn daemon_addr(args: &ProbeArgs, env: &Env) -> Result<SocketAddr, CliError> {
    if let Some(addr) = args.listen {
        return Ok(addr);
    }
    if let Some(path) = &args.config {
        return Ok(Config::load(path, env, LoadOptions { url_optional: true })?
            .daemon
            .listen);
    }
    let listen = env.get("AUTOSCALE_LISTEN").unwrap_or("127.0.0.1:9464");
    listen.parse().map_err(|e| {
        CliError::Input(format!(
            "AUTOSCALE_LISTEN: {listen:?} is not an address: {e}"
        ))
    })
}

/// A failure to reach the daemon (`ADDR: Connection refused`, `ADDR: no answer within 3s`), with how to
/// point at the right one; an answer from the daemon (`ADDR/status answered 503: ...`) as it is.
fn no_daemon_hint(error: &str) -> String {
    if error.contains(" answered ") {
        return error.to_owned();
    }
    format!(
        "{error}. Is the autoscale daemon listening there? Give its address with --listen ADDR, or its \
         configuration with --config FILE (its daemon.listen is used), or set AUTOSCALE_LISTEN"
    )
}

/// A probe is one request: a single-threaded runtime is enough, and starts faster than the daemon's.
fn probe_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(e.to_string()))
}
