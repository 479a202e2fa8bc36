//! Real runs of ansible-playbook (ansible-core in the virtualenv that scripts/services installs), and of the
//! shipped compose playbooks against the test dockerd.
//!
//! Needs AUTOSCALE_TEST_ANSIBLE_PLAYBOOK and AUTOSCALE_TEST_ANSIBLE_PYTHON, and for the compose tests
//! AUTOSCALE_TEST_DOCKER_HOST; each test skips loudly without them, and fails in CI.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autoscale_ansible::{AnsibleScaler, AnsibleScalerBuilder, Error, StatusPlaybook, StatusSource};
use autoscale_core::testing::{RecordingScaler, require_service, scaler_conformance};
use autoscale_core::{FailureKind, ReplicaStatus, ScaleOutcome, Scaler};

struct Ansible {
    program: String,
    python: String,
}

fn ansible() -> Option<Ansible> {
    Some(Ansible {
        program: require_service(
            "AUTOSCALE_TEST_ANSIBLE_PLAYBOOK",
            "ansible-playbook (ansible-core in a virtualenv)",
        )?,
        python: require_service(
            "AUTOSCALE_TEST_ANSIBLE_PYTHON",
            "the Python of the ansible virtualenv",
        )?,
    })
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ansible")
}

fn playbooks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/playbooks")
}

impl Ansible {
    /// A scaler on the local inventory, with the interpreter set: discovery here would pick a Python that is
    /// not installed.
    fn builder(
        &self,
        service: &str,
        playbook: PathBuf,
        status: StatusSource,
    ) -> AnsibleScalerBuilder {
        AnsibleScaler::builder(service, playbook, status)
            .inventory(examples().join("inventory.ini").display().to_string())
            .ansible_playbook(&self.program)
            .extra_var("ansible_python_interpreter", self.python.as_str())
            .timeout(Duration::from_secs(180))
    }
}

/// A compose project of busybox containers that exit on SIGTERM, taken down when dropped.
struct ComposeProject {
    name: String,
    file: PathBuf,
    docker_host: String,
    compose: String,
    _dir: tempfile::TempDir,
}

impl ComposeProject {
    fn new(name: &str) -> Option<ComposeProject> {
        let docker_host = require_service("AUTOSCALE_TEST_DOCKER_HOST", "a Docker engine")?;
        let image = std::env::var("AUTOSCALE_TEST_BUSYBOX_IMAGE")
            .unwrap_or_else(|_| "local/busybox:1".into());
        let compose =
            std::env::var("AUTOSCALE_TEST_COMPOSE").unwrap_or_else(|_| "docker-compose".into());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("docker-compose.yml");
        std::fs::write(
            &file,
            format!(
                "version: \"2.4\"\nservices:\n  web:\n    image: {image}\n    network_mode: host\n    \
                 command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n"
            ),
        )
        .unwrap();
        let project = ComposeProject {
            name: format!("{name}-{}", std::process::id()),
            file,
            docker_host,
            compose,
            _dir: dir,
        };
        project.down();
        Some(project)
    }

    /// The scale and status playbooks' vars for this project.
    fn vars(&self, builder: AnsibleScalerBuilder) -> AnsibleScalerBuilder {
        builder
            .extra_var("compose_project", self.name.as_str())
            .extra_var("compose_file", self.file.display().to_string())
            .extra_var("compose_command", vec![self.compose.clone()])
            .env("DOCKER_HOST", self.docker_host.as_str())
    }

    /// The running containers, counted by docker itself rather than through the status playbook.
    fn running(&self) -> usize {
        let out = std::process::Command::new("docker")
            .args(["ps", "-q", "--filter"])
            .arg(format!("label=com.docker.compose.project={}", self.name))
            .env("DOCKER_HOST", &self.docker_host)
            .output()
            .expect("docker ps");
        assert!(out.status.success(), "docker ps: {out:?}");
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    fn down(&self) {
        let _ = std::process::Command::new(&self.compose)
            .args(["-p", &self.name, "-f"])
            .arg(&self.file)
            .args(["down", "-t", "1"])
            .env("DOCKER_HOST", &self.docker_host)
            .output();
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        self.down();
    }
}

fn compose_scaler(
    ansible: &Ansible,
    project: &ComposeProject,
    service: &str,
) -> AnsibleScalerBuilder {
    let status = StatusSource::Playbook(StatusPlaybook::new(examples().join("status.yml")));
    project.vars(ansible.builder(service, examples().join("scale.yml"), status))
}

#[tokio::test]
async fn the_shipped_playbooks_scale_a_compose_service_1_3_1_and_pass_the_conformance_suite() {
    let Some(ansible) = ansible() else { return };
    let Some(project) = ComposeProject::new("autoscale-ansible-it") else {
        return;
    };
    // The compose service is "web"; the scaler's service name is what the playbooks get as `service`.
    let scaler = compose_scaler(&ansible, &project, "web").build().unwrap();

    assert_eq!(scaler.status().await.unwrap(), ReplicaStatus::all_ready(0));
    assert_eq!(scaler.scale(1).await.unwrap(), ScaleOutcome::Scaled);
    assert_eq!(project.running(), 1);

    // 1 -> 3 -> 3 (a no-op) -> 1, through &dyn Scaler, each step read back by status.yml.
    let dyn_scaler: &dyn Scaler = &scaler;
    scaler_conformance(dyn_scaler, &[3, 3, 1], |_| async {}).await;
    assert_eq!(project.running(), 1, "docker itself sees one container");
}

#[tokio::test]
async fn check_mode_changes_nothing() {
    let Some(ansible) = ansible() else { return };
    let Some(project) = ComposeProject::new("autoscale-ansible-check") else {
        return;
    };
    let real = compose_scaler(&ansible, &project, "web").build().unwrap();
    assert_eq!(real.scale(1).await.unwrap(), ScaleOutcome::Scaled);

    let check = compose_scaler(&ansible, &project, "web")
        .check_mode(true)
        .build()
        .unwrap();
    let report = check.run_scale(3, 1).await.unwrap();
    assert_eq!(report.changed(), 0, "{report:?}");
    assert!(report.stats["localhost"].skipped >= 1, "{report:?}");
    assert_eq!(check.scale(3).await.unwrap(), ScaleOutcome::Scaled);

    assert_eq!(check.status().await.unwrap(), ReplicaStatus::all_ready(1));
    assert_eq!(project.running(), 1);
}

#[tokio::test]
async fn a_failing_playbook_names_the_host_task_and_message() {
    let Some(ansible) = ansible() else { return };
    let status = StatusSource::Scaler(Arc::new(RecordingScaler::new(1)));
    let scaler = ansible
        .builder("refused", playbooks().join("fail.yml"), status)
        .build()
        .unwrap();

    match scaler.run_scale(3, 1).await.unwrap_err() {
        Error::TaskFailed { failures, .. } => {
            assert_eq!(failures.len(), 1, "{failures:?}");
            assert_eq!(failures[0].host, "localhost");
            assert_eq!(failures[0].task, "Refuse the new count");
            assert_eq!(failures[0].message, "refusing to run 3 replicas of refused");
        }
        other => panic!("expected a failed task, got {other}"),
    }

    let err = scaler.scale(3).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Other);
    let message = err.to_string();
    assert!(
        message.contains(
            "localhost: task \"Refuse the new count\": refusing to run 3 replicas of refused"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_failed_compose_command_surfaces_its_stderr() {
    let Some(ansible) = ansible() else { return };
    let status = StatusSource::Scaler(Arc::new(RecordingScaler::new(1)));
    let scaler = ansible
        .builder("web", examples().join("scale.yml"), status)
        .extra_var("compose_project", "autoscale-ansible-missing")
        .extra_var("compose_file", "/nonexistent/docker-compose.yml")
        .build()
        .unwrap();
    match scaler.run_scale(2, 1).await.unwrap_err() {
        Error::TaskFailed { failures, .. } => {
            assert_eq!(failures[0].task, "Scale the service with compose");
            assert!(
                failures[0].message.starts_with("non-zero return code"),
                "{failures:?}"
            );
            assert!(
                failures[0]
                    .message
                    .contains("/nonexistent/docker-compose.yml"),
                "{failures:?}"
            );
        }
        other => panic!("expected a failed task, got {other}"),
    }
}

#[tokio::test]
async fn an_unreachable_host_is_unavailable() {
    let Some(ansible) = ansible() else { return };
    let status = StatusSource::Scaler(Arc::new(RecordingScaler::new(1)));
    let scaler = ansible
        .builder("web", playbooks().join("file_scale.yml"), status)
        .inventory(playbooks().join("unreachable.ini").display().to_string())
        .extra_var("state_file", "/nonexistent/state")
        .build()
        .unwrap();
    match scaler.run_scale(2, 1).await.unwrap_err() {
        Error::Unreachable { hosts, .. } => {
            assert_eq!(hosts[0].host, "nowhere");
            assert!(hosts[0].message.contains("port 1"), "{hosts:?}");
        }
        other => panic!("expected an unreachable host, got {other}"),
    }
    assert_eq!(
        scaler.scale(2).await.unwrap_err().kind(),
        FailureKind::Unavailable
    );
}

/// Processes whose command line contains `needle`, from /proc.
fn processes_with(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(needle))
        .collect()
}

/// Poll `check` every 100 ms, at most `tries` times.
async fn eventually(tries: u32, check: impl Fn() -> bool) -> bool {
    for _ in 0..tries {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check()
}

#[tokio::test]
async fn a_hanging_playbook_is_killed_at_the_timeout_with_nothing_left_behind() {
    let Some(ansible) = ansible() else { return };
    let marker = format!("autoscale-hang-marker-{}", std::process::id());
    let status = StatusSource::Scaler(Arc::new(RecordingScaler::new(1)));
    let scaler = ansible
        .builder("hanging", playbooks().join("hang.yml"), status)
        .extra_var("marker", marker.as_str())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let run = tokio::spawn({
        let scaler = scaler.clone();
        async move { scaler.run_scale(2, 1).await }
    });
    // The sleeping module process must really have started, or the test would show nothing.
    assert!(
        eventually(300, || !processes_with(&marker).is_empty()).await,
        "the hanging task never started"
    );
    // While it runs, a second scale of the same service is refused, not started.
    let busy = scaler.scale(5).await.unwrap_err();
    assert!(matches!(busy, autoscale_core::Error::Busy { .. }), "{busy}");

    match run.await.unwrap().unwrap_err() {
        Error::Timeout { after, .. } => assert_eq!(after, Duration::from_secs(30)),
        other => panic!("expected a timeout, got {other}"),
    }
    assert!(
        eventually(50, || processes_with(&marker).is_empty()
            && processes_with("hang.yml").is_empty())
        .await,
        "left behind: {:?} {:?}",
        processes_with(&marker),
        processes_with("hang.yml")
    );
}

#[tokio::test]
async fn a_status_playbook_reporting_through_a_debug_variable_passes_the_conformance_suite() {
    let Some(ansible) = ansible() else { return };
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("replicas");
    let status = StatusSource::Playbook(StatusPlaybook::new(playbooks().join("file_status.yml")));
    let scaler = ansible
        .builder("file-backed", playbooks().join("file_scale.yml"), status)
        .extra_var("state_file", state_file.display().to_string())
        .build()
        .unwrap();

    assert_eq!(scaler.status().await.unwrap(), ReplicaStatus::all_ready(0));
    scaler_conformance(&scaler, &[2, 2, 0, 1], |_| async {}).await;
    assert_eq!(std::fs::read_to_string(&state_file).unwrap().trim(), "1");
}

#[tokio::test]
async fn a_status_playbook_that_reports_no_count_is_a_bad_result() {
    let Some(ansible) = ansible() else { return };
    let status = StatusSource::Playbook(StatusPlaybook::new(playbooks().join("quiet_status.yml")));
    let scaler = ansible
        .builder("quiet", playbooks().join("file_scale.yml"), status)
        .build()
        .unwrap();
    let err = scaler.status().await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::BadResult);
    assert!(
        err.to_string()
            .contains("no autoscale_replicas was reported"),
        "{err}"
    );
    // Without a status, nothing is scaled.
    assert_eq!(
        scaler.scale(2).await.unwrap_err().kind(),
        FailureKind::BadResult
    );
}
