//! The scores: each component in `[0, 1]`, higher is better, combined by the
//! policy's weights into a total in `[0, 1]`.
//!
//! | component | formula |
//! |---|---|
//! | allocation | `u` = mean over requested classes of `(used + requested) / capacity`; spread `1 - u`, binpack `u` |
//! | cost | cheapest feasible hourly cost / this one's (1 when free) |
//! | energy | `1 / PUE` (the DCiE); an unknown PUE counts as [`UNKNOWN_PUE`] |
//! | affinity | affinity: members here / most members anywhere; anti-affinity: 1 minus that; 1 when no member is placed |
//! | API health | `(1 - error rate) * L / (L + latency)`, `L` = [`LATENCY_REFERENCE_MS`]; unknown latency counts as `L` |
//!
//! A class without a tariff costs 0. Affinity only counts when the request
//! has a group, and it is a preference, not a filter: anti-affinity steers
//! away from foundations holding members but does not forbid them. Negative
//! or non-finite weights count as 0; when every weight is 0 the total is 0 and
//! the name decides.

use yunshu_core::model::{GroupPolicy, Strategy, Weights};

use crate::{fleet::Candidate, request::Prepared};

/// The PUE assumed for a foundation that declares none.
pub const UNKNOWN_PUE: f64 = 2.0;

/// The API latency, in milliseconds, that halves the API health score.
pub const LATENCY_REFERENCE_MS: f64 = 100.0;

/// How a feasible foundation scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Spread or bin-pack score.
    pub allocation: f64,
    /// Cost score.
    pub cost: f64,
    /// Energy score.
    pub energy: f64,
    /// Affinity score (1 when the request has no group).
    pub affinity: f64,
    /// API health score.
    pub api_health: f64,
    /// The weighted total.
    pub total: f64,
    /// Mean utilization of the requested classes after placement, in `[0, 1]`.
    pub utilization: f64,
    /// Hourly price of the request here, by the foundation's tariff.
    pub hourly_cost: f64,
    /// 1 for the chosen foundation, 2 for the runner-up, …
    pub rank: u32,
}

/// The allocation score for utilization-after-placement `u`.
pub fn allocation(strategy: Strategy, u: f64) -> f64 {
    let u = unit(u);
    match strategy {
        Strategy::Spread => 1.0 - u,
        Strategy::Binpack => u,
    }
}

/// The cost score of `hourly` when the cheapest feasible foundation costs `cheapest`.
pub fn cost(cheapest: f64, hourly: f64) -> f64 {
    if hourly > 0.0 {
        unit(cheapest / hourly)
    } else {
        1.0
    }
}

/// The energy score of a PUE.
pub fn energy(pue: Option<f64>) -> f64 {
    let pue = pue
        .filter(|p| p.is_finite() && *p > 0.0)
        .unwrap_or(UNKNOWN_PUE);
    1.0 / pue.max(1.0)
}

/// The API health score of an error rate and a latency.
pub fn api_health(error_rate: f64, latency_ms: Option<f64>) -> f64 {
    let ok = if error_rate.is_nan() {
        0.0
    } else {
        1.0 - unit(error_rate)
    };
    let latency = latency_ms
        .filter(|l| l.is_finite() && *l >= 0.0)
        .unwrap_or(LATENCY_REFERENCE_MS);
    ok * LATENCY_REFERENCE_MS / (LATENCY_REFERENCE_MS + latency)
}

/// The affinity score of a foundation holding `here` members when the
/// foundation with the most holds `most`.
pub fn affinity(policy: GroupPolicy, here: u32, most: u32) -> f64 {
    if most == 0 {
        return 1.0;
    }
    let share = unit(f64::from(here) / f64::from(most));
    match policy {
        GroupPolicy::Affinity => share,
        GroupPolicy::AntiAffinity => 1.0 - share,
    }
}

/// The policy's weights made safe to divide by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectiveWeights {
    /// Allocation weight.
    pub allocation: f64,
    /// Cost weight.
    pub cost: f64,
    /// Energy weight.
    pub energy: f64,
    /// Affinity weight (0 when the request has no group).
    pub affinity: f64,
    /// API health weight.
    pub api_health: f64,
    sum: f64,
}

impl EffectiveWeights {
    /// From the policy's weights, for a request with or without a group.
    pub fn new(w: &Weights, grouped: bool) -> Self {
        let clean = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
        let affinity = if grouped { clean(w.affinity) } else { 0.0 };
        let (a, c, e, h) = (
            clean(w.allocation),
            clean(w.cost),
            clean(w.energy),
            clean(w.api_health),
        );
        Self {
            allocation: a,
            cost: c,
            energy: e,
            affinity,
            api_health: h,
            sum: a + c + e + affinity + h,
        }
    }

    /// The weighted mean of the components of `s`.
    pub fn total(&self, s: &Scores) -> f64 {
        if self.sum <= 0.0 {
            return 0.0;
        }
        let weighted = self.allocation * s.allocation
            + self.cost * s.cost
            + self.energy * s.energy
            + self.affinity * s.affinity
            + self.api_health * s.api_health;
        unit(weighted / self.sum)
    }
}

/// Scores a feasible candidate, all but cost and total (which need every
/// feasible candidate's hourly cost).
#[inline]
pub(crate) fn partial(c: &Candidate, index: usize, strategy: Strategy, p: &Prepared) -> Scores {
    let (mut util, mut hourly) = (0.0, 0.0);
    for &(class, requested) in p.classes() {
        let inv = &c.inventory[class.index()];
        util += utilization(inv.used, requested, inv.capacity);
        #[allow(clippy::cast_precision_loss)]
        let amount = requested as f64;
        hourly += amount * c.tariff[class.index()];
    }
    #[allow(clippy::cast_precision_loss)]
    let n = p.classes().len().max(1) as f64;
    let utilization = util / n;
    Scores {
        allocation: allocation(strategy, utilization),
        cost: 1.0,
        energy: c.energy,
        affinity: p
            .group
            .map_or(1.0, |g| affinity(g, p.members_on(index), p.most_members)),
        api_health: c.api_health,
        total: 0.0,
        utilization,
        hourly_cost: hourly,
        rank: 0,
    }
}

/// The fraction of `capacity` allocated once `requested` is added to `used`.
#[allow(clippy::cast_precision_loss)]
pub fn utilization(used: u64, requested: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        return 1.0;
    }
    unit(used.saturating_add(requested) as f64 / capacity as f64)
}

fn unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

#[cfg(test)]
#[path = "score_tests.rs"]
mod tests;
