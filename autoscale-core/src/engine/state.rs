//! The engine's persistent, per-service memory.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::engine::{CheckHistory, Pause};
use crate::{ReplicaChange, ReplicaStatus, Replicas, Timestamp};

/// Who paused a service at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PausedBy {
    /// An operator, through the running loop ([`ServiceLoop::pause`](crate::controller::ServiceLoop::pause)):
    /// it lasts until they resume it.
    Operator,
    /// Someone outside autoscale took the service to 0 replicas, which the loop takes as "autoscaling off"
    /// (as Kubernetes' HPA does): it lasts until the service is brought back above 0 outside, or resumed.
    ZeroOutside,
}

impl PausedBy {
    /// `operator` or `zero_outside`.
    pub const fn as_str(self) -> &'static str {
        match self {
            PausedBy::Operator => "operator",
            PausedBy::ZeroOutside => "zero_outside",
        }
    }
}

/// A pause set at run time. While it is in force it replaces the configured pause
/// ([`EngineConfig::pause`](crate::EngineConfig::pause)) in pipeline step 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimePause {
    /// The directions it blocks.
    pub directions: Pause,
    /// Who set it.
    pub by: PausedBy,
    /// Since when.
    pub since: Timestamp,
}

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
///
/// Fields a newer version added are ignored when read (the reader can tell which with
/// [`EngineState::FIELDS`]), so a downgrade keeps what this version knows; missing fields take their default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineState {
    /// The schema version that wrote the state ([`EngineState::VERSION`] for a state of this version).
    pub version: u32,
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
    /// Since when the recommendation has been far enough below the current count for the scale-down
    /// dead-band. Any scaling action restarts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub below_since: Option<Timestamp>,
    /// Each check's history, in the order of the configuration's checks (memoryless policies leave theirs
    /// empty).
    pub checks: Vec<CheckHistory>,
    /// A pause set at run time, which replaces the configured one until it is lifted. Kept in the state so
    /// that it survives a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause: Option<RuntimePause>,
    /// The status of the last evaluation, to tell replicas lost from a steady count from replicas starting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<ReplicaStatus>,
    /// Replicas that were ready and dropped out while the count held (their node was lost, and the
    /// orchestrator is replacing them), and are not ready again yet. While there are any, no scale-down.
    #[serde(skip_serializing_if = "is_zero")]
    pub lost_replicas: Replicas,
    /// The last scaling action, kept after [`scale_events`](Self::scale_events) has pruned it, to recognise
    /// it when the target reports it again with a later time (see
    /// [`merge_target_change`](Self::merge_target_change)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_change: Option<ScaleEvent>,
}

fn is_zero(n: &Replicas) -> bool {
    *n == 0
}

impl Default for EngineState {
    fn default() -> Self {
        EngineState {
            version: Self::VERSION,
            recommendations: VecDeque::new(),
            scale_events: VecDeque::new(),
            last_scale_at: None,
            consecutive_failures: 0,
            idle_since: None,
            last_known_replicas: None,
            below_since: None,
            checks: Vec::new(),
            pause: None,
            last_status: None,
            lost_replicas: 0,
            last_change: None,
        }
    }
}

impl EngineState {
    /// The schema version this code writes. A state without a `version` field (written before it existed)
    /// reads as this version: the fields were the same.
    pub const VERSION: u32 = 1;

    /// The top-level field names of the serialized form, for a reader that reports unknown ones.
    pub const FIELDS: &'static [&'static str] = &[
        "version",
        "recommendations",
        "scale_events",
        "last_scale_at",
        "consecutive_failures",
        "idle_since",
        "last_known_replicas",
        "below_since",
        "checks",
        "pause",
        "last_status",
        "lost_replicas",
        "last_change",
    ];

    /// Bring every time later than `now` back to `now`, and return the latest such time, if there was one.
    ///
    /// A time in the future comes from a wall clock that stepped back or a state copied from another host.
    /// Left alone it would hold a cooldown (and keep rate-rule events and stabilization entries) until the
    /// clock caught up, which can be forever; counted as `now`, the cooldown runs from now.
    pub fn clamp_future(&mut self, now: Timestamp) -> Option<Timestamp> {
        let mut latest: Option<Timestamp> = None;
        let mut clamp = |t: &mut Timestamp| {
            if *t > now {
                latest = Some(latest.map_or(*t, |l| l.max(*t)));
                *t = now;
            }
        };
        if let Some(t) = &mut self.last_scale_at {
            clamp(t);
        }
        if let Some(t) = &mut self.idle_since {
            clamp(t);
        }
        if let Some(t) = &mut self.below_since {
            clamp(t);
        }
        if let Some(p) = &mut self.pause {
            clamp(&mut p.since);
        }
        for r in &mut self.recommendations {
            clamp(&mut r.at);
        }
        for e in self.scale_events.iter_mut().chain(&mut self.last_change) {
            clamp(&mut e.at);
        }
        for check in &mut self.checks {
            for ewma in [&mut check.short_term, &mut check.last_season]
                .into_iter()
                .flatten()
            {
                clamp(&mut ewma.at);
            }
        }
        latest
    }

    /// Record a scaling action from `from` to `to` applied at `at`. A no-op records nothing: it starts no
    /// cooldown.
    pub fn record_scale(&mut self, at: Timestamp, from: Replicas, to: Replicas) {
        self.last_known_replicas = Some(to);
        if from == to {
            return;
        }
        let event = ScaleEvent {
            at,
            change: i64::from(to) - i64::from(from),
        };
        self.scale_events.push_back(event);
        self.last_change = Some(event);
        self.last_scale_at = Some(at);
        self.below_since = None;
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

    /// Take in the last replica change the target recorded ([`Scaler::last_change`](crate::Scaler::last_change)),
    /// as a scale event at its time, unless the state already knows it: a scaling action recorded at or
    /// after it, a scale event of the same size within `tolerance` of it (autoscale's own action, which
    /// the target stamped a little later than the round that made it), or a [last change](Self::last_change) of
    /// the same size before it that left the count the state knows at the change's new count (however long
    /// ago: the rate rules may have pruned its scale event). The target's time is
    /// when it last touched the service, which is no earlier than the change: Swarm stamps a service again
    /// when its Raft leader changes, long after the replicas did, and a daemon that saw the change itself
    /// keeps its own, truer time. A time after `now` (the target's clock ahead of this one) counts as `now`.
    /// Returns whether it was recorded.
    pub fn merge_target_change(
        &mut self,
        change: ReplicaChange,
        tolerance: std::time::Duration,
        now: Timestamp,
    ) -> bool {
        let at = change.at.min(now);
        let size = i64::from(change.to) - i64::from(change.from);
        let known = self.last_scale_at.is_some_and(|t| t >= at)
            || self.scale_events.iter().any(|e| {
                e.change == size
                    && e.at.saturating_since(at).max(at.saturating_since(e.at)) <= tolerance
            })
            || (self.last_known_replicas == Some(change.to)
                && self
                    .last_change
                    .is_some_and(|e| e.change == size && e.at <= at));
        if size == 0 || known {
            return false;
        }
        self.record_scale(at, change.from, change.to);
        true
    }

    /// Bring [`lost_replicas`](Self::lost_replicas) up to date with a new status: a fall of `ready` while
    /// the count held adds to it; it never exceeds the replicas not ready, so it shrinks as replacements
    /// become ready. Replicas that are not ready because they are starting (after a count change) are not
    /// lost.
    pub fn observe_ready(&mut self, status: ReplicaStatus) {
        let ready = status.ready.min(status.current);
        let fell = match self.last_status {
            Some(last) if last.current == status.current => last.ready.saturating_sub(ready),
            _ => 0,
        };
        self.lost_replicas = self
            .lost_replicas
            .saturating_add(fell)
            .min(status.current - ready);
        self.last_status = Some(ReplicaStatus {
            current: status.current,
            ready,
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_ignored_and_a_missing_version_is_this_one() {
        let state: EngineState = serde_json::from_str(
            r#"{"last_known_replicas": 3, "added_later": {"x": 1}, "scale_events": [{"at": 5, "change": 1, "why": "y"}]}"#,
        )
        .unwrap();
        assert_eq!(state.version, EngineState::VERSION);
        assert_eq!(state.last_known_replicas, Some(3));
        assert_eq!(state.scale_events.len(), 1);
    }

    #[test]
    fn fields_lists_every_serialized_field() {
        let mut history = crate::engine::CheckHistory::new("c");
        history.short_term = Some(crate::engine::Ewma::start(Timestamp::EPOCH, 1.0));
        let state = EngineState {
            below_since: Some(Timestamp::EPOCH),
            last_status: Some(ReplicaStatus::all_ready(1)),
            lost_replicas: 1,
            last_change: Some(ScaleEvent {
                at: Timestamp::EPOCH,
                change: 1,
            }),
            checks: vec![history],
            pause: Some(RuntimePause {
                directions: Pause::All,
                by: PausedBy::Operator,
                since: Timestamp::EPOCH,
            }),
            ..EngineState::default()
        };
        let value = serde_json::to_value(state).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut fields = EngineState::FIELDS.to_vec();
        keys.sort_unstable();
        fields.sort_unstable();
        assert_eq!(keys, fields);
    }

    #[test]
    fn replicas_lost_from_a_steady_count_are_told_from_replicas_starting() {
        let status = |current, ready| ReplicaStatus { current, ready };
        let mut state = EngineState::default();
        state.observe_ready(status(6, 4));
        assert_eq!(state.lost_replicas, 0, "first seen: starting, not lost");
        state.observe_ready(status(6, 6));
        state.observe_ready(status(6, 4));
        assert_eq!(state.lost_replicas, 2, "ready fell with the count held");
        state.observe_ready(status(6, 3));
        assert_eq!(state.lost_replicas, 3);
        state.observe_ready(status(6, 5));
        assert_eq!(state.lost_replicas, 1, "replacements ready");
        state.observe_ready(status(8, 5));
        assert_eq!(
            state.lost_replicas, 1,
            "a new count keeps the lost, adds none"
        );
        state.observe_ready(status(8, 8));
        assert_eq!(state.lost_replicas, 0);
        state.observe_ready(status(4, 2));
        assert_eq!(state.lost_replicas, 0, "a count change: starting, not lost");
        state.observe_ready(status(4, 9));
        assert_eq!(state.last_status, Some(status(4, 4)), "ready above current");
    }

    #[test]
    fn a_change_the_target_recorded_counts_unless_the_state_knows_it() {
        let secs = std::time::Duration::from_secs;
        let now = Timestamp::from_secs(1_000);
        let change = |at, from, to| ReplicaChange {
            at: Timestamp::from_secs(at),
            from,
            to,
        };
        // An empty state: recorded at the target's time.
        let mut state = EngineState::default();
        assert!(state.merge_target_change(change(900, 2, 5), secs(30), now));
        assert_eq!(state.last_scale_at, Some(Timestamp::from_secs(900)));
        assert_eq!(state.last_known_replicas, Some(5));
        assert_eq!(state.scale_events.len(), 1);
        // The same again, or anything older than the last action: known.
        assert!(!state.merge_target_change(change(900, 2, 5), secs(30), now));
        assert!(!state.merge_target_change(change(800, 1, 2), secs(30), now));
        // Autoscale's own action, stamped by the target a little after the round: known.
        let mut own = EngineState::default();
        own.record_scale(Timestamp::from_secs(950), 5, 7);
        assert!(!own.merge_target_change(change(951, 5, 7), secs(30), now));
        // Another change after it: recorded.
        assert!(own.merge_target_change(change(990, 7, 3), secs(30), now));
        assert_eq!(own.scale_events.len(), 2);
        // The change the state saw, stamped again by the target long after (Swarm touches a service when its
        // Raft leader changes): the state's own time stands.
        let mut seen = EngineState::default();
        seen.record_scale(Timestamp::from_secs(900), 2, 4);
        assert!(!seen.merge_target_change(change(960, 2, 4), secs(30), now));
        assert_eq!(seen.last_scale_at, Some(Timestamp::from_secs(900)));
        // Not the change the state saw last, nor the count it knows: recorded.
        assert!(seen.merge_target_change(change(970, 4, 6), secs(30), now));
        // The same after the rate rules pruned the state's event (a short rule period).
        let mut pruned = EngineState::default();
        pruned.record_scale(Timestamp::from_secs(900), 2, 4);
        pruned.scale_events.clear();
        assert!(!pruned.merge_target_change(change(960, 2, 4), secs(30), now));
        assert_eq!(pruned.last_scale_at, Some(Timestamp::from_secs(900)));
        let mut other = EngineState::default();
        other.record_scale(Timestamp::from_secs(900), 2, 4);
        other.last_known_replicas = Some(3);
        assert!(other.merge_target_change(change(960, 2, 4), secs(30), now));
        // No change of the count, or a time ahead of this clock.
        let mut state = EngineState::default();
        assert!(!state.merge_target_change(change(900, 4, 4), secs(30), now));
        assert!(state.merge_target_change(change(2_000, 4, 6), secs(30), now));
        assert_eq!(state.last_scale_at, Some(now));
    }

    #[test]
    fn times_in_the_future_count_as_now() {
        let now = Timestamp::from_secs(1_000);
        let mut state = EngineState::default();
        state.record_scale(Timestamp::from_secs(5_000), 1, 2);
        state.recommendations.push_back(Recommendation {
            at: Timestamp::from_secs(900),
            replicas: 2,
        });
        assert_eq!(state.clamp_future(now), Some(Timestamp::from_secs(5_000)));
        assert_eq!(state.last_scale_at, Some(now));
        assert_eq!(state.scale_events[0].at, now);
        assert_eq!(state.recommendations[0].at, Timestamp::from_secs(900));
        assert_eq!(state.clamp_future(now), None, "a second call finds nothing");
    }
}
