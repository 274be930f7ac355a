//! Inventories and allocations: what a foundation can hold, what placement
//! has committed against it, and whether one more charge fits.
//!
//! A foundation's *capacity* per class (total, reserved, allocation ratio,
//! largest unit on one host) lives in its status, written by adapter probes.
//! Before any probe has run, a foundation that declares `capacity` in its
//! spec (standalone mode) gets that as its inventory, with its
//! `allocation_ratios`, and counts as Ready. The admin's declared ratio of a
//! class also overrides a probe's.
//!
//! What placement has *committed* lives elsewhere, in one hot key per
//! foundation ([`AllocationRecord`]): used per class and per department. The
//! `used` a probe reports is not consulted; usage outside Yunshu belongs in
//! the probe's `reserved`.
//!
//! The largest free unit: aggregate numbers cannot show fragmentation, so
//! the probe's `max_unit` is kept and capped by what is still free.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use yunshu_core::{
    codec,
    model::{Foundation, FoundationSpec, Health, InventoryRecord},
    resources::{Limits, ResourceClass, Resources},
    store::{Compare, Store, Txn},
};

/// Capacity per class, as a foundation reports or declares it.
pub type Inventory = BTreeMap<ResourceClass, InventoryRecord>;

/// What placement has committed against one foundation, stored at
/// [`keys::allocation`](crate::keys::allocation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationRecord {
    /// Committed per class.
    #[serde(default)]
    pub used: Resources,
    /// Committed per department, for per-foundation quotas.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub departments: BTreeMap<String, Resources>,
}

impl AllocationRecord {
    /// Adds a charge; `None` on overflow.
    #[must_use]
    pub fn plus(&self, department: &str, charge: &Resources) -> Option<Self> {
        let mut out = self.clone();
        out.used = out.used.checked_add(charge)?;
        let d = out.departments.entry(department.to_owned()).or_default();
        *d = d.checked_add(charge)?;
        Some(out)
    }

    /// Removes a charge, flooring at zero; a department left with nothing is dropped.
    #[must_use]
    pub fn minus(&self, department: &str, charge: &Resources) -> Self {
        let mut out = self.clone();
        out.used = out.used.saturating_sub(charge);
        if let Some(d) = out.departments.get_mut(department) {
            *d = d.saturating_sub(charge);
            if d.is_zero() {
                out.departments.remove(department);
            }
        }
        out
    }

    /// What `department` has committed here.
    pub fn department(&self, department: &str) -> Resources {
        self.departments
            .get(department)
            .copied()
            .unwrap_or(Resources::ZERO)
    }
}

/// What deleting foundation `name` must add to its transaction: a guard
/// that fails if anything is committed on the foundation meanwhile. `Err`
/// says why it cannot be deleted now: resources are still allocated on it,
/// and deleting it would strand them with no adapter to delete them by.
pub async fn foundation_deletion(
    store: &dyn Store,
    name: &str,
) -> yunshu_core::Result<Result<Txn, String>> {
    let key = crate::keys::allocation(name);
    let Some(kv) = store.get(&key).await? else {
        return Ok(Ok(Txn::new().when([Compare::unchanged(&key, 0)])));
    };
    let record = codec::decode::<AllocationRecord>(&key, &kv.value)?;
    if !record.used.is_zero() || !record.departments.is_empty() {
        let holders = record
            .departments
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        return Ok(Err(format!(
            "foundation {name} still has resources allocated (departments: {holders}); delete them first"
        )));
    }
    Ok(Ok(
        Txn::new().when([Compare::unchanged(&key, kv.mod_revision)])
    ))
}

/// One object's committed charge, stored at [`keys::claim_for`](crate::keys::claim_for)
/// its object's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRecord {
    /// The object's uid: a claim belongs to one incarnation of a name.
    pub uid: String,
    /// The foundation charged.
    pub foundation: String,
    /// The department charged.
    pub department: String,
    /// The amounts.
    pub charge: Resources,
}

/// The inventory a foundation declares in its spec: each class of
/// `capacity`, its allocation ratio (1 when absent), nothing reserved, and
/// the whole capacity as the largest unit (a declaration says nothing of hosts).
pub fn declared_inventory(spec: &FoundationSpec) -> Inventory {
    let Some(capacity) = spec.capacity else {
        return Inventory::new();
    };
    capacity
        .iter()
        .map(|(class, total)| {
            let mut record = InventoryRecord {
                total,
                reserved: 0,
                allocation_ratio: spec.allocation_ratios.get(&class).copied().unwrap_or(1.0),
                used: 0,
                max_unit: 0,
            };
            record.max_unit = record.capacity();
            (class, record)
        })
        .collect()
}

/// A foundation's health and capacity as placement sees them. What the
/// probe measured wins; a declared class the probe does not measure (an
/// OpenStack cloud whose Cinder cannot tell its size, say) is taken from
/// the declaration.
pub fn observed(f: &Foundation) -> (Health, Inventory) {
    let probed = f.status.last_probe.is_some() || !f.status.inventory.is_empty();
    if !probed && f.spec.capacity.is_some() {
        return (Health::Ready, declared_inventory(&f.spec));
    }
    let mut inventory = f.status.inventory.clone();
    for (class, record) in &mut inventory {
        if let Some(ratio) = f.spec.allocation_ratios.get(class) {
            record.allocation_ratio = *ratio;
        }
        record.used = 0;
    }
    for (class, record) in declared_inventory(&f.spec) {
        inventory.entry(class).or_insert(record);
    }
    (f.status.health, inventory)
}

/// The record the scheduler sees: `capacity` with `used` committed and the
/// largest unit capped by what is free.
pub fn effective(capacity: &InventoryRecord, used: u64) -> InventoryRecord {
    let free = capacity.capacity().saturating_sub(used);
    InventoryRecord {
        used,
        max_unit: capacity.max_unit.min(free),
        ..*capacity
    }
}

/// Why a charge does not fit a foundation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfit {
    /// The foundation has no inventory of the class.
    NoInventory(ResourceClass),
    /// Not enough free, or no single unit large enough.
    Capacity {
        /// The class.
        class: ResourceClass,
        /// Requested.
        requested: u64,
        /// Free in all.
        free: u64,
        /// The largest free unit.
        max_unit: u64,
    },
    /// Over the department's limit on this foundation.
    Quota {
        /// The class.
        class: ResourceClass,
        /// Requested.
        requested: u64,
        /// Already committed by the department here.
        used: u64,
        /// The limit.
        limit: u64,
    },
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoInventory(class) => write!(f, "no {class} inventory"),
            Self::Capacity {
                class,
                requested,
                free,
                max_unit,
            } => write!(
                f,
                "{class}: {requested} requested, {free} free, largest free unit {max_unit}"
            ),
            Self::Quota {
                class,
                requested,
                used,
                limit,
            } => write!(
                f,
                "{class} requested {requested}, used {used}, limit {limit} on this foundation"
            ),
        }
    }
}

/// Checks that `charge` fits `inventory` on top of `alloc`, and the
/// department's per-foundation `limits` on top of what it has committed here.
pub fn check_fit(
    inventory: &Inventory,
    alloc: &AllocationRecord,
    department: &str,
    limits: Option<&Limits>,
    charge: &Resources,
) -> Result<(), Misfit> {
    let mine = alloc.department(department);
    for (class, requested) in charge.iter() {
        let record = inventory.get(&class).ok_or(Misfit::NoInventory(class))?;
        let e = effective(record, alloc.used.get(class));
        let free = e.capacity().saturating_sub(e.used);
        if requested > free || requested > e.max_unit {
            return Err(Misfit::Capacity {
                class,
                requested,
                free,
                max_unit: e.max_unit,
            });
        }
        if let Some(&limit) = limits.and_then(|l| l.get(&class)) {
            let used = mine.get(class);
            if used.saturating_add(requested) > limit {
                return Err(Misfit::Quota {
                    class,
                    requested,
                    used,
                    limit,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "inventory_tests.rs"]
mod tests;
