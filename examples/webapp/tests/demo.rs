//! The demo's two programs together, without docker: the real `webapp` binary on a free loopback port, load
//! from the generator's code, and the replica's `/metrics` read back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use autoscale_examples::loadgen::{self, http};
use autoscale_examples::webapp::metrics::BUCKETS;
use rustix::process::{Pid, Signal, kill_process};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};

const SECOND: Duration = Duration::from_secs(1);

/// Starts the webapp on 127.0.0.1:0 and reads the address it bound from its first line.
async fn start_webapp(capacity: &str, max_queue: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_webapp"))
        .env_clear()
        .env("WEBAPP_LISTEN", "127.0.0.1:0")
        .env("WEBAPP_CAPACITY_RPS", capacity)
        .env("WEBAPP_MAX_QUEUE", max_queue)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the webapp binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = timeout(20 * SECOND, lines.next_line())
        .await
        .expect("the webapp prints its address")
        .unwrap()
        .expect("a line");
    let addr = line
        .strip_prefix("webapp listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    // Keep reading so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// The samples of a Prometheus text exposition, by series (name and labels as written).
async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let response = http::fetch(addr, "/metrics", 5 * SECOND).await.unwrap();
    assert!(response.status.is_success());
    let text = String::from_utf8(response.body.to_vec()).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

async fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = Pid::from_raw(child.id().unwrap() as i32).unwrap();
    kill_process(pid, Signal::TERM).unwrap();
    timeout(20 * SECOND, child.wait())
        .await
        .expect("the webapp exits after SIGTERM")
        .unwrap()
}

#[tokio::test]
async fn load_beyond_capacity_is_queued_then_refused_and_every_request_is_counted() {
    let (child, addr) = start_webapp("10", "500ms").await;
    assert_eq!(http::get(addr, "/healthz", 5 * SECOND).await.unwrap(), 200);
    assert_eq!(http::get(addr, "/nope", 5 * SECOND).await.unwrap(), 404);

    let target = addr.to_string();
    let config = loadgen::Config::from_lookup(|var| match var {
        "LOAD_PATTERN" => Some("0s:30".into()),
        "LOAD_DURATION" => Some("3s".into()),
        "LOAD_TARGETS" => Some(target.clone()),
        "LOAD_TIMEOUT" => Some("5s".into()),
        _ => None,
    })
    .unwrap();
    let began = Instant::now();
    let mut seconds = Vec::new();
    let summary = loadgen::run(&config, |second| seconds.push(second.clone())).await;
    let elapsed = began.elapsed();

    assert!(summary.sent > 0 && summary.failed == 0, "{summary}");
    assert_eq!(summary.sent, summary.ok + summary.rejected + summary.failed);
    assert_eq!(seconds.iter().map(|s| s.sent).sum::<u64>(), summary.sent);
    assert!(seconds.iter().all(|s| s.replicas == 1));

    let m = scrape(addr).await;
    assert_eq!(m["webapp_requests_total{code=\"200\"}"], summary.ok as f64);
    assert_eq!(
        m["webapp_requests_total{code=\"503\"}"],
        summary.rejected as f64
    );
    assert_eq!(m["webapp_capacity_rps"], 10.0);
    assert_eq!(m["webapp_in_flight"], 0.0);
    assert_eq!(
        m["webapp_request_duration_seconds_count"],
        summary.ok as f64
    );
    assert_eq!(
        m["webapp_request_duration_seconds_bucket{le=\"+Inf\"}"],
        summary.ok as f64
    );
    // One server with a 100 ms service time: no request is served faster, and no more than capacity
    // times the time elapsed (plus the one in service and the 500 ms of queue) are served at all.
    for le in BUCKETS.iter().filter(|&&le| le < 0.1) {
        assert_eq!(
            m[&format!("webapp_request_duration_seconds_bucket{{le=\"{le}\"}}")],
            0.0
        );
    }
    assert!(m["webapp_request_duration_seconds_sum"] >= 0.1 * summary.ok as f64 - 1e-6);
    assert!(
        summary.ok as f64 <= 10.0 * elapsed.as_secs_f64() + 6.0,
        "{summary} in {elapsed:?}"
    );

    assert!(terminate(child).await.success());
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_zero() {
    // A two-second service time keeps the request in flight while the signal arrives.
    let (child, addr) = start_webapp("0.5", "5s").await;
    let request = tokio::spawn(http::get(addr, "/", 20 * SECOND));
    let deadline = Instant::now() + 10 * SECOND;
    while scrape(addr).await["webapp_in_flight"] < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the webapp"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let status = terminate(child).await;
    assert!(status.success(), "{status}");
    assert_eq!(request.await.unwrap().unwrap(), 200);
    assert!(matches!(
        http::get(addr, "/healthz", 5 * SECOND).await,
        Err(http::Error::Connect(_))
    ));
}
