//! The original scaler's environment variables: a whole configuration without a file, and overrides on top of
//! one. The environment is a map here; the process environment is never touched.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use autoscale_bin::config::{
    Config, DEFAULT_METRIC_QUERY, Env, KNOWN_VARIABLES, LoadOptions, LogLevel, PolicySettings,
    ScalerSettings, Source,
};
use autoscale_core::policy::Step;

fn env(vars: &[(&str, &str)]) -> Env {
    vars.iter().copied().collect()
}

#[test]
fn without_variables_the_original_defaults_apply() {
    let config = Config::from_env(&Env::empty()).unwrap();
    assert_eq!(config.source, Source::Environment);
    assert_eq!(config.prometheus.url.to_string(), "http://prometheus:9090/");
    let svc = &config.services[0];
    assert_eq!(svc.name, "webapp");
    assert_eq!(svc.interval, Duration::from_secs(10));
    assert_eq!(svc.engine.min_replicas(), 1);
    assert_eq!(svc.engine.max_replicas(), 10);
    assert_eq!(svc.engine.cooldown_up(), Duration::from_secs(60));
    assert_eq!(svc.engine.cooldown_down(), Duration::from_secs(60));
    assert_eq!(
        svc.engine.behavior().scale_down.stabilization_window(),
        Duration::ZERO
    );
    assert_eq!(
        svc.engine.behavior().scale_up.stabilization_window(),
        Duration::ZERO
    );
    assert_eq!(svc.checks[0].query, DEFAULT_METRIC_QUERY);
    assert_eq!(
        svc.checks[0].policy,
        PolicySettings::Threshold {
            scale_up_above: 0.6,
            scale_down_below: 0.3,
            step: Step::Count(1)
        }
    );
    let ScalerSettings::Compose(compose) = &svc.scaler else {
        panic!("not compose: {:?}", svc.scaler);
    };
    assert_eq!(compose.project, "prometheus-autoscale-sim");
    assert_eq!(compose.file, PathBuf::from("/docker-compose.yml"));
    assert_eq!(compose.service, "webapp");
    assert!(!svc.dry_run);
    assert_eq!(config.daemon.log_level, LogLevel::Info);
    assert_eq!(
        config.daemon.listen,
        "127.0.0.1:9464".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn every_variable_of_the_original_scaler_is_read() {
    let config = Config::from_env(&env(&[
        ("PROMETHEUS_URL", "http://prom.internal:9090"),
        ("SERVICE_NAME", "api"),
        ("SCALE_UP_THRESHOLD", "0.8"),
        ("SCALE_DOWN_THRESHOLD", "0.2"),
        ("METRIC_QUERY", "avg(cpu)"),
        ("MIN_REPLICAS", "2"),
        ("MAX_REPLICAS", "7"),
        ("CHECK_INTERVAL", "15"),
        ("COOLDOWN", "2m"),
        ("STABILIZATION_WINDOW", "30s"),
        ("COMPOSE_PROJECT_NAME", "shop"),
        ("COMPOSE_FILE", "/srv/shop/compose.yml"),
        ("LOG_LEVEL", "DEBUG"),
        ("DRY_RUN", "true"),
        ("AUTOSCALE_LISTEN", "0.0.0.0:9999"),
        ("STATE_DIR", "/var/lib/autoscale"),
    ]))
    .unwrap();
    let svc = &config.services[0];
    assert_eq!(
        config.prometheus.url.to_string(),
        "http://prom.internal:9090/"
    );
    assert_eq!(svc.name, "api");
    assert_eq!(
        svc.checks[0].policy,
        PolicySettings::Threshold {
            scale_up_above: 0.8,
            scale_down_below: 0.2,
            step: Step::Count(1)
        }
    );
    assert_eq!(svc.checks[0].query, "avg(cpu)");
    assert_eq!(
        (svc.engine.min_replicas(), svc.engine.max_replicas()),
        (2, 7)
    );
    // A bare number is seconds, as the original scaler read it.
    assert_eq!(svc.interval, Duration::from_secs(15));
    assert_eq!(svc.engine.cooldown_up(), Duration::from_secs(120));
    assert_eq!(svc.engine.cooldown_down(), Duration::from_secs(120));
    assert_eq!(
        svc.engine.behavior().scale_down.stabilization_window(),
        Duration::from_secs(30)
    );
    let ScalerSettings::Compose(compose) = &svc.scaler else {
        panic!("not compose");
    };
    assert_eq!(
        (compose.project.as_str(), compose.service.as_str()),
        ("shop", "api")
    );
    assert_eq!(compose.file, PathBuf::from("/srv/shop/compose.yml"));
    assert!(svc.dry_run && config.daemon.dry_run);
    assert_eq!(config.daemon.log_level, LogLevel::Debug);
    assert_eq!(config.daemon.listen.port(), 9999);
    assert_eq!(config.daemon.state_dir, PathBuf::from("/var/lib/autoscale"));
}

#[test]
fn the_url_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, "https://user:hunter2@prom.example:9090\n").unwrap();
    let config =
        Config::from_env(&env(&[("PROMETHEUS_URL_FILE", file.to_str().unwrap())])).unwrap();
    assert_eq!(config.prometheus.url.expose().password(), Some("hunter2"));
    // Neither Display, Debug nor the rendered config shows the password.
    assert_eq!(
        config.prometheus.url.to_string(),
        "https://user:REDACTED@prom.example:9090/"
    );
    assert!(!format!("{config:?}").contains("hunter2"));
    assert!(!config.to_redacted_toml().contains("hunter2"));
}

#[test]
fn empty_values_count_as_unset() {
    let config = Config::from_env(&env(&[("MIN_REPLICAS", ""), ("SERVICE_NAME", "")])).unwrap();
    assert_eq!(config.services[0].name, "webapp");
    assert_eq!(config.services[0].engine.min_replicas(), 1);
}

#[test]
fn bad_values_name_the_variable() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("min_not_a_number", &[("MIN_REPLICAS", "two")]),
        (
            "min_above_max",
            &[("MIN_REPLICAS", "5"), ("MAX_REPLICAS", "2")],
        ),
        ("max_zero", &[("MAX_REPLICAS", "0")]),
        ("threshold_not_a_number", &[("SCALE_UP_THRESHOLD", "high")]),
        (
            "thresholds_reversed",
            &[
                ("SCALE_UP_THRESHOLD", "0.2"),
                ("SCALE_DOWN_THRESHOLD", "0.5"),
            ],
        ),
        ("interval_unit", &[("CHECK_INTERVAL", "10 parsecs")]),
        ("interval_zero", &[("CHECK_INTERVAL", "0")]),
        ("cooldown", &[("COOLDOWN", "-1")]),
        ("dry_run", &[("DRY_RUN", "maybe")]),
        ("log_level", &[("LOG_LEVEL", "loud")]),
        ("listen", &[("AUTOSCALE_LISTEN", "9464")]),
        ("service_name", &[("SERVICE_NAME", "web/app")]),
        ("project", &[("COMPOSE_PROJECT_NAME", "My Project")]),
        ("url", &[("PROMETHEUS_URL", "prometheus:9090")]),
        (
            "url_and_url_file",
            &[
                ("PROMETHEUS_URL", "http://a"),
                ("PROMETHEUS_URL_FILE", "/b"),
            ],
        ),
        (
            "url_file_missing",
            &[("PROMETHEUS_URL_FILE", "/nonexistent/url")],
        ),
        (
            "url_with_query",
            &[("PROMETHEUS_URL", "http://prometheus:9090/?timeout=1s")],
        ),
        (
            "interval_too_long",
            &[("CHECK_INTERVAL", "18446744073709551615s")],
        ),
        ("interval_over_a_day", &[("CHECK_INTERVAL", "86401")]),
        ("cooldown_too_long", &[("COOLDOWN", "8d")]),
        ("window_too_long", &[("STABILIZATION_WINDOW", "1000h")]),
    ];
    for (name, vars) in cases {
        let err = Config::from_env(&env(vars)).unwrap_err();
        insta::assert_snapshot!(format!("env_{name}"), err.to_string(), &format!("{vars:?}"));
    }
}

#[test]
fn a_url_with_credentials_is_never_repeated_in_an_error() {
    let err = Config::from_env(&env(&[("PROMETHEUS_URL", "http://u:hunter2@[::1")])).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

const FILE: &str = r#"
[prometheus]
url = "http://from-file:9090"

[daemon]
listen = "127.0.0.1:1111"
state_dir = "/from/file"

[[service]]
name = "webapp"
scaler = { kind = "compose" }
check = [{ name = "cpu", query = "avg(cpu)", policy = { kind = "target", target = 0.6 } }]
"#;

#[test]
fn overrides_apply_on_top_of_a_file() {
    let load = |env: &Env| Config::from_toml("c.toml", FILE, env, LoadOptions::default()).unwrap();

    let plain = load(&Env::empty());
    assert_eq!(plain.prometheus.url.to_string(), "http://from-file:9090/");
    assert_eq!(plain.daemon.listen.port(), 1111);
    assert!(!plain.services[0].dry_run);

    let over = load(&env(&[
        ("PROMETHEUS_URL", "http://from-env:9090"),
        ("LOG_LEVEL", "warn"),
        ("DRY_RUN", "1"),
        ("AUTOSCALE_LISTEN", "127.0.0.1:2222"),
        ("STATE_DIR", "/from/env"),
        // Not overrides: these only build the environment-only configuration.
        ("MIN_REPLICAS", "5"),
        ("SERVICE_NAME", "other"),
    ]));
    assert_eq!(over.prometheus.url.to_string(), "http://from-env:9090/");
    assert_eq!(over.daemon.log_level, LogLevel::Warn);
    assert!(over.daemon.dry_run && over.services[0].dry_run);
    assert_eq!(over.daemon.listen.port(), 2222);
    assert_eq!(over.daemon.state_dir, PathBuf::from("/from/env"));
    assert_eq!(over.services[0].engine.min_replicas(), 1);
    assert_eq!(over.services[0].name, "webapp");
}

#[test]
fn an_override_makes_a_file_without_url_valid() {
    let without_url = FILE.replace("url = \"http://from-file:9090\"", "");
    assert!(
        Config::from_toml(
            "c.toml",
            &without_url,
            &Env::empty(),
            LoadOptions::default()
        )
        .is_err()
    );
    let config = Config::from_toml(
        "c.toml",
        &without_url,
        &env(&[("PROMETHEUS_URL", "http://from-env:9090")]),
        LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(config.prometheus.url.to_string(), "http://from-env:9090/");
}

#[test]
fn a_bad_override_names_the_variable() {
    let err = Config::from_toml(
        "c.toml",
        FILE,
        &env(&[("DRY_RUN", "sometimes")]),
        LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.variable(), Some("DRY_RUN"));
    assert_eq!(
        err.to_string(),
        "environment variable DRY_RUN: \"sometimes\" is not a boolean; expected true or false (or 1/0, yes/no, on/off)"
    );
}

#[test]
fn secrets_never_show_in_debug_or_check_output() {
    let text = r#"
[prometheus]
url = "https://scaler:hunter2@prom:9090"
headers = { "X-Auth-Token" = "tok3n", "X-Api-Key" = "k3y", "X-Scope-OrgID" = "team-a" }

[[service]]
name = "webapp"
scaler = { kind = "ansible", playbook = "p.yml", env = { AWS_SECRET_ACCESS_KEY = "s3cret" }, extra_vars = { db = { password = "pa55" }, region = "eu" } }
check = [{ name = "cpu", query = "avg(cpu)", policy = { kind = "target", target = 0.6 } }]
"#;
    let config = Config::from_toml("c.toml", text, &Env::empty(), LoadOptions::default()).unwrap();
    let debug = format!("{config:?}");
    let rendered = config.to_redacted_toml();
    for secret in ["hunter2", "tok3n", "k3y", "s3cret", "pa55"] {
        assert!(!debug.contains(secret), "{secret} in Debug: {debug}");
        assert!(
            !rendered.contains(secret),
            "{secret} in check's output: {rendered}"
        );
    }
    // What is not a secret stays readable.
    assert!(
        rendered.contains("X-Scope-OrgID = \"team-a\""),
        "{rendered}"
    );
    assert!(rendered.contains("region = \"eu\""), "{rendered}");
    assert!(
        rendered.contains("url = \"https://scaler:REDACTED@prom:9090/\""),
        "{rendered}"
    );
}

#[test]
fn a_variable_two_edits_from_a_known_one_is_a_likely_misspelling() {
    let env = env(&[
        ("SCALE_UP_TRESHOLD", "0.7"),
        ("scale_down_threshold", "0.2"),
        ("COOLDOWNS", "30"),
        ("MAX_REPLICA", "5"),
        ("MIN_REPLICAS", "1"),
        ("PATH", "/bin"),
        ("HOME", "/root"),
        ("COMPOSE_PROFILES", "web"),
        ("DOCKER_HOST", "unix:///run/docker.sock"),
        ("RUST_LOG", "info"),
    ]);
    assert_eq!(
        env.likely_misspellings(),
        vec![
            ("COOLDOWNS", "COOLDOWN"),
            ("MAX_REPLICA", "MAX_REPLICAS"),
            ("SCALE_UP_TRESHOLD", "SCALE_UP_THRESHOLD"),
            ("scale_down_threshold", "SCALE_DOWN_THRESHOLD"),
        ]
    );
}

#[test]
fn every_variable_the_configuration_reads_is_a_known_one() {
    // Each name the environment module reads or reports is in the list the misspelling warning compares to.
    let source = include_str!("../src/config/env.rs");
    let mut read = Vec::new();
    for pattern in ["env.get(\"", "parse_var(env, \"", "ConfigError::env(\""] {
        for (i, _) in source.match_indices(pattern) {
            let rest = &source[i + pattern.len()..];
            read.push(&rest[..rest.find('"').unwrap()]);
        }
    }
    assert!(read.len() >= 15, "{read:?}");
    for name in read {
        assert!(
            KNOWN_VARIABLES.contains(&name),
            "{name} is not in KNOWN_VARIABLES"
        );
    }
}
