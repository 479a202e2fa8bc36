//! An Ansible playbook [`Scaler`](autoscale_core::Scaler) for autoscale: scale anything a playbook can reach
//! (compose on remote hosts, VMs, cloud groups).
//!
//! [`AnsibleScaler`] runs `ansible-playbook` as an argument vector, never through a shell, with the new count
//! in a private extra-vars file (`service`, `replicas`, `previous_replicas` and the configured extra vars). It
//! reads the outcome from a JSON stdout callback shipped in this crate, so a failure names the host, the task
//! and the module's message, and an unreachable host is told apart from a failed task. A run that outlives
//! its timeout is killed with its whole process group. At most one scale run per service goes on at a time.
//!
//! Ansible has no status call: the current count comes from a [`StatusSource`], either another scaler's
//! status read (a Docker Compose or Swarm scaler) or a status playbook that reports
//! [`autoscale_replicas`](REPLICAS_VAR) with `set_stats` or a debug variable.
//!
//! ```
//! use std::time::Duration;
//! use autoscale_ansible::{AnsibleScaler, StatusPlaybook, StatusSource};
//!
//! let scaler = AnsibleScaler::builder(
//!     "webapp",
//!     "examples/ansible/scale.yml",
//!     StatusSource::Playbook(StatusPlaybook::new("examples/ansible/status.yml")),
//! )
//! .inventory("examples/ansible/inventory.ini")
//! .extra_var("compose_project", "prometheus-autoscale-sim")
//! .extra_var("compose_file", "/srv/docker-compose.yml")
//! .check_mode(true)
//! .timeout(Duration::from_secs(60))
//! .build()?;
//!
//! assert_eq!(
//!     scaler.command_preview(3),
//!     "ansible-playbook --inventory=examples/ansible/inventory.ini --extra-vars=@EXTRA_VARS.json \
//!      --check -- examples/ansible/scale.yml"
//! );
//!
//! // Names end up in commands on remote hosts: anything but a plain name is refused up front.
//! let refused = AnsibleScaler::builder("web; rm -rf /", "scale.yml", StatusSource::Playbook(
//!     StatusPlaybook::new("status.yml"),
//! ))
//! .build();
//! assert!(refused.is_err());
//! # Ok::<(), autoscale_ansible::Error>(())
//! ```
//!
//! Through the [`Scaler`](autoscale_core::Scaler) trait, `scaler.scale(3).await` reads the status, runs
//! nothing when the service already has 3 replicas, and otherwise runs the playbook.
#![warn(missing_docs)]

mod callback;
mod config;
mod error;
mod runner;
mod scaler;
mod settings;

pub use callback::{HostStats, PlaybookReport, READY_VAR, REPLICAS_VAR};
pub use config::{
    AnsibleScalerBuilder, DEFAULT_PROGRAM, DEFAULT_TIMEOUT, Program, RESERVED_VARS, StatusPlaybook,
    StatusSource,
};
pub use error::{BACKEND, Error, HostFailure};
pub use scaler::AnsibleScaler;
pub use settings::{AnsibleSettings, StatusSettings};
