//! From the file's text to a [`Config`]: parse, validate each section, then apply the environment.

use std::path::Path;

use super::diagnostics::{Ctx, Result, join_key, path_to_key};
use super::raw::RawConfig;
use super::scaler::same_target;
use super::{Config, Env, LoadOptions, ServiceConfig, Source, daemon, env, prometheus, service};

pub(crate) fn from_toml(
    path: &Path,
    text: &str,
    env: &Env,
    options: LoadOptions,
) -> Result<Config> {
    let ctx = Ctx::new(path, text);
    let de = toml::Deserializer::parse(text).map_err(|e| {
        // The parser names no key; for a duplicate, the key is the text it points at.
        let key = match e.span() {
            Some(span) if e.message().starts_with("duplicate key") => {
                text.get(span).unwrap_or_default().trim().to_owned()
            }
            _ => String::new(),
        };
        ctx.toml_error(&e, key)
    })?;
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = path_to_key(e.path());
        ctx.toml_error(e.inner(), key)
    })?;
    validate(&ctx, raw, env, options)
}

fn validate(ctx: &Ctx<'_>, raw: RawConfig, env: &Env, options: LoadOptions) -> Result<Config> {
    let url = env::prometheus_url(env)?;
    let (prometheus, instances) =
        prometheus::section(ctx, raw.prometheus, url, options.url_optional)?;
    let mut daemon = daemon::section(ctx, raw.daemon.unwrap_or_default())?;
    env::apply_daemon_overrides(env, &mut daemon)?;

    if raw.service.is_empty() {
        return Err(ctx.err(
            0..0,
            "service",
            "missing; the file needs at least one [[service]]",
        ));
    }
    let mut services: Vec<ServiceConfig> = Vec::with_capacity(raw.service.len());
    for (i, svc) in raw.service.iter().enumerate() {
        let key = format!("service[{i}]");
        let service = service::section(ctx, svc, &key, &prometheus, &instances, daemon.dry_run)?;
        let taken = services.iter().any(|s| s.name == service.name);
        ctx.unique(taken, &svc.get_ref().name, &key, "service name", "")?;
        if let Some(other) = services
            .iter()
            .find(|s| same_target(&s.scaler, &service.scaler))
        {
            return Err(ctx.err(
                svc.get_ref().scaler.span(),
                join_key(&key, "scaler"),
                format!(
                    "scales the same target as service {:?}; two services would fight over it",
                    other.name
                ),
            ));
        }
        services.push(service);
    }

    Ok(Config {
        source: Source::File(ctx.file().to_owned()),
        prometheus,
        instances,
        daemon,
        services,
    })
}
