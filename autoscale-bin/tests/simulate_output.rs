//! What `simulate` prints: a small trace computed by hand, the CSV row by row, the summary against the
//! contract's formulas, and properties over random traces that tie the CSV and the JSON together.

use autoscale_bin::config::Env;
use autoscale_bin::run_with;
use proptest::prelude::*;

/// A target of 0.5 per replica with no tolerance, no scale-down window, one tick every 30 s.
const CONFIG: &str = r#"
[[service]]
name = "webapp"
interval = "30s"
scaler = { kind = "compose" }
check = [{ name = "u", query = "u", policy = { kind = "target", target = 0.5, tolerance = 0.0 } }]

[service.behavior.scale_down]
stabilization_window = "0s"
"#;

fn simulate(dir: &std::path::Path, config: &str, trace: &str, extra: &[&str]) -> String {
    let config_path = dir.join("c.toml");
    let trace_path = dir.join("t.csv");
    std::fs::write(&config_path, config).unwrap();
    std::fs::write(&trace_path, trace).unwrap();
    let mut args = vec![
        "autoscale".to_owned(),
        "simulate".to_owned(),
        "--config".to_owned(),
        config_path.to_str().unwrap().to_owned(),
        "--trace".to_owned(),
        trace_path.to_str().unwrap().to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut out = Vec::new();
    run_with(&args, &Env::empty(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// By hand, with a startup delay of 30 s (a replica added at one tick is ready at the next):
///
/// | t  | load | ready before | metric     | recommended      | R | s | d |
/// |----|------|--------------|------------|------------------|---|---|---|
/// | 0  | 1    | 1            | 1/1 = 1    | ceil(2 * 1) = 2  | 2 | 1 | 1 |
/// | 30 | 3    | 2            | 3/2 = 1.5  | ceil(3 * 2) = 6  | 6 | 2 | 3 |
/// | 60 | 1.2  | 6            | 1.2/6 = .2 | ceil(.4 * 6) = 3 | 3 | 3 | 2 |
/// | 90 | 1.2  | 3            | .4         | ceil(.8 * 3) = 3 | 3 | 3 | 2 |
///
/// K = 4, dt = 30, T = 120:
/// theta_u = 100/4 * (1/3) = 8.33, theta_o = 100/4 * (1/2 + 1/2) = 25, tau_u = 25, tau_o = 50,
/// instability = 100/90 * 30 (at t=60 supply rises while demand falls) = 33.33,
/// jitter = ((1 + 1 + 0) - (2 + 1 + 0)) / 2 = -0.5, replica_seconds = (2 + 6 + 3 + 3) * 30 = 420,
/// scale_actions = 3, slo_violation_s = 30 (at t=30, 3 > 2), max_replicas_used = 6.
const TRACE: &str = "seconds,load\n0,1\n30,3\n60,1.2\n90,1.2\n";

#[test]
fn a_small_trace_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let csv = simulate(
        dir.path(),
        CONFIG,
        TRACE,
        &["--startup-delay", "30s", "--format", "csv"],
    );
    insta::assert_snapshot!(csv, @r#"
    t,load,metric,current,recommended,desired,ready,demand,reason
    0,1,1,1,2,2,1,1,scale_up: recommended 2
    30,3,1.5,2,6,6,2,3,scale_up: recommended 6
    60,1.2,0.19999999999999998,6,3,3,3,2,scale_down: recommended 3
    90,1.2,0.39999999999999997,3,3,3,3,2,within_tolerance: recommended 3
    "#);

    let json = simulate(
        dir.path(),
        CONFIG,
        TRACE,
        &["--startup-delay", "30s", "--format", "json"],
    );
    let s: serde_json::Value = serde_json::from_str(&json).unwrap();
    let close = |key: &str, want: f64| {
        let got = s[key].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "{key}: {got} != {want}");
    };
    assert_eq!(s["ticks"], 4);
    close("interval_s", 30.0);
    close("theta_u", 100.0 / 12.0);
    close("theta_o", 25.0);
    close("tau_u", 25.0);
    close("tau_o", 50.0);
    close("instability", 100.0 / 3.0);
    close("jitter_per_min", -0.5);
    close("replica_seconds", 420.0);
    assert_eq!(s["scale_actions"], 3);
    close("slo_violation_s", 30.0);
    assert_eq!(s["max_replicas_used"], 6);
}

#[test]
fn the_table_shows_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let table = simulate(dir.path(), CONFIG, TRACE, &["--startup-delay", "30s"]);
    let dir_text = dir.path().to_str().unwrap();
    insta::assert_snapshot!(table.replace(dir_text, "$DIR"), @r"
    webapp (target) on $DIR/t.csv (4 rows)
    4 ticks of 30s; capacity 1 per replica, startup delay 30s, initial min_replicas, metric utilization

                                                                   webapp
    policy                                                         target
    ticks              ticks simulated                                  4
    interval_s         seconds between ticks                           30
    theta_u            under-provisioning, % of demand               8.33
    theta_o            over-provisioning, % of demand               25.00
    tau_u              time under-provisioned, %                    25.00
    tau_o              time over-provisioned, %                     50.00
    instability        supply moving against demand, %              33.33
    jitter_per_min     supply moves beyond demand's, per minute    -0.500
    replica_seconds    replica-seconds paid                           420
    scale_actions      scaling actions                                  3
    slo_violation_s    seconds with load not served                    30
    max_replicas_used  most replicas requested                          6
    ");
}

/// Parse the CSV's rows into (desired, ready, demand, load).
fn rows(csv: &str) -> Vec<(u32, u32, u64, f64)> {
    csv.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.splitn(9, ',').collect();
            (
                f[5].parse().unwrap(),
                f[6].parse().unwrap(),
                f[7].parse().unwrap(),
                f[1].parse().unwrap(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Over random traces and models: the percentages stay in range, replica_seconds is the CSV's desired
    /// column times dt, desired stays in [min, max], and the counts agree with the rows.
    #[test]
    fn csv_and_summary_agree(
        loads in prop::collection::vec(0.0f64..40.0, 1..60),
        gaps in prop::collection::vec(1u32..90, 60),
        delay in 0u32..120,
        capacity in 0.5f64..5.0,
        min in 0u32..3,
        span in 1u32..12,
        threshold in any::<bool>(),
    ) {
        let max = min + span;
        let policy = if threshold {
            "{ kind = \"threshold\", scale_up_above = 0.6, scale_down_below = 0.3 }"
        } else {
            "{ kind = \"target\", target = 0.6 }"
        };
        let config = format!(
            "[[service]]\nname = \"w\"\nmin_replicas = {min}\nmax_replicas = {max}\ninterval = \"15s\"\n\
             scaler = {{ kind = \"compose\" }}\ncheck = [{{ name = \"u\", query = \"u\", policy = {policy} }}]\n"
        );
        let mut trace = String::from("seconds,load\n");
        let mut t = 0u32;
        for (load, gap) in loads.iter().zip(&gaps) {
            trace.push_str(&format!("{t},{load}\n"));
            t += gap;
        }
        let dir = tempfile::tempdir().unwrap();
        let delay = format!("{delay}s");
        let capacity = capacity.to_string();
        let extra = ["--startup-delay", delay.as_str(), "--capacity", capacity.as_str()];
        let csv = simulate(dir.path(), &config, &trace, &[&extra[..], &["--format", "csv"]].concat());
        let json = simulate(dir.path(), &config, &trace, &[&extra[..], &["--format", "json"]].concat());
        let s: serde_json::Value = serde_json::from_str(&json).unwrap();
        let rows = rows(&csv);

        prop_assert_eq!(s["ticks"].as_u64().unwrap(), rows.len() as u64);
        for key in ["theta_u", "tau_u", "tau_o", "instability"] {
            let v = s[key].as_f64().unwrap();
            prop_assert!((0.0..=100.0).contains(&v), "{} = {}", key, v);
        }
        prop_assert!(s["theta_o"].as_f64().unwrap() >= 0.0);
        let dt = s["interval_s"].as_f64().unwrap();
        let paid: f64 = rows.iter().map(|r| f64::from(r.0) * dt).sum();
        prop_assert!((paid - s["replica_seconds"].as_f64().unwrap()).abs() < 1e-6);
        for (i, r) in rows.iter().enumerate() {
            // From the first decision on, desired is within the bounds (min 0 may hold at 0 until activated).
            prop_assert!(r.0 <= max && (r.0 >= min), "row {}: desired {} not in [{}, {}]", i, r.0, min, max);
            prop_assert!(r.1 <= r.0, "row {}: ready {} above desired {}", i, r.1, r.0);
        }
        let max_used = rows.iter().map(|r| r.0).max().unwrap();
        prop_assert_eq!(s["max_replicas_used"].as_u64().unwrap(), u64::from(max_used));
        let capacity: f64 = capacity.parse().unwrap();
        let unserved = rows.iter().filter(|r| r.3 > f64::from(r.1) * capacity).count() as f64 * dt;
        prop_assert!((unserved - s["slo_violation_s"].as_f64().unwrap()).abs() < 1e-6);
    }
}
