//! The decisions of the department-resource reconciler, as pure functions:
//! which department a CR belongs to, what to do with the store object,
//! how a deletion proceeds, how admission failures read in the status,
//! and the status mirrored from the store object.

use std::collections::BTreeMap;

use yunshu_core::{
    Error, ErrorKind,
    catalog::Catalog,
    meta::{Kind, Object, Spec},
    model::{BucketSpec, Charge, InstanceSpec, Phase, VolumeSpec, WorkloadStatus},
    resources::ResourceClass,
};
use yunshu_crds::{ConditionStatus, DEPARTMENT_LABEL};

use crate::{
    conditions::{self, Decided, Inputs, SYNCED},
    kubeapi::DEPARTMENT_ANNOTATION,
};

/// The store label recording the namespace of the CR an object came from.
pub const NAMESPACE_LABEL: &str = "yunshu.io/namespace";

/// The department pinned on a CR (see [`super::bound_department`] for when
/// the pin counts).
pub fn pinned(annotations: &BTreeMap<String, String>) -> Option<String> {
    annotations
        .get(DEPARTMENT_ANNOTATION)
        .filter(|d| !d.is_empty())
        .cloned()
}

/// The department a namespace is bound to by its [`DEPARTMENT_LABEL`].
pub fn of_namespace(labels: &BTreeMap<String, String>) -> Option<String> {
    labels
        .get(DEPARTMENT_LABEL)
        .filter(|d| !d.is_empty())
        .cloned()
}

/// What to do with the store for a CR that is not being deleted.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<S: Spec> {
    /// Not in the store: admit this object.
    Admit(Object<S>),
    /// The spec changed: write `new` over `old` (through admission when the
    /// charge changes).
    Update {
        /// The stored object.
        old: Object<S>,
        /// It with the new spec.
        new: Object<S>,
    },
    /// The store has this spec (or is deleting the object): mirror it.
    InSync(Object<S>),
    /// The CR cannot be forwarded; say why and leave the store alone.
    Refuse {
        /// The stored object, if it is this CR's.
        stored: Option<Object<S>>,
        /// Why, for the Synced condition and the event.
        verdict: Decided,
    },
}

/// Decides the store write for CR `name` (uid `uid`, in `namespace`) of
/// `department` with `spec`, given the store object if any.
pub fn plan<S: Spec<Status = WorkloadStatus> + Charge>(
    existing: Option<Object<S>>,
    department: &str,
    namespace: &str,
    name: &str,
    uid: &str,
    spec: S,
) -> Step<S> {
    let Some(old) = existing else {
        let mut object = Object::new(Some(department), name, spec);
        object.meta.uid = uid.to_owned();
        object
            .meta
            .labels
            .insert(NAMESPACE_LABEL.to_owned(), namespace.to_owned());
        return Step::Admit(object);
    };
    if old.meta.uid != uid {
        let verdict = Decided::fails(
            SYNCED,
            "NameTaken",
            format!(
                "{} {department}/{name} already exists in Yunshu and was not created by this CR",
                S::KIND
            ),
        );
        return Step::Refuse {
            stored: None,
            verdict,
        };
    }
    if old.meta.deletion_timestamp.is_some() || old.spec == spec {
        return Step::InSync(old);
    }
    let placed = !matches!(old.status.phase, Phase::Pending | Phase::Unschedulable);
    if placed && old.spec.charge() != spec.charge() && !resizable(&old, &spec) {
        let verdict = Decided::fails(
            SYNCED,
            "ChangeRefused",
            format!(
                "{} {name} is {:?}; its size can change only while Pending or Unschedulable, or, for a Ready instance, in vCPUs and memory",
                S::KIND,
                old.status.phase
            ),
        );
        return Step::Refuse {
            stored: Some(old),
            verdict,
        };
    }
    let mut new = old.clone();
    new.spec = spec;
    new.meta.generation += 1;
    Step::Update { old, new }
}

/// Whether a placed object may take `spec`'s size: a Ready instance
/// changing only its vCPUs and memory, which placement and the provisioner
/// resize in place (the API's ResizeInstance makes the same change).
fn resizable<S: Spec<Status = WorkloadStatus> + Charge>(old: &Object<S>, spec: &S) -> bool {
    let (from, to) = (old.spec.charge(), spec.charge());
    S::KIND == Kind::Instance
        && old.status.phase == Phase::Ready
        && ResourceClass::ALL
            .into_iter()
            .filter(|c| !matches!(c, ResourceClass::Vcpu | ResourceClass::MemoryMib))
            .all(|c| from.get(c) == to.get(c))
}

/// How a deletion proceeds, given the store object.
#[derive(Debug, Clone, PartialEq)]
pub enum DeletionStep<S: Spec> {
    /// Nothing of this CR is left in the store: remove the finalizer.
    RemoveFinalizer,
    /// No Yunshu finalizer holds it: release it (removed, charge returned).
    Release(Object<S>),
    /// Yunshu's finalizers must clean up first: mark it for deletion.
    Mark(Object<S>),
    /// Marked already; wait for it to go.
    Wait,
}

/// The next deletion step for the CR with `uid`.
pub fn deletion_step<S: Spec>(existing: Option<Object<S>>, uid: &str) -> DeletionStep<S> {
    match existing {
        None => DeletionStep::RemoveFinalizer,
        Some(o) if o.meta.uid != uid => DeletionStep::RemoveFinalizer,
        Some(o) if o.meta.finalizers.is_empty() => DeletionStep::Release(o),
        Some(o) if o.meta.deletion_timestamp.is_none() => DeletionStep::Mark(o),
        Some(_) => DeletionStep::Wait,
    }
}

/// How an admission failure reads in the status, or `None` when it is
/// transient (the reconcile fails and is retried with backoff).
pub fn admission_verdict(error: &Error, department: &str) -> Option<Decided> {
    let fails = |reason: &str, message: String| Some(Decided::fails(SYNCED, reason, message));
    match error.kind() {
        ErrorKind::QuotaExceeded => fails("QuotaExceeded", error.to_string()),
        ErrorKind::NotFound => fails(
            "UnknownDepartment",
            format!("department {department} does not exist in Yunshu"),
        ),
        ErrorKind::AlreadyExists => fails("NameTaken", error.to_string()),
        ErrorKind::Invalid => fails("InvalidSpec", error.to_string()),
        ErrorKind::Conflict => fails("RequestConflict", error.to_string()),
        _ => None,
    }
}

/// Whether the phase moves by itself soon (so the status is read again soon).
pub fn is_moving(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Pending | Phase::Scheduled | Phase::Provisioning | Phase::Deleting
    )
}

/// The CR status mirrored from the store object (phase, placement, cloud
/// id, addresses, message, conditions), with `Synced` the operator's verdict
/// when it failed or the store has none.
pub fn status<S: Spec<Status = WorkloadStatus>>(
    stored: Option<&Object<S>>,
    arch: Option<String>,
    inputs: &Inputs<'_>,
) -> yunshu_crds::WorkloadStatus {
    let mut status = match stored {
        Some(o) => {
            let mut s =
                yunshu_crds::WorkloadStatus::from_core(o.status.clone(), arch, inputs.observed());
            conditions::remap_generations(&mut s.conditions, o.meta.generation, inputs);
            s
        }
        None => yunshu_crds::WorkloadStatus {
            observed_generation: inputs.observed(),
            ..yunshu_crds::WorkloadStatus::default()
        },
    };
    let store_has_synced = conditions::find(&status.conditions, SYNCED).is_some();
    if inputs.synced.status != ConditionStatus::True || !store_has_synced {
        inputs.put(&mut status.conditions, inputs.synced.clone());
    }
    status
}

/// The catalog rules a department resource's spec must follow beyond its
/// CRD schema, as `field: rule` sentences.
pub trait CatalogCheck {
    /// Every rule the spec breaks.
    fn check(&self, catalog: &Catalog) -> Vec<String>;
}

impl CatalogCheck for InstanceSpec {
    fn check(&self, catalog: &Catalog) -> Vec<String> {
        let mut out = Vec::new();
        if catalog.size(self.vcpu, self.memory_mib).is_none() {
            let sizes: Vec<_> = catalog
                .sizes
                .iter()
                .map(|z| format!("{} ({}/{})", z.name, z.vcpu, z.memory_mib))
                .collect();
            out.push(format!(
                "spec.vcpu: no catalog size has {} vCPU and {} MiB; sizes (vCPU/MiB): {}",
                self.vcpu,
                self.memory_mib,
                sizes.join(", ")
            ));
        }
        if self.disk_gib > catalog.max_disk_gib {
            out.push(format!(
                "spec.diskGib: must be 1 to {}",
                catalog.max_disk_gib
            ));
        }
        if catalog.image(&self.image).is_none() {
            let names: Vec<_> = catalog.images.iter().map(|i| i.name.as_str()).collect();
            out.push(format!(
                "spec.image: unknown image `{}`; the catalog has: {}",
                self.image,
                names.join(", ")
            ));
        }
        out
    }
}

impl CatalogCheck for VolumeSpec {
    fn check(&self, catalog: &Catalog) -> Vec<String> {
        if self.size_gib > catalog.max_volume_gib {
            vec![format!(
                "spec.sizeGib: must be 1 to {}",
                catalog.max_volume_gib
            )]
        } else {
            Vec::new()
        }
    }
}

impl CatalogCheck for BucketSpec {
    fn check(&self, _catalog: &Catalog) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use yunshu_core::model::{Constraints, PowerState};

    use super::*;

    fn vm(vcpu: u32) -> InstanceSpec {
        InstanceSpec {
            vcpu,
            memory_mib: u64::from(vcpu) * 2048,
            disk_gib: 40,
            image: "kylin-v10".into(),
            constraints: Constraints::default(),
            group: None,
            power: PowerState::Running,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_000, 0).expect("valid time")
    }

    #[test]
    fn pins_and_namespace_labels_name_departments_and_empty_ones_do_not() {
        let labels = BTreeMap::from([(DEPARTMENT_LABEL.to_owned(), "health".to_owned())]);
        assert_eq!(of_namespace(&labels).as_deref(), Some("health"));
        let pin = BTreeMap::from([(DEPARTMENT_ANNOTATION.to_owned(), "edu".to_owned())]);
        assert_eq!(pinned(&pin).as_deref(), Some("edu"));
        let empty = BTreeMap::from([(DEPARTMENT_LABEL.to_owned(), String::new())]);
        assert_eq!(of_namespace(&empty), None);
        assert_eq!(pinned(&BTreeMap::new()), None);
    }

    #[test]
    fn a_new_cr_is_admitted_under_its_uid_and_namespace() {
        let Step::Admit(o) = plan(None, "health", "health-ns", "web-1", "u-1", vm(4)) else {
            panic!("expected admission");
        };
        assert_eq!(o.meta.uid, "u-1");
        assert_eq!(o.meta.department.as_deref(), Some("health"));
        assert_eq!(o.meta.labels[NAMESPACE_LABEL], "health-ns");
    }

    #[test]
    fn someone_elses_object_is_never_touched() {
        let theirs = Object::new(Some("health"), "web-1", vm(4));
        let step = plan(Some(theirs), "health", "ns", "web-1", "u-1", vm(8));
        assert!(matches!(step, Step::Refuse { ref verdict, .. } if verdict.reason == "NameTaken"));
    }

    #[test]
    fn a_placed_instance_is_resized_only_when_ready_but_may_change_power() {
        let mut ours = Object::new(Some("health"), "web-1", vm(4));
        ours.meta.uid = "u-1".into();
        ours.status.phase = Phase::Scheduled;
        let step = plan(Some(ours.clone()), "health", "ns", "web-1", "u-1", vm(8));
        assert!(
            matches!(step, Step::Refuse { ref verdict, .. } if verdict.reason == "ChangeRefused")
        );
        let mut ready = ours.clone();
        ready.status.phase = Phase::Ready;
        let Step::Update { new, .. } =
            plan(Some(ready.clone()), "health", "ns", "web-1", "u-1", vm(8))
        else {
            panic!("a Ready instance takes a new vCPU count and memory");
        };
        assert_eq!((new.spec.vcpu, new.meta.generation), (8, 2));
        let mut bigger_disk = vm(4);
        bigger_disk.disk_gib = 80;
        let step = plan(Some(ready), "health", "ns", "web-1", "u-1", bigger_disk);
        assert!(
            matches!(step, Step::Refuse { ref verdict, .. } if verdict.reason == "ChangeRefused"),
            "disks are not resized in place"
        );
        let mut stopped = vm(4);
        stopped.power = PowerState::Stopped;
        let Step::Update { new, .. } =
            plan(Some(ours.clone()), "health", "ns", "web-1", "u-1", stopped)
        else {
            panic!("expected an update");
        };
        assert_eq!(new.meta.generation, 2);
        assert!(matches!(
            plan(Some(ours), "health", "ns", "web-1", "u-1", vm(4)),
            Step::InSync(_)
        ));
    }

    #[test]
    fn deletion_releases_marks_or_waits() {
        let mut o = Object::new(Some("health"), "web-1", vm(4));
        o.meta.uid = "u-1".into();
        assert!(matches!(
            deletion_step(Some(o.clone()), "u-1"),
            DeletionStep::Release(_)
        ));
        o.meta.finalizers.push("yunshu.io/provisioner".into());
        assert!(matches!(
            deletion_step(Some(o.clone()), "u-1"),
            DeletionStep::Mark(_)
        ));
        o.meta.deletion_timestamp = Some(now());
        assert!(matches!(
            deletion_step(Some(o.clone()), "u-1"),
            DeletionStep::Wait
        ));
        assert!(matches!(
            deletion_step(Some(o), "u-2"),
            DeletionStep::RemoveFinalizer
        ));
        assert!(matches!(
            deletion_step::<InstanceSpec>(None, "u-1"),
            DeletionStep::RemoveFinalizer
        ));
    }

    #[test]
    fn quota_failures_are_reported_and_outages_retried() {
        let e = Error::QuotaExceeded { violations: vec![] };
        assert_eq!(
            admission_verdict(&e, "health").expect("reported").reason,
            "QuotaExceeded"
        );
        let e = Error::not_found("department health");
        let v = admission_verdict(&e, "health").expect("reported");
        assert_eq!(v.message, "department health does not exist in Yunshu");
        let e = Error::Unavailable {
            message: "etcd down".into(),
            source: None,
        };
        assert!(admission_verdict(&e, "health").is_none());
    }

    #[test]
    fn the_status_mirrors_the_store_and_reports_a_failed_forward() {
        let mut o = Object::new(Some("health"), "web-1", vm(4));
        o.status.phase = Phase::Scheduled;
        o.status.placement.foundation = Some("kunpeng-1".into());
        let inputs = Inputs {
            synced: Decided::holds(SYNCED, "Admitted", "admitted"),
            previous: &[],
            previous_generation: 0,
            generation: 1,
            now: now(),
        };
        let s = status(Some(&o), Some("aarch64".into()), &inputs);
        assert_eq!(s.phase, yunshu_crds::workload::Phase::Scheduled);
        assert_eq!(s.placement.foundation.as_deref(), Some("kunpeng-1"));
        assert_eq!(s.arch.as_deref(), Some("aarch64"));
        assert_eq!(s.observed_generation, 1);
        let quota = Inputs {
            synced: Decided::fails(SYNCED, "QuotaExceeded", "quota exceeded: vcpu"),
            ..inputs
        };
        let s = status::<InstanceSpec>(None, None, &quota);
        let c = conditions::find(&s.conditions, SYNCED).expect("Synced");
        assert_eq!(
            (c.status, c.reason.as_str()),
            (ConditionStatus::False, "QuotaExceeded")
        );
        assert_eq!(s.observed_generation, 0);
    }

    #[test]
    fn the_catalog_limits_sizes_and_images() {
        let catalog = Catalog::default();
        assert!(vm(4).check(&catalog).is_empty());
        let mut odd = vm(3);
        odd.image = "windows".into();
        let broken = odd.check(&catalog);
        assert_eq!(broken.len(), 2, "{broken:?}");
        assert!(broken[0].starts_with("spec.vcpu: no catalog size has 3 vCPU"));
        assert!(broken[1].starts_with("spec.image: unknown image `windows`"));
    }
}
