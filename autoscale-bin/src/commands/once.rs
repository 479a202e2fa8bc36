//! `autoscale once`: evaluate every service once and print each decision with its reason; scale only with
//! `--apply`.

use std::io::Write;
use std::sync::Arc;

use autoscale_core::controller::{Round, ServiceLoop};
use tokio::sync::Semaphore;

use crate::CliError;
use crate::cli::OnceArgs;
use crate::config::{Config, Env};
use crate::daemon::store::{LockError, StateLock};
use crate::daemon::wiring::{self, Clients, LoopParts, WiringError};

/// Load the configuration `args` names and evaluate every service once. Fails when a round could not be
/// evaluated or applied.
pub fn run(args: &OnceArgs, env: &Env, out: &mut dyn Write) -> Result<(), CliError> {
    let mut config = crate::load(args.config.as_deref(), env)?;
    if let Some(name) = &args.service {
        config.services = vec![only(&config, name)?];
    }
    crate::init_logging(&config, env);
    // Scaling is the job of the state_dir's owner: a running daemon, or this command, never both at once.
    let _lock = if args.apply {
        Some(
            StateLock::acquire(&config.daemon.state_dir).map_err(|e| match e {
                LockError::InUse { .. } => CliError::Input(e.to_string()),
                LockError::Io { .. } => CliError::Runtime(e.to_string()),
            })?,
        )
    } else {
        None
    };
    let all_ok = crate::runtime()?
        .block_on(evaluate(&config, args.apply, out))
        .map_err(|e| CliError::Input(e.to_string()))?;
    if all_ok {
        Ok(())
    } else {
        Err(CliError::Runtime(
            "a status read, a check or a scale call failed (see above)".into(),
        ))
    }
}

/// The service `name` of `config`, or an error listing the names there are.
fn only(config: &Config, name: &str) -> Result<crate::config::ServiceConfig, CliError> {
    config.service(name).cloned().ok_or_else(|| {
        let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
        CliError::Input(format!(
            "--service {name:?}: no such service; the configuration has {}",
            names.join(", ")
        ))
    })
}

/// One round of every service of `config`, one line each on `out`; scale only with `apply`. True when every
/// round went well.
pub async fn evaluate(
    config: &Config,
    apply: bool,
    out: &mut dyn Write,
) -> Result<bool, WiringError> {
    let parts = LoopParts {
        clients: Clients::new(config)?,
        metric_permits: Arc::new(Semaphore::new(config.daemon.concurrency.max(1))),
        dry_run: !apply || config.daemon.dry_run,
    };
    let loops = config
        .services
        .iter()
        .map(|service| wiring::service_loop(service, &parts, None))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(evaluate_loops(loops, out).await)
}

/// One round of each loop, one line each on `out`. True when every status read, check and scale call
/// succeeded.
pub async fn evaluate_loops(loops: Vec<ServiceLoop>, out: &mut dyn Write) -> bool {
    let mut all_ok = true;
    for mut service_loop in loops {
        let round = service_loop.evaluate_once().await;
        all_ok &= succeeded(&round);
        let _ = writeln!(out, "{}", line(&round));
    }
    all_ok
}

/// Whether nothing in `round` failed: its status read, each check, and its scale call.
fn succeeded(round: &Round) -> bool {
    round.outcome() == "ok" && round.checks.iter().all(|c| c.result.is_ok())
}

/// A round as one line: the status, the decision with its reason, and each check's value.
fn line(round: &Round) -> String {
    match (&round.status, &round.decision) {
        (Err((_, message)), _) => format!("{}: status read failed: {message}", round.service),
        (Ok(status), Some(d)) => {
            let checks: Vec<String> = round
                .checks
                .iter()
                .map(|c| match &c.result {
                    Ok(v) => format!("{}={v}", c.name),
                    Err((kind, _)) => format!("{}=failed({kind})", c.name),
                })
                .collect();
            format!(
                "{}: current={} ready={} desired={} [{}] {} | {}",
                round.service,
                status.current,
                status.ready,
                d.desired,
                round.scale.as_str(),
                d.reason,
                checks.join(" ")
            )
        }
        (Ok(_), None) => format!("{}: no decision", round.service),
    }
}
