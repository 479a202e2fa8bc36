//! `[service.scaler]` of kind ansible, and its `status` table.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::diagnostics::{Ctx, NameKind, Result, check_name, join_key, only_keys};
use super::raw::{RawScaler, RawStatus, S};

/// The program of an ansible scaler that names none, looked up in `PATH`.
const ANSIBLE_PLAYBOOK: &str = "ansible-playbook";

/// Which `ansible-playbook` to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnsibleProgram {
    /// This binary (a bare name is looked up in `PATH`).
    Binary(PathBuf),
    /// `VIRTUALENV/bin/ansible-playbook`.
    Virtualenv(PathBuf),
}

/// How the ansible scaler reads the current count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnsibleStatus {
    /// From a compose project.
    Compose {
        /// The compose project.
        project: String,
        /// The compose file, if any.
        file: Option<PathBuf>,
        /// The compose service.
        service: String,
    },
    /// From a Swarm service.
    Swarm {
        /// The Swarm service.
        service: String,
    },
    /// From a playbook that reports the count.
    Playbook {
        /// The status playbook.
        playbook: PathBuf,
        /// Its inventory (the scaler's inventory if `None`).
        inventory: Option<PathBuf>,
    },
}

/// `kind = "ansible"`.
#[derive(Clone, PartialEq)]
pub struct AnsibleSettings {
    /// The playbook that applies a count.
    pub playbook: PathBuf,
    /// The inventory.
    pub inventory: Option<PathBuf>,
    /// Extra variables, passed as JSON (`service` and `replicas` are always passed too).
    pub extra_vars: serde_json::Map<String, serde_json::Value>,
    /// How the current count is read; `None` leaves it to the scaler's default.
    pub status: Option<AnsibleStatus>,
    /// The timeout of one playbook run.
    pub timeout: Duration,
    /// `--limit`.
    pub limit: Option<String>,
    /// `--tags`.
    pub tags: Vec<String>,
    /// `--check`.
    pub check_mode: bool,
    /// `--vault-password-file`.
    pub vault_password_file: Option<PathBuf>,
    /// Extra environment variables of the playbook process.
    pub env: BTreeMap<String, String>,
    /// The program to run.
    pub program: AnsibleProgram,
}

impl fmt::Debug for AnsibleSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Variables and environment may carry credentials: show their names, not their values.
        f.debug_struct("AnsibleSettings")
            .field("playbook", &self.playbook)
            .field("inventory", &self.inventory)
            .field("extra_vars", &self.extra_vars.keys().collect::<Vec<_>>())
            .field("status", &self.status)
            .field("timeout", &self.timeout)
            .field("limit", &self.limit)
            .field("tags", &self.tags)
            .field("check_mode", &self.check_mode)
            .field("vault_password_file", &self.vault_password_file)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("program", &self.program)
            .finish()
    }
}

/// `[service.scaler]` with `kind = "ansible"`, once the keys are known to fit the kind.
pub(crate) fn section(
    ctx: &Ctx<'_>,
    scaler: &S<RawScaler>,
    key: &str,
    service_name: &str,
) -> Result<AnsibleSettings> {
    let raw = scaler.get_ref();
    let k = |name: &str| join_key(key, name);
    let playbook = match &raw.playbook {
        Some(p) => ctx.path(p, &k("playbook"))?,
        None => {
            return Err(ctx.err(
                raw.kind.span(),
                k("playbook"),
                "missing; an ansible scaler needs a playbook",
            ));
        }
    };
    let mut extra_vars = serde_json::Map::new();
    if let Some(vars) = &raw.extra_vars {
        for (name, value) in vars.get_ref() {
            if matches!(name.as_str(), "service" | "replicas") {
                return Err(ctx.err(
                    vars.span(),
                    format!("{}.{name}", k("extra_vars")),
                    "is always passed by the scaler and cannot be set here",
                ));
            }
            let value = toml_to_json(value)
                .map_err(|m| ctx.err(vars.span(), format!("{}.{name}", k("extra_vars")), m))?;
            extra_vars.insert(name.clone(), value);
        }
    }
    let status = raw
        .status
        .as_ref()
        .map(|s| ansible_status(ctx, s, &k("status"), service_name))
        .transpose()?;
    let tags = match &raw.tags {
        Some(t) => ctx.arguments(t, &k("tags"))?,
        None => Vec::new(),
    };
    let mut env = BTreeMap::new();
    if let Some(vars) = &raw.env {
        for (name, value) in vars.get_ref() {
            check_name(name, NameKind::EnvVar)
                .map_err(|m| ctx.err(vars.span(), format!("{}.{name}", k("env")), m))?;
            if value.contains('\0') {
                return Err(ctx.err(
                    vars.span(),
                    format!("{}.{name}", k("env")),
                    "must not contain a NUL character",
                ));
            }
            env.insert(name.clone(), value.clone());
        }
    }
    let program = match (&raw.ansible_playbook, &raw.virtualenv) {
        (Some(_), Some(v)) => {
            return Err(ctx.err(
                v.span(),
                k("virtualenv"),
                "ansible_playbook and virtualenv cannot both be set; choose one",
            ));
        }
        (Some(p), None) => AnsibleProgram::Binary(ctx.path(p, &k("ansible_playbook"))?),
        (None, Some(v)) => AnsibleProgram::Virtualenv(ctx.path(v, &k("virtualenv"))?),
        (None, None) => AnsibleProgram::Binary(PathBuf::from(ANSIBLE_PLAYBOOK)),
    };
    Ok(AnsibleSettings {
        playbook,
        inventory: ctx.opt_path(&raw.inventory, &k("inventory"))?,
        extra_vars,
        status,
        timeout: ctx.opt_duration(
            &raw.timeout,
            &k("timeout"),
            autoscale_ansible::DEFAULT_TIMEOUT,
        )?,
        limit: raw
            .limit
            .as_ref()
            .map(|l| ctx.argument(l, &k("limit")))
            .transpose()?,
        tags,
        check_mode: raw.check_mode.as_ref().is_some_and(|c| *c.get_ref()),
        vault_password_file: ctx.opt_path(&raw.vault_password_file, &k("vault_password_file"))?,
        env,
        program,
    })
}

fn ansible_status(
    ctx: &Ctx<'_>,
    status: &S<RawStatus>,
    key: &str,
    service_name: &str,
) -> Result<AnsibleStatus> {
    let raw = status.get_ref();
    let k = |name: &str| join_key(key, name);
    let kind = ctx.one_of(
        &raw.kind,
        &k("kind"),
        "status kind",
        &[("compose", 0), ("swarm", 1), ("playbook", 2)],
    )?;
    let present = [
        ("project", raw.project.as_ref().map(S::span)),
        ("file", raw.file.as_ref().map(S::span)),
        ("service", raw.service.as_ref().map(S::span)),
        ("playbook", raw.playbook.as_ref().map(S::span)),
        ("inventory", raw.inventory.as_ref().map(S::span)),
    ];
    let service = |v: &Option<S<String>>| -> Result<String> {
        match v {
            Some(s) => ctx.name(s, &k("service"), NameKind::Service),
            None => Ok(service_name.to_owned()),
        }
    };
    match kind {
        0 => {
            only_keys(
                ctx,
                key,
                "compose",
                &present,
                &["kind", "project", "file", "service"],
            )?;
            Ok(AnsibleStatus::Compose {
                project: match &raw.project {
                    Some(p) => ctx.name(p, &k("project"), NameKind::Project)?,
                    None => super::scaler::COMPOSE_PROJECT.to_owned(),
                },
                file: ctx.opt_path(&raw.file, &k("file"))?,
                service: service(&raw.service)?,
            })
        }
        1 => {
            only_keys(ctx, key, "swarm", &present, &["kind", "service"])?;
            Ok(AnsibleStatus::Swarm {
                service: service(&raw.service)?,
            })
        }
        _ => {
            only_keys(
                ctx,
                key,
                "playbook",
                &present,
                &["kind", "playbook", "inventory"],
            )?;
            let playbook = match &raw.playbook {
                Some(p) => ctx.path(p, &k("playbook"))?,
                None => {
                    return Err(ctx.err(
                        raw.kind.span(),
                        k("playbook"),
                        "missing; a playbook status needs a playbook",
                    ));
                }
            };
            Ok(AnsibleStatus::Playbook {
                playbook,
                inventory: ctx.opt_path(&raw.inventory, &k("inventory"))?,
            })
        }
    }
}

fn toml_to_json(value: &toml::Value) -> std::result::Result<serde_json::Value, String> {
    Ok(match value {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or("must be a finite number")?,
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        // Ansible reads dates as strings anyway; say so rather than guess a format.
        toml::Value::Datetime(_) => {
            return Err("dates are not supported; write the date as a string".to_owned());
        }
        toml::Value::Array(a) => serde_json::Value::Array(
            a.iter()
                .map(toml_to_json)
                .collect::<std::result::Result<_, _>>()?,
        ),
        toml::Value::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<std::result::Result<_, String>>()?,
        ),
    })
}
