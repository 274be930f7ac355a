//! The cache: revisions order updates, decisions see committed and held
//! charges, the largest unit is capped, and policies are looked up.

use chrono::Utc;
use yunshu_core::{
    keys as core_keys,
    model::{Budget, DepartmentSpec, FoundationSpec, Health, InventoryRecord, Quota, Strategy},
    resources::{Limits, ResourceClass},
    store::KeyValue,
};
use yunshu_scheduler::{Reason, Verdict};

use super::*;

fn kv(key: String, value: Vec<u8>, revision: Revision) -> KeyValue {
    KeyValue {
        key,
        value,
        create_revision: revision,
        mod_revision: revision,
        version: 1,
        lease: None,
    }
}

fn spec(adapter: AdapterKind, traits: &[&str], vcpu: u64) -> FoundationSpec {
    FoundationSpec {
        adapter,
        endpoint: "https://x.invalid".into(),
        region: None,
        zones: Vec::new(),
        credentials: None,
        traits: traits.iter().map(|t| t.parse().expect("trait")).collect(),
        allocation_ratios: BTreeMap::new(),
        tariff: BTreeMap::new(),
        pue: None,
        budget: Budget::default(),
        capacity: Some(Resources::from_pairs([(ResourceClass::Vcpu, vcpu)])),
        settings: BTreeMap::new(),
    }
}

fn put<S: Spec>(cache: &mut Cache, name: &str, spec: S, revision: Revision) -> Changed {
    let o = Object::new(None, name, spec);
    let key = core_keys::object(S::KIND, None, name);
    cache.apply(
        EventKind::Put,
        &kv(key, codec::encode(&o).expect("encode"), revision),
    )
}

fn vcpus(n: u64) -> Request {
    Request::new(
        Kind::Instance,
        Resources::from_pairs([(ResourceClass::Vcpu, n)]),
    )
}

/// An x86 and an aarch64 foundation of 16 vCPU each, department `d`.
fn cache() -> Cache {
    let mut c = Cache::default();
    put(
        &mut c,
        "x86",
        spec(AdapterKind::Openstack, &["arch:x86_64"], 16),
        2,
    );
    put(
        &mut c,
        "arm",
        spec(AdapterKind::Openstack, &["arch:aarch64"], 16),
        3,
    );
    put(&mut c, "d", DepartmentSpec::default(), 4);
    c
}

fn chosen(c: &mut Cache, r: Request) -> Option<String> {
    let d = c.decide("d", r).expect("department known");
    d.decision
        .chosen()
        .map(|i| c.current_fleet().candidates()[i].name().to_owned())
}

#[test]
fn decides_by_architecture() {
    let mut c = cache();
    let mut r = vcpus(2);
    r.required_traits = vec!["arch:aarch64".parse().expect("trait")];
    assert_eq!(chosen(&mut c, r).as_deref(), Some("arm"));
    assert!(c.decide("nobody", vcpus(1)).is_none());
}

#[test]
fn held_and_committed_charges_take_room() {
    let mut c = cache();
    c.hold(
        "arm",
        "d",
        &Resources::from_pairs([(ResourceClass::Vcpu, 10)]),
    );
    let a = AllocationRecord::default()
        .plus("d", &Resources::from_pairs([(ResourceClass::Vcpu, 10)]))
        .expect("small");
    assert_eq!(c.set_allocation("x86", 7, a.clone()), Some(false));
    assert_eq!(
        c.set_allocation("x86", 6, a),
        None,
        "older revisions are ignored"
    );
    assert_eq!(chosen(&mut c, vcpus(8)), None);
    let d = c.decide("d", vcpus(8)).expect("department");
    assert_eq!(
        d.decision.verdicts()[0],
        Verdict::Rejected(Reason::Insufficient {
            class: ResourceClass::Vcpu,
            requested: 8,
            free: 6
        })
    );
    c.unhold(
        "arm",
        "d",
        &Resources::from_pairs([(ResourceClass::Vcpu, 10)]),
    );
    assert_eq!(chosen(&mut c, vcpus(8)).as_deref(), Some("arm"));
    assert_eq!(
        c.set_allocation("x86", 9, AllocationRecord::default()),
        Some(true),
        "freed room is reported"
    );
}

#[test]
fn a_probed_largest_unit_is_capped_by_what_is_free() {
    let mut c = cache();
    let mut f = Object::new(
        None,
        "arm",
        spec(AdapterKind::Openstack, &["arch:aarch64"], 0),
    );
    f.status.health = Health::Ready;
    f.status.last_probe = Some(Utc::now());
    f.status.inventory.insert(
        ResourceClass::Vcpu,
        InventoryRecord {
            total: 100,
            reserved: 0,
            allocation_ratio: 1.0,
            used: 0,
            max_unit: 8,
        },
    );
    let key = core_keys::object(Kind::Foundation, None, "arm");
    let changed = c.apply(
        EventKind::Put,
        &kv(key, codec::encode(&f).expect("encode"), 9),
    );
    assert_eq!(changed, Changed::Config);
    let d = c.decide("d", vcpus(12)).expect("department");
    assert!(matches!(
        d.decision.verdicts()[0],
        Verdict::Rejected(Reason::Fragmented {
            max_unit: 8,
            free: 100,
            ..
        })
    ));
    c.hold(
        "arm",
        "d",
        &Resources::from_pairs([(ResourceClass::Vcpu, 95)]),
    );
    let d = c.decide("d", vcpus(6)).expect("department");
    assert!(matches!(
        d.decision.verdicts()[0],
        Verdict::Rejected(Reason::Insufficient { free: 5, .. })
    ));
}

#[test]
fn updates_are_ordered_by_revision() {
    let mut c = cache();
    assert_eq!(
        put(&mut c, "arm", spec(AdapterKind::S3, &[], 1), 3),
        Changed::Nothing,
        "same revision"
    );
    assert_eq!(
        put(&mut c, "arm", spec(AdapterKind::S3, &[], 1), 8),
        Changed::Config
    );
    // An S3 foundation cannot take instances.
    let d = c.decide("d", vcpus(1)).expect("department");
    assert_eq!(
        d.decision.verdicts()[0],
        Verdict::Rejected(Reason::Unsupported {
            kind: Kind::Instance
        })
    );
    let key = core_keys::object(Kind::Foundation, None, "arm");
    assert_eq!(
        c.apply(EventKind::Delete, &kv(key.clone(), vec![], 5)),
        Changed::Nothing
    );
    assert_eq!(
        c.apply(EventKind::Delete, &kv(key, vec![], 12)),
        Changed::Config
    );
    assert_eq!(c.fleet().len(), 1);
    let junk = kv(crate::keys::allocation("x86"), b"{".to_vec(), 20);
    assert_eq!(
        c.apply(EventKind::Put, &junk),
        Changed::Nothing,
        "malformed is skipped"
    );
}

#[test]
fn a_departments_policy_beats_the_default() {
    let mut c = cache();
    assert_eq!(c.policy_for("d").0, None);
    put(&mut c, "default", PlacementPolicySpec::default(), 5);
    let binpack = PlacementPolicySpec {
        department: Some("d".into()),
        strategy: Strategy::Binpack,
        ..PlacementPolicySpec::default()
    };
    put(&mut c, "d-pack", binpack, 6);
    assert_eq!(c.policy_for("d").0.as_deref(), Some("d-pack"));
    assert_eq!(c.policy_for("d").1.strategy, Strategy::Binpack);
    assert_eq!(c.policy_for("other").0.as_deref(), Some("default"));
}

#[test]
fn per_foundation_quota_counts_committed_and_held() {
    let mut c = cache();
    let dept = DepartmentSpec {
        quota: Quota {
            per_foundation: BTreeMap::from([(
                "arm".to_owned(),
                Limits::from([(ResourceClass::Vcpu, 4)]),
            )]),
            ..Quota::default()
        },
        allowed_foundations: vec!["arm".into()],
        ..DepartmentSpec::default()
    };
    put(&mut c, "d", dept, 10);
    c.hold(
        "arm",
        "d",
        &Resources::from_pairs([(ResourceClass::Vcpu, 3)]),
    );
    let d = c.decide("d", vcpus(2)).expect("department");
    assert!(matches!(
        d.decision.verdicts()[0],
        Verdict::Rejected(Reason::OverQuota {
            used: 3,
            limit: 4,
            ..
        })
    ));
    assert_eq!(
        d.decision.verdicts()[1],
        Verdict::Rejected(Reason::NotAllowed)
    );
}

#[test]
fn probed_kinds_and_error_rates_reach_the_decision() {
    // Three remote foundations, equal but for what their probes said: one
    // serves only buckets, one fails half its calls.
    let mut c = Cache::default();
    for (name, revision) in [("flaky", 2), ("buckets", 3), ("steady", 4)] {
        let mut f = Object::new(None, name, spec(AdapterKind::Remote, &[], 16));
        f.status.health = Health::Ready;
        f.status.api_latency_ms = Some(20.0);
        f.status.kinds = vec![Kind::Instance, Kind::Volume];
        match name {
            "flaky" => f.status.api_error_rate = Some(0.5),
            "buckets" => f.status.kinds = vec![Kind::Bucket],
            _ => f.status.api_error_rate = Some(0.0),
        }
        let key = core_keys::object(Kind::Foundation, None, name);
        c.apply(
            EventKind::Put,
            &kv(key, codec::encode(&f).expect("encode"), revision),
        );
    }
    put(&mut c, "d", DepartmentSpec::default(), 5);
    let d = c.decide("d", vcpus(2)).expect("department");
    let name = |i: usize| c.current_fleet().candidates()[i].name().to_owned();
    let by_name = |n: &str| (0..3).find(|i| name(*i) == n).expect("candidate");
    assert!(matches!(
        d.decision.verdicts()[by_name("buckets")],
        Verdict::Rejected(Reason::Unsupported { .. })
    ));
    assert_eq!(
        d.decision.chosen().map(name).as_deref(),
        Some("steady"),
        "the foundation failing half its calls scores lower"
    );
}

#[test]
fn a_remote_foundation_gets_nothing_before_its_first_probe() {
    let mut c = Cache::default();
    put(&mut c, "vendor", spec(AdapterKind::Remote, &[], 16), 2);
    put(&mut c, "d", DepartmentSpec::default(), 3);
    let d = c.decide("d", vcpus(2)).expect("department");
    assert!(matches!(
        d.decision.verdicts()[0],
        Verdict::Rejected(Reason::Unsupported { .. })
    ));
}
