//! `autoscale status`: what the running daemon knows about each service (its `/status`), as a table or as
//! the raw JSON.

use std::io::Write;

use crate::CliError;
use crate::cli::StatusArgs;
use crate::config::Env;
use crate::daemon::http;

/// Fetch `/status` from the daemon `args` points at and print it.
pub fn run(args: &StatusArgs, env: &Env, out: &mut dyn Write) -> Result<(), CliError> {
    let addr = super::daemon_addr(&args.probe, env)?;
    let body = super::probe_runtime()?
        .block_on(http::fetch_status(addr, args.probe.timeout))
        .map_err(CliError::Runtime)?;
    let text = if args.json {
        body
    } else {
        status_table(&body).map_err(CliError::Runtime)?
    };
    writeln!(out, "{}", text.trim_end()).map_err(CliError::output("standard output"))
}

/// `/status` as a table for a person: one line per service.
pub fn status_table(json: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("/status is not JSON: {e}"))?;
    let mut out = format!(
        "{:<20} {:>7} {:>5} {:>7} {:>9}  {:<8} {}\n",
        "SERVICE", "CURRENT", "READY", "DESIRED", "COOLDOWN", "LAST", "REASON"
    );
    let services = value["services"].as_array().cloned().unwrap_or_default();
    for s in services {
        let num =
            |v: &serde_json::Value| v.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string());
        let cooldown = s["cooldown_remaining_s"]["up"]
            .as_f64()
            .unwrap_or(0.0)
            .max(s["cooldown_remaining_s"]["down"].as_f64().unwrap_or(0.0));
        let last = &s["last_evaluation"];
        out.push_str(&format!(
            "{:<20} {:>7} {:>5} {:>7} {:>8.0}s  {:<8} {}\n",
            s["service"].as_str().unwrap_or("?"),
            num(&s["current"]),
            num(&s["ready"]),
            num(&s["desired"]),
            cooldown,
            last["scale"].as_str().unwrap_or("-"),
            last["reason"]
                .as_str()
                .or(last["status_error"].as_str())
                .unwrap_or("no evaluation yet"),
        ));
    }
    Ok(out)
}
