//! `autoscale pause` and `autoscale resume`: tell the running daemon to pause a service, or to lift its
//! run-time pause, through `POST /pause/SERVICE` and `POST /resume/SERVICE` on its listener.

use std::io::Write;

use autoscale_core::engine::Pause;

use crate::CliError;
use crate::cli::{AdminArgs, PauseArgs, ResumeArgs};
use crate::config::{Config, Env, LoadOptions, read_admin_token};
use crate::daemon::http;

/// `autoscale pause SERVICE [--up | --down]`.
pub fn pause(args: &PauseArgs, env: &Env, out: &mut dyn Write) -> Result<(), CliError> {
    let directions = match (args.up, args.down) {
        (true, _) => Pause::Up,
        (_, true) => Pause::Down,
        _ => Pause::All,
    };
    ask(&args.admin, &args.service, Some(directions), env, out)
}

/// `autoscale resume SERVICE`.
pub fn resume(args: &ResumeArgs, env: &Env, out: &mut dyn Write) -> Result<(), CliError> {
    ask(&args.admin, &args.service, None, env, out)
}

fn ask(
    args: &AdminArgs,
    service: &str,
    pause: Option<Pause>,
    env: &Env,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let addr = super::daemon_addr(&args.probe, env)?;
    let token_file = match (&args.token_file, &args.probe.config) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(config)) => {
            Config::load(config, env, LoadOptions { url_optional: true })?
                .daemon
                .admin_token_file
        }
        (None, None) => None,
    };
    let token = token_file
        .map(|path| read_admin_token(&path))
        .transpose()
        .map_err(CliError::Input)?;
    let answer = super::probe_runtime()?
        .block_on(http::instruct(
            addr,
            service,
            pause,
            token.as_deref(),
            args.probe.timeout,
        ))
        .map_err(|e| CliError::Runtime(super::no_daemon_hint(&e)))?;
    writeln!(out, "{}", answer.message).map_err(CliError::output("standard output"))
}
