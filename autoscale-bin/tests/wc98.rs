//! Replays the 1998 World Cup trace (../shared/traces/wc98_per_minute.csv) through seed, hpa, oracle and the
//! tuned example configuration, as the README reports. The traces live beside the project, not in it: in a
//! plain clone they are absent, and this test says so loudly and skips.

use std::io::Write;
use std::path::{Path, PathBuf};

use autoscale_bin::config::Env;
use autoscale_bin::run_with;

fn trace() -> Option<PathBuf> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces/wc98_per_minute.csv");
    if path.is_file() {
        return Some(path);
    }
    // CI runs with ../shared beside the clone: there, a missing trace is a failure, not a skip.
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is required in CI",
        path.display()
    );
    // Straight to the process's stderr: the test harness would swallow eprintln! of a passing test.
    let banner = format!(
        "\n########## SKIPPED: {} is absent (a plain clone has no ../shared/traces). \
         The WC98 replay test did NOT run. ##########\n\n",
        path.display()
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
    None
}

#[test]
fn wc98_replay_compares_the_references_and_the_tuned_policy() {
    let Some(trace) = trace() else { return };
    let tuned = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs/wc98-tuned.toml");
    let args = [
        "autoscale",
        "simulate",
        "--config",
        tuned.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--capacity",
        "10000",
        "--startup-delay",
        "60s",
        "--initial",
        "3",
        "--compare",
        "seed,hpa,oracle",
        "--format",
        "json",
    ];
    let mut out = Vec::new();
    run_with(args, &Env::empty(), &mut out).unwrap();
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    let by_name = |name: &str| runs.iter().find(|r| r["name"] == name).unwrap();
    let (tuned, seed, hpa, oracle) = (
        by_name("webapp"),
        by_name("seed"),
        by_name("hpa"),
        by_name("oracle"),
    );

    // 2,880 minutes: 48 hours less the last minute, at one tick every 10 s.
    for run in &runs {
        assert_eq!(run["ticks"], 17_275);
        for key in ["theta_u", "tau_u", "tau_o", "instability"] {
            let v = run[key].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&v), "{}: {key} = {v}", run["name"]);
        }
    }
    let paid = |r: &serde_json::Value| r["replica_seconds"].as_f64().unwrap();
    let unserved = |r: &serde_json::Value| r["slo_violation_s"].as_f64().unwrap();
    // What the README reports: every policy serves the whole trace, and the tuned one pays the least.
    for run in [tuned, seed, hpa, oracle] {
        assert_eq!(unserved(run), 0.0, "{}", run["name"]);
    }
    assert!(
        paid(tuned) < paid(hpa) && paid(hpa) < paid(seed),
        "{runs:?}"
    );
    // The oracle at hpa's target is the floor that hpa nearly reaches.
    assert!(
        (paid(hpa) - paid(oracle)).abs() / paid(oracle) < 0.02,
        "{runs:?}"
    );
    assert_eq!(paid(tuned), 751_030.0);
    assert_eq!(paid(hpa), 993_990.0);
    assert_eq!(paid(seed), 1_304_680.0);
}
