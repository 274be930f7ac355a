//! Instances, volumes and buckets as JSON/YAML, and watch events. Their
//! tables are in [`describe`](super::describe).

use std::collections::BTreeMap;

use serde::Serialize;
use yunshu_proto::api::v1::{self as pb, GroupPolicy, PowerState};

use super::{condition_status_name, phase_name, rfc3339};
use crate::resource::{Event, Resource};

/// A resource as JSON/YAML.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceView {
    /// `instance`, `volume` or `bucket`.
    pub kind: &'static str,
    /// The short name, e.g. `web-1`.
    pub name: String,
    /// Identity and bookkeeping.
    pub metadata: MetadataView,
    /// What was asked for; `null` if the server sent none.
    pub spec: Option<SpecView>,
    /// What Yunshu observed.
    pub status: StatusView,
}

/// `ObjectMeta` as JSON/YAML.
#[derive(Debug, Clone, Serialize)]
pub struct MetadataView {
    /// The full resource name.
    pub name: String,
    /// The unique id.
    pub uid: String,
    /// The spec generation.
    pub generation: u64,
    /// The store revision of the last change.
    pub revision: i64,
    /// Labels, sorted by key.
    pub labels: BTreeMap<String, String>,
    /// Pending finalizers.
    pub finalizers: Vec<String>,
    /// RFC 3339 creation time.
    pub create_time: Option<String>,
    /// RFC 3339 deletion request time.
    pub delete_time: Option<String>,
    /// The request id that created it.
    pub request_id: String,
}

/// A spec as JSON/YAML; its fields depend on the kind.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum SpecView {
    /// An instance's spec.
    Instance {
        /// Virtual CPUs.
        vcpu: u32,
        /// Memory in MiB.
        memory_mib: u64,
        /// Root disk in GiB.
        disk_gib: u64,
        /// The logical image.
        image: String,
        /// Placement constraints.
        constraints: ConstraintsView,
        /// The affinity group, if any.
        group: Option<GroupView>,
        /// `Running` or `Stopped`.
        power: &'static str,
    },
    /// A volume's spec.
    Volume {
        /// Size in GiB.
        size_gib: u64,
        /// The instance it is attached to, if any.
        attach_to: Option<String>,
        /// Placement constraints.
        constraints: ConstraintsView,
    },
    /// A bucket's spec.
    Bucket {
        /// Capacity in bytes.
        quota_bytes: u64,
        /// The most objects, if limited.
        quota_objects: Option<u64>,
        /// Whether object versions are kept.
        versioning: bool,
        /// Placement constraints.
        constraints: ConstraintsView,
    },
}

/// Placement constraints as JSON/YAML.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConstraintsView {
    /// Traits the foundation must have.
    pub required_traits: Vec<String>,
    /// Traits the foundation must not have.
    pub forbidden_traits: Vec<String>,
    /// The zone, if one was asked for.
    pub zone: Option<String>,
}

/// An affinity group as JSON/YAML.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    /// The group's name.
    pub name: String,
    /// `Affinity` or `AntiAffinity`.
    pub policy: &'static str,
}

/// A status as JSON/YAML.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// `Pending`, `Scheduled`, `Provisioning`, `Ready`, `Failed`, …
    pub phase: &'static str,
    /// `foundations/{name}`; empty until scheduled.
    pub foundation: String,
    /// Why it landed there, in one line.
    pub placement_summary: String,
    /// The cloud's id.
    pub cloud_id: String,
    /// Instances only: IP addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<String>>,
    /// Buckets only: S3 endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<String>>,
    /// Buckets only: bytes stored, as the object store last reported them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// Buckets only: objects stored, as the object store last reported them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_objects: Option<u64>,
    /// The latest status message.
    pub message: String,
    /// Conditions.
    pub conditions: Vec<ConditionView>,
}

/// A condition as JSON/YAML.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionView {
    /// `Ready`, `Scheduled`, `Synced`.
    pub r#type: String,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// A CamelCase reason.
    pub reason: String,
    /// Details.
    pub message: String,
    /// The generation observed.
    pub observed_generation: u64,
    /// RFC 3339 time of the last change.
    pub last_transition_time: Option<String>,
}

/// A watch event as JSON/YAML.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// `Created`, `Updated`, `Deleted` or `Bookmark`.
    pub r#type: &'static str,
    /// The change's revision.
    pub revision: i64,
    /// The resource after the change.
    pub object: Option<ResourceView>,
}

/// Constraints as JSON/YAML (empty when unset).
pub fn constraints(c: Option<&pb::Constraints>) -> ConstraintsView {
    c.map(|c| ConstraintsView {
        required_traits: c.required_traits.clone(),
        forbidden_traits: c.forbidden_traits.clone(),
        zone: non_empty(&c.zone),
    })
    .unwrap_or_default()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn conditions(cs: &[pb::Condition]) -> Vec<ConditionView> {
    cs.iter()
        .map(|c| ConditionView {
            r#type: c.r#type.clone(),
            status: condition_status_name(c.status),
            reason: c.reason.clone(),
            message: c.message.clone(),
            observed_generation: c.observed_generation,
            last_transition_time: rfc3339(c.last_transition_time.as_ref()),
        })
        .collect()
}

impl From<&Resource> for ResourceView {
    fn from(r: &Resource) -> Self {
        let m = r.meta();
        let metadata = MetadataView {
            name: m.name.clone(),
            uid: m.uid.clone(),
            generation: m.generation,
            revision: m.revision,
            labels: m
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            finalizers: m.finalizers.clone(),
            create_time: rfc3339(m.create_time.as_ref()),
            delete_time: rfc3339(m.delete_time.as_ref()),
            request_id: m.request_id.clone(),
        };
        let mut status = StatusView {
            phase: phase_name(r.phase()),
            foundation: String::new(),
            placement_summary: r.placement_summary().to_owned(),
            cloud_id: String::new(),
            addresses: None,
            endpoints: None,
            used_bytes: None,
            used_objects: None,
            message: r.message().to_owned(),
            conditions: Vec::new(),
        };
        let spec = match r {
            Resource::Instance(i) => {
                if let Some(s) = &i.status {
                    status.foundation.clone_from(&s.foundation);
                    status.cloud_id.clone_from(&s.cloud_id);
                    status.conditions = conditions(&s.conditions);
                }
                status.addresses = Some(r.addresses().to_vec());
                i.spec.as_ref().map(|s| SpecView::Instance {
                    vcpu: s.vcpu,
                    memory_mib: s.memory_mib,
                    disk_gib: s.disk_gib,
                    image: s.image.clone(),
                    constraints: constraints(s.constraints.as_ref()),
                    group: s.group.as_ref().map(|g| GroupView {
                        name: g.name.clone(),
                        policy: match GroupPolicy::try_from(g.policy) {
                            Ok(GroupPolicy::AntiAffinity) => "AntiAffinity",
                            _ => "Affinity",
                        },
                    }),
                    power: match PowerState::try_from(s.power) {
                        Ok(PowerState::Stopped) => "Stopped",
                        _ => "Running",
                    },
                })
            }
            Resource::Volume(v) => {
                if let Some(s) = &v.status {
                    status.foundation.clone_from(&s.foundation);
                    status.cloud_id.clone_from(&s.cloud_id);
                    status.conditions = conditions(&s.conditions);
                }
                v.spec.as_ref().map(|s| SpecView::Volume {
                    size_gib: s.size_gib,
                    attach_to: non_empty(&s.attach_to),
                    constraints: constraints(s.constraints.as_ref()),
                })
            }
            Resource::Bucket(b) => {
                if let Some(s) = &b.status {
                    status.foundation.clone_from(&s.foundation);
                    status.cloud_id.clone_from(&s.cloud_id);
                    status.conditions = conditions(&s.conditions);
                }
                status.endpoints = Some(r.addresses().to_vec());
                let s = b.status.clone().unwrap_or_default();
                status.used_bytes = Some(s.used_bytes);
                status.used_objects = Some(s.used_objects);
                b.spec.as_ref().map(|s| SpecView::Bucket {
                    quota_bytes: s.quota_bytes,
                    quota_objects: s.quota_objects,
                    versioning: s.versioning,
                    constraints: constraints(s.constraints.as_ref()),
                })
            }
        };
        Self {
            kind: r.kind().as_str(),
            name: r.name().to_owned(),
            metadata,
            spec,
            status,
        }
    }
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        Self {
            r#type: event_name(e.kind),
            revision: e.revision,
            object: e.resource.as_ref().map(ResourceView::from),
        }
    }
}

/// An event type's name: `Created`, `Updated`, `Deleted`, `Bookmark`.
pub const fn event_name(kind: pb::WatchEventType) -> &'static str {
    match kind {
        pb::WatchEventType::Created => "Created",
        pb::WatchEventType::Updated => "Updated",
        pb::WatchEventType::Deleted => "Deleted",
        pb::WatchEventType::Bookmark => "Bookmark",
        pb::WatchEventType::Unspecified => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::output::fixtures::instance;

    #[test]
    fn json_shape_uses_api_field_names() {
        let v = serde_json::to_value(ResourceView::from(&instance("web-1", pb::Phase::Ready)))
            .expect("json");
        assert_eq!(v["kind"], "instance");
        assert_eq!(v["name"], "web-1");
        assert_eq!(v["metadata"]["name"], "departments/health/instances/web-1");
        assert_eq!(v["metadata"]["labels"]["app"], "web");
        assert_eq!(v["spec"]["memory_mib"], 8192);
        assert_eq!(v["spec"]["constraints"]["required_traits"][0], "xinchuang");
        assert_eq!(v["spec"]["constraints"]["zone"], serde_json::Value::Null);
        assert_eq!(v["spec"]["power"], "Running");
        assert_eq!(v["status"]["phase"], "Ready");
        assert_eq!(v["status"]["foundation"], "foundations/kunpeng-1");
        assert_eq!(v["status"]["addresses"][0], "10.2.0.14");
        assert!(v["status"].get("endpoints").is_none());
        assert!(v["status"].get("used_bytes").is_none());
        assert_eq!(v["metadata"]["delete_time"], serde_json::Value::Null);
    }

    #[test]
    fn buckets_carry_their_usage() {
        let v = serde_json::to_value(ResourceView::from(&crate::output::fixtures::bucket(
            "scans",
            pb::Phase::Ready,
        )))
        .expect("json");
        assert_eq!(v["kind"], "bucket");
        assert_eq!(v["status"]["used_bytes"], 1_395_864_371_u64);
        assert_eq!(v["status"]["used_objects"], 1204);
        assert_eq!(v["status"]["cloud_id"], "yunshu-health-scans");
        assert_eq!(v["spec"]["quota_bytes"], 10_u64 << 30);
    }
}
