//! Conversions between core objects and `yunshu.api.v1` messages for the
//! department resources. Proto to core conversions parse as they go and
//! report every field that does not parse, with its path.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use yunshu_core::{
    error::FieldViolation,
    meta::{Condition, ConditionStatus, ObjectMeta},
    model::{
        BucketSpec, Constraints, Group, GroupPolicy, InstanceSpec, Phase, PowerState, VolumeSpec,
        WorkloadStatus,
    },
    resources::ResourceClass,
    traits::Trait,
};
use yunshu_proto::api::v1 as pb;

/// A timestamp for the wire.
pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Object metadata for the wire; `name` is the full resource name.
pub fn meta(m: &ObjectMeta, full_name: String) -> pb::ObjectMeta {
    pb::ObjectMeta {
        name: full_name,
        uid: m.uid.clone(),
        generation: m.generation,
        revision: m.revision,
        labels: m
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        finalizers: m.finalizers.clone(),
        create_time: Some(timestamp(m.creation_timestamp)),
        delete_time: m.deletion_timestamp.map(timestamp),
        request_id: m.request_id.clone().unwrap_or_default(),
    }
}

/// Conditions for the wire.
pub fn conditions(cs: &[Condition]) -> Vec<pb::Condition> {
    cs.iter()
        .map(|c| pb::Condition {
            r#type: c.type_.clone(),
            status: match c.status {
                ConditionStatus::True => pb::ConditionStatus::True,
                ConditionStatus::False => pb::ConditionStatus::False,
                ConditionStatus::Unknown => pb::ConditionStatus::Unknown,
            } as i32,
            reason: c.reason.clone(),
            message: c.message.clone(),
            observed_generation: c.observed_generation,
            last_transition_time: Some(timestamp(c.last_transition_time)),
        })
        .collect()
}

/// A phase for the wire.
pub fn phase(p: Phase) -> pb::Phase {
    match p {
        Phase::Pending => pb::Phase::Pending,
        Phase::Unschedulable => pb::Phase::Unschedulable,
        Phase::Scheduled => pb::Phase::Scheduled,
        Phase::Provisioning => pb::Phase::Provisioning,
        Phase::Ready => pb::Phase::Ready,
        Phase::Failed => pb::Phase::Failed,
        Phase::Deleting => pb::Phase::Deleting,
    }
}

/// A wire phase as core's, if it names one.
pub fn phase_from(p: i32) -> Option<Phase> {
    Some(match pb::Phase::try_from(p).ok()? {
        pb::Phase::Pending => Phase::Pending,
        pb::Phase::Unschedulable => Phase::Unschedulable,
        pb::Phase::Scheduled => Phase::Scheduled,
        pb::Phase::Provisioning => Phase::Provisioning,
        pb::Phase::Ready => Phase::Ready,
        pb::Phase::Failed => Phase::Failed,
        pb::Phase::Deleting => Phase::Deleting,
        pb::Phase::Unspecified => return None,
    })
}

/// A resource class for the wire.
pub fn class(c: ResourceClass) -> pb::ResourceClass {
    match c {
        ResourceClass::Vcpu => pb::ResourceClass::Vcpu,
        ResourceClass::MemoryMib => pb::ResourceClass::MemoryMib,
        ResourceClass::DiskGib => pb::ResourceClass::DiskGib,
        ResourceClass::VolumeGib => pb::ResourceClass::VolumeGib,
        ResourceClass::Buckets => pb::ResourceClass::Buckets,
        ResourceClass::BucketBytes => pb::ResourceClass::BucketBytes,
    }
}

/// A wire resource class as core's.
pub fn class_from(c: i32) -> Option<ResourceClass> {
    Some(match pb::ResourceClass::try_from(c).ok()? {
        pb::ResourceClass::Vcpu => ResourceClass::Vcpu,
        pb::ResourceClass::MemoryMib => ResourceClass::MemoryMib,
        pb::ResourceClass::DiskGib => ResourceClass::DiskGib,
        pb::ResourceClass::VolumeGib => ResourceClass::VolumeGib,
        pb::ResourceClass::Buckets => ResourceClass::Buckets,
        pb::ResourceClass::BucketBytes => ResourceClass::BucketBytes,
        pb::ResourceClass::Unspecified => return None,
    })
}

fn traits(field: &str, raw: &[String], out: &mut Vec<FieldViolation>) -> Vec<Trait> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, t)| match t.parse::<Trait>() {
            Ok(t) => Some(t),
            Err(e) => {
                out.push(FieldViolation::new(format!("{field}[{i}]"), e));
                None
            }
        })
        .collect()
}

/// Placement constraints from the wire.
pub fn constraints_from(
    path: &str,
    c: Option<&pb::Constraints>,
    out: &mut Vec<FieldViolation>,
) -> Constraints {
    let Some(c) = c else {
        return Constraints::default();
    };
    Constraints {
        required_traits: traits(&format!("{path}.required_traits"), &c.required_traits, out),
        forbidden_traits: traits(
            &format!("{path}.forbidden_traits"),
            &c.forbidden_traits,
            out,
        ),
        zone: (!c.zone.is_empty()).then(|| c.zone.clone()),
    }
}

/// Placement constraints for the wire.
pub fn constraints(c: &Constraints) -> pb::Constraints {
    pb::Constraints {
        required_traits: c.required_traits.iter().map(ToString::to_string).collect(),
        forbidden_traits: c.forbidden_traits.iter().map(ToString::to_string).collect(),
        zone: c.zone.clone().unwrap_or_default(),
    }
}

/// An instance spec from the wire.
pub fn instance_spec_from(
    path: &str,
    s: &pb::InstanceSpec,
    out: &mut Vec<FieldViolation>,
) -> InstanceSpec {
    let group = s.group.as_ref().and_then(|g| {
        let policy = match pb::GroupPolicy::try_from(g.policy) {
            Ok(pb::GroupPolicy::Affinity) => GroupPolicy::Affinity,
            Ok(pb::GroupPolicy::AntiAffinity) => GroupPolicy::AntiAffinity,
            _ => {
                out.push(FieldViolation::new(
                    format!("{path}.group.policy"),
                    "must be AFFINITY or ANTI_AFFINITY",
                ));
                return None;
            }
        };
        Some(Group {
            name: g.name.clone(),
            policy,
        })
    });
    let power = match pb::PowerState::try_from(s.power) {
        Ok(pb::PowerState::Stopped) => PowerState::Stopped,
        Ok(_) => PowerState::Running,
        Err(_) => {
            out.push(FieldViolation::new(
                format!("{path}.power"),
                "must be RUNNING or STOPPED",
            ));
            PowerState::Running
        }
    };
    InstanceSpec {
        vcpu: s.vcpu,
        memory_mib: s.memory_mib,
        disk_gib: s.disk_gib,
        image: s.image.clone(),
        constraints: constraints_from(&format!("{path}.constraints"), s.constraints.as_ref(), out),
        group,
        power,
    }
}

/// An instance spec for the wire.
pub fn instance_spec(s: &InstanceSpec) -> pb::InstanceSpec {
    pb::InstanceSpec {
        vcpu: s.vcpu,
        memory_mib: s.memory_mib,
        disk_gib: s.disk_gib,
        image: s.image.clone(),
        constraints: Some(constraints(&s.constraints)),
        group: s.group.as_ref().map(|g| pb::Group {
            name: g.name.clone(),
            policy: match g.policy {
                GroupPolicy::Affinity => pb::GroupPolicy::Affinity,
                GroupPolicy::AntiAffinity => pb::GroupPolicy::AntiAffinity,
            } as i32,
        }),
        power: match s.power {
            PowerState::Running => pb::PowerState::Running,
            PowerState::Stopped => pb::PowerState::Stopped,
        } as i32,
    }
}

/// A foundation's resource name, `foundations/{foundation}`.
pub fn foundation_name(foundation: &str) -> String {
    format!("foundations/{foundation}")
}

/// The resource name of the foundation a workload is placed on; empty
/// until it is.
fn placed_on(s: &WorkloadStatus) -> String {
    s.placement
        .foundation
        .as_deref()
        .map(foundation_name)
        .unwrap_or_default()
}

/// An instance status for the wire.
pub fn instance_status(s: &WorkloadStatus) -> pb::InstanceStatus {
    pb::InstanceStatus {
        phase: phase(s.phase) as i32,
        foundation: placed_on(s),
        placement_summary: s.placement.summary.clone(),
        cloud_id: s.cloud_id.clone().unwrap_or_default(),
        addresses: s.addresses.clone(),
        message: s.message.clone(),
        conditions: conditions(&s.conditions),
    }
}

/// A volume spec from the wire; `attach_to` is a full instance name there
/// and a bare name in core.
pub fn volume_spec_from(
    path: &str,
    department: &str,
    s: &pb::VolumeSpec,
    out: &mut Vec<FieldViolation>,
) -> VolumeSpec {
    let attach_to = (!s.attach_to.is_empty()).then(|| {
        match crate::names::parse_name(&format!("{path}.attach_to"), &s.attach_to, "instances") {
            Ok((d, n)) if d == department => n,
            Ok(_) => {
                out.push(FieldViolation::new(
                    format!("{path}.attach_to"),
                    "must name an instance of the same department",
                ));
                String::new()
            }
            Err(status) => {
                out.push(FieldViolation::new(
                    format!("{path}.attach_to"),
                    status.message(),
                ));
                String::new()
            }
        }
    });
    VolumeSpec {
        size_gib: s.size_gib,
        attach_to,
        constraints: constraints_from(&format!("{path}.constraints"), s.constraints.as_ref(), out),
    }
}

/// A volume spec for the wire.
pub fn volume_spec(department: &str, s: &VolumeSpec) -> pb::VolumeSpec {
    pb::VolumeSpec {
        size_gib: s.size_gib,
        attach_to: s
            .attach_to
            .as_ref()
            .map(|n| crate::names::name(department, "instances", n))
            .unwrap_or_default(),
        constraints: Some(constraints(&s.constraints)),
    }
}

/// A volume status for the wire.
pub fn volume_status(s: &WorkloadStatus) -> pb::VolumeStatus {
    pb::VolumeStatus {
        phase: phase(s.phase) as i32,
        foundation: placed_on(s),
        placement_summary: s.placement.summary.clone(),
        cloud_id: s.cloud_id.clone().unwrap_or_default(),
        message: s.message.clone(),
        conditions: conditions(&s.conditions),
    }
}

/// A bucket spec from the wire.
pub fn bucket_spec_from(
    path: &str,
    s: &pb::BucketSpec,
    out: &mut Vec<FieldViolation>,
) -> BucketSpec {
    BucketSpec {
        quota_bytes: s.quota_bytes,
        quota_objects: s.quota_objects,
        versioning: s.versioning,
        constraints: constraints_from(&format!("{path}.constraints"), s.constraints.as_ref(), out),
    }
}

/// A bucket spec for the wire.
pub fn bucket_spec(s: &BucketSpec) -> pb::BucketSpec {
    pb::BucketSpec {
        quota_bytes: s.quota_bytes,
        quota_objects: s.quota_objects,
        versioning: s.versioning,
        constraints: Some(constraints(&s.constraints)),
    }
}

/// A bucket status for the wire.
pub fn bucket_status(s: &WorkloadStatus) -> pb::BucketStatus {
    pb::BucketStatus {
        phase: phase(s.phase) as i32,
        foundation: placed_on(s),
        placement_summary: s.placement.summary.clone(),
        cloud_id: s.cloud_id.clone().unwrap_or_default(),
        endpoints: s.addresses.clone(),
        message: s.message.clone(),
        conditions: conditions(&s.conditions),
        used_bytes: s.used_bytes.unwrap_or_default(),
        used_objects: s.used_objects.unwrap_or_default(),
    }
}
