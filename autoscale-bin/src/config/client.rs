//! What the Prometheus client refuses, found while loading: the client's own rules (reserved headers, keys
//! that depend on each other, the files it reads), each pointed at the key that breaks it. `check`, `run` and
//! `once` load the same way, so a file that `check` accepts also builds its clients.

use std::ops::Range;
use std::path::Path;

use autoscale_prom::{PrometheusClient, PrometheusConfig};

use super::diagnostics::{Ctx, Result, join_key};
use super::prometheus::PrometheusSettings;
use super::raw::{RawPrometheus, S};

/// The key of the header `name` in the table at `key`: `prometheus.headers."X-Scope-OrgID"`.
pub(crate) fn header_key(key: &str, name: &str) -> String {
    format!("{}.{name:?}", join_key(key, "headers"))
}

/// The client's verdict on `settings`, the section at `key` (written at `section`) as `raw`. With
/// `read_files`, the client is built as the daemon builds it, which reads the credential, CA and client
/// certificate files; a configuration that never queries Prometheus (the simulator) skips that.
pub(crate) fn check(
    ctx: &Ctx<'_>,
    raw: &RawPrometheus,
    key: &str,
    section: Range<usize>,
    settings: &PrometheusSettings,
    read_files: bool,
) -> Result<()> {
    let k = |name: &str| join_key(key, name);
    let at_section = |name: &str, e: autoscale_prom::Error| {
        let span = raw.url.as_ref().map_or(section.clone(), S::span);
        ctx.err(span, k(name), message(&e))
    };
    // Header by header, so that the error points at the one refused.
    let mut probe =
        PrometheusConfig::new(settings.url.expose().as_str()).map_err(|e| at_section("url", e))?;
    for (name, value) in raw.headers.iter().flatten() {
        probe = probe
            .header(name.get_ref(), value.get_ref())
            .map_err(|e| ctx.err(name.span(), header_key(key, name.get_ref()), message(&e)))?;
    }
    let files = file_keys(raw);
    let config = settings.client_config().map_err(|e| at_section("", e))?;
    config.validate().map_err(|e| {
        // The client's messages name the key they are about.
        let reason = message(&e);
        match files.iter().find(|(name, _, _)| reason.contains(name)) {
            Some((name, span, _)) => ctx.err(span.clone(), k(name), reason),
            None => ctx.err(section.clone(), key, reason),
        }
    })?;
    if read_files {
        // The warning for insecure_skip_verify belongs to the daemon's start, not to loading.
        PrometheusClient::new(config.insecure_skip_verify(false)).map_err(|e| {
            let file = match &e {
                autoscale_prom::Error::File { path, .. } => {
                    files.iter().find(|(_, _, p)| Path::new(p) == path)
                }
                _ => None,
            };
            match file {
                Some((name, span, _)) => ctx.err(span.clone(), k(name), message(&e)),
                None => ctx.err(section.clone(), key, message(&e)),
            }
        })?;
    }
    Ok(())
}

/// The keys that name a file the client reads: (key, where it is written, the path).
fn file_keys(raw: &RawPrometheus) -> Vec<(&'static str, Range<usize>, &str)> {
    let basic = raw.basic_auth.as_ref().map(|b| &b.get_ref().password_file);
    [
        ("bearer_token_file", raw.bearer_token_file.as_ref()),
        ("basic_auth.password_file", basic),
        ("ca_file", raw.ca_file.as_ref()),
        ("client_cert_file", raw.client_cert_file.as_ref()),
        ("client_key_file", raw.client_key_file.as_ref()),
    ]
    .into_iter()
    .filter_map(|(name, v)| v.map(|v| (name, v.span(), v.get_ref().as_str())))
    .collect()
}

/// The client's message without its prefixes: the position and key already say where.
fn message(e: &autoscale_prom::Error) -> String {
    match e {
        autoscale_prom::Error::Config { reason } => reason
            .strip_prefix("headers: ")
            .unwrap_or(reason)
            .to_owned(),
        other => other.to_string(),
    }
}
