//! The engine's persistent, per-service memory.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::{Replicas, Timestamp};

/// One recorded recommendation, for the stabilization windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    /// When it was made.
    pub at: Timestamp,
    /// The recommended count (after activation, before stabilization).
    pub replicas: Replicas,
}

/// One applied scaling action, for the rate rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleEvent {
    /// When it was applied.
    pub at: Timestamp,
    /// `new - old`: positive for a scale-up, negative for a scale-down.
    pub change: i64,
}

/// Everything the engine remembers about one service between evaluations.
///
/// It is plain data, serde-serializable, so the daemon persists it and a restart keeps cooldowns,
/// stabilization and rate limits. The engine takes it by value and returns the updated one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineState {
    /// Recent recommendations, oldest first, pruned to the longest stabilization window.
    pub recommendations: VecDeque<Recommendation>,
    /// Recent scale events, oldest first, pruned to the longest rule period.
    pub scale_events: VecDeque<ScaleEvent>,
    /// When the last scaling action was applied (by the engine's caller or found done outside).
    pub last_scale_at: Option<Timestamp>,
    /// Evaluations in a row in which every check failed.
    pub consecutive_failures: u32,
    /// Since when every check has been at or below its activation threshold (services with `min = 0`).
    pub idle_since: Option<Timestamp>,
    /// The count the service had after the last evaluation or scaling action, to spot changes made outside.
    pub last_known_replicas: Option<Replicas>,
}

impl EngineState {
    /// Record a scaling action from `from` to `to` applied at `at`. A no-op records nothing: it starts no
    /// cooldown.
    pub fn record_scale(&mut self, at: Timestamp, from: Replicas, to: Replicas) {
        self.last_known_replicas = Some(to);
        if from == to {
            return;
        }
        self.scale_events.push_back(ScaleEvent {
            at,
            change: i64::from(to) - i64::from(from),
        });
        self.last_scale_at = Some(at);
    }

    /// Compare a freshly read count with the last known one. If someone scaled the service outside autoscale,
    /// record that as a scale event (so cooldowns and rate rules honour it) and return the old count.
    pub fn observe_replicas(&mut self, at: Timestamp, current: Replicas) -> Option<Replicas> {
        match self.last_known_replicas {
            Some(known) if known != current => {
                self.record_scale(at, known, current);
                Some(known)
            }
            _ => {
                self.last_known_replicas = Some(current);
                None
            }
        }
    }

    /// Replicas added (`up`) or removed (`down`) by events strictly newer than `cutoff`.
    pub(crate) fn changes_since(&self, cutoff: Timestamp) -> (i64, i64) {
        let mut added = 0;
        let mut removed = 0;
        // No early exit on order: a wall clock that stepped back must not hide events.
        for event in self.scale_events.iter().filter(|e| e.at > cutoff) {
            if event.change > 0 {
                added += event.change;
            } else {
                removed -= event.change;
            }
        }
        (added, removed)
    }
}
