//! What `simulate` can run: a configured service, the built-in default, and the references of `--compare`
//! (`seed`, `hpa`, `predictive`, `oracle`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::engine::Behavior;
use autoscale_core::policy::{PredictivePolicy, TargetForm, TargetPolicy, ThresholdPolicy};
use autoscale_core::sim::{self, MetricMode, Model, Summary, Tick, Trace};
use autoscale_core::{Check, Engine, EngineConfig, Replicas};

use crate::config::{Env, ServiceConfig};
use crate::error::CliError;

/// The name of the built-in service that runs when no configuration is given.
pub const DEFAULT_SERVICE: &str = "webapp";

/// The target of the `hpa`, `predictive` and `oracle` references, and of the built-in service.
const REFERENCE_TARGET: f64 = 0.6;

/// One policy to simulate, with its labels.
#[derive(Debug, Clone)]
pub struct Contender {
    /// The column header of a comparison.
    pub label: String,
    /// The JSON `service`.
    pub service: String,
    /// The JSON `policy`: the check kinds joined by `+`, or `oracle`.
    pub policy: String,
    min: Replicas,
    max: Replicas,
    interval: Duration,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Engine {
        engine: Box<Engine>,
        /// The references are defined on utilization, whatever `--metric` says.
        metric: Option<MetricMode>,
    },
    Oracle {
        target: f64,
    },
}

impl Contender {
    /// A configured service.
    pub fn from_service(label: String, service: &ServiceConfig) -> Self {
        Contender {
            label,
            service: service.name.clone(),
            policy: service.engine.policy_kinds(),
            min: service.engine.min_replicas(),
            max: service.engine.max_replicas(),
            interval: service.interval,
            kind: Kind::Engine {
                engine: Box::new(Engine::new(service.engine.clone())),
                metric: None,
            },
        }
    }

    /// The built-in service: `webapp`, min 1, max 10, interval 10 s, a target of 0.6 per replica with
    /// Kubernetes' default behavior. Unlike the `hpa` reference it is the subject, so it follows `--metric`.
    pub fn builtin() -> Self {
        Contender {
            label: DEFAULT_SERVICE.to_owned(),
            kind: Kind::Engine {
                engine: Box::new(Engine::new(target_engine(1, 10))),
                metric: None,
            },
            ..Self::hpa(DEFAULT_SERVICE, 1, 10, Duration::from_secs(10))
        }
    }

    /// The original scaler: threshold 0.6/0.3, step 1, cooldown 60 s both ways, no stabilization.
    pub fn seed(service: &str, min: Replicas, max: Replicas, interval: Duration) -> Self {
        let policy = ThresholdPolicy::new(0.6, 0.3, autoscale_core::policy::Step::Count(1))
            .expect("the seed's thresholds are valid");
        let engine = crate::config::seed_engine(
            min,
            max,
            policy,
            ThresholdPolicy::DEFAULT_COOLDOWN,
            Duration::ZERO,
        )
        .expect("bounds come from a valid configuration");
        Self::reference("seed", service, "threshold", min, max, interval, engine)
    }

    /// Kubernetes' HPA: a target of 0.6 per replica, its default tolerance and behavior.
    pub fn hpa(service: &str, min: Replicas, max: Replicas, interval: Duration) -> Self {
        Self::reference(
            "hpa",
            service,
            "target",
            min,
            max,
            interval,
            target_engine(min, max),
        )
    }

    /// The predictive policy with its defaults at a target of 0.6 per replica, and the scale-down of a
    /// service with a predictive check (the dead-band, no stabilization window).
    pub fn predictive(service: &str, min: Replicas, max: Replicas, interval: Duration) -> Self {
        let policy = PredictivePolicy::new(REFERENCE_TARGET, TargetForm::PerReplica, interval)
            .expect("the reference target is valid");
        let engine = EngineConfig::builder(min, max)
            .check(Check::new("utilization", Arc::new(policy)))
            .behavior(Behavior::predictive())
            .build()
            .expect("bounds come from a valid configuration");
        Self::reference(
            "predictive",
            service,
            "predictive",
            min,
            max,
            interval,
            engine,
        )
    }

    /// Perfect foresight at a target of 0.6: a reference that knows the future, not a policy, and not a lower
    /// bound on cost (a policy's tolerance can undercut it).
    pub fn oracle(service: &str, min: Replicas, max: Replicas, interval: Duration) -> Self {
        Contender {
            label: "oracle".to_owned(),
            service: service.to_owned(),
            policy: "oracle".to_owned(),
            min,
            max,
            interval,
            kind: Kind::Oracle {
                target: REFERENCE_TARGET,
            },
        }
    }

    fn reference(
        label: &str,
        service: &str,
        policy: &str,
        min: Replicas,
        max: Replicas,
        interval: Duration,
        engine: EngineConfig,
    ) -> Self {
        Contender {
            label: label.to_owned(),
            service: service.to_owned(),
            policy: policy.to_owned(),
            min,
            max,
            interval,
            kind: Kind::Engine {
                engine: Box::new(Engine::new(engine)),
                metric: Some(MetricMode::Utilization),
            },
        }
    }

    /// A `--compare` entry: `seed`, `hpa`, `predictive`, `oracle`, `FILE` or `FILE#SERVICE`. The references take their
    /// bounds and interval from `base`.
    pub fn parse(entry: &str, base: &Contender, env: &Env) -> Result<Contender, CliError> {
        let entry = entry.trim();
        let (min, max, interval, service) = (base.min, base.max, base.interval, &base.service);
        match entry {
            "seed" => return Ok(Self::seed(service, min, max, interval)),
            "hpa" => return Ok(Self::hpa(service, min, max, interval)),
            "predictive" => return Ok(Self::predictive(service, min, max, interval)),
            "oracle" => return Ok(Self::oracle(service, min, max, interval)),
            _ => {}
        }
        let (file, name) = match entry.rsplit_once('#') {
            Some((file, name)) => (file, Some(name)),
            None => (entry, None),
        };
        let path = Path::new(file);
        if file.is_empty() || (name.is_none() && !path.is_file()) {
            return Err(CliError::Input(format!(
                "--compare: {entry:?} is neither seed, hpa, predictive, oracle nor a configuration file (FILE or FILE#SERVICE)"
            )));
        }
        let config = super::load_config(path, env)?;
        let service = super::pick_service(&config, name, path)?;
        let stem = path
            .file_stem()
            .map_or_else(|| file.to_owned(), |s| s.to_string_lossy().into_owned());
        let label = match name {
            Some(name) => format!("{stem}#{name}"),
            None => stem,
        };
        Ok(Self::from_service(label, service))
    }

    /// The most replicas it may run.
    pub fn max_replicas(&self) -> Replicas {
        self.max
    }

    /// The evaluation interval of the run.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Simulate over `trace`, handing each tick to `on_tick`.
    pub fn run(&self, trace: &Trace, model: &Model, on_tick: impl FnMut(&Tick)) -> Summary {
        match &self.kind {
            Kind::Engine { engine, metric } => {
                let adjusted;
                let model = match metric {
                    Some(metric) => {
                        adjusted = Model {
                            metric: *metric,
                            ..model.clone()
                        };
                        &adjusted
                    }
                    None => model,
                };
                sim::simulate(engine, self.interval, trace, model, on_tick)
            }
            Kind::Oracle { target } => sim::simulate_oracle(
                self.min,
                self.max,
                *target,
                self.interval,
                trace,
                model,
                on_tick,
            ),
        }
    }
}

/// A target of 0.6 per replica with Kubernetes' default tolerance and behavior.
fn target_engine(min: Replicas, max: Replicas) -> EngineConfig {
    let policy = TargetPolicy::new(REFERENCE_TARGET, TargetForm::PerReplica)
        .expect("the reference target is valid");
    EngineConfig::builder(min, max)
        .check(Check::new("utilization", Arc::new(policy)))
        .build()
        .expect("bounds come from a valid configuration")
}

/// Give repeated labels a `#2`, `#3` suffix so every column can be told apart.
pub(crate) fn dedupe_labels(contenders: &mut [Contender]) {
    for i in 1..contenders.len() {
        let label = contenders[i].label.clone();
        let seen = contenders[..i].iter().filter(|c| c.label == label).count();
        if seen > 0 {
            contenders[i].label = format!("{label}#{}", seen + 1);
        }
    }
}
