//! The Kubernetes-shaped envelope every object has: `meta`, `spec`, `status`,
//! and the standard conditions.

use std::{collections::BTreeMap, fmt};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The kinds of object Yunshu stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// One cloud (admin, cluster-scoped).
    Foundation,
    /// A tenant (admin, cluster-scoped).
    Department,
    /// Filter and score settings (admin, cluster-scoped).
    PlacementPolicy,
    /// A virtual machine (department-scoped).
    Instance,
    /// A block volume (department-scoped).
    Volume,
    /// An object-storage bucket (department-scoped).
    Bucket,
}

impl Kind {
    /// The lower-case plural used in keys and resource names.
    pub const fn plural(self) -> &'static str {
        match self {
            Self::Foundation => "foundations",
            Self::Department => "departments",
            Self::PlacementPolicy => "placementpolicies",
            Self::Instance => "instances",
            Self::Volume => "volumes",
            Self::Bucket => "buckets",
        }
    }

    /// Whether objects of this kind belong to a department.
    pub const fn is_namespaced(self) -> bool {
        matches!(self, Self::Instance | Self::Volume | Self::Bucket)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Identity and bookkeeping of an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The object's kind.
    pub kind: Kind,
    /// The owning department; `None` for cluster-scoped admin kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// The name, unique per kind and department.
    pub name: String,
    /// A unique id, also the idempotency key and ownership tag on clouds.
    pub uid: String,
    /// Bumped on every spec change.
    pub generation: u64,
    /// The store's modification revision; filled in on read, never stored.
    #[serde(skip)]
    pub revision: i64,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Work that must finish before the object may be removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// When the object was created.
    pub creation_timestamp: DateTime<Utc>,
    /// When deletion was requested, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<DateTime<Utc>>,
    /// The client request id that created the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ObjectMeta {
    /// Fresh metadata for a new object with a random uid.
    pub fn new(kind: Kind, department: Option<&str>, name: &str) -> Self {
        Self {
            kind,
            department: department.map(str::to_owned),
            name: name.to_owned(),
            uid: uuid::Uuid::new_v4().to_string(),
            generation: 1,
            revision: 0,
            labels: BTreeMap::new(),
            finalizers: Vec::new(),
            creation_timestamp: Utc::now(),
            deletion_timestamp: None,
            request_id: None,
        }
    }
}

/// A spec type: it names its kind and its status type.
pub trait Spec:
    Serialize + DeserializeOwned + Clone + fmt::Debug + PartialEq + Send + Sync + 'static
{
    /// The kind of object this spec describes.
    const KIND: Kind;
    /// The status that goes with it.
    type Status: Serialize
        + DeserializeOwned
        + Clone
        + fmt::Debug
        + PartialEq
        + Default
        + Send
        + Sync
        + 'static;
}

/// An object: metadata, desired state, observed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Object<S: Spec> {
    /// Identity and bookkeeping.
    pub meta: ObjectMeta,
    /// What is wanted.
    pub spec: S,
    /// What was observed.
    #[serde(default)]
    pub status: S::Status,
}

impl<S: Spec> Object<S> {
    /// A new object with fresh metadata and empty status.
    pub fn new(department: Option<&str>, name: &str, spec: S) -> Self {
        Self {
            meta: ObjectMeta::new(S::KIND, department, name),
            spec,
            status: S::Status::default(),
        }
    }
}

/// The status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// It does not.
    False,
    /// Not known yet.
    Unknown,
}

/// One observed condition, as in Kubernetes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Scheduled`, `Synced`, …
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase reason.
    pub reason: String,
    /// A human sentence.
    pub message: String,
    /// The generation this was observed at.
    pub observed_generation: u64,
    /// When `status` last changed.
    pub last_transition_time: DateTime<Utc>,
}

/// The standard condition types.
pub mod condition_types {
    /// The object is usable.
    pub const READY: &str = "Ready";
    /// A foundation was chosen.
    pub const SCHEDULED: &str = "Scheduled";
    /// The store and the outside world agree.
    pub const SYNCED: &str = "Synced";
}

/// Sets or updates the condition of `type_`, keeping `last_transition_time`
/// when the status did not change.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(c) if c.status == new.status => {
            c.reason = new.reason;
            c.message = new.message;
            c.observed_generation = new.observed_generation;
        }
        Some(c) => *c = new,
        None => conditions.push(new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(status: ConditionStatus, reason: &str, at: i64) -> Condition {
        Condition {
            type_: condition_types::READY.into(),
            status,
            reason: reason.into(),
            message: String::new(),
            observed_generation: 1,
            last_transition_time: DateTime::from_timestamp(at, 0).expect("valid"),
        }
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let mut cs = vec![];
        set_condition(&mut cs, cond(ConditionStatus::False, "Provisioning", 1));
        set_condition(
            &mut cs,
            cond(ConditionStatus::False, "StillProvisioning", 2),
        );
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].reason, "StillProvisioning");
        assert_eq!(cs[0].last_transition_time.timestamp(), 1);
        set_condition(&mut cs, cond(ConditionStatus::True, "Active", 3));
        assert_eq!(cs[0].last_transition_time.timestamp(), 3);
    }
}
