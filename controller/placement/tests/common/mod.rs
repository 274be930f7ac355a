//! Fixtures shared by the integration tests: foundations with declared
//! capacity, departments, instances, and waiting for an object's phase.

#![allow(dead_code)]

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use yunshu_core::{
    codec, keys,
    meta::{Kind, Object},
    model::{
        AdapterKind, Budget, DepartmentSpec, FoundationSpec, Instance, InstanceSpec, Phase, Quota,
    },
    resources::{Limits, ResourceClass, Resources},
    store::{Store, StoreExt},
    traits::Trait,
};
use yunshu_placement::{AllocationRecord, keys as pkeys};

pub fn traits(ts: &[&str]) -> Vec<Trait> {
    ts.iter().map(|t| t.parse().expect("valid trait")).collect()
}

/// An OpenStack foundation declaring vCPU, memory and disk capacity.
pub fn foundation(ts: &[&str], vcpu: u64, vcpu_ratio: f64, memory_gib: u64) -> FoundationSpec {
    FoundationSpec {
        adapter: AdapterKind::Openstack,
        endpoint: "https://cloud.invalid:5000/v3".into(),
        region: None,
        zones: Vec::new(),
        credentials: None,
        traits: traits(ts),
        allocation_ratios: BTreeMap::from([(ResourceClass::Vcpu, vcpu_ratio)]),
        tariff: BTreeMap::new(),
        pue: None,
        budget: Budget::default(),
        capacity: Some(Resources::from_pairs([
            (ResourceClass::Vcpu, vcpu),
            (ResourceClass::MemoryMib, memory_gib * 1024),
            (ResourceClass::DiskGib, 100_000),
        ])),
        settings: BTreeMap::new(),
    }
}

/// Creates or replaces a foundation (a replacement bumps its generation).
pub async fn put_foundation(store: &dyn Store, name: &str, spec: FoundationSpec) {
    let key = keys::object(Kind::Foundation, None, name);
    let object = match store.get(&key).await.expect("get") {
        Some(kv) => {
            let mut o: Object<FoundationSpec> = codec::decode_object(&kv).expect("decode");
            o.spec = spec;
            o.meta.generation += 1;
            o
        }
        None => Object::new(None, name, spec),
    };
    store
        .put(&key, codec::encode(&object).expect("encode"))
        .await
        .expect("put foundation");
}

pub async fn put_department(store: &dyn Store, name: &str, spec: DepartmentSpec) {
    let object = Object::new(None, name, spec);
    store
        .put(
            &keys::department(name),
            codec::encode(&object).expect("encode"),
        )
        .await
        .expect("put department");
}

/// A department with a large overall vCPU quota.
pub fn department(per_foundation: &[(&str, u64)], allowed: &[&str]) -> DepartmentSpec {
    DepartmentSpec {
        quota: Quota {
            hard: Limits::from([(ResourceClass::Vcpu, 1_000_000)]),
            per_foundation: per_foundation
                .iter()
                .map(|(f, vcpu)| {
                    (
                        (*f).to_owned(),
                        Limits::from([(ResourceClass::Vcpu, *vcpu)]),
                    )
                })
                .collect(),
        },
        allowed_foundations: allowed.iter().map(|a| (*a).to_owned()).collect(),
        ..DepartmentSpec::default()
    }
}

pub fn instance(dept: &str, name: &str, vcpu: u32, required: &[&str]) -> Instance {
    let mut spec = InstanceSpec {
        vcpu,
        memory_mib: u64::from(vcpu) * 1024,
        disk_gib: 20,
        image: "kylin-v10".into(),
        constraints: Default::default(),
        group: None,
        power: Default::default(),
    };
    spec.constraints.required_traits = traits(required);
    Instance::new(Some(dept), name, spec)
}

pub async fn read_instance(store: &dyn Store, dept: &str, name: &str) -> Option<Instance> {
    let kv = store
        .get(&keys::object(Kind::Instance, Some(dept), name))
        .await
        .expect("get")?;
    Some(codec::decode_object(&kv).expect("decode"))
}

/// Waits until the instance is in `phase`; panics with its last state after `within`.
pub async fn wait_phase(
    store: &Arc<dyn Store>,
    dept: &str,
    name: &str,
    phase: Phase,
    within: Duration,
) -> Instance {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let current = read_instance(&**store, dept, name).await;
        if let Some(i) = &current
            && i.status.phase == phase
        {
            return current.expect("present");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{dept}/{name} did not become {phase:?}: {current:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn allocation(store: &dyn Store, foundation: &str) -> AllocationRecord {
    match store
        .get(&pkeys::allocation(foundation))
        .await
        .expect("get")
    {
        Some(kv) => codec::decode(&kv.key, &kv.value).expect("decode"),
        None => AllocationRecord::default(),
    }
}
