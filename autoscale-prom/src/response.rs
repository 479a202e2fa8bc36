//! Decoding Prometheus HTTP API bodies (`/api/v1/query` and `/api/v1/query_range`), and turning a decoded
//! result into the one number a check needs.
//!
//! Both steps are pure, so they are tested on bodies captured from a real Prometheus and fuzzed on arbitrary
//! bytes. Nothing here panics on any input.
//!
//! # Memory
//!
//! An answer may hold a hundred thousand series, and a daemon decodes one every few seconds for as long as
//! it runs, so decoding makes a few large allocations per answer rather than several per series. A
//! [`Vector`] or [`Matrix`] holds one string with every label name and value of the answer, one list of
//! offsets into it (each series a range of that list), one list of entries, and for a matrix one list of
//! every point. The `result` array is read one series at a time straight into these: label text that needs
//! no unescaping is copied from the body without an allocation of its own, and nothing is built per series
//! only to be converted and dropped.
//!
//! Per-series allocations cost memory twice: the peak (each small allocation carries malloc's overhead) and,
//! worse, what stays after the answer is dropped, because glibc keeps hundreds of thousands of freed small
//! chunks in its fastbins and tcache instead of giving them back. Large allocations are mapped on their own
//! (or sit at the top of the heap) and go back to the system when freed. Measured with `cargo bench --bench
//! prom_memory` (RSS over idle; an 8 MiB answer of 141,904 one-label series / of 51,307 five-label series):
//!
//! | allocations                      | short: peak     | settled  | 5 labels: peak  | settled |
//! |----------------------------------|-----------------|----------|-----------------|---------|
//! | labels and points of each series | 31.9 MiB (4.0×) | 15.5 MiB | 35.3 MiB (4.4×) | 0.4 MiB |
//! | a few per answer                 | 16.4 MiB (2.1×) | 0.6 MiB  | 17.3 MiB (2.2×) | 0.5 MiB |
//!
//! What stays after any answer, even one of 1 KB, is 0.2 to 0.6 MiB, most of it the decoding thread's own
//! (a thread that allocates 1 KB and ends leaves about 0.2 MiB: its stack and malloc arena).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use autoscale_core::Timestamp;
use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
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
    Vector(Vector),
    /// A scalar.
    Scalar(Point),
    /// A range vector: several points per series (every `query_range` answer).
    Matrix(Matrix),
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

/// An instant vector: one [`Sample`] per series, in the order Prometheus sent them.
///
/// Held as a few allocations for the whole answer (see the [module docs](self)); [`iter`](Vector::iter)
/// gives each sample as a view into them.
#[derive(Clone, Default)]
pub struct Vector {
    labels: LabelTable,
    samples: Vec<SampleEntry>,
}

impl Vector {
    /// How many series there are.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples, in the order Prometheus sent them.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Sample<'_>> + Clone {
        self.samples.iter().map(|s| Sample {
            labels: self.labels.get(s.labels),
            point: s.point,
        })
    }
}

/// One series of an instant vector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample<'a> {
    /// The series' labels.
    pub labels: Labels<'a>,
    /// Its float sample, or `None` when the series holds a native histogram, which no policy can read.
    pub point: Option<Point>,
}

/// A range vector: one [`Series`] of points per series, in the order Prometheus sent them.
///
/// Held as a few allocations for the whole answer (see the [module docs](self)); [`iter`](Matrix::iter)
/// gives each series as a view into them.
#[derive(Clone, Default)]
pub struct Matrix {
    labels: LabelTable,
    series: Vec<SeriesEntry>,
    points: Vec<Point>,
}

impl Matrix {
    /// How many series there are.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The series, in the order Prometheus sent them.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Series<'_>> + Clone {
        self.series.iter().map(|s| Series {
            labels: self.labels.get(s.labels),
            points: self.points.get(s.points.range()).unwrap_or_default(),
            histograms: s.histograms,
        })
    }
}

/// One series of a matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Series<'a> {
    /// The series' labels.
    pub labels: Labels<'a>,
    /// Its float points, oldest first.
    pub points: &'a [Point],
    /// Whether the series also held native histogram points (which are not in `points`).
    pub histograms: bool,
}

// Compared, printed and serialized as the list of series they hold, not as their tables: two answers that
// say the same are equal however their label text happens to be laid out.

impl PartialEq for Vector {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl PartialEq for Matrix {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Debug for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Vector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl Serialize for Matrix {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// A series' label set, printed the way PromQL writes a selector: `up{instance="a:9100", job="node"}`.
///
/// A view into its answer: (name, value) pairs sorted by name, each name once (the last one given wins, as
/// in a map).
#[derive(Clone, Copy, Default)]
pub struct Labels<'a> {
    text: &'a str,
    pairs: &'a [Pair],
}

impl<'a> Labels<'a> {
    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .binary_search_by(|p| p.name(self.text).cmp(name))
            .ok()
            .and_then(|i| self.pairs.get(i))
            .map(|p| p.value(self.text))
    }

    /// The labels, by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + Clone + use<'a> {
        let text = self.text;
        self.pairs
            .iter()
            .map(move |p| (p.name(text), p.value(text)))
    }

    /// How many labels there are.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl PartialEq for Labels<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Labels<'_> {}

impl fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Labels<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl fmt::Display for Labels<'_> {
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

// ---- the tables behind them -------------------------------------------------------------------------------

/// The labels of every series of one answer: all names and values in one string, and one list of pairs
/// pointing into it, each series a range of that list.
///
/// Offsets are `u32`, which bounds an answer to 4 GiB of label text; decoding refuses a larger one.
#[derive(Clone, Default)]
struct LabelTable {
    text: String,
    pairs: Vec<Pair>,
}

/// A label: its name is `text[start..name_end]` and its value `text[name_end..end]`.
#[derive(Clone, Copy)]
struct Pair {
    start: u32,
    name_end: u32,
    end: u32,
}

impl Pair {
    fn name<'a>(&self, text: &'a str) -> &'a str {
        text.get(self.start as usize..self.name_end as usize)
            .unwrap_or_default()
    }

    fn value<'a>(&self, text: &'a str) -> &'a str {
        text.get(self.name_end as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// A range of a table: `start..end`.
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span from `start` to `end`, if both fit.
    fn new(start: usize, end: usize) -> Option<Span> {
        Some(Span {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Clone)]
struct SampleEntry {
    labels: Span,
    point: Option<Point>,
}

#[derive(Clone)]
struct SeriesEntry {
    labels: Span,
    points: Span,
    histograms: bool,
}

impl LabelTable {
    fn get(&self, span: Span) -> Labels<'_> {
        Labels {
            text: &self.text,
            pairs: self.pairs.get(span.range()).unwrap_or_default(),
        }
    }

    /// Close the label set of the series whose pairs start at `start`: sort it by name, each name once, the
    /// last one given winning. `None` when the table is full.
    fn close(&mut self, start: usize) -> Option<Span> {
        let LabelTable { text, pairs } = self;
        let own = pairs.get_mut(start..).unwrap_or_default();
        // Prometheus sends them sorted, each once: then there is nothing to do.
        if !own.is_sorted_by(|a, b| a.name(text) < b.name(text)) {
            // Stable, so of equal names the last one given is last.
            own.sort_by(|a, b| a.name(text).cmp(b.name(text)));
            let mut kept: usize = 0;
            for i in 0..own.len() {
                let pair = own[i];
                match kept.checked_sub(1) {
                    Some(last) if own[last].name(text) == pair.name(text) => own[last] = pair,
                    _ => {
                        own[kept] = pair;
                        kept += 1;
                    }
                }
            }
            pairs.truncate(start + kept);
        }
        Span::new(start, pairs.len())
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
//
// The envelope and the point are derived. A vector's or matrix's `result` is read by hand, one series at a
// time straight into the answer's tables, mirroring what the derived structs it replaced accepted and how
// they failed (the same fields, defaults, duplicates and `expecting` messages), so errors read as before.

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
    Vector(Decoded<Vector>),
    #[serde(borrow)]
    Scalar(RawPoint<'a>),
    Matrix(Decoded<Matrix>),
    String((f64, String)),
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

/// A `result` being read, or read: the answer so far, or the first thing in it that is well-formed JSON but
/// not a valid answer (a value that is not a number, say).
///
/// Such an error is kept rather than returned at once so that malformed JSON further on is still reported
/// as such, as it was when the whole body was parsed before any value was read.
struct Decoded<T> {
    data: T,
    error: Option<ParseError>,
}

impl<T> Decoded<T> {
    /// Note the error `error` makes, unless there is one already: only the first is reported.
    fn fail(&mut self, error: impl FnOnce(&T) -> ParseError) {
        if self.error.is_none() {
            self.error = Some(error(&self.data));
        }
    }

    fn into_result(self) -> Result<T, ParseError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.data),
        }
    }
}

fn too_large() -> ParseError {
    ParseError::new("the answer is too large to decode: more than 4 GiB of labels or points")
}

impl<'de> Deserialize<'de> for Decoded<Vector> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Samples;
        impl<'de> Visitor<'de> for Samples {
            type Value = Decoded<Vector>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut decoded = Decoded {
                    data: Vector::default(),
                    error: None,
                };
                while seq.next_element_seed(SampleSeed(&mut decoded))?.is_some() {}
                Ok(decoded)
            }
        }
        deserializer.deserialize_seq(Samples)
    }
}

impl<'de> Deserialize<'de> for Decoded<Matrix> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AllSeries;
        impl<'de> Visitor<'de> for AllSeries {
            type Value = Decoded<Matrix>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut decoded = Decoded {
                    data: Matrix::default(),
                    error: None,
                };
                while seq.next_element_seed(SeriesSeed(&mut decoded))?.is_some() {}
                Ok(decoded)
            }
        }
        deserializer.deserialize_seq(AllSeries)
    }
}

/// The fields of a sample or series; others are ignored.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Metric,
    Value,
    Histogram,
    Values,
    Histograms,
    #[serde(other)]
    Other,
}

/// One element of a vector's `result`, `{"metric": {...}, "value": [time, "value"]}` (or, as derived
/// structs allow, `[{...}, [time, "value"]]`), added to the vector.
struct SampleSeed<'s>(&'s mut Decoded<Vector>);

impl SampleSeed<'_> {
    /// Add the sample whose labels were added to the table from `start`.
    fn add(self, start: usize, fits: bool, value: Option<RawPoint<'_>>, histogram: bool) {
        let decoded = self.0;
        let Some(labels) = fits.then(|| decoded.data.labels.close(start)).flatten() else {
            return decoded.fail(|_| too_large());
        };
        let point = match (value, histogram) {
            (Some(v), _) => match v.decode() {
                Ok(p) => Some(p),
                Err(e) => return decoded.fail(|_| e),
            },
            (None, true) => None,
            (None, false) => {
                return decoded.fail(|data| {
                    ParseError::new(format!(
                        "series {} has neither \"value\" nor \"histogram\"",
                        data.labels.get(labels)
                    ))
                });
            }
        };
        decoded.data.samples.push(SampleEntry { labels, point });
    }
}

impl<'de> DeserializeSeed<'de> for SampleSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_struct("RawSample", &["metric", "value", "histogram"], self)
    }
}

impl<'de> Visitor<'de> for SampleSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sample: {\"metric\": {...}, \"value\": [time, \"value\"]}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let start = self.0.data.labels.pairs.len();
        let fits = seq
            .next_element_seed(LabelsSeed(&mut self.0.data.labels))?
            .unwrap_or(true);
        let value = seq.next_element::<Option<RawPoint<'de>>>()?.flatten();
        let histogram = seq.next_element::<Option<IgnoredAny>>()?.flatten();
        self.add(start, fits, value, histogram.is_some());
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let start = self.0.data.labels.pairs.len();
        let mut fits = None;
        let mut value = None;
        let mut histogram = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Metric => {
                    if fits.is_some() {
                        return Err(A::Error::duplicate_field("metric"));
                    }
                    fits = Some(map.next_value_seed(LabelsSeed(&mut self.0.data.labels))?);
                }
                Field::Value => {
                    if value.is_some() {
                        return Err(A::Error::duplicate_field("value"));
                    }
                    value = Some(map.next_value::<Option<RawPoint<'de>>>()?);
                }
                Field::Histogram => {
                    if histogram.is_some() {
                        return Err(A::Error::duplicate_field("histogram"));
                    }
                    histogram = Some(map.next_value::<Option<IgnoredAny>>()?);
                }
                Field::Values | Field::Histograms | Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.add(
            start,
            fits.unwrap_or(true),
            value.flatten(),
            histogram.flatten().is_some(),
        );
        Ok(())
    }
}

/// One element of a matrix's `result`, `{"metric": {...}, "values": [[time, "value"], ...]}` (or
/// `[{...}, [...]]`), added to the matrix.
struct SeriesSeed<'s>(&'s mut Decoded<Matrix>);

impl SeriesSeed<'_> {
    /// Add the series whose labels and points were added to the tables from `start` and `first_point`.
    fn add(self, start: usize, fits: bool, first_point: usize, histograms: bool) {
        let decoded = self.0;
        let labels = fits.then(|| decoded.data.labels.close(start)).flatten();
        let points = Span::new(first_point, decoded.data.points.len());
        let (Some(labels), Some(points)) = (labels, points) else {
            return decoded.fail(|_| too_large());
        };
        decoded.data.series.push(SeriesEntry {
            labels,
            points,
            histograms,
        });
    }
}

impl<'de> DeserializeSeed<'de> for SeriesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_struct("RawSeries", &["metric", "values", "histograms"], self)
    }
}

impl<'de> Visitor<'de> for SeriesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a series: {\"metric\": {...}, \"values\": [[time, \"value\"], ...]}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let start = self.0.data.labels.pairs.len();
        let first_point = self.0.data.points.len();
        let fits = seq
            .next_element_seed(LabelsSeed(&mut self.0.data.labels))?
            .unwrap_or(true);
        seq.next_element_seed(PointsSeed(&mut *self.0))?;
        let histograms = seq.next_element::<Option<IgnoredAny>>()?.flatten();
        self.add(start, fits, first_point, histograms.is_some());
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let start = self.0.data.labels.pairs.len();
        let first_point = self.0.data.points.len();
        let mut fits = None;
        let mut values = false;
        let mut histograms = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Metric => {
                    if fits.is_some() {
                        return Err(A::Error::duplicate_field("metric"));
                    }
                    fits = Some(map.next_value_seed(LabelsSeed(&mut self.0.data.labels))?);
                }
                Field::Values => {
                    if values {
                        return Err(A::Error::duplicate_field("values"));
                    }
                    map.next_value_seed(PointsSeed(&mut *self.0))?;
                    values = true;
                }
                Field::Histograms => {
                    if histograms.is_some() {
                        return Err(A::Error::duplicate_field("histograms"));
                    }
                    histograms = Some(map.next_value::<Option<IgnoredAny>>()?);
                }
                Field::Value | Field::Histogram | Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.add(
            start,
            fits.unwrap_or(true),
            first_point,
            histograms.flatten().is_some(),
        );
        Ok(())
    }
}

/// A series' `values`, `[[time, "value"], ...]`, added to the matrix's points.
struct PointsSeed<'s>(&'s mut Decoded<Matrix>);

impl<'de> DeserializeSeed<'de> for PointsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for PointsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<RawPoint<'de>>()? {
            match raw.decode() {
                Ok(p) => self.0.data.points.push(p),
                Err(e) => self.0.fail(|_| e),
            }
        }
        Ok(())
    }
}

/// A series' `metric`, `{"name": "value", ...}`, added to the label table; `false` if it did not fit.
struct LabelsSeed<'t>(&'t mut LabelTable);

impl<'de> DeserializeSeed<'de> for LabelsSeed<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LabelsSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of label names to values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let LabelTable { text, pairs } = self.0;
        let mut fits = true;
        loop {
            let start = text.len();
            if map.next_key_seed(TextSeed(text))?.is_none() {
                return Ok(fits);
            }
            let name_end = text.len();
            map.next_value_seed(TextSeed(text))?;
            let end = text.len();
            match (
                u32::try_from(start),
                u32::try_from(name_end),
                u32::try_from(end),
            ) {
                (Ok(start), Ok(name_end), Ok(end)) => pairs.push(Pair {
                    start,
                    name_end,
                    end,
                }),
                _ => fits = false,
            }
        }
    }
}

/// A label name or value, appended to the table's text: borrowed from the body when it has no escapes, so
/// reading it allocates nothing.
struct TextSeed<'t>(&'t mut String);

impl<'de> DeserializeSeed<'de> for TextSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for TextSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<(), E> {
        match std::str::from_utf8(v) {
            Ok(s) => self.visit_str(s),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(v), &self)),
        }
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
        RawData::Vector(vector) => QueryData::Vector(vector.into_result()?),
        RawData::Scalar(p) => QueryData::Scalar(p.decode()?),
        RawData::Matrix(matrix) => QueryData::Matrix(matrix.into_result()?),
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
            for s in series.iter() {
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
    for point in series.iter().flat_map(|s| s.points) {
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

    /// The data of a `success` body whose `data` is `data`.
    fn data(data: &str) -> QueryData {
        let body = format!(r#"{{"status":"success","data":{data}}}"#);
        match parse(body.as_bytes()) {
            Ok(Envelope::Success(answer)) => answer.data,
            other => panic!("{data}: {other:?}"),
        }
    }

    #[test]
    fn labels_print_as_a_selector() {
        let QueryData::Vector(vector) = data(
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"node","instance":"a:9100"},"value":[0,"1"]}]}"#,
        ) else {
            panic!("not a vector")
        };
        let labels = vector.iter().next().unwrap().labels;
        assert_eq!(labels.to_string(), r#"up{instance="a:9100", job="node"}"#);
        assert_eq!(Labels::default().to_string(), "{}");
    }

    #[test]
    fn labels_given_out_of_order_are_sorted_and_the_last_of_a_name_wins() {
        let QueryData::Matrix(matrix) = data(
            r#"{"resultType":"matrix","result":[
                {"metric":{"b":"1","a":"2","b":"3","c":"\u00e9\n"},"values":[[1,"1"],[2,"2"]]},
                {"metric":{"a":"x"},"values":[[3,"3"]]}]}"#,
        ) else {
            panic!("not a matrix")
        };
        let series: Vec<_> = matrix.iter().collect();
        assert_eq!(series.len(), 2);
        let labels: Vec<_> = series[0].labels.iter().collect();
        assert_eq!(labels, [("a", "2"), ("b", "3"), ("c", "é\n")]);
        assert_eq!(series[0].labels.get("b"), Some("3"));
        assert_eq!(series[0].points.len(), 2);
        assert_eq!(series[1].labels.get("a"), Some("x"));
        assert_eq!(
            series[1].points,
            [Point {
                time: 3.0,
                value: 3.0
            }]
        );
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
        let vector = QueryData::Vector(Vector::default());
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
            .map(|i| format!(r#"{{"metric":{{"i":"{i}"}},"value":[0,"1"]}}"#))
            .collect::<Vec<_>>()
            .join(",");
        let err = evaluate(
            &data(&format!(
                r#"{{"resultType":"vector","result":[{samples}]}}"#
            )),
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
