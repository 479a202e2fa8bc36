//! `autoscale once`: evaluate every service once and print each decision with its reason; scale only with
//! `--apply`.

use std::io::Write;
use std::sync::Arc;

use autoscale_core::controller::Round;
use tokio::sync::Semaphore;

use crate::CliError;
use crate::cli::OnceArgs;
use crate::config::{Config, Env};
use crate::daemon::store::{LockError, StateLock};
use crate::daemon::wiring::{self, Clients, LoopParts, WiringError};

/// Load the configuration `args` names and evaluate every service once. Fails when a round could not be
/// evaluated or applied.
pub fn run(args: &OnceArgs, env: &Env, out: &mut dyn Write) -> Result<(), CliError> {
    let config = crate::load(args.config.as_deref(), env)?;
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
            "some services could not be evaluated or scaled (see above)".into(),
        ))
    }
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
    let mut all_ok = true;
    for service in &config.services {
        let mut service_loop = wiring::service_loop(service, &parts, None)?;
        let round = service_loop.evaluate_once().await;
        all_ok &= round.outcome() == "ok";
        let _ = writeln!(out, "{}", line(&round));
    }
    Ok(all_ok)
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
