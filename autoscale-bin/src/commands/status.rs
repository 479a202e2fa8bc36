//! `autoscale status`: what the running daemon knows about each service (its `/status`), as a table with a
//! `kubectl describe`-style block per service, or as the raw JSON. `--watch` redraws it in place.

use std::fmt::Write as _;
use std::io::Write;

use crate::CliError;
use crate::cli::StatusArgs;
use crate::config::Env;
use crate::daemon::http;
use crate::daemon::report::{CheckReport, DiscoveryReport, ServiceReport, StatusReport};

/// How many history lines each service shows.
pub const EVENTS: usize = 10;

/// Clear the screen and go home: the plain ANSI sequences every terminal knows.
const REDRAW: &str = "\x1b[H\x1b[2J";

/// Fetch `/status` from the daemon `args` points at and print it; with `--watch`, again every `--interval`
/// until interrupted.
pub fn run(args: &StatusArgs, env: &Env, out: &mut dyn Write) -> Result<(), CliError> {
    let addr = super::daemon_addr(&args.probe, env)?;
    let runtime = super::probe_runtime()?;
    let once = || -> Result<String, String> {
        let body = runtime
            .block_on(http::fetch_status(addr, args.probe.timeout))
            .map_err(|e| super::no_daemon_hint(&e))?;
        if args.json {
            Ok(body)
        } else {
            http::parse_status(&body).map(|report| render(&report))
        }
    };
    if !args.watch {
        let text = once().map_err(CliError::Runtime)?;
        return writeln!(out, "{}", text.trim_end()).map_err(CliError::output("standard output"));
    }
    loop {
        // A daemon restarting is shown, not fatal: the next redraw shows it back.
        let text = once().unwrap_or_else(|e| format!("error: {e}"));
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now());
        write!(
            out,
            "{REDRAW}Every {}: autoscale status ({addr})  {now}\n\n{}\n",
            humantime::format_duration(args.interval),
            text.trim_end()
        )
        .and_then(|()| out.flush())
        .map_err(CliError::output("standard output"))?;
        std::thread::sleep(args.interval);
    }
}

/// The report as a person reads it: one line per service, then a block per service with its replicas,
/// pause, checks, conditions, last error and latest events.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>3} {:>3} {:>7} {:>5} {:>7} {:>8}  {:<30} REASON",
        "SERVICE", "MIN", "MAX", "CURRENT", "READY", "DESIRED", "COOLDOWN", "LAST"
    );
    for s in &report.services {
        let last = s.last_evaluation.as_ref();
        let happened = last.map_or("no evaluation yet", |e| e.happened.as_str());
        let reason = last
            .and_then(|e| e.reason.as_deref().or(e.status_error.as_deref()))
            .unwrap_or("-");
        let _ = writeln!(
            out,
            "{:<20} {:>3} {:>3} {:>7} {:>5} {:>7} {:>8}  {:<30} {}",
            s.service,
            s.min_replicas,
            s.max_replicas,
            count(s.current),
            count(s.ready),
            count(s.desired),
            s.cooldown_remaining_s
                .blocking
                .map_or_else(|| "-".to_owned(), seconds),
            if happened.is_empty() { "-" } else { happened },
            reason,
        );
    }
    for condition in report.conditions.iter().filter(|c| !c.status) {
        let _ = writeln!(out, "\nDaemon: {}: {}", condition.kind, condition.message);
    }
    for d in &report.discovery {
        discovery(&mut out, d);
    }
    for s in &report.services {
        out.push('\n');
        describe(&mut out, s);
    }
    out
}

/// One `[[discover]]` section: where it looks, when it last listed, what it added and what it skipped.
fn discovery(out: &mut String, d: &DiscoveryReport) {
    let _ = writeln!(
        out,
        "\nDiscovery: {} services on {} ({}), every {}; last listed {}",
        d.kind,
        d.endpoint,
        d.selector,
        seconds(d.resync_s),
        d.last_resync.as_deref().unwrap_or("never"),
    );
    if let Some(e) = &d.last_error {
        let _ = writeln!(
            out,
            "  Last listing failed (services found before are kept): {e}"
        );
    }
    let found = if d.found.is_empty() {
        "none".to_owned()
    } else {
        d.found.join(", ")
    };
    let _ = writeln!(out, "  Found: {found}");
    for s in &d.skipped {
        let _ = writeln!(out, "  Skipped {} ({}): {}", s.service, s.id, s.reason);
    }
}

fn describe(out: &mut String, s: &ServiceReport) {
    let _ = writeln!(out, "{}", s.service);
    let _ = writeln!(
        out,
        "  Replicas:    {} current, {} ready, {} desired (min {}, max {}){}",
        count(s.current),
        count(s.ready),
        count(s.desired),
        s.min_replicas,
        s.max_replicas,
        if s.dry_run { "; dry run" } else { "" }
    );
    let paused = match &s.paused {
        None => "no".to_owned(),
        Some(p) => {
            let by = match p.by.as_str() {
                "operator" => "by `autoscale pause`",
                "zero_outside" => "by hand: taken to 0 replicas outside autoscale",
                "config" => "by the configuration",
                other => other,
            };
            let since = p
                .since
                .as_deref()
                .map(|t| format!(" since {t}"))
                .unwrap_or_default();
            let directions = match p.directions.as_str() {
                "up" => "scaling up",
                "down" => "scaling down",
                _ => "all scaling",
            };
            format!("{directions} ({by}){since}")
        }
    };
    let _ = writeln!(out, "  Paused:      {paused}");
    if !s.checks.is_empty() {
        let _ = writeln!(out, "  Checks:");
        let width = s.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &s.checks {
            let _ = writeln!(out, "    {:<width$}  {}", c.name, check_line(c));
        }
    }
    let _ = writeln!(out, "  Conditions:");
    for c in &s.conditions {
        let _ = writeln!(
            out,
            "    {:<15} {:<6} {:<21} {}",
            c.kind,
            if c.status { "True" } else { "False" },
            c.reason,
            c.message
        );
    }
    if let Some(e) = &s.last_error {
        let _ = writeln!(
            out,
            "  Last error:  {} {} ({}): {}",
            e.at, e.during, e.kind, e.message
        );
    }
    for problem in &s.not_ready {
        let _ = writeln!(out, "  Not ready:   {problem}");
    }
    let skip = s.history.len().saturating_sub(EVENTS);
    let events = &s.history[skip..];
    if events.is_empty() {
        let _ = writeln!(out, "  Events:      none yet");
    } else {
        let _ = writeln!(out, "  Events:");
        for e in events {
            let change = if e.from == e.to {
                format!("{}", e.to)
            } else {
                format!("{} -> {}", e.from, e.to)
            };
            let error = e
                .error
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {}  {:<9} {:<8} {}{error}",
                e.time, e.result, change, e.reason
            );
        }
    }
}

/// A check's latest value against what it aims at.
fn check_line(c: &CheckReport) -> String {
    let aim = match (c.target, c.scale_up_above, c.scale_down_below) {
        (Some(target), _, _) => {
            let per = match c.per.as_deref() {
                Some("replica") => " per replica",
                Some("total") => " in total",
                _ => "",
            };
            format!("target {}{per}", number(target))
        }
        (None, Some(up), Some(down)) => {
            format!("scale up above {}, down below {}", number(up), number(down))
        }
        _ => c.policy.clone(),
    };
    let mut line = match (&c.value, &c.error) {
        (_, Some(error)) => format!("failed ({aim}): {error}"),
        (Some(v), None) => format!("{} / {aim}", number(*v)),
        (None, None) => format!("no reading yet / {aim}"),
    };
    if let Some(f) = &c.forecast {
        let _ = write!(line, "; forecast {f}");
    }
    if let Some(r) = c.recommendation {
        let _ = write!(line, " -> {r} replica{}", if r == 1 { "" } else { "s" });
    }
    line
}

fn count(n: Option<u32>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// Whole seconds, rounded up: a cooldown with 0.2 s left shows as 1s, never 0s.
fn seconds(s: f64) -> String {
    format!("{}s", s.max(0.0).ceil())
}

/// A value to 4 significant digits, without trailing zeros.
fn number(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return v.to_string();
    }
    let digits = 4 - 1 - v.abs().log10().floor() as i32;
    let text = format!("{:.*}", usize::try_from(digits.max(0)).unwrap_or(0), v);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_sections_show_what_they_found_and_skipped() {
        let report = StatusReport {
            discovery: vec![DiscoveryReport {
                kind: "swarm".into(),
                endpoint: "default".into(),
                selector: "autoscale.enable=true".into(),
                resync_s: 30.0,
                last_resync: Some("2026-01-01T00:00:00Z".into()),
                last_error: Some("the Docker daemon is not reachable".into()),
                found: vec!["web".into()],
                skipped: vec![crate::daemon::report::SkippedReport {
                    service: "bad".into(),
                    id: "x1".into(),
                    reason:
                        "service bad (swarm label autoscale.max): \"ten\" is not a whole number"
                            .into(),
                }],
            }],
            ..StatusReport::default()
        };
        let text = render(&report);
        assert!(
            text.contains(
                "Discovery: swarm services on default (autoscale.enable=true), every 30s; last listed 2026-01-01T00:00:00Z\n\
                 \x20 Last listing failed (services found before are kept): the Docker daemon is not reachable\n\
                 \x20 Found: web\n\
                 \x20 Skipped bad (x1): service bad (swarm label autoscale.max): \"ten\" is not a whole number\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn numbers_keep_4_significant_digits() {
        assert_eq!(number(0.823_456), "0.8235");
        assert_eq!(number(1234.56), "1235");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.0), "0");
        assert_eq!(seconds(0.2), "1s");
        assert_eq!(seconds(42.0), "42s");
    }
}
