//! `--chart OUT.svg`: demand and replicas over time, with the scaling actions marked.
//!
//! plotters draws with its SVG backend and no font feature, so text is written as SVG `<text>` and no font
//! library or fontconfig is needed at build or run time.

use std::path::Path;
use std::time::Duration;

use autoscale_core::Replicas;
use autoscale_core::sim::Tick;
use plotters::prelude::*;

use crate::error::CliError;

/// Beyond this many ticks, ticks are grouped into buckets so that the SVG stays small and readable.
const MAX_POINTS: u64 = 1500;

/// One point of a series: one tick, or one bucket of ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    /// Seconds since the start (of the bucket's first tick).
    pub t: f64,
    /// The bucket's largest demand.
    pub demand: u64,
    /// The bucket's largest requested count.
    pub requested: Replicas,
    /// The bucket's smallest ready count: the chart shows the worst of both.
    pub ready: Replicas,
    /// Some tick in the bucket scaled up.
    pub up: bool,
    /// Some tick in the bucket scaled down.
    pub down: bool,
}

/// Collects the points of one run as its ticks stream by, grouping ticks into buckets on long runs.
#[derive(Debug)]
pub(crate) struct Recorder {
    per_bucket: u64,
    in_bucket: u64,
    current: Option<Point>,
    points: Vec<Point>,
}

impl Recorder {
    /// A recorder for a run of `span` at one tick per `interval`.
    pub fn new(interval: Duration, span: Duration) -> Self {
        let ticks = span.as_millis() / interval.as_millis().max(1) + 1;
        let ticks = u64::try_from(ticks).unwrap_or(u64::MAX);
        Recorder {
            per_bucket: ticks.div_ceil(MAX_POINTS).max(1),
            in_bucket: 0,
            current: None,
            points: Vec::new(),
        }
    }

    pub fn push(&mut self, tick: &Tick) {
        let up = tick.desired > tick.current;
        let down = tick.desired < tick.current;
        match self.current.as_mut() {
            Some(p) => {
                p.demand = p.demand.max(tick.demand);
                p.requested = p.requested.max(tick.desired);
                p.ready = p.ready.min(tick.ready);
                p.up |= up;
                p.down |= down;
            }
            None => {
                self.current = Some(Point {
                    t: tick.t,
                    demand: tick.demand,
                    requested: tick.desired,
                    ready: tick.ready,
                    up,
                    down,
                });
            }
        }
        self.in_bucket += 1;
        if self.in_bucket == self.per_bucket {
            self.points.extend(self.current.take());
            self.in_bucket = 0;
        }
    }

    /// The points; more than one tick per point when the run was long.
    pub fn finish(mut self) -> Vec<Point> {
        self.points.extend(self.current.take());
        self.points
    }
}

/// One run's points under its label.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub label: String,
    pub points: Vec<Point>,
}

/// A step function through `(t, y)` points: each value holds until the next point.
fn steps(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (t, y) in points {
        if let Some(&(_, prev)) = out.last() {
            out.push((t, prev));
        }
        out.push((t, y));
    }
    out
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(214, 39, 40),
    RGBColor(140, 86, 75),
];
const DEMAND: RGBColor = RGBColor(150, 150, 150);
const REQUESTED: RGBColor = RGBColor(31, 119, 180);
const READY: RGBColor = RGBColor(255, 127, 14);
const UP: RGBColor = RGBColor(44, 160, 44);
const DOWN: RGBColor = RGBColor(214, 39, 40);

/// Draw `series` to the SVG file at `path`. With one series and `markers`, it shows requested and ready
/// replicas with each scaling action marked; with several, the ready replicas of each.
pub(crate) fn write(
    path: &Path,
    title: &str,
    caption: &str,
    series: &[Series],
    markers: bool,
) -> Result<(), CliError> {
    // A chart path that cannot be written is a bad argument, like an unreadable trace: exit code 2.
    draw(path, title, caption, series, markers)
        .map_err(|e| CliError::Input(format!("cannot write the chart {}: {e}", path.display())))
}

fn draw(
    path: &Path,
    title: &str,
    caption: &str,
    series: &[Series],
    markers: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let end = series
        .iter()
        .filter_map(|s| s.points.last())
        .map(|p| p.t)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let (unit, divisor) = if end > 3.0 * 3600.0 {
        ("hours", 3600.0)
    } else if end > 180.0 {
        ("minutes", 60.0)
    } else {
        ("seconds", 1.0)
    };
    let top = series
        .iter()
        .flat_map(|s| s.points.iter())
        .map(|p| (p.demand as f64).max(f64::from(p.requested)))
        .fold(1.0_f64, f64::max);
    let top = (top * 1.1).ceil() + 1.0;
    let first = series.first().map(|s| s.points.as_slice()).unwrap_or(&[]);

    let root = SVGBackend::new(path, (1280, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..end / divisor, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc(format!("time since start ({unit}); {caption}"))
        .y_desc("replicas")
        .x_label_formatter(&|v| format!("{v}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;

    let x = |t: f64| t / divisor;
    let demand = steps(first.iter().map(|p| (x(p.t), p.demand as f64)));
    chart
        .draw_series(AreaSeries::new(demand, 0.0, DEMAND.mix(0.25)).border_style(DEMAND))?
        .label("demand: ceil(load / capacity)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], DEMAND.mix(0.4).filled()));

    if markers {
        let requested = steps(first.iter().map(|p| (x(p.t), f64::from(p.requested))));
        chart
            .draw_series(LineSeries::new(requested, REQUESTED.stroke_width(2)))?
            .label("requested replicas")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], REQUESTED.stroke_width(2)));
        let ready = steps(first.iter().map(|p| (x(p.t), f64::from(p.ready))));
        chart
            .draw_series(LineSeries::new(ready, READY.stroke_width(2)))?
            .label("ready replicas")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], READY.stroke_width(2)));
        chart
            .draw_series(
                first
                    .iter()
                    .filter(|p| p.up)
                    .map(|p| TriangleMarker::new((x(p.t), f64::from(p.requested)), 6, UP.filled())),
            )?
            .label("scale up")
            .legend(|(x, y)| TriangleMarker::new((x + 8, y), 6, UP.filled()));
        chart
            .draw_series(first.iter().filter(|p| p.down).map(|p| {
                EmptyElement::at((x(p.t), f64::from(p.requested)))
                    + Polygon::new(vec![(-6, -4), (6, -4), (0, 6)], DOWN.filled())
            }))?
            .label("scale down")
            .legend(|(x, y)| {
                Polygon::new(
                    vec![(x + 2, y - 4), (x + 14, y - 4), (x + 8, y + 6)],
                    DOWN.filled(),
                )
            });
    } else {
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            // Policies often agree for long stretches: earlier lines are wider, so they show beneath later ones.
            let width = u32::try_from(series.len() - i).unwrap_or(1) + 1;
            let ready = steps(s.points.iter().map(|p| (x(p.t), f64::from(p.ready))));
            chart
                .draw_series(LineSeries::new(ready, color.stroke_width(width)))?
                .label(format!("{}: ready replicas", s.label))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(width))
                });
        }
    }

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_hold_each_value_until_the_next_point() {
        let s = steps([(0.0, 1.0), (10.0, 3.0), (20.0, 2.0)].into_iter());
        assert_eq!(
            s,
            vec![
                (0.0, 1.0),
                (10.0, 1.0),
                (10.0, 3.0),
                (20.0, 3.0),
                (20.0, 2.0)
            ]
        );
    }
}
