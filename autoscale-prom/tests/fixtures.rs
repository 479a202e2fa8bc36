//! Snapshots of how real Prometheus 2.42 answers are decoded and read under each option.
//!
//! The bodies in `tests/fixtures/` were captured with curl from the Prometheus that `scripts/services`
//! starts; `fixtures/README.md` lists the queries, and the few that are hand-written because 2.42 cannot be
//! made to produce them on a plain server.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use autoscale_prom::response::{Envelope, QueryData, evaluate, fmt_value, parse};
use autoscale_prom::{NonFinite, OnEmpty, QueryOptions, RangeReduce, RangeWindow, Reduce};
use serde::Serialize;

#[derive(Serialize)]
struct Snapshot {
    parsed: Result<Envelope, String>,
    /// How a check reads the answer, by its options.
    read: BTreeMap<&'static str, String>,
}

/// The options a check might read this answer with: instant ones for an instant answer, range ones for a
/// matrix, and one of the other sort to show the mismatch is refused.
fn option_sets(matrix: bool) -> Vec<(&'static str, QueryOptions)> {
    let window = RangeWindow::new(Duration::from_secs(5), Duration::from_secs(1)).unwrap();
    let instant = vec![
        ("instant, strict", QueryOptions::new()),
        (
            "instant, on_empty = zero",
            QueryOptions::new().on_empty(OnEmpty::Zero),
        ),
        (
            "instant, non_finite = accept",
            QueryOptions::new().non_finite(NonFinite::Accept),
        ),
        (
            "instant, reduce = sum",
            QueryOptions::new().reduce(Reduce::Sum),
        ),
        (
            "instant, reduce = max",
            QueryOptions::new().reduce(Reduce::Max),
        ),
    ];
    let range = vec![
        ("range avg, strict", QueryOptions::new().range(window)),
        (
            "range last, reduce = avg",
            QueryOptions::new()
                .range(window.reduce(RangeReduce::Last))
                .reduce(Reduce::Avg),
        ),
        (
            "range max, on_empty = zero",
            QueryOptions::new()
                .range(window.reduce(RangeReduce::Max))
                .on_empty(OnEmpty::Zero),
        ),
        (
            "range min",
            QueryOptions::new().range(window.reduce(RangeReduce::Min)),
        ),
    ];
    let (mut mine, mut other) = if matrix {
        (range, instant)
    } else {
        (instant, range)
    };
    mine.push(other.swap_remove(0));
    mine
}

fn snapshot(file: &str) -> Snapshot {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parsed = parse(&body).map_err(|e| e.to_string());
    let mut read = BTreeMap::new();
    if let Ok(Envelope::Success(answer)) = &parsed {
        let matrix = matches!(answer.data, QueryData::Matrix(_));
        for (name, options) in option_sets(matrix) {
            let shown = match evaluate(&answer.data, &options, OnEmpty::Error) {
                Ok(v) => format!("value {}", fmt_value(v)),
                Err(e) => format!("error: {e}"),
            };
            read.insert(name, shown);
        }
    }
    Snapshot { parsed, read }
}

macro_rules! fixture_tests {
    ($($name:ident => $file:literal),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                insta::assert_yaml_snapshot!(stringify!($name), snapshot($file));
            }
        )+
    };
}

fixture_tests! {
    vector_one => "vector_one.json",
    vector_unlabelled => "vector_unlabelled.json",
    scalar => "scalar.json",
    scalar_nan => "scalar_nan.json",
    empty => "empty.json",
    nan => "nan.json",
    pos_inf => "pos_inf.json",
    neg_inf => "neg_inf.json",
    multiple => "multiple.json",
    matrix_instant => "matrix_instant.json",
    string => "string.json",
    range_one => "range_one.json",
    range_multiple => "range_multiple.json",
    range_empty => "range_empty.json",
    error_syntax => "error_syntax.json",
    error_bad_time => "error_bad_time.json",
    error_execution => "error_execution.json",
    error_timeout => "error_timeout.json",
    error_range_points => "error_range_points.json",
    error_not_found => "error_not_found.txt",
    warnings => "warnings.json",
    error_with_warnings => "error_with_warnings.json",
    histogram => "histogram.json",
}
