//! Simulator throughput, in ticks per second: `simulate` with a `target` policy (0.6 per replica) and the default
//! behavior, and with the `predictive` policy and its dead-band, over a synthetic year of 10 s ticks (3.15
//! million; goal: at least 3.15 M ticks/s, a year in a second) and over the WC98 per-second trace when
//! `../shared/traces` is present. Also the time to read that trace.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::engine::Behavior;
use autoscale_core::policy::{PredictivePolicy, TargetForm, TargetPolicy};
use autoscale_core::sim::{self, Model, Trace};
use autoscale_core::{Check, Engine, EngineConfig, Timestamp};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const TICK: Duration = Duration::from_secs(10);
const YEAR_TICKS: i64 = 365 * 24 * 360;

fn engine() -> Engine {
    let policy = TargetPolicy::new(0.6, TargetForm::PerReplica).expect("valid target");
    Engine::new(
        EngineConfig::builder(1, 100)
            .check(Check::new("utilization", Arc::new(policy)))
            .build()
            .expect("valid config"),
    )
}

/// The predictive policy at its defaults (target 0.85, as examples/configs/predictive.toml), with the
/// dead-band of a predictive service.
fn predictive_engine() -> Engine {
    let policy = PredictivePolicy::new(0.85, TargetForm::PerReplica, TICK).expect("valid policy");
    Engine::new(
        EngineConfig::builder(1, 100)
            .check(Check::new("utilization", Arc::new(policy)))
            .behavior(Behavior::predictive())
            .build()
            .expect("valid config"),
    )
}

/// A daily cycle between 2 and 30 (3 to 50 replicas at the target) with +-15 % of deterministic noise, so the
/// engine moves most ticks instead of idling inside its tolerance.
fn synthetic(ticks: i64) -> Trace {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let points = (0..ticks)
        .map(|k| {
            // xorshift64: deterministic, no dependency.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed >> 11) as f64 / (1u64 << 53) as f64 * 0.3 - 0.15;
            let day = (k % 8640) as f64 / 8640.0;
            let load = 16.0 - 14.0 * (std::f64::consts::TAU * day).cos();
            (Timestamp::from_secs(k * 10), load * (1.0 + noise))
        })
        .collect();
    Trace::from_points(points).expect("increasing times")
}

fn traces_dir() -> PathBuf {
    std::env::var_os("AUTOSCALE_TRACES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces"))
}

fn run(engine: &Engine, interval: Duration, trace: &Trace, model: &Model) -> sim::Summary {
    let mut last = 0;
    let summary = sim::simulate(engine, interval, trace, model, |tick| {
        last = black_box(tick.desired);
    });
    black_box(last);
    summary
}

fn simulator(c: &mut Criterion) {
    let engine = engine();
    let model = Model::default();
    // `cargo test --all-targets` runs benches once as a smoke test, without `--bench`, and unoptimized: a day
    // shows the bench works; the year is for measuring.
    let measuring = std::env::args().any(|a| a == "--bench");
    let year = synthetic(if measuring { YEAR_TICKS } else { 8640 });

    let summary = run(&engine, TICK, &year, &model);
    eprintln!(
        "synthetic trace: {} ticks, {} scale actions, max {} replicas",
        summary.ticks, summary.scale_actions, summary.max_replicas_used
    );
    let mut group = c.benchmark_group("simulate");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(summary.ticks));
    group.bench_function("target_default_behavior/synthetic_year_10s", |b| {
        b.iter(|| run(&engine, TICK, black_box(&year), &model));
    });
    let with_delay = Model {
        startup_delay: Duration::from_secs(30),
        ..Model::default()
    };
    group.bench_function(
        "target_default_behavior/synthetic_year_10s_startup_30s",
        |b| {
            b.iter(|| run(&engine, TICK, black_box(&year), &with_delay));
        },
    );
    let predictive = predictive_engine();
    group.bench_function("predictive/synthetic_year_10s_startup_30s", |b| {
        b.iter(|| run(&predictive, TICK, black_box(&year), &with_delay));
    });
    group.finish();

    let path = traces_dir().join("wc98_per_second.csv");
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!(
                "SKIPPED: the WC98 benches need {} ({e}); set AUTOSCALE_TRACES_DIR to the traces folder",
                path.display()
            );
            return;
        }
    };
    let mut group = c.benchmark_group("trace");
    group.sample_size(20);
    let wc98 = Trace::parse(&text[..], None).expect("a valid trace");
    group.throughput(Throughput::Elements(wc98.len() as u64));
    group.bench_function("parse/wc98_per_second", |b| {
        b.iter(|| Trace::parse(black_box(&text[..]), None).expect("a valid trace"));
    });
    group.finish();

    let mut group = c.benchmark_group("simulate");
    group.sample_size(20);
    // One replica serves 100 req/s: the WC98 peak of 3,242 req/s needs 55 at the target, below the maximum.
    let wc98_model = Model {
        capacity: 100.0,
        ..Model::default()
    };
    // Every row is a tick when measuring; the smoke run samples a minute.
    let interval = Duration::from_secs(if measuring { 1 } else { 60 });
    let summary = run(&engine, interval, &wc98, &wc98_model);
    eprintln!(
        "wc98 per second: {} ticks, {} scale actions, max {} replicas",
        summary.ticks, summary.scale_actions, summary.max_replicas_used
    );
    group.throughput(Throughput::Elements(summary.ticks));
    group.bench_function("target_default_behavior/wc98_per_second_1s", |b| {
        b.iter(|| run(&engine, interval, black_box(&wc98), &wc98_model));
    });
    group.finish();
}

criterion_group!(benches, simulator);
criterion_main!(benches);
