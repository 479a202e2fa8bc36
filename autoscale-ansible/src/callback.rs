//! Reads the JSON report that the stdout callback prints at the end of a run.
//!
//! The scaler runs its own callback (`autoscale_json`, shipped in this crate); the report has the shape of the
//! `ansible.posix.json` callback's, which this parser reads too:
//! `{"plays": [{"play": {..}, "tasks": [{"task": {"name"}, "hosts": {HOST: RESULT}}]}], "stats": {HOST: {..}},
//! "custom_stats": {..}, "global_custom_stats": {..}}`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::HostFailure;

/// The variable through which a status playbook reports the replica count (with `set_stats`, or as a debug
/// variable).
pub const REPLICAS_VAR: &str = "autoscale_replicas";
/// The optional variable through which a status playbook reports how many replicas are ready.
pub const READY_VAR: &str = "autoscale_ready";

/// The per-host counters of the play recap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct HostStats {
    /// Tasks that ran without a change.
    #[serde(default)]
    pub ok: u64,
    /// Tasks that changed something.
    #[serde(default)]
    pub changed: u64,
    /// Tasks that failed (not counting ignored or rescued failures).
    #[serde(default)]
    pub failures: u64,
    /// Tasks that found the host unreachable.
    #[serde(default)]
    pub unreachable: u64,
    /// Tasks skipped (including tasks that do not support check mode, in check mode).
    #[serde(default)]
    pub skipped: u64,
    /// Failures handled by a `rescue` section.
    #[serde(default)]
    pub rescued: u64,
    /// Failures let pass by `ignore_errors`.
    #[serde(default)]
    pub ignored: u64,
}

/// The outcome of one playbook run, as the callback reported it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PlaybookReport {
    /// The play recap, by host.
    pub stats: BTreeMap<String, HostStats>,
    /// Each host that failed a task, with that task and the module's message.
    pub failures: Vec<HostFailure>,
    /// Each host that could not be reached, with the task that tried it and the connection's message.
    pub unreachable: Vec<HostFailure>,
    /// The replica count the playbook reported, if it did (see [`REPLICAS_VAR`]).
    pub reported_replicas: Option<Result<u64, String>>,
    /// The ready count the playbook reported, if it did (see [`READY_VAR`]).
    pub reported_ready: Option<Result<u64, String>>,
}

impl PlaybookReport {
    /// How many tasks changed something, over all hosts.
    pub fn changed(&self) -> u64 {
        self.stats.values().map(|s| s.changed).sum()
    }
}

#[derive(Debug, Deserialize)]
struct RawReport {
    #[serde(default)]
    plays: Vec<RawPlay>,
    stats: BTreeMap<String, HostStats>,
    #[serde(default)]
    custom_stats: BTreeMap<String, Value>,
    #[serde(default)]
    global_custom_stats: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct RawPlay {
    #[serde(default)]
    tasks: Vec<RawTask>,
}

#[derive(Debug, Deserialize)]
struct RawTask {
    task: RawTaskInfo,
    #[serde(default)]
    hosts: BTreeMap<String, Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct RawTaskInfo {
    #[serde(default)]
    name: String,
}

/// Parse the callback's report out of a run's stdout.
///
/// The report is the last line that is a JSON object with `stats` (the bundled callback prints one line), or,
/// failing that, all of stdout (`ansible.posix.json` indents its report over many lines). Other lines, from
/// other callbacks or a module printing to the controller's stdout, are skipped.
pub fn parse_report(stdout: &str) -> Result<PlaybookReport, String> {
    let raw = stdout
        .lines()
        .rev()
        .filter(|line| line.starts_with('{'))
        .find_map(|line| serde_json::from_str::<RawReport>(line).ok())
        .map_or_else(
            || {
                let start = stdout.find("\n{").map_or(0, |i| i + 1);
                serde_json::from_str::<RawReport>(stdout[start..].trim()).map_err(|e| {
                    if stdout.trim().is_empty() {
                        "stdout was empty".to_owned()
                    } else {
                        format!("no JSON report with play stats in stdout: {e}")
                    }
                })
            },
            Ok,
        )?;
    Ok(interpret(raw))
}

fn interpret(raw: RawReport) -> PlaybookReport {
    let mut last_failure: BTreeMap<&str, HostFailure> = BTreeMap::new();
    let mut unreachable: BTreeMap<&str, HostFailure> = BTreeMap::new();
    let mut debug_replicas: BTreeMap<&str, &Value> = BTreeMap::new();
    let mut debug_ready: BTreeMap<&str, &Value> = BTreeMap::new();

    for task in raw.plays.iter().flat_map(|p| &p.tasks) {
        for (host, result) in &task.hosts {
            let flag = |key: &str| result.get(key).and_then(Value::as_bool) == Some(true);
            let failure = || HostFailure {
                host: host.clone(),
                task: task.task.name.clone(),
                message: result_message(result),
            };
            if flag("unreachable") {
                unreachable.insert(host, failure());
            } else if flag("failed") && !flag("ignored") {
                // Ansible stops a host at its first unhandled failure, so the last failed result of a host is
                // the one that stopped it; earlier ones were rescued (or ignored, under ansible.posix.json,
                // which does not mark them).
                last_failure.insert(host, failure());
            } else if !flag("skipped") {
                if let Some(v) = result.get(REPLICAS_VAR) {
                    debug_replicas.insert(host, v);
                }
                if let Some(v) = result.get(READY_VAR) {
                    debug_ready.insert(host, v);
                }
            }
        }
    }

    // The recap decides who failed: a failure it does not count was rescued or ignored.
    let failures = last_failure
        .into_iter()
        .filter(|(host, _)| raw.stats.get(*host).is_some_and(|s| s.failures > 0))
        .map(|(_, f)| f)
        .collect();
    let unreachable = unreachable
        .into_iter()
        .filter(|(host, _)| raw.stats.get(*host).is_some_and(|s| s.unreachable > 0))
        .map(|(_, f)| f)
        .collect();

    let reported = |var: &str, debug: &BTreeMap<&str, &Value>| -> Option<Result<u64, String>> {
        // set_stats without per_host lands in the global stats; with per_host, in each host's.
        let per_host: BTreeMap<&str, &Value> = raw
            .custom_stats
            .iter()
            .filter_map(|(host, stats)| stats.get(var).map(|v| (host.as_str(), v)))
            .collect();
        if let Some(v) = raw.global_custom_stats.get(var) {
            Some(count(var, v))
        } else if !per_host.is_empty() {
            agreed(var, &per_host)
        } else {
            agreed(var, debug)
        }
    };
    let reported_replicas = reported(REPLICAS_VAR, &debug_replicas);
    let reported_ready = reported(READY_VAR, &debug_ready);

    PlaybookReport {
        stats: raw.stats,
        failures,
        unreachable,
        reported_replicas,
        reported_ready,
    }
}

/// The one count several hosts reported, or an error if they disagree: a status playbook reports the count of
/// one service, and a sum or a pick would hide a misconfigured inventory.
fn agreed(var: &str, values: &BTreeMap<&str, &Value>) -> Option<Result<u64, String>> {
    let mut counts = values.iter().map(|(host, v)| (host, count(var, v)));
    let (first_host, first) = counts.next()?;
    let first = match first {
        Ok(n) => n,
        Err(e) => return Some(Err(format!("{first_host}: {e}"))),
    };
    for (host, other) in counts {
        match other {
            Ok(n) if n == first => {}
            Ok(n) => {
                return Some(Err(format!(
                    "hosts disagree on {var}: {first_host} reported {first}, {host} reported {n}"
                )));
            }
            Err(e) => return Some(Err(format!("{host}: {e}"))),
        }
    }
    Some(Ok(first))
}

/// A count from a JSON number or a string of digits (Jinja templating may give either, depending on the
/// ansible-core version).
fn count(var: &str, value: &Value) -> Result<u64, String> {
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("{var} is {value}, not a whole number of replicas"))
}

/// The longest part of a module's stderr kept in a message.
const STDERR_IN_MESSAGE: usize = 500;

/// The module's message, with the tail of its stderr when it has one (a command's `msg` is only "non-zero
/// return code"), or the first failed item's message for a loop.
fn result_message(result: &Map<String, Value>) -> String {
    let mut message = match result.get("msg") {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    if let Some(rc) = result.get("rc").and_then(Value::as_i64)
        && rc != 0
    {
        message.push_str(&format!(" (rc {rc})"));
    }
    if let Some(stderr) = result.get("stderr").and_then(Value::as_str) {
        let stderr = stderr.trim();
        if !stderr.is_empty() {
            message.push_str(": ");
            message.push_str(tail_chars(stderr, STDERR_IN_MESSAGE));
        }
    }
    if let Some(Value::Array(items)) = result.get("results")
        && let Some(item) = items
            .iter()
            .filter_map(Value::as_object)
            .find(|item| item.get("failed").and_then(Value::as_bool) == Some(true))
    {
        let inner = result_message(item);
        if !inner.is_empty() {
            message.push_str(": ");
            message.push_str(&inner);
        }
    }
    if message.is_empty() {
        "no message".to_owned()
    } else {
        message.trim_start_matches(": ").to_owned()
    }
}

fn tail_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PlaybookReport {
        let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        parse_report(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    // Fixtures are real output of ansible-playbook (tests/fixtures/capture.sh); the snapshots show exactly
    // what the scaler takes from each.

    #[test]
    fn a_successful_scale() {
        let report = fixture("scale_ok");
        assert!(report.failures.is_empty() && report.unreachable.is_empty());
        assert_eq!(report.changed(), 1);
        insta::assert_debug_snapshot!(report);
    }

    #[test]
    fn a_failed_command_reports_host_task_message_and_stderr() {
        let report = fixture("scale_failed_command");
        insta::assert_debug_snapshot!(report.failures);
    }

    #[test]
    fn a_failed_task_reports_host_task_and_message() {
        let report = fixture("fail_task");
        assert_eq!(
            report.failures,
            vec![HostFailure {
                host: "localhost".into(),
                task: "Refuse the new count".into(),
                message: "refusing to run 2 replicas of web".into(),
            }]
        );
    }

    #[test]
    fn an_unreachable_host_is_reported_apart_from_failures() {
        let report = fixture("unreachable");
        assert!(report.failures.is_empty());
        insta::assert_debug_snapshot!(report.unreachable);
    }

    #[test]
    fn a_count_reported_with_set_stats() {
        let report = fixture("status_set_stats");
        assert_eq!(report.reported_replicas, Some(Ok(2)));
        assert_eq!(report.reported_ready, None);
    }

    #[test]
    fn a_count_reported_as_a_debug_variable() {
        let report = fixture("status_debug_var");
        assert_eq!(report.reported_replicas, Some(Ok(2)));
    }

    #[test]
    fn a_run_that_reports_no_count() {
        assert_eq!(fixture("file_scale_ok").reported_replicas, None);
    }

    #[test]
    fn the_ansible_posix_json_callback_reads_the_same() {
        assert_eq!(
            fixture("posix_status_set_stats").reported_replicas,
            Some(Ok(2))
        );
        assert_eq!(
            fixture("posix_fail_task").failures,
            fixture("fail_task").failures
        );
        assert_eq!(
            fixture("posix_unreachable").unreachable,
            fixture("unreachable").unreachable
        );
    }

    #[test]
    fn lines_around_the_report_are_skipped() {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/status_set_stats.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let noisy = format!("PLAY [x] ****\n{{not json\n{text}\nsome trailing line\n");
        assert_eq!(parse_report(&noisy).unwrap().reported_replicas, Some(Ok(2)));
    }

    #[test]
    fn no_report_is_an_error() {
        assert_eq!(parse_report("").unwrap_err(), "stdout was empty");
        assert!(
            parse_report("ERROR! the playbook could not be found")
                .unwrap_err()
                .starts_with("no JSON report")
        );
    }

    fn report_with(results: Value, stats: Value, custom: Value, global: Value) -> PlaybookReport {
        let doc = serde_json::json!({
            "plays": [{"play": {"name": "p"}, "tasks": results}],
            "stats": stats,
            "custom_stats": custom,
            "global_custom_stats": global,
        });
        parse_report(&doc.to_string()).unwrap()
    }

    #[test]
    fn ignored_and_rescued_failures_are_not_failures() {
        let tasks = serde_json::json!([
            {"task": {"name": "ignored"}, "hosts": {"a": {"failed": true, "ignored": true, "msg": "x"}}},
            {"task": {"name": "rescued"}, "hosts": {"b": {"failed": true, "msg": "y"}}},
        ]);
        let stats = serde_json::json!({"a": {"ok": 1, "ignored": 1}, "b": {"ok": 1, "rescued": 1}});
        let report = report_with(tasks, stats, serde_json::json!({}), serde_json::json!({}));
        assert!(report.failures.is_empty());
    }

    #[test]
    fn hosts_must_agree_on_the_count() {
        let tasks = serde_json::json!([
            {"task": {"name": "r"}, "hosts": {"a": {"autoscale_replicas": 2}, "b": {"autoscale_replicas": "2"}}},
        ]);
        let stats = serde_json::json!({"a": {"ok": 1}, "b": {"ok": 1}});
        let report = report_with(
            tasks.clone(),
            stats.clone(),
            serde_json::json!({}),
            serde_json::json!({}),
        );
        assert_eq!(report.reported_replicas, Some(Ok(2)));

        let per_host =
            serde_json::json!({"a": {"autoscale_replicas": 1}, "b": {"autoscale_replicas": 3}});
        let report = report_with(tasks, stats, per_host, serde_json::json!({}));
        assert_eq!(
            report.reported_replicas,
            Some(Err(
                "hosts disagree on autoscale_replicas: a reported 1, b reported 3".into()
            ))
        );
    }

    #[test]
    fn a_count_must_be_a_whole_number() {
        let report = report_with(
            serde_json::json!([]),
            serde_json::json!({}),
            serde_json::json!({}),
            serde_json::json!({"autoscale_replicas": -1, "autoscale_ready": "two"}),
        );
        assert!(report.reported_replicas.unwrap().is_err());
        assert_eq!(
            report.reported_ready,
            Some(Err(
                "autoscale_ready is \"two\", not a whole number of replicas".into()
            ))
        );
    }

    #[test]
    fn a_loop_reports_its_first_failed_item() {
        let tasks = serde_json::json!([{"task": {"name": "loop"}, "hosts": {"a": {
            "failed": true, "msg": "One or more items failed",
            "results": [{"failed": false}, {"failed": true, "msg": "non-zero return code", "rc": 2, "stderr": "boom"}]
        }}}]);
        let report = report_with(
            tasks,
            serde_json::json!({"a": {"failures": 1}}),
            serde_json::json!({}),
            serde_json::json!({}),
        );
        assert_eq!(
            report.failures[0].message,
            "One or more items failed: non-zero return code (rc 2): boom"
        );
    }

    #[test]
    fn long_stderr_keeps_its_end_on_a_char_boundary() {
        let long = format!("{}é{}", "x".repeat(600), "end");
        let kept = tail_chars(&long, 10);
        assert!(kept.ends_with("end") && kept.len() <= 10);
    }
}
