//! The [`Scaler`] that runs playbooks.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use autoscale_core::{ReplicaStatus, Replicas, ScaleOutcome, Scaler};
use serde_json::Value;

use crate::callback::{PlaybookReport, READY_VAR, REPLICAS_VAR, parse_report};
use crate::config::{AnsibleScalerBuilder, Plan, RunKind, StatusSource};
use crate::error::Error;
use crate::settings::AnsibleSettings;

/// The bundled stdout callback, written next to the extra-vars file for each run.
const CALLBACK_PLUGIN: &str = include_str!("plugin/autoscale_json.py");

/// Scales a service by running an Ansible playbook with the new count.
///
/// `scale(n)` reads the status first: when the service already runs `n`, nothing is run
/// ([`ScaleOutcome::Unchanged`]). Otherwise it runs
/// `ansible-playbook [--inventory=..] [--limit=..] [--vault-password-file=..] --extra-vars=@FILE [--tags=..]
/// [--check] -- PLAYBOOK`, where FILE is a private temporary JSON file holding the extra vars plus `service`,
/// `replicas` and `previous_replicas`, removed after the run. In check mode the playbook runs and changes
/// nothing, and `scale` still reports [`ScaleOutcome::Scaled`] (what was asked was done: a dry run).
///
/// At most one scale run per service goes on at a time in this process (scalers with the same service,
/// inventory, limit, playbook and extra vars count as one): a second `scale` meanwhile fails with
/// [`Error::Busy`] (`autoscale_core::Error::Busy`) and runs nothing.
#[derive(Debug, Clone)]
pub struct AnsibleScaler {
    plan: Arc<Plan>,
}

/// The scale runs going on in this process, by [`AnsibleScaler::busy_key`].
static RUNNING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Holds a service's place in [`RUNNING`] for the length of one scale run.
struct BusyGuard {
    key: String,
}

impl BusyGuard {
    fn acquire(key: String, service: &str) -> Result<Self, Error> {
        let mut running = RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if running.insert(key.clone()) {
            Ok(BusyGuard { key })
        } else {
            Err(Error::Busy {
                service: service.to_owned(),
            })
        }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
    }
}

impl AnsibleScaler {
    /// Start building a scaler for `service` that runs `playbook` and reads the current count from
    /// `status`.
    pub fn builder(
        service: impl Into<String>,
        playbook: impl Into<std::path::PathBuf>,
        status: StatusSource,
    ) -> AnsibleScalerBuilder {
        AnsibleScalerBuilder::from_settings(service, AnsibleSettings::new(playbook), status, false)
    }

    pub(crate) fn from_plan(plan: Plan) -> Self {
        AnsibleScaler {
            plan: Arc::new(plan),
        }
    }

    #[cfg(test)]
    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The settings the scaler was built from.
    pub fn settings(&self) -> &AnsibleSettings {
        &self.plan.settings
    }

    /// The service this scaler scales.
    pub fn service(&self) -> &str {
        &self.plan.service
    }

    /// The command a scale to `replicas` would run, for logs and dry runs; the extra-vars file, created
    /// for each run, is shown as `@EXTRA_VARS.json`.
    pub fn command_preview(&self, replicas: Replicas) -> String {
        let spec = self.plan.run_spec(
            RunKind::Scale {
                replicas,
                previous: replicas,
            },
            Path::new("EXTRA_VARS.json"),
            Path::new("CALLBACK_DIR"),
            None,
        );
        spec.command_line().to_string()
    }

    /// What makes two scalers "the same service": the service, and where and how it is scaled (inventory,
    /// limit, playbook and extra vars, such as the compose project). Never logged: the vars may hold secrets.
    fn busy_key(&self) -> String {
        let s = &self.plan.settings;
        serde_json::json!([
            self.plan.service,
            s.inventory,
            s.limit,
            s.playbook,
            Value::Object(s.extra_vars.clone()),
        ])
        .to_string()
    }

    /// Run the scale playbook for `replicas` unconditionally (no status read, no no-op check), and return
    /// what Ansible reported. Fails with [`Error::Busy`] while another scale run of the service goes on.
    pub async fn run_scale(
        &self,
        replicas: Replicas,
        previous_replicas: Replicas,
    ) -> Result<PlaybookReport, Error> {
        let _busy = BusyGuard::acquire(self.busy_key(), &self.plan.service)?;
        self.run_scale_playbook(replicas, previous_replicas).await
    }

    async fn run_scale_playbook(
        &self,
        replicas: Replicas,
        previous: Replicas,
    ) -> Result<PlaybookReport, Error> {
        let started = Instant::now();
        let report = self
            .run_playbook(RunKind::Scale { replicas, previous })
            .await?;
        tracing::info!(
            service = %self.plan.service,
            replicas,
            previous_replicas = previous,
            check_mode = self.plan.settings.check_mode,
            changed = report.changed(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "scale playbook finished"
        );
        Ok(report)
    }

    /// Run the status playbook and read the count it reports.
    async fn playbook_status(&self) -> Result<ReplicaStatus, Error> {
        let report = self.run_playbook(RunKind::Status).await?;
        let (playbook, _) = self.plan.target(RunKind::Status);
        let no_count = |reason: String| Error::NoCount {
            playbook: playbook.to_owned(),
            reason,
        };
        let as_replicas = |n: u64| {
            Replicas::try_from(n).map_err(|_| no_count(format!("{n} replicas is out of range")))
        };
        let current = match report.reported_replicas {
            Some(Ok(n)) => as_replicas(n)?,
            Some(Err(reason)) => return Err(no_count(reason)),
            None => {
                return Err(no_count(format!(
                    "no {REPLICAS_VAR} was reported; set it with set_stats or show it with debug var"
                )));
            }
        };
        let ready = match report.reported_ready {
            Some(Ok(n)) => as_replicas(n)?.min(current),
            Some(Err(reason)) => return Err(no_count(format!("{READY_VAR}: {reason}"))),
            None => current,
        };
        Ok(ReplicaStatus { current, ready })
    }

    /// One playbook run: write the callback and the extra vars into a private directory, run, and read the
    /// report. The directory goes away when this returns.
    async fn run_playbook(&self, kind: RunKind) -> Result<PlaybookReport, Error> {
        let dir = tempfile::Builder::new()
            .prefix("autoscale-ansible-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "creating a private directory for the run".into(),
                source,
            })?;
        let vars_file = dir.path().join("extra-vars.json");
        let vars = serde_json::to_vec_pretty(&self.plan.extra_vars(kind))
            .expect("a JSON value serializes");
        write_private(&vars_file, &vars)?;
        write_private(
            &dir.path()
                .join(format!("{}.py", crate::config::CALLBACK_NAME)),
            CALLBACK_PLUGIN.as_bytes(),
        )?;

        let spec = self.plan.run_spec(
            kind,
            &vars_file,
            dir.path(),
            std::env::var_os("ANSIBLE_CALLBACK_PLUGINS"),
        );
        let command = spec.command_line();
        tracing::debug!(service = %self.plan.service, %command, "running ansible-playbook");
        let output = spec.invocation().run().await.map_err(Error::from_run)?;
        drop(dir);

        let stdout = String::from_utf8_lossy(&output.stdout);
        match parse_report(&stdout) {
            Ok(report) if !report.failures.is_empty() => Err(Error::TaskFailed {
                command,
                failures: report.failures,
            }),
            Ok(report) if !report.unreachable.is_empty() => Err(Error::Unreachable {
                command,
                hosts: report.unreachable,
            }),
            // A report without failed hosts but with a failed exit: the run stopped for another reason
            // (no hosts matched, an error between plays, an interrupt).
            Ok(report) => match output.check() {
                Ok(_) => Ok(report),
                Err(source) => Err(Error::Exited { source }),
            },
            Err(_) if !output.status.success() => Err(Error::Exited {
                source: output.check().expect_err("the run failed"),
            }),
            Err(reason) => Err(Error::BadOutput {
                command,
                reason,
                stderr_tail: output.stderr_tail,
            }),
        }
    }
}

/// Create `path` readable by this user only: the extra vars may hold secrets.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(contents).map_err(io)
}

#[async_trait]
impl Scaler for AnsibleScaler {
    async fn status(&self) -> autoscale_core::Result<ReplicaStatus> {
        match &self.plan.status {
            StatusSource::Scaler(scaler) => scaler.status().await,
            StatusSource::Playbook(_) => Ok(self.playbook_status().await?),
        }
    }

    async fn scale(&self, replicas: Replicas) -> autoscale_core::Result<ScaleOutcome> {
        // Taken before the status read, so that two concurrent calls cannot both see the old count and both
        // run the playbook.
        let _busy = BusyGuard::acquire(self.busy_key(), &self.plan.service)?;
        let status = self.status().await?;
        if status.current == replicas {
            return Ok(ScaleOutcome::Unchanged);
        }
        self.run_scale_playbook(replicas, status.current).await?;
        Ok(ScaleOutcome::Scaled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StatusPlaybook;
    use autoscale_core::FailureKind;
    use autoscale_core::testing::RecordingScaler;

    fn scaler(service: &str, status: StatusSource) -> AnsibleScaler {
        // A program that does not exist: any attempt to run a playbook fails loudly.
        AnsibleScaler::builder(service, "scale.yml", status)
            .ansible_playbook("/nonexistent/ansible-playbook")
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn status_comes_from_the_status_scaler() {
        let status = RecordingScaler::new(4);
        let s = scaler(
            "status-read",
            StatusSource::Scaler(Arc::new(status.clone())),
        );
        assert_eq!(s.status().await.unwrap(), ReplicaStatus::all_ready(4));
        assert_eq!(status.status_calls(), 1);
    }

    #[tokio::test]
    async fn the_count_the_service_has_runs_nothing() {
        let status = RecordingScaler::new(2);
        let s = scaler("no-op", StatusSource::Scaler(Arc::new(status.clone())));
        assert_eq!(s.scale(2).await.unwrap(), ScaleOutcome::Unchanged);
        assert!(status.scale_calls().is_empty());
    }

    #[tokio::test]
    async fn a_missing_program_is_unavailable_and_names_it() {
        let s = scaler(
            "missing-program",
            StatusSource::Scaler(Arc::new(RecordingScaler::new(1))),
        );
        let err = s.scale(3).await.unwrap_err();
        assert_eq!(err.kind(), FailureKind::Unavailable);
        assert!(
            err.to_string().contains("/nonexistent/ansible-playbook"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_failing_status_read_stops_the_scale() {
        let status = RecordingScaler::new(1);
        status.fail_next_status(FailureKind::Timeout);
        let s = scaler("status-fails", StatusSource::Scaler(Arc::new(status)));
        assert_eq!(s.scale(3).await.unwrap_err().kind(), FailureKind::Timeout);
    }

    #[tokio::test]
    async fn a_second_run_for_the_same_service_is_busy() {
        let s = scaler(
            "busy",
            StatusSource::Playbook(StatusPlaybook::new("status.yml")),
        );
        let held = BusyGuard::acquire(s.busy_key(), s.service()).unwrap();
        let err = s.scale(3).await.unwrap_err();
        assert!(matches!(err, autoscale_core::Error::Busy { .. }), "{err}");
        assert!(matches!(
            s.run_scale(3, 1).await.unwrap_err(),
            Error::Busy { .. }
        ));
        // Another service is not held up.
        let other = scaler(
            "busy-other",
            StatusSource::Scaler(Arc::new(RecordingScaler::new(3))),
        );
        assert_eq!(other.scale(3).await.unwrap(), ScaleOutcome::Unchanged);
        // Nor the same service name in another compose project...
        let elsewhere = AnsibleScaler::builder(
            "busy",
            "scale.yml",
            StatusSource::Scaler(Arc::new(RecordingScaler::new(3))),
        )
        .ansible_playbook("/nonexistent/ansible-playbook")
        .extra_var("compose_project", "other")
        .build()
        .unwrap();
        assert_eq!(elsewhere.scale(3).await.unwrap(), ScaleOutcome::Unchanged);
        // ...but a second scaler built with the same settings is the same service.
        let twin = scaler(
            "busy",
            StatusSource::Playbook(StatusPlaybook::new("status.yml")),
        );
        assert!(matches!(
            twin.scale(3).await.unwrap_err(),
            autoscale_core::Error::Busy { .. }
        ));
        drop(held);
        // Released: the next call gets past the guard (and fails on the missing program instead).
        assert!(matches!(
            s.run_scale(3, 1).await.unwrap_err(),
            Error::Spawn { .. }
        ));
    }

    #[test]
    fn the_preview_shows_the_command() {
        let s = AnsibleScaler::builder(
            "webapp",
            "scale.yml",
            StatusSource::Playbook(StatusPlaybook::new("status.yml")),
        )
        .inventory("inventory.ini")
        .check_mode(true)
        .build()
        .unwrap();
        assert_eq!(
            s.command_preview(3),
            "ansible-playbook --inventory=inventory.ini --extra-vars=@EXTRA_VARS.json --check -- scale.yml"
        );
    }
}
