//! `autoscale healthcheck`: exit 0 when the daemon's `/healthz` answers 200, for container HEALTHCHECKs.

use std::io::Write;

use crate::CliError;
use crate::cli::ProbeArgs;
use crate::config::Env;
use crate::daemon::http;

/// Ask the daemon `args` points at whether it is healthy; print `healthy` when it is.
pub fn run(args: &ProbeArgs, env: &Env, out: &mut dyn Write) -> Result<(), CliError> {
    let addr = super::daemon_addr(args, env)?;
    super::probe_runtime()?
        .block_on(http::probe(addr, args.timeout))
        .map_err(CliError::Runtime)?;
    writeln!(out, "healthy").map_err(CliError::output("standard output"))
}
