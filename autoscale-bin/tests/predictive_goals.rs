//! The predictive policy's goals, as the README reports them: `examples/configs/predictive.toml` with only the
//! bounds changed, against hpa and the oracle in the same run, on NASA, Wikipedia, WC98 and the two Azure LLM
//! traces (10 s interval, 30 s startup delay). `scripts/predictive-goals` prints the whole table.
//!
//! The traces live beside the project, not in it: in a plain clone they are absent, and this test says so
//! loudly and skips; in CI it fails.

use std::io::Write;
use std::path::{Path, PathBuf};

use autoscale_bin::config::Env;
use autoscale_bin::run_with;

fn traces() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces");
    if dir.join("nasa_per_minute.csv").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is required in CI",
        dir.display()
    );
    let banner = format!(
        "\n########## SKIPPED: {} is absent (a plain clone has no ../shared/traces). \
         The predictive policy's goals were NOT checked. ##########\n\n",
        dir.display()
    );
    let _ = std::io::stderr().write_all(banner.as_bytes());
    None
}

struct Run {
    cost: f64,
    tau_u: f64,
    actions: f64,
}

/// Predictive, hpa and oracle over `trace`: (predictive, hpa, oracle).
fn replay(dir: &Path, trace: &str, capacity: &str, max: u32) -> (Run, Run, Run) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs/predictive.toml");
    let text = std::fs::read_to_string(example).unwrap();
    assert!(text.contains("max_replicas = 100"));
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        text.replace("max_replicas = 100", &format!("max_replicas = {max}")),
    )
    .unwrap();
    let trace = dir.join(trace);
    let args = [
        "autoscale",
        "simulate",
        "--config",
        config.path().to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--capacity",
        capacity,
        "--startup-delay",
        "30s",
        "--compare",
        "hpa,oracle",
        "--format",
        "json",
    ];
    let mut out = Vec::new();
    run_with(args, &Env::empty(), &mut out).unwrap();
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    let run = |i: usize| Run {
        cost: runs[i]["replica_seconds"].as_f64().unwrap(),
        tau_u: runs[i]["tau_u"].as_f64().unwrap(),
        actions: runs[i]["scale_actions"].as_f64().unwrap(),
    };
    assert_eq!(runs[0]["policy"], "predictive");
    (run(0), run(1), run(2))
}

#[test]
fn the_predictive_policy_meets_its_goals_on_the_shared_traces() {
    let Some(dir) = traces() else { return };

    let (p, hpa, oracle) = replay(&dir, "nasa_per_minute.csv", "10", 100);
    assert!(
        p.cost <= 1.10 * oracle.cost,
        "NASA cost {}",
        p.cost / oracle.cost
    );
    assert!(
        p.tau_u <= hpa.tau_u,
        "NASA tau_U {} > {}",
        p.tau_u,
        hpa.tau_u
    );
    assert!(
        p.actions <= hpa.actions / 4.0,
        "NASA actions {} vs {}",
        p.actions,
        hpa.actions
    );

    let (p, hpa, _) = replay(&dir, "wikipedia_hourly.csv", "100000", 100);
    assert!(
        p.cost <= 0.90 * hpa.cost,
        "Wikipedia cost {}",
        p.cost / hpa.cost
    );
    assert!(
        p.tau_u <= 0.8 * hpa.tau_u,
        "Wikipedia tau_U {} vs {}",
        p.tau_u,
        hpa.tau_u
    );

    let (p, hpa, _) = replay(&dir, "wc98_per_minute.csv", "5000", 100);
    assert!(p.cost <= 0.90 * hpa.cost, "WC98 cost {}", p.cost / hpa.cost);
    assert!(
        p.tau_u <= hpa.tau_u,
        "WC98 tau_U {} > {}",
        p.tau_u,
        hpa.tau_u
    );

    for (trace, capacity) in [
        ("azure_llm_code_per_minute.csv", "15"),
        ("azure_llm_conv_per_minute.csv", "13"),
    ] {
        let (p, hpa, _) = replay(&dir, trace, capacity, 60);
        assert!(p.cost <= hpa.cost, "{trace} cost {}", p.cost / hpa.cost);
        assert!(
            p.tau_u <= hpa.tau_u,
            "{trace} tau_U {} > {}",
            p.tau_u,
            hpa.tau_u
        );
    }
}
