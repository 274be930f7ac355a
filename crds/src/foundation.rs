//! Foundation: one cloud Yunshu drives through an adapter (cluster-scoped).

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use yunshu_core::model as core;

use crate::{
    Condition,
    condition::convert as conditions,
    convert::{self, ConversionError},
    schema,
};

/// Which adapter drives the foundation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// Keystone, Nova, Cinder, Glance, Placement.
    Openstack,
    /// An S3-compatible object store.
    S3,
    /// An out-of-process adapter speaking `yunshu.adapter.v1`.
    Remote,
}

/// The Secret holding the foundation's admin credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The Secret's namespace.
    #[schemars(schema_with = "schema::dns_label")]
    pub namespace: String,
}

/// The API rate budget Yunshu keeps to on this foundation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.burst >= self.requestsPerSecond",
    "message": "burst must be at least requestsPerSecond"
}]))]
pub struct Budget {
    /// Sustained calls per second.
    #[schemars(range(min = 1, max = 10000))]
    pub requests_per_second: u32,
    /// Calls allowed in a burst.
    #[schemars(range(min = 1, max = 100000))]
    pub burst: u32,
}

/// A cloud under Yunshu's management.
// Each printcolumn(...) repeats `name`/`type_`, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "yunshu.io",
    version = "v1alpha1",
    kind = "Foundation",
    shortname = "fdn",
    category = "yunshu",
    status = "FoundationStatus",
    derive = "PartialEq",
    doc = "A cloud Yunshu drives through an adapter: endpoint, credentials, traits, ratios, tariff.",
    printcolumn(name = "Adapter", type_ = "string", json_path = ".spec.adapter"),
    printcolumn(name = "Arch", type_ = "string", json_path = ".status.arch"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "vCPU Used",
        type_ = "integer",
        json_path = ".status.inventory.vcpu.used"
    ),
    printcolumn(
        name = "vCPU Total",
        type_ = "integer",
        description = "Allocatable vCPUs: (total - reserved) x allocation ratio",
        json_path = ".status.inventory.vcpu.capacity"
    ),
    printcolumn(
        name = "Memory Used MiB",
        type_ = "integer",
        json_path = ".status.inventory.memory_mib.used"
    ),
    printcolumn(
        name = "Memory Total MiB",
        type_ = "integer",
        json_path = ".status.inventory.memory_mib.capacity"
    ),
    printcolumn(
        name = "Disk Used GiB",
        type_ = "integer",
        priority = 1,
        json_path = ".status.inventory.disk_gib.used"
    ),
    printcolumn(
        name = "Disk Total GiB",
        type_ = "integer",
        priority = 1,
        json_path = ".status.inventory.disk_gib.capacity"
    ),
    printcolumn(
        name = "Volume Used GiB",
        type_ = "integer",
        priority = 1,
        json_path = ".status.inventory.volume_gib.used"
    ),
    printcolumn(
        name = "Volume Total GiB",
        type_ = "integer",
        priority = 1,
        json_path = ".status.inventory.volume_gib.capacity"
    ),
    printcolumn(
        name = "Region",
        type_ = "string",
        priority = 1,
        json_path = ".spec.region"
    ),
    printcolumn(
        name = "Latency ms",
        type_ = "number",
        priority = 1,
        json_path = ".status.apiLatencyMs"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.endpoint.matches('^https?://')",
    "message": "the endpoint must be an http:// or https:// URL (Keystone, the S3 service, or a remote adapter service)",
    "fieldPath": ".endpoint"
}]))]
pub struct FoundationSpec {
    /// The adapter that drives it.
    pub adapter: AdapterKind,
    /// Keystone URL, S3 endpoint or the remote adapter's address.
    #[schemars(length(min = 1, max = 2048))]
    pub endpoint: String,
    /// The cloud's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub region: Option<String>,
    /// The availability zones offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::name_set")]
    pub zones: Vec<String>,
    /// The Secret with the admin credentials; never stored in the CR itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Capability traits (`arch:aarch64`, `cpu:kunpeng`, `xinchuang`, `security-level:3`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::traits")]
    pub traits: Vec<String>,
    /// Overcommit per resource class (1.0 when absent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::class_ratios")]
    pub allocation_ratios: BTreeMap<String, f64>,
    /// Price per unit-hour per resource class (`vcpu` per vCPU-hour, `memory_mib` per MiB-hour, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::class_prices")]
    pub tariff: BTreeMap<String, f64>,
    /// Power usage effectiveness, for the energy score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0, max = 3.0))]
    pub pue: Option<f64>,
    /// API rate budget; 10 calls/s with bursts of 20 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Declared inventory per resource class, for adapters that cannot measure one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::class_amounts")]
    pub capacity: BTreeMap<String, u64>,
    /// Adapter-specific settings (e.g. the S3 admin dialect).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "settings")]
    pub settings: BTreeMap<String, String>,
}

fn settings(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 32,
        "additionalProperties": { "type": "string", "maxLength": 1024 }
    })
}

/// How the foundation is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Health {
    /// Not probed yet.
    #[default]
    Unknown,
    /// Answering and usable.
    Ready,
    /// Answering badly; the scheduler avoids it.
    Degraded,
    /// Not answering.
    Down,
}

/// One resource class of the measured inventory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryRecord {
    /// Physical total.
    pub total: u64,
    /// Held back by the operator.
    pub reserved: u64,
    /// Overcommit ratio.
    pub allocation_ratio: f64,
    /// What may be allocated in all: `(total - reserved) * allocationRatio`.
    pub capacity: u64,
    /// Allocated.
    pub used: u64,
    /// The largest amount one request can get on a single host.
    pub max_unit: u64,
}

/// What the operator observed of the foundation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundationStatus {
    /// Health from the last probe.
    #[serde(default)]
    pub health: Health,
    /// The architecture from the `arch:` trait, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Measured API latency of the last probe, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_latency_ms: Option<f64>,
    /// Inventory per resource class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "inventory")]
    pub inventory: BTreeMap<String, InventoryRecord>,
    /// When it was last probed, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub last_probe: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// Ready, Synced.
    #[serde(default)]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
}

fn inventory(generator: &mut SchemaGenerator) -> Schema {
    let mut map = schema::class_amounts(generator);
    map.insert(
        "additionalProperties".into(),
        InventoryRecord::json_schema(generator).into(),
    );
    map
}

impl From<core::AdapterKind> for AdapterKind {
    fn from(k: core::AdapterKind) -> Self {
        match k {
            core::AdapterKind::Openstack => Self::Openstack,
            core::AdapterKind::S3 => Self::S3,
            core::AdapterKind::Remote => Self::Remote,
        }
    }
}

impl From<AdapterKind> for core::AdapterKind {
    fn from(k: AdapterKind) -> Self {
        match k {
            AdapterKind::Openstack => Self::Openstack,
            AdapterKind::S3 => Self::S3,
            AdapterKind::Remote => Self::Remote,
        }
    }
}

impl TryFrom<FoundationSpec> for core::FoundationSpec {
    type Error = ConversionError;

    fn try_from(s: FoundationSpec) -> Result<Self, Self::Error> {
        Ok(Self {
            adapter: s.adapter.into(),
            endpoint: s.endpoint,
            region: s.region,
            zones: s.zones,
            credentials: s
                .credentials_secret_ref
                .map(|r| core::CredentialsRef::Secret {
                    namespace: r.namespace,
                    name: r.name,
                }),
            traits: convert::traits("spec.traits", s.traits)?,
            allocation_ratios: convert::classes("spec.allocationRatios", s.allocation_ratios)?,
            tariff: convert::classes("spec.tariff", s.tariff)?,
            pue: s.pue,
            budget: s
                .budget
                .map_or_else(core::Budget::default, |b| core::Budget {
                    requests_per_second: b.requests_per_second,
                    burst: b.burst,
                }),
            capacity: if s.capacity.is_empty() {
                None
            } else {
                Some(convert::resources("spec.capacity", s.capacity)?)
            },
            settings: s.settings,
        })
    }
}

impl From<core::Health> for Health {
    fn from(h: core::Health) -> Self {
        match h {
            core::Health::Unknown => Self::Unknown,
            core::Health::Ready => Self::Ready,
            core::Health::Degraded => Self::Degraded,
            core::Health::Down => Self::Down,
        }
    }
}

impl From<core::InventoryRecord> for InventoryRecord {
    fn from(r: core::InventoryRecord) -> Self {
        Self {
            total: r.total,
            reserved: r.reserved,
            allocation_ratio: r.allocation_ratio,
            capacity: r.capacity(),
            used: r.used,
            max_unit: r.max_unit,
        }
    }
}

impl FoundationStatus {
    /// The CR status for a core status, given the spec's traits (for the arch
    /// column) and the generation it describes.
    pub fn from_core(status: core::FoundationStatus, traits: &[String], generation: i64) -> Self {
        Self {
            health: status.health.into(),
            arch: traits
                .iter()
                .find_map(|t| t.strip_prefix("arch:"))
                .map(str::to_owned),
            api_latency_ms: status.api_latency_ms,
            inventory: status
                .inventory
                .into_iter()
                .map(|(c, r)| (c.as_str().to_owned(), r.into()))
                .collect(),
            last_probe: status
                .last_probe
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            observed_generation: generation,
            conditions: conditions(status.conditions),
        }
    }
}
