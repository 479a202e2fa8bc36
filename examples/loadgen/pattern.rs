//! Scripted load patterns: `0s:5,60s:60,240s:5` sends 5 requests per second from the start, 60 from the
//! first minute on and 5 again from the fourth minute on.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The highest rate a step may ask for: the generator is a demo, not a benchmark tool.
pub const MAX_RPS: f64 = 10_000.0;
const MAX_STEPS: usize = 1000;

/// One step: from `at` (since the start of the pattern) on, send `rps` requests per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The offset of the step from the start of the pattern.
    pub at: Duration,
    /// Requests per second from then on.
    pub rps: f64,
}

/// A piecewise-constant rate: steps at strictly increasing offsets, the first at `0s`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPattern {
    steps: Vec<Step>,
}

impl LoadPattern {
    /// The steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The rate at `offset` from the start of the pattern.
    pub fn rate_at(&self, offset: Duration) -> f64 {
        self.steps
            .iter()
            .rev()
            .find(|s| s.at <= offset)
            .map_or(0.0, |s| s.rps)
    }

    /// The offset of the first step after `offset`, if any.
    pub fn next_change(&self, offset: Duration) -> Option<Duration> {
        self.steps.iter().map(|s| s.at).find(|&at| at > offset)
    }

    /// The offset of the last step.
    pub fn last_offset(&self) -> Duration {
        self.steps.last().map_or(Duration::ZERO, |s| s.at)
    }

    /// The number of requests one pass of `duration` sends.
    pub fn requests_in(&self, duration: Duration) -> f64 {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let end = self
                    .steps
                    .get(i + 1)
                    .map_or(duration, |next| next.at)
                    .min(duration);
                end.saturating_sub(step.at).as_secs_f64() * step.rps
            })
            .sum()
    }
}

impl FromStr for LoadPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut steps: Vec<Step> = Vec::new();
        for part in s.split(',').map(str::trim) {
            let (at, rps) = part
                .split_once(':')
                .ok_or_else(|| format!("{part:?}: expected OFFSET:RPS, e.g. 60s:20"))?;
            let at = humantime::parse_duration(at.trim())
                .map_err(|e| format!("{part:?}: offset {:?}: {e}", at.trim()))?;
            let rps = match rps.trim().parse::<f64>() {
                Ok(r) if (0.0..=MAX_RPS).contains(&r) => r,
                _ => {
                    return Err(format!(
                        "{part:?}: expected a rate between 0 and {MAX_RPS} requests per second"
                    ));
                }
            };
            match steps.last() {
                None if !at.is_zero() => {
                    return Err(format!("{part:?}: the first step must be at 0s"));
                }
                Some(prev) if at <= prev.at => {
                    return Err(format!("{part:?}: offsets must increase"));
                }
                _ => {}
            }
            if steps.len() == MAX_STEPS {
                return Err(format!("more than {MAX_STEPS} steps"));
            }
            steps.push(Step { at, rps });
        }
        Ok(Self { steps })
    }
}

impl fmt::Display for LoadPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(
                f,
                "{sep}{}:{}",
                humantime::format_duration(step.at),
                step.rps
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_rate_holds_from_each_offset_on() {
        let p: LoadPattern = "0s:5, 60s:60 ,4m:5".parse().unwrap();
        assert_eq!(p.rate_at(Duration::ZERO), 5.0);
        assert_eq!(p.rate_at(59 * S), 5.0);
        assert_eq!(p.rate_at(60 * S), 60.0);
        assert_eq!(p.rate_at(239 * S), 60.0);
        assert_eq!(p.rate_at(3600 * S), 5.0);
        assert_eq!(p.next_change(Duration::ZERO), Some(60 * S));
        assert_eq!(p.next_change(60 * S), Some(240 * S));
        assert_eq!(p.next_change(240 * S), None);
        assert_eq!(p.last_offset(), 240 * S);
        assert_eq!(p.to_string(), "0s:5,1m:60,4m:5");
    }

    #[test]
    fn fractional_and_zero_rates_and_compound_offsets() {
        let p: LoadPattern = "0s:0.5,1m30s:0,90m:12.25".parse().unwrap();
        assert_eq!(
            p.steps(),
            [
                Step {
                    at: Duration::ZERO,
                    rps: 0.5
                },
                Step {
                    at: 90 * S,
                    rps: 0.0
                },
                Step {
                    at: 5400 * S,
                    rps: 12.25
                },
            ]
        );
    }

    #[test]
    fn requests_in_a_pass_count_each_step_up_to_the_end() {
        let p: LoadPattern = "0s:5,60s:60,240s:5".parse().unwrap();
        assert_eq!(
            p.requests_in(300 * S),
            5.0 * 60.0 + 60.0 * 180.0 + 5.0 * 60.0
        );
        assert_eq!(p.requests_in(90 * S), 5.0 * 60.0 + 60.0 * 30.0);
    }

    #[test]
    fn malformed_patterns_say_what_is_wrong() {
        for (input, why) in [
            ("", "\"\": expected OFFSET:RPS, e.g. 60s:20"),
            ("5", "\"5\": expected OFFSET:RPS, e.g. 60s:20"),
            ("10s:5", "\"10s:5\": the first step must be at 0s"),
            ("0s:5,60s:6,60s:7", "\"60s:7\": offsets must increase"),
            ("0s:5,60s:6,30s:7", "\"30s:7\": offsets must increase"),
            (
                "0s:-1",
                "\"0s:-1\": expected a rate between 0 and 10000 requests per second",
            ),
            (
                "0s:inf",
                "\"0s:inf\": expected a rate between 0 and 10000 requests per second",
            ),
            (
                "0s:NaN",
                "\"0s:NaN\": expected a rate between 0 and 10000 requests per second",
            ),
            (
                "0s:20000",
                "\"0s:20000\": expected a rate between 0 and 10000 requests per second",
            ),
            ("0s:5,", "\"\": expected OFFSET:RPS, e.g. 60s:20"),
        ] {
            assert_eq!(
                input.parse::<LoadPattern>(),
                Err(why.to_string()),
                "{input}"
            );
        }
        let e = "soon:5".parse::<LoadPattern>().unwrap_err();
        assert!(e.starts_with("\"soon:5\": offset \"soon\": "), "{e}");
    }
}
