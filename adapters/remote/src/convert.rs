//! Between `yunshu-core`'s adapter types and `yunshu.adapter.v1` messages,
//! both ways: the client sends what the server decodes and the server
//! answers what the client decodes, so each pair lives side by side.
//! Decoding never trusts the peer: a missing owner or an unknown enum value
//! is an `Invalid` error naming the field.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use yunshu_core::{
    Error, Result,
    adapter::{Capabilities, CloudResource, InstanceAction, IssuedCredentials, Owner, Probe},
    meta::Kind,
    model::{BucketSpec, Health, InstanceSpec, InventoryRecord, PowerState, VolumeSpec},
    resources::ResourceClass,
};
use yunshu_proto::adapter::v1 as pb;

/// The owner on the wire.
pub fn owner(o: &Owner) -> pb::Owner {
    pb::Owner {
        department: o.department.clone(),
        name: o.name.clone(),
        uid: o.uid.clone(),
    }
}

/// The owner from the wire; `field` names it in the error.
pub fn owner_from(o: Option<pb::Owner>, field: &str) -> Result<Owner> {
    let o = o.ok_or_else(|| Error::invalid(field, "is required"))?;
    if o.uid.is_empty() {
        return Err(Error::invalid(format!("{field}.uid"), "is required"));
    }
    Ok(Owner {
        department: o.department,
        name: o.name,
        uid: o.uid,
    })
}

/// A resource kind on the wire.
pub fn kind(k: Kind) -> Result<pb::ResourceKind> {
    match k {
        Kind::Instance => Ok(pb::ResourceKind::Instance),
        Kind::Volume => Ok(pb::ResourceKind::Volume),
        Kind::Bucket => Ok(pb::ResourceKind::Bucket),
        other => Err(Error::invalid(
            "kind",
            format!("{other:?} is not a cloud resource kind"),
        )),
    }
}

/// A resource kind from the wire.
pub fn kind_from(k: i32, field: &str) -> Result<Kind> {
    match pb::ResourceKind::try_from(k) {
        Ok(pb::ResourceKind::Instance) => Ok(Kind::Instance),
        Ok(pb::ResourceKind::Volume) => Ok(Kind::Volume),
        Ok(pb::ResourceKind::Bucket) => Ok(Kind::Bucket),
        _ => Err(Error::invalid(
            field,
            format!("{k} is not a resource kind (instance 1, volume 2, bucket 3)"),
        )),
    }
}

/// Capabilities on the wire.
pub fn capabilities(c: &Capabilities, name: &str) -> pb::GetCapabilitiesResponse {
    pb::GetCapabilitiesResponse {
        kinds: c
            .kinds
            .iter()
            .filter_map(|k| kind(*k).ok())
            .map(i32::from)
            .collect(),
        issues_credentials: c.issues_credentials,
        name: name.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// Capabilities from the wire; kinds this build does not know are left out.
pub fn capabilities_from(c: &pb::GetCapabilitiesResponse) -> Capabilities {
    Capabilities {
        kinds: c
            .kinds
            .iter()
            .filter_map(|k| kind_from(*k, "kinds").ok())
            .collect(),
        issues_credentials: c.issues_credentials,
    }
}

/// A cloud resource on the wire.
pub fn resource(r: CloudResource) -> pb::CloudResource {
    pb::CloudResource {
        id: r.id,
        owner_uid: r.owner_uid.unwrap_or_default(),
        status: r.status,
        ready: r.ready,
        failed: r.failed,
        addresses: r.addresses,
        message: r.message,
        bytes_used: r.bytes_used,
        objects_used: r.objects_used,
    }
}

/// A cloud resource from the wire; a response without one is an error.
pub fn resource_from(r: Option<pb::CloudResource>) -> Result<CloudResource> {
    let r = r.ok_or_else(|| Error::internal("the remote adapter answered without a resource"))?;
    Ok(CloudResource {
        id: r.id,
        owner_uid: Some(r.owner_uid).filter(|u| !u.is_empty()),
        status: r.status,
        ready: r.ready,
        failed: r.failed,
        addresses: r.addresses,
        message: r.message,
        bytes_used: r.bytes_used,
        objects_used: r.objects_used,
    })
}

fn power(p: PowerState) -> pb::PowerState {
    match p {
        PowerState::Running => pb::PowerState::Running,
        PowerState::Stopped => pb::PowerState::Stopped,
    }
}

/// An instance request on the wire.
pub fn instance_spec(s: &InstanceSpec) -> pb::InstanceSpec {
    pb::InstanceSpec {
        vcpu: s.vcpu,
        memory_mib: s.memory_mib,
        disk_gib: s.disk_gib,
        image: s.image.clone(),
        zone: s.constraints.zone.clone().unwrap_or_default(),
        power: power(s.power).into(),
    }
}

/// An instance request from the wire.
pub fn instance_spec_from(s: Option<pb::InstanceSpec>) -> Result<InstanceSpec> {
    let s = s.ok_or_else(|| Error::invalid("spec", "is required"))?;
    let power = match s.power() {
        pb::PowerState::Stopped => PowerState::Stopped,
        pb::PowerState::Running | pb::PowerState::Unspecified => PowerState::Running,
    };
    let mut spec = InstanceSpec {
        vcpu: s.vcpu,
        memory_mib: s.memory_mib,
        disk_gib: s.disk_gib,
        image: s.image,
        constraints: Default::default(),
        group: None,
        power,
    };
    spec.constraints.zone = Some(s.zone).filter(|z| !z.is_empty());
    Ok(spec)
}

/// A volume request on the wire.
pub fn volume_spec(s: &VolumeSpec) -> pb::VolumeSpec {
    pb::VolumeSpec {
        size_gib: s.size_gib,
        attach_to: s.attach_to.clone().unwrap_or_default(),
        zone: s.constraints.zone.clone().unwrap_or_default(),
    }
}

/// A volume request from the wire.
pub fn volume_spec_from(s: Option<pb::VolumeSpec>) -> Result<VolumeSpec> {
    let s = s.ok_or_else(|| Error::invalid("spec", "is required"))?;
    let mut spec = VolumeSpec {
        size_gib: s.size_gib,
        attach_to: Some(s.attach_to).filter(|a| !a.is_empty()),
        constraints: Default::default(),
    };
    spec.constraints.zone = Some(s.zone).filter(|z| !z.is_empty());
    Ok(spec)
}

/// A bucket request on the wire.
pub fn bucket_spec(s: &BucketSpec) -> pb::BucketSpec {
    pb::BucketSpec {
        quota_bytes: s.quota_bytes,
        quota_objects: s.quota_objects,
        versioning: s.versioning,
    }
}

/// A bucket request from the wire.
pub fn bucket_spec_from(s: Option<pb::BucketSpec>) -> Result<BucketSpec> {
    let s = s.ok_or_else(|| Error::invalid("spec", "is required"))?;
    Ok(BucketSpec {
        quota_bytes: s.quota_bytes,
        quota_objects: s.quota_objects,
        versioning: s.versioning,
        constraints: Default::default(),
    })
}

fn class(c: ResourceClass) -> pb::ResourceClass {
    match c {
        ResourceClass::Vcpu => pb::ResourceClass::Vcpu,
        ResourceClass::MemoryMib => pb::ResourceClass::MemoryMib,
        ResourceClass::DiskGib => pb::ResourceClass::DiskGib,
        ResourceClass::VolumeGib => pb::ResourceClass::VolumeGib,
        ResourceClass::Buckets => pb::ResourceClass::Buckets,
        ResourceClass::BucketBytes => pb::ResourceClass::BucketBytes,
    }
}

fn class_from(c: i32) -> Option<ResourceClass> {
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

/// A probe on the wire.
pub fn probe(p: Probe) -> pb::ProbeResponse {
    let health = match p.health {
        Health::Unknown => pb::Health::Unspecified,
        Health::Ready => pb::Health::Ready,
        Health::Degraded => pb::Health::Degraded,
        Health::Down => pb::Health::Down,
    };
    pb::ProbeResponse {
        health: health.into(),
        latency: prost_types::Duration::try_from(p.latency).ok(),
        inventory: p
            .inventory
            .into_iter()
            .map(|(c, r)| pb::Inventory {
                resource_class: class(c).into(),
                total: r.total,
                reserved: r.reserved,
                allocation_ratio: r.allocation_ratio,
                used: r.used,
                max_unit: r.max_unit,
            })
            .collect(),
        traits: p.traits.iter().map(ToString::to_string).collect(),
    }
}

/// A probe from the wire. Classes this build does not know are left out;
/// a trait that is not well-formed is an error naming it, since placement
/// would otherwise match on something the adapter did not mean.
pub fn probe_from(p: pb::ProbeResponse) -> Result<Probe> {
    let health = match p.health() {
        pb::Health::Ready => Health::Ready,
        pb::Health::Degraded => Health::Degraded,
        pb::Health::Down => Health::Down,
        pb::Health::Unspecified => Health::Unknown,
    };
    let mut inventory = BTreeMap::new();
    for i in &p.inventory {
        let Some(c) = class_from(i.resource_class) else {
            continue;
        };
        inventory.insert(
            c,
            InventoryRecord {
                total: i.total,
                reserved: i.reserved,
                // 0 means the cloud has no overcommit of its own.
                allocation_ratio: if i.allocation_ratio > 0.0 {
                    i.allocation_ratio
                } else {
                    1.0
                },
                used: i.used,
                max_unit: i.max_unit,
            },
        );
    }
    let traits = p
        .traits
        .iter()
        .enumerate()
        .map(|(n, t)| {
            t.parse()
                .map_err(|e| Error::invalid(format!("traits[{n}]"), e))
        })
        .collect::<Result<_>>()?;
    Ok(Probe {
        health,
        latency: p
            .latency
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or_default(),
        inventory,
        traits,
    })
}

/// An instance action on the wire.
pub fn action(a: InstanceAction) -> pb::instance_action_request::Action {
    use pb::instance_action_request::Action;
    match a {
        InstanceAction::Start => Action::Start(pb::StartAction {}),
        InstanceAction::Stop => Action::Stop(pb::StopAction {}),
        InstanceAction::Reboot => Action::Reboot(pb::RebootAction {}),
        InstanceAction::Resize { vcpu, memory_mib } => {
            Action::Resize(pb::ResizeAction { vcpu, memory_mib })
        }
    }
}

/// An instance action from the wire.
pub fn action_from(a: Option<pb::instance_action_request::Action>) -> Result<InstanceAction> {
    use pb::instance_action_request::Action;
    Ok(
        match a.ok_or_else(|| Error::invalid("action", "exactly one action is required"))? {
            Action::Start(_) => InstanceAction::Start,
            Action::Stop(_) => InstanceAction::Stop,
            Action::Reboot(_) => InstanceAction::Reboot,
            Action::Resize(r) => InstanceAction::Resize {
                vcpu: r.vcpu,
                memory_mib: r.memory_mib,
            },
        },
    )
}

/// Issued credentials on the wire.
pub fn issued(c: IssuedCredentials) -> pb::IssueCredentialsResponse {
    pb::IssueCredentialsResponse {
        access_key_id: c.access_key,
        secret_access_key: c.secret_key,
        expire_time: c.expires_at.map(|t| prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        }),
    }
}

/// Issued credentials from the wire.
pub fn issued_from(c: pb::IssueCredentialsResponse) -> Result<IssuedCredentials> {
    if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
        return Err(Error::internal(
            "the remote adapter issued credentials without an access key or secret",
        ));
    }
    Ok(IssuedCredentials {
        access_key: c.access_key_id,
        secret_key: c.secret_access_key,
        expires_at: c.expire_time.and_then(|t| {
            DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
        }),
    })
}

/// A ttl on the wire.
pub fn ttl(d: Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
}

/// A ttl from the wire; it must be given and positive.
pub fn ttl_from(d: Option<prost_types::Duration>) -> Result<Duration> {
    d.and_then(|d| Duration::try_from(d).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Error::invalid("ttl", "must be given and longer than zero"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_survive_the_wire() {
        let mut spec = InstanceSpec {
            vcpu: 2,
            memory_mib: 4096,
            disk_gib: 20,
            image: "kylin-v10".into(),
            constraints: Default::default(),
            group: None,
            power: PowerState::Stopped,
        };
        spec.constraints.zone = Some("az-1".into());
        assert_eq!(
            instance_spec_from(Some(instance_spec(&spec))).expect("decodes"),
            spec
        );
        let volume = VolumeSpec {
            size_gib: 10,
            attach_to: Some("web-1".into()),
            constraints: Default::default(),
        };
        assert_eq!(
            volume_spec_from(Some(volume_spec(&volume))).expect("decodes"),
            volume
        );
    }

    #[test]
    fn a_probe_survives_the_wire_and_bad_traits_are_named() {
        let p = Probe {
            health: Health::Degraded,
            latency: Duration::from_millis(42),
            inventory: BTreeMap::from([(
                ResourceClass::Vcpu,
                InventoryRecord {
                    total: 64,
                    reserved: 4,
                    allocation_ratio: 2.0,
                    used: 10,
                    max_unit: 32,
                },
            )]),
            traits: vec!["arch:aarch64".parse().expect("trait")],
        };
        assert_eq!(probe_from(probe(p.clone())).expect("decodes"), p);
        let mut bad = probe(p);
        bad.traits.push("Not A Trait".into());
        let e = probe_from(bad).expect_err("bad trait");
        assert!(e.to_string().contains("traits[1]"), "{e}");
    }

    #[test]
    fn unknown_kinds_and_missing_owners_are_named() {
        let e = kind_from(9, "kind").expect_err("unknown kind");
        assert!(e.to_string().contains("kind"), "{e}");
        let e = owner_from(None, "volume").expect_err("missing");
        assert!(e.to_string().contains("volume"), "{e}");
    }
}
