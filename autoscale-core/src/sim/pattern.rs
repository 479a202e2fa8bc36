//! Built-in synthetic load patterns, for trying a policy without a trace file.

use std::f64::consts::TAU;
use std::fmt;
use std::time::Duration;

use crate::Timestamp;
use crate::sim::Trace;

/// A synthetic load shape over time. Loads are in the trace's unit (with the default capacity of 1.0, one
/// replica serves a load of 1 at utilization 1). Time runs from 0; the trace starts at [`Timestamp::EPOCH`].
///
/// Build one from a kind name and options with [`Pattern::new`], or write the variant directly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pattern {
    /// `base` until `at`, then `peak` for good: how a policy answers a sudden, lasting change.
    Step {
        /// Load before the step.
        base: f64,
        /// Load after the step.
        peak: f64,
        /// When the step happens.
        at: Duration,
    },
    /// `base` until `at`, then a straight line up to `peak` over `width`, then `peak`: slow growth.
    Ramp {
        /// Load before the ramp.
        base: f64,
        /// Load after the ramp.
        peak: f64,
        /// When the ramp starts.
        at: Duration,
        /// How long it lasts (0 makes it a step).
        width: Duration,
    },
    /// A smooth cycle between `base` and `peak`: `base + (peak - base) * (1 - cos(2 pi t / period)) / 2`. It
    /// starts at `base` and reaches `peak` at half a period: daily traffic, sped up.
    Sine {
        /// The trough.
        base: f64,
        /// The crest.
        peak: f64,
        /// The length of one cycle.
        period: Duration,
    },
    /// `base`, except `peak` during `[at, at + width)`: a flash crowd that comes and goes.
    Spike {
        /// Load outside the spike.
        base: f64,
        /// Load during the spike.
        peak: f64,
        /// When the spike starts.
        at: Duration,
        /// How long it lasts.
        width: Duration,
    },
    /// A straight line from `base` up to `peak` over each period, then a drop back to `base`: repeated growth
    /// with sudden release, which shows how fast a policy gives replicas back.
    Sawtooth {
        /// Load at the start of each period.
        base: f64,
        /// Load reached at the end of each period.
        peak: f64,
        /// The length of one tooth.
        period: Duration,
    },
}

/// The shape options of [`Pattern::new`]. `None` takes the kind's default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PatternOptions {
    /// The low load (default [`Pattern::DEFAULT_BASE`]).
    pub base: Option<f64>,
    /// The high load (default [`Pattern::DEFAULT_PEAK`]).
    pub peak: Option<f64>,
    /// The cycle length of `sine` (default 20 min) and `sawtooth` (default 15 min).
    pub period: Option<Duration>,
    /// When `step` (default 15 min), `ramp` (default 10 min) and `spike` (default 20 min) start.
    pub at: Option<Duration>,
    /// How long `ramp` (default 30 min) and `spike` (default 2 min) last.
    pub width: Option<Duration>,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The kind is not one of [`Pattern::KINDS`].
    #[error("unknown pattern {0:?}: expected one of step, ramp, sine, spike, sawtooth")]
    UnknownKind(String),
    /// An option the kind does not have.
    #[error("pattern {kind} has no option {option}; its options are {}", .allowed.join(", "))]
    NotAnOption {
        /// The pattern's kind.
        kind: &'static str,
        /// The option given.
        option: &'static str,
        /// The options the kind has.
        allowed: &'static [&'static str],
    },
    /// A load that is negative or not finite.
    #[error("pattern option {option} must be a finite number >= 0, got {value}")]
    Load {
        /// `base` or `peak`.
        option: &'static str,
        /// The value given.
        value: f64,
    },
    /// A period or width of zero, where that would make no pattern.
    #[error("pattern option {option} of {kind} must be longer than 0")]
    ZeroLength {
        /// The pattern's kind.
        kind: &'static str,
        /// `period` or `width`.
        option: &'static str,
    },
}

impl Pattern {
    /// The kinds, as [`Pattern::new`] and [`Pattern::kind`] name them.
    pub const KINDS: [&'static str; 5] = ["step", "ramp", "sine", "spike", "sawtooth"];
    /// The default low load: with a target of 0.6 per replica, about 2 replicas.
    pub const DEFAULT_BASE: f64 = 1.0;
    /// The default high load: with a target of 0.6 per replica, 10 replicas.
    pub const DEFAULT_PEAK: f64 = 6.0;
    /// A duration that shows every default shape at least once.
    pub const DEFAULT_DURATION: Duration = Duration::from_secs(3600);
    /// A resolution finer than any sensible evaluation interval.
    pub const DEFAULT_RESOLUTION: Duration = Duration::from_secs(1);

    /// The pattern of `kind` with `options` over the kind's defaults.
    pub fn new(kind: &str, options: &PatternOptions) -> Result<Pattern, PatternError> {
        const MIN: u64 = 60;
        let (kind, allowed): (&'static str, &'static [&'static str]) = match kind {
            "step" => ("step", &["base", "peak", "at"]),
            "ramp" => ("ramp", &["base", "peak", "at", "width"]),
            "sine" => ("sine", &["base", "peak", "period"]),
            "spike" => ("spike", &["base", "peak", "at", "width"]),
            "sawtooth" => ("sawtooth", &["base", "peak", "period"]),
            other => return Err(PatternError::UnknownKind(other.to_owned())),
        };
        let given = [
            ("period", options.period.is_some()),
            ("at", options.at.is_some()),
            ("width", options.width.is_some()),
        ];
        if let Some(&(option, _)) = given
            .iter()
            .find(|(name, set)| *set && !allowed.contains(name))
        {
            return Err(PatternError::NotAnOption {
                kind,
                option,
                allowed,
            });
        }
        let load = |option: &'static str, value: Option<f64>, default: f64| match value {
            None => Ok(default),
            Some(v) if v.is_finite() && v >= 0.0 => Ok(v),
            Some(value) => Err(PatternError::Load { option, value }),
        };
        let base = load("base", options.base, Self::DEFAULT_BASE)?;
        let peak = load("peak", options.peak, Self::DEFAULT_PEAK)?;
        let minutes = |m: u64| Duration::from_secs(m * MIN);
        let positive = |option: &'static str, value: Duration| {
            if value.is_zero() {
                Err(PatternError::ZeroLength { kind, option })
            } else {
                Ok(value)
            }
        };
        Ok(match kind {
            "step" => Pattern::Step {
                base,
                peak,
                at: options.at.unwrap_or(minutes(15)),
            },
            "ramp" => Pattern::Ramp {
                base,
                peak,
                at: options.at.unwrap_or(minutes(10)),
                width: options.width.unwrap_or(minutes(30)),
            },
            "sine" => Pattern::Sine {
                base,
                peak,
                period: positive("period", options.period.unwrap_or(minutes(20)))?,
            },
            "spike" => Pattern::Spike {
                base,
                peak,
                at: options.at.unwrap_or(minutes(20)),
                width: positive("width", options.width.unwrap_or(minutes(2)))?,
            },
            _ => Pattern::Sawtooth {
                base,
                peak,
                period: positive("period", options.period.unwrap_or(minutes(15)))?,
            },
        })
    }

    /// The kind's name, as in [`Pattern::KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Pattern::Step { .. } => "step",
            Pattern::Ramp { .. } => "ramp",
            Pattern::Sine { .. } => "sine",
            Pattern::Spike { .. } => "spike",
            Pattern::Sawtooth { .. } => "sawtooth",
        }
    }

    /// The load at `t` after the start. Never negative, even for hand-built variants with odd values.
    pub fn load_at(&self, t: Duration) -> f64 {
        let load = match *self {
            Pattern::Step { base, peak, at } => {
                if t < at {
                    base
                } else {
                    peak
                }
            }
            Pattern::Ramp {
                base,
                peak,
                at,
                width,
            } => {
                if t < at {
                    base
                } else if t >= at + width {
                    peak
                } else {
                    let f = (t - at).as_secs_f64() / width.as_secs_f64();
                    base + (peak - base) * f
                }
            }
            Pattern::Sine { base, peak, period } => {
                let phase = phase(t, period);
                base + (peak - base) * (1.0 - (TAU * phase).cos()) / 2.0
            }
            Pattern::Spike {
                base,
                peak,
                at,
                width,
            } => {
                if t >= at && t < at + width {
                    peak
                } else {
                    base
                }
            }
            Pattern::Sawtooth { base, peak, period } => base + (peak - base) * phase(t, period),
        };
        if load.is_finite() { load.max(0.0) } else { 0.0 }
    }

    /// The pattern sampled every `resolution` from 0 to `duration` inclusive. A resolution under 1 ms is taken
    /// as 1 ms (trace times are whole milliseconds).
    pub fn trace(&self, duration: Duration, resolution: Duration) -> Trace {
        let step = crate::types::duration_millis(resolution).max(1);
        let end = crate::types::duration_millis(duration);
        let points: Vec<(Timestamp, f64)> = (0..=end / step)
            .map(|k| {
                let ms = k * step;
                let t = Duration::from_millis(ms as u64);
                (Timestamp::from_millis(ms), self.load_at(t))
            })
            .collect();
        Trace::from_points(points).expect("increasing times and finite loads >= 0")
    }
}

/// Where `t` falls in its period, in `[0, 1)`. Integer milliseconds keep long runs free of drift.
fn phase(t: Duration, period: Duration) -> f64 {
    let p = period.as_millis().max(1);
    (t.as_millis() % p) as f64 / p as f64
}

impl fmt::Display for Pattern {
    /// The kind and its options, such as `sine(base=1, peak=6, period=20m)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: Duration| {
            let s = d.as_secs_f64();
            if s >= 3600.0 && s % 3600.0 == 0.0 {
                format!("{}h", s / 3600.0)
            } else if s >= 60.0 && s % 60.0 == 0.0 {
                format!("{}m", s / 60.0)
            } else {
                format!("{s}s")
            }
        };
        match *self {
            Pattern::Step { base, peak, at } => {
                write!(f, "step(base={base}, peak={peak}, at={})", d(at))
            }
            Pattern::Ramp {
                base,
                peak,
                at,
                width,
            } => write!(
                f,
                "ramp(base={base}, peak={peak}, at={}, width={})",
                d(at),
                d(width)
            ),
            Pattern::Sine { base, peak, period } => {
                write!(f, "sine(base={base}, peak={peak}, period={})", d(period))
            }
            Pattern::Spike {
                base,
                peak,
                at,
                width,
            } => write!(
                f,
                "spike(base={base}, peak={peak}, at={}, width={})",
                d(at),
                d(width)
            ),
            Pattern::Sawtooth { base, peak, period } => {
                write!(
                    f,
                    "sawtooth(base={base}, peak={peak}, period={})",
                    d(period)
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn at_min(p: &Pattern, minutes: f64) -> f64 {
        p.load_at(Duration::from_secs_f64(minutes * 60.0))
    }

    #[test]
    fn defaults_are_documented_values() {
        let none = PatternOptions::default();
        let all: Vec<String> = Pattern::KINDS
            .iter()
            .map(|k| Pattern::new(k, &none).unwrap().to_string())
            .collect();
        insta::assert_snapshot!(all.join("\n"), @r"
        step(base=1, peak=6, at=15m)
        ramp(base=1, peak=6, at=10m, width=30m)
        sine(base=1, peak=6, period=20m)
        spike(base=1, peak=6, at=20m, width=2m)
        sawtooth(base=1, peak=6, period=15m)
        ");
    }

    #[test]
    fn shapes() {
        let step = Pattern::new("step", &PatternOptions::default()).unwrap();
        assert_eq!(at_min(&step, 14.99), 1.0);
        assert_eq!(at_min(&step, 15.0), 6.0);

        let ramp = Pattern::Ramp {
            base: 2.0,
            peak: 12.0,
            at: 10 * MIN,
            width: 10 * MIN,
        };
        assert_eq!(at_min(&ramp, 5.0), 2.0);
        assert_eq!(at_min(&ramp, 15.0), 7.0);
        assert_eq!(at_min(&ramp, 20.0), 12.0);

        let sine = Pattern::Sine {
            base: 1.0,
            peak: 5.0,
            period: 20 * MIN,
        };
        assert_eq!(at_min(&sine, 0.0), 1.0);
        assert!((at_min(&sine, 5.0) - 3.0).abs() < 1e-12);
        assert_eq!(at_min(&sine, 10.0), 5.0);
        assert_eq!(at_min(&sine, 20.0), 1.0);

        let spike = Pattern::Spike {
            base: 1.0,
            peak: 9.0,
            at: 20 * MIN,
            width: 2 * MIN,
        };
        assert_eq!(at_min(&spike, 19.99), 1.0);
        assert_eq!(at_min(&spike, 20.0), 9.0);
        assert_eq!(at_min(&spike, 21.99), 9.0);
        assert_eq!(at_min(&spike, 22.0), 1.0);

        let saw = Pattern::Sawtooth {
            base: 0.0,
            peak: 10.0,
            period: 10 * MIN,
        };
        assert_eq!(at_min(&saw, 0.0), 0.0);
        assert_eq!(at_min(&saw, 5.0), 5.0);
        assert_eq!(at_min(&saw, 10.0), 0.0);
        assert_eq!(at_min(&saw, 17.5), 7.5);
    }

    #[test]
    fn a_peak_below_base_is_a_dip() {
        let dip = Pattern::Step {
            base: 5.0,
            peak: 1.0,
            at: MIN,
        };
        assert_eq!(at_min(&dip, 2.0), 1.0);
    }

    #[test]
    fn trace_samples_every_resolution_inclusive() {
        let p = Pattern::new("step", &PatternOptions::default()).unwrap();
        let trace = p.trace(Pattern::DEFAULT_DURATION, Pattern::DEFAULT_RESOLUTION);
        assert_eq!(trace.len(), 3601);
        assert_eq!(trace.start(), Timestamp::EPOCH);
        assert_eq!(trace.end(), Timestamp::from_secs(3600));
        assert_eq!(trace.load_at(Timestamp::from_secs(899)), 1.0);
        assert_eq!(trace.load_at(Timestamp::from_secs(900)), 6.0);
        // A zero resolution is 1 ms, not a hang.
        assert_eq!(p.trace(Duration::from_millis(3), Duration::ZERO).len(), 4);
    }

    #[test]
    fn bad_options_are_named() {
        let messages: Vec<String> = [
            ("wave", PatternOptions::default()),
            (
                "sine",
                PatternOptions {
                    at: Some(MIN),
                    ..Default::default()
                },
            ),
            (
                "step",
                PatternOptions {
                    width: Some(MIN),
                    ..Default::default()
                },
            ),
            (
                "spike",
                PatternOptions {
                    peak: Some(-1.0),
                    ..Default::default()
                },
            ),
            (
                "sawtooth",
                PatternOptions {
                    period: Some(Duration::ZERO),
                    ..Default::default()
                },
            ),
            (
                "spike",
                PatternOptions {
                    width: Some(Duration::ZERO),
                    ..Default::default()
                },
            ),
        ]
        .iter()
        .map(|(kind, o)| Pattern::new(kind, o).unwrap_err().to_string())
        .collect();
        insta::assert_snapshot!(messages.join("\n"), @r#"
        unknown pattern "wave": expected one of step, ramp, sine, spike, sawtooth
        pattern sine has no option at; its options are base, peak, period
        pattern step has no option width; its options are base, peak, at
        pattern option peak must be a finite number >= 0, got -1
        pattern option period of sawtooth must be longer than 0
        pattern option width of spike must be longer than 0
        "#);
    }
}
