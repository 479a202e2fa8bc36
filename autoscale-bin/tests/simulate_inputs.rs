//! `autoscale simulate` on bad input: every case of `docs/simulation.md` (and a few more) gets its exact
//! message and exit code 2. Runs the command in-process with [`run_with`].

use autoscale_bin::config::Env;
use autoscale_bin::run_with;

const CONFIG: &str = r#"
[[service]]
name = "webapp"
scaler = { kind = "compose" }
check = [{ name = "cpu", query = "avg(cpu)", policy = { kind = "target", target = 0.6 } }]
"#;

/// A temporary directory with the files the cases refer to, by name.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files: &[(&str, &str)] = &[
            ("good.csv", "seconds,requests\n0,1\n60,3\n120,2\n"),
            ("non_numeric.csv", "seconds,requests\n0,1\n60,lots\n"),
            ("negative.csv", "seconds,requests\n0,1\n60,-3\n"),
            (
                "not_increasing.csv",
                "seconds,requests\n# a comment\n0,1\n60,2\n\n60,3\n",
            ),
            (
                "bad_time.csv",
                "timestamp,requests\n1998-06-25T22:00:00Z,1\nyesterday,2\n",
            ),
            ("empty.csv", ""),
            ("header_only.csv", "seconds,requests\n"),
            ("one_column.csv", "seconds\n0\n"),
            ("config.toml", CONFIG),
            (
                "two.toml",
                &format!("{CONFIG}{}", CONFIG.replace("\"webapp\"", "\"worker\"")),
            ),
            ("invalid.toml", &CONFIG.replace("0.6", "-0.6")),
        ];
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Files(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.path().join(name).to_str().unwrap().to_owned()
    }
}

/// The exit code and the message, with the temporary directory written as `$DIR`.
fn outcome(files: &Files, args: &[&str]) -> String {
    let args: Vec<String> = ["autoscale", "simulate"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(args.iter().map(|a| {
            if a.contains(".csv") || a.contains(".toml") {
                files.path(a)
            } else {
                (*a).to_owned()
            }
        }))
        .collect();
    let mut out = Vec::new();
    match run_with(&args, &Env::empty(), &mut out) {
        Ok(()) => panic!("{args:?} succeeded:\n{}", String::from_utf8_lossy(&out)),
        Err(e) => {
            let dir = files.0.path().to_str().unwrap();
            format!("exit code {}\n{e}", e.exit_code()).replace(dir, "$DIR")
        }
    }
}

#[test]
fn the_good_files_are_good() {
    let files = Files::new();
    let mut out = Vec::new();
    let args = [
        "autoscale",
        "simulate",
        "--config",
        &files.path("config.toml"),
        "--trace",
        &files.path("good.csv"),
    ];
    run_with(args, &Env::empty(), &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().contains("theta_u"));
}

#[test]
fn every_bad_input_gets_a_clear_message_and_exit_code_2() {
    let files = Files::new();
    let cases: &[(&str, &[&str])] = &[
        // The cases docs/simulation.md names.
        ("unreadable_trace", &["--trace", "missing.csv"]),
        (
            "missing_column",
            &["--trace", "good.csv", "--column", "latency"],
        ),
        ("non_numeric_load", &["--trace", "non_numeric.csv"]),
        ("negative_load", &["--trace", "negative.csv"]),
        ("times_not_increasing", &["--trace", "not_increasing.csv"]),
        (
            "unknown_service",
            &[
                "--config",
                "config.toml",
                "--service",
                "api",
                "--trace",
                "good.csv",
            ],
        ),
        (
            "invalid_config",
            &["--config", "invalid.toml", "--trace", "good.csv"],
        ),
        ("unreadable_config", &["--config", "missing.toml"]),
        // More of the same kind.
        (
            "several_services_no_choice",
            &["--config", "two.toml", "--trace", "good.csv"],
        ),
        ("bad_time", &["--trace", "bad_time.csv"]),
        ("empty_trace", &["--trace", "empty.csv"]),
        ("header_only", &["--trace", "header_only.csv"]),
        ("one_column", &["--trace", "one_column.csv"]),
        ("capacity_zero", &["--capacity", "0"]),
        ("capacity_not_a_number", &["--capacity", "lots"]),
        ("startup_delay_without_unit", &["--startup-delay", "30"]),
        ("initial_negative", &["--initial", "-1"]),
        ("capacity_negative", &["--capacity", "-2"]),
        ("unknown_metric", &["--metric", "cpu"]),
        ("unknown_format", &["--format", "xml"]),
        ("unknown_pattern", &["--pattern", "square"]),
        (
            "option_the_pattern_lacks",
            &["--pattern", "spike", "--period", "5m"],
        ),
        ("negative_peak", &["--pattern", "sine", "--peak", "-2"]),
        ("zero_resolution", &["--resolution", "0s"]),
        (
            "trace_and_pattern",
            &["--trace", "good.csv", "--pattern", "step"],
        ),
        ("column_without_trace", &["--column", "requests"]),
        ("shape_with_trace", &["--trace", "good.csv", "--peak", "3"]),
        ("service_without_config", &["--service", "webapp"]),
        ("compare_unknown_entry", &["--compare", "seed,kubernetes"]),
        (
            "compare_unknown_service",
            &["--compare", "two.toml#api", "--trace", "good.csv"],
        ),
        (
            "compare_invalid_config",
            &["--compare", "invalid.toml", "--trace", "good.csv"],
        ),
        ("unknown_option", &["--trace-file", "good.csv"]),
        (
            "unwritable_chart",
            &["--chart", "/nonexistent/chart.svg", "--format", "csv"],
        ),
    ];
    for (name, args) in cases {
        let outcome = outcome(&files, args);
        assert!(outcome.starts_with("exit code 2\n"), "{name}: {outcome}");
        insta::assert_snapshot!(*name, outcome, &args.join(" "));
    }
}

#[test]
fn check_exits_with_2_on_an_invalid_config() {
    let files = Files::new();
    let run = |args: &[&str]| {
        let mut out = Vec::new();
        let result = run_with(args, &Env::empty(), &mut out);
        (result, String::from_utf8(out).unwrap())
    };
    let invalid = files.0.path().join("invalid_with_url.toml");
    std::fs::write(
        &invalid,
        format!(
            "[prometheus]\nurl = \"http://127.0.0.1:9090\"\n{}",
            CONFIG.replace("0.6", "-0.6")
        ),
    )
    .unwrap();
    let (result, _) = run(&["autoscale", "check", "--config", invalid.to_str().unwrap()]);
    let err = result.unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string().ends_with(
            "invalid_with_url.toml:7:83: service[0].check[0].policy.target: target must be a finite number greater than 0, got -0.6"
        ),
        "{err}"
    );
    // The simulator needs no URL; check, which validates for the daemon, does.
    let (result, _) = run(&["autoscale", "check", "--config", &files.path("config.toml")]);
    assert!(
        result
            .unwrap_err()
            .to_string()
            .contains("prometheus.url: missing")
    );

    let with_url = files.0.path().join("with_url.toml");
    std::fs::write(
        &with_url,
        format!("[prometheus]\nurl = \"http://127.0.0.1:9090\"\n{CONFIG}"),
    )
    .unwrap();
    let (result, out) = run(&["autoscale", "check", "--config", with_url.to_str().unwrap()]);
    result.unwrap();
    assert!(out.contains("[[service]]\nname = \"webapp\""), "{out}");
}
