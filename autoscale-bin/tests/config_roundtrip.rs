//! Any valid configuration survives validation with its values intact, and `check`'s rendering of it loads
//! back to the same configuration.

use std::time::Duration;

use autoscale_bin::config::{Config, Env, LoadOptions, PolicySettings, ScalerSettings};
use autoscale_core::policy::{Step, TargetForm};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Policy {
    Target {
        target: f64,
        total: bool,
        tolerance: f64,
    },
    Threshold {
        up: f64,
        down: f64,
        step: Result<u32, f64>,
    },
}

#[derive(Debug, Clone)]
struct Service {
    name: String,
    min: u32,
    max: u32,
    interval: u64,
    cooldown: Option<u64>,
    window: Option<u64>,
    policies: Vec<Policy>,
    scaler: u8,
    target: String,
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        (0.01f64..100.0, any::<bool>(), 0.0f64..0.99).prop_map(|(target, total, tolerance)| {
            Policy::Target {
                target,
                total,
                tolerance,
            }
        }),
        (
            0.0f64..10.0,
            0.0f64..1.0,
            prop_oneof![(1u32..5).prop_map(Ok), (1.0f64..200.0).prop_map(Err)]
        )
            .prop_map(|(up, frac, step)| Policy::Threshold {
                up,
                down: up * frac,
                step
            }),
    ]
}

fn service() -> impl Strategy<Value = Service> {
    (
        "[a-z][a-z0-9_.-]{0,20}",
        0u32..5,
        1u32..50,
        1u64..600,
        proptest::option::of(0u64..600),
        proptest::option::of(0u64..900),
        prop::collection::vec(policy(), 1..4),
        0u8..3,
        // Ends with a letter or digit, as a Swarm service name must.
        "[a-z0-9]([a-z0-9_-]{0,19}[a-z0-9])?",
    )
        .prop_map(
            |(name, min, span, interval, cooldown, window, policies, scaler, target)| Service {
                name,
                min,
                max: min + span,
                interval,
                cooldown,
                window,
                policies,
                scaler,
                target,
            },
        )
}

fn to_toml(svc: &Service) -> String {
    let mut t = format!(
        "[prometheus]\nurl = \"http://127.0.0.1:9090\"\n\n[[service]]\nname = \"{}\"\nmin_replicas = {}\nmax_replicas = {}\ninterval = \"{}s\"\n",
        svc.name, svc.min, svc.max, svc.interval
    );
    if let Some(c) = svc.cooldown {
        t.push_str(&format!(
            "cooldown_up = \"{c}s\"\ncooldown_down = \"{c}s\"\n"
        ));
    }
    t.push_str(&match svc.scaler {
        0 => format!(
            "scaler = {{ kind = \"compose\", project = \"{}\" }}\n",
            svc.target
        ),
        1 => format!(
            "scaler = {{ kind = \"swarm\", service = \"{}\" }}\n",
            svc.target
        ),
        _ => format!(
            "scaler = {{ kind = \"ansible\", playbook = \"{}.yml\" }}\n",
            svc.target
        ),
    });
    for (i, p) in svc.policies.iter().enumerate() {
        let policy = match p {
            Policy::Target {
                target,
                total,
                tolerance,
            } => format!(
                "{{ kind = \"target\", target = {target:?}, per = \"{}\", tolerance = {tolerance:?} }}",
                if *total { "total" } else { "replica" }
            ),
            Policy::Threshold { up, down, step } => {
                let step = match step {
                    Ok(n) => format!("step = {n}"),
                    Err(p) => format!("step_percent = {p:?}"),
                };
                format!(
                    "{{ kind = \"threshold\", scale_up_above = {up:?}, scale_down_below = {down:?}, {step} }}"
                )
            }
        };
        t.push_str(&format!(
            "[[service.check]]\nname = \"c{i}\"\nquery = \"q{i}\"\npolicy = {policy}\n"
        ));
    }
    if let Some(w) = svc.window {
        t.push_str(&format!(
            "[service.behavior.scale_down]\nstabilization_window = \"{w}s\"\n"
        ));
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn valid_configs_round_trip(svc in service()) {
        let text = to_toml(&svc);
        let config = Config::from_toml("p.toml", &text, &Env::empty(), LoadOptions::default())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let s = &config.services[0];
        prop_assert_eq!(&s.name, &svc.name);
        prop_assert_eq!(s.engine.min_replicas(), svc.min);
        prop_assert_eq!(s.engine.max_replicas(), svc.max);
        prop_assert_eq!(s.interval, Duration::from_secs(svc.interval));
        let has_threshold = svc.policies.iter().any(|p| matches!(p, Policy::Threshold { .. }));
        let default_cooldown = if has_threshold { 60 } else { 0 };
        prop_assert_eq!(s.engine.cooldown_up(), Duration::from_secs(svc.cooldown.unwrap_or(default_cooldown)));
        prop_assert_eq!(
            s.engine.behavior().scale_down.stabilization_window(),
            Duration::from_secs(svc.window.unwrap_or(300))
        );
        prop_assert_eq!(s.checks.len(), svc.policies.len());
        for (check, p) in s.checks.iter().zip(&svc.policies) {
            let want = match *p {
                Policy::Target { target, total, tolerance } => PolicySettings::Target {
                    target,
                    per: if total { TargetForm::Total } else { TargetForm::PerReplica },
                    tolerance,
                },
                Policy::Threshold { up, down, step } => PolicySettings::Threshold {
                    scale_up_above: up,
                    scale_down_below: down,
                    step: match step { Ok(n) => Step::Count(n), Err(p) => Step::Percent(p) },
                },
            };
            prop_assert_eq!(check.policy, want);
        }
        let target = match &s.scaler {
            ScalerSettings::Compose(c) => c.project.clone(),
            ScalerSettings::Swarm(w) => w.service.clone(),
            ScalerSettings::Ansible(a) => a.playbook.to_string_lossy().trim_end_matches(".yml").to_owned(),
        };
        prop_assert_eq!(target, svc.target.clone());

        let rendered = config.to_redacted_toml();
        let again = Config::from_toml("p.toml", &rendered, &Env::empty(), LoadOptions::default())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{rendered}")))?;
        prop_assert_eq!(again.to_redacted_toml(), rendered);
    }
}
