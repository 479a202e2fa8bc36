//! Durations as the file and the environment write them, and the limits they are held to.

use std::time::Duration;

/// The longest duration a key takes. Bounds keep every sum and product of durations far from overflowing,
/// and no real deployment waits longer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Limit {
    /// Intervals and timeouts: at most 24 hours.
    Interval,
    /// Cooldowns and windows: at most 7 days.
    Window,
}

impl Limit {
    pub(crate) fn max(self) -> Duration {
        match self {
            Limit::Interval => Duration::from_secs(24 * 3600),
            Limit::Window => Duration::from_secs(7 * 24 * 3600),
        }
    }

    /// `d`, as written in `text`, if it is within the limit.
    pub(crate) fn check(self, text: &str, d: Duration) -> std::result::Result<Duration, String> {
        let (max, what) = match self {
            Limit::Interval => ("24h", "an interval or timeout"),
            Limit::Window => ("7 days (168h)", "a cooldown or window"),
        };
        if d > self.max() {
            return Err(format!(
                "{:?} is too long: {what} is at most {max}",
                text.trim()
            ));
        }
        Ok(d)
    }
}

/// A humantime duration: `"10s"`, `"5m"`, `"1h30m"`, `"250ms"`.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|_| {
        format!("invalid duration {s:?}: expected a number with a unit, such as \"10s\", \"5m\" or \"1h30m\"")
    })
}
