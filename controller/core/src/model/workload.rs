//! Department resources: Instance, Volume, Bucket, with the phase they share
//! and the resource charge each makes against quota.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    meta::{Condition, Kind, Object, Spec},
    resources::{ResourceClass, Resources},
    traits::Trait,
};

/// The label a bucket's deletion carries when its objects are to be deleted
/// with it (`purge`); without it a non-empty bucket is not deleted.
pub const PURGE_LABEL: &str = "yunshu.io/purge";

/// Where a department resource is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Admitted, waiting for a foundation.
    #[default]
    Pending,
    /// No foundation can take it now; reasons in the explanation.
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

/// The placement decision kept on every scheduled object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The chosen foundation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foundation: Option<String>,
    /// Why, in one line.
    #[serde(default)]
    pub summary: String,
    /// Per foundation: why it was filtered out or how it scored.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_foundation: BTreeMap<String, String>,
}

/// Status shared by the department resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// The phase.
    pub phase: Phase,
    /// The placement decision.
    #[serde(default)]
    pub placement: Placement,
    /// The cloud's id for the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
    /// Addresses (instances) or endpoints (buckets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// A human sentence about the latest state, e.g. the cloud's fault message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Bytes stored (buckets), as the cloud last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// Objects stored (buckets), as the cloud last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_objects: Option<u64>,
    /// Ready, Scheduled, Synced.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// What the cloud resource was last created or resized to hold: the
    /// charge of the spec it was made to. Until a resize is done in the
    /// cloud it differs from the spec's charge, and the foundation's claim
    /// covers the largest of the two and `resizing_to` in every class.
    /// Absent on objects written before placed instances could be resized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned: Option<Resources>,
    /// The largest size the cloud was asked to resize to since the last
    /// resize it finished (instances): while the cloud may be at any of
    /// them, the foundation's claim covers it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resizing_to: Option<Resources>,
}

/// Placement constraints shared by the department resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Constraints {
    /// Traits the foundation must have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_traits: Vec<Trait>,
    /// Traits the foundation must not have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbidden_traits: Vec<Trait>,
    /// The zone, if it matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// How members of a group relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupPolicy {
    /// Keep together on one foundation.
    Affinity,
    /// Spread over foundations.
    AntiAffinity,
}

/// An affinity or spread group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The group's name within the department.
    pub name: String,
    /// Together or apart.
    pub policy: GroupPolicy,
}

/// Whether an instance should be running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    /// Running.
    #[default]
    Running,
    /// Stopped.
    Stopped,
}

/// A virtual machine request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSpec {
    /// Virtual CPUs.
    pub vcpu: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Root disk in GiB.
    pub disk_gib: u64,
    /// A logical image such as `kylin-v10`, resolved per architecture.
    pub image: String,
    /// Placement constraints.
    #[serde(default, flatten)]
    pub constraints: Constraints,
    /// An affinity or spread group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    /// Running or stopped.
    #[serde(default)]
    pub power: PowerState,
}

impl Spec for InstanceSpec {
    const KIND: Kind = Kind::Instance;
    type Status = WorkloadStatus;
}

/// A block volume request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSpec {
    /// Size in GiB.
    pub size_gib: u64,
    /// The instance to attach it to, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_to: Option<String>,
    /// Placement constraints.
    #[serde(default, flatten)]
    pub constraints: Constraints,
}

impl Spec for VolumeSpec {
    const KIND: Kind = Kind::Volume;
    type Status = WorkloadStatus;
}

/// An object-storage bucket request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// Bucket quota in bytes; charged against the department's `bucket_bytes`.
    pub quota_bytes: u64,
    /// Object count quota, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_objects: Option<u64>,
    /// Keep object versions.
    #[serde(default)]
    pub versioning: bool,
    /// Placement constraints.
    #[serde(default, flatten)]
    pub constraints: Constraints,
}

impl Spec for BucketSpec {
    const KIND: Kind = Kind::Bucket;
    type Status = WorkloadStatus;
}

/// An instance object.
pub type Instance = Object<InstanceSpec>;
/// A volume object.
pub type Volume = Object<VolumeSpec>;
/// A bucket object.
pub type Bucket = Object<BucketSpec>;

/// What a spec charges against quota and foundation inventory.
pub trait Charge {
    /// The resources this spec consumes.
    fn charge(&self) -> Resources;
}

impl Charge for InstanceSpec {
    fn charge(&self) -> Resources {
        Resources::from_pairs([
            (ResourceClass::Vcpu, u64::from(self.vcpu)),
            (ResourceClass::MemoryMib, self.memory_mib),
            (ResourceClass::DiskGib, self.disk_gib),
        ])
    }
}

impl Charge for VolumeSpec {
    fn charge(&self) -> Resources {
        Resources::from_pairs([(ResourceClass::VolumeGib, self.size_gib)])
    }
}

impl Charge for BucketSpec {
    fn charge(&self) -> Resources {
        Resources::from_pairs([
            (ResourceClass::Buckets, 1),
            (ResourceClass::BucketBytes, self.quota_bytes),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_round_trips_with_flattened_constraints() {
        let spec = InstanceSpec {
            vcpu: 4,
            memory_mib: 8192,
            disk_gib: 40,
            image: "kylin-v10".into(),
            constraints: Constraints {
                required_traits: vec!["xinchuang".parse().expect("valid")],
                ..Constraints::default()
            },
            group: None,
            power: PowerState::Running,
        };
        let obj = Instance::new(Some("health"), "web-1", spec);
        let json = serde_json::to_value(&obj).expect("serialize");
        assert_eq!(json["spec"]["requiredTraits"][0], "xinchuang");
        assert_eq!(json["meta"]["kind"], "Instance");
        let back: Instance = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, obj);
        assert_eq!(back.spec.charge().get(ResourceClass::Vcpu), 4);
    }
}
