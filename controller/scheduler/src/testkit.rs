//! Test fixtures: foundations, departments and requests in a few words.

use std::collections::BTreeMap;

use yunshu_core::{
    meta::Kind,
    model::{
        AdapterKind, Budget, FoundationSpec, FoundationStatus, Group, GroupPolicy, Health,
        InventoryRecord, PlacementPolicySpec,
    },
    resources::{Limits, ResourceClass, Resources},
};

use crate::{Decision, Fleet, FoundationInput, GroupRequest, Request, Tenancy, decide};

/// A foundation under construction, in core types.
#[derive(Debug, Clone)]
pub struct F {
    pub name: String,
    pub spec: FoundationSpec,
    pub status: FoundationStatus,
    pub kinds: Vec<Kind>,
    pub error_rate: f64,
}

impl F {
    /// A Ready foundation that creates instances and volumes and holds nothing.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            spec: FoundationSpec {
                adapter: AdapterKind::Openstack,
                endpoint: format!("https://{name}.invalid"),
                region: None,
                zones: Vec::new(),
                credentials: None,
                traits: Vec::new(),
                allocation_ratios: BTreeMap::new(),
                tariff: BTreeMap::new(),
                pue: None,
                budget: Budget::default(),
                capacity: None,
                settings: BTreeMap::new(),
            },
            status: FoundationStatus {
                health: Health::Ready,
                ..FoundationStatus::default()
            },
            kinds: vec![Kind::Instance, Kind::Volume],
            error_rate: 0.0,
        }
    }

    pub fn kinds(mut self, kinds: &[Kind]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }

    pub fn health(mut self, h: Health) -> Self {
        self.status.health = h;
        self
    }

    pub fn traits(mut self, traits: &[&str]) -> Self {
        self.spec.traits = traits
            .iter()
            .map(|t| t.parse().expect("valid trait"))
            .collect();
        self
    }

    pub fn zones(mut self, zones: &[&str]) -> Self {
        self.spec.zones = zones.iter().map(|z| (*z).to_owned()).collect();
        self
    }

    pub fn region(mut self, region: &str) -> Self {
        self.spec.region = Some(region.into());
        self
    }

    /// One class of inventory with ratio 1 and no reservation.
    pub fn inv(mut self, class: ResourceClass, total: u64, used: u64, max_unit: u64) -> Self {
        let record = InventoryRecord {
            total,
            reserved: 0,
            allocation_ratio: 1.0,
            used,
            max_unit,
        };
        self.status.inventory.insert(class, record);
        self
    }

    pub fn vcpu(self, total: u64, used: u64, max_unit: u64) -> Self {
        self.inv(ResourceClass::Vcpu, total, used, max_unit)
    }

    /// Plenty of vCPU, memory and disk.
    pub fn roomy(self) -> Self {
        self.vcpu(1000, 0, 64)
            .inv(ResourceClass::MemoryMib, 1 << 22, 0, 1 << 18)
            .inv(ResourceClass::DiskGib, 100_000, 0, 10_000)
            .inv(ResourceClass::VolumeGib, 100_000, 0, 10_000)
    }

    pub fn tariff(mut self, class: ResourceClass, price: f64) -> Self {
        self.spec.tariff.insert(class, price);
        self
    }

    pub fn pue(mut self, pue: f64) -> Self {
        self.spec.pue = Some(pue);
        self
    }

    pub fn api(mut self, error_rate: f64, latency_ms: Option<f64>) -> Self {
        self.error_rate = error_rate;
        self.status.api_latency_ms = latency_ms;
        self
    }

    pub fn input(&self) -> FoundationInput<'_> {
        FoundationInput {
            name: &self.name,
            spec: &self.spec,
            status: &self.status,
            kinds: &self.kinds,
            api_error_rate: self.error_rate,
        }
    }
}

pub fn fleet_of(fs: &[F]) -> Fleet {
    Fleet::new(fs.iter().map(F::input))
}

/// An instance request for `vcpu` vCPUs and nothing else.
pub fn vcpus(vcpu: u64) -> Request {
    Request::new(
        Kind::Instance,
        Resources::from_pairs([(ResourceClass::Vcpu, vcpu)]),
    )
}

pub fn traits(ts: &[&str]) -> Vec<yunshu_core::traits::Trait> {
    ts.iter().map(|t| t.parse().expect("valid trait")).collect()
}

pub fn group(policy: GroupPolicy, members: &[&str]) -> GroupRequest {
    GroupRequest {
        group: Group {
            name: "g".into(),
            policy,
        },
        members: members.iter().map(|m| (*m).to_owned()).collect(),
    }
}

/// Per-foundation limits from `(foundation, class, limit)`.
pub fn limits(rows: &[(&str, ResourceClass, u64)]) -> BTreeMap<String, Limits> {
    let mut out = BTreeMap::<String, Limits>::new();
    for (f, class, limit) in rows {
        out.entry((*f).to_owned())
            .or_default()
            .insert(*class, *limit);
    }
    out
}

/// Decides with an unrestricted department and the default policy.
pub fn decide_plain(fleet: &Fleet, request: &Request) -> Decision {
    decide(
        fleet,
        &Tenancy::unrestricted(fleet),
        &PlacementPolicySpec::default(),
        request,
    )
}
