//! `[service.scaler]` of kind ansible, and its `status` table.

use std::sync::Arc;

use autoscale_ansible::{
    AnsibleScaler, AnsibleSettings, Program, StatusPlaybook, StatusSettings, StatusSource,
};
use autoscale_docker::{ComposeScaler, NameRule, SwarmSettings};

use super::diagnostics::{Ctx, NameKind, Result, check_name, join_key, only_keys};
use super::keyword::keyword;
use super::raw::{RawScaler, RawStatus};
use super::scaler::target_service;

/// `[service.scaler]` with `kind = "ansible"`, once the keys are known to fit the kind.
pub(crate) fn section(
    ctx: &Ctx<'_>,
    raw: &RawScaler,
    key: &str,
    service: &str,
) -> Result<AnsibleSettings> {
    let k = |name: &str| join_key(key, name);
    let playbook = ctx.required(
        &raw.playbook,
        &raw.kind,
        &k("playbook"),
        "an ansible scaler needs a playbook",
    )?;
    let playbook = ctx.file_path(playbook, &k("playbook"))?;
    let mut settings = AnsibleSettings::new(playbook);
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
            settings.extra_vars.insert(name.clone(), value);
        }
    }
    if let Some(s) = &raw.status {
        settings.status = Some(status(ctx, s.get_ref(), &k("status"), service)?);
    }
    if let Some(t) = &raw.tags {
        settings.tags = ctx.arguments(t, &k("tags"))?;
    }
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
            settings.env.insert(name.clone(), value.clone());
        }
    }
    ctx.at_most_one(
        key,
        (&raw.ansible_playbook, "ansible_playbook"),
        (&raw.virtualenv, "virtualenv"),
    )?;
    match (&raw.ansible_playbook, &raw.virtualenv) {
        // A bare name is looked up in PATH; only a path with a directory is the configuration's.
        (Some(p), _) if !p.get_ref().contains('/') => {
            settings.program = Program::Path(ctx.path(p, &k("ansible_playbook"))?);
        }
        (Some(p), _) => {
            settings.program = Program::Path(ctx.file_path(p, &k("ansible_playbook"))?);
        }
        (None, Some(v)) => {
            settings.program = Program::Virtualenv(ctx.file_path(v, &k("virtualenv"))?);
        }
        (None, None) => {}
    }
    settings.inventory = ctx.opt_file_path(&raw.inventory, &k("inventory"))?;
    settings.timeout = ctx.opt_duration(&raw.timeout, &k("timeout"), settings.timeout)?;
    if let Some(l) = &raw.limit {
        settings.limit = Some(ctx.argument(l, &k("limit"))?);
    }
    settings.check_mode = raw.check_mode.as_ref().is_some_and(|c| *c.get_ref());
    settings.vault_password_file =
        ctx.opt_file_path(&raw.vault_password_file, &k("vault_password_file"))?;
    // The status target is where a name Docker refuses can still hide: a default taken from the service's
    // name, or from `extra_vars.compose_project`.
    let (at, at_key) = match (&raw.status, &raw.extra_vars) {
        (Some(s), _) => (s.span(), k("status")),
        (None, Some(vars)) => (vars.span(), k("extra_vars")),
        (None, None) => (raw.kind.span(), key.to_owned()),
    };
    let status =
        status_source(service, &settings).map_err(|e| ctx.err(at, at_key, e.to_string()))?;
    settings
        .builder(service, status)
        .build()
        .map_err(|e| ctx.err(raw.kind.span(), key, e.to_string()))?;
    Ok(settings)
}

/// The ansible scaler of `service`, as the daemon runs it; building it runs nothing, so loading builds it too
/// and `check` refuses what `run` would. Without `status`, it counts the compose service of the same name in the
/// project the playbook scales (`extra_vars.compose_project`, or the original scaler's project).
pub(crate) fn scaler(
    service: &str,
    settings: &AnsibleSettings,
) -> std::result::Result<AnsibleScaler, Box<dyn std::error::Error + Send + Sync>> {
    let source = status_source(service, settings)?;
    Ok(settings.builder(service, source).build()?)
}

/// Where the ansible scaler of `service` reads the current count.
fn status_source(
    service: &str,
    settings: &AnsibleSettings,
) -> std::result::Result<StatusSource, autoscale_docker::Error> {
    let default_status = StatusSettings::Compose {
        project: settings
            .extra_vars
            .get("compose_project")
            .and_then(|v| v.as_str())
            .unwrap_or(autoscale_docker::DEFAULT_PROJECT)
            .to_owned(),
        file: None,
        service: service.to_owned(),
    };
    let status = settings.status.as_ref().unwrap_or(&default_status);
    Ok(match status {
        StatusSettings::Compose {
            project,
            file,
            service,
        } => {
            // Without a file, Compose finds the project's own files, which `ComposeSettings` cannot express.
            let docker = autoscale_docker::DockerCli::new().timeout(settings.timeout);
            let mut builder = ComposeScaler::builder(project, service).docker(docker);
            if let Some(file) = file {
                builder = builder.file(file);
            }
            StatusSource::Scaler(Arc::new(builder.build()?))
        }
        StatusSettings::Swarm { service } => {
            let mut swarm = SwarmSettings::new(service);
            swarm.timeout = settings.timeout;
            StatusSource::Scaler(Arc::new(swarm.scaler()?))
        }
        StatusSettings::Playbook { .. } => status
            .playbook_source()
            .expect("a playbook status has a playbook source"),
    })
}

/// The status table's `kind`.
#[derive(Clone, Copy, PartialEq)]
enum StatusKind {
    Compose,
    Swarm,
    Playbook,
}

keyword!(StatusKind, "status kind", "compose" => StatusKind::Compose, "swarm" => StatusKind::Swarm, "playbook" => StatusKind::Playbook);

fn status(ctx: &Ctx<'_>, raw: &RawStatus, key: &str, service: &str) -> Result<StatusSettings> {
    let k = |name: &str| join_key(key, name);
    let kind = ctx.keyword(&raw.kind, &k("kind"))?;
    let present = raw.present();
    let target = |rule| target_service(ctx, &raw.service, &k("service"), rule, service);
    match kind {
        StatusKind::Compose => {
            only_keys(
                ctx,
                key,
                "compose",
                &present,
                &["kind", "project", "file", "service"],
            )?;
            Ok(StatusSettings::Compose {
                project: match &raw.project {
                    Some(p) => ctx.docker_name(p, &k("project"), NameRule::ComposeProject)?,
                    None => autoscale_docker::DEFAULT_PROJECT.to_owned(),
                },
                file: ctx.opt_file_path(&raw.file, &k("file"))?,
                service: target(Some(NameRule::ComposeService))?,
            })
        }
        StatusKind::Swarm => {
            only_keys(ctx, key, "swarm", &present, &["kind", "service"])?;
            Ok(StatusSettings::Swarm {
                service: target(None)?,
            })
        }
        StatusKind::Playbook => {
            only_keys(
                ctx,
                key,
                "playbook",
                &present,
                &["kind", "playbook", "inventory"],
            )?;
            let playbook = ctx.required(
                &raw.playbook,
                &raw.kind,
                &k("playbook"),
                "a playbook status needs a playbook",
            )?;
            let playbook = ctx.file_path(playbook, &k("playbook"))?;
            Ok(StatusSettings::Playbook(StatusPlaybook {
                playbook,
                inventory: ctx.opt_file_path(&raw.inventory, &k("inventory"))?,
            }))
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
