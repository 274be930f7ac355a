//! The scheduler's view of the admin objects and the allocations: the
//! foundations (as a scheduler [`Fleet`]), departments, placement policies,
//! each foundation's committed allocation and the charges this replica has
//! sent to committers but not seen committed yet.
//!
//! Updates carry store revisions and older ones are ignored, so a relist
//! paged over several revisions followed by a watch from its first revision
//! converges on the store's state.

use std::collections::{BTreeMap, BTreeSet};

use yunshu_core::{
    codec,
    meta::{Kind, Object, Spec},
    model::{
        AdapterKind, Department, Foundation, FoundationStatus, PlacementPolicy, PlacementPolicySpec,
    },
    resources::Resources,
    store::{EventKind, KeyValue, Revision},
};
use yunshu_scheduler::{Decision, Fleet, FoundationInput, Request, Tenancy, decide};

use crate::{
    inventory::{AllocationRecord, Inventory, effective, observed},
    keys,
};

/// The kinds an adapter kind creates, until a probe says what the
/// foundation's adapter serves. A remote adapter is known only from its
/// probe: nothing is placed on it before.
pub fn adapter_kinds(adapter: AdapterKind) -> &'static [Kind] {
    match adapter {
        AdapterKind::Openstack => &[Kind::Instance, Kind::Volume],
        AdapterKind::S3 => &[Kind::Bucket],
        AdapterKind::Remote => &[],
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    pub foundations: BTreeMap<String, Foundation>,
    pub departments: BTreeMap<String, Department>,
    pub policies: BTreeMap<String, PlacementPolicy>,
    pub allocations: BTreeMap<String, (Revision, AllocationRecord)>,
    in_flight: BTreeMap<String, AllocationRecord>,
    fleet: Fleet,
    /// Capacity per fleet index.
    capacity: Vec<Inventory>,
    rebuild: bool,
    refresh: BTreeSet<String>,
}

/// A decision with what explains it.
#[derive(Debug)]
pub(crate) struct Decided {
    pub decision: Decision,
    pub request: Request,
    /// The name of the policy applied; `None` for the built-in default.
    pub policy: Option<String>,
}

fn apply_object<S: Spec>(
    map: &mut BTreeMap<String, Object<S>>,
    name: &str,
    kind: EventKind,
    kv: &KeyValue,
) -> bool {
    match kind {
        EventKind::Delete => remove(map, name, kv.mod_revision),
        EventKind::Put => match codec::decode_object::<S>(kv) {
            Ok(object) => upsert(map, name, object),
            Err(error) => {
                tracing::warn!(%error, key = %kv.key, "skipping malformed object");
                false
            }
        },
    }
}

/// Inserts `object` unless what is cached is as new; true if it changed.
pub(crate) fn upsert<S: Spec>(
    map: &mut BTreeMap<String, Object<S>>,
    name: &str,
    object: Object<S>,
) -> bool {
    if map
        .get(name)
        .is_some_and(|o| o.meta.revision >= object.meta.revision)
    {
        return false;
    }
    map.insert(name.to_owned(), object);
    true
}

/// Removes `name` if what is cached is older than `revision`; true if it did.
pub(crate) fn remove<S: Spec>(
    map: &mut BTreeMap<String, Object<S>>,
    name: &str,
    revision: Revision,
) -> bool {
    if map.get(name).is_some_and(|o| o.meta.revision < revision) {
        map.remove(name);
        return true;
    }
    false
}

/// What an event changed, for deciding what to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Changed {
    /// Not a key the cache keeps, or nothing new.
    Nothing,
    /// A foundation, department or policy: anything may fit now.
    Config,
    /// An allocation moved; `freed` if any class went down.
    Allocation {
        /// Whether room was freed.
        freed: bool,
    },
}

impl Cache {
    /// Applies one stored key (a put, or a delete at `kv.mod_revision`).
    pub fn apply(&mut self, kind: EventKind, kv: &KeyValue) -> Changed {
        let key = kv.key.as_str();
        if let Some(name) = key.strip_prefix(&keys::allocations()) {
            return match kind {
                EventKind::Delete => {
                    self.remove_allocation(name, kv.mod_revision);
                    Changed::Allocation { freed: true }
                }
                EventKind::Put => match codec::decode::<AllocationRecord>(key, &kv.value) {
                    Ok(record) => match self.set_allocation(name, kv.mod_revision, record) {
                        Some(freed) => Changed::Allocation { freed },
                        None => Changed::Nothing,
                    },
                    Err(error) => {
                        tracing::warn!(%error, key, "skipping malformed allocation");
                        Changed::Nothing
                    }
                },
            };
        }
        let changed = if let Some(name) = keys::admin_name(Kind::Foundation, key) {
            let changed = apply_object(&mut self.foundations, name, kind, kv);
            self.rebuild |= changed;
            changed
        } else if let Some(name) = keys::admin_name(Kind::Department, key) {
            apply_object(&mut self.departments, name, kind, kv)
        } else if let Some(name) = keys::admin_name(Kind::PlacementPolicy, key) {
            apply_object(&mut self.policies, name, kind, kv)
        } else {
            false
        };
        if changed {
            Changed::Config
        } else {
            Changed::Nothing
        }
    }

    /// Records a committed allocation unless an as new one is known; returns
    /// whether any class went down (room was freed).
    pub fn set_allocation(
        &mut self,
        foundation: &str,
        revision: Revision,
        record: AllocationRecord,
    ) -> Option<bool> {
        let old = match self.allocations.get(foundation) {
            Some((rev, _)) if *rev >= revision => return None,
            Some((_, old)) => old.used,
            None => Resources::ZERO,
        };
        let freed = !old.saturating_sub(&record.used).is_zero();
        self.allocations
            .insert(foundation.to_owned(), (revision, record));
        self.refresh.insert(foundation.to_owned());
        Some(freed)
    }

    /// Forgets a deleted allocation key.
    fn remove_allocation(&mut self, foundation: &str, revision: Revision) {
        if self
            .allocations
            .get(foundation)
            .is_some_and(|(rev, _)| *rev < revision)
        {
            self.allocations.remove(foundation);
            self.refresh.insert(foundation.to_owned());
        }
    }

    /// Counts a charge sent to a committer.
    pub fn hold(&mut self, foundation: &str, department: &str, charge: &Resources) {
        let held = self.in_flight.entry(foundation.to_owned()).or_default();
        if let Some(more) = held.plus(department, charge) {
            *held = more;
        }
        self.refresh.insert(foundation.to_owned());
    }

    /// Stops counting a charge (committed, or given up).
    pub fn unhold(&mut self, foundation: &str, department: &str, charge: &Resources) {
        if let Some(held) = self.in_flight.get_mut(foundation) {
            *held = held.minus(department, charge);
        }
        self.refresh.insert(foundation.to_owned());
    }

    /// The spec generation of a foundation.
    pub fn generation(&self, foundation: &str) -> Option<u64> {
        self.foundations.get(foundation).map(|f| f.meta.generation)
    }

    /// Committed plus held, per class.
    fn used(&self, foundation: &str) -> Resources {
        let committed = self
            .allocations
            .get(foundation)
            .map_or(Resources::ZERO, |(_, a)| a.used);
        let held = self
            .in_flight
            .get(foundation)
            .map_or(Resources::ZERO, |a| a.used);
        committed.checked_add(&held).unwrap_or(committed)
    }

    fn department_usage(&self, foundation: &str, department: &str) -> Resources {
        let committed = self
            .allocations
            .get(foundation)
            .map_or(Resources::ZERO, |(_, a)| a.department(department));
        let held = self
            .in_flight
            .get(foundation)
            .map_or(Resources::ZERO, |a| a.department(department));
        committed.checked_add(&held).unwrap_or(committed)
    }

    /// The fleet, rebuilt or refreshed as needed.
    pub fn fleet(&mut self) -> &Fleet {
        if self.rebuild {
            self.rebuild_fleet();
        } else {
            for name in std::mem::take(&mut self.refresh) {
                let Some(index) = self.fleet.index_of(&name) else {
                    continue;
                };
                let used = self.used(&name);
                if let Some(capacity) = self.capacity.get(index) {
                    for (class, record) in capacity {
                        let e = effective(record, used.get(*class));
                        self.fleet.set_inventory(index, *class, &e);
                    }
                }
            }
        }
        &self.fleet
    }

    fn rebuild_fleet(&mut self) {
        let mut capacity = Vec::with_capacity(self.foundations.len());
        let statuses: Vec<FoundationStatus> = self
            .foundations
            .iter()
            .map(|(name, f)| {
                let (health, inventory) = observed(f);
                let used = self.used(name);
                let status = FoundationStatus {
                    health,
                    api_latency_ms: f.status.api_latency_ms,
                    inventory: inventory
                        .iter()
                        .map(|(c, r)| (*c, effective(r, used.get(*c))))
                        .collect(),
                    ..FoundationStatus::default()
                };
                capacity.push(inventory);
                status
            })
            .collect();
        let inputs = self
            .foundations
            .iter()
            .zip(&statuses)
            .map(|((name, f), status)| FoundationInput {
                name,
                spec: &f.spec,
                status,
                // What the adapter said it serves, once probed.
                kinds: if f.status.kinds.is_empty() {
                    adapter_kinds(f.spec.adapter)
                } else {
                    &f.status.kinds
                },
                api_error_rate: f.status.api_error_rate.unwrap_or(0.0),
            });
        self.fleet = Fleet::new(inputs);
        self.capacity = capacity;
        self.rebuild = false;
        self.refresh.clear();
    }

    /// The policy for `department`: its own, else the default one, else the
    /// built-in default. Of several, the first by name.
    pub fn policy_for(&self, department: &str) -> (Option<String>, PlacementPolicySpec) {
        let find = |want: Option<&str>| {
            self.policies
                .iter()
                .find(|(_, p)| p.spec.department.as_deref() == want)
        };
        match find(Some(department)).or_else(|| find(None)) {
            Some((name, p)) => (Some(name.clone()), p.spec.clone()),
            None => (None, PlacementPolicySpec::default()),
        }
    }

    /// Decides where `request` of `department` goes; `None` when the
    /// department is unknown.
    pub fn decide(&mut self, department: &str, request: Request) -> Option<Decided> {
        let dept = self.departments.get(department)?.spec.clone();
        let usage: BTreeMap<String, Resources> = self
            .foundations
            .keys()
            .map(|f| (f.clone(), self.department_usage(f, department)))
            .collect();
        let (policy, spec) = self.policy_for(department);
        let fleet = self.fleet();
        let tenancy = Tenancy::from_department(fleet, &dept, &usage);
        let decision = decide(fleet, &tenancy, &spec, &request);
        Some(Decided {
            decision,
            request,
            policy,
        })
    }

    /// The current fleet without refreshing it, for rendering a decision
    /// made just before.
    pub fn current_fleet(&self) -> &Fleet {
        &self.fleet
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
