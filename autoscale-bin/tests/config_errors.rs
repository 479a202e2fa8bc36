//! Every kind of configuration error, with its exact message: file, line, column, key, and what is allowed.

use autoscale_bin::config::{Config, Env, LoadOptions};

/// A valid service, so that each case below breaks exactly one thing.
const SERVICE: &str = r#"
[[service]]
name = "webapp"
[service.scaler]
kind = "compose"
[[service.check]]
name = "cpu"
query = "avg(cpu)"
policy = { kind = "target", target = 0.6 }
"#;

const PROM: &str = "[prometheus]\nurl = \"http://127.0.0.1:9090\"\n";

fn error(toml: &str) -> String {
    match Config::from_toml("config.toml", toml, &Env::empty(), LoadOptions::default()) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

/// `PROM + SERVICE`, with `from` replaced by `to` in the service (which must change it).
fn broken(from: &str, to: &str) -> String {
    let text = format!("{PROM}{SERVICE}");
    assert!(text.contains(from), "{from:?} is not in the base config");
    text.replacen(from, to, 1)
}

#[test]
fn the_base_config_is_valid() {
    let config = Config::from_toml(
        "config.toml",
        &format!("{PROM}{SERVICE}"),
        &Env::empty(),
        LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(config.services.len(), 1);
}

#[test]
fn errors_name_file_line_column_and_key() {
    let cases: Vec<(&str, String)> = vec![
        (
            "unknown_top_level_key",
            format!("verbose = true\n{PROM}{SERVICE}"),
        ),
        (
            "unknown_key_in_table",
            format!("{PROM}verbose = true\n{SERVICE}"),
        ),
        (
            "unknown_prometheus_key",
            "[prometheus]\nurll = \"http://x\"\n".to_owned() + SERVICE,
        ),
        (
            "unknown_policy",
            broken("kind = \"target\"", "kind = \"targe\""),
        ),
        (
            "key_not_allowed_for_policy_kind",
            broken("target = 0.6 }", "target = 0.6, step = 2 }"),
        ),
        (
            "policy_without_target",
            broken("kind = \"target\", target = 0.6", "kind = \"target\""),
        ),
        (
            "threshold_down_above_up",
            broken(
                "{ kind = \"target\", target = 0.6 }",
                "{ kind = \"threshold\", scale_up_above = 0.3, scale_down_below = 0.6 }",
            ),
        ),
        (
            "step_and_step_percent",
            broken(
                "{ kind = \"target\", target = 0.6 }",
                "{ kind = \"threshold\", scale_up_above = 0.6, scale_down_below = 0.3, step = 1, step_percent = 50 }",
            ),
        ),
        (
            "tolerance_out_of_range",
            broken("target = 0.6 }", "target = 0.6, tolerance = 1.5 }"),
        ),
        ("target_zero", broken("target = 0.6 }", "target = 0 }")),
        (
            "duration_without_unit",
            broken("name = \"webapp\"", "name = \"webapp\"\ninterval = \"10\""),
        ),
        (
            "zero_interval",
            broken("name = \"webapp\"", "name = \"webapp\"\ninterval = \"0s\""),
        ),
        (
            "duration_not_a_string",
            broken("name = \"webapp\"", "name = \"webapp\"\ninterval = 10"),
        ),
        (
            "min_above_max",
            broken(
                "name = \"webapp\"",
                "name = \"webapp\"\nmin_replicas = 5\nmax_replicas = 3",
            ),
        ),
        (
            "max_zero",
            broken(
                "name = \"webapp\"",
                "name = \"webapp\"\nmin_replicas = 0\nmax_replicas = 0",
            ),
        ),
        (
            "negative_min",
            broken("name = \"webapp\"", "name = \"webapp\"\nmin_replicas = -1"),
        ),
        (
            "min_not_a_number",
            broken(
                "name = \"webapp\"",
                "name = \"webapp\"\nmin_replicas = \"one\"",
            ),
        ),
        (
            "idle_after_with_min",
            broken(
                "name = \"webapp\"",
                "name = \"webapp\"\nidle_after = \"5m\"",
            ),
        ),
        (
            "invalid_service_name",
            broken("name = \"webapp\"", "name = \"web app\""),
        ),
        (
            "duplicate_service",
            format!(
                "{PROM}{SERVICE}{}",
                SERVICE.replace("avg(cpu)", "avg(cpu2)")
            ),
        ),
        (
            "same_target_twice",
            format!(
                "{PROM}{SERVICE}{}",
                SERVICE
                    .replace("name = \"webapp\"", "name = \"webapp2\"\n")
                    .replace(
                        "kind = \"compose\"",
                        "kind = \"compose\"\nservice = \"webapp\""
                    )
            ),
        ),
        (
            "duplicate_check",
            format!(
                "{}{}",
                broken("", ""),
                "[[service.check]]\nname = \"cpu\"\nquery = \"x\"\npolicy = { kind = \"target\", target = 1 }\n"
            ),
        ),
        (
            "no_check",
            format!("{PROM}[[service]]\nname = \"webapp\"\nscaler = {{ kind = \"compose\" }}\n"),
        ),
        ("no_service", PROM.to_owned()),
        ("missing_url", SERVICE.to_owned()),
        (
            "url_scheme",
            broken("http://127.0.0.1:9090", "ftp://127.0.0.1:9090"),
        ),
        (
            "unknown_scaler",
            broken("kind = \"compose\"", "kind = \"kubernetes\""),
        ),
        (
            "key_not_allowed_for_scaler_kind",
            broken("kind = \"compose\"", "kind = \"swarm\"\nproject = \"p\""),
        ),
        (
            "ansible_without_playbook",
            broken("kind = \"compose\"", "kind = \"ansible\""),
        ),
        (
            "ansible_extra_vars_replicas",
            broken(
                "kind = \"compose\"",
                "kind = \"ansible\"\nplaybook = \"p.yml\"\nextra_vars = { replicas = 3 }",
            ),
        ),
        (
            "ansible_limit_option",
            broken(
                "kind = \"compose\"",
                "kind = \"ansible\"\nplaybook = \"p.yml\"\nlimit = \"--become\"",
            ),
        ),
        (
            "compose_project_upper_case",
            broken(
                "kind = \"compose\"",
                "kind = \"compose\"\nproject = \"Shop\"",
            ),
        ),
        (
            "empty_command",
            broken("kind = \"compose\"", "kind = \"compose\"\ncommand = []"),
        ),
        (
            "unknown_instance",
            broken(
                "query = \"avg(cpu)\"",
                "query = \"avg(cpu)\"\nprometheus = \"edge\"",
            ),
        ),
        (
            "step_without_range",
            broken(
                "query = \"avg(cpu)\"",
                "query = \"avg(cpu)\"\nstep = \"15s\"",
            ),
        ),
        (
            "unknown_reduce",
            broken(
                "query = \"avg(cpu)\"",
                "query = \"avg(cpu)\"\nreduce = \"median\"",
            ),
        ),
        (
            "empty_query",
            broken("query = \"avg(cpu)\"", "query = \" \""),
        ),
        (
            "empty_rules",
            format!(
                "{}[service.behavior.scale_down]\nrules = []\n",
                broken("", "")
            ),
        ),
        (
            "rule_with_pods_and_percent",
            format!(
                "{}[service.behavior.scale_up]\nrules = [{{ pods = 4, percent = 100, period = \"15s\" }}]\n",
                broken("", "")
            ),
        ),
        (
            "rule_without_amount",
            format!(
                "{}[service.behavior.scale_up]\nrules = [{{ period = \"15s\" }}]\n",
                broken("", "")
            ),
        ),
        (
            "unknown_select",
            format!(
                "{}[service.behavior.scale_up]\nselect = \"maximum\"\n",
                broken("", "")
            ),
        ),
        (
            "unknown_behavior_key",
            format!(
                "{}[service.behavior.scale_up]\nwindow = \"1m\"\n",
                broken("", "")
            ),
        ),
        (
            "fallback_after_zero",
            broken(
                "name = \"webapp\"",
                "name = \"webapp\"\nfallback = { after = 0, replicas = 3 }",
            ),
        ),
        (
            "unknown_pause",
            broken(
                "name = \"webapp\"",
                "name = \"webapp\"\npaused = \"sideways\"",
            ),
        ),
        (
            "unknown_on_zero_outside",
            broken(
                "name = \"webapp\"",
                "name = \"webapp\"\non_zero_outside = \"ignore\"",
            ),
        ),
        (
            "missing_admin_token_file",
            format!("{PROM}[daemon]\nadmin_token_file = \"/nonexistent/admin.token\"\n{SERVICE}"),
        ),
        (
            "bad_listen",
            format!("{PROM}[daemon]\nlisten = \"localhost\"\n{SERVICE}"),
        ),
        (
            "bearer_and_basic_auth",
            format!(
                "[prometheus]\nurl = \"http://x:9090\"\nbearer_token_file = \"/t\"\nbasic_auth = {{ username = \"u\", password_file = \"/p\" }}\n{SERVICE}"
            ),
        ),
        (
            "client_cert_without_key",
            format!("{PROM}client_cert_file = \"/c.pem\"\n{SERVICE}"),
        ),
        (
            "nested_instances",
            format!("{PROM}[prometheus.instances.a.instances.b]\nurl = \"http://b\"\n{SERVICE}"),
        ),
        (
            "url_with_query",
            broken("http://127.0.0.1:9090", "http://127.0.0.1:9090/?timeout=1s"),
        ),
        (
            "url_with_fragment",
            broken("http://127.0.0.1:9090", "http://127.0.0.1:9090/#graph"),
        ),
        (
            "instance_url_with_query",
            format!(
                "{PROM}[prometheus.instances.edge]\nurl = \"http://edge:9090/api?x=1\"\n{SERVICE}"
            ),
        ),
        (
            "missing_bearer_token_file",
            format!("{PROM}bearer_token_file = \"/nonexistent/token\"\n{SERVICE}"),
        ),
        (
            "missing_basic_auth_password_file",
            format!(
                "{PROM}basic_auth = {{ username = \"u\", password_file = \"/nonexistent/pw\" }}\n{SERVICE}"
            ),
        ),
        (
            "missing_ca_file",
            format!(
                "[prometheus]\nurl = \"https://prom:9090\"\nca_file = \"/nonexistent/ca.pem\"\n{SERVICE}"
            ),
        ),
        (
            "ca_file_over_http",
            format!("{PROM}ca_file = \"/nonexistent/ca.pem\"\n{SERVICE}"),
        ),
        (
            "instance_inherits_missing_token",
            format!(
                "{PROM}bearer_token_file = \"/nonexistent/token\"\n[prometheus.instances.edge]\nurl = \"http://edge:9090\"\n{SERVICE}"
            ),
        ),
        (
            "authorization_header",
            format!("{PROM}headers = {{ Authorization = \"Bearer x\" }}\n{SERVICE}"),
        ),
        (
            "interval_too_long",
            broken(
                "name = \"webapp\"",
                "name = \"webapp\"\ninterval = \"18446744073709551615s\"",
            ),
        ),
        (
            "timeout_too_long",
            format!("{PROM}timeout = \"25h\"\n{SERVICE}"),
        ),
        (
            "cooldown_too_long",
            broken(
                "name = \"webapp\"",
                "name = \"webapp\"\ncooldown_down = \"8d\"",
            ),
        ),
        (
            "window_too_long",
            format!(
                "{}[service.behavior.scale_down]\nstabilization_window = \"169h\"\n",
                broken("", "")
            ),
        ),
        (
            "rule_period_too_long",
            format!(
                "{}[service.behavior.scale_up]\nrules = [{{ pods = 4, period = \"30d\" }}]\n",
                broken("", "")
            ),
        ),
        (
            "swarm_service_with_dot",
            broken(
                "kind = \"compose\"",
                "kind = \"swarm\"\nservice = \"web.app\"",
            ),
        ),
        (
            "swarm_default_service_with_dot",
            broken("kind = \"compose\"", "kind = \"swarm\"").replace("\"webapp\"", "\"web.app\""),
        ),
        (
            "docker_host_and_context",
            broken(
                "kind = \"compose\"",
                "kind = \"compose\"\ndocker_host = \"tcp://h:2376\"\ndocker_context = \"prod\"",
            ),
        ),
        (
            "fallback_above_max",
            broken(
                "name = \"webapp\"",
                "name = \"webapp\"\nmax_replicas = 5\nfallback = { after = 3, replicas = 8 }",
            ),
        ),
        (
            "history_max_bytes_too_small",
            format!("{PROM}[daemon]\nhistory_max_bytes = 100\n{SERVICE}"),
        ),
        (
            "predictive_without_target",
            broken("kind = \"target\", target = 0.6", "kind = \"predictive\""),
        ),
        (
            "predictive_short_season",
            broken(
                "kind = \"target\", target = 0.6",
                "kind = \"predictive\", target = 0.8, season = \"30m\"",
            ),
        ),
        (
            "predictive_lead_past_the_season",
            broken(
                "kind = \"target\", target = 0.6",
                "kind = \"predictive\", target = 0.8, season = \"1h\", lead = \"2h\"",
            ),
        ),
        (
            "predictive_negative_z",
            broken(
                "kind = \"target\", target = 0.6",
                "kind = \"predictive\", target = 0.8, z = -1.0",
            ),
        ),
        (
            "predictive_with_a_threshold_key",
            broken(
                "kind = \"target\", target = 0.6",
                "kind = \"predictive\", target = 0.8, tolerance = 0.1",
            ),
        ),
        (
            "target_with_a_predictive_key",
            broken("target = 0.6", "target = 0.6, window = \"10m\""),
        ),
        (
            "deadband_min_drop_of_one",
            format!(
                "{PROM}{SERVICE}[service.behavior.scale_down]\ndeadband = {{ min_drop = 1.0 }}\n"
            ),
        ),
        (
            "deadband_on_scale_up",
            format!("{PROM}{SERVICE}[service.behavior.scale_up]\ndeadband = {{ hold = \"1m\" }}\n"),
        ),
        ("toml_syntax", format!("{PROM}[[service]\nname = \"x\"\n")),
        (
            "duplicate_key",
            format!(
                "{PROM}{}",
                SERVICE.replace("name = \"webapp\"", "name = \"webapp\"\nname = \"again\"")
            ),
        ),
    ];
    for (name, toml) in cases {
        let message = error(&toml);
        insta::assert_snapshot!(name, message, &toml);
    }
}

/// A valid `[[discover]]` section, so that each case below breaks exactly one thing.
const DISCOVER: &str = r#"
[[discover]]
kind = "swarm"
resync = "10s"
max_replicas = 5
[discover.check]
query = "avg(load)"
policy = { kind = "target", target = 0.6 }
"#;

#[test]
fn discover_errors_name_file_line_column_and_key() {
    let base = format!("{PROM}{DISCOVER}");
    let config =
        Config::from_toml("config.toml", &base, &Env::empty(), LoadOptions::default()).unwrap();
    assert_eq!((config.services.len(), config.discover.len()), (0, 1));
    let broken = |from: &str, to: &str| {
        assert!(base.contains(from), "{from:?} is not in the base config");
        base.replacen(from, to, 1)
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "discover_unknown_kind",
            broken("kind = \"swarm\"", "kind = \"nomad\""),
        ),
        (
            "discover_unknown_key",
            broken("resync = \"10s\"", "resync = \"10s\"\nrsync = \"1s\""),
        ),
        (
            "discover_bad_resync",
            broken("resync = \"10s\"", "resync = \"0s\""),
        ),
        (
            "discover_bad_selector",
            broken("resync = \"10s\"", "selector = \"=true\""),
        ),
        (
            "discover_max_not_a_number",
            broken("max_replicas = 5", "max_replicas = \"ten\""),
        ),
        (
            "discover_min_above_max",
            broken("max_replicas = 5", "max_replicas = 5\nmin_replicas = 6"),
        ),
        (
            "discover_bad_cooldown",
            broken(
                "max_replicas = 5",
                "max_replicas = 5\ncooldown_down = \"soon\"",
            ),
        ),
        (
            "discover_unknown_check_key",
            broken(
                "query = \"avg(load)\"",
                "query = \"avg(load)\"\nrange = \"5m\"",
            ),
        ),
        ("discover_bad_policy", broken("target = 0.6", "target = -1")),
        (
            "discover_unknown_instance",
            broken(
                "query = \"avg(load)\"",
                "query = \"avg(load)\"\nprometheus = \"nowhere\"",
            ),
        ),
        (
            "discover_host_and_context",
            broken(
                "resync = \"10s\"",
                "resync = \"10s\"\ndocker_host = \"tcp://h:2376\"\ndocker_context = \"prod\"",
            ),
        ),
        (
            "discover_command_for_swarm",
            broken(
                "resync = \"10s\"",
                "resync = \"10s\"\ncommand = [\"docker\"]",
            ),
        ),
    ];
    for (name, toml) in cases {
        let message = error(&toml);
        insta::assert_snapshot!(name, message, &toml);
    }
}

#[test]
fn positions_count_lines_and_characters() {
    let text =
        format!("# café ☕\n{PROM}{SERVICE}").replace("kind = \"target\"", "kind = \"targe\"");
    let err =
        Config::from_toml("c.toml", &text, &Env::empty(), LoadOptions::default()).unwrap_err();
    let line = text.lines().position(|l| l.contains("targe\"")).unwrap() + 1;
    let column = text
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("\"targe\"")
        .unwrap()
        + 1;
    assert_eq!(err.position(), Some((line, column)));
    assert_eq!(err.key(), Some("service[0].check[0].policy.kind"));
}

#[test]
fn the_simulator_does_not_need_a_url() {
    let config = Config::from_toml(
        "sim.toml",
        SERVICE,
        &Env::empty(),
        LoadOptions { url_optional: true },
    )
    .unwrap();
    assert_eq!(config.services[0].name, "webapp");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let err = Config::load(
        "/nonexistent/autoscale.toml".as_ref(),
        &Env::empty(),
        LoadOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/autoscale.toml: cannot read the file: "),
        "{err}"
    );
}

#[test]
fn only_a_regular_file_of_at_most_16_mib_is_read() {
    let load = |path: &std::path::Path| {
        Config::load(path, &Env::empty(), LoadOptions::default())
            .unwrap_err()
            .to_string()
    };
    // A device would be read forever: it is refused before a byte is read.
    let err = load("/dev/zero".as_ref());
    assert_eq!(
        err,
        "/dev/zero: cannot read the file: it is a character device; a configuration must be a regular file"
    );
    let dir = tempfile::tempdir().unwrap();
    assert!(
        load(dir.path()).ends_with("it is a directory; a configuration must be a regular file")
    );

    let big = dir.path().join("big.toml");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(autoscale_bin::config::MAX_FILE_BYTES + 1)
        .unwrap();
    assert_eq!(
        load(&big),
        format!(
            "{}: the file is 16777217 bytes, over the limit of 16777216 bytes (16 MiB) for a configuration",
            big.display()
        )
    );

    // At the limit, the file is read.
    let limit = dir.path().join("limit.toml");
    let mut text = format!("{PROM}{SERVICE}");
    text.push_str(&"#".repeat(autoscale_bin::config::MAX_FILE_BYTES as usize - text.len()));
    std::fs::write(&limit, &text).unwrap();
    Config::load(&limit, &Env::empty(), LoadOptions::default()).unwrap();
}

/// `n` services, each scaling its own compose service `svcI`; `extra` is appended to the last one's scaler.
fn many_services(n: usize, last_target: &str, extra: &str) -> String {
    let mut text = PROM.to_owned();
    for i in 0..n {
        let target = if i + 1 == n {
            last_target.to_owned()
        } else {
            format!("svc{i}")
        };
        let extra = if i + 1 == n { extra } else { "" };
        text.push_str(&format!(
            "[[service]]\nname = \"svc{i}\"\nscaler = {{ kind = \"compose\", service = \"{target}\"{extra} }}\n\
             check = [{{ name = \"cpu\", query = \"avg(cpu)\", policy = {{ kind = \"target\", target = 0.6 }} }}]\n"
        ));
    }
    text
}

#[test]
fn the_same_target_is_found_among_many_services() {
    let load =
        |text: &str| Config::from_toml("c.toml", text, &Env::empty(), LoadOptions::default());
    assert_eq!(
        load(&many_services(2000, "svc1999", ""))
            .unwrap()
            .services
            .len(),
        2000
    );
    // The last service scales what the first does: far apart in the file, still found.
    let err = load(&many_services(2000, "svc0", "")).unwrap_err();
    assert_eq!(err.key(), Some("service[1999].scaler"));
    assert!(
        err.message()
            .starts_with("scales the same target as service \"svc0\""),
        "{err}"
    );
    // The same compose service on another Docker host is another target.
    load(&many_services(
        2000,
        "svc0",
        ", docker_host = \"tcp://other:2376\"",
    ))
    .unwrap();
    // A name used twice is found as far apart, too.
    let twice = many_services(3, "svc2", "").replace("name = \"svc2\"", "name = \"svc0\"");
    let err = load(&twice).unwrap_err();
    assert_eq!(err.key(), Some("service[2].name"));

    let swarm = |name: &str, target: &str| {
        format!(
            "[[service]]\nname = \"{name}\"\nscaler = {{ kind = \"swarm\", service = \"{target}\" }}\n\
             check = [{{ name = \"cpu\", query = \"avg(cpu)\", policy = {{ kind = \"target\", target = 0.6 }} }}]\n"
        )
    };
    let text = format!(
        "{PROM}{}{}{}",
        swarm("a", "stack_web"),
        swarm("b", "stack_api"),
        swarm("c", "stack_web")
    );
    let err = load(&text).unwrap_err();
    assert_eq!(err.key(), Some("service[2].scaler"));
    // A compose service and a Swarm service of the same name are different targets.
    let text = format!(
        "{PROM}{}{}",
        swarm("a", "web"),
        SERVICE.replace("webapp", "web")
    );
    load(&text).unwrap();
}

#[test]
fn durations_at_their_limit_are_accepted() {
    let text = broken(
        "name = \"webapp\"",
        "name = \"webapp\"\ninterval = \"24h\"\ncooldown_up = \"7d\"\ncooldown_down = \"168h\"\n\
         max_replicas = 5\nfallback = { after = 1, replicas = 5 }",
    ) + "[service.behavior.scale_down]\nstabilization_window = \"7d\"\nrules = [{ pods = 1, period = \"7d\" }]\n";
    let text = text.replace(
        "url = \"http://127.0.0.1:9090\"",
        "url = \"http://127.0.0.1:9090\"\ntimeout = \"24h\"\nready_timeout = \"1day\"",
    );
    let config = Config::from_toml("c.toml", &text, &Env::empty(), LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(config.services[0].interval.as_secs(), 24 * 3600);
    assert_eq!(
        config.services[0].engine.cooldown_up().as_secs(),
        7 * 24 * 3600
    );
}

#[test]
fn the_client_files_are_opened_only_for_a_configuration_that_queries_prometheus() {
    let text = format!("{PROM}bearer_token_file = \"/nonexistent/token\"\n{SERVICE}");
    Config::from_toml(
        "c.toml",
        &text,
        &Env::empty(),
        LoadOptions { url_optional: true },
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let text = text.replace("/nonexistent/token", token.to_str().unwrap());
    Config::from_toml("c.toml", &text, &Env::empty(), LoadOptions::default()).unwrap();
}
