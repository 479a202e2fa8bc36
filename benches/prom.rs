//! The Prometheus client's costs.
//!
//! - `prom/parse/N`: decoding an instant-vector answer of N series (1, 100, 10,000), and decoding plus
//!   reading it with `reduce = "sum"`.
//! - `prom/query`: one instant query through `PrometheusClient` against the real Prometheus of
//!   `scripts/services` (AUTOSCALE_TEST_PROMETHEUS_URL), next to a bare reqwest GET of the same URL; then an
//!   interleaved run of both prints the client's overhead as a ratio (goal: under 10 %). Skipped with a
//!   message when the variable is unset.

use std::hint::black_box;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use autoscale_core::Timestamp;
use autoscale_prom::response::{Envelope, evaluate, parse};
use autoscale_prom::{OnEmpty, PrometheusClient, PrometheusConfig, QueryOptions, Reduce};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// An instant-vector body of `n` series shaped like a node exporter's, as Prometheus 2.42 writes it.
fn vector_body(n: usize) -> String {
    let samples: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"metric":{{"__name__":"http_requests_total","instance":"10.0.{}.{}:9100","job":"webapp","method":"GET","pod":"webapp-{i}"}},"value":[1795813947.250,"{}.25"]}}"#,
                i / 256,
                i % 256,
                i * 7
            )
        })
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        samples.join(",")
    )
}

fn parse_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("prom/parse");
    let sum = QueryOptions::new().reduce(Reduce::Sum);
    for n in [1usize, 100, 10_000] {
        let body = vector_body(n);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("decode", n), &body, |b, body| {
            b.iter(|| parse(black_box(body.as_bytes())).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("decode+sum", n), &body, |b, body| {
            b.iter(|| {
                let Envelope::Success(answer) = parse(black_box(body.as_bytes())).unwrap() else {
                    unreachable!()
                };
                evaluate(&answer.data, &sum, OnEmpty::Error).unwrap()
            });
        });
    }
    group.finish();
}

const QUERY: &str = "sum(up)";

struct Live {
    runtime: tokio::runtime::Runtime,
    client: PrometheusClient,
    bare: reqwest::Client,
    url: String,
    /// Each request gets its own evaluation time, so the client's round cache never answers.
    clock: AtomicI64,
}

impl Live {
    fn next_at(&self) -> Timestamp {
        Timestamp::from_millis(self.clock.fetch_add(1, Ordering::Relaxed))
    }

    fn client_query(&self) -> f64 {
        let at = self.next_at();
        self.runtime
            .block_on(self.client.query(QUERY, at, &QueryOptions::new()))
            .expect("the client's query")
    }

    /// The same request on the wire (query, time, timeout), with nothing done to the answer but reading it.
    fn bare_get(&self) -> usize {
        let at = self.next_at().as_millis();
        let url = format!(
            "{}/api/v1/query?query=sum%28up%29&time={}.{:03}&timeout=5000ms",
            self.url,
            at / 1000,
            at % 1000
        );
        self.runtime.block_on(async {
            let response = self.bare.get(&url).send().await.expect("bare GET");
            response.bytes().await.expect("bare body").len()
        })
    }
}

fn live() -> Option<Live> {
    let Some(url) = std::env::var("AUTOSCALE_TEST_PROMETHEUS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "prom/query: SKIPPED: AUTOSCALE_TEST_PROMETHEUS_URL is not set (run `scripts/services start` and \
             source its env file to measure the client against a real Prometheus)"
        );
        return None;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let config = PrometheusConfig::new(&url).expect("a valid URL");
    let client = {
        let _guard = runtime.enter();
        PrometheusClient::new(config).expect("a client")
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Some(Live {
        runtime,
        client,
        bare: reqwest::Client::new(),
        url: url.trim_end_matches('/').to_owned(),
        // Start a minute back so every evaluation time has data behind it.
        clock: AtomicI64::new(now.as_millis() as i64 - 60_000),
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn query_benches(c: &mut Criterion) {
    let Some(live) = live() else { return };
    // Warm both connection pools.
    live.client_query();
    live.bare_get();

    let mut group = c.benchmark_group("prom/query");
    group.bench_function("client", |b| b.iter(|| live.client_query()));
    group.bench_function("bare_reqwest_get", |b| b.iter(|| live.bare_get()));
    group.finish();

    // Criterion reports each on its own; the ratio needs both measured under the same conditions, so
    // alternate them and compare medians.
    // `cargo test --all-targets` runs benches once as a smoke test, without `--bench`: keep that quick.
    let measuring = std::env::args().any(|a| a == "--bench");
    let pairs = if measuring { 2000 } else { 5 };
    let (mut client, mut bare) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
    for _ in 0..pairs {
        let t = Instant::now();
        black_box(live.client_query());
        client.push(t.elapsed());
        let t = Instant::now();
        black_box(live.bare_get());
        bare.push(t.elapsed());
    }
    let (client, bare) = (median(client), median(bare));
    let overhead = (client.as_secs_f64() / bare.as_secs_f64() - 1.0) * 100.0;
    println!(
        "prom/query overhead: client median {:.1} µs, bare reqwest GET median {:.1} µs over {pairs} \
         interleaved pairs: the client adds {overhead:.1} % (goal < 10 %)",
        client.as_secs_f64() * 1e6,
        bare.as_secs_f64() * 1e6,
    );
}

criterion_group!(benches, parse_benches, query_benches);
criterion_main!(benches);
