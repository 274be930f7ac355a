//! The fleet and the request mix of the invariant test.

pub mod history;

use std::collections::BTreeMap;

use chrono::Utc;
use yunshu_core::{
    codec, keys,
    meta::{Kind, Object},
    model::{FoundationSpec, Health, InventoryRecord},
    resources::ResourceClass,
    store::{Store, StoreExt},
};

use crate::common::{department, foundation, put_department, put_foundation};

/// Departments, and the per-foundation limit the checker verifies.
pub const DEPARTMENTS: [&str; 3] = ["health", "transport", "edu"];
pub const LIMITS: [history::FoundationLimit; 1] = [("transport", "kunpeng", 100)];

/// Six foundations: the city's two x86 phases, Kunpeng, PK (Phytium +
/// Kylin), a Hygon cloud whose inventory comes from a probe (reserved
/// cores, a largest unit of 16 vCPU), and a small x86 DR site.
pub async fn fleet(store: &dyn Store) {
    put_foundation(
        store,
        "x86-phase1",
        foundation(&["arch:x86_64", "cpu:intel"], 400, 2.0, 900),
    )
    .await;
    put_foundation(
        store,
        "x86-phase2",
        foundation(
            &["arch:x86_64", "cpu:intel", "security-level:2"],
            600,
            1.5,
            1000,
        ),
    )
    .await;
    put_foundation(
        store,
        "kunpeng",
        foundation(
            &["arch:aarch64", "cpu:kunpeng", "xinchuang", "os:openeuler"],
            512,
            1.0,
            600,
        ),
    )
    .await;
    put_foundation(
        store,
        "pk-phytium",
        foundation(
            &[
                "arch:aarch64",
                "cpu:phytium",
                "os:kylin",
                "xinchuang",
                "security-level:3",
            ],
            256,
            1.0,
            192,
        ),
    )
    .await;
    put_probed(store, "hygon").await;
    put_foundation(
        store,
        "x86-dr",
        foundation(&["arch:x86_64", "cpu:intel"], 64, 1.0, 128),
    )
    .await;

    put_department(store, "health", department(&[], &[])).await;
    put_department(store, "transport", department(&[("kunpeng", 100)], &[])).await;
    put_department(
        store,
        "edu",
        department(&[], &["x86-phase2", "pk-phytium", "hygon"]),
    )
    .await;
}

/// A foundation whose inventory a probe reported.
async fn put_probed(store: &dyn Store, name: &str) {
    let mut spec: FoundationSpec =
        foundation(&["arch:x86_64", "cpu:hygon", "xinchuang"], 0, 1.0, 0);
    spec.capacity = None;
    spec.allocation_ratios.clear();
    let mut f = Object::new(None, name, spec);
    let record = |total, reserved, ratio, max_unit| InventoryRecord {
        total,
        reserved,
        allocation_ratio: ratio,
        used: 0,
        max_unit,
    };
    f.status.health = Health::Ready;
    f.status.last_probe = Some(Utc::now());
    f.status.inventory = BTreeMap::from([
        (ResourceClass::Vcpu, record(200, 20, 3.0, 16)),
        (
            ResourceClass::MemoryMib,
            record(700 * 1024, 0, 1.0, 64 * 1024),
        ),
        (ResourceClass::DiskGib, record(100_000, 0, 1.0, 10_000)),
    ]);
    store
        .put(
            &keys::object(Kind::Foundation, None, name),
            codec::encode(&f).expect("encode"),
        )
        .await
        .expect("put probed foundation");
}

/// Request `i`: its department, vCPU and required traits.
pub fn request(i: usize) -> (&'static str, u32, Vec<&'static str>) {
    const SIZES: [u32; 8] = [1, 2, 1, 4, 2, 1, 8, 2];
    let dept = DEPARTMENTS[i % 3];
    let vcpu = if i % 50 == 7 { 32 } else { SIZES[i % 8] };
    let mut required = match i % 10 {
        0 | 1 => vec!["arch:aarch64"],
        2 => vec!["xinchuang"],
        3 => vec!["arch:x86_64"],
        4 => vec!["security-level:3"],
        5 => vec!["cpu:hygon"],
        _ => vec![],
    };
    if i % 97 == 13 {
        required.push("os:windows");
    }
    (dept, vcpu, required)
}
