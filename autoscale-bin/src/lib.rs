//! # autoscale-bin
//!
//! The `autoscale` command as a library: configuration loading ([`config`]), the command line ([`cli`]),
//! `autoscale check`, `autoscale simulate` ([`simulate`]), the daemon of `autoscale run` ([`daemon`]), and
//! the commands that run or ask it ([`commands`]). The binary's `main` only calls [`run`] and maps
//! the result to an exit code; tests call [`run_with`] with their own arguments, environment and output.
//!
//! ```
//! use autoscale_bin::{config::Env, run_with};
//!
//! let mut out = Vec::new();
//! run_with(["autoscale", "simulate", "--pattern", "step", "--format", "json"], &Env::empty(), &mut out).unwrap();
//! let summary: serde_json::Value = serde_json::from_slice(&out).unwrap();
//! assert_eq!(summary["service"], "webapp");
//! assert_eq!(summary["policy"], "target");
//! assert_eq!(summary["ticks"], 361);
//! ```
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod discovered;
mod error;
pub mod simulate;

use std::ffi::OsString;
use std::io::{self, Write};

use clap::Parser;

use crate::cli::{CheckArgs, Cli, Command, RunArgs};
use crate::config::{Config, Env};
pub use crate::error::CliError;

/// Run the command with the process's arguments and environment, writing to standard output.
///
/// A closed standard output (`autoscale simulate --format csv | head`) is not an error.
pub fn run() -> Result<(), CliError> {
    let env = Env::from_process();
    let mut stdout = io::stdout().lock();
    match run_with(std::env::args_os(), &env, &mut stdout) {
        Err(CliError::Output { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
            Ok(())
        }
        other => other,
    }
}

/// Run the command with `args` (the first is the program name) and `env`, writing its report to `out`.
///
/// `--help` and `--version` write to `out` and succeed; every other problem is an `Err` whose
/// [`CliError::exit_code`] is 2 for bad input.
pub fn run_with<I, T>(args: I, env: &Env, out: &mut dyn Write) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if e.exit_code() == 0 => {
            return write!(out, "{}", e.render()).map_err(CliError::output("standard output"));
        }
        Err(e) => return Err(e.into()),
    };
    match cli.command {
        Command::Check(args) => check(&args, env, out),
        Command::Simulate(args) => simulate::run(&args, env, out),
        Command::Run(args) => run_daemon(&args, env),
        Command::Once(args) => commands::once::run(&args, env, out),
        Command::Healthcheck(args) => commands::healthcheck::run(&args, env, out),
        Command::Status(args) => commands::status::run(&args, env, out),
        Command::Pause(args) => commands::pause::pause(&args, env, out),
        Command::Resume(args) => commands::pause::resume(&args, env, out),
    }
}

fn load(config: Option<&std::path::Path>, env: &Env) -> Result<Config, CliError> {
    Ok(match config {
        Some(path) => Config::load(path, env, Default::default())?,
        None => Config::from_env(env)?,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))
}

/// Logs go to standard error: text by default, JSON with `log_format = "json"`; the level is RUST_LOG when
/// set and valid, else the configured LOG_LEVEL. What the environment gets wrong without making the
/// configuration invalid (an invalid RUST_LOG, a misspelled variable) is logged as a warning.
fn init_logging(config: &Config, env: &Env) {
    use tracing_subscriber::EnvFilter;
    let level = config.daemon.log_level.as_str();
    let mut invalid_rust_log = None;
    let filter = match env.get("RUST_LOG").map(EnvFilter::try_new) {
        Some(Ok(filter)) => filter,
        Some(Err(e)) => {
            invalid_rust_log = Some(e);
            EnvFilter::new(level)
        }
        None => EnvFilter::new(level),
    };
    use std::io::IsTerminal;
    // Colours only for a person at a terminal: container logs and files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal());
    let _ = match config.daemon.log_format {
        config::LogFormat::Json => builder.json().flatten_event(true).try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
    if let Some(e) = invalid_rust_log {
        tracing::warn!(error = %e, level, "RUST_LOG is invalid and is ignored; logging at LOG_LEVEL's level");
    }
    for warning in env_warnings(env) {
        tracing::warn!("{warning}");
    }
}

/// A warning for each variable that looks like a misspelling of one autoscale reads.
fn env_warnings(env: &Env) -> Vec<String> {
    env.likely_misspellings()
        .into_iter()
        .map(|(name, meant)| {
            format!("environment variable {name} is not one autoscale reads; did you mean {meant}?")
        })
        .collect()
}

fn run_daemon(args: &RunArgs, env: &Env) -> Result<(), CliError> {
    let env = &run_env(args, env);
    let config = load(args.config.as_deref(), env)?;
    init_logging(&config, env);
    runtime()?
        .block_on(daemon::run(config, args.config.clone(), env.clone()))
        .map_err(|e| match e {
            daemon::DaemonError::Wiring(e) => CliError::Input(e.to_string()),
            e @ daemon::DaemonError::Lock(daemon::store::LockError::InUse { .. }) => {
                CliError::Input(e.to_string())
            }
            other => CliError::Runtime(other.to_string()),
        })
}

/// The environment `run` loads its configuration with: `--dry-run` and `--listen` set the variables that
/// override the file (`DRY_RUN`, `AUTOSCALE_LISTEN`), so that they win over both, and still do after a reload.
fn run_env(args: &RunArgs, env: &Env) -> Env {
    let mut env = env.clone();
    if args.dry_run {
        env = env.with("DRY_RUN", "true");
    }
    if let Some(listen) = args.listen {
        env = env.with("AUTOSCALE_LISTEN", listen.to_string());
    }
    env
}

fn check(args: &CheckArgs, env: &Env, out: &mut dyn Write) -> Result<(), CliError> {
    let config = load(args.config.as_deref(), env)?;
    for warning in env_warnings(env) {
        eprintln!("warning: {warning}");
    }
    out.write_all(config.to_redacted_toml().as_bytes())
        .map_err(CliError::output("standard output"))
}
