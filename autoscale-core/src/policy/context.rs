//! What a policy sees besides its value: the time, and its check's history, which it may extend.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::engine::CheckHistory;

/// Everything a [`Policy`](crate::Policy) gets besides the value and the status: the evaluation time, its
/// check's [`CheckHistory`], and a place to say which part of its reasoning won.
///
/// The engine stays pure: the history comes from the [`EngineState`](crate::EngineState) it was given and goes
/// back into the state it returns.
#[derive(Debug)]
pub struct PolicyContext<'a> {
    now: Timestamp,
    history: &'a mut CheckHistory,
    forecast: Option<Forecast>,
}

impl<'a> PolicyContext<'a> {
    /// A context at `now` over `history`.
    pub fn new(now: Timestamp, history: &'a mut CheckHistory) -> Self {
        PolicyContext {
            now,
            history,
            forecast: None,
        }
    }

    /// The evaluation time (trace time in the simulator, wall-clock time in the daemon).
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The check's history.
    pub fn history(&self) -> &CheckHistory {
        self.history
    }

    /// The check's history, to record into.
    pub fn history_mut(&mut self) -> &mut CheckHistory {
        self.history
    }

    /// Say how the recommendation was reached; the decision's reason carries the winning check's.
    pub fn explain(&mut self, forecast: Forecast) {
        self.forecast = Some(forecast);
    }

    /// What the policy said, if anything.
    pub fn into_forecast(self) -> Option<Forecast> {
        self.forecast
    }
}

/// Which estimate of demand set a forecasting policy's recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The demand right now.
    Current,
    /// The short-term mean plus `z` deviations.
    ShortTerm,
    /// The seasonal forecast.
    Seasonal,
}

impl Part {
    /// The part as printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            Part::Current => "current",
            Part::ShortTerm => "short_term",
            Part::Seasonal => "seasonal",
        }
    }
}

/// A forecasting policy's estimates, in the check's units of demand (the value times the ready replicas for a
/// per-replica check, the value itself for a total), and the one that won.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// The estimate the recommendation was made from.
    pub part: Part,
    /// The demand now.
    pub demand: f64,
    /// The short-term estimate: mean plus `z` deviations.
    pub short_term: f64,
    /// The seasonal forecast at the look-ahead, if there is a season of history for it.
    pub seasonal: Option<f64>,
}

impl Forecast {
    /// The winning estimate.
    pub fn value(&self) -> f64 {
        match self.part {
            Part::Current => self.demand,
            Part::ShortTerm => self.short_term,
            Part::Seasonal => self.seasonal.unwrap_or(self.demand),
        }
    }
}

/// `short_term 15.1 (demand 12.3, short term 15.1, seasonal 14)`.
impl fmt::Display for Forecast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (demand {}, short term {}",
            self.part.as_str(),
            round(self.value()),
            round(self.demand),
            round(self.short_term)
        )?;
        match self.seasonal {
            Some(s) => write!(f, ", seasonal {})", round(s)),
            None => f.write_str(", no season yet)"),
        }
    }
}

/// Three significant decimals, enough to read and short enough for a log line.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
