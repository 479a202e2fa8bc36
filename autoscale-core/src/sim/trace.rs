//! Load traces: reading the CSV format of `docs/simulation.md`, and looking the load up as a step function.

use std::collections::VecDeque;
use std::fmt;
use std::io::BufRead;

use crate::Timestamp;

/// A load trace: strictly increasing times and a load `>= 0` at each.
///
/// Between rows the load is a step function: at time `t` it is the load of the last row whose time is `<= t`.
/// A trace always has at least one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    // Two parallel vectors rather than one of pairs: the simulator's hot loop walks the times alone.
    times: Vec<i64>,
    loads: Vec<f64>,
}

/// Why a trace was refused. `Display` gives the message a user sees, with the line number where one applies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The input could not be read (an I/O error, or text that is not UTF-8).
    #[error("line {line}: cannot read the trace: {source}")]
    Read {
        /// The line being read.
        line: usize,
        /// What the reader said.
        source: std::io::Error,
    },
    /// Not even a header row.
    #[error("the trace is empty: it needs a header row and at least one data row")]
    Empty,
    /// A header row, but no data row after it.
    #[error("the trace has a header row but no data rows")]
    NoData,
    /// The named load column is not in the header.
    #[error("the header has no column {name:?}; its columns are {}", quoted_list(.columns))]
    MissingColumn {
        /// The column asked for.
        name: String,
        /// The header's columns.
        columns: Vec<String>,
    },
    /// No column was named and the header has no second column to take the load from.
    #[error(
        "the header has only one column ({}): the load is read from column 2, or from a column named explicitly",
        quoted_list(.columns)
    )]
    NoLoadColumn {
        /// The header's columns.
        columns: Vec<String>,
    },
    /// A quoted field was not closed before the end of its line.
    #[error("line {line}: a quoted field is not closed before the end of the line")]
    UnterminatedQuote {
        /// The line.
        line: usize,
    },
    /// A data row is too short to have the load column.
    #[error(
        "line {line}: the row has {found} field(s), but the load is in column {needed} ({column:?})"
    )]
    ShortRow {
        /// The line.
        line: usize,
        /// How many fields the row has.
        found: usize,
        /// The load column's 1-based position.
        needed: usize,
        /// The load column's name.
        column: String,
    },
    /// The time is neither a number of seconds nor an RFC 3339 timestamp.
    #[error("line {line}: time {value:?} is neither a number of seconds nor an RFC 3339 timestamp")]
    BadTime {
        /// The line.
        line: usize,
        /// The time as written.
        value: String,
    },
    /// A number of seconds too large to be held in milliseconds.
    #[error("line {line}: time {value} is out of range")]
    TimeOutOfRange {
        /// The line.
        line: usize,
        /// The time as written.
        value: String,
    },
    /// A row's time is of the other kind than the first row's (seconds against timestamps).
    #[error("line {line}: time {value:?} is {found}, but the first row's time is {expected}")]
    MixedTimes {
        /// The line.
        line: usize,
        /// The time as written.
        value: String,
        /// What this row's time is.
        found: TimeKind,
        /// What the first row's time is.
        expected: TimeKind,
    },
    /// A row's time is not after the previous row's.
    #[error(
        "line {line}: time {value} is not after the previous time {previous}{}",
        if *.same_millisecond { " (times are kept to the millisecond)" } else { "" }
    )]
    NotIncreasing {
        /// The line.
        line: usize,
        /// The time as written.
        value: String,
        /// The previous row's time as written.
        previous: String,
        /// The two times are written differently but fall in the same millisecond.
        same_millisecond: bool,
    },
    /// The load is not a finite number.
    #[error("line {line}: load {value:?} in column {column:?} is not a number")]
    NonNumericLoad {
        /// The line.
        line: usize,
        /// The load column's name.
        column: String,
        /// The load as written.
        value: String,
    },
    /// The load is below zero.
    #[error("line {line}: load {value} in column {column:?} is negative")]
    NegativeLoad {
        /// The line.
        line: usize,
        /// The load column's name.
        column: String,
        /// The load as written.
        value: String,
    },
    /// [`Trace::from_points`] was given no point.
    #[error("a trace needs at least one point")]
    NoPoints,
    /// [`Trace::from_points`] was given a time that is not after the previous one.
    #[error("point {index}: time {time} is not after the previous time {previous}")]
    UnorderedPoints {
        /// The 0-based index of the point.
        index: usize,
        /// Its time.
        time: Timestamp,
        /// The previous point's time.
        previous: Timestamp,
    },
    /// [`Trace::from_points`] was given a load that is negative or not finite.
    #[error("point {index}: load {load} is not a finite number >= 0")]
    InvalidLoad {
        /// The 0-based index of the point.
        index: usize,
        /// The load.
        load: f64,
    },
}

/// How a trace writes its times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    /// A number of seconds.
    Seconds,
    /// An RFC 3339 timestamp.
    Timestamp,
}

impl fmt::Display for TimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeKind::Seconds => "a number of seconds",
            TimeKind::Timestamp => "an RFC 3339 timestamp",
        })
    }
}

fn quoted_list(columns: &[String]) -> String {
    let quoted: Vec<String> = columns.iter().map(|c| format!("{c:?}")).collect();
    quoted.join(", ")
}

impl Trace {
    /// Read a trace in the CSV format of `docs/simulation.md`.
    ///
    /// The first line that is neither blank nor a `#` comment is the header. Column 1 is the time (a number of
    /// seconds, or an RFC 3339 timestamp where a timestamp without an offset is UTC); the load is column 2, or
    /// the column whose header is `column`. Fields may be quoted with `"` (a doubled `""` inside is one `"`);
    /// surrounding spaces are ignored. Line numbers in errors count every physical line from 1.
    pub fn parse<R: BufRead>(mut reader: R, column: Option<&str>) -> Result<Trace, TraceError> {
        let mut buf = String::new();
        let mut fields = Fields::default();
        let mut line_no = 0usize;

        let mut next_line = |buf: &mut String, line_no: &mut usize| -> Result<bool, TraceError> {
            loop {
                buf.clear();
                *line_no += 1;
                let n = reader.read_line(buf).map_err(|source| TraceError::Read {
                    line: *line_no,
                    source,
                })?;
                if n == 0 {
                    return Ok(false);
                }
                if *line_no == 1 && buf.starts_with('\u{feff}') {
                    // A UTF-8 byte-order mark, as spreadsheet programs write it.
                    buf.drain(..'\u{feff}'.len_utf8());
                }
                let content = buf.trim();
                if !content.is_empty() && !content.starts_with('#') {
                    return Ok(true);
                }
            }
        };

        if !next_line(&mut buf, &mut line_no)? {
            return Err(TraceError::Empty);
        }
        fields
            .split(&buf)
            .map_err(|()| TraceError::UnterminatedQuote { line: line_no })?;
        let columns: Vec<String> = fields.iter().map(str::to_owned).collect();
        let load_index =
            match column {
                Some(name) => columns.iter().position(|c| c == name).ok_or_else(|| {
                    TraceError::MissingColumn {
                        name: name.to_owned(),
                        columns: columns.clone(),
                    }
                })?,
                None if columns.len() < 2 => {
                    return Err(TraceError::NoLoadColumn { columns });
                }
                None => 1,
            };
        let load_name = &columns[load_index];

        let mut times = Vec::new();
        let mut loads = Vec::new();
        let mut kind = None;
        let mut previous = String::new();
        let mut previous_nanos = 0i128;
        while next_line(&mut buf, &mut line_no)? {
            let line = line_no;
            fields
                .split(&buf)
                .map_err(|()| TraceError::UnterminatedQuote { line })?;
            if fields.len() <= load_index {
                return Err(TraceError::ShortRow {
                    line,
                    found: fields.len(),
                    needed: load_index + 1,
                    column: load_name.clone(),
                });
            }
            let time_text = fields.get(0);
            let (this_kind, millis, nanos) =
                parse_time(time_text).map_err(|problem| match problem {
                    TimeProblem::Unreadable => TraceError::BadTime {
                        line,
                        value: time_text.to_owned(),
                    },
                    TimeProblem::OutOfRange => TraceError::TimeOutOfRange {
                        line,
                        value: time_text.to_owned(),
                    },
                })?;
            match kind {
                None => kind = Some(this_kind),
                Some(expected) if expected != this_kind => {
                    return Err(TraceError::MixedTimes {
                        line,
                        value: time_text.to_owned(),
                        found: this_kind,
                        expected,
                    });
                }
                Some(_) => {}
            }
            if let Some(&last) = times.last()
                && millis <= last
            {
                return Err(TraceError::NotIncreasing {
                    line,
                    value: time_text.to_owned(),
                    previous: previous.clone(),
                    same_millisecond: millis == last && nanos != previous_nanos,
                });
            }
            previous.clear();
            previous.push_str(time_text);
            previous_nanos = nanos;

            let load_text = fields.get(load_index);
            let load = match load_text.parse::<f64>() {
                Ok(v) if v.is_finite() => v,
                _ => {
                    return Err(TraceError::NonNumericLoad {
                        line,
                        column: load_name.clone(),
                        value: load_text.to_owned(),
                    });
                }
            };
            if load < 0.0 {
                return Err(TraceError::NegativeLoad {
                    line,
                    column: load_name.clone(),
                    value: load_text.to_owned(),
                });
            }
            times.push(millis);
            // `+ 0.0` turns a "-0" into 0.
            loads.push(load + 0.0);
        }
        if times.is_empty() {
            return Err(TraceError::NoData);
        }
        Ok(Trace { times, loads })
    }

    /// A trace from points in memory, such as a generated pattern.
    pub fn from_points(points: Vec<(Timestamp, f64)>) -> Result<Trace, TraceError> {
        if points.is_empty() {
            return Err(TraceError::NoPoints);
        }
        let mut times = Vec::with_capacity(points.len());
        let mut loads = Vec::with_capacity(points.len());
        for (index, (time, load)) in points.into_iter().enumerate() {
            if let Some(&last) = times.last()
                && time.as_millis() <= last
            {
                return Err(TraceError::UnorderedPoints {
                    index,
                    time,
                    previous: Timestamp::from_millis(last),
                });
            }
            if !(load.is_finite() && load >= 0.0) {
                return Err(TraceError::InvalidLoad { index, load });
            }
            times.push(time.as_millis());
            loads.push(load + 0.0);
        }
        Ok(Trace { times, loads })
    }

    /// The first row's time.
    pub fn start(&self) -> Timestamp {
        Timestamp::from_millis(self.times[0])
    }

    /// The last row's time.
    pub fn end(&self) -> Timestamp {
        Timestamp::from_millis(self.times[self.times.len() - 1])
    }

    /// The number of rows (at least 1).
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Always false: a trace has at least one row. Present for the `len`/`is_empty` convention.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The rows, in time order.
    pub fn points(&self) -> impl ExactSizeIterator<Item = (Timestamp, f64)> + '_ {
        self.times
            .iter()
            .zip(&self.loads)
            .map(|(&t, &load)| (Timestamp::from_millis(t), load))
    }

    /// The load at `t`: the load of the last row whose time is `<= t`, or 0 before the first row.
    pub fn load_at(&self, t: Timestamp) -> f64 {
        match self.row_at(t.as_millis()) {
            Some(i) => self.loads[i],
            None => 0.0,
        }
    }

    /// The largest load at any time in `[from, to]`: the load at `from`, and that of every row in `(from, to]`.
    /// An empty interval (`to < from`) gives the load at `from`.
    pub fn max_load_in(&self, from: Timestamp, to: Timestamp) -> f64 {
        let first = self.row_at(from.as_millis());
        let last = self.row_at(to.as_millis());
        match (first, last) {
            (Some(a), Some(b)) if b > a => self.loads[a..=b].iter().copied().fold(0.0, f64::max),
            (Some(a), _) => self.loads[a],
            (None, Some(b)) => self.loads[..=b].iter().copied().fold(0.0, f64::max),
            (None, None) => 0.0,
        }
    }

    /// The index of the last row whose time is `<= t`.
    fn row_at(&self, t: i64) -> Option<usize> {
        self.times.partition_point(|&x| x <= t).checked_sub(1)
    }

    pub(crate) fn times_ms(&self) -> &[i64] {
        &self.times
    }

    pub(crate) fn loads(&self) -> &[f64] {
        &self.loads
    }
}

/// Walks a trace forward in time, answering "the load at `t`" in amortized O(1) for increasing `t`.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    trace: &'a Trace,
    row: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the first row. The first query must not be before the trace's start.
    pub(crate) fn new(trace: &'a Trace) -> Self {
        Cursor { trace, row: 0 }
    }

    /// The index of the last row whose time is `<= t`, for `t` not smaller than on the previous call.
    pub(crate) fn seek(&mut self, t: i64) -> usize {
        let times = self.trace.times_ms();
        while self.row + 1 < times.len() && times[self.row + 1] <= t {
            self.row += 1;
        }
        self.row
    }
}

/// The largest load over a window `[t, t + width]` that slides forward: a monotonic queue of rows, so the
/// oracle costs amortized O(1) per tick however many rows a window spans.
#[derive(Debug)]
pub(crate) struct WindowMax<'a> {
    trace: &'a Trace,
    width_ms: i64,
    /// Row indices in the window, with strictly decreasing loads from front to back.
    queue: VecDeque<usize>,
    /// The next row not yet pushed.
    next: usize,
    start: Cursor<'a>,
}

impl<'a> WindowMax<'a> {
    pub(crate) fn new(trace: &'a Trace, width_ms: i64) -> Self {
        WindowMax {
            trace,
            width_ms,
            queue: VecDeque::new(),
            next: 0,
            start: Cursor::new(trace),
        }
    }

    /// The largest load over `[t, t + width]`, for `t` not smaller than on the previous call and not before the
    /// trace's start.
    pub(crate) fn max_at(&mut self, t: i64) -> f64 {
        let times = self.trace.times_ms();
        let loads = self.trace.loads();
        let end = t.saturating_add(self.width_ms);
        while self.next < times.len() && times[self.next] <= end {
            let load = loads[self.next];
            while self.queue.back().is_some_and(|&i| loads[i] <= load) {
                self.queue.pop_back();
            }
            self.queue.push_back(self.next);
            self.next += 1;
        }
        let first = self.start.seek(t);
        while self.queue.front().is_some_and(|&i| i < first) {
            self.queue.pop_front();
        }
        self.queue.front().map_or(0.0, |&i| loads[i])
    }
}

/// Splits one CSV line into fields, reusing its buffers from line to line.
#[derive(Debug, Default)]
struct Fields {
    text: String,
    ends: Vec<usize>,
}

impl Fields {
    /// Split `line`; `Err` if a quoted field is not closed. Unquoted fields are trimmed; quoted ones keep their
    /// inner spaces.
    fn split(&mut self, line: &str) -> Result<(), ()> {
        self.text.clear();
        self.ends.clear();
        let line = line.trim_end_matches(['\n', '\r']);
        let mut rest = line;
        loop {
            let trimmed = rest.trim_start();
            if let Some(quoted) = trimmed.strip_prefix('"') {
                let mut inner = quoted;
                loop {
                    let close = inner.find('"').ok_or(())?;
                    self.text.push_str(&inner[..close]);
                    inner = &inner[close + 1..];
                    if let Some(after) = inner.strip_prefix('"') {
                        self.text.push('"');
                        inner = after;
                    } else {
                        break;
                    }
                }
                // Anything between the closing quote and the comma is kept, as spreadsheet programs do.
                let (tail, next) = match inner.find(',') {
                    Some(i) => (&inner[..i], Some(&inner[i + 1..])),
                    None => (inner, None),
                };
                self.text.push_str(tail.trim());
                self.ends.push(self.text.len());
                match next {
                    Some(n) => rest = n,
                    None => return Ok(()),
                }
            } else {
                let (field, next) = match trimmed.find(',') {
                    Some(i) => (&trimmed[..i], Some(&trimmed[i + 1..])),
                    None => (trimmed, None),
                };
                self.text.push_str(field.trim_end());
                self.ends.push(self.text.len());
                match next {
                    Some(n) => rest = n,
                    None => return Ok(()),
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
    }
}

enum TimeProblem {
    Unreadable,
    OutOfRange,
}

/// Which kind the text was, and its time in milliseconds (kept) and in nanoseconds (only to tell whether two
/// times that fall in one millisecond were really the same), since the epoch or since 0.
fn parse_time(text: &str) -> Result<(TimeKind, i64, i128), TimeProblem> {
    if let Ok(secs) = text.parse::<f64>() {
        if !secs.is_finite() {
            return Err(TimeProblem::Unreadable);
        }
        // Rounding, not truncation: 0.1 s is 100.00000000000001 ms in f64 and must stay 100.
        let millis = (secs * 1000.0).round();
        // Well inside i64, and inside the range where f64 still holds every whole millisecond.
        const LIMIT: f64 = 9_007_199_254_740_992.0;
        if millis.abs() > LIMIT {
            return Err(TimeProblem::OutOfRange);
        }
        return Ok((TimeKind::Seconds, millis as i64, (secs * 1e9) as i128));
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok((TimeKind::Timestamp, ts.as_millisecond(), ts.as_nanosecond()));
    }
    // No offset: the spec reads a naive timestamp as UTC.
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>()
        && let Ok(ts) = jiff::tz::Offset::UTC.to_timestamp(dt)
    {
        return Ok((TimeKind::Timestamp, ts.as_millisecond(), ts.as_nanosecond()));
    }
    Err(TimeProblem::Unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Trace, TraceError> {
        Trace::parse(text.as_bytes(), None)
    }

    fn parse_col(text: &str, column: &str) -> Result<Trace, TraceError> {
        Trace::parse(text.as_bytes(), Some(column))
    }

    fn rows(trace: &Trace) -> Vec<(i64, f64)> {
        trace.points().map(|(t, l)| (t.as_millis(), l)).collect()
    }

    #[test]
    fn seconds_with_comments_blank_lines_and_fractions() {
        let trace =
            parse("# a comment\n\nseconds,load\n0,1\n  # another\n0.5,2.5\n\n10,0\n").unwrap();
        assert_eq!(rows(&trace), vec![(0, 1.0), (500, 2.5), (10_000, 0.0)]);
    }

    #[test]
    fn rfc3339_utc_offsets_and_naive_times() {
        let trace = parse(
            "timestamp,requests\n\
             1998-06-25T22:00:00Z,1\n\
             1998-06-25T22:00:01.250Z,2\n\
             1998-06-26T00:00:02+02:00,3\n\
             1998-06-25T22:00:03,4\n\
             1998-06-25 22:00:04Z,5\n",
        )
        .unwrap();
        let t0 = 898_812_000_000;
        assert_eq!(
            rows(&trace),
            vec![
                (t0, 1.0),
                (t0 + 1250, 2.0),
                (t0 + 2000, 3.0),
                (t0 + 3000, 4.0),
                (t0 + 4000, 5.0)
            ]
        );
    }

    #[test]
    fn a_named_column_quoted_fields_crlf_and_a_bom() {
        let text =
            "\u{feff}\"time\",\"total, tokens\",requests\r\n0,\"1,5\",7\r\n\"60\", 8 ,\"9\"\r\n";
        assert_eq!(
            rows(&parse_col(text, "requests").unwrap()),
            vec![(0, 7.0), (60_000, 9.0)]
        );
        let err = parse_col(text, "total, tokens").unwrap_err();
        // "1,5" is one field, and not a number.
        assert!(matches!(err, TraceError::NonNumericLoad { line: 2, .. }));
        let quoted = "time,\"say \"\"hi\"\"\"\n0,1\n";
        assert_eq!(
            rows(&parse_col(quoted, "say \"hi\"").unwrap()),
            vec![(0, 1.0)]
        );
    }

    #[test]
    fn the_load_is_a_step_function() {
        let trace = parse("t,l\n10,1\n20,5\n30,2\n").unwrap();
        let at = |s| trace.load_at(Timestamp::from_millis(s));
        assert_eq!(at(9_999), 0.0);
        assert_eq!(at(10_000), 1.0);
        assert_eq!(at(19_999), 1.0);
        assert_eq!(at(20_000), 5.0);
        assert_eq!(at(99_000), 2.0);
        let max = |a, b| trace.max_load_in(Timestamp::from_millis(a), Timestamp::from_millis(b));
        assert_eq!(max(10_000, 19_999), 1.0);
        assert_eq!(max(15_000, 20_000), 5.0);
        assert_eq!(max(20_500, 25_000), 5.0);
        assert_eq!(max(25_000, 99_000), 5.0);
        assert_eq!(max(30_000, 99_000), 2.0);
        assert_eq!(max(0, 5_000), 0.0);
        assert_eq!(max(0, 10_000), 1.0);
        assert_eq!(max(20_000, 10_000), 5.0);
        assert_eq!(trace.start(), Timestamp::from_secs(10));
        assert_eq!(trace.end(), Timestamp::from_secs(30));
    }

    #[test]
    fn the_sliding_window_max_agrees_with_max_load_in() {
        let trace = parse("t,l\n0,3\n5,1\n7,4\n8,2\n12,0\n20,6\n21,1\n").unwrap();
        for width in [0, 1_000, 2_500, 4_000, 9_000, 30_000] {
            let mut window = WindowMax::new(&trace, width);
            for t in (0..25_000).step_by(500) {
                let expected =
                    trace.max_load_in(Timestamp::from_millis(t), Timestamp::from_millis(t + width));
                assert_eq!(window.max_at(t), expected, "t={t} width={width}");
            }
        }
    }

    #[test]
    fn from_points_checks_order_and_loads() {
        let t = Timestamp::from_secs;
        assert!(Trace::from_points(vec![(t(0), 1.0), (t(1), 0.0)]).is_ok());
        assert!(matches!(
            Trace::from_points(vec![]),
            Err(TraceError::NoPoints)
        ));
        assert!(matches!(
            Trace::from_points(vec![(t(1), 1.0), (t(1), 1.0)]),
            Err(TraceError::UnorderedPoints { index: 1, .. })
        ));
        assert!(matches!(
            Trace::from_points(vec![(t(1), f64::NAN)]),
            Err(TraceError::InvalidLoad { index: 0, .. })
        ));
    }

    /// Every bad input and its exact message, in one table a reviewer can read top to bottom.
    #[test]
    fn every_bad_input_has_a_clear_message() {
        struct Broken(std::io::ErrorKind);
        impl std::io::Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::new(self.0, "device went away"))
            }
        }

        let cases: Vec<(&str, Result<Trace, TraceError>)> = vec![
            ("empty input", parse("")),
            ("only comments and blank lines", parse("# nothing\n\n  \n")),
            ("a header but no rows", parse("seconds,load\n# none\n")),
            (
                "a named column that is missing",
                parse_col("timestamp,requests,total_tokens\n0,1,2\n", "load"),
            ),
            ("a header with one column", parse("seconds\n0\n")),
            (
                "a row too short for the load column",
                parse("seconds,load\n0,1\n10\n"),
            ),
            (
                "a row too short for a named column",
                parse_col("t,a,b\n0,1\n", "b"),
            ),
            ("an unclosed quote", parse("seconds,load\n0,\"1\n")),
            (
                "a time that is not a time",
                parse("seconds,load\n0,1\nnoon,2\n"),
            ),
            ("an empty time", parse("seconds,load\n,1\n")),
            ("a non-finite time", parse("seconds,load\ninf,1\n")),
            ("a time out of range", parse("seconds,load\n1e300,1\n")),
            (
                "seconds after timestamps",
                parse("timestamp,load\n2024-01-01T00:00:00Z,1\n60,2\n"),
            ),
            (
                "timestamps after seconds",
                parse("seconds,load\n0,1\n2024-01-01T00:00:00Z,2\n"),
            ),
            (
                "a repeated time",
                parse("seconds,load\n0,1\n60,2\n\n# x\n120,3\n120,4\n"),
            ),
            (
                "a time going back",
                parse("seconds,load\n0,1\n60,2\n30,3\n"),
            ),
            (
                "times in the same millisecond",
                parse("seconds,load\n0.0001,1\n0.0002,2\n"),
            ),
            (
                "a repeated timestamp",
                parse("timestamp,load\n2024-01-01T01:00:00+01:00,1\n2024-01-01T00:00:00Z,2\n"),
            ),
            ("a non-numeric load", parse("seconds,load\n0,1\n10,many\n")),
            ("an empty load", parse("seconds,load\n0,\n")),
            ("a non-finite load", parse("seconds,load\n0,NaN\n")),
            ("a negative load", parse("seconds,load\n0,1\n10,-3\n")),
            (
                "a negative load in a named column",
                parse_col("t,x,rps\n0,1,-0.5\n", "rps"),
            ),
            (
                "text that is not UTF-8",
                Trace::parse(&b"seconds,load\n0,\xff\n"[..], None),
            ),
            (
                "an unreadable input",
                Trace::parse(
                    std::io::BufReader::new(Broken(std::io::ErrorKind::Other)),
                    None,
                ),
            ),
            ("no points in memory", Trace::from_points(vec![])),
            (
                "points out of order",
                Trace::from_points(vec![
                    (Timestamp::from_secs(5), 1.0),
                    (Timestamp::from_secs(4), 1.0),
                ]),
            ),
            (
                "a negative point",
                Trace::from_points(vec![(Timestamp::from_secs(5), -1.0)]),
            ),
        ];
        let mut table = String::new();
        for (what, result) in cases {
            let message = match result {
                Ok(trace) => panic!("{what}: accepted as {trace:?}"),
                Err(e) => e.to_string(),
            };
            table.push_str(&format!("{what}:\n    {message}\n"));
        }
        insta::assert_snapshot!(table);
    }
}
