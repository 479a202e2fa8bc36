//! `check`, `run` and `once` validate a configuration the same way: what one refuses, all refuse, with exit
//! code 2 and an error that names the file, line, column and key (or the variable). Run through the built
//! binary; none of these configurations gets far enough to need a service.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SERVICE: &str = r#"
[[service]]
name = "webapp"
[service.scaler]
kind = "compose"
command = ["false"]
[[service.check]]
name = "cpu"
query = "avg(cpu)"
policy = { kind = "target", target = 0.6 }
"#;

/// The daemon part of every file: nothing that would collide with another test if a daemon did start.
fn daemon(dir: &Path) -> String {
    format!(
        "[daemon]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n",
        dir.join("state").display()
    )
}

/// Run `autoscale ARGS` with only `env`; a command still running after 20 s is killed and fails the test.
fn autoscale(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoscale"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the autoscale binary runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("autoscale {args:?} still ran after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Each command refuses `text` with exit code 2 and an error starting with `expected` (after the file name,
/// when `expected` starts with ':'); `run` never says it started.
fn refused_by_all(dir: &Path, name: &str, text: &str, env: &[(&str, &str)], expected: &str) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let file = path.to_str().unwrap();
    let prefix = if expected.starts_with(':') {
        format!("error: {file}{expected}")
    } else {
        format!("error: {expected}")
    };
    for command in ["check", "once", "run"] {
        let out = autoscale(&[command, "--config", file], env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {command}: {err}");
        assert!(
            err.starts_with(&prefix),
            "{name}: {command}:\n{err}\nexpected: {prefix}"
        );
        assert!(!err.contains("daemon started"), "{name}: {command}: {err}");
        assert!(out.stdout.is_empty(), "{name}: {command}");
    }
}

/// (name, file, environment, the start of the error).
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn check_run_and_once_refuse_the_same_configurations() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let prom = "[prometheus]\nurl = \"http://127.0.0.1:9\"\n";
    let cases: Vec<Case<'_>> = vec![
        (
            "url_query",
            format!("[prometheus]\nurl = \"http://127.0.0.1:9/?x=1\"\n{d}{SERVICE}"),
            vec![],
            ":2:7: prometheus.url: the URL has a query or fragment",
        ),
        (
            "url_fragment",
            format!("[prometheus]\nurl = \"http://127.0.0.1:9/#top\"\n{d}{SERVICE}"),
            vec![],
            ":2:7: prometheus.url: the URL has a query or fragment",
        ),
        (
            "missing_token",
            format!("{prom}bearer_token_file = \"/nonexistent/token\"\n{d}{SERVICE}"),
            vec![],
            ":3:21: prometheus.bearer_token_file: cannot use the bearer token file /nonexistent/token",
        ),
        (
            "missing_ca",
            format!(
                "[prometheus]\nurl = \"https://127.0.0.1:9\"\nca_file = \"/nonexistent/ca.pem\"\n{d}{SERVICE}"
            ),
            vec![],
            ":3:11: prometheus.ca_file: cannot use the CA file /nonexistent/ca.pem",
        ),
        (
            "authorization_header",
            format!("{prom}headers = {{ Authorization = \"Bearer x\" }}\n{d}{SERVICE}"),
            vec![],
            ":3:13: prometheus.headers.\"Authorization\": \"Authorization\" is set by the client itself",
        ),
        (
            "env_url_query",
            format!("{prom}{d}{SERVICE}"),
            vec![("PROMETHEUS_URL", "http://127.0.0.1:9/?x=1")],
            "environment variable PROMETHEUS_URL: the URL has a query or fragment",
        ),
        (
            "interval_overflow",
            format!(
                "{prom}{d}{}",
                SERVICE.replace(
                    "name = \"webapp\"",
                    "name = \"webapp\"\ninterval = \"18446744073709551615s\""
                )
            ),
            vec![],
            ":9:12: service[0].interval: \"18446744073709551615s\" is too long",
        ),
        (
            "fallback_above_max",
            format!(
                "{prom}{d}{}",
                SERVICE.replace(
                    "name = \"webapp\"",
                    "name = \"webapp\"\nmax_replicas = 4\nfallback = { after = 2, replicas = 6 }"
                )
            ),
            vec![],
            ":10:36: service[0].fallback.replicas: 6 must not be above max_replicas (4)",
        ),
        (
            "history_too_small",
            format!("{prom}{d}history_max_bytes = 10\n{SERVICE}"),
            vec![],
            ":6:21: daemon.history_max_bytes: 10 is too small",
        ),
        (
            "ansible_status_default_swarm_name",
            format!(
                "{prom}{d}{}",
                SERVICE.replace("name = \"webapp\"", "name = \"web.app\"").replace(
                    "kind = \"compose\"\ncommand = [\"false\"]",
                    "kind = \"ansible\"\nplaybook = \"scale.yml\"\nstatus = { kind = \"swarm\" }"
                )
            ),
            vec![],
            ":12:10: service[0].scaler.status: invalid swarm service name \"web.app\": '.' is not allowed",
        ),
        (
            "ansible_status_default_compose_project",
            format!(
                "{prom}{d}{}",
                SERVICE.replace(
                    "kind = \"compose\"\ncommand = [\"false\"]",
                    "kind = \"ansible\"\nplaybook = \"scale.yml\"\nextra_vars = { compose_project = \"Web App\" }"
                )
            ),
            vec![],
            ":12:14: service[0].scaler.extra_vars: invalid compose project name \"Web App\"",
        ),
        (
            "ansible_env_of_the_scaler",
            format!(
                "{prom}{d}{}",
                SERVICE.replace(
                    "kind = \"compose\"\ncommand = [\"false\"]",
                    "kind = \"ansible\"\nplaybook = \"scale.yml\"\nenv = { ANSIBLE_STDOUT_CALLBACK = \"default\" }"
                )
            ),
            vec![],
            ":10:8: service[0].scaler: invalid ansible scaler settings: env ANSIBLE_STDOUT_CALLBACK is set by the scaler",
        ),
    ];
    for (name, text, env, expected) in cases {
        refused_by_all(dir.path(), name, &text, &env, expected);
    }
}

#[test]
fn a_device_is_refused_as_a_configuration() {
    for command in ["check", "once", "run"] {
        let out = autoscale(&[command, "--config", "/dev/zero"], &[]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert_eq!(
            stderr(&out),
            "error: /dev/zero: cannot read the file: it is a character device; a configuration must be a regular file\n"
        );
    }
}

#[test]
fn a_misspelled_variable_and_an_invalid_rust_log_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let text = format!(
        "[prometheus]\nurl = \"http://127.0.0.1:9\"\ntimeout = \"1s\"\n{}{SERVICE}",
        daemon(dir.path())
    );
    std::fs::write(&path, text).unwrap();
    let file = path.to_str().unwrap();
    let env = [
        ("SCALE_UP_TRESHOLD", "0.7"),
        ("dry_rum", "1"),
        ("RUST_LOG", "info,autoscale=loudest"),
    ];

    let out = autoscale(&["check", "--config", file], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "warning: environment variable SCALE_UP_TRESHOLD is not one autoscale reads; did you mean \
         SCALE_UP_THRESHOLD?\nwarning: environment variable dry_rum is not one autoscale reads; did you \
         mean DRY_RUN?\n"
    );

    // `once` fails here (nothing answers), but logs the warnings first.
    let out = autoscale(&["once", "--config", file], &env);
    let err = stderr(&out);
    assert!(err.contains("RUST_LOG is invalid and is ignored"), "{err}");
    assert!(
        err.contains("environment variable SCALE_UP_TRESHOLD is not one autoscale reads; did you mean SCALE_UP_THRESHOLD?"),
        "{err}"
    );
    assert!(!err.contains("loudest\""), "{err}");
}
