//! Against the real Prometheus 2.42 that `scripts/services start` runs (AUTOSCALE_TEST_PROMETHEUS_URL), which
//! scrapes AUTOSCALE_TEST_EXPORTER_ADDR every second. This file serves that address with a small exporter
//! whose series carry a per-run label, so runs never read each other's data.
//!
//! Without the service these tests skip loudly; in CI they fail.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use autoscale_core::testing::require_service;
use autoscale_core::{FailureKind, MetricSource, Timestamp};
use autoscale_prom::{
    Error, NonFinite, OnEmpty, PrometheusClient, PrometheusConfig, PrometheusSource, QueryOptions,
    RangeReduce, RangeWindow, Reduce,
};

/// The exporter: two gauge series and a counter that counts scrapes, labelled with this run's id.
struct Exporter {
    run: String,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

fn exporter(addr: &str) -> &'static Exporter {
    EXPORTER.get_or_init(|| {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| {
            panic!("cannot serve the test exporter on {addr} (is another test run using it?): {e}")
        });
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let run = format!("{}-{nanos}", std::process::id());
        let label = run.clone();
        let scrapes = Arc::new(AtomicU64::new(0));
        // A blocking thread for the life of the test process: Prometheus scrapes it once a second.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let n = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
                let body = format!(
                    "# TYPE autoscale_prom_test_value gauge\n\
                     autoscale_prom_test_value{{run=\"{label}\",shard=\"a\"}} 40\n\
                     autoscale_prom_test_value{{run=\"{label}\",shard=\"b\"}} 2\n\
                     # TYPE autoscale_prom_test_scrapes_total counter\n\
                     autoscale_prom_test_scrapes_total{{run=\"{label}\"}} {n}\n"
                );
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Exporter { run }
    })
}

/// The client and this run's exporter, or `None` (after a loud skip message) without the services.
fn services() -> Option<(Arc<PrometheusClient>, &'static Exporter)> {
    let url = require_service("AUTOSCALE_TEST_PROMETHEUS_URL", "a Prometheus server")?;
    let addr = require_service(
        "AUTOSCALE_TEST_EXPORTER_ADDR",
        "the address Prometheus scrapes for the test exporter",
    )?;
    let config = PrometheusConfig::new(&url)
        .unwrap()
        .timeout(Duration::from_secs(10));
    Some((
        Arc::new(PrometheusClient::new(config).unwrap()),
        exporter(&addr),
    ))
}

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(i64::try_from(ms).unwrap())
}

/// Poll until `query` has a value, bounded: Prometheus needs a scrape or two to see a new series.
async fn wait_for_value(client: &PrometheusClient, query: &str, options: &QueryOptions) -> f64 {
    let mut last = None;
    for _ in 0..120 {
        match client.query(query, now(), options).await {
            Ok(v) => return v,
            Err(e) if e.kind() == FailureKind::Empty => last = Some(e),
            Err(e) => panic!("{query}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{query} did not appear within 30 s: {last:?}")
}

#[tokio::test]
async fn waits_for_readiness_and_logs_it() {
    let logs = support::Logs::capture();
    let Some((client, _)) = services() else {
        return;
    };
    client.wait_ready(Duration::from_secs(30)).await.unwrap();
    assert!(
        logs.text().contains("Prometheus is ready"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn an_instant_query_reads_the_exporter_s_series() {
    let Some((client, exporter)) = services() else {
        return;
    };
    let run = &exporter.run;
    let one = format!(r#"autoscale_prom_test_value{{run="{run}",shard="a"}}"#);
    assert_eq!(
        wait_for_value(&client, &one, &QueryOptions::new()).await,
        40.0
    );

    // Both shards: an error naming the two label sets, unless a reduce combines them.
    let both = format!(r#"autoscale_prom_test_value{{run="{run}"}}"#);
    let err = client
        .query(&both, now(), &QueryOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::BadResult);
    let text = err.to_string();
    assert!(text.contains("the result has 2 series"), "{text}");
    assert!(
        text.contains(&format!(
            r#"autoscale_prom_test_value{{instance="127.0.0.1:19101", job="exporter", run="{run}", shard="a"}}"#
        )),
        "{text}"
    );
    let sum = QueryOptions::new().reduce(Reduce::Sum);
    assert_eq!(client.query(&both, now(), &sum).await.unwrap(), 42.0);
    let max = QueryOptions::new().reduce(Reduce::Max);
    assert_eq!(client.query(&both, now(), &max).await.unwrap(), 40.0);

    // Through the trait object the engine holds.
    let source: Arc<dyn MetricSource> = Arc::new(PrometheusSource::new(Arc::clone(&client), sum));
    assert_eq!(source.fetch(&both, now()).await.unwrap(), 42.0);
}

#[tokio::test]
async fn a_range_query_reduces_a_real_window() {
    let Some((client, exporter)) = services() else {
        return;
    };
    let counter = format!(
        r#"autoscale_prom_test_scrapes_total{{run="{}"}}"#,
        exporter.run
    );
    wait_for_value(&client, &counter, &QueryOptions::new()).await;
    // Let a few more scrapes land so the window holds several distinct points.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let at = now() - Duration::from_secs(1);
    let window = RangeWindow::new(Duration::from_secs(5), Duration::from_secs(1)).unwrap();
    let read = |reduce| {
        let client = Arc::clone(&client);
        let counter = counter.clone();
        async move {
            client
                .query(
                    &counter,
                    at,
                    &QueryOptions::new().range(window.reduce(reduce)),
                )
                .await
                .unwrap()
        }
    };
    let (min, max, avg, last) = (
        read(RangeReduce::Min).await,
        read(RangeReduce::Max).await,
        read(RangeReduce::Avg).await,
        read(RangeReduce::Last).await,
    );
    assert!(
        min < max,
        "a 5 s window of a counter scraped every second moves: {min} {max}"
    );
    assert!(min <= avg && avg <= max, "{min} {avg} {max}");
    assert_eq!(max, last, "a counter's last point is its largest");
    // The window ends exactly at `at`: its last point is the instant value at `at`.
    let instant = client
        .query(&counter, at, &QueryOptions::new())
        .await
        .unwrap();
    assert_eq!(instant, last);

    // An instant query's matrix (a range selector) is refused, not guessed at.
    let err = client
        .query(&format!("{counter}[5s]"), at, &QueryOptions::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("the result is a matrix where a vector or a scalar was expected"),
        "{err}"
    );
}

#[tokio::test]
async fn a_backfill_range_reads_real_samples_at_their_times() {
    let Some((client, exporter)) = services() else {
        return;
    };
    let run = &exporter.run;
    let counter = format!(r#"autoscale_prom_test_scrapes_total{{run="{run}"}}"#);
    wait_for_value(&client, &counter, &QueryOptions::new()).await;
    // Let several scrapes land, one a second.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let end = now() - Duration::from_secs(1);
    let start = end - Duration::from_secs(5);
    let step = Duration::from_secs(1);
    let source: Box<dyn MetricSource> = Box::new(PrometheusSource::new(
        Arc::clone(&client),
        QueryOptions::new(),
    ));
    let points = source
        .fetch_range(&counter, start, end, step)
        .await
        .unwrap();
    let times: Vec<Timestamp> = points.iter().map(|&(at, _)| at).collect();
    let expected: Vec<Timestamp> = (0..=5)
        .rev()
        .map(|s| end - Duration::from_secs(s))
        .collect();
    assert_eq!(
        times, expected,
        "one point a step, ending at the range's end"
    );
    // A counter scraped every second rises (two steps may read one scrape, when a scrape is late).
    assert!(
        points.windows(2).all(|w| w[0].1 <= w[1].1) && points[0].1 < points[5].1,
        "{points:?}"
    );
    // Each point is the value an instant query at its time reads.
    for &(at, value) in &points {
        let instant = client
            .query(&counter, at, &QueryOptions::new())
            .await
            .unwrap();
        assert_eq!(value, instant, "at {at}");
    }

    // Two series: an error naming them, or combined per timestamp by the check's reduce.
    let both = format!(r#"autoscale_prom_test_value{{run="{run}"}}"#);
    let err = source
        .fetch_range(&both, start, end, step)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::BadResult);
    assert!(err.to_string().contains(r#"shard="a""#), "{err}");
    assert!(err.to_string().contains(r#"shard="b""#), "{err}");
    let summed =
        PrometheusSource::new(Arc::clone(&client), QueryOptions::new().reduce(Reduce::Sum))
            .fetch_range(&both, start, end, step)
            .await
            .unwrap();
    assert_eq!(summed.len(), 6, "{summed:?}");
    assert!(summed.iter().all(|&(_, v)| v == 42.0), "40 + 2: {summed:?}");
}

#[tokio::test]
async fn a_missing_series_is_an_empty_result() {
    let Some((client, exporter)) = services() else {
        return;
    };
    let missing = format!(
        r#"autoscale_prom_test_missing_total{{run="{}"}}"#,
        exporter.run
    );
    let err = client
        .query(&missing, now(), &QueryOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Empty);
    assert!(err.to_string().contains("the result is empty"), "{err}");
    let zero = QueryOptions::new().on_empty(OnEmpty::Zero);
    assert_eq!(client.query(&missing, now(), &zero).await.unwrap(), 0.0);

    // The evaluation time is honoured: an hour ago, this run's series did not exist yet.
    let present = format!(
        r#"autoscale_prom_test_value{{run="{}",shard="a"}}"#,
        exporter.run
    );
    wait_for_value(&client, &present, &QueryOptions::new()).await;
    let err = client
        .query(
            &present,
            now() - Duration::from_secs(3600),
            &QueryOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Empty);
}

#[tokio::test]
async fn promql_errors_are_surfaced_with_prometheus_s_message() {
    let Some((client, _)) = services() else {
        return;
    };
    let err = client
        .query(
            "sum(rate(autoscale_prom_test_value[1m])",
            now(),
            &QueryOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::InvalidQuery);
    let Error::Api {
        status,
        error_type,
        message,
        ..
    } = &err
    else {
        panic!("expected Prometheus's own error, got {err:?}")
    };
    assert_eq!((*status, error_type.as_str()), (400, "bad_data"));
    assert!(
        message.contains("parse error: unclosed left parenthesis"),
        "{message}"
    );

    let err = client
        .query("up + on() up", now(), &QueryOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::InvalidQuery);
    assert!(err.to_string().contains("HTTP 422 execution"), "{err}");
    assert!(
        err.to_string()
            .contains("many-to-many matching not allowed"),
        "{err}"
    );
}

#[tokio::test]
async fn long_queries_scalars_and_non_finite_values() {
    let Some((client, _)) = services() else {
        return;
    };
    let long = format!(
        "vector(1){}",
        " + 0".repeat(autoscale_prom::POST_THRESHOLD / 4)
    );
    let options = QueryOptions::new();
    assert_eq!(client.query(&long, now(), &options).await.unwrap(), 1.0);
    assert_eq!(
        client
            .query("scalar(vector(0.25))", now(), &options)
            .await
            .unwrap(),
        0.25
    );

    let err = client
        .query("vector(+Inf)", now(), &options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::NonFinite);
    let accept = QueryOptions::new().non_finite(NonFinite::Accept);
    assert_eq!(
        client.query("vector(-Inf)", now(), &accept).await.unwrap(),
        f64::NEG_INFINITY
    );
    let err = client
        .query("vector(NaN)", now(), &accept)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::NonFinite);
    let core: autoscale_core::Error = err.into();
    assert_eq!(
        core.to_string(),
        "prometheus returned a non-finite value (NaN) for vector(NaN)"
    );
}
