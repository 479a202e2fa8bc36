//! The engine's validated configuration: types that cannot hold an invalid setting.

use std::sync::Arc;
use std::time::Duration;

use crate::{Policy, Replicas};

/// Why an engine configuration was refused. The config loader adds the file, line and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `min_replicas` is above `max_replicas`.
    #[error("min_replicas ({min}) must not be above max_replicas ({max})")]
    Bounds {
        /// The lower bound.
        min: Replicas,
        /// The upper bound.
        max: Replicas,
    },
    /// `max_replicas` is 0.
    #[error("max_replicas must be at least 1")]
    ZeroMax,
    /// The service has no check.
    #[error("a service needs at least one check")]
    NoChecks,
    /// Two checks share a name.
    #[error("check name {0:?} is used twice")]
    DuplicateCheck(String),
    /// An explicit `rules = []`.
    #[error(
        "rules must not be empty: remove the key to use the defaults, or set select = \"disabled\""
    )]
    EmptyRules,
    /// A rule that can never allow a change.
    #[error("a rule's {0} must be above 0")]
    Rule(&'static str),
    /// `idle_after` only makes sense when the service may be scaled to zero.
    #[error("idle_after is only allowed when min_replicas = 0")]
    IdleAfterWithMin,
    /// `fallback.after` must be at least 1.
    #[error("fallback.after must be at least 1")]
    FallbackAfter,
    /// A dead-band's `min_drop` must lie in [0, 1).
    #[error("min_drop must be at least 0 and below 1, got {0}")]
    MinDrop(String),
    /// An activation threshold must be finite.
    #[error("activation must be a finite number, got {0}")]
    Activation(String),
}

/// One check: a policy over one metric.
#[derive(Debug, Clone)]
pub struct Check {
    name: String,
    policy: Arc<dyn Policy>,
    activation: f64,
    accept_non_finite: bool,
}

impl Check {
    /// A check named `name` that feeds its metric to `policy`, with activation 0.
    pub fn new(name: impl Into<String>, policy: Arc<dyn Policy>) -> Self {
        Check {
            name: name.into(),
            policy,
            activation: 0.0,
            accept_non_finite: false,
        }
    }

    /// With `min_replicas = 0`, the service leaves zero only when some check's value is strictly above its
    /// activation threshold, and becomes idle only when every value is at or below it.
    pub fn with_activation(mut self, activation: f64) -> Result<Self, ConfigError> {
        if !activation.is_finite() {
            return Err(ConfigError::Activation(activation.to_string()));
        }
        self.activation = activation;
        Ok(self)
    }

    /// Pass ±Inf to the policy instead of treating it as a failure. NaN is always a failure: it has no order.
    pub fn accepting_non_finite(mut self, accept: bool) -> Self {
        self.accept_non_finite = accept;
        self
    }

    /// The check's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The check's policy.
    pub fn policy(&self) -> &Arc<dyn Policy> {
        &self.policy
    }

    /// The activation threshold.
    pub fn activation(&self) -> f64 {
        self.activation
    }

    /// Whether ±Inf reaches the policy.
    pub fn accepts_non_finite(&self) -> bool {
        self.accept_non_finite
    }
}

/// How the limits of several rules combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Select {
    /// The rule allowing the biggest change wins (Kubernetes' default).
    #[default]
    Max,
    /// The rule allowing the smallest change wins.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// How much one rule allows per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAmount {
    /// A number of replicas.
    Pods(u32),
    /// A percent of the count at the start of the period.
    Percent(u32),
}

/// A rate rule: at most `amount` change within any `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    amount: RuleAmount,
    period: Duration,
}

impl Rule {
    /// At most `pods` replicas added (or removed) per `period`.
    pub fn pods(pods: u32, period: Duration) -> Result<Self, ConfigError> {
        Self::new(RuleAmount::Pods(pods), period)
    }

    /// At most `percent` % of the period-start count added (or removed) per `period`.
    pub fn percent(percent: u32, period: Duration) -> Result<Self, ConfigError> {
        Self::new(RuleAmount::Percent(percent), period)
    }

    fn new(amount: RuleAmount, period: Duration) -> Result<Self, ConfigError> {
        match amount {
            RuleAmount::Pods(0) => Err(ConfigError::Rule("pods")),
            RuleAmount::Percent(0) => Err(ConfigError::Rule("percent")),
            _ if period.is_zero() => Err(ConfigError::Rule("period")),
            _ => Ok(Rule { amount, period }),
        }
    }

    /// The amount.
    pub fn amount(&self) -> RuleAmount {
        self.amount
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// A scale-down dead-band: scale down only once the recommendation has stayed at least `min_drop` (a fraction of
/// the current count) below the current count for `hold`. Smaller drops never scale down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deadband {
    min_drop: f64,
    hold: Duration,
}

impl Deadband {
    /// The default drop: a fifth of the current count.
    pub const DEFAULT_MIN_DROP: f64 = 0.2;
    /// The default hold.
    pub const DEFAULT_HOLD: Duration = Duration::from_secs(600);

    /// A dead-band. `min_drop` must lie in `[0, 1)`.
    pub fn new(min_drop: f64, hold: Duration) -> Result<Self, ConfigError> {
        if !(min_drop.is_finite() && (0.0..1.0).contains(&min_drop)) {
            return Err(ConfigError::MinDrop(min_drop.to_string()));
        }
        Ok(Deadband { min_drop, hold })
    }

    /// The defaults: 0.2 for 10 minutes.
    pub fn default_predictive() -> Self {
        Deadband {
            min_drop: Self::DEFAULT_MIN_DROP,
            hold: Self::DEFAULT_HOLD,
        }
    }

    /// The fraction of the current count the recommendation must stay below it by.
    pub fn min_drop(&self) -> f64 {
        self.min_drop
    }

    /// How long it must stay there.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// Whether `recommendation` is far enough below `current`.
    pub(crate) fn is_below(&self, current: Replicas, recommendation: Replicas) -> bool {
        f64::from(recommendation) <= f64::from(current) * (1.0 - self.min_drop)
    }
}

/// The behavior of one direction: its stabilization window, its rate rules and, for scale-down, a dead-band.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRules {
    stabilization_window: Duration,
    select: Select,
    rules: Vec<Rule>,
    deadband: Option<Deadband>,
}

impl ScalingRules {
    /// A direction's behavior. An empty rule list is refused: use [`Select::Disabled`] to stop a direction.
    pub fn new(
        stabilization_window: Duration,
        select: Select,
        rules: Vec<Rule>,
    ) -> Result<Self, ConfigError> {
        if rules.is_empty() {
            return Err(ConfigError::EmptyRules);
        }
        Ok(ScalingRules {
            stabilization_window,
            select,
            rules,
            deadband: None,
        })
    }

    /// With a dead-band (only the scale-down direction applies one).
    pub fn with_deadband(mut self, deadband: Option<Deadband>) -> Self {
        self.deadband = deadband;
        self
    }

    /// The dead-band, if any.
    pub fn deadband(&self) -> Option<Deadband> {
        self.deadband
    }

    /// Kubernetes' scale-up default: no window, max of 4 pods and 100 % per 15 s.
    pub fn default_up() -> Self {
        let period = Duration::from_secs(15);
        ScalingRules {
            stabilization_window: Duration::ZERO,
            select: Select::Max,
            rules: vec![
                Rule {
                    amount: RuleAmount::Pods(4),
                    period,
                },
                Rule {
                    amount: RuleAmount::Percent(100),
                    period,
                },
            ],
            deadband: None,
        }
    }

    /// Kubernetes' scale-down default: a 300 s window, 100 % per 15 s.
    pub fn default_down() -> Self {
        ScalingRules {
            stabilization_window: Duration::from_secs(300),
            select: Select::Max,
            rules: vec![Rule {
                amount: RuleAmount::Percent(100),
                period: Duration::from_secs(15),
            }],
            deadband: None,
        }
    }

    /// The scale-down default of a service with a forecasting check: no stabilization window, 100 % per 15 s,
    /// and the default [`Deadband`] instead. The forecast is already smoothed, so a trailing maximum over its
    /// recommendations would only hold replicas it no longer needs; the dead-band keeps small drops from
    /// turning into scale actions.
    pub fn default_down_predictive() -> Self {
        ScalingRules {
            stabilization_window: Duration::ZERO,
            deadband: Some(Deadband::default_predictive()),
            ..Self::default_down()
        }
    }

    /// The stabilization window.
    pub fn stabilization_window(&self) -> Duration {
        self.stabilization_window
    }

    /// How the rules combine.
    pub fn select(&self) -> Select {
        self.select
    }

    /// The rules (never empty).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn longest_period(&self) -> Duration {
        self.rules
            .iter()
            .map(|r| r.period)
            .max()
            .unwrap_or_default()
    }
}

/// Both directions' behavior.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// Scale-up behavior.
    pub scale_up: ScalingRules,
    /// Scale-down behavior.
    pub scale_down: ScalingRules,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            scale_up: ScalingRules::default_up(),
            scale_down: ScalingRules::default_down(),
        }
    }
}

impl Behavior {
    /// The behavior of a service with a forecasting check: Kubernetes' scale-up, and
    /// [`ScalingRules::default_down_predictive`].
    pub fn predictive() -> Self {
        Behavior {
            scale_up: ScalingRules::default_up(),
            scale_down: ScalingRules::default_down_predictive(),
        }
    }

    /// The longest stabilization window of either direction: how long recommendations are kept.
    pub fn longest_window(&self) -> Duration {
        self.scale_up
            .stabilization_window
            .max(self.scale_down.stabilization_window)
    }

    /// The longest rule period of either direction: how long scale events are kept.
    pub fn longest_period(&self) -> Duration {
        self.scale_up
            .longest_period()
            .max(self.scale_down.longest_period())
    }
}

/// What to run after too many evaluations in a row without any metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FallbackMode {
    /// Exactly `replicas`.
    #[default]
    Static,
    /// `replicas`, but only if that is above the current count.
    IfHigher,
}

/// The fallback rule: after `after` failed evaluations in a row, run `replicas` under `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback {
    after: u32,
    replicas: Replicas,
    mode: FallbackMode,
}

impl Fallback {
    /// A fallback rule. `after` must be at least 1.
    pub fn new(after: u32, replicas: Replicas, mode: FallbackMode) -> Result<Self, ConfigError> {
        if after == 0 {
            return Err(ConfigError::FallbackAfter);
        }
        Ok(Fallback {
            after,
            replicas,
            mode,
        })
    }

    /// Failed evaluations in a row before the fallback applies.
    pub fn after(&self) -> u32 {
        self.after
    }

    /// The fallback count.
    pub fn replicas(&self) -> Replicas {
        self.replicas
    }

    /// The mode.
    pub fn mode(&self) -> FallbackMode {
        self.mode
    }
}

/// Which directions are paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pause {
    /// Nothing is paused.
    #[default]
    None,
    /// No scaling at all.
    All,
    /// No scaling up.
    Up,
    /// No scaling down.
    Down,
}

impl Pause {
    /// The keyword the configuration and `/status` spell it with: `none`, `all`, `up` or `down`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Pause::None => "none",
            Pause::All => "all",
            Pause::Up => "up",
            Pause::Down => "down",
        }
    }

    pub(crate) fn blocks_up(self) -> bool {
        matches!(self, Pause::All | Pause::Up)
    }

    pub(crate) fn blocks_down(self) -> bool {
        matches!(self, Pause::All | Pause::Down)
    }
}

/// A service's validated engine configuration. Build it with [`EngineConfig::builder`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub(crate) min_replicas: Replicas,
    pub(crate) max_replicas: Replicas,
    pub(crate) checks: Vec<Check>,
    pub(crate) behavior: Behavior,
    pub(crate) cooldown_up: Duration,
    pub(crate) cooldown_down: Duration,
    pub(crate) fallback: Option<Fallback>,
    pub(crate) idle_after: Duration,
    pub(crate) pause: Pause,
}

impl EngineConfig {
    /// The default `idle_after` of a service that may scale to zero.
    pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(300);

    /// Start a configuration with its bounds.
    pub fn builder(min_replicas: Replicas, max_replicas: Replicas) -> EngineConfigBuilder {
        EngineConfigBuilder {
            min_replicas,
            max_replicas,
            checks: Vec::new(),
            behavior: Behavior::default(),
            cooldown_up: None,
            cooldown_down: None,
            default_cooldown: Duration::ZERO,
            fallback: None,
            idle_after: None,
            pause: Pause::None,
        }
    }

    /// A builder holding this configuration's bounds, behavior, cooldowns, fallback, `idle_after` and pause,
    /// but none of its checks: to pair each check with something outside the engine, as
    /// [`ServiceLoop::builder`](crate::controller::ServiceLoop::builder) pairs it with its source.
    pub fn builder_without_checks(&self) -> EngineConfigBuilder {
        EngineConfigBuilder {
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            checks: Vec::new(),
            behavior: self.behavior.clone(),
            cooldown_up: Some(self.cooldown_up),
            cooldown_down: Some(self.cooldown_down),
            default_cooldown: Duration::ZERO,
            fallback: self.fallback,
            // Set only where it is allowed, so that the builder accepts it again.
            idle_after: (self.min_replicas == 0).then_some(self.idle_after),
            pause: self.pause,
        }
    }

    /// The lower bound (0 allows scale to zero).
    pub fn min_replicas(&self) -> Replicas {
        self.min_replicas
    }

    /// The upper bound.
    pub fn max_replicas(&self) -> Replicas {
        self.max_replicas
    }

    /// The checks, in evaluation order. Observations are passed in the same order.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The behavior.
    pub fn behavior(&self) -> &Behavior {
        &self.behavior
    }

    /// The minimum time between the last scaling action and a scale-up.
    pub fn cooldown_up(&self) -> Duration {
        self.cooldown_up
    }

    /// The minimum time between the last scaling action and a scale-down.
    pub fn cooldown_down(&self) -> Duration {
        self.cooldown_down
    }

    /// The fallback rule.
    pub fn fallback(&self) -> Option<Fallback> {
        self.fallback
    }

    /// How long every check must be at or below activation before the service may go to zero.
    pub fn idle_after(&self) -> Duration {
        self.idle_after
    }

    /// Which directions are paused.
    pub fn pause(&self) -> Pause {
        self.pause
    }

    /// The kinds of the checks' policies joined by `+`, such as `target+threshold`.
    pub fn policy_kinds(&self) -> String {
        let kinds: Vec<&str> = self.checks.iter().map(|c| c.policy.kind()).collect();
        kinds.join("+")
    }

    /// The same configuration with another pause setting (pausing is an operator's runtime action).
    pub fn with_pause(mut self, pause: Pause) -> Self {
        self.pause = pause;
        self
    }
}

/// Builds an [`EngineConfig`], validating it as a whole in [`build`](EngineConfigBuilder::build).
#[derive(Debug, Clone)]
pub struct EngineConfigBuilder {
    min_replicas: Replicas,
    max_replicas: Replicas,
    checks: Vec<Check>,
    behavior: Behavior,
    cooldown_up: Option<Duration>,
    cooldown_down: Option<Duration>,
    default_cooldown: Duration,
    fallback: Option<Fallback>,
    idle_after: Option<Duration>,
    pause: Pause,
}

impl EngineConfigBuilder {
    /// Add a check.
    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// Set the behavior (default: Kubernetes').
    pub fn behavior(mut self, behavior: Behavior) -> Self {
        self.behavior = behavior;
        self
    }

    /// Set the scale-up cooldown (default: the [`default_cooldown`](Self::default_cooldown)).
    pub fn cooldown_up(mut self, cooldown: Duration) -> Self {
        self.cooldown_up = Some(cooldown);
        self
    }

    /// Set the scale-down cooldown (default: the [`default_cooldown`](Self::default_cooldown)).
    pub fn cooldown_down(mut self, cooldown: Duration) -> Self {
        self.cooldown_down = Some(cooldown);
        self
    }

    /// Set the cooldown of each direction that [`cooldown_up`](Self::cooldown_up) or
    /// [`cooldown_down`](Self::cooldown_down) does not set (default 0), in whichever order they are called.
    ///
    /// The engine never infers it from the checks' policies. `docs/engine.md` gives a service with a threshold
    /// check [`ThresholdPolicy::DEFAULT_COOLDOWN`](crate::policy::ThresholdPolicy::DEFAULT_COOLDOWN), and the
    /// config loader passes it here.
    pub fn default_cooldown(mut self, cooldown: Duration) -> Self {
        self.default_cooldown = cooldown;
        self
    }

    /// Set the fallback rule.
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Set `idle_after` (only with `min_replicas = 0`; default 300 s).
    pub fn idle_after(mut self, idle_after: Duration) -> Self {
        self.idle_after = Some(idle_after);
        self
    }

    /// Pause a direction, or both.
    pub fn pause(mut self, pause: Pause) -> Self {
        self.pause = pause;
        self
    }

    /// Validate and build.
    pub fn build(self) -> Result<EngineConfig, ConfigError> {
        if self.max_replicas == 0 {
            return Err(ConfigError::ZeroMax);
        }
        if self.min_replicas > self.max_replicas {
            return Err(ConfigError::Bounds {
                min: self.min_replicas,
                max: self.max_replicas,
            });
        }
        if self.checks.is_empty() {
            return Err(ConfigError::NoChecks);
        }
        for (i, check) in self.checks.iter().enumerate() {
            if self.checks[..i].iter().any(|c| c.name == check.name) {
                return Err(ConfigError::DuplicateCheck(check.name.clone()));
            }
        }
        if self.idle_after.is_some() && self.min_replicas > 0 {
            return Err(ConfigError::IdleAfterWithMin);
        }
        Ok(EngineConfig {
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            checks: self.checks,
            behavior: self.behavior,
            cooldown_up: self.cooldown_up.unwrap_or(self.default_cooldown),
            cooldown_down: self.cooldown_down.unwrap_or(self.default_cooldown),
            fallback: self.fallback,
            idle_after: self.idle_after.unwrap_or(EngineConfig::DEFAULT_IDLE_AFTER),
            pause: self.pause,
        })
    }
}
