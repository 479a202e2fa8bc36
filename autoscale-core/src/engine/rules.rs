//! Pipeline steps 5 and 6: stabilization windows and rate rules, with horizontal.go's arithmetic.

use crate::engine::config::{RuleAmount, ScalingRules, Select};
use crate::engine::state::{EngineState, Recommendation};
use crate::{Replicas, Timestamp};

/// `stabilizeRecommendationWithBehaviors`: the up bound is the minimum, and the down bound the maximum, of the
/// recommendations strictly newer than each window's cut-off, both including `recommendation` itself. The
/// result is `current` raised to the up bound, then lowered to the down bound.
pub(crate) fn stabilize(
    history: &std::collections::VecDeque<Recommendation>,
    up: &ScalingRules,
    down: &ScalingRules,
    current: Replicas,
    recommendation: Replicas,
    now: Timestamp,
) -> Replicas {
    let up_cutoff = now - up.stabilization_window();
    let down_cutoff = now - down.stabilization_window();
    let mut up_bound = recommendation;
    let mut down_bound = recommendation;
    for rec in history {
        if rec.at > up_cutoff {
            up_bound = up_bound.min(rec.replicas);
        }
        if rec.at > down_cutoff {
            down_bound = down_bound.max(rec.replicas);
        }
    }
    let mut stabilized = current;
    if stabilized < up_bound {
        stabilized = up_bound;
    }
    if stabilized > down_bound {
        stabilized = down_bound;
    }
    stabilized
}

/// `calculateScaleUpLimitWithScalingRules`, then never below `current`.
pub(crate) fn scale_up_limit(
    state: &EngineState,
    rules: &ScalingRules,
    current: Replicas,
    now: Timestamp,
) -> i64 {
    let current = i64::from(current);
    let select = rules.select();
    if select == Select::Disabled {
        return current;
    }
    let limits = rules.rules().iter().map(|rule| {
        let (added, removed) = state.changes_since(now - rule.period());
        let period_start = current - added + removed;
        match rule.amount() {
            RuleAmount::Pods(pods) => period_start + i64::from(pods),
            // Rounded up, or a small count could never grow.
            RuleAmount::Percent(percent) => {
                (period_start as f64 * (1.0 + f64::from(percent) / 100.0)).ceil() as i64
            }
        }
    });
    let limit = match select {
        Select::Min => limits.min(),
        _ => limits.max(),
    };
    limit.unwrap_or(current).max(current)
}

/// `calculateScaleDownLimitWithBehaviors`, then never above `current`.
pub(crate) fn scale_down_limit(
    state: &EngineState,
    rules: &ScalingRules,
    current: Replicas,
    now: Timestamp,
) -> i64 {
    let current = i64::from(current);
    let select = rules.select();
    if select == Select::Disabled {
        return current;
    }
    let limits = rules.rules().iter().map(|rule| {
        let (added, removed) = state.changes_since(now - rule.period());
        let period_start = current - added + removed;
        match rule.amount() {
            RuleAmount::Pods(pods) => period_start - i64::from(pods),
            // Go's int32(float64) conversion truncates toward zero; so does `as`.
            RuleAmount::Percent(percent) => {
                (period_start as f64 * (1.0 - f64::from(percent) / 100.0)) as i64
            }
        }
    });
    // "max" is the biggest change, which for a scale-down is the smallest limit.
    let limit = match select {
        Select::Min => limits.max(),
        _ => limits.min(),
    };
    limit.unwrap_or(current).min(current)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use super::*;
    use crate::engine::config::Rule;

    fn rec(at: i64, replicas: Replicas) -> Recommendation {
        Recommendation {
            at: Timestamp::from_secs(at),
            replicas,
        }
    }

    fn rules(window: u64, select: Select, rules: Vec<Rule>) -> ScalingRules {
        ScalingRules::new(Duration::from_secs(window), select, rules).unwrap()
    }

    #[test]
    fn window_cutoff_is_strict() {
        let up = rules(
            0,
            Select::Max,
            vec![Rule::pods(4, Duration::from_secs(15)).unwrap()],
        );
        let down = rules(
            300,
            Select::Max,
            vec![Rule::pods(4, Duration::from_secs(15)).unwrap()],
        );
        let history: VecDeque<_> = [rec(0, 9), rec(1, 7)].into();
        // At t=300 the entry at 0 is exactly at the cut-off: not newer, so ignored.
        assert_eq!(
            stabilize(&history, &up, &down, 10, 3, Timestamp::from_secs(300)),
            7
        );
        assert_eq!(
            stabilize(&history, &up, &down, 10, 3, Timestamp::from_secs(299)),
            9
        );
    }

    #[test]
    fn scale_up_limit_counts_both_directions_in_the_period() {
        let up = rules(
            0,
            Select::Max,
            vec![
                Rule::pods(4, Duration::from_secs(15)).unwrap(),
                Rule::percent(100, Duration::from_secs(15)).unwrap(),
            ],
        );
        let mut state = EngineState::default();
        state.record_scale(Timestamp::from_secs(10), 2, 6);
        state.record_scale(Timestamp::from_secs(12), 6, 5);
        // period start = 5 - 4 + 1 = 2: max(2 + 4, ceil(2 * 2)) = 6
        assert_eq!(scale_up_limit(&state, &up, 5, Timestamp::from_secs(20)), 6);
        // At t=25 the event at 10 is exactly at the cut-off: ignored. start = 5 + 1 = 6: max(10, 12)
        assert_eq!(scale_up_limit(&state, &up, 5, Timestamp::from_secs(25)), 12);
    }

    #[test]
    fn scale_down_percent_truncates_and_select_min_is_the_smallest_change() {
        let down = rules(
            0,
            Select::Min,
            vec![
                Rule::percent(50, Duration::from_secs(60)).unwrap(),
                Rule::pods(1, Duration::from_secs(60)).unwrap(),
            ],
        );
        let state = EngineState::default();
        // trunc(5 * 0.5) = 2 and 5 - 1 = 4: the smallest change is 4.
        assert_eq!(
            scale_down_limit(&state, &down, 5, Timestamp::from_secs(0)),
            4
        );
        let max = rules(0, Select::Max, down.rules().to_vec());
        assert_eq!(
            scale_down_limit(&state, &max, 5, Timestamp::from_secs(0)),
            2
        );
        let disabled = rules(0, Select::Disabled, down.rules().to_vec());
        assert_eq!(
            scale_down_limit(&state, &disabled, 5, Timestamp::from_secs(0)),
            5
        );
    }
}
