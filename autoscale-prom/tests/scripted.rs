//! The client's HTTP behaviour against an in-process scripted server on 127.0.0.1: requests on the wire,
//! faults, retries, limits, credentials, TLS, readiness and the round cache.

mod support;

use std::sync::Arc;
use std::time::Duration;

use autoscale_core::{FailureKind, MetricSource, Timestamp};
use autoscale_prom::{
    Error, MAX_RANGE_POINTS, NonFinite, OnEmpty, POST_THRESHOLD, PrometheusClient,
    PrometheusConfig, PrometheusSource, QueryOptions, RangeReduce, RangeWindow, Reduce,
};
use support::{Logs, Pki, Reply, Server};

const AT: Timestamp = Timestamp::from_millis(1_700_000_000_250);

fn config(server: &Server) -> PrometheusConfig {
    PrometheusConfig::new(&server.url)
        .unwrap()
        .timeout(Duration::from_secs(3))
}

fn client(config: PrometheusConfig) -> PrometheusClient {
    PrometheusClient::new(config).unwrap()
}

async fn query(server: &Server, options: QueryOptions) -> Result<f64, Error> {
    client(config(server)).query("up", AT, &options).await
}

/// An error's message with the server's random port replaced, for snapshots.
fn message(server: &Server, e: &impl std::fmt::Display) -> String {
    e.to_string()
        .replace(&server.addr.port().to_string(), "PORT")
}

// ---- requests on the wire -----------------------------------------------------------------------------------

#[tokio::test]
async fn an_instant_query_is_a_get_with_the_evaluation_time_and_timeout() {
    let server = Server::start(vec![Reply::value("0.5")]).await;
    assert_eq!(query(&server, QueryOptions::new()).await.unwrap(), 0.5);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", "/api/v1/query")
    );
    assert_eq!(
        req.params(),
        [
            ("query".to_owned(), "up".to_owned()),
            ("time".to_owned(), "1700000000.250".to_owned()),
            ("timeout".to_owned(), "3000ms".to_owned()),
        ]
    );
    assert_eq!(req.header("accept").as_deref(), Some("application/json"));
    assert!(req.header("user-agent").unwrap().starts_with("autoscale/"));
    assert_eq!(req.header("authorization"), None);
}

#[tokio::test]
async fn a_long_query_is_a_form_post() {
    let server = Server::start(vec![Reply::value("1")]).await;
    let long = format!("vector(1){}", " + 0".repeat(POST_THRESHOLD / 4));
    let value = client(config(&server))
        .query(&long, AT, &QueryOptions::new())
        .await
        .unwrap();
    assert_eq!(value, 1.0);
    let req = &server.seen()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.query, None);
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(req.param("query").as_deref(), Some(long.as_str()));
    assert_eq!(req.param("time").as_deref(), Some("1700000000.250"));
}

#[tokio::test]
async fn a_range_query_asks_an_aligned_window_and_reduces_it() {
    let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{"pod":"a"},"values":[[1,"1"],[2,"5"],[3,"3"]]},
        {"metric":{"pod":"b"},"values":[[1,"2"],[2,"2"],[3,"2"]]}]}}"#;
    let server = Server::start(vec![Reply::Json(200, matrix.to_owned())]).await;
    let client = Arc::new(client(config(&server).round_cache_ttl(Duration::ZERO)));
    let window = RangeWindow::new(Duration::from_secs(100), Duration::from_secs(15)).unwrap();
    let at = |i| Timestamp::from_millis(AT.as_millis() + i);
    let read = |i, reduce, combine| {
        let options = QueryOptions::new()
            .range(window.reduce(reduce))
            .reduce(combine);
        let client = Arc::clone(&client);
        async move { client.query("x", at(i), &options).await.unwrap() }
    };
    assert_eq!(read(0, RangeReduce::Avg, Reduce::Sum).await, 3.0 + 2.0);
    assert_eq!(read(1, RangeReduce::Max, Reduce::Max).await, 5.0);
    assert_eq!(read(2, RangeReduce::Min, Reduce::Sum).await, 1.0 + 2.0);
    assert_eq!(read(3, RangeReduce::Last, Reduce::Avg).await, 2.5);

    let req = &server.seen()[0];
    assert_eq!(req.path, "/api/v1/query_range");
    // 100 s is not a whole number of 15 s steps: the window starts 90 s back so the last point is `at`.
    assert_eq!(req.param("start").as_deref(), Some("1699999910.250"));
    assert_eq!(req.param("end").as_deref(), Some("1700000000.250"));
    assert_eq!(req.param("step").as_deref(), Some("15.000"));
    assert_eq!(req.param("time"), None);

    let err = client
        .query("x", at(4), &QueryOptions::new().range(window))
        .await
        .unwrap_err();
    assert_eq!(
        message(&server, &err),
        "query `x` at 1700000000.254s over 100s step 15s against \
         http://127.0.0.1:PORT/api/v1/query_range: the result has 2 series where one was expected (set \
         reduce = \"sum\", \"max\", \"min\" or \"avg\" to combine them): {pod=\"a\"}, {pod=\"b\"}"
    );
}

#[tokio::test]
async fn custom_headers_go_on_the_wire_and_never_into_debug_output() {
    let server = Server::start(vec![Reply::value("1")]).await;
    let config = config(&server)
        .header("X-Scope-OrgID", "team-a")
        .unwrap()
        .header("X-Api-Key", "k3y-s3cret")
        .unwrap();
    assert!(!format!("{config:?}").contains("k3y-s3cret"));
    let client = client(config);
    assert!(!format!("{client:?}").contains("k3y-s3cret"));
    client.query("up", AT, &QueryOptions::new()).await.unwrap();
    let req = &server.seen()[0];
    assert_eq!(req.header("x-scope-orgid").as_deref(), Some("team-a"));
    assert_eq!(req.header("x-api-key").as_deref(), Some("k3y-s3cret"));
}

// ---- status codes and retries -------------------------------------------------------------------------------

#[tokio::test]
async fn a_500_is_unavailable_and_not_retried() {
    let server = Server::start(vec![Reply::text(500, "internal error"), Reply::value("1")]).await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Unavailable);
    assert_eq!(server.queries().len(), 1);
    assert_eq!(
        message(&server, &err),
        "query `up` at 1700000000.250s against http://127.0.0.1:PORT/api/v1/query: HTTP 500: internal error"
    );
}

#[tokio::test]
async fn a_503_then_success_is_retried_within_the_timeout() {
    for status in [502, 503, 504] {
        let server = Server::start(vec![
            Reply::text(status, "upstream restarting"),
            Reply::value("7"),
        ])
        .await;
        assert_eq!(query(&server, QueryOptions::new()).await.unwrap(), 7.0);
        assert_eq!(server.queries().len(), 2, "HTTP {status} is retried once");
    }
}

#[tokio::test]
async fn a_persistent_503_fails_after_a_bounded_number_of_attempts() {
    let server = Server::start(vec![Reply::api_error(
        503,
        "unavailable",
        "too many queries",
    )])
    .await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Unavailable);
    // At most 4 attempts, however fast they fail (a bound, not a timing).
    let attempts = server.queries().len();
    assert!((1..=4).contains(&attempts), "{attempts} attempts");
    assert!(
        err.to_string()
            .ends_with("Prometheus answered HTTP 503 unavailable: too many queries")
    );
}

#[tokio::test]
async fn a_400_bad_data_is_an_invalid_query_with_prometheus_s_message() {
    let server = Server::start(vec![Reply::api_error(
        400,
        "bad_data",
        "invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis",
    )])
    .await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::InvalidQuery);
    assert_eq!(server.queries().len(), 1);
    assert!(
        err.to_string()
            .contains("HTTP 400 bad_data: invalid parameter \"query\": 1:5: parse error")
    );
    let core: autoscale_core::Error = err.into();
    assert_eq!(core.kind(), FailureKind::InvalidQuery);
    assert!(!core.is_transient());
}

#[tokio::test]
async fn a_422_execution_error_is_an_invalid_query() {
    let server = Server::start(vec![Reply::api_error(
        422,
        "execution",
        "many-to-many matching not allowed",
    )])
    .await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::InvalidQuery);
}

#[tokio::test]
async fn auth_failures_are_rejected_and_echoed_secrets_are_scrubbed() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken-value\n").unwrap();
    // A misbehaving proxy that echoes the Authorization header into its error page.
    let server = Server::start(vec![Reply::text(
        401,
        "denied for Authorization: Bearer t0ken-value",
    )])
    .await;
    let err = client(config(&server).bearer_token_file(&token))
        .query("up", AT, &QueryOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Rejected);
    let text = format!("{err} {err:?}");
    assert!(!text.contains("t0ken-value"), "{text}");
    assert!(text.contains("Bearer [REDACTED]"), "{text}");
}

#[tokio::test]
async fn redirects_are_refused_and_name_their_target_without_credentials() {
    let server = Server::start(vec![Reply::Redirect(
        302,
        "https://user:pw@other.example/api/v1/query?query=up".to_owned(),
    )])
    .await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Other);
    let text = err.to_string();
    assert!(
        text.contains("HTTP 302: redirected to https://other.example/api/v1/query"),
        "{text}"
    );
    assert!(!text.contains("pw"), "{text}");
}

// ---- transport faults ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_slow_answer_past_the_timeout_is_a_timeout() {
    let server = Server::start(vec![Reply::Slow(
        Duration::from_secs(30),
        Box::new(Reply::value("1")),
    )])
    .await;
    let client = client(config(&server).timeout(Duration::from_millis(300)));
    let err = client
        .query("up", AT, &QueryOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Timeout);
    assert!(err.to_string().ends_with("no answer within 300ms"), "{err}");
    let core: autoscale_core::Error = err.into();
    assert!(matches!(
        core,
        autoscale_core::Error::Timeout { after, .. } if after == Duration::from_millis(300)
    ));
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let server = Server::start(vec![Reply::Drop, Reply::value("3")]).await;
    assert_eq!(query(&server, QueryOptions::new()).await.unwrap(), 3.0);
    assert_eq!(server.queries().len(), 2);
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    // Bind and release a port so that nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = client(
        PrometheusConfig::new(&format!("http://127.0.0.1:{port}"))
            .unwrap()
            .timeout(Duration::from_secs(1)),
    );
    let err = client
        .query("up", AT, &QueryOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Unavailable, "{err}");
    assert!(err.to_string().contains("cannot reach Prometheus"), "{err}");
    // A log line names the root cause, not only the request that could not be sent.
    let brief = autoscale_core::brief_error(&autoscale_core::Error::from(err.clone()));
    assert!(
        brief.starts_with("prometheus is unavailable: ")
            && brief.to_lowercase().contains("connection refused")
            && !brief.contains("`up`"),
        "{brief}"
    );
    // So does waiting for it to become ready.
    let err = client
        .wait_ready(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .to_lowercase()
            .contains("error sending request: connection refused"),
        "{err}"
    );
}

#[tokio::test]
async fn truncated_json_is_a_bad_result() {
    let server = Server::start(vec![Reply::Json(
        200,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"val"#
            .to_owned(),
    )])
    .await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::BadResult);
    assert!(
        err.to_string()
            .contains("the answer is not a Prometheus API response: invalid JSON: EOF"),
        "{err}"
    );
}

#[tokio::test]
async fn a_body_cut_off_mid_transfer_is_retried_then_unavailable() {
    let server = Server::start(vec![Reply::Truncated {
        declared: 500,
        body: br#"{"status":"success","data":"#.to_vec(),
    }])
    .await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Unavailable, "{err}");
    assert!(
        err.to_string()
            .contains("the connection failed while reading the answer"),
        "{err}"
    );
    assert!(server.queries().len() >= 2);
}

#[tokio::test]
async fn a_wrong_content_type_is_a_bad_result() {
    let server = Server::start(vec![Reply::Raw {
        status: 200,
        content_type: Some("text/html; charset=utf-8"),
        body: b"<html>Sign in</html>".to_vec(),
    }])
    .await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::BadResult);
    assert!(
        err.to_string()
            .ends_with("expected Content-Type application/json, got \"text/html\""),
        "{err}"
    );
    let server = Server::start(vec![Reply::Raw {
        status: 200,
        content_type: None,
        body: b"{}".to_vec(),
    }])
    .await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert!(err.to_string().ends_with("got none"), "{err}");
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_or_without_a_content_length() {
    let big = format!(
        r#"{{"status":"success","data":{{"resultType":"string","result":[0,"{}"]}}}}"#,
        "x".repeat(2000)
    );
    let server = Server::start(vec![Reply::Json(200, big)]).await;
    let err = client(config(&server).max_response_bytes(1024))
        .query("up", AT, &QueryOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::BadResult);
    assert!(
        err.to_string()
            .ends_with("exceeds the 1024-byte limit (max_response_bytes)")
    );

    // 9 MiB streamed without a length against the default 8 MiB cap.
    let server = Server::start(vec![Reply::Stream {
        chunks: 144,
        chunk_size: 64 * 1024,
    }])
    .await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                limit: 8_388_608,
                ..
            }
        ),
        "{err}"
    );
}

// ---- results ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn results_are_read_strictly_and_options_relax_them() {
    let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    let server = Server::start(vec![Reply::Json(200, empty.to_owned())]).await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Empty);
    let zero = QueryOptions::new().on_empty(OnEmpty::Zero);
    assert_eq!(query(&server, zero).await.unwrap(), 0.0);
    // The client's on_empty applies to checks that do not set their own.
    let c = client(config(&server).on_empty(OnEmpty::Zero));
    assert_eq!(c.query("up", AT, &QueryOptions::new()).await.unwrap(), 0.0);
    let strict = QueryOptions::new().on_empty(OnEmpty::Error);
    let at = Timestamp::from_secs(1);
    assert_eq!(
        c.query("up", at, &strict).await.unwrap_err().kind(),
        FailureKind::Empty
    );

    let server = Server::start(vec![Reply::value("+Inf")]).await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::NonFinite);
    let accept = QueryOptions::new().non_finite(NonFinite::Accept);
    assert_eq!(query(&server, accept).await.unwrap(), f64::INFINITY);

    let server = Server::start(vec![Reply::value("NaN")]).await;
    let err = query(&server, accept).await.unwrap_err();
    assert_eq!(
        err.kind(),
        FailureKind::NonFinite,
        "NaN is refused even when infinities are accepted"
    );
}

#[tokio::test]
async fn warnings_are_logged_and_explain_failures() {
    let logs = Logs::capture();
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["remote store down: partial result"]}"#;
    let server = Server::start(vec![Reply::Json(200, body.to_owned())]).await;
    let err = query(&server, QueryOptions::new()).await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with("(Prometheus warnings: remote store down: partial result)"),
        "{err}"
    );
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("Prometheus answered with warnings"),
        "{text}"
    );
    assert!(text.contains("remote store down"), "{text}");
}

#[tokio::test]
async fn the_source_maps_errors_to_core_kinds_through_dyn_metric_source() {
    let server = Server::start(vec![
        Reply::value("0.75"),
        Reply::api_error(400, "bad_data", "parse error"),
    ])
    .await;
    let client = Arc::new(client(config(&server)));
    let source: Box<dyn MetricSource> =
        Box::new(PrometheusSource::new(client, QueryOptions::new()));
    assert_eq!(source.fetch("up", AT).await.unwrap(), 0.75);
    let err = source
        .fetch("up", Timestamp::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::InvalidQuery);
    assert_eq!(
        message(&server, &err),
        "prometheus rejected the query as invalid: query `up` at 1.000s against \
         http://127.0.0.1:PORT/api/v1/query: Prometheus answered HTTP 400 bad_data: parse error"
    );
}

#[tokio::test]
async fn a_backfill_range_is_one_query_range_combined_per_timestamp() {
    // Pod b has no point at 120 s; pod a is NaN at 180 s and b +Inf at 240 s.
    let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{"pod":"a"},"values":[[60,"1"],[120,"2"],[180,"NaN"],[240,"4"]]},
        {"metric":{"pod":"b"},"values":[[60,"10"],[180,"30"],[240,"+Inf"]]}]}}"#;
    let server = Server::start(vec![
        Reply::Json(200, matrix.to_owned()),
        Reply::api_error(503, "unavailable", "shutting down"),
        Reply::Json(200, matrix.to_owned()),
    ])
    .await;
    let client = Arc::new(client(config(&server).round_cache_ttl(Duration::ZERO)));
    let source = |options| -> Box<dyn MetricSource> {
        Box::new(PrometheusSource::new(Arc::clone(&client), options))
    };
    let t = Timestamp::from_secs;
    let minute = Duration::from_secs(60);

    let summed = source(QueryOptions::new().reduce(Reduce::Sum))
        .fetch_range("demand", t(0), t(240), minute)
        .await
        .unwrap();
    assert_eq!(
        summed,
        [(t(60), 11.0), (t(120), 2.0), (t(180), 30.0)],
        "NaN points skipped, the +Inf sum refused by the strict non_finite"
    );
    let req = &server.seen()[0];
    assert_eq!(req.path, "/api/v1/query_range");
    assert_eq!(
        req.params(),
        [
            ("query".to_owned(), "demand".to_owned()),
            ("start".to_owned(), "0.000".to_owned()),
            ("end".to_owned(), "240.000".to_owned()),
            ("step".to_owned(), "60.000".to_owned()),
            ("timeout".to_owned(), "3000ms".to_owned()),
        ]
    );

    // Through a 503, retried as every query is, and accepting infinities. (Another range: the same one
    // would share the first answer.)
    let accepting = source(
        QueryOptions::new()
            .reduce(Reduce::Max)
            .non_finite(NonFinite::Accept),
    )
    .fetch_range("demand", t(0), t(300), minute)
    .await
    .unwrap();
    assert_eq!(accepting.last(), Some(&(t(240), f64::INFINITY)));
    assert_eq!(server.seen().len(), 3);

    let err = source(QueryOptions::new())
        .fetch_range("demand", t(0), t(360), minute)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::BadResult);
    assert_eq!(
        message(&server, &err),
        "prometheus returned an unusable result: query `demand` at 360.000s over 6m step 1m against \
         http://127.0.0.1:PORT/api/v1/query_range: the result has 2 series where one was expected (set \
         reduce = \"sum\", \"max\", \"min\" or \"avg\" to combine them): {pod=\"a\"}, {pod=\"b\"}"
    );
}

#[tokio::test]
async fn a_backfill_range_longer_than_the_point_cap_widens_its_step() {
    let server = Server::start(vec![Reply::Json(
        200,
        r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#.to_owned(),
    )])
    .await;
    let source = PrometheusSource::new(Arc::new(client(config(&server))), QueryOptions::new());
    let fortnight = 14 * 24 * 3600;
    let err = source
        .fetch_range(
            "demand",
            Timestamp::from_secs(0),
            Timestamp::from_secs(fortnight),
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Empty, "{err}");
    let req = &server.seen()[0];
    let step: f64 = req.param("step").unwrap().parse().unwrap();
    let start: f64 = req.param("start").unwrap().parse().unwrap();
    assert!(step > 60.0, "{step}");
    assert!((fortnight as f64 - start) / step + 1.0 <= MAX_RANGE_POINTS as f64);
}

// ---- the round cache ----------------------------------------------------------------------------------------

#[tokio::test]
async fn identical_queries_of_one_round_are_fetched_once() {
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"pod":"a"},"value":[1,"1"]},{"metric":{"pod":"b"},"value":[1,"3"]}]}}"#;
    let server = Server::start(vec![Reply::Slow(
        Duration::from_millis(50),
        Box::new(Reply::Json(200, body.to_owned())),
    )])
    .await;
    let client = Arc::new(client(config(&server)));
    let sum = PrometheusSource::new(Arc::clone(&client), QueryOptions::new().reduce(Reduce::Sum));
    let max = PrometheusSource::new(Arc::clone(&client), QueryOptions::new().reduce(Reduce::Max));
    let strict = PrometheusSource::new(Arc::clone(&client), QueryOptions::new());

    // Concurrent checks of one round share the in-flight request and read it their own way.
    let (a, b, c) = tokio::join!(
        sum.fetch("q", AT),
        max.fetch("q", AT),
        strict.fetch("q", AT)
    );
    assert_eq!((a.unwrap(), b.unwrap()), (4.0, 3.0));
    assert_eq!(c.unwrap_err().kind(), FailureKind::BadResult);
    assert_eq!(server.queries().len(), 1);
    // A later caller of the same round still shares it.
    assert_eq!(sum.fetch("q", AT).await.unwrap(), 4.0);
    assert_eq!(server.queries().len(), 1);

    // Another evaluation time or another query is another request.
    let next = Timestamp::from_millis(AT.as_millis() + 10_000);
    sum.fetch("q", next).await.unwrap();
    sum.fetch("other", AT).await.unwrap();
    assert_eq!(server.queries().len(), 3);
}

#[tokio::test]
async fn a_failure_is_shared_by_its_round_too() {
    let server = Server::start(vec![
        Reply::api_error(400, "bad_data", "parse error"),
        Reply::value("1"),
    ])
    .await;
    let client = client(config(&server));
    let options = QueryOptions::new();
    assert!(client.query("q", AT, &options).await.is_err());
    assert!(client.query("q", AT, &options).await.is_err());
    assert_eq!(server.queries().len(), 1);
    assert_eq!(
        client
            .query("q", Timestamp::from_secs(1), &options)
            .await
            .unwrap(),
        1.0
    );
}

// ---- credentials --------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_bearer_token_is_sent_and_re_read_when_its_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let server = Server::start(vec![Reply::value("1")]).await;
    let client = client(config(&server).bearer_token_file(&token));
    assert!(!format!("{client:?}").contains("first-token"));
    client
        .query("up", Timestamp::from_secs(1), &QueryOptions::new())
        .await
        .unwrap();

    // Rotate the way Kubernetes does: write a new file and rename it over the old one.
    let next = dir.path().join("token.next");
    std::fs::write(&next, "second-token\n").unwrap();
    std::fs::rename(&next, &token).unwrap();
    client
        .query("up", Timestamp::from_secs(2), &QueryOptions::new())
        .await
        .unwrap();

    let auth: Vec<_> = server
        .queries()
        .iter()
        .map(|s| s.header("authorization").unwrap())
        .collect();
    assert_eq!(auth, ["Bearer first-token", "Bearer second-token"]);
}

#[tokio::test]
async fn a_missing_token_file_fails_when_the_client_is_built() {
    let err = PrometheusClient::new(
        PrometheusConfig::new("http://127.0.0.1:9")
            .unwrap()
            .bearer_token_file("/nonexistent/token"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot use the bearer token file /nonexistent/token: No such file or directory (os error 2)"
    );
}

#[tokio::test]
async fn basic_auth_is_sent_from_the_password_file_or_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("pw");
    std::fs::write(&password, "pa55word\n").unwrap();
    let server = Server::start(vec![Reply::value("1")]).await;
    let c = client(config(&server).basic_auth("scaler", &password));
    c.query("up", AT, &QueryOptions::new()).await.unwrap();
    // base64("scaler:pa55word")
    assert_eq!(
        server.seen()[0].header("authorization").as_deref(),
        Some("Basic c2NhbGVyOnBhNTV3b3Jk")
    );
    assert!(!format!("{c:?}").contains("pa55word"));

    let url = server.url.replace("http://", "http://scaler:pa55word@");
    let config = PrometheusConfig::new(&url).unwrap();
    assert!(!format!("{config:?}").contains("pa55word"));
    let c = client(config.timeout(Duration::from_secs(3)));
    c.query("up", AT, &QueryOptions::new()).await.unwrap();
    assert_eq!(
        server.seen()[1].header("authorization").as_deref(),
        Some("Basic c2NhbGVyOnBhNTV3b3Jk")
    );
    assert_eq!(server.seen()[1].path, "/api/v1/query");
}

// ---- TLS ----------------------------------------------------------------------------------------------------

#[tokio::test]
async fn tls_with_a_private_ca_and_mutual_tls() {
    let pki = Pki::new();
    let server = Server::start_tls(vec![Reply::value("1")], pki.server_config(false)).await;

    // Unknown CA: the handshake fails, which is "unreachable", never a value.
    let err = client(config(&server).timeout(Duration::from_secs(1)))
        .query("up", AT, &QueryOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Unavailable, "{err}");

    let trusted = client(config(&server).ca_file(&pki.ca_file));
    assert_eq!(
        trusted.query("up", AT, &QueryOptions::new()).await.unwrap(),
        1.0
    );

    // Mutual TLS: refused without a client certificate, accepted with one.
    let server = Server::start_tls(vec![Reply::value("2")], pki.server_config(true)).await;
    let err = client(
        config(&server)
            .ca_file(&pki.ca_file)
            .timeout(Duration::from_secs(1)),
    )
    .query("up", AT, &QueryOptions::new())
    .await
    .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Unavailable, "{err}");
    let mtls = client(
        config(&server)
            .ca_file(&pki.ca_file)
            .client_cert_file(&pki.client_cert_file)
            .client_key_file(&pki.client_key_file),
    );
    assert_eq!(
        mtls.query("up", AT, &QueryOptions::new()).await.unwrap(),
        2.0
    );
    assert!(server.queries().iter().all(|s| s.client_cert));
}

#[tokio::test]
async fn insecure_skip_verify_works_and_warns() {
    let logs = Logs::capture();
    let pki = Pki::new();
    let server = Server::start_tls(vec![Reply::value("1")], pki.server_config(false)).await;
    let client = client(config(&server).insecure_skip_verify(true));
    assert_eq!(
        client.query("up", AT, &QueryOptions::new()).await.unwrap(),
        1.0
    );
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("insecure_skip_verify is set"),
        "{text}"
    );
}

#[tokio::test]
async fn broken_certificate_files_fail_when_the_client_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let err = PrometheusClient::new(PrometheusConfig::new("https://p").unwrap().ca_file(&junk))
        .unwrap_err();
    assert!(matches!(err, Error::File { what: "CA", .. }), "{err}");
    let pki = Pki::new();
    let err = PrometheusClient::new(
        PrometheusConfig::new("https://p")
            .unwrap()
            .client_cert_file(&pki.client_cert_file)
            .client_key_file(&junk),
    )
    .unwrap_err();
    assert!(matches!(err, Error::File { .. }), "{err}");
}

// ---- readiness ----------------------------------------------------------------------------------------------

#[tokio::test]
async fn wait_ready_retries_until_ready_and_logs_it() {
    let logs = Logs::capture();
    let server = Server::start(vec![
        Reply::text(503, "Service Unavailable"),
        Reply::Drop,
        Reply::text(200, "Prometheus Server is Ready."),
    ])
    .await;
    client(config(&server))
        .wait_ready(Duration::from_secs(30))
        .await
        .unwrap();
    let paths: Vec<_> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/-/ready", "/-/ready", "/-/ready"]);
    let text = logs.text();
    assert_eq!(text.matches("Prometheus is ready").count(), 1, "{text}");
    assert!(text.contains(" INFO "), "{text}");
}

#[tokio::test]
async fn wait_ready_falls_back_to_the_query_api_without_a_ready_endpoint() {
    let server = Server::start(vec![
        Reply::text(404, "404 page not found"),
        Reply::value("1"),
    ])
    .await;
    client(config(&server))
        .wait_ready(Duration::from_secs(30))
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].path, "/-/ready");
    assert_eq!(seen[1].path, "/api/v1/query");
}

#[tokio::test]
async fn wait_ready_stops_at_refused_credentials() {
    let server = Server::start(vec![Reply::text(401, "Unauthorized")]).await;
    let err = client(config(&server))
        .wait_ready(Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Rejected);
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn wait_ready_gives_up_at_its_deadline() {
    let server = Server::start(vec![Reply::text(503, "Service Unavailable")]).await;
    let err = client(config(&server))
        .wait_ready(Duration::from_millis(700))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Unavailable);
    let text = message(&server, &err);
    assert!(
        text.starts_with("Prometheus at http://127.0.0.1:PORT/ was not ready after"),
        "{text}"
    );
    assert!(text.ends_with("HTTP 503 Service Unavailable"), "{text}");
    // The shortest jittered delays (125 + 250 + 500 ms) already exceed 700 ms: at most 4 probes, on any
    // machine.
    let probes = server.seen().len();
    assert!((1..=4).contains(&probes), "{probes} probes");
}
