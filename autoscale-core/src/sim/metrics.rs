//! The elasticity metrics of `docs/simulation.md` (SPEC Research Group; Herbst et al., BUNGEE), accumulated
//! tick by tick so a simulation never has to keep its rows.

use serde::{Deserialize, Serialize};

use crate::Replicas;

/// What a simulation measured. Field names and meanings are the JSON keys of `docs/simulation.md`.
///
/// With `K` ticks of `dt` seconds, `T = K * dt`; `d` is demand, `s` ready supply after each tick's decision, `R`
/// the requested count after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `K`, the number of ticks.
    pub ticks: u64,
    /// `dt`, the evaluation interval in seconds.
    pub interval_s: f64,
    /// Under-provisioning accuracy, %: `100/T * sum(max(d-s, 0) / max(d, 1) * dt)`. At most 100.
    pub theta_u: f64,
    /// Over-provisioning accuracy, %: `100/T * sum(max(s-d, 0) / max(d, 1) * dt)`. Not bounded by 100: ten
    /// replicas for a demand of one is 900 %.
    pub theta_o: f64,
    /// Under-provisioning timeshare, %: `100/T * sum([d > s] * dt)`.
    pub tau_u: f64,
    /// Over-provisioning timeshare, %: `100/T * sum([s > d] * dt)`.
    pub tau_o: f64,
    /// Instability, %: the share of tick-to-tick steps in which supply and demand did not move the same way,
    /// `100/(T-dt) * sum_{k>=1} min(|sgn(s_k - s_{k-1}) - sgn(d_k - d_{k-1})|, 1) * dt`. 0 with one tick.
    pub instability: f64,
    /// `(E_s - E_d) / (T/60)`, with `E_x = sum_{k>=1} |x_k - x_{k-1}|`: supply moves per minute beyond what
    /// demand required. Negative when supply moved less than demand.
    pub jitter_per_min: f64,
    /// `sum(R_k * dt)`: what the run cost, starting replicas included.
    pub replica_seconds: f64,
    /// The number of ticks at which `R` changed.
    pub scale_actions: u64,
    /// `sum([load_k > s_k * capacity] * dt)`: seconds in which the ready replicas could not serve the load.
    pub slo_violation_s: f64,
    /// The largest `R` after any tick's decision.
    pub max_replicas_used: Replicas,
}

/// The running sums behind a [`Summary`].
///
/// Every tick has the same weight `dt`, so it factors out of each sum: `100/T * sum(x_k * dt)` is
/// `100/K * sum(x_k)`. Counting ticks in integers rather than adding up `dt` keeps timeshares exact and
/// bounded (`100 * K / K` is exactly 100 in f64), and the sum of terms that are each at most 1 can never round
/// above `K`, because f64 addition is monotonic.
#[derive(Debug, Clone)]
pub(crate) struct Accumulator {
    dt_ms: i64,
    ticks: u64,
    under: f64,
    over: f64,
    under_ticks: u64,
    over_ticks: u64,
    unstable_ticks: u64,
    supply_moves: u64,
    demand_moves: u64,
    replica_ticks: u128,
    scale_actions: u64,
    violation_ticks: u64,
    max_replicas_used: Replicas,
    previous: Option<(u64, u64)>,
}

/// One tick, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// `d_k`.
    pub demand: u64,
    /// `s_k`: ready after the decision.
    pub supply: Replicas,
    /// `R_k`: requested after the decision.
    pub requested: Replicas,
    /// Whether `R` changed at this tick.
    pub changed: bool,
    /// `load_k > s_k * capacity`.
    pub violated: bool,
}

impl Accumulator {
    pub(crate) fn new(dt_ms: i64) -> Self {
        Accumulator {
            dt_ms,
            ticks: 0,
            under: 0.0,
            over: 0.0,
            under_ticks: 0,
            over_ticks: 0,
            unstable_ticks: 0,
            supply_moves: 0,
            demand_moves: 0,
            replica_ticks: 0,
            scale_actions: 0,
            violation_ticks: 0,
            max_replicas_used: 0,
            previous: None,
        }
    }

    pub(crate) fn push(&mut self, sample: Sample) {
        let d = sample.demand;
        let s = u64::from(sample.supply);
        let per_demand = d.max(1) as f64;
        if d > s {
            self.under += (d - s) as f64 / per_demand;
            self.under_ticks += 1;
        } else if s > d {
            self.over += (s - d) as f64 / per_demand;
            self.over_ticks += 1;
        }
        if let Some((s0, d0)) = self.previous {
            if s.cmp(&s0) != d.cmp(&d0) {
                self.unstable_ticks += 1;
            }
            self.supply_moves += s.abs_diff(s0);
            self.demand_moves += d.abs_diff(d0);
        }
        self.previous = Some((s, d));
        self.replica_ticks += u128::from(sample.requested);
        self.scale_actions += u64::from(sample.changed);
        self.violation_ticks += u64::from(sample.violated);
        self.max_replicas_used = self.max_replicas_used.max(sample.requested);
        self.ticks += 1;
    }

    pub(crate) fn finish(&self) -> Summary {
        let k = self.ticks as f64;
        let dt = self.dt_ms as f64 / 1000.0;
        let percent = |x: f64| if self.ticks == 0 { 0.0 } else { 100.0 * x / k };
        let instability = if self.ticks <= 1 {
            0.0
        } else {
            100.0 * self.unstable_ticks as f64 / (k - 1.0)
        };
        let total_s = k * dt;
        let jitter_per_min = if self.ticks == 0 {
            0.0
        } else {
            let net = i128::from(self.supply_moves) - i128::from(self.demand_moves);
            net as f64 * 60.0 / total_s
        };
        Summary {
            ticks: self.ticks,
            interval_s: dt,
            theta_u: percent(self.under),
            theta_o: percent(self.over),
            tau_u: percent(self.under_ticks as f64),
            tau_o: percent(self.over_ticks as f64),
            instability,
            jitter_per_min,
            replica_seconds: self.replica_ticks as f64 * dt,
            scale_actions: self.scale_actions,
            slo_violation_s: self.violation_ticks as f64 * dt,
            max_replicas_used: self.max_replicas_used,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dt_ms: i64, ticks: &[(u64, Replicas, Replicas, bool)]) -> Summary {
        let mut acc = Accumulator::new(dt_ms);
        let mut previous_r = None;
        for &(demand, supply, requested, violated) in ticks {
            acc.push(Sample {
                demand,
                supply,
                requested,
                changed: previous_r.is_some_and(|r| r != requested),
                violated,
            });
            previous_r = Some(requested);
        }
        acc.finish()
    }

    #[test]
    fn one_tick_has_no_instability() {
        let s = run(15_000, &[(3, 1, 2, true)]);
        // theta_u = 100/15 * (3-1)/3 * 15 = 66.67 %; tau_u = 100 %.
        assert!((s.theta_u - 200.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.tau_u, 100.0);
        assert_eq!(s.instability, 0.0);
        assert_eq!(s.jitter_per_min, 0.0);
        assert_eq!(s.replica_seconds, 30.0);
        assert_eq!(s.slo_violation_s, 15.0);
    }

    #[test]
    fn hand_computed_sums() {
        // dt = 30 s, K = 6, T = 180 s.
        //   k:  0  1  2  3  4  5
        //   d:  2  4  4  1  0  0
        //   s:  2  2  4  4  1  0
        //   R:  2  4  4  1  0  0     (scale actions at k = 1, 3, 4: three)
        let s = run(
            30_000,
            &[
                (2, 2, 2, false),
                (4, 2, 4, true),
                (4, 4, 4, false),
                (1, 4, 1, false),
                (0, 1, 0, false),
                (0, 0, 0, false),
            ],
        );
        assert_eq!(s.ticks, 6);
        assert_eq!(s.interval_s, 30.0);
        // Under: only k=1, (4-2)/4 = 0.5. theta_u = 100/180 * 0.5 * 30 = 8.333 %.
        assert!((s.theta_u - 50.0 / 6.0).abs() < 1e-12);
        // Over: k=3 (4-1)/1 = 3, k=4 (1-0)/max(0,1) = 1; sum 4. theta_o = 100/180 * 4 * 30 = 66.667 %.
        assert!((s.theta_o - 400.0 / 6.0).abs() < 1e-12);
        // tau_u: one tick of six = 16.667 %; tau_o: two ticks = 33.333 %.
        assert!((s.tau_u - 100.0 / 6.0).abs() < 1e-12);
        assert!((s.tau_o - 200.0 / 6.0).abs() < 1e-12);
        // Steps k=1..5: sgn ds = 0,+,0,-,-; sgn dd = +,0,-,-,0. They differ at k=1,2,3,5: four of five.
        // instability = 100/(180-30) * 4 * 30 = 80 %.
        assert_eq!(s.instability, 80.0);
        // E_s = 0+2+0+3+1 = 6; E_d = 2+0+3+1+0 = 6. jitter = 0 / 3 min = 0.
        assert_eq!(s.jitter_per_min, 0.0);
        // replica_seconds = (2+4+4+1+0+0) * 30 = 330.
        assert_eq!(s.replica_seconds, 330.0);
        assert_eq!(s.scale_actions, 3);
        assert_eq!(s.slo_violation_s, 30.0);
        assert_eq!(s.max_replicas_used, 4);
    }

    #[test]
    fn jitter_counts_extra_supply_moves_per_minute() {
        // dt = 10 s, K = 6, T = 1 min. Demand flat at 2; supply 2,3,2,3,2,2: E_s = 4, E_d = 0.
        let s = run(
            10_000,
            &[
                (2, 2, 2, false),
                (2, 3, 3, false),
                (2, 2, 2, false),
                (2, 3, 3, false),
                (2, 2, 2, false),
                (2, 2, 2, false),
            ],
        );
        assert_eq!(s.jitter_per_min, 4.0);
        // Supply moved while demand did not at k = 1..4: 4 of 5 steps.
        assert_eq!(s.instability, 80.0);
    }
}
