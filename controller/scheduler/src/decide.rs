//! One placement decision: filter every foundation, score the survivors,
//! rank them, and keep a structured verdict for every foundation.

use yunshu_core::model::{GroupPolicy, PlacementPolicySpec, Strategy};

use crate::{
    filter::{self, Filter, Reason},
    fleet::Fleet,
    request::{Prepared, Request},
    score::{self, EffectiveWeights, Scores},
    tenancy::Tenancy,
};

/// What happened to one foundation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// A filter rejected it.
    Rejected(Reason),
    /// It passed every filter and scored so.
    Feasible(Scores),
}

impl Verdict {
    /// The scores, if feasible.
    pub const fn scores(&self) -> Option<&Scores> {
        match self {
            Self::Feasible(s) => Some(s),
            Self::Rejected(_) => None,
        }
    }

    /// The rejection, if rejected.
    pub const fn reason(&self) -> Option<&Reason> {
        match self {
            Self::Rejected(r) => Some(r),
            Self::Feasible(_) => None,
        }
    }
}

/// The outcome of [`decide`]: a verdict for every foundation of the fleet
/// (by index) and the feasible ones ranked best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    verdicts: Vec<Verdict>,
    ranked: Vec<u32>,
    pub(crate) strategy: Strategy,
    pub(crate) group: Option<GroupPolicy>,
    pub(crate) weights: EffectiveWeights,
}

impl Decision {
    /// The index of the chosen foundation, or `None` when nothing fits.
    pub fn chosen(&self) -> Option<usize> {
        self.ranked.first().map(|i| *i as usize)
    }

    /// The feasible foundations' indices, best first.
    pub fn ranked(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.ranked.iter().map(|i| *i as usize)
    }

    /// The verdict for every foundation, by fleet index.
    pub fn verdicts(&self) -> &[Verdict] {
        &self.verdicts
    }

    /// The verdict for foundation `index`.
    pub fn verdict(&self, index: usize) -> Option<&Verdict> {
        self.verdicts.get(index)
    }

    /// How many foundations each filter rejected, in [`Filter::ALL`] order.
    pub fn rejections(&self) -> [u32; Filter::ALL.len()] {
        let mut counts = [0; Filter::ALL.len()];
        for r in self.verdicts.iter().filter_map(Verdict::reason) {
            counts[r.filter() as usize] += 1;
        }
        counts
    }

    /// The strategy the allocation score used.
    pub const fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The weights the totals used.
    pub const fn weights(&self) -> &EffectiveWeights {
        &self.weights
    }
}

/// Decides where `request` goes.
///
/// `tenancy` must have been built for `fleet` (see [`Tenancy::matches`]);
/// otherwise every foundation is rejected with [`Reason::StaleTenancy`].
pub fn decide(
    fleet: &Fleet,
    tenancy: &Tenancy,
    policy: &PlacementPolicySpec,
    request: &Request,
) -> Decision {
    let p = Prepared::new(fleet, request);
    let weights = EffectiveWeights::new(&policy.weights, p.group.is_some());
    let mut d = Decision {
        verdicts: Vec::with_capacity(fleet.len()),
        ranked: Vec::with_capacity(fleet.len()),
        strategy: policy.strategy,
        group: p.group,
        weights,
    };
    if !tenancy.matches(fleet) {
        d.verdicts
            .resize(fleet.len(), Verdict::Rejected(Reason::StaleTenancy));
        return d;
    }
    let mut cheapest = f64::INFINITY;
    for (i, (c, s)) in fleet.candidates.iter().zip(tenancy.standings()).enumerate() {
        match filter::check(c, i, s, policy.allow_degraded, &p) {
            Err(reason) => d.verdicts.push(Verdict::Rejected(reason)),
            Ok(()) => {
                let scores = score::partial(c, i, policy.strategy, &p);
                cheapest = cheapest.min(scores.hourly_cost);
                d.verdicts.push(Verdict::Feasible(scores));
                d.ranked.push(u32::try_from(i).unwrap_or(u32::MAX));
            }
        }
    }
    for &i in &d.ranked {
        if let Some(Verdict::Feasible(s)) = d.verdicts.get_mut(i as usize) {
            s.cost = score::cost(cheapest, s.hourly_cost);
            s.total = weights.total(s);
        }
    }
    // Best total first; equal totals go to the lower index, i.e. the name first in order.
    let verdicts = &d.verdicts;
    let total = |i: u32| {
        verdicts
            .get(i as usize)
            .and_then(Verdict::scores)
            .map_or(0.0, |s| s.total)
    };
    d.ranked
        .sort_unstable_by(|&a, &b| total(b).total_cmp(&total(a)).then(a.cmp(&b)));
    for (rank, &i) in d.ranked.iter().enumerate() {
        if let Some(Verdict::Feasible(s)) = d.verdicts.get_mut(i as usize) {
            s.rank = u32::try_from(rank + 1).unwrap_or(u32::MAX);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use yunshu_core::{meta::Kind, model::Health};

    use super::*;
    use crate::testkit::{F, decide_plain, fleet_of, vcpus};

    #[test]
    fn ranks_feasible_foundations_and_breaks_ties_by_name() {
        // Identical foundations: equal totals, so names decide.
        let fleet = fleet_of(&[
            F::new("c").roomy(),
            F::new("a").roomy(),
            F::new("b").roomy(),
        ]);
        let d = decide_plain(&fleet, &vcpus(2));
        assert_eq!(d.ranked().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(d.chosen(), Some(0));
        let ranks: Vec<_> = d
            .verdicts()
            .iter()
            .filter_map(|v| v.scores().map(|s| s.rank))
            .collect();
        assert_eq!(ranks, [1, 2, 3]);
    }

    #[test]
    fn a_higher_total_beats_an_earlier_name() {
        let fleet = fleet_of(&[F::new("a").vcpu(100, 90, 8), F::new("b").vcpu(100, 10, 8)]);
        let d = decide_plain(&fleet, &vcpus(2));
        assert_eq!(
            fleet.candidates()[d.chosen().expect("feasible")].name(),
            "b"
        );
    }

    #[test]
    fn every_foundation_gets_a_verdict_and_counts_add_up() {
        let fleet = fleet_of(&[
            F::new("a").roomy(),
            F::new("b").roomy().health(Health::Down),
            F::new("c").vcpu(4, 4, 4),
            F::new("d").roomy().kinds(&[Kind::Bucket]),
        ]);
        let d = decide_plain(&fleet, &vcpus(2));
        assert_eq!(d.verdicts().len(), 4);
        // allowed, capability, health, zone, traits, capacity, quota
        assert_eq!(d.rejections(), [0, 1, 1, 0, 0, 1, 0]);
        assert_eq!(d.ranked().len(), 1);
    }

    #[test]
    fn nothing_feasible_means_no_choice() {
        let fleet = fleet_of(&[F::new("a").vcpu(4, 0, 4)]);
        let d = decide_plain(&fleet, &vcpus(8));
        assert_eq!(d.chosen(), None);
        assert_eq!(d.ranked().len(), 0);
        assert_eq!(decide_plain(&Fleet::default(), &vcpus(1)).chosen(), None);
    }

    #[test]
    fn a_stale_tenancy_rejects_everything() {
        let fleet = fleet_of(&[F::new("a").roomy(), F::new("b").roomy()]);
        let other = Tenancy::unrestricted(&fleet_of(&[F::new("a").roomy()]));
        let d = decide(&fleet, &other, &PlacementPolicySpec::default(), &vcpus(1));
        assert_eq!(d.chosen(), None);
        assert!(
            d.verdicts()
                .iter()
                .all(|v| v.reason() == Some(&Reason::StaleTenancy))
        );
    }

    #[test]
    fn deciding_twice_gives_the_same_decision() {
        let fleet = fleet_of(&[
            F::new("a").roomy().pue(1.3),
            F::new("b").roomy().api(0.1, Some(40.0)),
        ]);
        assert_eq!(
            decide_plain(&fleet, &vcpus(3)),
            decide_plain(&fleet, &vcpus(3))
        );
    }
}
