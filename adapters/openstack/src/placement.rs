//! Inventory from Placement: every resource provider's inventories, usages
//! and traits, folded into Yunshu's classes.
//!
//! Placement's `MEMORY_MB` is in MiB and `DISK_GB` in GiB, the units of
//! `memory_mib` and `disk_gib`, so amounts carry over unchanged. Across
//! providers, `total`, `reserved` and `used` are sums; `allocation_ratio` is
//! the capacity-weighted ratio (sum of each provider's
//! `(total - reserved) * ratio` over the sum of `total - reserved`), so
//! [`InventoryRecord::capacity`] of the sum equals the sum of capacities;
//! `max_unit` is the largest amount one request can still get on a single
//! provider: its free capacity, capped by the provider's own `max_unit`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::future::try_join_all;
use reqwest::Method;
use serde::Deserialize;
use yunshu_core::{Result, model::InventoryRecord, resources::ResourceClass, traits::Trait};

use crate::session::{Call, Scope, Service, Session};

/// One class of one resource provider's inventory, as Placement reports it.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ProviderInventory {
    /// Physical total.
    pub total: u64,
    /// Held back.
    #[serde(default)]
    pub reserved: u64,
    /// Overcommit ratio.
    #[serde(default = "one")]
    pub allocation_ratio: f64,
    /// Largest single allocation.
    #[serde(default = "u64_max")]
    pub max_unit: u64,
}

fn one() -> f64 {
    1.0
}

fn u64_max() -> u64 {
    u64::MAX
}

/// What one resource provider reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provider {
    /// Inventories by Placement resource class (`VCPU`, `MEMORY_MB`, `DISK_GB`, …).
    pub inventories: HashMap<String, ProviderInventory>,
    /// Usages by Placement resource class.
    pub usages: HashMap<String, u64>,
    /// Its traits (`HW_ARCH_AARCH64`, …).
    pub traits: Vec<String>,
}

/// Yunshu's class for a Placement resource class, if it tracks it.
pub fn class_of(placement_class: &str) -> Option<ResourceClass> {
    match placement_class {
        "VCPU" => Some(ResourceClass::Vcpu),
        "MEMORY_MB" => Some(ResourceClass::MemoryMib),
        "DISK_GB" => Some(ResourceClass::DiskGib),
        _ => None,
    }
}

/// Yunshu's trait for a Placement trait, if it maps one.
pub fn trait_of(placement_trait: &str) -> Option<Trait> {
    match placement_trait {
        "HW_ARCH_AARCH64" => Trait::arch("aarch64").ok(),
        "HW_ARCH_X86_64" => Trait::arch("x86_64").ok(),
        _ => None,
    }
}

fn capacity(inv: &ProviderInventory) -> f64 {
    let ratio = if inv.allocation_ratio > 0.0 {
        inv.allocation_ratio
    } else {
        1.0
    };
    #[allow(clippy::cast_precision_loss)]
    let usable = inv.total.saturating_sub(inv.reserved) as f64;
    (usable * ratio).floor()
}

/// Folds providers into one inventory per class, and the union of their
/// mapped traits (sorted, deduplicated). Pure.
pub fn aggregate(providers: &[Provider]) -> (BTreeMap<ResourceClass, InventoryRecord>, Vec<Trait>) {
    #[derive(Default)]
    struct Acc {
        total: u64,
        reserved: u64,
        used: u64,
        capacity: f64,
        max_unit: u64,
    }
    let mut acc: BTreeMap<ResourceClass, Acc> = BTreeMap::new();
    let mut traits = BTreeSet::new();
    for p in providers {
        for (pc, inv) in &p.inventories {
            let Some(class) = class_of(pc) else { continue };
            let used = p.usages.get(pc).copied().unwrap_or(0);
            let cap = capacity(inv);
            // Truncation is intended: a free amount is a whole number of units.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let free = (cap - used as f64).max(0.0) as u64;
            let a = acc.entry(class).or_default();
            a.total += inv.total;
            a.reserved += inv.reserved;
            a.used += used;
            a.capacity += cap;
            a.max_unit = a.max_unit.max(free.min(inv.max_unit));
        }
        traits.extend(p.traits.iter().filter_map(|t| trait_of(t)));
    }
    let records = acc
        .into_iter()
        .map(|(class, a)| {
            let usable = a.total.saturating_sub(a.reserved);
            #[allow(clippy::cast_precision_loss)]
            let ratio = if usable == 0 {
                1.0
            } else {
                a.capacity / usable as f64
            };
            (
                class,
                InventoryRecord {
                    total: a.total,
                    reserved: a.reserved,
                    allocation_ratio: ratio,
                    used: a.used,
                    max_unit: a.max_unit,
                },
            )
        })
        .collect();
    (records, traits.into_iter().collect())
}

#[derive(Deserialize)]
struct ProvidersRoot {
    resource_providers: Vec<ProviderRef>,
}

#[derive(Deserialize)]
struct ProviderRef {
    uuid: String,
}

#[derive(Deserialize)]
struct InventoriesRoot {
    inventories: HashMap<String, ProviderInventory>,
}

#[derive(Deserialize)]
struct UsagesRoot {
    usages: HashMap<String, u64>,
}

#[derive(Deserialize)]
struct TraitsRoot {
    traits: Vec<String>,
}

/// Reads every resource provider from Placement (admin scope).
pub(crate) async fn providers(session: &Session) -> Result<Vec<Provider>> {
    let root: ProvidersRoot = session
        .send(
            &Scope::Admin,
            &Call::new(
                Method::GET,
                Service::Placement,
                "/resource_providers",
                "list resource providers",
            ),
        )
        .await?
        .json("placement: list resource providers")?;
    try_join_all(root.resource_providers.into_iter().map(|rp| async move {
        let base = format!("/resource_providers/{}", rp.uuid);
        let inv = session.run(
            &Scope::Admin,
            Call::new(
                Method::GET,
                Service::Placement,
                format!("{base}/inventories"),
                "read inventories",
            ),
        );
        let use_ = session.run(
            &Scope::Admin,
            Call::new(
                Method::GET,
                Service::Placement,
                format!("{base}/usages"),
                "read usages",
            ),
        );
        let tr = session.run(
            &Scope::Admin,
            Call::new(
                Method::GET,
                Service::Placement,
                format!("{base}/traits"),
                "read traits",
            ),
        );
        let (inv, use_, tr) = futures::try_join!(inv, use_, tr)?;
        Ok::<_, yunshu_core::Error>(Provider {
            inventories: inv
                .json::<InventoriesRoot>("placement: read inventories")?
                .inventories,
            usages: use_.json::<UsagesRoot>("placement: read usages")?.usages,
            traits: tr.json::<TraitsRoot>("placement: read traits")?.traits,
        })
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(total: u64, reserved: u64, ratio: f64, max_unit: u64) -> ProviderInventory {
        ProviderInventory {
            total,
            reserved,
            allocation_ratio: ratio,
            max_unit,
        }
    }

    fn provider(
        vcpu: ProviderInventory,
        mem: ProviderInventory,
        used_vcpu: u64,
        used_mem: u64,
        arch: &str,
    ) -> Provider {
        Provider {
            inventories: [
                ("VCPU".to_owned(), vcpu),
                ("MEMORY_MB".to_owned(), mem),
                ("CUSTOM_X".to_owned(), inv(5, 0, 1.0, 5)),
            ]
            .into(),
            usages: [
                ("VCPU".to_owned(), used_vcpu),
                ("MEMORY_MB".to_owned(), used_mem),
            ]
            .into(),
            traits: vec![arch.to_owned(), "COMPUTE_NODE".to_owned()],
        }
    }

    #[test]
    fn sums_classes_and_maps_traits() {
        let ps = [
            provider(
                inv(96, 0, 16.0, 96),
                inv(262_144, 512, 1.5, 262_144),
                10,
                4096,
                "HW_ARCH_AARCH64",
            ),
            provider(
                inv(64, 0, 16.0, 64),
                inv(131_072, 512, 1.5, 131_072),
                0,
                0,
                "HW_ARCH_AARCH64",
            ),
        ];
        let (inv, traits) = aggregate(&ps);
        assert_eq!(traits, vec![Trait::arch("aarch64").expect("trait")]);
        assert_eq!(inv.len(), 2, "CUSTOM_X is not a Yunshu class");
        let v = inv[&ResourceClass::Vcpu];
        assert_eq!((v.total, v.reserved, v.used), (160, 0, 10));
        assert!((v.allocation_ratio - 16.0).abs() < 1e-9);
        assert_eq!(v.capacity(), 2560);
        // Free on provider 1: 96*16-10 = 1526, capped by its max_unit 96.
        assert_eq!(v.max_unit, 96);
        let m = inv[&ResourceClass::MemoryMib];
        assert_eq!((m.total, m.reserved, m.used), (393_216, 1024, 4096));
        assert_eq!(
            m.capacity(),
            ((262_144 - 512) as f64 * 1.5) as u64 + ((131_072 - 512) as f64 * 1.5) as u64
        );
        // Largest free single unit: provider 1 (392448 - 4096 = 388352), capped by max_unit 262144.
        assert_eq!(m.max_unit, 262_144);
    }

    #[test]
    fn mixed_ratios_keep_capacity_and_max_unit_uses_free_space() {
        let ps = [
            provider(
                inv(10, 2, 2.0, 10),
                inv(1000, 0, 1.0, 1000),
                15,
                900,
                "HW_ARCH_X86_64",
            ),
            provider(
                inv(20, 0, 1.0, 20),
                inv(500, 0, 1.0, 500),
                18,
                0,
                "HW_ARCH_AARCH64",
            ),
        ];
        let (inv, traits) = aggregate(&ps);
        assert_eq!(traits.len(), 2);
        let v = inv[&ResourceClass::Vcpu];
        // (10-2)*2 + 20*1 = 36 capacity over 28 usable.
        assert_eq!(v.capacity(), 36);
        assert_eq!(v.used, 33);
        // Free: provider 1 16-15 = 1, provider 2 20-18 = 2.
        assert_eq!(v.max_unit, 2);
        assert_eq!(inv[&ResourceClass::MemoryMib].max_unit, 500);
    }

    #[test]
    fn no_providers_means_empty_inventory() {
        let (inv, traits) = aggregate(&[]);
        assert!(inv.is_empty() && traits.is_empty());
    }
}
