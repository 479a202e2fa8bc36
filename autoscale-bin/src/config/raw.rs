//! The configuration file exactly as written: serde structs that reject unknown keys and remember where each
//! value stands, so that validation can point at the line and column of a bad value.
//!
//! Nothing here is checked beyond TOML types; the section modules ([`super::load`] runs them) turn these into
//! settings that cannot be invalid. These types have no `Debug`: they may hold header values and URLs with
//! credentials.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A value with the byte range it came from.
pub(crate) type S<T> = Spanned<T>;

/// A duration as written, such as `"30s"` or `"5m"`, parsed by validation.
pub(crate) type RawDuration = S<String>;

/// A file or directory path as written, resolved by validation.
pub(crate) type RawPath = S<String>;

/// A table whose `kind` decides which of its other keys it takes: the struct, and the list of the keys it sets
/// (for "not allowed with kind = ..."), from one list of fields.
macro_rules! kinded_table {
    ($(#[$meta:meta])* struct $name:ident { $($field:ident: $ty:ty,)+ }) => {
        $(#[$meta])*
        #[derive(Deserialize, Serialize, Clone)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $name {
            pub kind: S<String>,
            $(#[serde(skip_serializing_if = "Option::is_none")]
            pub $field: Option<S<$ty>>,)+
        }

        impl $name {
            /// The keys besides `kind` that the table sets, in declaration order, with where each stands.
            pub(crate) fn present(&self) -> Vec<(&'static str, Range<usize>)> {
                let mut keys = Vec::new();
                $(if let Some(v) = &self.$field {
                    keys.push((stringify!($field), v.span()));
                })+
                keys
            }
        }
    };
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub prometheus: Option<S<RawPrometheus>>,
    pub daemon: Option<RawDaemon>,
    #[serde(default)]
    pub service: Vec<S<RawService>>,
    #[serde(default)]
    pub discover: Vec<S<RawDiscover>>,
}

/// `[[discover]]`: an endpoint whose labelled services are added, and the defaults of what it finds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDiscover {
    pub kind: S<String>,
    pub selector: Option<S<String>>,
    pub interval: Option<RawDuration>,
    pub resync: Option<RawDuration>,
    pub timeout: Option<RawDuration>,
    pub command: Option<S<Vec<String>>>,
    pub docker_host: Option<S<String>>,
    pub docker_context: Option<S<String>>,
    pub docker_tls_verify: Option<S<bool>>,
    pub docker_cert_path: Option<S<String>>,
    pub min_replicas: Option<S<u32>>,
    pub max_replicas: Option<S<u32>>,
    pub cooldown_up: Option<RawDuration>,
    pub cooldown_down: Option<RawDuration>,
    pub dry_run: Option<bool>,
    pub on_zero_outside: Option<S<String>>,
    pub check: Option<S<RawDiscoverCheck>>,
    pub behavior: Option<RawBehavior>,
}

/// `[discover.check]`: the check of every service a discovery finds; a label may set its query and policy.
#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDiscoverCheck {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<S<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<S<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<S<RawPolicy>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation: Option<S<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<S<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reduce: Option<S<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_empty: Option<S<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_finite: Option<S<String>>,
}

/// `[prometheus]` and `[prometheus.instances.NAME]`: the same keys; `instances` only at the top.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrometheus {
    pub url: Option<S<String>>,
    pub timeout: Option<RawDuration>,
    pub bearer_token_file: Option<RawPath>,
    pub basic_auth: Option<S<RawBasicAuth>>,
    pub headers: Option<BTreeMap<S<String>, S<String>>>,
    pub ca_file: Option<RawPath>,
    pub client_cert_file: Option<RawPath>,
    pub client_key_file: Option<RawPath>,
    pub insecure_skip_verify: Option<bool>,
    pub on_empty: Option<S<String>>,
    pub max_response_bytes: Option<S<u64>>,
    pub ready_timeout: Option<RawDuration>,
    pub instances: Option<BTreeMap<S<String>, S<RawPrometheus>>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBasicAuth {
    pub username: S<String>,
    pub password_file: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    pub listen: Option<S<String>>,
    pub state_dir: Option<RawPath>,
    pub log_format: Option<S<String>>,
    pub dry_run: Option<bool>,
    pub history_max_bytes: Option<S<u64>>,
    pub concurrency: Option<S<u64>>,
    pub shutdown_timeout: Option<RawDuration>,
    pub admin_token_file: Option<RawPath>,
    pub ha: Option<S<super::ha::RawHa>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub name: S<String>,
    pub min_replicas: Option<S<u32>>,
    pub max_replicas: Option<S<u32>>,
    pub interval: Option<RawDuration>,
    pub dry_run: Option<bool>,
    pub cooldown_up: Option<RawDuration>,
    pub cooldown_down: Option<RawDuration>,
    pub fallback: Option<S<RawFallback>>,
    pub idle_after: Option<RawDuration>,
    pub paused: Option<S<String>>,
    pub on_zero_outside: Option<S<String>>,
    pub scaler: S<RawScaler>,
    #[serde(default)]
    pub check: Vec<S<RawCheck>>,
    pub behavior: Option<RawBehavior>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFallback {
    pub after: S<u32>,
    pub replicas: S<u32>,
    pub mode: Option<S<String>>,
}

kinded_table! {
    /// Every scaler kind's keys in one table: which of them the kind allows is checked in validation, so the
    /// error can say "not allowed with kind = ..." instead of a generic unknown-key message.
    struct RawScaler {
        // compose
        project: String,
        file: String,
        service: String,
        command: Vec<String>,
        env_file: String,
        profiles: Vec<String>,
        timeout: String,
        docker_host: String,
        docker_context: String,
        docker_tls_verify: bool,
        docker_cert_path: String,
        // ansible
        playbook: String,
        inventory: String,
        extra_vars: toml::Table,
        status: RawStatus,
        limit: String,
        tags: Vec<String>,
        check_mode: bool,
        vault_password_file: String,
        env: BTreeMap<String, String>,
        ansible_playbook: String,
        virtualenv: String,
    }
}

kinded_table! {
    /// The ansible scaler's `status`: how the current count is read.
    struct RawStatus {
        project: String,
        file: String,
        service: String,
        playbook: String,
        inventory: String,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub name: S<String>,
    pub query: S<String>,
    pub policy: S<RawPolicy>,
    pub activation: Option<S<f64>>,
    pub prometheus: Option<S<String>>,
    pub range: Option<S<String>>,
    pub step: Option<S<String>>,
    pub range_reduce: Option<S<String>>,
    pub reduce: Option<S<String>>,
    pub on_empty: Option<S<String>>,
    pub non_finite: Option<S<String>>,
}

kinded_table! {
    /// Every policy kind's keys; validation checks which the kind allows.
    struct RawPolicy {
        target: f64,
        per: String,
        tolerance: f64,
        scale_up_above: f64,
        scale_down_below: f64,
        step: u32,
        step_percent: f64,
        window: String,
        z: f64,
        season: String,
        lead: String,
        demand_query: String,
    }
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBehavior {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<S<RawDirection>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<S<RawDirection>>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDirection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stabilization_window: Option<S<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub select: Option<S<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<S<Vec<S<RawRule>>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadband: Option<S<RawDeadband>>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDeadband {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_drop: Option<S<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<S<String>>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<S<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<S<u32>>,
    pub period: S<String>,
}
