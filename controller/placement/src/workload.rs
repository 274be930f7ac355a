//! The three department resources placement schedules, behind one enum:
//! decoding by key, the scheduler request, and the status each outcome writes.

use chrono::Utc;
use yunshu_core::{
    Result, codec,
    meta::{Condition, ConditionStatus, Kind, ObjectMeta, condition_types, set_condition},
    model::{Bucket, Charge, Instance, Phase, Placement, Volume, WorkloadStatus},
    resources::Resources,
    store::KeyValue,
};
use yunshu_scheduler::Request;

/// The condition reason of a scheduled object.
pub const REASON_SCHEDULED: &str = "Scheduled";
/// The condition reason of an object no foundation can take.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";

/// An instance, volume or bucket.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// A virtual machine.
    Instance(Instance),
    /// A block volume.
    Volume(Volume),
    /// A bucket.
    Bucket(Bucket),
}

impl Workload {
    /// Decodes the object at `kv` (a key under instances, volumes or buckets).
    pub fn decode(kind: Kind, kv: &KeyValue) -> Result<Self> {
        Ok(match kind {
            Kind::Instance => Self::Instance(codec::decode_object(kv)?),
            Kind::Volume => Self::Volume(codec::decode_object(kv)?),
            Kind::Bucket => Self::Bucket(codec::decode_object(kv)?),
            other => {
                return Err(yunshu_core::Error::internal(format!(
                    "{other} is not a department resource"
                )));
            }
        })
    }

    /// Identity and bookkeeping.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Instance(o) => &o.meta,
            Self::Volume(o) => &o.meta,
            Self::Bucket(o) => &o.meta,
        }
    }

    /// The observed state.
    pub fn status(&self) -> &WorkloadStatus {
        match self {
            Self::Instance(o) => &o.status,
            Self::Volume(o) => &o.status,
            Self::Bucket(o) => &o.status,
        }
    }

    fn status_mut(&mut self) -> &mut WorkloadStatus {
        match self {
            Self::Instance(o) => &mut o.status,
            Self::Volume(o) => &mut o.status,
            Self::Bucket(o) => &mut o.status,
        }
    }

    /// The department (department resources always have one).
    pub fn department(&self) -> &str {
        self.meta().department.as_deref().unwrap_or_default()
    }

    /// The store key.
    pub fn key(&self) -> String {
        let m = self.meta();
        yunshu_core::keys::object(m.kind, m.department.as_deref(), &m.name)
    }

    /// What it charges against inventory.
    pub fn charge(&self) -> Resources {
        match self {
            Self::Instance(o) => o.spec.charge(),
            Self::Volume(o) => o.spec.charge(),
            Self::Bucket(o) => o.spec.charge(),
        }
    }

    /// The affinity or spread group's name, if any (instances only).
    pub fn group(&self) -> Option<&str> {
        match self {
            Self::Instance(o) => o.spec.group.as_ref().map(|g| g.name.as_str()),
            Self::Volume(_) | Self::Bucket(_) => None,
        }
    }

    /// For a volume to attach, the instance's name.
    pub fn attach_to(&self) -> Option<&str> {
        match self {
            Self::Volume(o) => o.spec.attach_to.as_deref(),
            Self::Instance(_) | Self::Bucket(_) => None,
        }
    }

    /// The scheduler's request for it; group members and the foundation of
    /// the instance a volume attaches to are added by the caller.
    pub fn request(&self) -> Request {
        match self {
            Self::Instance(o) => Request::instance(&o.spec),
            Self::Volume(o) => Request::volume(&o.spec),
            Self::Bucket(o) => Request::bucket(&o.spec),
        }
    }

    /// Whether the scheduler should decide it: Pending or Unschedulable and
    /// not being deleted.
    pub fn wants_placement(&self) -> bool {
        matches!(self.status().phase, Phase::Pending | Phase::Unschedulable)
            && self.meta().deletion_timestamp.is_none()
    }

    /// The object as written when scheduled on `placement.foundation`.
    #[must_use]
    pub fn scheduled(&self, placement: Placement) -> Self {
        self.with_outcome(
            Phase::Scheduled,
            ConditionStatus::True,
            REASON_SCHEDULED,
            placement,
        )
    }

    /// The object as written when no foundation can take it.
    #[must_use]
    pub fn unschedulable(&self, placement: Placement) -> Self {
        self.with_outcome(
            Phase::Unschedulable,
            ConditionStatus::False,
            REASON_UNSCHEDULABLE,
            placement,
        )
    }

    fn with_outcome(
        &self,
        phase: Phase,
        status: ConditionStatus,
        reason: &str,
        placement: Placement,
    ) -> Self {
        let mut out = self.clone();
        let generation = out.meta().generation;
        let s = out.status_mut();
        s.phase = phase;
        set_condition(
            &mut s.conditions,
            Condition {
                type_: condition_types::SCHEDULED.into(),
                status,
                reason: reason.into(),
                message: placement.summary.clone(),
                observed_generation: generation,
                last_transition_time: Utc::now(),
            },
        );
        s.placement = placement;
        out
    }

    /// The encoded record.
    pub fn encode(&self) -> Result<Vec<u8>> {
        match self {
            Self::Instance(o) => codec::encode(o),
            Self::Volume(o) => codec::encode(o),
            Self::Bucket(o) => codec::encode(o),
        }
    }
}

#[cfg(test)]
mod tests {
    use yunshu_core::{
        model::{InstanceSpec, VolumeSpec},
        resources::ResourceClass,
    };

    use super::*;

    fn instance() -> Workload {
        Workload::Instance(Instance::new(
            Some("health"),
            "web",
            InstanceSpec {
                vcpu: 4,
                memory_mib: 4096,
                disk_gib: 20,
                image: "kylin-v10".into(),
                constraints: Default::default(),
                group: None,
                power: Default::default(),
            },
        ))
    }

    #[test]
    fn scheduling_sets_phase_condition_and_placement() {
        let w = instance();
        assert!(w.wants_placement());
        let placement = Placement {
            foundation: Some("kunpeng-1".into()),
            summary: "kunpeng-1 chosen".into(),
            ..Placement::default()
        };
        let s = w.scheduled(placement.clone());
        assert_eq!(s.status().phase, Phase::Scheduled);
        assert_eq!(s.status().placement, placement);
        let c = &s.status().conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status, c.reason.as_str()),
            ("Scheduled", ConditionStatus::True, REASON_SCHEDULED)
        );
        assert!(!s.wants_placement());
        let u = w.unschedulable(Placement::default());
        assert_eq!(u.status().phase, Phase::Unschedulable);
        assert_eq!(u.status().conditions[0].status, ConditionStatus::False);
        assert!(u.wants_placement());
    }

    #[test]
    fn round_trips_through_the_store_encoding() {
        let w = Workload::Volume(Volume::new(
            Some("health"),
            "data",
            VolumeSpec {
                size_gib: 100,
                attach_to: None,
                constraints: Default::default(),
            },
        ));
        let key = w.key();
        assert_eq!(key, "/yunshu/objects/volumes/health/data");
        let kv = KeyValue {
            key: key.clone(),
            value: w.encode().expect("encode"),
            create_revision: 7,
            mod_revision: 9,
            version: 1,
            lease: None,
        };
        let back = Workload::decode(Kind::Volume, &kv).expect("decode");
        assert_eq!(back.meta().revision, 9);
        assert_eq!(back.charge().get(ResourceClass::VolumeGib), 100);
        assert_eq!(back.department(), "health");
        assert_eq!(instance().request().kind, Kind::Instance);
    }
}
