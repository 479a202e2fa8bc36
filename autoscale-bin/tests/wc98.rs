//! Replays the 1998 World Cup trace (examples/traces/wc98_per_minute.csv, shipped with the repository) through
//! seed, hpa, oracle and the tuned example configuration, as the README reports.

use std::path::{Path, PathBuf};

use autoscale_bin::config::Env;
use autoscale_bin::run_with;

fn trace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/traces/wc98_per_minute.csv")
}

/// The shipped copy is the shared trace the other replays read, byte for byte, where that one is present.
#[test]
fn the_shipped_trace_is_the_shared_one() {
    let shared =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces/wc98_per_minute.csv");
    let shipped = std::fs::read(trace()).expect("examples/traces/wc98_per_minute.csv is shipped");
    assert_eq!(shipped.len(), 77_694);
    if let Ok(bytes) = std::fs::read(&shared) {
        assert!(
            bytes == shipped,
            "{} differs from the shipped copy",
            shared.display()
        );
    }
}

#[test]
fn wc98_replay_compares_the_references_and_the_tuned_policy() {
    let trace = trace();
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
