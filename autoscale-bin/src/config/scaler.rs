//! `[service.scaler]` of kind compose and swarm, and the dispatch on `kind`.

use std::time::Duration;

use autoscale_ansible::AnsibleSettings;
use autoscale_docker::{ComposeCommand, ComposeSettings, DockerEnv, NameRule, SwarmSettings};

use super::ansible;
use super::diagnostics::{Ctx, NameKind, Result, check_path, join_key, only_keys};
use super::keyword::keyword;
use super::raw::{RawScaler, S};

/// A service's scaler. It serializes as the `[service.scaler]` table (durations as serde writes them).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
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

    /// The timeout of one call of the scaler.
    pub fn timeout(&self) -> Duration {
        match self {
            ScalerSettings::Compose(s) => s.timeout,
            ScalerSettings::Swarm(s) => s.timeout,
            ScalerSettings::Ansible(s) => s.timeout,
        }
    }
}

/// The scaler table's `kind`.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Compose,
    Swarm,
    Ansible,
}

keyword!(Kind, "scaler", "compose" => Kind::Compose, "swarm" => Kind::Swarm, "ansible" => Kind::Ansible);

/// What two scalers that [`same_target`] may match have in common: the kind and the service they scale
/// (`None` for a kind that never shares a target). Services are compared with [`same_target`] only within
/// one bucket, which keeps loading linear in their count.
pub(crate) fn target_bucket(scaler: &ScalerSettings) -> Option<(&'static str, String)> {
    match scaler {
        ScalerSettings::Compose(s) => Some(("compose", s.service.clone())),
        ScalerSettings::Swarm(s) => Some(("swarm", s.service.clone())),
        ScalerSettings::Ansible(_) => None,
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

fn docker_env(ctx: &Ctx<'_>, raw: &RawScaler, key: &str) -> Result<DockerEnv> {
    let k = |name: &str| join_key(key, name);
    let text = |v: &Option<S<String>>, name: &str| -> Result<Option<String>> {
        v.as_ref()
            .map(|v| {
                check_path(v.get_ref()).map_err(|m| ctx.err(v.span(), k(name), m))?;
                Ok(v.get_ref().clone())
            })
            .transpose()
    };
    Ok(DockerEnv {
        host: text(&raw.docker_host, "docker_host")?,
        context: text(&raw.docker_context, "docker_context")?,
        tls_verify: raw.docker_tls_verify.as_ref().map(|v| *v.get_ref()),
        cert_path: ctx.opt_file_path(&raw.docker_cert_path, &k("docker_cert_path"))?,
    })
}

const DOCKER_KEYS: [&str; 4] = [
    "docker_host",
    "docker_context",
    "docker_tls_verify",
    "docker_cert_path",
];

/// The compose or Swarm service a scaler targets: the `service` key checked against `rule`, or the autoscale
/// service's own name. Swarm's stricter rule (no '.') is applied by [`built`], as for every check the scaler
/// makes when it is built.
pub(crate) fn target_service(
    ctx: &Ctx<'_>,
    v: &Option<S<String>>,
    key: &str,
    rule: Option<NameRule>,
    default: &str,
) -> Result<String> {
    match (v, rule) {
        (Some(s), Some(rule)) => ctx.docker_name(s, key, rule),
        (Some(s), None) => ctx.name(s, key, NameKind::Service),
        (None, _) => Ok(default.to_owned()),
    }
}

/// The backend's verdict, as the daemon builds the scaler (which runs nothing), so that `check` refuses what
/// `run` would: pointed at `service` for a service name Docker refuses, else at the table.
fn built<T>(
    ctx: &Ctx<'_>,
    scaler: &S<RawScaler>,
    key: &str,
    built: std::result::Result<T, autoscale_docker::Error>,
) -> Result<()> {
    built.map(drop).map_err(|e| {
        let at_service = match (&e, &scaler.get_ref().service) {
            (autoscale_docker::Error::InvalidName { what, .. }, Some(s))
                if what.ends_with("service name") =>
            {
                Some(s.span())
            }
            _ => None,
        };
        match at_service {
            Some(span) => ctx.err(span, join_key(key, "service"), e.to_string()),
            None => ctx.err(scaler.span(), key, e.to_string()),
        }
    })
}

/// One `[service.scaler]`: the table's `kind` decides which keys it takes.
pub(crate) fn section(
    ctx: &Ctx<'_>,
    scaler: &S<RawScaler>,
    key: &str,
    service_name: &str,
) -> Result<ScalerSettings> {
    let raw = scaler.get_ref();
    let k = |name: &str| join_key(key, name);
    let kind = ctx.keyword(&raw.kind, &k("kind"))?;
    let present = raw.present();
    let target = |rule| target_service(ctx, &raw.service, &k("service"), rule, service_name);
    let timeout = |default| ctx.opt_duration(&raw.timeout, &k("timeout"), default);
    match kind {
        Kind::Compose => {
            let mut allowed = vec![
                "kind", "project", "file", "service", "command", "env_file", "profiles", "timeout",
            ];
            allowed.extend(DOCKER_KEYS);
            only_keys(ctx, key, "compose", &present, &allowed)?;
            let mut compose = ComposeSettings::new(target(Some(NameRule::ComposeService))?);
            if let Some(p) = &raw.project {
                compose.project = ctx.docker_name(p, &k("project"), NameRule::ComposeProject)?;
            }
            if let Some(f) = &raw.file {
                compose.file = ctx.file_path(f, &k("file"))?;
            }
            if let Some(c) = &raw.command {
                compose.command = ComposeCommand::argv(ctx.command(c, &k("command"))?);
            }
            compose.env_file = ctx.opt_file_path(&raw.env_file, &k("env_file"))?;
            if let Some(p) = &raw.profiles {
                for profile in p.get_ref() {
                    autoscale_docker::check_name(NameRule::Profile, profile)
                        .map_err(|e| ctx.err(p.span(), k("profiles"), e.to_string()))?;
                }
                compose.profiles.clone_from(p.get_ref());
            }
            compose.timeout = timeout(compose.timeout)?;
            compose.docker = docker_env(ctx, raw, key)?;
            built(ctx, scaler, key, compose.scaler())?;
            Ok(ScalerSettings::Compose(compose))
        }
        Kind::Swarm => {
            let mut allowed = vec!["kind", "service", "command", "timeout"];
            allowed.extend(DOCKER_KEYS);
            only_keys(ctx, key, "swarm", &present, &allowed)?;
            let mut swarm = SwarmSettings::new(target(None)?);
            if let Some(c) = &raw.command {
                swarm.command = ctx
                    .command(c, &k("command"))?
                    .into_iter()
                    .map(Into::into)
                    .collect();
            }
            swarm.timeout = timeout(swarm.timeout)?;
            swarm.docker = docker_env(ctx, raw, key)?;
            built(ctx, scaler, key, swarm.scaler())?;
            Ok(ScalerSettings::Swarm(swarm))
        }
        Kind::Ansible => {
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
            ansible::section(ctx, raw, key, service_name).map(ScalerSettings::Ansible)
        }
    }
}
