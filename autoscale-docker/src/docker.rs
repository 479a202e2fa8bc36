//! How to run the docker CLI: which binary, which daemon, and how long a call may take.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::names::{self, Rule};
use crate::settings::DEFAULT_DOCKER_COMMAND;
use autoscale_exec::{Invocation, Output};

/// The timeout of every docker call unless [`DockerCli::timeout`] sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Which Docker daemon to talk to: the standard `DOCKER_*` variables.
///
/// A value set here overrides the process environment and is passed to the child explicitly; a value left
/// unset is inherited from the process environment, as the docker CLI itself would see it. The fields are the
/// settings as configured (serialized under their configuration keys); the methods of the same names set
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DockerEnv {
    /// `DOCKER_HOST` (`docker_host`).
    #[serde(rename = "docker_host", skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `DOCKER_CONTEXT` (`docker_context`).
    #[serde(rename = "docker_context", skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// `DOCKER_TLS_VERIFY` (`docker_tls_verify`).
    #[serde(rename = "docker_tls_verify", skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    /// `DOCKER_CERT_PATH` (`docker_cert_path`).
    #[serde(rename = "docker_cert_path", skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<PathBuf>,
}

impl DockerEnv {
    /// Inherit everything from the process environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// `DOCKER_HOST`, such as `unix:///run/docker.sock` or `tcp://10.0.0.5:2376`.
    ///
    /// Setting it also removes an inherited `DOCKER_CONTEXT`, so the host configured here is the one used.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// `DOCKER_CONTEXT`, the name of a docker context.
    ///
    /// Setting it also removes an inherited `DOCKER_HOST`, which would otherwise win over the context.
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// `DOCKER_TLS_VERIFY`. `false` removes the variable: the docker CLI treats any non-empty value, even
    /// `0`, as "verify".
    pub fn tls_verify(mut self, verify: bool) -> Self {
        self.tls_verify = Some(verify);
        self
    }

    /// `DOCKER_CERT_PATH`, the directory holding `ca.pem`, `cert.pem` and `key.pem`.
    pub fn cert_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.cert_path = Some(path.into());
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if self.host.is_some() && self.context.is_some() {
            return Err(Error::InvalidConfig {
                reason: "docker_host and docker_context are mutually exclusive: set one".to_owned(),
            });
        }
        if let Some(host) = &self.host
            && (host.is_empty() || host.chars().any(char::is_control) || host.contains(' '))
        {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "docker_host {host:?} is not a daemon address such as unix:///run/docker.sock"
                ),
            });
        }
        if let Some(context) = &self.context {
            names::check(Rule::DockerContext, context)?;
        }
        if let Some(path) = &self.cert_path
            && path.as_os_str().is_empty()
        {
            return Err(Error::InvalidConfig {
                reason: "docker_cert_path is empty".to_owned(),
            });
        }
        Ok(())
    }

    /// Apply the configured values to `inv`.
    fn apply(&self, mut inv: Invocation) -> Invocation {
        if let Some(host) = &self.host {
            inv = inv.env("DOCKER_HOST", host).env_remove("DOCKER_CONTEXT");
        }
        if let Some(context) = &self.context {
            inv = inv.env("DOCKER_CONTEXT", context).env_remove("DOCKER_HOST");
        }
        match self.tls_verify {
            Some(true) => inv = inv.env("DOCKER_TLS_VERIFY", "1"),
            Some(false) => inv = inv.env_remove("DOCKER_TLS_VERIFY"),
            None => {}
        }
        if let Some(path) = &self.cert_path {
            inv = inv.env("DOCKER_CERT_PATH", path);
        }
        inv
    }
}

/// How to run the docker CLI: the command (by default `docker` from `PATH`), the daemon's environment, and the
/// timeout of each call. Shared by the Compose scaler and the Swarm scaler.
///
/// ```
/// use std::time::Duration;
/// use autoscale_docker::{DockerCli, DockerEnv};
///
/// let docker = DockerCli::new()
///     .command(["/usr/local/bin/docker"])
///     .env(DockerEnv::new().host("unix:///run/docker.sock"))
///     .timeout(Duration::from_secs(30));
/// # let _ = docker;
/// ```
#[derive(Debug, Clone)]
pub struct DockerCli {
    pub(crate) command: Option<Vec<OsString>>,
    pub(crate) env: DockerEnv,
    pub(crate) timeout: Duration,
}

impl Default for DockerCli {
    fn default() -> Self {
        DockerCli {
            command: None,
            env: DockerEnv::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl DockerCli {
    /// `docker` from `PATH`, the inherited environment, a 60 s timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// The argument vector that runs the docker CLI: usually one path, such as `["/usr/bin/docker"]`; a
    /// longer prefix (`["sudo", "-n", "docker"]`) works too.
    pub fn command<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.command = Some(argv.into_iter().map(Into::into).collect());
        self
    }

    /// Which daemon to talk to.
    pub fn env(mut self, env: DockerEnv) -> Self {
        self.env = env;
        self
    }

    /// The timeout of every call (each call, not a whole status read or scale action).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The configured timeout.
    pub fn timeout_duration(&self) -> Duration {
        self.timeout
    }

    /// The argument vector prefix that runs docker.
    pub(crate) fn argv(&self) -> Vec<OsString> {
        self.command
            .clone()
            .unwrap_or_else(|| vec![OsString::from(DEFAULT_DOCKER_COMMAND)])
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if let Some(command) = &self.command {
            validate_command("docker command", command)?;
        }
        if self.timeout.is_zero() {
            return Err(Error::InvalidConfig {
                reason: "the timeout must be longer than zero".to_owned(),
            });
        }
        self.env.validate()
    }

    /// `docker ARGS...` with this CLI's environment and timeout.
    #[cfg(test)]
    pub(crate) fn docker<I, S>(&self, args: I) -> Invocation
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.prefixed(self.argv(), args)
    }

    /// `PREFIX... ARGS...` (another tool, such as docker-compose) with this CLI's environment and timeout.
    pub(crate) fn prefixed<I, S>(&self, prefix: Vec<OsString>, args: I) -> Invocation
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let inv = Invocation::from_argv(prefix)
            // validate() refuses empty commands, so this is only reached by a bug.
            .unwrap_or_else(|| Invocation::new("docker"))
            .args(args)
            .timeout(self.timeout);
        self.env.apply(inv)
    }
}

/// An empty command, or one with an empty word, cannot run.
pub(crate) fn validate_command(what: &str, argv: &[OsString]) -> Result<(), Error> {
    if argv.is_empty() || argv.iter().any(|word| word.is_empty()) {
        return Err(Error::InvalidConfig {
            reason: format!("the {what} must be a non-empty list of non-empty words"),
        });
    }
    Ok(())
}

/// Run `inv` and require exit status 0; failures are classified (daemon unreachable, timeout, other).
pub(crate) async fn run_checked(inv: &Invocation) -> Result<Output, Error> {
    let result = inv.run().await.and_then(Output::check);
    match &result {
        Ok(out) => tracing::debug!(
            command = %out.command,
            elapsed_ms = out.elapsed.as_millis() as u64,
            "docker command finished"
        ),
        Err(e) => tracing::debug!(error = %e, "docker command failed"),
    }
    result.map_err(Error::from_run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(inv: &Invocation) -> Vec<String> {
        inv.env_changes()
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{}={}", k.to_string_lossy(), v.to_string_lossy()),
                None => format!("unset {}", k.to_string_lossy()),
            })
            .collect()
    }

    #[test]
    fn configured_values_override_the_environment() {
        let cli = DockerCli::new().env(
            DockerEnv::new()
                .host("tcp://127.0.0.1:2376")
                .tls_verify(true)
                .cert_path("/certs"),
        );
        insta::assert_yaml_snapshot!(env_of(&cli.docker(["version"])), @r#"
        - "DOCKER_HOST=tcp://127.0.0.1:2376"
        - unset DOCKER_CONTEXT
        - DOCKER_TLS_VERIFY=1
        - DOCKER_CERT_PATH=/certs
        "#);
        let cli = DockerCli::new().env(DockerEnv::new().context("prod").tls_verify(false));
        insta::assert_yaml_snapshot!(env_of(&cli.docker(["version"])), @r"
        - DOCKER_CONTEXT=prod
        - unset DOCKER_HOST
        - unset DOCKER_TLS_VERIFY
        ");
        assert!(env_of(&DockerCli::new().docker(["version"])).is_empty());
    }

    #[test]
    fn bad_settings_are_refused() {
        let errors: Vec<String> = [
            DockerCli::new().command(Vec::<String>::new()),
            DockerCli::new().command(["docker", ""]),
            DockerCli::new().timeout(Duration::ZERO),
            DockerCli::new().env(DockerEnv::new().host("unix:///a").context("b")),
            DockerCli::new().env(DockerEnv::new().host("")),
            DockerCli::new().env(DockerEnv::new().context("a;b")),
        ]
        .iter()
        .map(|cli| cli.validate().unwrap_err().to_string())
        .collect();
        insta::assert_yaml_snapshot!(errors);
    }

    #[tokio::test]
    async fn the_environment_reaches_the_child() {
        let cli = DockerCli::new()
            .command([
                "sh",
                "-c",
                "echo \"$DOCKER_HOST|${DOCKER_CONTEXT-none}\"",
                "sh",
            ])
            .env(DockerEnv::new().host("unix:///x.sock"));
        let out = run_checked(&cli.docker(Vec::<String>::new()))
            .await
            .unwrap();
        assert_eq!(out.stdout, b"unix:///x.sock|none\n");
    }
}
