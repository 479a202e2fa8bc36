//! The output formats of `simulate`: the per-tick CSV and the JSON summary of `docs/simulation.md`, and a
//! table for people.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};

use autoscale_core::sim::{Summary, Tick};
use serde::Serialize;

/// The CSV header, exactly as the contract gives it.
pub const CSV_HEADER: &str = "t,load,metric,current,recommended,desired,ready,demand,reason";

/// The summary keys of the contract, in its order.
pub const SUMMARY_KEYS: [&str; 12] = [
    "ticks",
    "interval_s",
    "theta_u",
    "theta_o",
    "tau_u",
    "tau_o",
    "instability",
    "jitter_per_min",
    "replica_seconds",
    "scale_actions",
    "slo_violation_s",
    "max_replicas_used",
];

/// One simulated policy's results.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column<'a> {
    pub label: &'a str,
    pub service: &'a str,
    pub policy: &'a str,
    pub summary: &'a Summary,
    /// How long `max_replicas` kept demand from being served, when it did.
    pub capped: Option<&'a Capped>,
}

/// The ticks in which the load needed more replicas than `max_replicas` allows: load served by no policy
/// under that cap, whatever it decides. An extension of the summary (`capped_by_max_replicas` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Capped {
    /// Seconds in which the load exceeded `max_replicas * capacity`.
    pub seconds: f64,
    /// The cap.
    pub max_replicas: autoscale_core::Replicas,
    /// The most replicas the load needed (`ceil(load / capacity)`).
    pub peak_demand: u64,
}

impl Capped {
    /// The warning for a person, naming the run's `label`.
    pub fn warning(&self, label: &str) -> String {
        format!(
            "warning: {label}: max_replicas ({}) capped demand: for {}s the load needed more replicas (up to {}), \
             which no policy could serve; raise max_replicas to {} to serve it",
            self.max_replicas, self.seconds, self.peak_demand, self.peak_demand
        )
    }
}

/// Counts, tick by tick, the seconds in which demand exceeded the cap.
#[derive(Debug)]
pub(crate) struct CapCounter {
    max_replicas: autoscale_core::Replicas,
    ticks: u64,
    peak_demand: u64,
}

impl CapCounter {
    pub fn new(max_replicas: autoscale_core::Replicas) -> Self {
        CapCounter {
            max_replicas,
            ticks: 0,
            peak_demand: 0,
        }
    }

    pub fn push(&mut self, tick: &Tick) {
        // `demand` is ceil(load / capacity): above max exactly when the load exceeds max * capacity.
        if tick.demand > u64::from(self.max_replicas) {
            self.ticks += 1;
            self.peak_demand = self.peak_demand.max(tick.demand);
        }
    }

    /// The cap's effect over a run whose ticks were `interval_s` apart; `None` when it never bound.
    pub fn finish(&self, interval_s: f64) -> Option<Capped> {
        (self.ticks > 0).then_some(Capped {
            seconds: self.ticks as f64 * interval_s,
            max_replicas: self.max_replicas,
            peak_demand: self.peak_demand,
        })
    }
}

/// Writes one CSV row per tick as the ticks stream by. Write errors are kept and reported by
/// [`finish`](CsvTicks::finish), because the simulator's callback cannot return them.
pub(crate) struct CsvTicks<'w> {
    out: BufWriter<&'w mut dyn Write>,
    error: Option<io::Error>,
    reason: String,
}

impl<'w> CsvTicks<'w> {
    pub fn new(out: &'w mut dyn Write) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(1 << 16, out);
        writeln!(out, "{CSV_HEADER}")?;
        Ok(CsvTicks {
            out,
            error: None,
            reason: String::new(),
        })
    }

    pub fn write(&mut self, tick: &Tick) {
        if self.error.is_some() {
            return;
        }
        self.reason.clear();
        let _ = write!(self.reason, "{}", tick.reason);
        // f64's Display is the shortest decimal that reads back to the same number: exact, as the contract
        // asks, and "10" rather than "10.0".
        let result = write!(
            self.out,
            "{},{},{},{},{},{},{},{},",
            tick.t,
            tick.load,
            tick.metric,
            tick.current,
            tick.recommended,
            tick.desired,
            tick.ready,
            tick.demand
        )
        .and_then(|()| write_csv_field(&mut self.out, &self.reason))
        .and_then(|()| self.out.write_all(b"\n"));
        if let Err(e) = result {
            self.error = Some(e);
        }
    }

    pub fn finish(mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => self.out.flush(),
        }
    }
}

/// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break.
pub(crate) fn write_csv_field(out: &mut (impl Write + ?Sized), field: &str) -> io::Result<()> {
    if field.contains([',', '"', '\n', '\r']) {
        write!(out, "\"{}\"", field.replace('"', "\"\""))
    } else {
        out.write_all(field.as_bytes())
    }
}

#[derive(Serialize)]
struct JsonSummary<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    service: &'a str,
    policy: &'a str,
    #[serde(flatten)]
    summary: &'a Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    capped_by_max_replicas: Option<&'a Capped>,
}

impl<'a> JsonSummary<'a> {
    fn new(column: &Column<'a>, named: bool) -> Self {
        JsonSummary {
            name: named.then_some(column.label),
            service: column.service,
            policy: column.policy,
            summary: column.summary,
            capped_by_max_replicas: column.capped,
        }
    }
}

/// The contract's JSON object.
pub(crate) fn write_json(out: &mut dyn Write, column: &Column<'_>) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &JsonSummary::new(column, false))?;
    writeln!(out)
}

/// One contract object per compared policy, each with its column `name`.
pub(crate) fn write_json_array(out: &mut dyn Write, columns: &[Column<'_>]) -> io::Result<()> {
    let objects: Vec<JsonSummary<'_>> = columns.iter().map(|c| JsonSummary::new(c, true)).collect();
    serde_json::to_writer_pretty(&mut *out, &objects)?;
    writeln!(out)
}

/// One summary row per compared policy: `name,service,policy,` then the contract's keys.
pub(crate) fn write_summary_csv(out: &mut dyn Write, columns: &[Column<'_>]) -> io::Result<()> {
    writeln!(out, "name,service,policy,{}", SUMMARY_KEYS.join(","))?;
    for column in columns {
        let value = serde_json::to_value(column.summary)?;
        for (i, field) in [column.label, column.service, column.policy]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                out.write_all(b",")?;
            }
            write_csv_field(out, field)?;
        }
        for key in SUMMARY_KEYS {
            match &value[key] {
                serde_json::Value::Number(n) => write!(out, ",{n}")?,
                other => write!(out, ",{other}")?,
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// How each summary key is shown to a person.
/// A summary row: its key, what it means, and how its value is written.
type Row = (&'static str, &'static str, fn(&Summary) -> String);

fn rows() -> [Row; 12] {
    fn pct(v: f64) -> String {
        format!("{v:.2}")
    }
    [
        ("ticks", "ticks simulated", |s| s.ticks.to_string()),
        ("interval_s", "seconds between ticks", |s| {
            format!("{}", s.interval_s)
        }),
        ("theta_u", "under-provisioning, % of demand", |s| {
            pct(s.theta_u)
        }),
        ("theta_o", "over-provisioning, % of demand", |s| {
            pct(s.theta_o)
        }),
        ("tau_u", "time under-provisioned, %", |s| pct(s.tau_u)),
        ("tau_o", "time over-provisioned, %", |s| pct(s.tau_o)),
        ("instability", "supply moving against demand, %", |s| {
            pct(s.instability)
        }),
        (
            "jitter_per_min",
            "supply moves beyond demand's, per minute",
            |s| format!("{:.3}", s.jitter_per_min),
        ),
        ("replica_seconds", "replica-seconds paid", |s| {
            format!("{:.0}", s.replica_seconds)
        }),
        ("scale_actions", "scaling actions", |s| {
            s.scale_actions.to_string()
        }),
        ("slo_violation_s", "seconds with load not served", |s| {
            format!("{:.0}", s.slo_violation_s)
        }),
        ("max_replicas_used", "most replicas requested", |s| {
            s.max_replicas_used.to_string()
        }),
    ]
}

/// The summary for a person: one row per metric, one column per policy.
pub(crate) fn table(columns: &[Column<'_>]) -> String {
    let rows = rows();
    let key_width = rows.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
    let desc_width = rows.iter().map(|(_, d, _)| d.len()).max().unwrap_or(0);
    let cells: Vec<Vec<String>> = columns
        .iter()
        .map(|c| {
            let mut cells = vec![c.label.to_owned(), c.policy.to_owned()];
            cells.extend(rows.iter().map(|(_, _, f)| f(c.summary)));
            cells
        })
        .collect();
    let widths: Vec<usize> = cells
        .iter()
        .map(|c| {
            c.iter()
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                .max(8)
        })
        .collect();
    let mut out = String::new();
    let mut line = |key: &str, desc: &str, index: usize| {
        let mut s = format!("{key:<key_width$}  {desc:<desc_width$}");
        for (cells, width) in cells.iter().zip(&widths) {
            let _ = write!(s, "  {:>width$}", cells[index]);
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line("", "", 0);
    line("policy", "", 1);
    for (i, (key, desc, _)) in rows.iter().enumerate() {
        line(key, desc, i + 2);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let mut out = Vec::new();
        write_csv_field(&mut out, "scale_up").unwrap();
        out.push(b'|');
        write_csv_field(&mut out, "stabilized: recommended 3, stabilized 3 -> 4").unwrap();
        out.push(b'|');
        write_csv_field(&mut out, "say \"hi\"").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "scale_up|\"stabilized: recommended 3, stabilized 3 -> 4\"|\"say \"\"hi\"\"\""
        );
    }
}
