//! `[service.scaler]` of kind compose and swarm, and the dispatch on `kind`.

use std::path::PathBuf;
use std::time::Duration;

use super::ansible::{self, AnsibleSettings};
use super::diagnostics::{Ctx, NameKind, Result, check_name, check_path, join_key, only_keys};
use super::raw::{RawScaler, S};

/// The compose project of the original scaler.
pub(crate) const COMPOSE_PROJECT: &str = "prometheus-autoscale-sim";
/// The compose file of a compose scaler that names none.
pub(crate) const COMPOSE_FILE: &str = "docker-compose.yml";

/// Where the docker CLI connects; unset values come from the process environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerSettings {
    /// `DOCKER_HOST`.
    pub host: Option<String>,
    /// `DOCKER_CONTEXT`.
    pub context: Option<String>,
    /// `DOCKER_TLS_VERIFY`.
    pub tls_verify: Option<bool>,
    /// `DOCKER_CERT_PATH`.
    pub cert_path: Option<PathBuf>,
}

/// `kind = "compose"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeSettings {
    /// The compose project name.
    pub project: String,
    /// The compose file.
    pub file: PathBuf,
    /// The compose service.
    pub service: String,
    /// The compose command; `None` lets the scaler find one (`docker compose`, else `docker-compose`).
    pub command: Option<Vec<String>>,
    /// An env file for compose.
    pub env_file: Option<PathBuf>,
    /// Compose profiles to enable.
    pub profiles: Vec<String>,
    /// The timeout of one compose command.
    pub timeout: Duration,
    /// Docker connection settings.
    pub docker: DockerSettings,
}

/// `kind = "swarm"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmSettings {
    /// The Swarm service.
    pub service: String,
    /// The docker command.
    pub command: Vec<String>,
    /// The timeout of one docker command.
    pub timeout: Duration,
    /// Docker connection settings.
    pub docker: DockerSettings,
}

/// A service's scaler.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalerSettings {
    /// Docker Compose.
    Compose(ComposeSettings),
    /// Docker Swarm.
    Swarm(SwarmSettings),
    /// An Ansible playbook.
    Ansible(AnsibleSettings),
}

impl ScalerSettings {
    /// `"compose"`, `"swarm"` or `"ansible"`.
    pub fn kind(&self) -> &'static str {
        match self {
            ScalerSettings::Compose(_) => "compose",
            ScalerSettings::Swarm(_) => "swarm",
            ScalerSettings::Ansible(_) => "ansible",
        }
    }
}

/// Whether two services would scale the same thing.
pub(crate) fn same_target(a: &ScalerSettings, b: &ScalerSettings) -> bool {
    match (a, b) {
        (ScalerSettings::Compose(a), ScalerSettings::Compose(b)) => {
            a.project == b.project && a.service == b.service && a.docker == b.docker
        }
        (ScalerSettings::Swarm(a), ScalerSettings::Swarm(b)) => {
            a.service == b.service && a.docker == b.docker
        }
        _ => false,
    }
}

fn docker_settings(ctx: &Ctx<'_>, raw: &RawScaler, key: &str) -> Result<DockerSettings> {
    let k = |name: &str| join_key(key, name);
    let text = |v: &Option<S<String>>, name: &str| -> Result<Option<String>> {
        v.as_ref()
            .map(|v| {
                check_path(v.get_ref()).map_err(|m| ctx.err(v.span(), k(name), m))?;
                Ok(v.get_ref().clone())
            })
            .transpose()
    };
    Ok(DockerSettings {
        host: text(&raw.docker_host, "docker_host")?,
        context: text(&raw.docker_context, "docker_context")?,
        tls_verify: raw.docker_tls_verify.as_ref().map(|v| *v.get_ref()),
        cert_path: ctx.opt_path(&raw.docker_cert_path, &k("docker_cert_path"))?,
    })
}

const DOCKER_KEYS: [&str; 4] = [
    "docker_host",
    "docker_context",
    "docker_tls_verify",
    "docker_cert_path",
];

/// One `[service.scaler]`: the table's `kind` decides which keys it takes.
pub(crate) fn section(
    ctx: &Ctx<'_>,
    scaler: &S<RawScaler>,
    key: &str,
    service_name: &str,
) -> Result<ScalerSettings> {
    let raw = scaler.get_ref();
    let k = |name: &str| join_key(key, name);
    let kind = ctx.one_of(
        &raw.kind,
        &k("kind"),
        "scaler",
        &[("compose", 0), ("swarm", 1), ("ansible", 2)],
    )?;
    let present = [
        ("project", raw.project.as_ref().map(S::span)),
        ("file", raw.file.as_ref().map(S::span)),
        ("service", raw.service.as_ref().map(S::span)),
        ("command", raw.command.as_ref().map(S::span)),
        ("env_file", raw.env_file.as_ref().map(S::span)),
        ("profiles", raw.profiles.as_ref().map(S::span)),
        ("timeout", raw.timeout.as_ref().map(S::span)),
        ("docker_host", raw.docker_host.as_ref().map(S::span)),
        ("docker_context", raw.docker_context.as_ref().map(S::span)),
        (
            "docker_tls_verify",
            raw.docker_tls_verify.as_ref().map(S::span),
        ),
        (
            "docker_cert_path",
            raw.docker_cert_path.as_ref().map(S::span),
        ),
        ("playbook", raw.playbook.as_ref().map(S::span)),
        ("inventory", raw.inventory.as_ref().map(S::span)),
        ("extra_vars", raw.extra_vars.as_ref().map(S::span)),
        ("status", raw.status.as_ref().map(S::span)),
        ("limit", raw.limit.as_ref().map(S::span)),
        ("tags", raw.tags.as_ref().map(S::span)),
        ("check_mode", raw.check_mode.as_ref().map(S::span)),
        (
            "vault_password_file",
            raw.vault_password_file.as_ref().map(S::span),
        ),
        ("env", raw.env.as_ref().map(S::span)),
        (
            "ansible_playbook",
            raw.ansible_playbook.as_ref().map(S::span),
        ),
        ("virtualenv", raw.virtualenv.as_ref().map(S::span)),
    ];
    let target_service = |v: &Option<S<String>>, name: &str| -> Result<String> {
        match v {
            Some(s) => ctx.name(s, &k(name), NameKind::Service),
            None => Ok(service_name.to_owned()),
        }
    };
    match kind {
        0 => {
            let mut allowed = vec![
                "kind", "project", "file", "service", "command", "env_file", "profiles", "timeout",
            ];
            allowed.extend(DOCKER_KEYS);
            only_keys(ctx, key, "compose", &present, &allowed)?;
            let profiles = match &raw.profiles {
                Some(p) => {
                    for profile in p.get_ref() {
                        check_name(profile, NameKind::Service)
                            .map_err(|m| ctx.err(p.span(), k("profiles"), m))?;
                    }
                    p.get_ref().clone()
                }
                None => Vec::new(),
            };
            Ok(ScalerSettings::Compose(ComposeSettings {
                project: match &raw.project {
                    Some(p) => ctx.name(p, &k("project"), NameKind::Project)?,
                    None => COMPOSE_PROJECT.to_owned(),
                },
                file: match &raw.file {
                    Some(f) => ctx.path(f, &k("file"))?,
                    None => PathBuf::from(COMPOSE_FILE),
                },
                service: target_service(&raw.service, "service")?,
                command: raw
                    .command
                    .as_ref()
                    .map(|c| ctx.command(c, &k("command")))
                    .transpose()?,
                env_file: ctx.opt_path(&raw.env_file, &k("env_file"))?,
                profiles,
                timeout: ctx.opt_duration(
                    &raw.timeout,
                    &k("timeout"),
                    autoscale_docker::DEFAULT_TIMEOUT,
                )?,
                docker: docker_settings(ctx, raw, key)?,
            }))
        }
        1 => {
            let mut allowed = vec!["kind", "service", "command", "timeout"];
            allowed.extend(DOCKER_KEYS);
            only_keys(ctx, key, "swarm", &present, &allowed)?;
            Ok(ScalerSettings::Swarm(SwarmSettings {
                service: target_service(&raw.service, "service")?,
                command: match &raw.command {
                    Some(c) => ctx.command(c, &k("command"))?,
                    None => vec!["docker".to_owned()],
                },
                timeout: ctx.opt_duration(
                    &raw.timeout,
                    &k("timeout"),
                    autoscale_docker::DEFAULT_TIMEOUT,
                )?,
                docker: docker_settings(ctx, raw, key)?,
            }))
        }
        _ => {
            only_keys(
                ctx,
                key,
                "ansible",
                &present,
                &[
                    "kind",
                    "playbook",
                    "inventory",
                    "extra_vars",
                    "status",
                    "timeout",
                    "limit",
                    "tags",
                    "check_mode",
                    "vault_password_file",
                    "env",
                    "ansible_playbook",
                    "virtualenv",
                ],
            )?;
            ansible::section(ctx, scaler, key, service_name).map(ScalerSettings::Ansible)
        }
    }
}
