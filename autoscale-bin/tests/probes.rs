//! `autoscale healthcheck` and `autoscale status` against an in-process scripted daemon: a healthy one, an
//! unhealthy one (503), a closed port and one that never answers. Each case checks the exit code and the
//! exact message a container runtime or a person sees.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use autoscale_bin::config::Env;
use autoscale_bin::{CliError, run_with};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use support::{Server, serve};

const STATUS_JSON: &str = r#"{"services":[{"service":"web","min_replicas":1,"max_replicas":10,"current":2,
"ready":2,"desired":3,"cooldown_remaining_s":{"up":0.0,"down":12.4,"blocking":12.4},
"last_evaluation":{"scale":"not_needed","happened":"blocked by cooldown (wanted 3)","reason":"cooldown: recommended 3"}}]}"#;

/// What `status` says after a failure to reach the daemon.
const HINT: &str = ". Is the autoscale daemon listening there? Give its address with --listen ADDR, or its \
                    configuration with --config FILE (its daemon.listen is used), or set AUTOSCALE_LISTEN";

fn healthy() -> Server {
    serve(
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/status", get(|| async { STATUS_JSON })),
    )
}

fn unhealthy() -> Server {
    serve(
        Router::new()
            .route(
                "/healthz",
                get(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unhealthy: no evaluation completed within 3 intervals: web\n",
                    )
                }),
            )
            .route(
                "/status",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "starting\n") }),
            ),
    )
}

/// Accepts connections and never answers.
fn silent() -> Server {
    let never = || async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        "too late"
    };
    serve(
        Router::new()
            .route("/healthz", get(never))
            .route("/status", get(never)),
    )
}

/// An address nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn autoscale(args: &[&str]) -> (Result<(), CliError>, String) {
    let mut out = Vec::new();
    let result = run_with(
        std::iter::once("autoscale").chain(args.iter().copied()),
        &Env::empty(),
        &mut out,
    );
    (result, String::from_utf8(out).unwrap())
}

/// `command` (`healthcheck` or `status`) against `addr`, expected to fail: its exit code and message.
fn failure(command: &str, addr: SocketAddr) -> (u8, String) {
    let (result, out) = autoscale(&[command, "--listen", &addr.to_string(), "--timeout", "200ms"]);
    assert_eq!(out, "", "{command} prints nothing when it fails");
    let e = result.expect_err("the probe fails");
    (e.exit_code(), e.to_string())
}

#[test]
fn a_healthy_daemon_passes_the_healthcheck_and_shows_its_status() {
    let server = healthy();
    let addr = server.addr.to_string();
    let (result, out) = autoscale(&["healthcheck", "--listen", &addr]);
    result.unwrap();
    assert_eq!(out, "healthy\n");

    let (result, out) = autoscale(&["status", "--listen", &addr]);
    result.unwrap();
    assert_eq!(
        out,
        "SERVICE              MIN MAX CURRENT READY DESIRED COOLDOWN  LAST                           REASON\n\
         web                    1  10       2     2       3      13s  blocked by cooldown (wanted 3) cooldown: recommended 3\n\
         \n\
         web\n  \
           Replicas:    2 current, 2 ready, 3 desired (min 1, max 10)\n  \
           Paused:      no\n  \
           Conditions:\n  \
           Events:      none yet\n"
    );
    let (result, out) = autoscale(&["status", "--listen", &addr, "--json"]);
    result.unwrap();
    assert_eq!(out, format!("{STATUS_JSON}\n"));
}

#[test]
fn an_unhealthy_daemon_fails_both_with_its_answer() {
    let server = unhealthy();
    let addr = server.addr;
    assert_eq!(
        failure("healthcheck", addr),
        (
            1,
            format!(
                "{addr}/healthz answered 503: unhealthy: no evaluation completed within 3 intervals: web"
            )
        )
    );
    assert_eq!(
        failure("status", addr),
        (1, format!("{addr}/status answered 503: starting"))
    );
}

#[test]
fn a_closed_port_fails_both_with_the_connect_error() {
    let addr = closed_port();
    // What connecting says, as the operating system puts it ("Connection refused (os error 111)").
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(
        failure("healthcheck", addr),
        (1, format!("{addr}: {refused}"))
    );
    // `status` is for a person: it says how to point at the daemon.
    assert_eq!(
        failure("status", addr),
        (1, format!("{addr}: {refused}{HINT}"))
    );
}

#[test]
fn a_silent_daemon_fails_both_after_the_timeout() {
    let server = silent();
    let addr = server.addr;
    for command in ["healthcheck", "status"] {
        let started = std::time::Instant::now();
        let hint = if command == "status" { HINT } else { "" };
        assert_eq!(
            failure(command, addr),
            (1, format!("{addr}: no answer within 200ms{hint}")),
            "{command}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{command} took {:?}",
            started.elapsed()
        );
    }
}
