//! End to end: the built `autoscale` binary, run as a user would, with an empty environment.

use std::path::Path;
use std::process::{Command, Output};

const CSV_HEADER: &str = "t,load,metric,current,recommended,desired,ready,demand,reason";

const JSON_KEYS: [&str; 14] = [
    "service",
    "policy",
    "ticks",
    "interval_s",
    "theta_u",
    "theta_o",
    "tau_u",
    "tau_o",
    "instability",
    "jitter_per_min",
    "replica_seconds",
    "scale_actions",
    "slo_violation_s",
    "max_replicas_used",
];

fn autoscale(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(args)
        .env_clear()
        .output()
        .expect("the autoscale binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs")
}

/// A trace with a step up and back, in RFC 3339 times, with a comment and a blank line.
fn write_trace(dir: &Path) -> String {
    let mut csv = String::from("# requests per second\ntimestamp,requests,errors\n");
    for minute in 0..30 {
        let load = if (10..15).contains(&minute) { 7.5 } else { 1.5 };
        csv.push_str(&format!("2024-03-01T12:{minute:02}:00Z,{load},0\n"));
        if minute == 20 {
            csv.push('\n');
        }
    }
    let path = dir.join("trace.csv");
    std::fs::write(&path, csv).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn csv_output_follows_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_trace(dir.path());
    let config = examples().join("threshold.toml");
    let out = autoscale(&[
        "simulate",
        "--config",
        config.to_str().unwrap(),
        "--trace",
        &trace,
        "--startup-delay",
        "30s",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some(CSV_HEADER));
    let rows: Vec<&str> = lines.collect();
    // 29 minutes at one tick every 10 s, both ends included.
    assert_eq!(rows.len(), 29 * 6 + 1);
    for row in &rows {
        // The reason is the last field and the only one that may be quoted.
        let (numbers, reason) = match row.find('"') {
            Some(i) => (&row[..i - 1], row[i..].trim_matches('"')),
            None => row.rsplit_once(',').unwrap(),
        };
        let numbers: Vec<f64> = numbers.split(',').map(|n| n.parse().unwrap()).collect();
        assert_eq!(numbers.len(), 8, "{row}");
        let token = reason.split(':').next().unwrap();
        assert!(
            token.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{row}"
        );
    }
    assert!(rows.iter().any(|r| r.ends_with(",scale_up: recommended 2")));
    assert!(
        rows.iter()
            .any(|r| r.contains(",cooldown: ") || r.contains(",\"cooldown: "))
    );
}

#[test]
fn json_output_has_every_contract_key() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_trace(dir.path());
    let out = autoscale(&[
        "simulate", "--trace", &trace, "--column", "requests", "--format", "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in JSON_KEYS {
        assert!(json.get(key).is_some(), "{key} is missing from {json}");
    }
    assert_eq!(json["service"], "webapp");
    assert_eq!(json["policy"], "target");
    assert_eq!(json["ticks"], 175);
    assert_eq!(json["interval_s"], 10.0);
}

#[test]
fn compare_prints_every_policy_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_trace(dir.path());
    let tuned = examples().join("target-per-replica.toml");
    let compare = format!("seed,hpa,oracle,{}#webapp", tuned.display());
    let out = autoscale(&[
        "simulate",
        "--trace",
        &trace,
        "--compare",
        &compare,
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["seed", "hpa", "oracle", "target-per-replica#webapp"]
    );
    let policies: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["policy"].as_str().unwrap())
        .collect();
    assert_eq!(policies, ["threshold", "target", "oracle", "target"]);

    let out = autoscale(&[
        "simulate",
        "--trace",
        &trace,
        "--compare",
        "seed,hpa,oracle",
    ]);
    let table = text(&out.stdout);
    let header = table
        .lines()
        .find(|l| l.trim_start().starts_with("seed"))
        .unwrap();
    assert!(
        header.contains("hpa") && header.contains("oracle"),
        "{table}"
    );
}

#[test]
fn the_chart_is_an_svg_with_text() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("out.svg");
    let out = autoscale(&[
        "simulate",
        "--pattern",
        "sine",
        "--startup-delay",
        "1m",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
    for label in [
        "replicas",
        "time since start (minutes)",
        "ready replicas",
        "scale up",
        "scale down",
    ] {
        assert!(svg.contains(label), "the chart has no {label:?}");
    }
}

#[test]
fn plain_simulate_needs_nothing() {
    let out = autoscale(&["simulate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.starts_with("webapp (target) on pattern spike("),
        "{table}"
    );
    assert!(table.contains("replica_seconds"));
}

#[test]
fn exit_codes() {
    let threshold = examples().join("threshold.toml");
    let out = autoscale(&["check", "--config", threshold.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("kind = \"threshold\""));

    let out = autoscale(&["check", "--config", "/nonexistent.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: /nonexistent.toml: cannot read the file: No such file or directory (os error 2)\n"
    );

    // Environment only: the original scaler's defaults are valid.
    let out = autoscale(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = autoscale(&["simulate", "--capacity", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--capacity"));

    let out = autoscale(&[]);
    assert_eq!(out.status.code(), Some(2));

    let out = autoscale(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("simulate"));
}

#[test]
fn check_reads_the_environment_and_redacts() {
    let out = Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .arg("check")
        .env_clear()
        .env("PROMETHEUS_URL", "http://scaler:s3cret@prom:9090")
        .env("SERVICE_NAME", "api")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("url = \"http://scaler:REDACTED@prom:9090/\""),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"));
    assert!(stdout.contains("name = \"api\""));

    let out = Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .arg("check")
        .env_clear()
        .env("MAX_REPLICAS", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: environment variable MAX_REPLICAS: \"many\" is not a whole number from 0 to 4294967295\n"
    );
}

#[test]
fn check_shows_discover_sections_and_refuses_a_bad_one_with_exit_2() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/autoscale.toml");
    let out = autoscale(&["check", "--config", demo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("[[discover]]\nkind = \"compose\"\nselector = \"autoscale.enable=true\"\ninterval = \"10s\"\nresync = \"10s\"\n"),
        "{shown}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[prometheus]\nurl = \"http://127.0.0.1:9090\"\n\n[[discover]]\nkind = \"swarm\"\nresync = \"often\"\n",
    )
    .unwrap();
    let out = autoscale(&["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {}:6:10: discover[0].resync: invalid duration \"often\": expected a number with a unit, such as \"10s\", \"5m\" or \"1h30m\"\n",
            bad.display()
        )
    );
}

#[test]
fn simulate_says_why_a_discover_only_file_has_nothing_to_simulate() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/autoscale.toml");
    let out = autoscale(&["simulate", "--config", demo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("has no [[service]] to simulate: the services of its [[discover]] sections are found at run time"),
        "{}",
        text(&out.stderr)
    );
}
