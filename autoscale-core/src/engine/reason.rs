//! Why a decision is what it is: structured data, one field per pipeline rule that can change the number.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::policy::Forecast;
use crate::{Direction, Replicas};

/// The stable token that starts every reason. Logs, history and the simulator's CSV print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Token {
    /// `current > max_replicas` was brought down to the maximum.
    OutOfRangeMax,
    /// `current < min_replicas` was brought up to the minimum.
    OutOfRangeMin,
    /// Some checks failed, or replicas lost from a steady count are being replaced, and the recommendation
    /// would have scaled down.
    PartialData,
    /// Scale-to-zero rules held the service at or away from zero.
    Activation,
    /// A stabilization window held the count.
    Stabilized,
    /// The scale-down dead-band held the count.
    Deadband,
    /// A rate rule limited the change.
    RateLimited,
    /// The maximum bound limited a scale-up.
    MaxReplicas,
    /// The minimum bound limited a scale-down.
    MinReplicas,
    /// A cooldown blocked the change.
    Cooldown,
    /// Every check failed long enough for the fallback to apply.
    Fallback,
    /// The direction is paused.
    Paused,
    /// Scaling up as recommended.
    ScaleUp,
    /// Scaling down as recommended.
    ScaleDown,
    /// The recommendation equals the current count.
    WithinTolerance,
    /// Every check failed and no fallback applies.
    NoData,
}

impl Token {
    /// The token as printed.
    pub const fn as_str(self) -> &'static str {
        match self {
            Token::OutOfRangeMax => "out_of_range_max",
            Token::OutOfRangeMin => "out_of_range_min",
            Token::PartialData => "partial_data",
            Token::Activation => "activation",
            Token::Stabilized => "stabilized",
            Token::Deadband => "deadband",
            Token::RateLimited => "rate_limited",
            Token::MaxReplicas => "max_replicas",
            Token::MinReplicas => "min_replicas",
            Token::Cooldown => "cooldown",
            Token::Fallback => "fallback",
            Token::Paused => "paused",
            Token::ScaleUp => "scale_up",
            Token::ScaleDown => "scale_down",
            Token::WithinTolerance => "within_tolerance",
            Token::NoData => "no_data",
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule moved the number from `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The number before the rule.
    pub from: Replicas,
    /// The number after it.
    pub to: Replicas,
}

/// Which bound of pipeline step 6 bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// A rate rule.
    RateLimited,
    /// `max_replicas`.
    MaxReplicas,
    /// `min_replicas`.
    MinReplicas,
}

/// A cooldown blocked a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cooldown {
    /// The count the pipeline had reached.
    pub blocked: Replicas,
    /// How long until the cooldown ends.
    #[serde(with = "millis")]
    pub remaining: Duration,
}

/// The structured reason of a [`Decision`]: the recommendation and every rule that changed the number.
///
/// Fields are `None` for rules that did not change the number on this evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// The leading token: the last rule that changed the number, or the direction.
    pub token: Token,
    /// The combined recommendation of the checks (pipeline step 3). `None` when the out-of-range rule decided,
    /// or when every check failed.
    pub recommended: Option<Replicas>,
    /// The index of the check whose recommendation won.
    pub check: Option<usize>,
    /// How the winning check's policy reached its recommendation, when it forecasts (the predictive policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Forecast>,
    /// How many checks failed.
    pub failed_checks: usize,
    /// Step 1: the out-of-range rule set the count.
    pub out_of_range: Option<Change>,
    /// Step 3: the largest successful recommendation, raised to `current` because some checks failed.
    pub partial_data: Option<Change>,
    /// Step 4: scale-to-zero rules changed the recommendation.
    pub activation: Option<Change>,
    /// Step 5: a stabilization window changed the recommendation.
    pub stabilized: Option<Change>,
    /// Step 5, second half: the scale-down dead-band held it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadband: Option<Change>,
    /// Step 6: a rate rule or a bound limited it.
    pub limited: Option<(Limit, Change)>,
    /// Step 7: a cooldown blocked it.
    pub cooldown: Option<Cooldown>,
    /// Step 8: the fallback set it, after this many failed evaluations in a row.
    pub fallback: Option<(u32, Change)>,
    /// Step 9: a pause kept it.
    pub paused: Option<Change>,
}

impl Reason {
    pub(crate) fn empty() -> Self {
        Reason {
            token: Token::WithinTolerance,
            recommended: None,
            check: None,
            forecast: None,
            failed_checks: 0,
            out_of_range: None,
            partial_data: None,
            activation: None,
            stabilized: None,
            deadband: None,
            limited: None,
            cooldown: None,
            fallback: None,
            paused: None,
        }
    }

    /// The token of the last rule that changed the number, if any.
    pub(crate) fn last_rule(&self) -> Option<Token> {
        if self.paused.is_some() {
            Some(Token::Paused)
        } else if self.fallback.is_some() {
            Some(Token::Fallback)
        } else if self.cooldown.is_some() {
            Some(Token::Cooldown)
        } else if let Some((limit, _)) = self.limited {
            Some(match limit {
                Limit::RateLimited => Token::RateLimited,
                Limit::MaxReplicas => Token::MaxReplicas,
                Limit::MinReplicas => Token::MinReplicas,
            })
        } else if self.deadband.is_some() {
            Some(Token::Deadband)
        } else if self.stabilized.is_some() {
            Some(Token::Stabilized)
        } else if self.activation.is_some() {
            Some(Token::Activation)
        } else if self.partial_data.is_some() {
            Some(Token::PartialData)
        } else {
            self.out_of_range.map(|c| {
                if c.to > c.from {
                    Token::OutOfRangeMin
                } else {
                    Token::OutOfRangeMax
                }
            })
        }
    }
}

/// Writes `token: detail`, the detail naming each rule that changed the number, in pipeline order.
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token.as_str())?;
        let mut parts: Vec<String> = Vec::new();
        if let Some(c) = self.out_of_range {
            parts.push(format!(
                "current {} is out of range, set to {}",
                c.from, c.to
            ));
        }
        if let Some(r) = self.recommended {
            parts.push(format!("recommended {r}"));
        }
        if let Some(forecast) = self.forecast {
            parts.push(format!("from {forecast}"));
        }
        if self.failed_checks > 0 {
            parts.push(format!("{} check(s) failed", self.failed_checks));
        }
        if let Some(c) = self.partial_data {
            parts.push(format!("partial data: {} held at {}", c.from, c.to));
        }
        if let Some(c) = self.activation {
            parts.push(format!("activation {} -> {}", c.from, c.to));
        }
        if let Some(c) = self.stabilized {
            parts.push(format!("stabilized {} -> {}", c.from, c.to));
        }
        if let Some(c) = self.deadband {
            parts.push(format!("deadband {} -> {}", c.from, c.to));
        }
        if let Some((limit, c)) = self.limited {
            let what = match limit {
                Limit::RateLimited => "rate rule",
                Limit::MaxReplicas => "max_replicas",
                Limit::MinReplicas => "min_replicas",
            };
            parts.push(format!("{what} {} -> {}", c.from, c.to));
        }
        if let Some(c) = self.cooldown {
            parts.push(format!(
                "cooldown blocks {} for {:.1}s",
                c.blocked,
                c.remaining.as_secs_f64()
            ));
        }
        if let Some((failures, c)) = self.fallback {
            parts.push(format!(
                "fallback after {failures} failed evaluations {} -> {}",
                c.from, c.to
            ));
        }
        if let Some(c) = self.paused {
            parts.push(format!("paused, {} held at {}", c.from, c.to));
        }
        if !parts.is_empty() {
            write!(f, ": {}", parts.join(", "))?;
        }
        Ok(())
    }
}

/// The engine's answer for one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The count before the decision.
    pub current: Replicas,
    /// The count to run.
    pub desired: Replicas,
    /// Up, down or none.
    pub direction: Direction,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    /// Whether the decision asks for a different count.
    pub fn is_change(&self) -> bool {
        self.desired != self.current
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
