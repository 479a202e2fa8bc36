//! The command line's options beyond a subcommand's defaults: `run --dry-run` and `--listen`, `once --service`
//! and its exit codes, the paths a scaler reads, resolved against the configuration's directory, and the
//! warning of `simulate` when `max_replicas` capped demand.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use autoscale_bin::commands::once::evaluate_loops;
use autoscale_bin::config::{Config, Env, LoadOptions, ScalerSettings};
use autoscale_bin::daemon::Backends;
use autoscale_core::FailureKind;
use autoscale_core::testing::{RecordingScaler, ScriptedSource};
use support::{Fakes, free_port, get, status_json, wait_until};

fn autoscale_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .output()
        .expect("the autoscale binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Two compose services, `web` and `api`, against a Prometheus nothing answers on.
fn two_services(listen: SocketAddr, state_dir: &Path) -> String {
    format!(
        r#"
[prometheus]
url = "http://127.0.0.1:1"
ready_timeout = "1s"

[daemon]
listen = "{listen}"
state_dir = "{}"

[[service]]
name = "web"
scaler = {{ kind = "compose", project = "cliopts" }}
check = [{{ name = "load", query = "load", policy = {{ kind = "target", target = 0.5 }} }}]

[[service]]
name = "api"
scaler = {{ kind = "compose", project = "cliopts" }}
check = [{{ name = "load", query = "load", policy = {{ kind = "target", target = 0.5 }} }}]
"#,
        state_dir.display()
    )
}

#[test]
fn once_with_an_unknown_service_exits_2_and_lists_the_names() {
    let dir = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    std::fs::write(
        dir.path().join("a.toml"),
        two_services(listen, &dir.path().join("state")),
    )
    .unwrap();
    let out = autoscale_in(
        dir.path(),
        &["once", "--config", "a.toml", "--service", "db"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(r#"--service "db": no such service; the configuration has web, api"#),
        "{stderr}"
    );
}

/// `once`'s verdict over the loops the daemon's fakes build for `config`.
async fn once_over(config: &Config, source: &ScriptedSource) -> (bool, String) {
    let fakes = Fakes {
        source: source.clone(),
        scalers: config
            .services
            .iter()
            .map(|s| (s.name.clone(), RecordingScaler::new(2)))
            .collect(),
    };
    let loops = fakes.loops(config, &|_| Ok(None)).unwrap();
    let mut out = Vec::new();
    let ok = evaluate_loops(loops, &mut out).await;
    (ok, text(&out))
}

#[tokio::test(start_paused = true)]
async fn once_fails_when_any_check_failed_and_succeeds_when_none_did() {
    let listen = SocketAddr::from(([127, 0, 0, 1], 9464));
    let config = Config::from_toml(
        "a.toml",
        &two_services(listen, Path::new("/tmp/unused")),
        &Env::empty(),
        LoadOptions::default(),
    )
    .unwrap();
    let source = ScriptedSource::constant("load", 1.0);
    let (ok, out) = once_over(&config, &source).await;
    assert!(ok, "{out}");

    // One service still has its value; the failed check alone makes `once` fail.
    let two_checks = Config::from_toml(
        "a.toml",
        &two_services(listen, Path::new("/tmp/unused")).replacen(
            r#"check = [{ name = "load""#,
            r#"check = [{ name = "broken", query = "broken", policy = { kind = "target", target = 0.5 } }, { name = "load""#,
            1,
        ),
        &Env::empty(),
        LoadOptions::default(),
    )
    .unwrap();
    source.set("broken", Err(FailureKind::Unavailable));
    let (ok, out) = once_over(&two_checks, &source).await;
    assert!(!ok, "a failed check must fail `once`: {out}");
    assert!(out.contains("broken=failed(unavailable)"), "{out}");
}

#[test]
fn once_exits_1_when_a_status_read_fails() {
    let dir = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = two_services(listen, &dir.path().join("state")).replace(
        r#"project = "cliopts" }"#,
        r#"project = "cliopts", command = ["/nonexistent/docker"] }"#,
    );
    std::fs::write(dir.path().join("a.toml"), config).unwrap();
    let out = autoscale_in(
        dir.path(),
        &["once", "--config", "a.toml", "--service", "web"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("web: status read failed"), "{stdout}");
    assert!(
        !stdout.contains("api"),
        "only --service is evaluated: {stdout}"
    );
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_listen_and_dry_run_override_the_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let in_file = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let in_env = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let on_command_line = SocketAddr::from(([127, 0, 0, 1], free_port()));
    std::fs::write(
        dir.path().join("a.toml"),
        two_services(in_file, &dir.path().join("state")),
    )
    .unwrap();
    let _daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_autoscale"))
            .args(["run", "--config", "a.toml", "--dry-run", "--listen"])
            .arg(on_command_line.to_string())
            .current_dir(dir.path())
            .env_clear()
            .env("AUTOSCALE_LISTEN", in_env.to_string())
            .env("DRY_RUN", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the services on --listen", Duration::from_secs(20), || {
        status_json(on_command_line)
            .is_some_and(|s| s["services"].as_array().is_some_and(|a| a.len() == 2))
    });
    let status = status_json(on_command_line).unwrap();
    let text = status.to_string();
    assert!(
        text.contains(r#""dry_run":true"#) && !text.contains(r#""dry_run":false"#),
        "{text}"
    );
    assert!(get(in_file, "/healthz").is_err() && get(in_env, "/healthz").is_err());
}

/// A configuration in `conf/`, with relative and absolute paths, checked from another directory.
#[test]
fn relative_scaler_paths_are_relative_to_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(conf.join("play")).unwrap();
    for file in [
        "compose.yml",
        ".env",
        "play/scale.yml",
        "play/status.yml",
        "hosts.ini",
        "vault",
    ] {
        std::fs::write(conf.join(file), "").unwrap();
    }
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(
        conf.join("autoscale.toml"),
        r#"
[prometheus]
url = "http://127.0.0.1:9090"

[[service]]
name = "web"
scaler = { kind = "compose", project = "paths", file = "compose.yml", env_file = "./.env" }
check = [{ name = "load", query = "load", policy = { kind = "target", target = 0.5 }}]

[[service]]
name = "fleet"
check = [{ name = "load", query = "load", policy = { kind = "target", target = 0.5 }}]
[service.scaler]
kind = "ansible"
playbook = "play/scale.yml"
inventory = "hosts.ini"
vault_password_file = "/etc/autoscale/vault"
ansible_playbook = "ansible-playbook"
status = { kind = "playbook", playbook = "play/status.yml", inventory = "../conf/hosts.ini" }
"#,
    )
    .unwrap();

    let out = autoscale_in(&elsewhere, &["check", "--config", "../conf/autoscale.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let checked = text(&out.stdout);
    let conf = std::fs::canonicalize(&conf).unwrap();
    for (key, path) in [
        ("file", conf.join("compose.yml")),
        ("env_file", conf.join(".env")),
        ("playbook", conf.join("play/scale.yml")),
        ("inventory", conf.join("hosts.ini")),
        ("playbook", conf.join("play/status.yml")),
        ("inventory", conf.join("../conf/hosts.ini")),
    ] {
        let line = format!("{key} = {:?}", path.display().to_string());
        assert!(checked.contains(&line), "{line} in\n{checked}");
    }
    // Absolute paths, and a program looked up in PATH, are left alone.
    assert!(checked.contains(r#""/etc/autoscale/vault""#), "{checked}");
    assert!(
        checked.contains(r#"ansible_playbook = "ansible-playbook""#),
        "{checked}"
    );

    // What `check` prints loads back to the same paths from anywhere.
    let copy = dir.path().join("copy.toml");
    std::fs::write(&copy, &checked).unwrap();
    let again = autoscale_in(dir.path(), &["check", "--config", copy.to_str().unwrap()]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&text(&again.stdout)), body(&checked));

    // And the loaded settings hold the resolved paths.
    let config = Config::load(
        &elsewhere.join("../conf/autoscale.toml"),
        &Env::empty(),
        LoadOptions::default(),
    )
    .unwrap();
    match &config.services[0].scaler {
        ScalerSettings::Compose(c) => assert_eq!(c.file, conf.join("compose.yml")),
        other => panic!("{other:?}"),
    }
    match &config.services[1].scaler {
        ScalerSettings::Ansible(a) => {
            assert_eq!(a.playbook, conf.join("play/scale.yml"));
            assert_eq!(
                a.inventory.as_deref(),
                Some(conf.join("hosts.ini").as_path())
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn simulate_warns_when_max_replicas_capped_demand() {
    let dir = tempfile::tempdir().unwrap();
    // A step to 15 from 15m to 30m (capacity 1, max 10): 910 s above the cap, ticks of 10 s.
    let args = [
        "simulate",
        "--pattern",
        "step",
        "--peak",
        "15",
        "--duration",
        "30m",
    ];
    let table = autoscale_in(dir.path(), &args);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let stderr = text(&table.stderr);
    assert!(
        stderr.contains(
            "warning: webapp: max_replicas (10) capped demand: for 910s the load needed more replicas (up to \
             15), which no policy could serve; raise max_replicas to 15"
        ),
        "{stderr}"
    );
    assert!(!text(&table.stdout).contains("warning"));

    let csv = autoscale_in(dir.path(), &[&args[..], &["--format", "csv"]].concat());
    assert!(
        text(&csv.stderr).contains("capped demand"),
        "{}",
        text(&csv.stderr)
    );

    let json = autoscale_in(dir.path(), &[&args[..], &["--format", "json"]].concat());
    assert!(json.stderr.is_empty(), "{}", text(&json.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        summary["capped_by_max_replicas"],
        serde_json::json!({"seconds": 910.0, "max_replicas": 10, "peak_demand": 15})
    );

    let compared = autoscale_in(
        dir.path(),
        &[&args[..], &["--compare", "seed,oracle", "--format", "json"]].concat(),
    );
    let summaries: serde_json::Value = serde_json::from_slice(&compared.stdout).unwrap();
    assert_eq!(summaries[1]["capped_by_max_replicas"]["seconds"], 910.0);

    // Within the cap: no warning, no key.
    let within = autoscale_in(
        dir.path(),
        &[
            "simulate",
            "--pattern",
            "step",
            "--duration",
            "30m",
            "--format",
            "json",
        ],
    );
    assert!(within.stderr.is_empty(), "{}", text(&within.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&within.stdout).unwrap();
    assert!(summary.get("capped_by_max_replicas").is_none(), "{summary}");
}

#[test]
fn help_and_docs_call_the_oracle_a_reference_for_timing_not_a_bound_on_cost() {
    let dir = tempfile::tempdir().unwrap();
    let help = text(&autoscale_in(dir.path(), &["simulate", "--help"]).stdout);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("a reference for timing") && help.contains("not a lower bound on cost"),
        "{help}"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for doc in ["README.md", "docs/simulation.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            text.contains("reference for perfect timing rather than a bound on cost")
                || text
                    .contains("reference for timing, not a policy, and not a lower bound on cost"),
            "{doc}"
        );
    }
}
