//! `autoscale simulate`: replay a trace or a pattern through the real engine (`autoscale_core::sim`) and
//! report, as `docs/simulation.md` defines the output.

mod chart;
mod contender;
mod output;

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;
use std::time::Duration;

use autoscale_core::sim::{Model, Pattern, PatternOptions, Summary, Trace};

use crate::cli::{Format, SimulateArgs};
use crate::config::{Config, Env, LoadOptions, ServiceConfig};
use crate::error::CliError;

pub use contender::{Contender, DEFAULT_SERVICE};

/// What the load came from, for headers and chart titles.
#[derive(Debug, Clone)]
pub(crate) struct TraceSource {
    pub description: String,
    pub span: Duration,
}

/// Run `autoscale simulate`, writing the report to `out` (and the chart, if asked, to its file).
pub fn run(args: &SimulateArgs, env: &Env, out: &mut dyn Write) -> Result<(), CliError> {
    let base = match &args.config {
        Some(path) => {
            let config = load_config(path, env)?;
            let service = pick_service(&config, args.service.as_deref(), path)?;
            Contender::from_service(service.name.clone(), service)
        }
        None => Contender::builtin(),
    };
    let (trace, source) = load_trace(args)?;
    if let Some(chart) = &args.chart {
        // Refuse an unwritable chart path before a long run, and before any CSV row is written.
        File::create(chart).map_err(|e| {
            CliError::Input(format!("cannot write the chart {}: {e}", chart.display()))
        })?;
    }
    let model = Model {
        capacity: args.capacity,
        startup_delay: args.startup_delay,
        initial: args.initial,
        metric: args.metric,
    };
    model
        .validate()
        .map_err(|e| CliError::Input(format!("--capacity: {e}")))?;

    if args.compare.is_empty() {
        single(args, &base, &trace, &source, &model, out)
    } else {
        let mut contenders = Vec::new();
        if args.config.is_some() {
            contenders.push(base.clone());
        }
        for entry in &args.compare {
            contenders.push(Contender::parse(entry, &base, env)?);
        }
        contender::dedupe_labels(&mut contenders);
        compare(args, &contenders, &trace, &source, &model, out)
    }
}

pub(crate) fn load_config(path: &Path, env: &Env) -> Result<Config, CliError> {
    // The simulator never talks to Prometheus: a file written only for simulation needs no URL.
    Ok(Config::load(path, env, LoadOptions { url_optional: true })?)
}

pub(crate) fn pick_service<'c>(
    config: &'c Config,
    name: Option<&str>,
    path: &Path,
) -> Result<&'c ServiceConfig, CliError> {
    let names = || {
        config
            .services
            .iter()
            .map(|s| format!("{:?}", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(name) => config.service(name).ok_or_else(|| {
            CliError::Input(format!(
                "unknown service {name:?} in {}; its services are {}",
                path.display(),
                names()
            ))
        }),
        None => match config.services.as_slice() {
            [only] => Ok(only),
            [] => Err(CliError::Input(format!(
                "{} has no [[service]] to simulate: the services of its [[discover]] sections are found \
                 at run time; write one as a [[service]] to simulate it",
                path.display()
            ))),
            _ => Err(CliError::Input(format!(
                "{} has {} services ({}): choose one with --service",
                path.display(),
                config.services.len(),
                names()
            ))),
        },
    }
}

fn load_trace(args: &SimulateArgs) -> Result<(Trace, TraceSource), CliError> {
    match &args.trace {
        Some(path) => {
            let file = File::open(path).map_err(|e| {
                CliError::Input(format!("cannot read the trace {}: {e}", path.display()))
            })?;
            let trace = Trace::parse(BufReader::new(file), args.column.as_deref())
                .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
            let span = trace.end().saturating_since(trace.start());
            let column = args
                .column
                .as_deref()
                .map(|c| format!(", column {c:?}"))
                .unwrap_or_default();
            let description = format!("{}{column} ({} rows)", path.display(), trace.len());
            Ok((trace, TraceSource { description, span }))
        }
        None => {
            let kind = args.pattern.as_deref().unwrap_or("spike");
            let shape = &args.shape;
            let options = PatternOptions {
                base: shape.base,
                peak: shape.peak,
                period: shape.period,
                at: shape.at,
                width: shape.width,
            };
            let pattern =
                Pattern::new(kind, &options).map_err(|e| CliError::Input(e.to_string()))?;
            let trace = pattern.trace(shape.duration, shape.resolution);
            let description = format!(
                "pattern {pattern} over {}",
                crate::config::format_duration(shape.duration)
            );
            Ok((
                trace,
                TraceSource {
                    description,
                    span: shape.duration,
                },
            ))
        }
    }
}

fn single(
    args: &SimulateArgs,
    contender: &Contender,
    trace: &Trace,
    source: &TraceSource,
    model: &Model,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let stdout = || CliError::output("standard output");
    let mut recorder = args
        .chart
        .as_ref()
        .map(|_| chart::Recorder::new(contender.interval(), source.span));
    let mut cap = output::CapCounter::new(contender.max_replicas());
    let summary = if args.format == Format::Csv {
        let mut csv = output::CsvTicks::new(out).map_err(stdout())?;
        let summary = contender.run(trace, model, |tick| {
            csv.write(tick);
            cap.push(tick);
            if let Some(r) = recorder.as_mut() {
                r.push(tick);
            }
        });
        csv.finish().map_err(stdout())?;
        summary
    } else {
        contender.run(trace, model, |tick| {
            cap.push(tick);
            if let Some(r) = recorder.as_mut() {
                r.push(tick);
            }
        })
    };
    let capped = cap.finish(summary.interval_s);
    warn_capped(args.format, &[(&contender.label, capped.as_ref())]);
    if let (Some(path), Some(recorder)) = (&args.chart, recorder) {
        let title = format!(
            "{} ({}) on {}",
            contender.service, contender.policy, source.description
        );
        let series = vec![chart::Series {
            label: contender.label.clone(),
            points: recorder.finish(),
        }];
        chart::write(path, &title, &chart_caption(model), &series, true)?;
    }
    let columns = [output::Column {
        label: &contender.label,
        service: &contender.service,
        policy: &contender.policy,
        summary: &summary,
        capped: capped.as_ref(),
    }];
    match args.format {
        Format::Csv => Ok(()),
        Format::Json => output::write_json(out, &columns[0]).map_err(stdout()),
        Format::Table => {
            let header = format!(
                "{} ({}) on {}\n{}\n\n",
                contender.service,
                contender.policy,
                source.description,
                run_line(&summary, model)
            );
            out.write_all(header.as_bytes())
                .and_then(|()| out.write_all(output::table(&columns).as_bytes()))
                .map_err(stdout())
        }
    }
}

fn compare(
    args: &SimulateArgs,
    contenders: &[Contender],
    trace: &Trace,
    source: &TraceSource,
    model: &Model,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let stdout = || CliError::output("standard output");
    let mut summaries: Vec<Summary> = Vec::with_capacity(contenders.len());
    let mut caps = Vec::with_capacity(contenders.len());
    let mut series = Vec::new();
    for contender in contenders {
        let mut recorder = args
            .chart
            .as_ref()
            .map(|_| chart::Recorder::new(contender.interval(), source.span));
        let mut cap = output::CapCounter::new(contender.max_replicas());
        let summary = contender.run(trace, model, |tick| {
            cap.push(tick);
            if let Some(r) = recorder.as_mut() {
                r.push(tick);
            }
        });
        caps.push(cap.finish(summary.interval_s));
        if let Some(r) = recorder {
            series.push(chart::Series {
                label: contender.label.clone(),
                points: r.finish(),
            });
        }
        summaries.push(summary);
    }
    if let Some(path) = &args.chart {
        let title = format!("Compared on {}", source.description);
        chart::write(path, &title, &chart_caption(model), &series, false)?;
    }
    let columns: Vec<output::Column<'_>> = contenders
        .iter()
        .zip(&summaries)
        .zip(&caps)
        .map(|((c, summary), capped)| output::Column {
            label: &c.label,
            service: &c.service,
            policy: &c.policy,
            summary,
            capped: capped.as_ref(),
        })
        .collect();
    let warnings: Vec<_> = columns.iter().map(|c| (c.label, c.capped)).collect();
    warn_capped(args.format, &warnings);
    match args.format {
        Format::Csv => output::write_summary_csv(out, &columns).map_err(stdout()),
        Format::Json => output::write_json_array(out, &columns).map_err(stdout()),
        Format::Table => {
            let header = format!(
                "Compared on {}\n{}\n\n",
                source.description,
                model_line(model)
            );
            out.write_all(header.as_bytes())
                .and_then(|()| out.write_all(output::table(&columns).as_bytes()))
                .map_err(stdout())
        }
    }
}

/// For a person (table and CSV), a warning on standard error for each run whose `max_replicas` capped demand;
/// JSON carries it as `capped_by_max_replicas` instead.
fn warn_capped(format: Format, runs: &[(&str, Option<&output::Capped>)]) {
    if format == Format::Json {
        return;
    }
    for (label, capped) in runs {
        if let Some(capped) = capped {
            eprintln!("{}", capped.warning(label));
        }
    }
}

fn model_line(model: &Model) -> String {
    let initial = model
        .initial
        .map_or("min_replicas".to_owned(), |n| n.to_string());
    format!(
        "capacity {} per replica, startup delay {}, initial {initial}, metric {}",
        model.capacity,
        crate::config::format_duration(model.startup_delay),
        model.metric
    )
}

fn run_line(summary: &Summary, model: &Model) -> String {
    let interval = Duration::from_secs_f64(summary.interval_s);
    format!(
        "{} ticks of {}; {}",
        summary.ticks,
        crate::config::format_duration(interval),
        model_line(model)
    )
}

fn chart_caption(model: &Model) -> String {
    format!(
        "capacity {} per replica, startup delay {}",
        model.capacity,
        crate::config::format_duration(model.startup_delay)
    )
}
