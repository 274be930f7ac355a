//! Department resources: Instance, Volume and Bucket (namespaced; the namespace's
//! [`DEPARTMENT_LABEL`](crate::DEPARTMENT_LABEL) names the department).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use yunshu_core::model as core;

use crate::{
    Condition,
    condition::convert as conditions,
    convert::{self, ConversionError},
    schema,
};

/// Placement constraints shared by the department resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Constraints {
    /// Traits the foundation must have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::traits")]
    pub required_traits: Vec<String>,
    /// Traits the foundation must not have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::traits")]
    pub forbidden_traits: Vec<String>,
    /// The availability zone, if it matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::dns_label")]
    pub zone: Option<String>,
}

/// The CEL rules every department resource's spec carries.
fn constraints_rules() -> serde_json::Value {
    serde_json::json!([{
        "rule": "!has(self.requiredTraits) || !has(self.forbiddenTraits) || self.requiredTraits.all(t, !(t in self.forbiddenTraits))",
        "message": "a trait may not be both required and forbidden"
    }])
}

impl Constraints {
    fn into_core(self) -> Result<core::Constraints, ConversionError> {
        Ok(core::Constraints {
            required_traits: convert::traits("spec.requiredTraits", self.required_traits)?,
            forbidden_traits: convert::traits("spec.forbiddenTraits", self.forbidden_traits)?,
            zone: self.zone,
        })
    }
}

/// Together on one foundation, or spread over several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum GroupPolicy {
    /// Keep together on one foundation.
    Affinity,
    /// Spread over foundations.
    AntiAffinity,
}

/// An affinity or spread group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Group {
    /// The group's name within the department.
    #[schemars(schema_with = "schema::dns_label")]
    pub name: String,
    /// Together or apart.
    pub policy: GroupPolicy,
}

/// Whether an instance should be running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    /// Running.
    #[default]
    Running,
    /// Stopped.
    Stopped,
}

/// A virtual machine for the namespace's department.
// Each printcolumn(...) repeats `name`/`type_`, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "yunshu.io",
    version = "v1alpha1",
    kind = "Instance",
    namespaced,
    shortname = "inst",
    category = "yunshu",
    status = "WorkloadStatus",
    derive = "PartialEq",
    doc = "A virtual machine placed by Yunshu on a foundation that fits it.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Foundation",
        type_ = "string",
        json_path = ".status.placement.foundation"
    ),
    printcolumn(name = "Arch", type_ = "string", json_path = ".status.arch"),
    printcolumn(name = "Address", type_ = "string", json_path = ".status.addresses[0]"),
    printcolumn(
        name = "vCPU",
        type_ = "integer",
        priority = 1,
        json_path = ".spec.vcpu"
    ),
    printcolumn(
        name = "Memory MiB",
        type_ = "integer",
        priority = 1,
        json_path = ".spec.memoryMib"
    ),
    printcolumn(
        name = "Image",
        type_ = "string",
        priority = 1,
        json_path = ".spec.image"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = constraints_rules()))]
pub struct InstanceSpec {
    /// Virtual CPUs.
    #[schemars(range(min = 1, max = 512))]
    pub vcpu: u32,
    /// Memory in MiB.
    #[schemars(range(min = 128, max = 4194304))]
    pub memory_mib: u64,
    /// Root disk in GiB.
    #[schemars(range(min = 1, max = 65536))]
    pub disk_gib: u64,
    /// A logical image such as `kylin-v10`, resolved per architecture.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")
    )]
    pub image: String,
    /// Placement constraints.
    #[serde(flatten)]
    pub constraints: Constraints,
    /// An affinity or spread group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    /// Running or stopped.
    #[serde(default)]
    pub power: PowerState,
}

/// A block volume for the namespace's department.
// Each printcolumn(...) repeats `name`/`type_`, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "yunshu.io",
    version = "v1alpha1",
    kind = "Volume",
    namespaced,
    shortname = "vol",
    category = "yunshu",
    status = "WorkloadStatus",
    derive = "PartialEq",
    doc = "A block volume, optionally attached to an Instance of the same namespace.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Size GiB", type_ = "integer", json_path = ".spec.sizeGib"),
    printcolumn(name = "Attached To", type_ = "string", json_path = ".spec.attachTo"),
    printcolumn(
        name = "Foundation",
        type_ = "string",
        json_path = ".status.placement.foundation"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = constraints_rules()))]
pub struct VolumeSpec {
    /// Size in GiB.
    #[schemars(range(min = 1, max = 65536))]
    pub size_gib: u64,
    /// The Instance to attach it to, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub attach_to: Option<String>,
    /// Placement constraints.
    #[serde(flatten)]
    pub constraints: Constraints,
}

/// An object-storage bucket for the namespace's department.
// Each printcolumn(...) repeats `name`/`type_`, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "yunshu.io",
    version = "v1alpha1",
    kind = "Bucket",
    namespaced,
    shortname = "bkt",
    category = "yunshu",
    status = "WorkloadStatus",
    derive = "PartialEq",
    doc = "An object-storage bucket with a size quota.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Quota Bytes",
        type_ = "integer",
        json_path = ".spec.quotaBytes"
    ),
    printcolumn(
        name = "Foundation",
        type_ = "string",
        json_path = ".status.placement.foundation"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".status.addresses[0]"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = constraints_rules()))]
pub struct BucketSpec {
    /// Size quota in bytes, charged against the department's `bucket_bytes` (at most 1 PiB).
    #[schemars(range(min = 1, max = 1125899906842624_u64))]
    pub quota_bytes: u64,
    /// Object count quota, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub quota_objects: Option<u64>,
    /// Keep object versions.
    #[serde(default)]
    pub versioning: bool,
    /// Placement constraints.
    #[serde(flatten)]
    pub constraints: Constraints,
}

/// Where a department resource is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Admitted, waiting for a foundation.
    #[default]
    Pending,
    /// No foundation can take it now; reasons in the placement.
    Unschedulable,
    /// A foundation was chosen and charged.
    Scheduled,
    /// The cloud is creating it.
    Provisioning,
    /// Usable.
    Ready,
    /// The cloud failed it.
    Failed,
    /// Being removed.
    Deleting,
}

/// The placement decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The chosen foundation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foundation: Option<String>,
    /// Why, in one line.
    #[serde(default)]
    pub summary: String,
    /// Per foundation: why it was filtered out or how it scored.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub per_foundation: std::collections::BTreeMap<String, String>,
}

/// Status shared by Instance, Volume and Bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// The phase.
    #[serde(default)]
    pub phase: Phase,
    /// The placement decision.
    #[serde(default)]
    pub placement: Placement,
    /// The chosen foundation's architecture, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// The cloud's id for the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
    /// Addresses (instances) or endpoints (buckets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// A human sentence about the latest state, e.g. the cloud's fault message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// Ready, Scheduled, Synced.
    #[serde(default)]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
}

impl TryFrom<InstanceSpec> for core::InstanceSpec {
    type Error = ConversionError;

    fn try_from(s: InstanceSpec) -> Result<Self, Self::Error> {
        Ok(Self {
            vcpu: s.vcpu,
            memory_mib: s.memory_mib,
            disk_gib: s.disk_gib,
            image: s.image,
            constraints: s.constraints.into_core()?,
            group: s.group.map(|g| core::Group {
                name: g.name,
                policy: match g.policy {
                    GroupPolicy::Affinity => core::GroupPolicy::Affinity,
                    GroupPolicy::AntiAffinity => core::GroupPolicy::AntiAffinity,
                },
            }),
            power: match s.power {
                PowerState::Running => core::PowerState::Running,
                PowerState::Stopped => core::PowerState::Stopped,
            },
        })
    }
}

impl TryFrom<VolumeSpec> for core::VolumeSpec {
    type Error = ConversionError;

    fn try_from(s: VolumeSpec) -> Result<Self, Self::Error> {
        Ok(Self {
            size_gib: s.size_gib,
            attach_to: s.attach_to,
            constraints: s.constraints.into_core()?,
        })
    }
}

impl TryFrom<BucketSpec> for core::BucketSpec {
    type Error = ConversionError;

    fn try_from(s: BucketSpec) -> Result<Self, Self::Error> {
        Ok(Self {
            quota_bytes: s.quota_bytes,
            quota_objects: s.quota_objects,
            versioning: s.versioning,
            constraints: s.constraints.into_core()?,
        })
    }
}

impl From<core::Phase> for Phase {
    fn from(p: core::Phase) -> Self {
        match p {
            core::Phase::Pending => Self::Pending,
            core::Phase::Unschedulable => Self::Unschedulable,
            core::Phase::Scheduled => Self::Scheduled,
            core::Phase::Provisioning => Self::Provisioning,
            core::Phase::Ready => Self::Ready,
            core::Phase::Failed => Self::Failed,
            core::Phase::Deleting => Self::Deleting,
        }
    }
}

impl WorkloadStatus {
    /// The CR status for a core status, the chosen foundation's architecture
    /// and the generation it describes.
    pub fn from_core(status: core::WorkloadStatus, arch: Option<String>, generation: i64) -> Self {
        Self {
            phase: status.phase.into(),
            placement: Placement {
                foundation: status.placement.foundation,
                summary: status.placement.summary,
                per_foundation: status.placement.per_foundation,
            },
            arch,
            cloud_id: status.cloud_id,
            addresses: status.addresses,
            message: status.message,
            observed_generation: generation,
            conditions: conditions(status.conditions),
        }
    }
}
