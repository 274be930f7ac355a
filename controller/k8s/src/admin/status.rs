//! The status of Foundation, Department and PlacementPolicy CRs, built from
//! the store object and the sync outcome — pure functions.
//!
//! Inventory, health, latency, usage and tenant mappings come from the store
//! object (Yunshu's loops own them). `Synced` is the operator's own: whether
//! the CR's current spec is in the store. `Ready` is the store's when a
//! Yunshu loop set one, else derived (a foundation's health; a department is
//! ready once synced). Conditions copied from the store describe the CR's
//! generation only if they were observed at the store object's current
//! generation; otherwise they keep the generation they had on the CR.

use yunshu_core::{meta::Object, model as core, resources::Resources};
use yunshu_crds::{ConditionStatus, DepartmentStatus, FoundationStatus, PlacementPolicyStatus};

use crate::conditions::{self, Decided, READY, SYNCED};
pub use crate::conditions::{Inputs, remap_generations};

/// `Ready` from a foundation's probed health.
pub fn ready_from_health(health: core::Health) -> Decided {
    match health {
        core::Health::Ready => Decided::holds(
            READY,
            "Healthy",
            "the last probe found the foundation healthy",
        ),
        core::Health::Degraded => Decided::fails(
            READY,
            "Degraded",
            "the foundation answers badly; the scheduler avoids it",
        ),
        core::Health::Down => Decided::fails(READY, "Down", "the foundation does not answer"),
        core::Health::Unknown => {
            Decided::unknown(READY, "NotProbed", "the foundation has not been probed yet")
        }
    }
}

/// A Foundation's status: health, inventory and latency from the store
/// object, `Ready` from its health unless Yunshu set one, `Synced`.
pub fn foundation(
    traits: &[String],
    stored: Option<&Object<core::FoundationSpec>>,
    inputs: &Inputs<'_>,
) -> FoundationStatus {
    let core_status = stored.map(|o| o.status.clone()).unwrap_or_default();
    let health = core_status.health;
    let mut status = FoundationStatus::from_core(core_status, traits, inputs.observed());
    if let Some(o) = stored {
        remap_generations(&mut status.conditions, o.meta.generation, inputs);
    }
    if conditions::find(&status.conditions, READY).is_none() {
        let ready = if stored.is_some() {
            ready_from_health(health)
        } else {
            Decided::unknown(
                READY,
                "NotSynced",
                "the foundation is not in Yunshu's store yet",
            )
        };
        inputs.put(&mut status.conditions, ready);
    }
    inputs.put(&mut status.conditions, inputs.synced.clone());
    status
}

/// A Department's status: usage (from its usage key, when read), tenant
/// mappings, `Ready` (Yunshu's, else "ready once synced"), `Synced`.
pub fn department(
    stored: Option<&Object<core::DepartmentSpec>>,
    usage: Option<Resources>,
    inputs: &Inputs<'_>,
) -> DepartmentStatus {
    let mut core_status = stored.map(|o| o.status.clone()).unwrap_or_default();
    if let Some(usage) = usage {
        core_status.usage = usage;
    }
    let mut status = DepartmentStatus::from_core(core_status, inputs.observed());
    if let Some(o) = stored {
        remap_generations(&mut status.conditions, o.meta.generation, inputs);
    }
    if conditions::find(&status.conditions, READY).is_none() {
        let ready = match (stored.is_some(), inputs.synced.status) {
            (true, ConditionStatus::True) => {
                Decided::holds(READY, "Active", "the department may request resources")
            }
            (true, _) => Decided::holds(
                READY,
                "Active",
                "the department may request resources under its last valid spec",
            ),
            (false, _) => Decided::unknown(
                READY,
                "NotSynced",
                "the department is not in Yunshu's store yet",
            ),
        };
        inputs.put(&mut status.conditions, ready);
    }
    inputs.put(&mut status.conditions, inputs.synced.clone());
    status
}

/// A PlacementPolicy's status: `Synced`, and whatever Yunshu observed.
pub fn policy(
    stored: Option<&Object<core::PlacementPolicySpec>>,
    inputs: &Inputs<'_>,
) -> PlacementPolicyStatus {
    let core_status = stored.map(|o| o.status.clone()).unwrap_or_default();
    let mut status = PlacementPolicyStatus::from_core(core_status, inputs.observed());
    if let Some(o) = stored {
        remap_generations(&mut status.conditions, o.meta.generation, inputs);
    }
    inputs.put(&mut status.conditions, inputs.synced.clone());
    status
}

/// `Synced` after a successful sync (the same whether this reconcile wrote
/// or found the spec there, so the status does not change with it).
pub fn synced() -> Decided {
    Decided::holds(SYNCED, "Synced", "the spec is in Yunshu's store")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use yunshu_core::{
        meta::{self, ConditionStatus as CoreStatus},
        model::{AdapterKind, Budget, Health, InventoryRecord},
        resources::ResourceClass,
    };

    use chrono::DateTime;
    use yunshu_crds::Condition;

    use super::*;

    fn fdn(health: Health) -> Object<core::FoundationSpec> {
        let mut o = Object::new(
            None,
            "kunpeng-1",
            core::FoundationSpec {
                adapter: AdapterKind::Openstack,
                endpoint: "https://keystone.example:5000/v3".into(),
                region: None,
                zones: vec![],
                credentials: None,
                traits: vec![],
                allocation_ratios: BTreeMap::new(),
                tariff: BTreeMap::new(),
                pue: None,
                budget: Budget::default(),
                capacity: None,
                settings: BTreeMap::new(),
            },
        );
        o.status.health = health;
        o.status.inventory.insert(
            ResourceClass::Vcpu,
            InventoryRecord {
                total: 64,
                reserved: 0,
                allocation_ratio: 4.0,
                used: 10,
                max_unit: 64,
            },
        );
        o
    }

    fn inputs(previous: &[Condition], synced: Decided) -> Inputs<'_> {
        Inputs {
            synced,
            previous,
            previous_generation: 1,
            generation: 2,
            now: DateTime::from_timestamp(1_000, 0).expect("valid time"),
        }
    }

    #[test]
    fn a_healthy_synced_foundation_is_ready_at_its_generation() {
        let stored = fdn(Health::Ready);
        let traits = vec!["arch:aarch64".to_owned()];
        let s = foundation(&traits, Some(&stored), &inputs(&[], synced()));
        assert_eq!(s.observed_generation, 2);
        assert_eq!(s.arch.as_deref(), Some("aarch64"));
        assert_eq!(s.inventory["vcpu"].capacity, 256);
        let ready = conditions::find(&s.conditions, READY).expect("Ready");
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            (ConditionStatus::True, "Healthy")
        );
        assert_eq!(ready.observed_generation, 2);
        let sync = conditions::find(&s.conditions, SYNCED).expect("Synced");
        assert_eq!(sync.status, ConditionStatus::True);
    }

    #[test]
    fn a_failed_sync_keeps_the_generation_it_described() {
        let failed = Decided::fails(SYNCED, "InvalidSpec", "invalid spec.traits[0]: unknown");
        let s = foundation(&[], Some(&fdn(Health::Degraded)), &inputs(&[], failed));
        assert_eq!(s.observed_generation, 1);
        let ready = conditions::find(&s.conditions, READY).expect("Ready");
        assert_eq!(ready.reason, "Degraded");
        let sync = conditions::find(&s.conditions, SYNCED).expect("Synced");
        assert_eq!(sync.reason, "InvalidSpec");
        assert_eq!(sync.status, ConditionStatus::False);
    }

    #[test]
    fn store_conditions_stale_against_the_store_generation_keep_their_old_generation() {
        let mut stored = fdn(Health::Ready);
        stored.meta.generation = 3;
        stored.status.conditions.push(meta::Condition {
            type_: READY.into(),
            status: CoreStatus::False,
            reason: "ProbeFailed".into(),
            message: "timeout".into(),
            observed_generation: 2,
            last_transition_time: DateTime::from_timestamp(5, 0).expect("valid time"),
        });
        let s = foundation(&[], Some(&stored), &inputs(&[], synced()));
        let ready = conditions::find(&s.conditions, READY).expect("Ready");
        assert_eq!(
            ready.reason, "ProbeFailed",
            "Yunshu's own Ready wins over health"
        );
        assert_eq!(ready.observed_generation, 0);
    }

    #[test]
    fn department_usage_comes_from_the_usage_key() {
        let stored = Object::new(None, "health", core::DepartmentSpec::default());
        let usage = Resources::from_pairs([(ResourceClass::Vcpu, 12)]);
        let s = department(Some(&stored), Some(usage), &inputs(&[], synced()));
        assert_eq!(s.usage["vcpu"], 12);
        assert_eq!(s.usage["memory_mib"], 0);
        let ready = conditions::find(&s.conditions, READY).expect("Ready");
        assert_eq!(ready.reason, "Active");
    }
}
