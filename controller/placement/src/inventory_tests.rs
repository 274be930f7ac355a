//! Inventories: declared and probed capacity, the capped largest unit, and
//! the fit check the committers rely on.

use std::collections::BTreeMap;

use chrono::Utc;
use proptest::prelude::*;
use yunshu_core::model::{AdapterKind, Budget, FoundationStatus};

use super::*;

fn spec(capacity: Option<Resources>, ratios: &[(ResourceClass, f64)]) -> FoundationSpec {
    FoundationSpec {
        adapter: AdapterKind::Openstack,
        endpoint: "https://x.invalid".into(),
        region: None,
        zones: Vec::new(),
        credentials: None,
        traits: Vec::new(),
        allocation_ratios: ratios.iter().copied().collect(),
        tariff: BTreeMap::new(),
        pue: None,
        budget: Budget::default(),
        capacity,
        settings: BTreeMap::new(),
    }
}

fn record(total: u64, reserved: u64, ratio: f64, max_unit: u64) -> InventoryRecord {
    InventoryRecord {
        total,
        reserved,
        allocation_ratio: ratio,
        used: 0,
        max_unit,
    }
}

fn vcpu(n: u64) -> Resources {
    Resources::from_pairs([(ResourceClass::Vcpu, n)])
}

#[test]
fn declared_capacity_becomes_inventory_with_ratios() {
    let s = spec(
        Some(Resources::from_pairs([
            (ResourceClass::Vcpu, 100),
            (ResourceClass::MemoryMib, 4096),
        ])),
        &[(ResourceClass::Vcpu, 4.0)],
    );
    let inv = declared_inventory(&s);
    assert_eq!(inv.len(), 2);
    let v = inv[&ResourceClass::Vcpu];
    assert_eq!(
        (v.total, v.allocation_ratio, v.capacity(), v.max_unit),
        (100, 4.0, 400, 400)
    );
    assert_eq!(inv[&ResourceClass::MemoryMib].capacity(), 4096);
    assert!(declared_inventory(&spec(None, &[])).is_empty());
}

#[test]
fn a_probe_wins_over_the_declaration_but_not_over_the_admins_ratio() {
    let mut f = Foundation::new(None, "f", spec(Some(vcpu(10)), &[]));
    assert_eq!(
        observed(&f).0,
        Health::Ready,
        "declared and not probed counts as Ready"
    );
    assert_eq!(observed(&f).1[&ResourceClass::Vcpu].capacity(), 10);

    f.spec.allocation_ratios.insert(ResourceClass::Vcpu, 2.0);
    f.status = FoundationStatus {
        health: Health::Degraded,
        last_probe: Some(Utc::now()),
        inventory: BTreeMap::from([(
            ResourceClass::Vcpu,
            InventoryRecord {
                used: 77,
                ..record(64, 4, 8.0, 16)
            },
        )]),
        ..FoundationStatus::default()
    };
    let (health, inv) = observed(&f);
    assert_eq!(health, Health::Degraded);
    let v = inv[&ResourceClass::Vcpu];
    assert_eq!(v.capacity(), 120, "(64 - 4) x the admin's 2.0");
    assert_eq!(v.used, 0, "the probe's used is not placement's");

    let unprobed = Foundation::new(None, "g", spec(None, &[]));
    assert_eq!(observed(&unprobed), (Health::Unknown, Inventory::new()));
}

#[test]
fn a_declared_class_the_probe_does_not_measure_still_counts() {
    let mut f = Foundation::new(
        None,
        "f",
        spec(
            Some(Resources::from_pairs([
                (ResourceClass::Vcpu, 10),
                (ResourceClass::VolumeGib, 500),
            ])),
            &[],
        ),
    );
    f.status = FoundationStatus {
        health: Health::Ready,
        last_probe: Some(Utc::now()),
        inventory: BTreeMap::from([(ResourceClass::Vcpu, record(64, 0, 1.0, 16))]),
        ..FoundationStatus::default()
    };
    let (_, inv) = observed(&f);
    assert_eq!(inv[&ResourceClass::Vcpu].capacity(), 64, "measured wins");
    assert_eq!(
        inv[&ResourceClass::VolumeGib].capacity(),
        500,
        "declared fills in"
    );
}

#[test]
fn the_largest_unit_is_capped_by_what_is_free() {
    let r = record(100, 0, 1.0, 32);
    assert_eq!(effective(&r, 10).max_unit, 32);
    assert_eq!(effective(&r, 80).max_unit, 20);
    assert_eq!(effective(&r, 120).max_unit, 0);
    assert_eq!(effective(&r, 80).used, 80);
}

#[test]
fn fit_names_the_class_and_the_limit() {
    let inv = Inventory::from([(ResourceClass::Vcpu, record(100, 0, 1.0, 8))]);
    let mut alloc = AllocationRecord::default();
    assert_eq!(check_fit(&inv, &alloc, "d", None, &vcpu(8)), Ok(()));
    let err = check_fit(&inv, &alloc, "d", None, &vcpu(16)).expect_err("fragmented");
    assert_eq!(
        err.to_string(),
        "vcpu: 16 requested, 100 free, largest free unit 8"
    );
    let mem = Resources::from_pairs([(ResourceClass::MemoryMib, 1)]);
    assert_eq!(
        check_fit(&inv, &alloc, "d", None, &mem),
        Err(Misfit::NoInventory(ResourceClass::MemoryMib))
    );
    alloc = alloc.plus("d", &vcpu(95)).expect("no overflow");
    assert!(matches!(
        check_fit(&inv, &alloc, "e", None, &vcpu(6)),
        Err(Misfit::Capacity {
            free: 5,
            max_unit: 5,
            ..
        })
    ));
    let limits = Limits::from([(ResourceClass::Vcpu, 96)]);
    let err = check_fit(&inv, &alloc, "d", Some(&limits), &vcpu(2)).expect_err("quota");
    assert_eq!(
        err.to_string(),
        "vcpu requested 2, used 95, limit 96 on this foundation"
    );
    assert_eq!(
        check_fit(&inv, &alloc, "e", Some(&limits), &vcpu(2)),
        Ok(())
    );
}

#[test]
fn allocations_add_and_release_per_department() {
    let a = AllocationRecord::default()
        .plus("health", &vcpu(4))
        .and_then(|a| a.plus("edu", &vcpu(2)))
        .expect("no overflow");
    assert_eq!(a.used.get(ResourceClass::Vcpu), 6);
    let b = a.minus("health", &vcpu(4));
    assert_eq!(b.used.get(ResourceClass::Vcpu), 2);
    assert!(
        !b.departments.contains_key("health"),
        "empty departments are dropped"
    );
    assert_eq!(b.department("edu").get(ResourceClass::Vcpu), 2);
    let max = Resources::from_pairs([(ResourceClass::Vcpu, u64::MAX)]);
    assert_eq!(a.plus("x", &max), None);
}

proptest! {
    /// Whatever is asked, charges accepted by `check_fit` never take a
    /// class past capacity x ratio, nor a department past its limit.
    #[test]
    fn accepted_charges_stay_within_capacity(
        total in 0u64..200,
        reserved in 0u64..50,
        ratio in 0.5f64..4.0,
        max_unit in 0u64..64,
        limit in 0u64..300,
        asks in prop::collection::vec((0u64..80, 0usize..3), 1..60),
    ) {
        let inv = Inventory::from([(ResourceClass::Vcpu, record(total, reserved, ratio, max_unit))]);
        let capacity = inv[&ResourceClass::Vcpu].capacity();
        let limits = Limits::from([(ResourceClass::Vcpu, limit)]);
        let mut alloc = AllocationRecord::default();
        for (n, d) in asks {
            let dept = ["a", "b", "c"][d];
            if check_fit(&inv, &alloc, dept, Some(&limits), &vcpu(n)).is_ok() {
                prop_assert!(n <= max_unit);
                alloc = alloc.plus(dept, &vcpu(n)).expect("small");
            }
            prop_assert!(alloc.used.get(ResourceClass::Vcpu) <= capacity);
            prop_assert!(alloc.department(dept).get(ResourceClass::Vcpu) <= limit);
        }
    }
}
