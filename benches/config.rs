//! How long `autoscale check` takes for a large configuration: 30,000 services, each a compose service of its
//! own, loaded (parse, validate, the same-target and duplicate-name checks) and rendered back as `check`
//! prints it. Loading used to compare every pair of services, which took 41 s at this size.
//!
//! Run: `cargo bench -p autoscale-benches --bench config`

use std::hint::black_box;
use std::time::Duration;

use autoscale_bin::config::{Config, Env, LoadOptions};
use criterion::{Criterion, criterion_group, criterion_main};

const SERVICES: usize = 30_000;

/// A configuration of `n` services, each scaling its own compose service, with a check and a behavior table.
fn config_text(n: usize) -> String {
    let mut toml = String::from("[prometheus]\nurl = \"http://127.0.0.1:9090\"\n");
    for i in 0..n {
        toml.push_str(&format!(
            r#"
[[service]]
name = "svc{i}"
min_replicas = 1
max_replicas = 20
interval = "15s"
[service.scaler]
kind = "compose"
project = "shop"
service = "svc{i}"
[[service.check]]
name = "cpu"
query = 'avg(rate(container_cpu_usage_seconds_total{{service="svc{i}"}}[1m]))'
policy = {{ kind = "target", target = 0.6 }}
[service.behavior.scale_down]
stabilization_window = "5m"
"#
        ));
    }
    toml
}

fn check(c: &mut Criterion) {
    let text = config_text(SERVICES);
    let load = || {
        Config::from_toml("bench.toml", &text, &Env::empty(), LoadOptions::default())
            .expect("a valid configuration")
    };
    let mut group = c.benchmark_group("check");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.bench_function("load_30000_services", |b| b.iter(|| black_box(load())));
    group.bench_function("load_and_render_30000_services", |b| {
        b.iter(|| black_box(load().to_redacted_toml()));
    });
    group.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
