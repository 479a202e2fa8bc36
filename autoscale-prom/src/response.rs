//! Decoding Prometheus HTTP API bodies (`/api/v1/query` and `/api/v1/query_range`), and turning a decoded
//! result into the one number a check needs.
//!
//! Both steps are pure, so they are tested on bodies captured from a real Prometheus and fuzzed on arbitrary
//! bytes. Nothing here panics on any input.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use autoscale_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::options::{NonFinite, OnEmpty, QueryOptions};

/// A decoded API body: the data of a successful query, or Prometheus's own error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Envelope {
    /// `"status": "success"`.
    Success(QueryResponse),
    /// `"status": "error"`.
    Failure(ApiFailure),
}

/// The data and warnings of a successful query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryResponse {
    /// The result.
    pub data: QueryData,
    /// Prometheus's warnings (for example a partial answer from remote storage).
    pub warnings: Vec<String>,
}

/// Prometheus's description of a failed query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiFailure {
    /// `errorType`, such as `bad_data`, `execution`, `timeout`, `canceled`, `internal` or `unavailable`.
    pub error_type: String,
    /// `error`: Prometheus's message.
    pub error: String,
    /// Warnings sent with the error.
    pub warnings: Vec<String>,
}

/// A query's result, by `resultType`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum QueryData {
    /// An instant vector: one sample per series.
    Vector(Vec<Sample>),
    /// A scalar.
    Scalar(Point),
    /// A range vector: several points per series (every `query_range` answer).
    Matrix(Vec<Series>),
    /// A string literal.
    String(String),
}

impl QueryData {
    /// The `resultType` this data came as.
    pub fn result_type(&self) -> &'static str {
        match self {
            QueryData::Vector(_) => "vector",
            QueryData::Scalar(_) => "scalar",
            QueryData::Matrix(_) => "matrix",
            QueryData::String(_) => "string",
        }
    }
}

/// One value at one time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// The value; Prometheus's `NaN`, `+Inf` and `-Inf` are kept as such.
    pub value: f64,
}

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The series' labels.
    pub labels: Labels,
    /// Its float sample, or `None` when the series holds a native histogram, which no policy can read.
    pub point: Option<Point>,
}

/// One series of a matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// Its float points, oldest first.
    pub points: Vec<Point>,
    /// Whether the series also held native histogram points (which are not in `points`).
    pub histograms: bool,
}

/// A label set, printed the way PromQL writes a selector: `up{instance="a:9100", job="node"}`.
///
/// Held compactly, because an answer may carry a hundred thousand of them: one slice of (name, value)
/// pairs sorted by name, each name once (the last one given wins, as in a map).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels(Box<[(Box<str>, Box<str>)]>);

impl Labels {
    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_ref())
    }

    /// The labels, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// How many labels there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn from_pairs(mut pairs: Vec<(Box<str>, Box<str>)>) -> Self {
        Labels::sorted(&mut pairs)
    }

    /// The label set of `pairs`, which it leaves empty (keeping its capacity, for reuse).
    fn sorted(pairs: &mut Vec<(Box<str>, Box<str>)>) -> Self {
        // Prometheus sends them sorted, each once: then there is nothing to do.
        if !pairs.is_sorted_by(|a, b| a.0 < b.0) {
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs.dedup_by(|later, earlier| {
                let same = later.0 == earlier.0;
                if same {
                    std::mem::swap(&mut later.1, &mut earlier.1);
                }
                same
            });
        }
        // One allocation of exactly the right size.
        Labels(pairs.drain(..).collect())
    }
}

thread_local! {
    /// The pairs of the label set being decoded, reused from one series to the next.
    static SCRATCH: std::cell::Cell<Vec<(Box<str>, Box<str>)>> = const { std::cell::Cell::new(Vec::new()) };
}

impl<K: Into<Box<str>>, V: Into<Box<str>>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Labels::from_pairs(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        map.into_iter().collect()
    }
}

impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of label names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Labels, A::Error> {
                let mut pairs = SCRATCH.take();
                pairs.clear();
                while let Some(pair) = map.next_entry::<Box<str>, Box<str>>()? {
                    pairs.push(pair);
                }
                let labels = Labels::sorted(&mut pairs);
                SCRATCH.set(pairs);
                Ok(labels)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.get("__name__") {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for (k, v) in self.iter().filter(|(k, _)| *k != "__name__") {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// A body that is not a Prometheus API response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    reason: String,
}

impl ParseError {
    fn new(reason: impl Into<String>) -> Self {
        ParseError {
            reason: reason.into(),
        }
    }
}

/// Why a well-formed result cannot be read as one number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ResultError {
    /// No series matched.
    #[error("the result is empty: no series matched (set on_empty = \"zero\" if that means 0)")]
    Empty,
    /// Several series, and nothing says how to combine them.
    #[error(
        "the result has {count} series where one was expected (set reduce = \"sum\", \"max\", \"min\" or \
         \"avg\" to combine them): {}",
        list_label_sets(label_sets, *count)
    )]
    SeveralSeries {
        /// How many series there were.
        count: usize,
        /// The label sets of the first few, as PromQL selectors.
        label_sets: Vec<String>,
    },
    /// NaN, or an infinity the check does not accept.
    #[error("the value is {}, not a finite number", fmt_value(*value))]
    NonFinite {
        /// The value.
        value: f64,
    },
    /// A result type the check cannot use.
    #[error("the result is a {found} where {expected} was expected")]
    UnexpectedType {
        /// The `resultType` received.
        found: &'static str,
        /// What the check needed.
        expected: &'static str,
    },
    /// A series holds native histogram samples, which have no single float value.
    #[error("series {labels} holds native histogram samples, not float values")]
    Histogram {
        /// The series' labels.
        labels: String,
    },
}

/// A value the way Prometheus writes it, so `+Inf` reads as it does in the Prometheus UI.
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        v.to_string()
    }
}

/// How many label sets an error lists before summarising the rest.
const LISTED_SERIES: usize = 5;

fn list_label_sets(sets: &[String], count: usize) -> String {
    let mut out = sets.join(", ");
    if count > sets.len() {
        out.push_str(&format!(" and {} more", count - sets.len()));
    }
    out
}

// ---- wire format ------------------------------------------------------------------------------------------
//
// Unknown fields (`stats`, the `infos` of newer servers) are ignored, so a newer Prometheus stays readable;
// everything this crate relies on is checked.

#[derive(Deserialize)]
#[serde(expecting = "a Prometheus API response object")]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(default)]
    data: Option<RawData<'a>>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(
    tag = "resultType",
    content = "result",
    rename_all = "lowercase",
    expecting = "data: {\"resultType\": ..., \"result\": ...}"
)]
enum RawData<'a> {
    #[serde(borrow)]
    Vector(Vec<RawSample<'a>>),
    #[serde(borrow)]
    Scalar(RawPoint<'a>),
    #[serde(borrow)]
    Matrix(Vec<RawSeries<'a>>),
    String((f64, String)),
}

#[derive(Deserialize)]
#[serde(expecting = "a sample: {\"metric\": {...}, \"value\": [time, \"value\"]}")]
struct RawSample<'a> {
    #[serde(default)]
    metric: Labels,
    #[serde(default, borrow)]
    value: Option<RawPoint<'a>>,
    #[serde(default)]
    histogram: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(expecting = "a series: {\"metric\": {...}, \"values\": [[time, \"value\"], ...]}")]
struct RawSeries<'a> {
    #[serde(default)]
    metric: Labels,
    #[serde(default, borrow)]
    values: Vec<RawPoint<'a>>,
    #[serde(default)]
    histograms: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(expecting = "a point: [time, \"value\"]")]
struct RawPoint<'a>(f64, #[serde(borrow)] Cow<'a, str>);

impl RawPoint<'_> {
    fn decode(&self) -> Result<Point, ParseError> {
        Ok(Point {
            time: self.0,
            value: parse_value(&self.1)?,
        })
    }
}

/// A sample value as Prometheus writes it: Go's shortest float form, or `NaN`, `+Inf`, `-Inf`.
///
/// Rust's float parser also takes `inf`, `nan` and `infinity` in any case; Prometheus never sends those, so
/// they are refused rather than guessed at.
pub fn parse_value(s: &str) -> Result<f64, ParseError> {
    match s {
        "NaN" => return Ok(f64::NAN),
        "+Inf" | "Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let numeric = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
    match s.parse::<f64>() {
        Ok(v) if numeric => Ok(v),
        _ => Err(ParseError::new(format!(
            "sample value {:?} is not a number",
            truncate(s, 40)
        ))),
    }
}

fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

/// Decode an API body.
///
/// A body that is not JSON, not an API envelope, or has a value that is not a number is a [`ParseError`];
/// Prometheus's own errors are an [`Envelope::Failure`].
pub fn parse(body: &[u8]) -> Result<Envelope, ParseError> {
    let raw: RawEnvelope<'_> =
        serde_json::from_slice(body).map_err(|e| ParseError::new(format!("invalid JSON: {e}")))?;
    let warnings = raw.warnings.unwrap_or_default();
    match raw.status.as_ref() {
        "success" => {
            let data = raw
                .data
                .ok_or_else(|| ParseError::new("a \"success\" response without \"data\""))?;
            Ok(Envelope::Success(QueryResponse {
                data: decode_data(data)?,
                warnings,
            }))
        }
        "error" => Ok(Envelope::Failure(ApiFailure {
            error_type: raw.error_type.unwrap_or_default(),
            error: raw
                .error
                .unwrap_or_else(|| "(Prometheus gave no message)".to_owned()),
            warnings,
        })),
        other => Err(ParseError::new(format!(
            "unknown status {:?}",
            truncate(other, 40)
        ))),
    }
}

fn decode_data(data: RawData<'_>) -> Result<QueryData, ParseError> {
    Ok(match data {
        RawData::Vector(samples) => QueryData::Vector(
            samples
                .into_iter()
                .map(|s| {
                    let point = match (&s.value, &s.histogram) {
                        (Some(v), _) => Some(v.decode()?),
                        (None, Some(_)) => None,
                        (None, None) => {
                            return Err(ParseError::new(format!(
                                "series {} has neither \"value\" nor \"histogram\"",
                                s.metric
                            )));
                        }
                    };
                    Ok(Sample {
                        labels: s.metric,
                        point,
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        RawData::Scalar(p) => QueryData::Scalar(p.decode()?),
        RawData::Matrix(series) => QueryData::Matrix(
            series
                .into_iter()
                .map(|s| {
                    Ok(Series {
                        points: s
                            .values
                            .iter()
                            .map(RawPoint::decode)
                            .collect::<Result<_, _>>()?,
                        labels: s.metric,
                        histograms: s.histograms.is_some(),
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        RawData::String((_, s)) => QueryData::String(s),
    })
}

/// Turn a result into one value, strictly:
///
/// - an instant query needs a vector or a scalar; a range query needs a matrix, whose series are each
///   reduced by the window's [`RangeReduce`](crate::RangeReduce);
/// - no series is [`ResultError::Empty`] unless `on_empty` is [`OnEmpty::Zero`] (the check's own
///   `on_empty`, else `default_on_empty`);
/// - several series are [`ResultError::SeveralSeries`] unless the options set a [`Reduce`](crate::Reduce);
/// - NaN is always [`ResultError::NonFinite`]; infinities are too unless the options accept them.
pub fn evaluate(
    data: &QueryData,
    options: &QueryOptions,
    default_on_empty: OnEmpty,
) -> Result<f64, ResultError> {
    let values: Vec<f64> = match (options.window(), data) {
        (None, QueryData::Scalar(p)) => vec![p.value],
        (None, QueryData::Vector(samples)) => samples
            .iter()
            .map(|s| {
                s.point
                    .map(|p| p.value)
                    .ok_or_else(|| ResultError::Histogram {
                        labels: s.labels.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?,
        (Some(window), QueryData::Matrix(series)) => {
            let mut values = Vec::with_capacity(series.len());
            for s in series {
                // Float points next to histogram ones would be a partial reading of the series.
                if s.histograms {
                    return Err(ResultError::Histogram {
                        labels: s.labels.to_string(),
                    });
                }
                let points: Vec<f64> = s.points.iter().map(|p| p.value).collect();
                if let Some(&nan) = points.iter().find(|v| v.is_nan()) {
                    return Err(ResultError::NonFinite { value: nan });
                }
                // A series without points is no series: Prometheus does not send one, but if it did it must
                // not count as a value.
                if !points.is_empty() {
                    values.push(window.range_reduce().apply(&points));
                }
            }
            values
        }
        (None, other) => {
            return Err(ResultError::UnexpectedType {
                found: other.result_type(),
                expected: "a vector or a scalar",
            });
        }
        (Some(_), other) => {
            return Err(ResultError::UnexpectedType {
                found: other.result_type(),
                expected: "a matrix (the answer of a range query)",
            });
        }
    };

    if values.is_empty() {
        return match options.empty_override().unwrap_or(default_on_empty) {
            OnEmpty::Zero => Ok(0.0),
            OnEmpty::Error => Err(ResultError::Empty),
        };
    }
    if let Some(&nan) = values.iter().find(|v| v.is_nan()) {
        return Err(ResultError::NonFinite { value: nan });
    }
    let value = match (values.as_slice(), options.series_reduce()) {
        ([one], _) => *one,
        (many, Some(reduce)) => reduce.apply(many),
        (many, None) => {
            return Err(ResultError::SeveralSeries {
                count: many.len(),
                label_sets: series_labels(data).take(LISTED_SERIES).collect(),
            });
        }
    };
    match options.non_finite_policy() {
        _ if value.is_nan() => Err(ResultError::NonFinite { value }),
        NonFinite::Error if value.is_infinite() => Err(ResultError::NonFinite { value }),
        _ => Ok(value),
    }
}

/// Turn the answer of a `query_range` into points of the past, oldest first, for a policy to learn from:
///
/// - it must be a matrix; a series holding native histogram points is [`ResultError::Histogram`];
/// - NaN points are skipped, as are points whose value is infinite unless the options accept infinities:
///   they are readings a live evaluation would have failed on, so the past simply lacks them;
/// - several series are combined per timestamp (over the series that have a point there) by the options'
///   [`Reduce`](crate::Reduce), or are [`ResultError::SeveralSeries`] without one;
/// - no series is [`ResultError::Empty`] whatever `on_empty` says (zeros made up for a missing past would
///   be learned as real demand), and series whose every point was skipped are [`ResultError::NonFinite`].
pub fn evaluate_range(
    data: &QueryData,
    options: &QueryOptions,
) -> Result<Vec<(Timestamp, f64)>, ResultError> {
    let series = match data {
        QueryData::Matrix(series) => series,
        other => {
            return Err(ResultError::UnexpectedType {
                found: other.result_type(),
                expected: "a matrix (the answer of a range query)",
            });
        }
    };
    if let Some(s) = series.iter().find(|s| s.histograms) {
        return Err(ResultError::Histogram {
            labels: s.labels.to_string(),
        });
    }
    let with_points = series.iter().filter(|s| !s.points.is_empty()).count();
    match (with_points, options.series_reduce()) {
        (0, _) => return Err(ResultError::Empty),
        (1, _) | (_, Some(_)) => {}
        (count, None) => {
            return Err(ResultError::SeveralSeries {
                count,
                label_sets: series_labels(data).take(LISTED_SERIES).collect(),
            });
        }
    }
    // Keyed by the millisecond, the resolution of a timestamp, so series sampled at the same step meet.
    let mut by_time: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    let mut refused = None;
    for point in series.iter().flat_map(|s| &s.points) {
        if point.value.is_nan() {
            refused.get_or_insert(point.value);
            continue;
        }
        by_time
            .entry(seconds_to_millis(point.time))
            .or_default()
            .push(point.value);
    }
    let mut points = Vec::with_capacity(by_time.len());
    for (millis, values) in by_time {
        let value = match (values.as_slice(), options.series_reduce()) {
            ([one], _) => *one,
            (many, Some(reduce)) => reduce.apply(many),
            // Checked above: a single series has one value per timestamp.
            (many, None) => many.iter().copied().fold(f64::NAN, f64::max),
        };
        let usable = match options.non_finite_policy() {
            _ if value.is_nan() => false,
            NonFinite::Error => value.is_finite(),
            NonFinite::Accept => true,
        };
        if usable {
            points.push((Timestamp::from_millis(millis), value));
        } else {
            refused.get_or_insert(value);
        }
    }
    match refused {
        Some(value) if points.is_empty() => Err(ResultError::NonFinite { value }),
        _ => Ok(points),
    }
}

/// Seconds since the epoch, as Prometheus writes a sample's time, to whole milliseconds.
fn seconds_to_millis(seconds: f64) -> i64 {
    // `as` saturates, so a time out of range cannot wrap around.
    (seconds * 1000.0).round() as i64
}

fn series_labels(data: &QueryData) -> Box<dyn Iterator<Item = String> + '_> {
    match data {
        QueryData::Vector(samples) => Box::new(samples.iter().map(|s| s.labels.to_string())),
        QueryData::Matrix(series) => Box::new(
            series
                .iter()
                .filter(|s| !s.points.is_empty())
                .map(|s| s.labels.to_string()),
        ),
        QueryData::Scalar(_) | QueryData::String(_) => Box::new(std::iter::empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Reduce;

    #[test]
    fn values_are_read_the_way_prometheus_writes_them() {
        assert_eq!(parse_value("1").unwrap(), 1.0);
        assert_eq!(parse_value("-0.25").unwrap(), -0.25);
        assert_eq!(parse_value("1e+21").unwrap(), 1e21);
        assert!(parse_value("NaN").unwrap().is_nan());
        assert_eq!(parse_value("+Inf").unwrap(), f64::INFINITY);
        assert_eq!(parse_value("-Inf").unwrap(), f64::NEG_INFINITY);
        for bad in ["", "nan", "inf", "infinity", "0x10", " 1", "1,5", "e", "."] {
            assert!(parse_value(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn labels_print_as_a_selector() {
        let labels = Labels::from(BTreeMap::from([
            ("__name__".to_owned(), "up".to_owned()),
            ("job".to_owned(), "node".to_owned()),
            ("instance".to_owned(), "a:9100".to_owned()),
        ]));
        assert_eq!(labels.to_string(), r#"up{instance="a:9100", job="node"}"#);
        assert_eq!(Labels::default().to_string(), "{}");
    }

    #[test]
    fn unknown_fields_are_ignored_and_unknown_result_types_are_errors() {
        let body = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"],"stats":{}},"infos":["x"]}"#;
        assert!(matches!(
            parse(body).unwrap(),
            Envelope::Success(QueryResponse {
                data: QueryData::Scalar(Point { value: 2.0, .. }),
                ..
            })
        ));
        let body = br#"{"status":"success","data":{"resultType":"streams","result":[]}}"#;
        assert!(parse(body).unwrap_err().to_string().contains("streams"));
    }

    fn matrix(body: &str) -> QueryData {
        let body =
            format!(r#"{{"status":"success","data":{{"resultType":"matrix","result":{body}}}}}"#);
        match parse(body.as_bytes()).unwrap() {
            Envelope::Success(response) => response.data,
            Envelope::Failure(f) => panic!("{f:?}"),
        }
    }

    #[test]
    fn a_range_of_the_past_keeps_usable_points_oldest_first() {
        let t = Timestamp::from_secs;
        let one = matrix(
            r#"[{"metric":{},"values":[[60,"1"],[120,"NaN"],[180,"+Inf"],[240.0004,"4"]]}]"#,
        );
        assert_eq!(
            evaluate_range(&one, &QueryOptions::new()).unwrap(),
            [(t(60), 1.0), (t(240), 4.0)]
        );
        let accepting = QueryOptions::new().non_finite(NonFinite::Accept);
        assert_eq!(
            evaluate_range(&one, &accepting).unwrap(),
            [(t(60), 1.0), (t(180), f64::INFINITY), (t(240), 4.0)]
        );
        let refused = matrix(r#"[{"metric":{},"values":[[60,"NaN"],[120,"-Inf"]]}]"#);
        assert!(matches!(
            evaluate_range(&refused, &QueryOptions::new()),
            Err(ResultError::NonFinite { .. })
        ));
    }

    #[test]
    fn a_range_of_the_past_is_strict_about_its_shape() {
        let options = QueryOptions::new().on_empty(OnEmpty::Zero);
        assert_eq!(
            evaluate_range(&matrix("[]"), &options),
            Err(ResultError::Empty),
            "no made-up zeros for a missing past"
        );
        let vector = QueryData::Vector(Vec::new());
        assert!(matches!(
            evaluate_range(&vector, &options),
            Err(ResultError::UnexpectedType {
                found: "vector",
                ..
            })
        ));
        let histogram = matrix(r#"[{"metric":{"le":"x"},"values":[[60,"1"]],"histograms":[]}]"#);
        assert!(matches!(
            evaluate_range(&histogram, &options),
            Err(ResultError::Histogram { .. })
        ));
        let two = matrix(
            r#"[{"metric":{"pod":"a"},"values":[[60,"1"]]},{"metric":{"pod":"b"},"values":[[120,"2"]]}]"#,
        );
        let err = evaluate_range(&two, &QueryOptions::new()).unwrap_err();
        assert!(err.to_string().contains(r#"{pod="a"}, {pod="b"}"#), "{err}");
        let t = Timestamp::from_secs;
        assert_eq!(
            evaluate_range(&two, &QueryOptions::new().reduce(Reduce::Avg)).unwrap(),
            [(t(60), 1.0), (t(120), 2.0)]
        );
    }

    #[test]
    fn several_series_list_at_most_a_few_label_sets() {
        let samples = (0..8)
            .map(|i| Sample {
                labels: Labels::from(BTreeMap::from([("i".to_owned(), i.to_string())])),
                point: Some(Point {
                    time: 0.0,
                    value: 1.0,
                }),
            })
            .collect();
        let err = evaluate(
            &QueryData::Vector(samples),
            &QueryOptions::new(),
            OnEmpty::Error,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the result has 8 series where one was expected (set reduce = \"sum\", \"max\", \"min\" or \
             \"avg\" to combine them): {i=\"0\"}, {i=\"1\"}, {i=\"2\"}, {i=\"3\"}, {i=\"4\"} and 3 more"
        );
    }
}
