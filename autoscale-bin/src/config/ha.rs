//! `[daemon] ha`: several daemons on the Swarm managers, one of which scales, elected through a lease in
//! Swarm's Raft store.

use std::time::Duration;

use autoscale_core::lease::LeaseConfig;
use serde::Deserialize;

use super::diagnostics::{Ctx, Result};
use super::raw::{RawDuration, S};

/// `ha = { kind = "swarm", lock_service, lease, renew_deadline, retry }` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHa {
    pub kind: S<String>,
    pub lock_service: Option<S<String>>,
    pub lease: Option<RawDuration>,
    pub renew_deadline: Option<RawDuration>,
    pub retry: Option<RawDuration>,
}

/// Where the lease lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HaKind {
    /// The labels of a placeholder Swarm service, through the daemon's Docker endpoint (`DOCKER_HOST`, or
    /// the local socket).
    Swarm,
}

/// High availability (`[daemon] ha`): the daemons that share it elect one leader, which alone scales; the
/// others evaluate in dry run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HaSettings {
    /// Where the lease lives.
    pub kind: HaKind,
    /// The placeholder service holding the lease.
    pub lock_service: String,
    /// How long a lease lasts without renewal, as the others see it.
    #[serde(serialize_with = "super::render::text_duration")]
    pub lease: Duration,
    /// How long a leader keeps scaling since its last renewal.
    #[serde(serialize_with = "super::render::text_duration")]
    pub renew_deadline: Duration,
    /// How often each daemon tries to acquire or renew.
    #[serde(serialize_with = "super::render::text_duration")]
    pub retry: Duration,
}

impl HaSettings {
    /// The election's timing.
    pub fn lease_config(&self) -> LeaseConfig {
        LeaseConfig::new(self.lease, self.renew_deadline, self.retry).unwrap_or_default()
    }
}

pub(crate) fn section(ctx: &Ctx<'_>, raw: &S<RawHa>) -> Result<HaSettings> {
    let ha = raw.get_ref();
    let kind = ctx.one_of(
        &ha.kind,
        "daemon.ha.kind",
        "ha kind",
        &[("swarm", HaKind::Swarm)],
    )?;
    let lock_service = match &ha.lock_service {
        Some(name) => ctx.docker_name(
            name,
            "daemon.ha.lock_service",
            autoscale_docker::NameRule::SwarmService,
        )?,
        None => autoscale_docker::DEFAULT_LOCK_SERVICE.to_owned(),
    };
    let lease = ctx.opt_duration(&ha.lease, "daemon.ha.lease", LeaseConfig::DEFAULT_LEASE)?;
    let renew_deadline = ctx.opt_duration(
        &ha.renew_deadline,
        "daemon.ha.renew_deadline",
        LeaseConfig::DEFAULT_RENEW_DEADLINE,
    )?;
    let retry = ctx.opt_duration(&ha.retry, "daemon.ha.retry", LeaseConfig::DEFAULT_RETRY)?;
    LeaseConfig::new(lease, renew_deadline, retry)
        .map_err(|e| ctx.err(raw.span(), "daemon.ha", e.to_string()))?;
    Ok(HaSettings {
        kind,
        lock_service,
        lease,
        renew_deadline,
        retry,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Env, LoadOptions};

    fn load(ha: &str) -> Result<Config, crate::config::ConfigError> {
        let toml = format!(
            r#"
[prometheus]
url = "http://127.0.0.1:9090"

[daemon]
{ha}

[[service]]
name = "web"
scaler = {{ kind = "swarm", service = "web" }}
check = [{{ name = "cpu", query = "x", policy = {{ kind = "target", target = 0.5 }} }}]
"#
        );
        Config::from_toml("ha.toml", &toml, &Env::empty(), LoadOptions::default())
    }

    #[test]
    fn the_defaults_are_kubernetes_and_the_settings_render_back() {
        let config = load(r#"ha = { kind = "swarm" }"#).unwrap();
        let ha = config.daemon.ha.clone().unwrap();
        assert_eq!(ha.lock_service, "autoscale-lock");
        assert_eq!(
            (
                ha.lease.as_secs(),
                ha.renew_deadline.as_secs(),
                ha.retry.as_secs()
            ),
            (15, 10, 2)
        );
        let rendered = crate::config::render::render(&config);
        let again = Config::from_toml(
            "again.toml",
            &rendered,
            &Env::empty(),
            LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(again.daemon.ha, config.daemon.ha, "{rendered}");
        assert!(
            load("").unwrap().daemon.ha.is_none(),
            "without it: one daemon"
        );
    }

    #[test]
    fn bad_settings_name_their_key() {
        let err = load(r#"ha = { kind = "etcd" }"#).unwrap_err().to_string();
        assert!(err.contains("daemon.ha.kind"), "{err}");
        let err = load(r#"ha = { kind = "swarm", lock_service = "a;b" }"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("daemon.ha.lock_service"), "{err}");
        let err = load(r#"ha = { kind = "swarm", lease = "5s", renew_deadline = "10s" }"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("renew_deadline") && err.contains("daemon.ha"),
            "{err}"
        );
        let err = load(r#"ha = { kind = "swarm", leese = "5s" }"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("leese"), "{err}");
    }
}
