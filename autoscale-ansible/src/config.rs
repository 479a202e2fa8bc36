//! The scaler's settings: a builder that validates, and the pure step from settings to an argument vector and
//! an extra-vars document.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autoscale_core::{Replicas, Scaler};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::runner::RunSpec;
use crate::settings::AnsibleSettings;

/// The default `timeout`: a playbook over ssh with fact gathering takes tens of seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The name of the bundled stdout callback, as selected through `ANSIBLE_STDOUT_CALLBACK`.
pub(crate) const CALLBACK_NAME: &str = "autoscale_json";

/// The extra vars the scaler sets itself; `extra_vars` may not set them.
pub const RESERVED_VARS: [&str; 3] = ["service", "replicas", "previous_replicas"];

/// Environment variables the scaler sets itself for every run, so that it can read the outcome. `env` may
/// not set them (except `ANSIBLE_CALLBACK_PLUGINS`, which is extended, not replaced).
const RESERVED_ENV: [&str; 5] = [
    "ANSIBLE_STDOUT_CALLBACK",
    "ANSIBLE_LOAD_CALLBACK_PLUGINS",
    "ANSIBLE_NOCOLOR",
    "ANSIBLE_FORCE_COLOR",
    "ANSIBLE_RETRY_FILES_ENABLED",
];

/// Where the scaler reads the service's current replica count from. Ansible has no status call.
#[derive(Debug, Clone)]
pub enum StatusSource {
    /// Another scaler's status read, such as a Docker Compose or Swarm scaler for the same service.
    Scaler(Arc<dyn Scaler>),
    /// A playbook that reports the count (see [`StatusPlaybook`]).
    Playbook(StatusPlaybook),
}

/// A playbook that reports the replica count of the service, through `set_stats` or a debug variable named
/// [`autoscale_replicas`](crate::REPLICAS_VAR) (and optionally [`autoscale_ready`](crate::READY_VAR)).
///
/// It runs with the scaler's `ansible-playbook`, environment, limit, vault password file and extra vars
/// (`service` included; `replicas` and `previous_replicas` are not passed), never in check mode and without
/// the scaler's tags.
///
/// It serializes with the keys of the configuration's `status` table of kind `playbook`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatusPlaybook {
    /// The status playbook.
    pub playbook: PathBuf,
    /// Its inventory (the scaler's inventory if `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<PathBuf>,
}

impl StatusPlaybook {
    /// A status playbook that uses the scaler's inventory.
    pub fn new(playbook: impl Into<PathBuf>) -> Self {
        StatusPlaybook {
            playbook: playbook.into(),
            inventory: None,
        }
    }

    /// Use this inventory instead of the scaler's.
    pub fn inventory(mut self, inventory: impl Into<PathBuf>) -> Self {
        self.inventory = Some(inventory.into());
        self
    }
}

/// The `ansible-playbook` of a scaler that names none, looked up in `PATH`.
pub const DEFAULT_PROGRAM: &str = "ansible-playbook";

/// Which `ansible-playbook` to run (`ansible_playbook` or `virtualenv`, the keys it serializes under).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Program {
    /// A path, or a bare name looked up in `PATH`.
    #[serde(rename = "ansible_playbook")]
    Path(PathBuf),
    /// `VIRTUALENV/bin/ansible-playbook`.
    #[serde(rename = "virtualenv")]
    Virtualenv(PathBuf),
}

impl Default for Program {
    fn default() -> Self {
        Program::Path(DEFAULT_PROGRAM.into())
    }
}

/// What a run is for: it decides the vars and options passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunKind {
    Scale {
        replicas: Replicas,
        previous: Replicas,
    },
    Status,
}

/// What a scaler runs: its service, its settings and where its count comes from. The builder holds one, and
/// the scaler keeps it once validated. `settings.status` is what the configuration said; the count comes from
/// `status`, which the embedder built from it.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) service: String,
    pub(crate) settings: AnsibleSettings,
    pub(crate) status: StatusSource,
}

impl Plan {
    /// The `ansible-playbook` program.
    pub(crate) fn program(&self) -> PathBuf {
        match &self.settings.program {
            Program::Path(path) => path.clone(),
            Program::Virtualenv(venv) => venv.join("bin").join("ansible-playbook"),
        }
    }

    /// The extra vars of a run: the user's, then the scaler's own (which cannot be overridden).
    pub(crate) fn extra_vars(&self, kind: RunKind) -> Value {
        let mut vars = self.settings.extra_vars.clone();
        vars.insert("service".into(), Value::from(self.service.clone()));
        if let RunKind::Scale { replicas, previous } = kind {
            vars.insert("replicas".into(), Value::from(replicas));
            vars.insert("previous_replicas".into(), Value::from(previous));
        }
        Value::Object(vars)
    }

    /// The playbook and inventory of a run.
    pub(crate) fn target(&self, kind: RunKind) -> (&Path, Option<&Path>) {
        match (kind, &self.status) {
            (RunKind::Status, StatusSource::Playbook(status)) => (
                &status.playbook,
                status
                    .inventory
                    .as_deref()
                    .or(self.settings.inventory.as_deref()),
            ),
            _ => (&self.settings.playbook, self.settings.inventory.as_deref()),
        }
    }

    /// The argument vector and environment of a run.
    ///
    /// `vars_file` holds [`extra_vars`](Self::extra_vars); `plugin_dir` holds the bundled callback;
    /// `inherited_plugins` is the `ANSIBLE_CALLBACK_PLUGINS` of the daemon's environment, kept after the
    /// bundled directory. Every option takes its value in the same argument (`--limit=VALUE`) and `--` ends
    /// the options, so no value can be read as an option.
    pub(crate) fn run_spec(
        &self,
        kind: RunKind,
        vars_file: &Path,
        plugin_dir: &Path,
        inherited_plugins: Option<OsString>,
    ) -> RunSpec {
        let (playbook, inventory) = self.target(kind);
        let mut args: Vec<OsString> = Vec::new();
        let mut opt = |name: &str, value: &std::ffi::OsStr| {
            let mut arg = OsString::from(format!("--{name}="));
            arg.push(value);
            args.push(arg);
        };
        if let Some(inventory) = inventory {
            opt("inventory", inventory.as_os_str());
        }
        if let Some(limit) = &self.settings.limit {
            opt("limit", limit.as_ref());
        }
        if let Some(file) = &self.settings.vault_password_file {
            opt("vault-password-file", file.as_os_str());
        }
        let mut vars_arg = OsString::from("@");
        vars_arg.push(vars_file);
        opt("extra-vars", &vars_arg);
        if matches!(kind, RunKind::Scale { .. }) {
            if !self.settings.tags.is_empty() {
                opt("tags", self.settings.tags.join(",").as_ref());
            }
            if self.settings.check_mode {
                args.push("--check".into());
            }
        }
        args.push("--".into());
        args.push(playbook.into());

        let user_plugins = self
            .settings
            .env
            .get("ANSIBLE_CALLBACK_PLUGINS")
            .map(OsString::from)
            .or(inherited_plugins)
            .filter(|v| !v.is_empty());
        let mut plugins = plugin_dir.as_os_str().to_owned();
        if let Some(more) = user_plugins {
            plugins.push(":");
            plugins.push(more);
        }
        let mut env: Vec<(OsString, OsString)> = self
            .settings
            .env
            .iter()
            .filter(|(k, _)| *k != "ANSIBLE_CALLBACK_PLUGINS")
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        env.extend(
            [
                ("ANSIBLE_CALLBACK_PLUGINS", plugins),
                ("ANSIBLE_STDOUT_CALLBACK", CALLBACK_NAME.into()),
                // Only ad-hoc `ansible` needs this to load a stdout callback; set for wrappers that use it.
                ("ANSIBLE_LOAD_CALLBACK_PLUGINS", "1".into()),
                ("ANSIBLE_NOCOLOR", "1".into()),
                ("ANSIBLE_FORCE_COLOR", "0".into()),
                // A failed run must not drop a .retry file next to the playbook.
                ("ANSIBLE_RETRY_FILES_ENABLED", "0".into()),
            ]
            .map(|(k, v)| (OsString::from(k), v)),
        );

        RunSpec {
            program: self.program().into(),
            args,
            env,
            timeout: self.settings.timeout,
        }
    }
}

/// Builds an [`AnsibleScaler`](crate::AnsibleScaler). Start with
/// [`AnsibleScaler::builder`](crate::AnsibleScaler::builder) or [`AnsibleSettings::builder`].
///
/// Each method is named after its key in the `[service.scaler]` table of the configuration file, and sets that
/// field of the [`AnsibleSettings`] the builder holds.
#[derive(Debug, Clone)]
#[must_use]
pub struct AnsibleScalerBuilder {
    plan: Plan,
    /// Whether a method chose the program: `build` refuses a builder given both kinds.
    program_chosen: bool,
    both_programs: bool,
}

impl AnsibleScalerBuilder {
    /// A builder of the scaler of `service` with `settings`; `program_chosen` when the settings' program counts
    /// as set by a method.
    pub(crate) fn from_settings(
        service: impl Into<String>,
        settings: AnsibleSettings,
        status: StatusSource,
        program_chosen: bool,
    ) -> Self {
        AnsibleScalerBuilder {
            plan: Plan {
                service: service.into(),
                settings,
                status,
            },
            program_chosen,
            both_programs: false,
        }
    }

    /// The inventory: a path, or a comma-separated host list such as `"web1,web2,"` (`--inventory`).
    pub fn inventory(mut self, inventory: impl Into<PathBuf>) -> Self {
        self.plan.settings.inventory = Some(inventory.into());
        self
    }

    /// Run on the hosts that match this pattern only (`--limit`).
    pub fn limit(mut self, pattern: impl Into<String>) -> Self {
        self.plan.settings.limit = Some(pattern.into());
        self
    }

    /// Run only the tasks with these tags (`--tags`). The status playbook runs all its tasks.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.plan.settings.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Run the scale playbook in check mode (`--check`): Ansible reports what it would change and changes
    /// nothing. For dry runs.
    pub fn check_mode(mut self, check: bool) -> Self {
        self.plan.settings.check_mode = check;
        self
    }

    /// The file holding the vault password (`--vault-password-file`).
    pub fn vault_password_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.plan.settings.vault_password_file = Some(path.into());
        self
    }

    /// Set an environment variable for `ansible-playbook`, on top of the daemon's environment; setting a
    /// variable again replaces its value. Its value is never logged.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.plan.settings.env.insert(key.into(), value.into());
        self
    }

    /// The `ansible-playbook` program: a path, or a name looked up in `PATH` (the default,
    /// `ansible-playbook`).
    pub fn ansible_playbook(self, program: impl Into<PathBuf>) -> Self {
        self.program(Program::Path(program.into()))
    }

    /// Run `VIRTUALENV/bin/ansible-playbook`.
    pub fn virtualenv(self, dir: impl Into<PathBuf>) -> Self {
        self.program(Program::Virtualenv(dir.into()))
    }

    /// Run this program: [`ansible_playbook`](Self::ansible_playbook) or [`virtualenv`](Self::virtualenv).
    /// Choosing the other kind than one chosen before makes `build` fail.
    pub fn program(mut self, program: Program) -> Self {
        let settings = &mut self.plan.settings;
        if self.program_chosen
            && std::mem::discriminant(&program) != std::mem::discriminant(&settings.program)
        {
            self.both_programs = true;
        }
        self.program_chosen = true;
        settings.program = program;
        self
    }

    /// Pass this variable to every playbook run. `service`, `replicas` and `previous_replicas` are the
    /// scaler's own. Values are never logged.
    pub fn extra_var(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.plan
            .settings
            .extra_vars
            .insert(name.into(), value.into());
        self
    }

    /// Pass all these variables to every playbook run (added to those set before).
    pub fn extra_vars(mut self, vars: Map<String, Value>) -> Self {
        self.plan.settings.extra_vars.extend(vars);
        self
    }

    /// How long one playbook run may take before its whole process group is killed (default
    /// [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.plan.settings.timeout = timeout;
        self
    }

    /// Validate the settings and build the scaler.
    pub fn build(self) -> Result<crate::AnsibleScaler, Error> {
        if self.both_programs {
            return Err(invalid(
                "set ansible_playbook or virtualenv, not both".into(),
            ));
        }
        validate(&self.plan)?;
        Ok(crate::AnsibleScaler::from_plan(self.plan))
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidConfig(message)
}

/// A compose-style service name: the name ends up in commands that playbooks run, so keep it plain. The same
/// rule as autoscale's own service names (1 to 63 characters), which are what the daemon passes.
pub(crate) fn valid_service_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// An Ansible variable name: a letter or underscore, then letters, digits and underscores.
fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn plain_text(what: &str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!("{what} {value:?} has a control character")));
    }
    Ok(())
}

fn plain_path(what: &str, path: &Path) -> Result<(), Error> {
    match path.to_str() {
        Some(s) => plain_text(what, s),
        None => Err(invalid(format!("{what} {path:?} is not UTF-8"))),
    }
}

fn validate(plan: &Plan) -> Result<(), Error> {
    let s = &plan.settings;
    if !valid_service_name(&plan.service) {
        return Err(invalid(format!(
            "service {:?} is not a valid name (letters, digits, '_', '.', '-'; starting with a letter or digit)",
            plan.service
        )));
    }
    plain_path("playbook", &s.playbook)?;
    if let Some(inventory) = &s.inventory {
        plain_path("inventory", inventory)?;
    }
    if let Some(limit) = &s.limit {
        plain_text("limit", limit)?;
    }
    for tag in &s.tags {
        plain_text("tag", tag)?;
        if tag.contains(',') {
            return Err(invalid(format!(
                "tag {tag:?} has a comma; give each tag apart"
            )));
        }
    }
    if let Some(file) = &s.vault_password_file {
        plain_path("vault_password_file", file)?;
    }
    match &s.program {
        Program::Path(p) => plain_path("ansible_playbook", p)?,
        Program::Virtualenv(p) => plain_path("virtualenv", p)?,
    }
    for (key, value) in &s.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(invalid(format!(
                "env key {key:?} is not a valid variable name"
            )));
        }
        if RESERVED_ENV.contains(&key.as_str()) {
            return Err(invalid(format!(
                "env {key} is set by the scaler to read the playbook's outcome"
            )));
        }
        if value.contains('\0') {
            // The value is not shown: it may be a secret.
            return Err(invalid(format!("env {key} has a NUL character")));
        }
    }
    for name in s.extra_vars.keys() {
        if RESERVED_VARS.contains(&name.as_str()) {
            return Err(invalid(format!(
                "extra var {name:?} is set by the scaler on every run"
            )));
        }
        if !valid_var_name(name) {
            return Err(invalid(format!(
                "extra var {name:?} is not a valid Ansible variable name"
            )));
        }
    }
    if s.timeout.is_zero() {
        return Err(invalid("timeout must be more than zero".into()));
    }
    if let StatusSource::Playbook(status) = &plan.status {
        plain_path("status playbook", &status.playbook)?;
        if let Some(inventory) = &status.inventory {
            plain_path("status inventory", inventory)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AnsibleScaler;

    fn status() -> StatusSource {
        StatusSource::Playbook(StatusPlaybook::new("ansible/status.yml"))
    }

    fn full() -> AnsibleScalerBuilder {
        AnsibleScaler::builder("webapp", "ansible/scale.yml", status())
            .inventory("ansible/inventory.ini")
            .limit("web1:&prod")
            .tags(["scale", "compose"])
            .vault_password_file("/run/secrets/vault")
            .env("DOCKER_HOST", "unix:///run/docker.sock")
            .env("ANSIBLE_CALLBACK_PLUGINS", "/opt/callbacks")
            .virtualenv("/opt/ansible")
            .extra_var("compose_project", "prometheus-autoscale-sim")
            .extra_var("compose_file", "/srv/docker-compose.yml")
            .extra_var("db_password", "hunter2")
            .timeout(Duration::from_secs(90))
    }

    fn spec(builder: AnsibleScalerBuilder, kind: RunKind) -> RunSpec {
        builder.build().unwrap().plan().run_spec(
            kind,
            Path::new("/tmp/autoscale-ansible-X/extra-vars.json"),
            Path::new("/tmp/autoscale-ansible-X"),
            Some("/usr/share/callbacks".into()),
        )
    }

    const SCALE: RunKind = RunKind::Scale {
        replicas: 3,
        previous: 1,
    };

    #[test]
    fn the_scale_command_with_every_option() {
        insta::assert_debug_snapshot!(spec(full(), SCALE));
    }

    #[test]
    fn the_scale_command_in_check_mode() {
        insta::assert_debug_snapshot!(spec(full().check_mode(true), SCALE).args);
    }

    #[test]
    fn the_smallest_scale_command() {
        let builder = AnsibleScaler::builder("webapp", "scale.yml", status());
        insta::assert_debug_snapshot!(spec(builder, SCALE));
    }

    #[test]
    fn the_status_command_has_no_tags_and_no_check_mode() {
        let builder = full().check_mode(true);
        insta::assert_debug_snapshot!(spec(builder, RunKind::Status).args);
    }

    #[test]
    fn the_status_playbook_can_have_its_own_inventory() {
        let builder = AnsibleScaler::builder(
            "webapp",
            "scale.yml",
            StatusSource::Playbook(StatusPlaybook::new("status.yml").inventory("status.ini")),
        )
        .inventory("scale.ini");
        insta::assert_debug_snapshot!(spec(builder, RunKind::Status).args);
    }

    #[test]
    fn an_option_like_playbook_stays_a_playbook() {
        let builder = AnsibleScaler::builder("webapp", "--version", status()).limit("-x");
        insta::assert_debug_snapshot!(spec(builder, SCALE).args);
    }

    #[test]
    fn the_extra_vars_of_a_scale_run() {
        let scaler = full().build().unwrap();
        insta::assert_json_snapshot!(scaler.plan().extra_vars(SCALE));
    }

    #[test]
    fn the_extra_vars_of_a_status_run() {
        let scaler = full().build().unwrap();
        insta::assert_json_snapshot!(scaler.plan().extra_vars(RunKind::Status));
    }

    #[test]
    fn debug_output_shows_no_values_of_env_or_extra_vars() {
        let scaler = full().build().unwrap();
        let debug = format!("{scaler:?}");
        assert!(debug.contains("db_password") && debug.contains("DOCKER_HOST"));
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("docker.sock"), "{debug}");
    }

    #[test]
    fn invalid_settings_are_refused_with_their_reason() {
        let cases: Vec<(AnsibleScalerBuilder, &str)> = vec![
            (
                AnsibleScaler::builder("web app", "s.yml", status()),
                "service \"web app\" is not a valid name",
            ),
            (
                AnsibleScaler::builder("-web", "s.yml", status()),
                "is not a valid name",
            ),
            (
                AnsibleScaler::builder("web", "", status()),
                "playbook is empty",
            ),
            (
                full().limit("a\nb"),
                "limit \"a\\nb\" has a control character",
            ),
            (full().tags(["a,b"]), "tag \"a,b\" has a comma"),
            (
                full().extra_var("replicas", 3),
                "extra var \"replicas\" is set by the scaler",
            ),
            (
                full().extra_var("bad-name", 1),
                "not a valid Ansible variable name",
            ),
            (
                full().env("ANSIBLE_STDOUT_CALLBACK", "yaml"),
                "set by the scaler",
            ),
            (full().env("A=B", "x"), "env key \"A=B\""),
            (
                full().ansible_playbook("/usr/bin/ansible-playbook"),
                "not both",
            ),
            (
                full().timeout(Duration::ZERO),
                "timeout must be more than zero",
            ),
        ];
        for (builder, expected) in cases {
            let message = builder.build().unwrap_err().to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn a_builder_from_settings_keeps_them_and_its_program_counts_as_chosen() {
        let mut settings = AnsibleSettings::new("scale.yml");
        settings.inventory = Some("web1,web2,".into());
        let scaler = settings.builder("webapp", status()).build().unwrap();
        assert_eq!(scaler.settings(), &settings);
        let message = settings
            .builder("webapp", status())
            .virtualenv("/opt/ansible")
            .build()
            .unwrap_err()
            .to_string();
        assert!(message.contains("not both"), "{message}");
    }

    #[test]
    fn a_secret_env_value_is_not_in_the_error() {
        let message = full()
            .env("TOKEN", "s3cret\0")
            .build()
            .unwrap_err()
            .to_string();
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn service_names() {
        for good in ["web", "webapp_1", "a.b-c", "W2", &"a".repeat(63)] {
            assert!(valid_service_name(good), "{good}");
        }
        for bad in ["", "-a", "_a", "a b", "a/b", "a;b", "é", &"a".repeat(64)] {
            assert!(!valid_service_name(bad), "{bad}");
        }
    }
}
