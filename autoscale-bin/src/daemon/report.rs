//! What `/status` answers, as types: the daemon builds a [`StatusReport`] and serializes it, and
//! `autoscale status` reads it back into the same types to print its table. One definition for both ends, so
//! a field cannot be written under one name and read under another.
//!
//! Every field a client may miss has a default, so an older or newer daemon's answer still reads.

use std::collections::BTreeMap;

use autoscale_core::policy::Forecast;
use serde::{Deserialize, Serialize};

use crate::daemon::history::Entry;

/// The whole of `/status`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusReport {
    /// One per service, by name.
    pub services: Vec<ServiceReport>,
    /// The daemon's own conditions (`StatePersisted`).
    pub conditions: Vec<DaemonCondition>,
    /// Who leads, when several daemons share the services (`[daemon] ha`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leadership: Option<LeadershipReport>,
    /// One per `[[discover]]` section, in file order: what it found on its endpoint and what it skipped.
    pub discovery: Vec<DiscoveryReport>,
}

/// The election of one daemon among several (`[daemon] ha`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LeadershipReport {
    /// This daemon's identity in the lease (host name and process id).
    pub identity: String,
    /// Whether this daemon leads, and so scales; the others evaluate in dry run.
    pub leader: bool,
    /// Who holds the lease, as far as this daemon knows.
    pub holder: Option<String>,
    /// How many times this daemon started or stopped leading.
    pub changes: u64,
}

/// What one `[[discover]]` section found.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscoveryReport {
    /// `swarm` or `compose`.
    pub kind: String,
    /// The Docker endpoint: `docker_host`, `context NAME`, or `default`.
    pub endpoint: String,
    /// The labels that opt a service in.
    pub selector: String,
    /// How often the endpoint is listed, in seconds.
    pub resync_s: f64,
    /// When it was last listed successfully (RFC 3339).
    pub last_resync: Option<String>,
    /// Why the last listing failed, when it did; the services found before keep running.
    pub last_error: Option<String>,
    /// The services it added, by name.
    pub found: Vec<String>,
    /// The labelled services it did not add, with why.
    pub skipped: Vec<SkippedReport>,
}

/// A labelled service discovery did not add.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SkippedReport {
    /// The name it would have had.
    pub service: String,
    /// The Swarm service ID, or `project/service`.
    pub id: String,
    /// Why: the bad label and what is wrong with it, or the name it clashes with.
    pub reason: String,
}

/// A condition of the daemon as a whole.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonCondition {
    /// The condition's name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it holds.
    pub status: bool,
    /// What it means now.
    pub message: String,
    /// The services it is failing for, with why.
    pub failing: BTreeMap<String, String>,
}

/// What the daemon knows about one service: the lines of `kubectl describe hpa`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceReport {
    /// The service's name.
    pub service: String,
    /// The configured bounds.
    pub min_replicas: u32,
    /// See `min_replicas`.
    pub max_replicas: u32,
    /// The replicas running, as last read.
    pub current: Option<u32>,
    /// The replicas ready, as last read.
    pub ready: Option<u32>,
    /// The count last decided.
    pub desired: Option<u32>,
    /// Whether decisions are only logged.
    pub dry_run: bool,
    /// The evaluation interval, in seconds.
    pub interval_s: f64,
    /// What a zero count set outside autoscale does: `pause` or `restore`.
    pub on_zero_outside: String,
    /// How long until each direction's cooldown ends, from now.
    pub cooldown_remaining_s: CooldownRemaining,
    /// The pause in force, if any.
    pub paused: Option<PauseReport>,
    /// Each check: its latest value against its target or thresholds.
    pub checks: Vec<CheckReport>,
    /// Conditions in the style of Kubernetes' HPA: AbleToScale, ScalingActive, ScalingLimited, Paused,
    /// Fallback, InCooldown.
    pub conditions: Vec<Condition>,
    /// The last error the loop met (a status read, a query, a scale call), whenever it was.
    pub last_error: Option<ErrorReport>,
    /// The last round, as it was evaluated.
    pub last_evaluation: Option<Evaluation>,
    /// The scale backoff in force, after repeated scale failures.
    pub scale_backoff: Option<BackoffReport>,
    /// Why the service keeps the daemon from being ready, one line each.
    pub not_ready: Vec<String>,
    /// The latest history lines (scaling actions, blocked actions, changes outside, pauses), oldest first.
    pub history: Vec<Entry>,
}

/// The remaining cooldowns, in seconds (0 when none runs).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CooldownRemaining {
    /// Before the next scale-up.
    pub up: f64,
    /// Before the next scale-down.
    pub down: f64,
    /// The one that blocked the last decision, from now: what the table's COOLDOWN shows. `None` when the
    /// last decision was not blocked by a cooldown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocking: Option<f64>,
}

/// A pause in force.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PauseReport {
    /// `all`, `up` or `down`.
    pub directions: String,
    /// `config` (the `paused` key), `operator` (`autoscale pause`) or `zero_outside` (taken to 0 replicas
    /// outside autoscale).
    pub by: String,
    /// Since when (RFC 3339), for a pause set at run time.
    pub since: Option<String>,
}

/// One check, as configured and as last read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckReport {
    /// The check's name.
    pub name: String,
    /// `target`, `threshold` or `predictive`.
    pub policy: String,
    /// The target value (target and predictive policies).
    pub target: Option<f64>,
    /// `replica` or `total` (target and predictive policies).
    pub per: Option<String>,
    /// The scale-up threshold (threshold policy).
    pub scale_up_above: Option<f64>,
    /// The scale-down threshold (threshold policy).
    pub scale_down_below: Option<f64>,
    /// The latest value, when the query succeeded.
    pub value: Option<f64>,
    /// The latest failure: its kind and message (the URL without credentials, the query, what came back).
    pub error: Option<String>,
    /// What this check alone recommended.
    pub recommendation: Option<u32>,
    /// The forecast the decision was made from, when this check's predictive policy won.
    pub forecast: Option<Forecast>,
}

/// A condition of one service, as `kubectl describe hpa` shows them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Condition {
    /// `AbleToScale`, `ScalingActive`, `ScalingLimited`, `Paused`, `Fallback` or `InCooldown`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it holds.
    pub status: bool,
    /// A CamelCase word for why.
    pub reason: String,
    /// A sentence for a person.
    pub message: String,
}

/// The last error of a service's loop.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorReport {
    /// When (RFC 3339).
    pub at: String,
    /// What failed: `status read`, `check NAME` or `scale`.
    pub during: String,
    /// The failure's kind (`unavailable`, `timeout`, ...).
    pub kind: String,
    /// The message: what was attempted, against what, and what came back. Never a secret.
    pub message: String,
}

/// The last round.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Evaluation {
    /// When (RFC 3339).
    pub at: String,
    /// The replicas running, as read.
    pub current: Option<u32>,
    /// The replicas ready, as read.
    pub ready: Option<u32>,
    /// The count decided.
    pub desired: Option<u32>,
    /// The reason's token.
    pub token: Option<String>,
    /// The reason, as logged (`token: detail`).
    pub reason: Option<String>,
    /// The winning check's forecast, when its policy forecasts.
    pub forecast: Option<Forecast>,
    /// Why the status read failed, if it did.
    pub status_error: Option<String>,
    /// Each check's reading.
    pub checks: Vec<EvaluatedCheck>,
    /// What happened to the decision: `not_needed`, `dry_run`, `scaled`, `unchanged`, `failed` or
    /// `backing_off`.
    pub scale: String,
    /// The same, in words: "scaled 2 -> 4", "blocked by cooldown", "no change needed", ...
    pub happened: String,
    /// How long the round took.
    pub duration_ms: f64,
}

/// One check's reading in the last round.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EvaluatedCheck {
    /// The check's name.
    pub name: String,
    /// The value, when the query succeeded.
    pub value: Option<f64>,
    /// The failure's kind, when it failed.
    pub error: Option<String>,
    /// The failure's message, when it failed.
    pub message: Option<String>,
    /// What this check alone recommended.
    pub recommendation: Option<u32>,
}

/// The scale backoff in force.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BackoffReport {
    /// Scale calls that failed in a row.
    pub consecutive_failures: u32,
    /// When the next scale call may be made (RFC 3339).
    pub next_retry: String,
}

impl ServiceReport {
    /// The condition of this type, if the report has it.
    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }
}

/// What the answer to `POST /pause/SERVICE` and `POST /resume/SERVICE` says.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PauseAnswer {
    /// The service.
    pub service: String,
    /// The pause in force now, if any (a configured one included).
    pub paused: Option<PauseReport>,
    /// A sentence for a person.
    pub message: String,
}
