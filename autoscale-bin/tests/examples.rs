//! Every example configuration in examples/configs loads, renders back to a configuration that loads to the
//! same thing, and simulates.

use std::path::{Path, PathBuf};

use autoscale_bin::config::{Config, Env, LoadOptions, ScalerSettings};
use autoscale_bin::run_with;

fn example_configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The examples name secrets at their deployed paths (`/run/secrets/...`), which this host lacks: they load as
/// the simulator loads a file, without opening the files the Prometheus client reads.
const EXAMPLE: LoadOptions = LoadOptions { url_optional: true };

fn load(file: &Path) -> Config {
    // Each example names its Prometheus, rather than relying on the simulator's stand-in.
    assert!(
        std::fs::read_to_string(file).unwrap().contains("\nurl = "),
        "{}: no [prometheus] url",
        file.display()
    );
    Config::load(file, &Env::empty(), EXAMPLE).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_example_loads_and_round_trips() {
    let files = example_configs();
    assert!(files.len() >= 7, "{files:?}");
    for file in &files {
        let config = load(file);
        let rendered = config.to_redacted_toml();
        let again =
            Config::from_toml(file, &rendered, &Env::empty(), EXAMPLE).unwrap_or_else(|e| {
                panic!(
                    "{}: the rendered config does not load: {e}\n{rendered}",
                    file.display()
                )
            });
        assert_eq!(again.to_redacted_toml(), rendered, "{}", file.display());
    }
}

#[test]
fn the_examples_cover_every_policy_and_scaler_kind() {
    let configs: Vec<Config> = example_configs().iter().map(|f| load(f)).collect();
    let services = || configs.iter().flat_map(|c| &c.services);
    let kinds: Vec<String> = services().map(|s| s.engine.policy_kinds()).collect();
    for kind in ["target", "threshold", "target+threshold"] {
        assert!(kinds.iter().any(|k| k == kind), "no example of {kind}");
    }
    assert!(
        services().any(|s| s.engine.min_replicas() == 0),
        "no scale-to-zero example"
    );
    assert!(services().any(|s| matches!(s.scaler, ScalerSettings::Swarm(_))));
    assert!(services().any(|s| matches!(s.scaler, ScalerSettings::Ansible(_))));
    assert!(services().any(|s| matches!(s.scaler, ScalerSettings::Compose(_))));
}

#[test]
fn every_example_simulates() {
    for file in example_configs() {
        let mut out = Vec::new();
        let args = [
            "autoscale",
            "simulate",
            "--config",
            file.to_str().unwrap(),
            "--metric",
            "load",
            "--format",
            "json",
        ];
        run_with(args, &Env::empty(), &mut out)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let summary: serde_json::Value = serde_json::from_slice(&out).unwrap();
        // The default pattern runs an hour.
        let interval = summary["interval_s"].as_f64().unwrap();
        assert_eq!(
            summary["ticks"].as_f64().unwrap(),
            3600.0 / interval + 1.0,
            "{}",
            file.display()
        );
    }
}
