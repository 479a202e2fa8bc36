//! From the file's text to a [`Config`]: parse, validate each section, then apply the environment.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use super::diagnostics::{Ctx, Result, join_key, path_to_key};
use super::raw::RawConfig;
use super::scaler::{same_target, target_bucket};
use super::{
    Config, ConfigError, Env, LoadOptions, MAX_FILE_BYTES, ServiceConfig, Source, daemon, discover,
    env, prometheus, service,
};

/// The text of the configuration file at `path`: a regular file of at most [`MAX_FILE_BYTES`], in UTF-8.
pub(crate) fn read_file(path: &Path) -> Result<String> {
    let cannot = |e: std::io::Error| ConfigError::file(path, format!("cannot read the file: {e}"));
    // Ask before opening: opening a FIFO would block until someone writes to it.
    let kind = std::fs::metadata(path).map_err(cannot)?.file_type();
    not_regular(path, kind)?;
    let file = std::fs::File::open(path).map_err(cannot)?;
    // Again on what was opened, in case the path was replaced in between.
    let meta = file.metadata().map_err(cannot)?;
    not_regular(path, meta.file_type())?;
    let too_large = |size: u64| {
        ConfigError::file(
            path,
            format!(
                "the file is {size} bytes, over the limit of {MAX_FILE_BYTES} bytes (16 MiB) for a configuration"
            ),
        )
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    // The limit holds even for a file that grows while it is read.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        ConfigError::file(
            path,
            format!(
                "cannot read the file: not UTF-8 text (at byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

fn not_regular(path: &Path, kind: std::fs::FileType) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(ConfigError::file(
        path,
        format!("cannot read the file: it is {what}; a configuration must be a regular file"),
    ))
}

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
    let mut daemon = daemon::section(ctx, raw.daemon.unwrap_or_default(), !options.url_optional)?;
    env::apply_daemon_overrides(env, &mut daemon)?;

    if raw.service.is_empty() && raw.discover.is_empty() {
        return Err(ctx.err(
            0..0,
            "service",
            "missing; the file needs at least one [[service]] or [[discover]]",
        ));
    }
    let mut discover = Vec::with_capacity(raw.discover.len());
    for (i, section) in raw.discover.iter().enumerate() {
        let key = format!("discover[{i}]");
        discover.push(discover::section(
            ctx,
            section,
            &key,
            &prometheus,
            &instances,
        )?);
    }
    let mut services: Vec<ServiceConfig> = Vec::with_capacity(raw.service.len());
    // Names and targets are looked up by hash, so that a file of many services loads in linear time.
    let mut names = HashSet::with_capacity(raw.service.len());
    let mut targets: HashMap<_, Vec<usize>> = HashMap::with_capacity(raw.service.len());
    for (i, svc) in raw.service.iter().enumerate() {
        let key = format!("service[{i}]");
        let service = service::section(ctx, svc, &key, &prometheus, &instances, daemon.dry_run)?;
        let taken = !names.insert(service.name.clone());
        ctx.unique(taken, &svc.get_ref().name, &key, "service name", "")?;
        let bucket = target_bucket(&service.scaler).map(|b| targets.entry(b).or_default());
        if let Some(other) = bucket
            .iter()
            .flat_map(|b| b.iter())
            .map(|&j| &services[j])
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
        if let Some(bucket) = bucket {
            bucket.push(services.len());
        }
        services.push(service);
    }

    Ok(Config {
        source: Source::File(ctx.file().to_owned()),
        prometheus,
        instances,
        daemon,
        services,
        discover,
    })
}
