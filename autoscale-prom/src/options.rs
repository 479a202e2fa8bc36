//! Per-check options: how a query is asked (instant or over a range window) and how its answer becomes one
//! number.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

/// Prometheus refuses a range query of more than this many points per series.
pub const MAX_RANGE_POINTS: u64 = 11_000;

/// What an empty result means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnEmpty {
    /// An empty result is an error (the default): an outage must never read as zero load.
    #[default]
    Error,
    /// An empty result is the value 0, for queries where "no series" genuinely means "nothing happening".
    Zero,
}

/// What an infinite value means. NaN is always a failure, whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonFinite {
    /// `+Inf` and `-Inf` are errors (the default).
    #[default]
    Error,
    /// `+Inf` and `-Inf` are passed to the policy.
    Accept,
}

/// How several series are combined into one value. Without it, several series are an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    /// The sum of the series' values.
    Sum,
    /// The largest value.
    Max,
    /// The smallest value.
    Min,
    /// The arithmetic mean.
    Avg,
}

/// How the points of one series over a range window are reduced to one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RangeReduce {
    /// The arithmetic mean of the points (the default).
    #[default]
    Avg,
    /// The largest point.
    Max,
    /// The smallest point.
    Min,
    /// The latest point.
    Last,
}

macro_rules! keyword_enum {
    ($ty:ident, $what:literal, $($variant:ident => $text:literal),+ $(,)?) => {
        impl $ty {
            /// Every value, in the order the configuration reference lists their keywords.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The configuration keyword of this value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    other => Err(Error::config(format!(
                        concat!("invalid ", $what, " {:?}: expected one of {}"),
                        other,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

keyword_enum!(OnEmpty, "on_empty", Error => "error", Zero => "zero");
keyword_enum!(NonFinite, "non_finite", Error => "error", Accept => "accept");
keyword_enum!(Reduce, "reduce", Sum => "sum", Max => "max", Min => "min", Avg => "avg");
keyword_enum!(RangeReduce, "range_reduce", Avg => "avg", Max => "max", Min => "min", Last => "last");

impl Reduce {
    /// Combine `values` (at least one, none NaN).
    pub(crate) fn apply(self, values: &[f64]) -> f64 {
        fold(values, self.into())
    }
}

impl RangeReduce {
    /// Reduce the points of one series (at least one, none NaN), oldest first.
    pub(crate) fn apply(self, values: &[f64]) -> f64 {
        match self {
            RangeReduce::Last => values.last().copied().unwrap_or(f64::NAN),
            RangeReduce::Avg => fold(values, Fold::Avg),
            RangeReduce::Max => fold(values, Fold::Max),
            RangeReduce::Min => fold(values, Fold::Min),
        }
    }
}

#[derive(Clone, Copy)]
enum Fold {
    Sum,
    Max,
    Min,
    Avg,
}

impl From<Reduce> for Fold {
    fn from(r: Reduce) -> Self {
        match r {
            Reduce::Sum => Fold::Sum,
            Reduce::Max => Fold::Max,
            Reduce::Min => Fold::Min,
            Reduce::Avg => Fold::Avg,
        }
    }
}

fn fold(values: &[f64], how: Fold) -> f64 {
    // An empty input never reaches here (evaluation handles "empty" first); NaN keeps that visible if it did.
    if values.is_empty() {
        return f64::NAN;
    }
    match how {
        Fold::Sum => values.iter().sum(),
        Fold::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Fold::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        Fold::Avg => values.iter().sum::<f64>() / values.len() as f64,
    }
}

/// A range window: `query_range` over `[at - range, at]` with `step`, reduced per series by
/// [`RangeReduce`].
///
/// The window is aligned on `at` (the last point is evaluated exactly at `at`), so `last` is the value at the
/// evaluation time and the points are the same from one evaluation to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RangeWindow {
    range: Duration,
    step: Duration,
    reduce: RangeReduce,
}

impl RangeWindow {
    /// A window of `range` with points every `step`, reduced by their average.
    ///
    /// The config layer passes the check's interval as `step` when the check sets none. Both are used at
    /// millisecond precision; the step must be at least 1 ms, the range at least one step, and the window
    /// at most [`MAX_RANGE_POINTS`] points (Prometheus's own limit).
    pub fn new(range: Duration, step: Duration) -> Result<Self, Error> {
        let (range_ms, step_ms) = (range.as_millis(), step.as_millis());
        if step_ms == 0 {
            return Err(Error::config("a range window's step must be at least 1ms"));
        }
        if range_ms < step_ms {
            return Err(Error::config(format!(
                "a range window ({}) must be at least one step ({})",
                fmt_duration(range),
                fmt_duration(step)
            )));
        }
        let points = range_ms / step_ms + 1;
        if points > u128::from(MAX_RANGE_POINTS) {
            return Err(Error::config(format!(
                "a range window of {} at a step of {} has {points} points; Prometheus allows at most \
                 {MAX_RANGE_POINTS}: raise the step",
                fmt_duration(range),
                fmt_duration(step)
            )));
        }
        Ok(RangeWindow {
            range: Duration::from_millis(range_ms as u64),
            step: Duration::from_millis(step_ms as u64),
            reduce: RangeReduce::default(),
        })
    }

    /// Reduce each series' points with `reduce` instead of the average.
    pub fn reduce(mut self, reduce: RangeReduce) -> Self {
        self.reduce = reduce;
        self
    }

    /// The length of the window.
    pub fn range(&self) -> Duration {
        self.range
    }

    /// The distance between points.
    pub fn step(&self) -> Duration {
        self.step
    }

    /// How each series' points become one value.
    pub fn range_reduce(&self) -> RangeReduce {
        self.reduce
    }

    /// The window's length rounded down to a whole number of steps: the first point is `at` minus this.
    pub(crate) fn aligned_span_millis(&self) -> i64 {
        let (range, step) = (self.range.as_millis(), self.step.as_millis());
        i64::try_from(range - range % step).unwrap_or(i64::MAX)
    }
}

/// How one check's query is asked and read. The default is the strict instant query: exactly one sample,
/// finite, or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct QueryOptions {
    range: Option<RangeWindow>,
    reduce: Option<Reduce>,
    on_empty: Option<OnEmpty>,
    non_finite: NonFinite,
}

impl QueryOptions {
    /// The strict defaults: an instant query, one series, empty and non-finite results are errors (unless the
    /// client's `on_empty` says otherwise).
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask `query_range` over this window instead of an instant query.
    pub fn range(mut self, window: RangeWindow) -> Self {
        self.range = Some(window);
        self
    }

    /// Combine several series with `reduce` instead of failing.
    pub fn reduce(mut self, reduce: Reduce) -> Self {
        self.reduce = Some(reduce);
        self
    }

    /// What an empty result means for this check, overriding the client's `on_empty`.
    pub fn on_empty(mut self, on_empty: OnEmpty) -> Self {
        self.on_empty = Some(on_empty);
        self
    }

    /// Whether `+Inf`/`-Inf` pass through to the policy.
    pub fn non_finite(mut self, non_finite: NonFinite) -> Self {
        self.non_finite = non_finite;
        self
    }

    /// The range window, if the check asks over one.
    pub fn window(&self) -> Option<&RangeWindow> {
        self.range.as_ref()
    }

    /// How several series are combined, if at all.
    pub fn series_reduce(&self) -> Option<Reduce> {
        self.reduce
    }

    /// This check's own `on_empty`, if it overrides the client's.
    pub fn empty_override(&self) -> Option<OnEmpty> {
        self.on_empty
    }

    /// Whether infinite values are accepted.
    pub fn non_finite_policy(&self) -> NonFinite {
        self.non_finite
    }
}

/// `5m`, `15s`, `1500ms`: the shortest exact form of a duration at millisecond precision, for messages.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_owned()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip_and_unknown_ones_are_named() {
        for r in [Reduce::Sum, Reduce::Max, Reduce::Min, Reduce::Avg] {
            assert_eq!(r.as_str().parse::<Reduce>().unwrap(), r);
        }
        for r in [
            RangeReduce::Avg,
            RangeReduce::Max,
            RangeReduce::Min,
            RangeReduce::Last,
        ] {
            assert_eq!(r.as_str().parse::<RangeReduce>().unwrap(), r);
        }
        assert_eq!("zero".parse::<OnEmpty>().unwrap(), OnEmpty::Zero);
        assert_eq!("accept".parse::<NonFinite>().unwrap(), NonFinite::Accept);
        let err = "median".parse::<Reduce>().unwrap_err().to_string();
        assert!(
            err.contains("\"median\"") && err.contains("sum, max, min, avg"),
            "{err}"
        );
    }

    #[test]
    fn reductions() {
        let v = [1.0, 4.0, 2.0];
        assert_eq!(Reduce::Sum.apply(&v), 7.0);
        assert_eq!(Reduce::Max.apply(&v), 4.0);
        assert_eq!(Reduce::Min.apply(&v), 1.0);
        assert!((Reduce::Avg.apply(&v) - 7.0 / 3.0).abs() < 1e-12);
        assert_eq!(RangeReduce::Last.apply(&v), 2.0);
        assert_eq!(
            RangeReduce::Max.apply(&[f64::NEG_INFINITY]),
            f64::NEG_INFINITY
        );
        assert!(Reduce::Sum.apply(&[]).is_nan());
    }

    #[test]
    fn range_windows_are_validated_and_aligned() {
        let s = Duration::from_secs;
        let w = RangeWindow::new(s(300), s(15)).unwrap();
        assert_eq!(w.aligned_span_millis(), 300_000);
        assert_eq!(w.range_reduce(), RangeReduce::Avg);
        let w = RangeWindow::new(s(100), s(15)).unwrap();
        assert_eq!(w.aligned_span_millis(), 90_000);
        assert!(RangeWindow::new(s(10), Duration::ZERO).is_err());
        assert!(RangeWindow::new(s(10), s(15)).is_err());
        assert!(RangeWindow::new(s(11_000), s(1)).is_err());
        assert!(RangeWindow::new(s(10_999), s(1)).is_ok());
    }

    #[test]
    fn durations_print_in_their_shortest_exact_form() {
        let ms = Duration::from_millis;
        assert_eq!(fmt_duration(ms(0)), "0s");
        assert_eq!(fmt_duration(ms(1500)), "1500ms");
        assert_eq!(fmt_duration(ms(15_000)), "15s");
        assert_eq!(fmt_duration(ms(300_000)), "5m");
        assert_eq!(fmt_duration(ms(7_200_000)), "2h");
    }
}
