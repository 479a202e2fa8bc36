//! The Docker Compose scaler.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use autoscale_core::{ReplicaStatus, Replicas, ScaleOutcome, Scaler};
use autoscale_exec::{Invocation, Output};
use tokio::sync::{Mutex, OnceCell};

use serde::{Serialize, Serializer};

use std::sync::Arc;

use bollard::models::ContainerSummary;

use crate::docker::{DockerCli, DockerEnv, run_checked, validate_command};
use crate::engine::{EndpointCell, EngineEndpoint};
use crate::error::{ApiError, Error};
use crate::names::{self, Rule};
use crate::parse;
use crate::settings::{ComposeSettings, serialize_argv};

/// The backend name in [`autoscale_core::Error`]s from the Compose scaler.
pub const BACKEND: &str = "docker compose";

/// The label Compose puts on every container of a project.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The label Compose puts on every container of a service.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// The label that tells service containers (`False`) from `docker compose run` ones (`True`).
pub const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// Which Compose to run. It serializes as the `command` key writes it: a list of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ComposeCommand {
    /// On first use, run `docker compose version`: if it works, use the v2 plugin (`docker compose`), with
    /// the [`DockerCli`]'s command as `docker`; otherwise use v1 (`docker-compose` from `PATH`) if
    /// `docker-compose version` works. The answer is kept for the scaler's lifetime.
    #[default]
    Detect,
    /// This argument vector, such as `["docker", "compose"]` or `["/usr/local/bin/docker-compose"]`.
    /// Both versions take the same arguments for what this scaler does.
    Argv(Vec<OsString>),
}

impl ComposeCommand {
    /// An explicit command (the `command` key of the config).
    pub fn argv<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        ComposeCommand::Argv(argv.into_iter().map(Into::into).collect())
    }

    /// Whether the command is detected on first use.
    pub fn is_detect(&self) -> bool {
        *self == ComposeCommand::Detect
    }
}

impl Serialize for ComposeCommand {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ComposeCommand::Detect => serializer.serialize_none(),
            ComposeCommand::Argv(argv) => serialize_argv(argv, serializer),
        }
    }
}

/// Scales one service of a Compose project with the Compose CLI, and reads its status through the Docker
/// Engine API.
///
/// - Status: the project's containers for the service, found by their `com.docker.compose.project` and
///   `com.docker.compose.service` labels (one-off `run` containers excluded) in the endpoint's container list
///   of this round (`GET /containers/json`, shared with every Compose scaler on the endpoint:
///   [`EngineEndpoint`]). `current` counts the running
///   ones; `ready` those running that are healthy or have no healthcheck.
/// - Scale: `COMPOSE [options] up -d --no-recreate --scale SERVICE=N SERVICE`, so running replicas are never
///   recreated. Asking for the count that is already running runs nothing and returns
///   [`ScaleOutcome::Unchanged`].
///
/// Build it with [`ComposeScaler::builder`] or [`ComposeSettings::scaler`]; names are checked against Docker's
/// rules before anything runs.
#[derive(Debug)]
pub struct ComposeScaler {
    settings: ComposeSettings,
    /// The docker CLI the settings describe.
    docker: DockerCli,
    endpoint: EndpointCell,
    detected: OnceCell<Vec<OsString>>,
    scaling: Mutex<()>,
}

/// Builds a [`ComposeScaler`]; see [`ComposeScaler::builder`]. Each method sets a field of the
/// [`ComposeSettings`] it holds.
#[derive(Debug, Clone)]
#[must_use]
pub struct ComposeScalerBuilder {
    settings: ComposeSettings,
}

impl From<ComposeSettings> for ComposeScalerBuilder {
    fn from(settings: ComposeSettings) -> Self {
        ComposeScalerBuilder { settings }
    }
}

impl ComposeScalerBuilder {
    /// A compose file (`--file`); call again for several. Without one, Compose looks for its default files in
    /// the working directory.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        let settings = &mut self.settings;
        settings
            .files
            .get_or_insert_with(|| vec![settings.file.clone()])
            .push(path.into());
        self
    }

    /// An env file (`--env-file`).
    pub fn env_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.env_file = Some(path.into());
        self
    }

    /// A profile to enable (`--profile`); call again for several.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.settings.profiles.push(profile.into());
        self
    }

    /// Which Compose to run. Default: [`ComposeCommand::Detect`].
    pub fn command(mut self, command: ComposeCommand) -> Self {
        self.settings.command = command;
        self
    }

    /// The docker CLI (for `docker ps`), the daemon's environment and the timeout of every call, Compose's
    /// included.
    ///
    /// When the compose command is `[DOCKER, "compose"]` and this CLI has no explicit command, `DOCKER` is
    /// used for `docker ps` too.
    pub fn docker(mut self, docker: DockerCli) -> Self {
        let DockerCli {
            command,
            env,
            timeout,
        } = docker;
        self.settings.docker_command = command;
        self.settings.docker = env;
        self.settings.timeout = timeout;
        self
    }

    /// Check every setting and build the scaler. Nothing runs yet.
    pub fn build(self) -> Result<ComposeScaler, Error> {
        let settings = self.settings;
        names::check(Rule::ComposeProject, &settings.project)?;
        names::check(Rule::ComposeService, &settings.service)?;
        for profile in &settings.profiles {
            names::check(Rule::Profile, profile)?;
        }
        for (what, path) in settings
            .compose_files()
            .iter()
            .map(|f| ("file", f))
            .chain(settings.env_file.iter().map(|f| ("env_file", f)))
        {
            if path.as_os_str().is_empty() {
                return Err(Error::InvalidConfig {
                    reason: format!("the compose {what} path is empty"),
                });
            }
        }
        let mut command = settings.docker_command.clone();
        if let ComposeCommand::Argv(argv) = &settings.command {
            validate_command("compose command", argv)?;
            if let [prefix @ .., last] = argv.as_slice()
                && last == "compose"
                && !prefix.is_empty()
                && command.is_none()
            {
                command = Some(prefix.to_vec());
            }
        }
        let docker = DockerCli {
            command,
            env: settings.docker.clone(),
            timeout: settings.timeout,
        };
        docker.validate()?;
        Ok(ComposeScaler {
            settings,
            docker,
            endpoint: EndpointCell::default(),
            detected: OnceCell::new(),
            scaling: Mutex::new(()),
        })
    }
}

impl ComposeScaler {
    /// A builder for the scaler of `service` in the Compose project `project`.
    ///
    /// ```
    /// use autoscale_docker::{ComposeCommand, ComposeScaler};
    ///
    /// let scaler = ComposeScaler::builder("shop", "webapp")
    ///     .file("docker-compose.yml")
    ///     .env_file(".env")
    ///     .profile("demo")
    ///     .command(ComposeCommand::argv(["docker-compose"]))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(scaler.service(), "webapp");
    /// ```
    pub fn builder(project: impl Into<String>, service: impl Into<String>) -> ComposeScalerBuilder {
        ComposeScalerBuilder::from(ComposeSettings {
            project: project.into(),
            files: Some(Vec::new()),
            ..ComposeSettings::new(service)
        })
    }

    /// The settings the scaler was built from.
    pub fn settings(&self) -> &ComposeSettings {
        &self.settings
    }

    /// The Compose project.
    pub fn project(&self) -> &str {
        &self.settings.project
    }

    /// The service.
    pub fn service(&self) -> &str {
        &self.settings.service
    }

    /// The Compose command in use: the configured one, or the one detected on first use.
    pub async fn compose_command(&self) -> Result<&[OsString], Error> {
        match &self.settings.command {
            ComposeCommand::Argv(argv) => Ok(argv),
            ComposeCommand::Detect => self
                .detected
                .get_or_try_init(|| detect(&self.docker))
                .await
                .map(Vec::as_slice),
        }
    }

    /// The client of the scaler's Docker endpoint, shared with every scaler on the same endpoint (resolved on
    /// first use).
    pub fn endpoint(&self) -> Result<Arc<EngineEndpoint>, Error> {
        self.endpoint.get(&self.settings.docker)
    }

    /// The service's status, with this crate's error: from the endpoint's container list of this round,
    /// shared with the other Compose scalers on the endpoint.
    pub async fn read_status(&self) -> Result<ReplicaStatus, Error> {
        let endpoint = self.endpoint()?;
        let containers = endpoint.containers(self.settings.timeout).await?;
        status_in(&containers, &self.settings.project, &self.settings.service).map_err(|reason| {
            Error::Api {
                source: ApiError {
                    request: "GET /containers/json".to_owned(),
                    endpoint: endpoint.address().to_owned(),
                    status: None,
                    reason,
                    kind: autoscale_core::FailureKind::BadResult,
                },
            }
        })
    }

    /// Scale the service to `replicas`, with this crate's error.
    pub async fn set_replicas(&self, replicas: Replicas) -> Result<ScaleOutcome, Error> {
        let Ok(_scaling) = self.scaling.try_lock() else {
            return Err(Error::Busy {
                target: format!(
                    "compose service {}/{}",
                    self.settings.project, self.settings.service
                ),
            });
        };
        // The count to compare with is read now, not taken from this round's shared list.
        self.endpoint()?.invalidate_containers();
        let before = self.read_status().await?;
        if before.current == replicas {
            tracing::debug!(project = %self.settings.project, service = %self.settings.service, replicas, "already at the count");
            return Ok(ScaleOutcome::Unchanged);
        }
        let compose = self.compose_command().await?;
        let scaled = run_checked(&self.scale_invocation(compose, replicas)).await;
        self.endpoint()?.invalidate_containers();
        scaled?;
        tracing::info!(
            project = %self.settings.project,
            service = %self.settings.service,
            from = before.current,
            to = replicas,
            "scaled compose service"
        );
        Ok(ScaleOutcome::Scaled)
    }

    /// The options every Compose call of this scaler starts with.
    fn project_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--project-name".into(),
            self.settings.project.clone().into(),
        ];
        for file in self.settings.compose_files() {
            args.extend(["--file".into(), path_arg(file)]);
        }
        if let Some(env_file) = &self.settings.env_file {
            args.extend(["--env-file".into(), path_arg(env_file)]);
        }
        for profile in &self.settings.profiles {
            args.extend(["--profile".into(), profile.into()]);
        }
        args
    }

    fn scale_invocation(&self, compose: &[OsString], replicas: Replicas) -> Invocation {
        let mut args = self.project_args();
        args.extend([
            "up".into(),
            "-d".into(),
            "--no-recreate".into(),
            "--scale".into(),
            format!("{}={replicas}", self.settings.service).into(),
            self.settings.service.clone().into(),
        ]);
        self.docker.prefixed(compose.to_vec(), args)
    }
}

/// The status of `project`'s `service` in an endpoint's container list.
pub(crate) fn status_in(
    containers: &[ContainerSummary],
    project: &str,
    service: &str,
) -> Result<ReplicaStatus, String> {
    let mine: Vec<parse::PsContainer> = containers
        .iter()
        .filter(|c| label(c, PROJECT_LABEL) == Some(project))
        .filter(|c| label(c, SERVICE_LABEL) == Some(service))
        .map(|c| parse::PsContainer {
            id: c.id.clone().unwrap_or_default(),
            names: c.names.as_ref().map(|n| n.join(",")).unwrap_or_default(),
            state: c.state.map(|s| s.to_string()),
            status: c.status.clone().unwrap_or_default(),
        })
        .collect();
    parse::compose_status(&mine)
}

fn label<'a>(container: &'a ContainerSummary, key: &str) -> Option<&'a str> {
    container
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// A relative path that starts with `-` would read as an option: `./` keeps it a path.
fn path_arg(path: &Path) -> OsString {
    if path.is_relative() && path.as_os_str().as_encoded_bytes().starts_with(b"-") {
        Path::new(".").join(path).into_os_string()
    } else {
        path.as_os_str().to_owned()
    }
}

/// Detections by docker command and environment, shared by every scaler of the process: a daemon with 200
/// compose services runs `version` once, not 200 times (compose v1 spends about half a second of CPU on it).
/// Only a success is kept; a failure is detected again by the next caller.
type Detections = Vec<((Vec<OsString>, DockerEnv), Arc<OnceCell<Vec<OsString>>>)>;
static DETECTIONS: std::sync::LazyLock<std::sync::Mutex<Detections>> =
    std::sync::LazyLock::new(Default::default);

/// The Compose command for `docker`'s command and environment: detected once per process (concurrent callers
/// share one detection), see [`detect_now`].
async fn detect(docker: &DockerCli) -> Result<Vec<OsString>, Error> {
    let key = (docker.argv(), docker.env.clone());
    let cell = {
        let mut detections = DETECTIONS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match detections.iter().find(|(k, _)| *k == key) {
            Some((_, cell)) => Arc::clone(cell),
            None => {
                let cell = Arc::new(OnceCell::new());
                detections.push((key, Arc::clone(&cell)));
                cell
            }
        }
    };
    cell.get_or_try_init(|| detect_now(docker)).await.cloned()
}

/// `docker compose` if the plugin answers `version`, else `docker-compose` if it does.
async fn detect_now(docker: &DockerCli) -> Result<Vec<OsString>, Error> {
    let mut v2 = docker.argv();
    v2.push("compose".into());
    let v2_error = match version(docker, &v2).await? {
        Ok(()) => return Ok(v2),
        Err(e) => e,
    };
    let v1 = vec![OsString::from("docker-compose")];
    match version(docker, &v1).await? {
        Ok(()) => {
            tracing::debug!(reason = %v2_error, "using docker-compose (v1): the compose plugin is absent");
            Ok(v1)
        }
        Err(v1_error) => Err(Error::ComposeNotFound {
            v2: Box::new(v2_error),
            v1: Box::new(v1_error),
        }),
    }
}

/// Whether `COMMAND version` works; a timeout is an error of its own, not a sign of absence.
async fn version(
    docker: &DockerCli,
    command: &[OsString],
) -> Result<Result<(), autoscale_exec::Error>, Error> {
    let inv = docker.prefixed(command.to_vec(), ["version"]);
    match inv.run().await.and_then(Output::check) {
        Ok(_) => Ok(Ok(())),
        Err(e @ autoscale_exec::Error::Timeout { .. }) => Err(Error::from_run(e)),
        Err(e) => Ok(Err(e)),
    }
}

#[async_trait]
impl Scaler for ComposeScaler {
    async fn status(&self) -> autoscale_core::Result<ReplicaStatus> {
        self.read_status().await.map_err(|e| e.attribute(BACKEND))
    }

    async fn scale(&self, replicas: Replicas) -> autoscale_core::Result<ScaleOutcome> {
        self.set_replicas(replicas)
            .await
            .map_err(|e| e.attribute(BACKEND))
    }

    /// Notified by the endpoint's event stream when a container of the service starts, stops, dies, or
    /// changes health (see [`EngineEndpoint`]); `None` when the endpoint cannot be resolved or outside a
    /// tokio runtime.
    fn changes(&self) -> Option<autoscale_core::ChangeFeed> {
        let endpoint = self
            .endpoint()
            .inspect_err(
                |e| tracing::debug!(error = %e, "no change feed: the endpoint is unresolved"),
            )
            .ok()?;
        crate::events::subscribe(
            &endpoint,
            crate::events::Target::Compose {
                project: self.settings.project.clone(),
                service: self.settings.service.clone(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DockerEnv;

    fn argv(inv: &Invocation) -> Vec<String> {
        std::iter::once(inv.program())
            .chain(inv.arguments())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn full() -> ComposeScaler {
        ComposeScaler::builder("prometheus-autoscale-sim", "webapp")
            .file("docker-compose.yml")
            .file("-override.yml")
            .env_file("/etc/autoscale/.env")
            .profile("demo")
            .profile("metrics")
            .command(ComposeCommand::argv(["/usr/bin/docker", "compose"]))
            .docker(DockerCli::new().env(DockerEnv::new().host("unix:///run/docker.sock")))
            .build()
            .unwrap()
    }

    #[test]
    fn scaling_runs_up_without_recreating() {
        let scaler = full();
        let compose = match &scaler.settings.command {
            ComposeCommand::Argv(argv) => argv.clone(),
            ComposeCommand::Detect => unreachable!(),
        };
        insta::assert_yaml_snapshot!(argv(&scaler.scale_invocation(&compose, 3)));
    }

    #[test]
    fn the_smallest_configuration_scales_with_v1() {
        let scaler = ComposeScaler::builder("p", "web")
            .command(ComposeCommand::argv(["docker-compose"]))
            .build()
            .unwrap();
        insta::assert_yaml_snapshot!(argv(
            &scaler.scale_invocation(&[OsString::from("docker-compose")], 0)
        ));
        // docker-compose is not the docker CLI: detection would still try `docker compose`.
        assert_eq!(scaler.docker.argv(), ["docker"]);
    }

    #[test]
    fn a_docker_compose_prefix_supplies_the_docker_binary() {
        let scaler = full();
        assert_eq!(scaler.docker.argv(), ["/usr/bin/docker"]);
        let explicit = ComposeScaler::builder("p", "web")
            .command(ComposeCommand::argv(["/opt/docker", "compose"]))
            .docker(DockerCli::new().command(["/usr/local/bin/docker"]))
            .build()
            .unwrap();
        assert_eq!(explicit.docker.argv(), ["/usr/local/bin/docker"]);
    }

    #[test]
    fn bad_settings_are_refused_before_anything_runs() {
        let errors: Vec<String> = [
            ComposeScaler::builder("shop; rm -rf /", "web"),
            ComposeScaler::builder("Shop", "web"),
            ComposeScaler::builder("shop", "web|tee"),
            ComposeScaler::builder("shop", ""),
            ComposeScaler::builder("shop", "web").profile("$(id)"),
            ComposeScaler::builder("shop", "web").file(""),
            ComposeScaler::builder("shop", "web")
                .command(ComposeCommand::argv(Vec::<String>::new())),
        ]
        .into_iter()
        .map(|b| b.build().unwrap_err().to_string())
        .collect();
        insta::assert_yaml_snapshot!(errors);
    }

    /// A docker CLI that is a shell script: run through `sh`, so writing it and running it at once cannot hit
    /// ETXTBSY when another test forks meanwhile.
    fn fake_docker(dir: &Path, script: &str) -> DockerCli {
        let path = dir.join("docker.sh");
        std::fs::write(&path, script).unwrap();
        DockerCli::new().command([OsString::from("sh"), path.into_os_string()])
    }

    #[tokio::test]
    async fn detection_prefers_the_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let docker = fake_docker(
            dir.path(),
            "[ \"$1 $2\" = \"compose version\" ] && exit 0\nexit 1\n",
        );
        let scaler = ComposeScaler::builder("p", "web")
            .docker(docker.clone())
            .build()
            .unwrap();
        let mut expected = docker.argv();
        expected.push("compose".into());
        assert_eq!(scaler.compose_command().await.unwrap(), expected);
    }

    #[tokio::test]
    async fn detection_falls_back_to_v1() {
        let dir = tempfile::tempdir().unwrap();
        let docker = fake_docker(
            dir.path(),
            "echo 'unknown command: docker compose' >&2\nexit 1\n",
        );
        let scaler = ComposeScaler::builder("p", "web")
            .docker(docker)
            .build()
            .unwrap();
        match scaler.compose_command().await {
            Ok(found) => assert_eq!(found, ["docker-compose"]),
            // Only where docker-compose is not installed: both reasons are given.
            Err(e) => {
                let message = e.to_string();
                assert!(
                    message.contains("unknown command: docker compose"),
                    "{message}"
                );
                assert!(message.contains("docker-compose version"), "{message}");
            }
        }
    }

    #[tokio::test]
    async fn scalers_with_the_same_docker_share_one_detection() {
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        let docker = fake_docker(
            dir.path(),
            &format!(
                "echo \"$*\" >> '{}'\n[ \"$1 $2\" = \"compose version\" ] && exit 0\nexit 1\n",
                calls.display()
            ),
        );
        let scalers: Vec<ComposeScaler> = (0..20)
            .map(|i| {
                ComposeScaler::builder("p", format!("web{i}"))
                    .docker(docker.clone())
                    .build()
                    .unwrap()
            })
            .collect();
        for scaler in &scalers {
            scaler.compose_command().await.unwrap();
        }
        let lines = std::fs::read_to_string(&calls).unwrap();
        assert_eq!(lines.lines().collect::<Vec<_>>(), ["compose version"]);
        // Another environment is another detection.
        let other = ComposeScaler::builder("p", "web")
            .docker(docker.env(DockerEnv::new().host("unix:///other.sock")))
            .build()
            .unwrap();
        other.compose_command().await.unwrap();
        assert_eq!(std::fs::read_to_string(&calls).unwrap().lines().count(), 2);
    }

    #[test]
    fn the_settings_pass_their_file_and_the_builder_adds_to_it() {
        let settings = ComposeSettings::new("web");
        let scaler = settings.scaler().unwrap();
        assert_eq!(scaler.settings(), &settings);
        assert!(
            scaler
                .project_args()
                .contains(&OsString::from("docker-compose.yml"))
        );
        let more = ComposeScalerBuilder::from(settings)
            .file("override.yml")
            .build()
            .unwrap();
        assert_eq!(
            more.settings().compose_files(),
            [PathBuf::from("docker-compose.yml"), "override.yml".into()]
        );
    }

    #[test]
    fn paths_that_look_like_options_stay_paths() {
        assert_eq!(path_arg(Path::new("-f.yml")), "./-f.yml");
        assert_eq!(path_arg(Path::new("a/-f.yml")), "a/-f.yml");
        assert_eq!(path_arg(Path::new("/x/-f.yml")), "/x/-f.yml");
    }
}
