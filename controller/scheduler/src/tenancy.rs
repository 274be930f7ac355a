//! A department as the scheduler sees it against one [`Fleet`]: which
//! foundations it may use, and its per-foundation quota and usage.
//!
//! The department-wide quota is admission's business; placement only checks
//! the per-foundation limits. Build a [`Tenancy`] once per department and
//! fleet, and [`Tenancy::charge`] it as allocations commit.

use std::collections::BTreeMap;

use yunshu_core::{
    model::{DepartmentSpec, Quota},
    resources::{Limits, ResourceClass, Resources},
};

use crate::fleet::Fleet;

/// The department's standing on one foundation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Whether the department may use the foundation.
    pub allowed: bool,
    /// Per-class limit on this foundation; `u64::MAX` when unlimited.
    pub limit: [u64; 6],
    /// Per-class usage on this foundation.
    pub used: [u64; 6],
}

impl Standing {
    const OPEN: Self = Self {
        allowed: true,
        limit: [u64::MAX; 6],
        used: [0; 6],
    };

    /// The limit on `class`, if there is one.
    pub const fn limit(&self, class: ResourceClass) -> Option<u64> {
        match self.limit[class.index()] {
            u64::MAX => None,
            l => Some(l),
        }
    }
}

/// A department's standing on every foundation of a fleet, by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenancy {
    fingerprint: u64,
    standings: Vec<Standing>,
}

impl Tenancy {
    /// A department that may use every foundation without per-foundation limits.
    pub fn unrestricted(fleet: &Fleet) -> Self {
        Self {
            fingerprint: fleet.fingerprint(),
            standings: vec![Standing::OPEN; fleet.len()],
        }
    }

    /// From the department's quota, its usage per foundation and its allowed
    /// foundations (empty: all). Names not in the fleet are ignored.
    pub fn new(
        fleet: &Fleet,
        quota: &Quota,
        usage: &BTreeMap<String, Resources>,
        allowed: &[String],
    ) -> Self {
        let mut t = Self::unrestricted(fleet);
        if !allowed.is_empty() {
            t.standings.iter_mut().for_each(|s| s.allowed = false);
            for i in allowed.iter().filter_map(|n| fleet.index_of(n)) {
                t.standings[i].allowed = true;
            }
        }
        for (name, limits) in &quota.per_foundation {
            if let Some(i) = fleet.index_of(name) {
                set_limits(&mut t.standings[i], limits);
            }
        }
        for (name, used) in usage {
            if let Some(i) = fleet.index_of(name) {
                for (class, amount) in used.iter() {
                    t.standings[i].used[class.index()] = amount;
                }
            }
        }
        t
    }

    /// From a department's spec and its usage per foundation.
    pub fn from_department(
        fleet: &Fleet,
        spec: &DepartmentSpec,
        usage: &BTreeMap<String, Resources>,
    ) -> Self {
        Self::new(fleet, &spec.quota, usage, &spec.allowed_foundations)
    }

    /// Whether this was built for `fleet` (same foundations at the same indices).
    pub fn matches(&self, fleet: &Fleet) -> bool {
        self.fingerprint == fleet.fingerprint() && self.standings.len() == fleet.len()
    }

    /// The standing on foundation `index`.
    pub fn standing(&self, index: usize) -> Option<&Standing> {
        self.standings.get(index)
    }

    /// Adds a committed allocation on foundation `index` to the usage.
    pub fn charge(&mut self, index: usize, resources: &Resources) {
        if let Some(s) = self.standings.get_mut(index) {
            for (class, amount) in resources.iter() {
                let u = &mut s.used[class.index()];
                *u = u.saturating_add(amount);
            }
        }
    }

    pub(crate) fn standings(&self) -> &[Standing] {
        &self.standings
    }
}

fn set_limits(s: &mut Standing, limits: &Limits) {
    for (class, limit) in limits {
        s.limit[class.index()] = *limit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{F, fleet_of, limits};

    #[test]
    fn builds_allowed_limits_and_usage_by_index() {
        let fleet = fleet_of(&[F::new("a"), F::new("b"), F::new("c")]);
        let quota = Quota {
            hard: Limits::new(),
            per_foundation: limits(&[
                ("b", ResourceClass::Vcpu, 8),
                ("zz", ResourceClass::Vcpu, 1),
            ]),
        };
        let usage = BTreeMap::from([(
            "b".to_owned(),
            Resources::from_pairs([(ResourceClass::Vcpu, 6)]),
        )]);
        let mut t = Tenancy::new(
            &fleet,
            &quota,
            &usage,
            &["c".into(), "b".into(), "nope".into()],
        );
        assert!(t.matches(&fleet));
        let allowed: Vec<_> = t.standings().iter().map(|s| s.allowed).collect();
        assert_eq!(allowed, [false, true, true]);
        let b = t.standing(1).expect("b");
        assert_eq!((b.limit(ResourceClass::Vcpu), b.used[0]), (Some(8), 6));
        assert_eq!(
            t.standing(0).and_then(|s| s.limit(ResourceClass::Vcpu)),
            None
        );
        t.charge(1, &Resources::from_pairs([(ResourceClass::Vcpu, 2)]));
        assert_eq!(t.standing(1).map(|s| s.used[0]), Some(8));
    }

    #[test]
    fn empty_allowed_list_means_every_foundation() {
        let fleet = fleet_of(&[F::new("a"), F::new("b")]);
        let t = Tenancy::new(&fleet, &Quota::default(), &BTreeMap::new(), &[]);
        assert_eq!(t, Tenancy::unrestricted(&fleet));
    }

    #[test]
    fn a_tenancy_for_another_fleet_does_not_match() {
        let t = Tenancy::unrestricted(&fleet_of(&[F::new("a"), F::new("b")]));
        assert!(!t.matches(&fleet_of(&[F::new("a"), F::new("c")])));
        assert!(t.matches(&fleet_of(&[F::new("b"), F::new("a")])));
    }
}
