//! `[prometheus]` and `[prometheus.instances.NAME]`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use autoscale_prom::{OnEmpty, PrometheusConfig};

use super::client::{self, header_key};
use super::diagnostics::{Ctx, NameKind, Result, join_key};
use super::is_sensitive_name;
use super::raw::{RawBasicAuth, RawPrometheus, S};

/// The Prometheus URL of the environment-only configuration (the original scaler's compose network name), and
/// of a simulation's file that sets none.
pub const DEFAULT_PROMETHEUS_URL: &str = "http://prometheus:9090";

/// `[prometheus]` and its instances, with unset instance keys inherited. `url`, when given, comes from the
/// environment and wins over the file's. `offline`: the configuration never queries Prometheus (the
/// simulator), so it needs no URL and the files the client reads are not opened.
pub(crate) fn section(
    ctx: &Ctx<'_>,
    raw: Option<S<RawPrometheus>>,
    url: Option<PromUrl>,
    offline: bool,
) -> Result<(PrometheusSettings, BTreeMap<String, PrometheusSettings>)> {
    let (prom_raw, prom_span) = match raw {
        Some(p) => {
            let span = p.span();
            (p.into_inner(), span)
        }
        None => (RawPrometheus::default(), 0..0),
    };
    let url = match url {
        Some(url) => url,
        None => match &prom_raw.url {
            Some(u) => {
                parse_url(u.get_ref()).map_err(|m| ctx.err(u.span(), "prometheus.url", m))?
            }
            None if offline => parse_url(DEFAULT_PROMETHEUS_URL).expect("the default URL is valid"),
            None => {
                return Err(ctx.err(
                    prom_span,
                    "prometheus.url",
                    "missing; set it in [prometheus], or set PROMETHEUS_URL or PROMETHEUS_URL_FILE",
                ));
            }
        },
    };
    let prometheus = prometheus_settings(ctx, &prom_raw, "prometheus", url.clone())?;
    client::check(
        ctx,
        &prom_raw,
        "prometheus",
        prom_span,
        &prometheus,
        !offline,
    )?;

    let mut instances = BTreeMap::new();
    for (name, inst) in prom_raw.instances.iter().flatten() {
        let key = format!("prometheus.instances.{}", name.get_ref());
        ctx.name(name, &key, NameKind::Service)?;
        let inst_raw = inst.get_ref();
        if let Some(nested) = &inst_raw.instances {
            let span = nested.keys().next().map_or(inst.span(), S::span);
            return Err(ctx.err(
                span,
                join_key(&key, "instances"),
                "instances cannot be nested",
            ));
        }
        let merged = inherit(inst_raw, &prom_raw);
        let inst_url = match &inst_raw.url {
            Some(u) => {
                parse_url(u.get_ref()).map_err(|m| ctx.err(u.span(), join_key(&key, "url"), m))?
            }
            None => url.clone(),
        };
        let settings = prometheus_settings(ctx, &merged, &key, inst_url)?;
        client::check(ctx, &merged, &key, inst.span(), &settings, !offline)?;
        instances.insert(name.get_ref().clone(), settings);
    }
    Ok((prometheus, instances))
}

/// A Prometheus URL. Its `Debug` and `Display` hide a password in the userinfo.
#[derive(Clone, PartialEq, Eq)]
pub struct PromUrl(url::Url);

impl PromUrl {
    /// The URL, credentials included: for the HTTP client only, never for messages.
    pub fn expose(&self) -> &url::Url {
        &self.0
    }

    /// The URL with any password replaced by `REDACTED`.
    pub fn redacted(&self) -> String {
        let mut url = self.0.clone();
        if url.password().is_some() {
            // Only fails for URLs that cannot have credentials, which a parsed http(s) URL always can.
            let _ = url.set_password(Some("REDACTED"));
        }
        url.to_string()
    }
}

impl fmt::Debug for PromUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PromUrl({:?})", self.redacted())
    }
}

impl fmt::Display for PromUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A Prometheus server's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusSettings {
    /// The base URL (http or https).
    pub url: PromUrl,
    /// The timeout of one query.
    pub timeout: Duration,
    /// How to authenticate, if at all.
    pub auth: Option<PromAuth>,
    /// Extra request headers, in name order.
    pub headers: Vec<Header>,
    /// A CA bundle to trust, in PEM.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and key for mutual TLS.
    pub client_identity: Option<ClientIdentity>,
    /// Accept any server certificate (for tests only).
    pub insecure_skip_verify: bool,
    /// What an empty result means.
    pub on_empty: OnEmpty,
    /// The largest response body accepted.
    pub max_response_bytes: u64,
    /// The overall deadline of the readiness wait at daemon start.
    pub ready_timeout: Duration,
}

impl PrometheusSettings {
    /// The server at `url` with every other key at its default.
    pub fn new(url: PromUrl) -> Self {
        PrometheusSettings {
            url,
            timeout: autoscale_prom::DEFAULT_TIMEOUT,
            auth: None,
            headers: Vec::new(),
            ca_file: None,
            client_identity: None,
            insecure_skip_verify: false,
            on_empty: OnEmpty::default(),
            max_response_bytes: autoscale_prom::DEFAULT_MAX_RESPONSE_BYTES,
            ready_timeout: autoscale_prom::DEFAULT_READY_TIMEOUT,
        }
    }
}

impl PrometheusSettings {
    /// The client's configuration. The client checks some things the file format leaves open (such as headers
    /// it sets itself), so this can fail for a file that loads.
    pub fn client_config(&self) -> std::result::Result<PrometheusConfig, autoscale_prom::Error> {
        let mut config = PrometheusConfig::new(self.url.expose().as_str())?
            .timeout(self.timeout)
            .insecure_skip_verify(self.insecure_skip_verify)
            .on_empty(self.on_empty)
            .max_response_bytes(self.max_response_bytes)
            .ready_timeout(self.ready_timeout);
        match &self.auth {
            Some(PromAuth::Bearer { token_file }) => config = config.bearer_token_file(token_file),
            Some(PromAuth::Basic {
                username,
                password_file,
            }) => config = config.basic_auth(username, password_file),
            None => {}
        }
        for header in &self.headers {
            config = config.header(&header.name, &header.value)?;
        }
        if let Some(ca) = &self.ca_file {
            config = config.ca_file(ca);
        }
        if let Some(identity) = &self.client_identity {
            config = config
                .client_cert_file(&identity.cert_file)
                .client_key_file(&identity.key_file);
        }
        Ok(config)
    }
}

/// Prometheus authentication. The secrets stay in files; only their paths are held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromAuth {
    /// `Authorization: Bearer <contents of token_file>`.
    Bearer {
        /// The file holding the token.
        token_file: PathBuf,
    },
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The file holding the password.
        password_file: PathBuf,
    },
}

/// A client certificate and its key, in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate.
    pub cert_file: PathBuf,
    /// The private key.
    pub key_file: PathBuf,
}

/// An extra request header. `Debug` hides the value when the name looks like a credential
/// ([`is_sensitive_name`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// The header name.
    pub name: String,
    /// The value.
    pub value: String,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if is_sensitive_name(&self.name) {
            "REDACTED"
        } else {
            &self.value
        };
        f.debug_struct("Header")
            .field("name", &self.name)
            .field("value", &value)
            .finish()
    }
}

pub(crate) fn parse_url(s: &str) -> std::result::Result<PromUrl, String> {
    // The message never repeats the value: it may hold a password.
    let url = url::Url::parse(s.trim()).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "unsupported URL scheme {:?}; expected \"http\" or \"https\", as in http://HOST:PORT",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(
            "the URL has a query or fragment; expected the base URL of Prometheus, such as \
             http://HOST:9090 or https://HOST/prometheus"
                .to_owned(),
        );
    }
    Ok(PromUrl(url))
}

/// An instance's keys over `[prometheus]`'s. Credentials and the client identity are inherited as a unit, so an
/// instance that sets its own bearer token does not also inherit a basic-auth password.
fn inherit(inst: &RawPrometheus, base: &RawPrometheus) -> RawPrometheus {
    let own_auth = inst.bearer_token_file.is_some() || inst.basic_auth.is_some();
    let own_identity = inst.client_cert_file.is_some() || inst.client_key_file.is_some();
    let pick = |own: bool, i: &Option<S<String>>, b: &Option<S<String>>| {
        if own { i.clone() } else { b.clone() }
    };
    RawPrometheus {
        url: inst.url.clone(),
        timeout: inst.timeout.clone().or_else(|| base.timeout.clone()),
        bearer_token_file: pick(own_auth, &inst.bearer_token_file, &base.bearer_token_file),
        basic_auth: if own_auth {
            inst.basic_auth.clone()
        } else {
            base.basic_auth.clone()
        },
        headers: inst.headers.clone().or_else(|| base.headers.clone()),
        ca_file: inst.ca_file.clone().or_else(|| base.ca_file.clone()),
        client_cert_file: pick(own_identity, &inst.client_cert_file, &base.client_cert_file),
        client_key_file: pick(own_identity, &inst.client_key_file, &base.client_key_file),
        insecure_skip_verify: inst.insecure_skip_verify.or(base.insecure_skip_verify),
        on_empty: inst.on_empty.clone().or_else(|| base.on_empty.clone()),
        max_response_bytes: inst
            .max_response_bytes
            .clone()
            .or_else(|| base.max_response_bytes.clone()),
        ready_timeout: inst
            .ready_timeout
            .clone()
            .or_else(|| base.ready_timeout.clone()),
        instances: None,
    }
}

fn prometheus_settings(
    ctx: &Ctx<'_>,
    raw: &RawPrometheus,
    key: &str,
    url: PromUrl,
) -> Result<PrometheusSettings> {
    let k = |name: &str| join_key(key, name);
    ctx.at_most_one(
        key,
        (&raw.bearer_token_file, "bearer_token_file"),
        (&raw.basic_auth, "basic_auth"),
    )?;
    let auth = match (&raw.bearer_token_file, &raw.basic_auth) {
        (Some(t), _) => Some(PromAuth::Bearer {
            token_file: ctx.path(t, &k("bearer_token_file"))?,
        }),
        (None, Some(b)) => {
            let RawBasicAuth {
                username,
                password_file,
            } = b.get_ref();
            if username.get_ref().is_empty() || username.get_ref().contains(':') {
                return Err(ctx.err(
                    username.span(),
                    k("basic_auth.username"),
                    "must be non-empty and must not contain ':'",
                ));
            }
            Some(PromAuth::Basic {
                username: username.get_ref().clone(),
                password_file: ctx.path(password_file, &k("basic_auth.password_file"))?,
            })
        }
        (None, None) => None,
    };
    let mut headers = Vec::new();
    for (name, value) in raw.headers.iter().flatten() {
        let hk = header_key(key, name.get_ref());
        let valid_name = !name.get_ref().is_empty()
            && name
                .get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(ctx.err(
                name.span(),
                hk,
                "invalid header name: expected letters, digits and '-'",
            ));
        }
        let lower = name.get_ref().to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "content-length" | "content-type" | "transfer-encoding" | "connection"
        ) {
            return Err(ctx.err(
                name.span(),
                hk,
                "this header is set by the client and cannot be configured",
            ));
        }
        if value
            .get_ref()
            .bytes()
            .any(|b| b.is_ascii_control() && b != b'\t')
        {
            // Never repeat the value: it may be a credential.
            return Err(ctx.err(
                value.span(),
                hk,
                "the value must not contain control characters",
            ));
        }
        headers.push(Header {
            name: name.get_ref().clone(),
            value: value.get_ref().clone(),
        });
    }
    let client_identity = match (&raw.client_cert_file, &raw.client_key_file) {
        (Some(c), Some(kf)) => Some(ClientIdentity {
            cert_file: ctx.path(c, &k("client_cert_file"))?,
            key_file: ctx.path(kf, &k("client_key_file"))?,
        }),
        (Some(c), None) => {
            return Err(ctx.err(c.span(), k("client_cert_file"), "needs client_key_file too"));
        }
        (None, Some(kf)) => {
            return Err(ctx.err(
                kf.span(),
                k("client_key_file"),
                "needs client_cert_file too",
            ));
        }
        (None, None) => None,
    };
    let max_response_bytes = match &raw.max_response_bytes {
        Some(v) if *v.get_ref() == 0 => {
            return Err(ctx.err(v.span(), k("max_response_bytes"), "must be above 0"));
        }
        Some(v) => *v.get_ref(),
        None => autoscale_prom::DEFAULT_MAX_RESPONSE_BYTES,
    };
    Ok(PrometheusSettings {
        url,
        timeout: ctx.opt_duration(&raw.timeout, &k("timeout"), autoscale_prom::DEFAULT_TIMEOUT)?,
        auth,
        headers,
        ca_file: ctx.opt_path(&raw.ca_file, &k("ca_file"))?,
        client_identity,
        insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
        on_empty: ctx.opt_keyword(&raw.on_empty, &k("on_empty"), OnEmpty::default())?,
        max_response_bytes,
        ready_timeout: ctx.opt_duration(
            &raw.ready_timeout,
            &k("ready_timeout"),
            autoscale_prom::DEFAULT_READY_TIMEOUT,
        )?,
    })
}
