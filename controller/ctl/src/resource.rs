//! Instances, volumes and buckets behind one face: the three services have
//! the same verbs, so commands work on [`Resource`] and [`Kind`] and only
//! this module knows which client to call.

use std::{collections::HashMap, sync::LazyLock};

use clap::ValueEnum;
use futures::{StreamExt, stream::BoxStream};
use tonic::Status;
use yunshu_proto::api::v1::{self as pb, Phase};

use crate::{client::Client, error::Result};

/// The kinds of department resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Kind {
    /// A virtual machine.
    #[value(alias = "instances")]
    Instance,
    /// A block volume.
    #[value(alias = "volumes")]
    Volume,
    /// An object-storage bucket.
    #[value(alias = "buckets")]
    Bucket,
}

impl Kind {
    /// `instance`, `volume` or `bucket`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::Volume => "volume",
            Self::Bucket => "bucket",
        }
    }

    /// The collection in resource names: `instances`, `volumes`, `buckets`.
    pub const fn collection(self) -> &'static str {
        match self {
            Self::Instance => "instances",
            Self::Volume => "volumes",
            Self::Bucket => "buckets",
        }
    }

    /// The full resource name of `name` under `parent`; a name that is
    /// already a resource name (`departments/…`) is kept.
    pub fn resource_name(self, parent: &str, name: &str) -> String {
        if name.contains('/') {
            name.to_owned()
        } else {
            format!("{parent}/{}/{name}", self.collection())
        }
    }
}

/// One instance, volume or bucket, as the API returned it.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// An instance.
    Instance(pb::Instance),
    /// A volume.
    Volume(pb::Volume),
    /// A bucket.
    Bucket(pb::Bucket),
}

/// The status fields the three kinds share.
struct CommonStatus<'a> {
    phase: i32,
    foundation: &'a str,
    placement_summary: &'a str,
    message: &'a str,
    conditions: &'a [pb::Condition],
}

impl Resource {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Instance(_) => Kind::Instance,
            Self::Volume(_) => Kind::Volume,
            Self::Bucket(_) => Kind::Bucket,
        }
    }

    /// Its metadata (empty when the server sent none).
    pub fn meta(&self) -> &pb::ObjectMeta {
        static EMPTY: LazyLock<pb::ObjectMeta> = LazyLock::new(pb::ObjectMeta::default);
        let meta = match self {
            Self::Instance(r) => r.metadata.as_ref(),
            Self::Volume(r) => r.metadata.as_ref(),
            Self::Bucket(r) => r.metadata.as_ref(),
        };
        meta.unwrap_or(&EMPTY)
    }

    /// The full resource name, `departments/{d}/{collection}/{name}`.
    pub fn resource_name(&self) -> &str {
        &self.meta().name
    }

    /// The last segment of the resource name.
    pub fn name(&self) -> &str {
        let full = self.resource_name();
        full.rsplit('/').next().unwrap_or(full)
    }

    fn common(&self) -> CommonStatus<'_> {
        macro_rules! common {
            ($s:expr) => {
                match $s {
                    Some(s) => CommonStatus {
                        phase: s.phase,
                        foundation: &s.foundation,
                        placement_summary: &s.placement_summary,
                        message: &s.message,
                        conditions: &s.conditions,
                    },
                    None => CommonStatus {
                        phase: 0,
                        foundation: "",
                        placement_summary: "",
                        message: "",
                        conditions: &[],
                    },
                }
            };
        }
        match self {
            Self::Instance(r) => common!(r.status.as_ref()),
            Self::Volume(r) => common!(r.status.as_ref()),
            Self::Bucket(r) => common!(r.status.as_ref()),
        }
    }

    /// Its phase.
    pub fn phase(&self) -> Phase {
        Phase::try_from(self.common().phase).unwrap_or(Phase::Unspecified)
    }

    /// The foundation's name without `foundations/`; empty until scheduled.
    pub fn foundation(&self) -> &str {
        short_foundation(self.common().foundation)
    }

    /// Why it was placed where it was, in one line.
    pub fn placement_summary(&self) -> &str {
        self.common().placement_summary
    }

    /// The latest status message.
    pub fn message(&self) -> &str {
        self.common().message
    }

    /// Its `Ready` condition, if the server reported one.
    pub fn ready_condition(&self) -> Option<&pb::Condition> {
        self.common()
            .conditions
            .iter()
            .find(|c| c.r#type == READY_CONDITION)
    }

    /// A volume's attachment as the cloud has it, against what its spec
    /// asks: `web-1`, `web-1 (attaching)`, `web-1 (detaching)`, or empty.
    pub fn attachment(&self) -> String {
        let Self::Volume(v) = self else {
            return String::new();
        };
        let wanted = v
            .spec
            .as_ref()
            .map(|s| s.attach_to.rsplit('/').next().unwrap_or_default())
            .unwrap_or_default();
        let actual = attached_condition(v)
            .filter(|c| c.status == pb::ConditionStatus::True as i32)
            .map(|c| c.message.as_str())
            .unwrap_or_default();
        match (wanted, actual) {
            (w, a) if w == a => a.to_owned(),
            ("", a) => format!("{a} (detaching)"),
            (w, _) => format!("{w} (attaching)"),
        }
    }

    /// Where to reach it: an instance's addresses or a bucket's endpoints.
    pub fn addresses(&self) -> &[String] {
        match self {
            Self::Instance(r) => r.status.as_ref().map_or(&[], |s| &s.addresses),
            Self::Bucket(r) => r.status.as_ref().map_or(&[], |s| &s.endpoints),
            Self::Volume(_) => &[],
        }
    }
}

/// The type of the condition that says whether a resource is usable as
/// its spec (at the condition's observed generation) asks.
pub const READY_CONDITION: &str = "Ready";

/// `foundations/kunpeng-1` → `kunpeng-1`.
pub fn short_foundation(name: &str) -> &str {
    name.strip_prefix("foundations/").unwrap_or(name)
}

/// The spec of a resource to create (or place in a dry run).
#[derive(Debug, Clone, PartialEq)]
pub enum NewSpec {
    /// An instance.
    Instance(pb::InstanceSpec),
    /// A volume.
    Volume(pb::VolumeSpec),
    /// A bucket.
    Bucket(pb::BucketSpec),
}

impl NewSpec {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Instance(_) => Kind::Instance,
            Self::Volume(_) => Kind::Volume,
            Self::Bucket(_) => Kind::Bucket,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The resources, in name order.
    pub items: Vec<Resource>,
    /// The next page's token; empty on the last page.
    pub next_page_token: String,
    /// The store revision the page was read at.
    pub revision: i64,
}

/// One watch event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: pb::WatchEventType,
    /// The change's revision.
    pub revision: i64,
    /// The resource after the change; `None` for bookmarks.
    pub resource: Option<Resource>,
}

/// A stream of watch events.
pub type EventStream = BoxStream<'static, Result<Event, Status>>;

fn event(kind: i32, revision: i64, resource: Option<Resource>) -> Event {
    Event {
        kind: pb::WatchEventType::try_from(kind).unwrap_or(pb::WatchEventType::Unspecified),
        revision,
        resource,
    }
}

fn missing(what: &str) -> Status {
    Status::internal(format!("the server's answer has no {what}"))
}

impl Client {
    /// Creates a resource.
    pub async fn create(
        &self,
        parent: &str,
        id: &str,
        labels: HashMap<String, String>,
        spec: NewSpec,
        request_id: &str,
    ) -> Result<Resource> {
        let metadata = Some(pb::ObjectMeta {
            labels,
            ..Default::default()
        });
        let (parent, id, request_id) = (parent.to_owned(), id.to_owned(), request_id.to_owned());
        Ok(match spec {
            NewSpec::Instance(spec) => {
                let req = pb::CreateInstanceRequest {
                    parent,
                    instance_id: id,
                    instance: Some(pb::Instance {
                        metadata,
                        spec: Some(spec),
                        status: None,
                    }),
                    request_id,
                };
                let r = self
                    .unary(self.instances.clone().create_instance(req))
                    .await?;
                Resource::Instance(r.instance.ok_or_else(|| missing("instance"))?)
            }
            NewSpec::Volume(spec) => {
                let req = pb::CreateVolumeRequest {
                    parent,
                    volume_id: id,
                    volume: Some(pb::Volume {
                        metadata,
                        spec: Some(spec),
                        status: None,
                    }),
                    request_id,
                };
                let r = self.unary(self.volumes.clone().create_volume(req)).await?;
                Resource::Volume(r.volume.ok_or_else(|| missing("volume"))?)
            }
            NewSpec::Bucket(spec) => {
                let req = pb::CreateBucketRequest {
                    parent,
                    bucket_id: id,
                    bucket: Some(pb::Bucket {
                        metadata,
                        spec: Some(spec),
                        status: None,
                    }),
                    request_id,
                };
                let r = self.unary(self.buckets.clone().create_bucket(req)).await?;
                Resource::Bucket(r.bucket.ok_or_else(|| missing("bucket"))?)
            }
        })
    }

    /// Reads one resource by its full name.
    pub async fn get(&self, kind: Kind, name: &str) -> Result<Resource> {
        let name = name.to_owned();
        Ok(match kind {
            Kind::Instance => {
                let r = self
                    .unary(
                        self.instances
                            .clone()
                            .get_instance(pb::GetInstanceRequest { name }),
                    )
                    .await?;
                Resource::Instance(r.instance.ok_or_else(|| missing("instance"))?)
            }
            Kind::Volume => {
                let r = self
                    .unary(
                        self.volumes
                            .clone()
                            .get_volume(pb::GetVolumeRequest { name }),
                    )
                    .await?;
                Resource::Volume(r.volume.ok_or_else(|| missing("volume"))?)
            }
            Kind::Bucket => {
                let r = self
                    .unary(
                        self.buckets
                            .clone()
                            .get_bucket(pb::GetBucketRequest { name }),
                    )
                    .await?;
                Resource::Bucket(r.bucket.ok_or_else(|| missing("bucket"))?)
            }
        })
    }

    /// Reads one page of a list.
    pub async fn list_page(
        &self,
        kind: Kind,
        parent: &str,
        page_size: i32,
        page_token: String,
        filter: Option<pb::ListFilter>,
    ) -> Result<Page> {
        let parent = parent.to_owned();
        Ok(match kind {
            Kind::Instance => {
                let req = pb::ListInstancesRequest {
                    parent,
                    page_size,
                    page_token,
                    filter,
                };
                let r = self
                    .unary(self.instances.clone().list_instances(req))
                    .await?;
                Page {
                    items: r.instances.into_iter().map(Resource::Instance).collect(),
                    next_page_token: r.next_page_token,
                    revision: r.revision,
                }
            }
            Kind::Volume => {
                let req = pb::ListVolumesRequest {
                    parent,
                    page_size,
                    page_token,
                    filter,
                };
                let r = self.unary(self.volumes.clone().list_volumes(req)).await?;
                Page {
                    items: r.volumes.into_iter().map(Resource::Volume).collect(),
                    next_page_token: r.next_page_token,
                    revision: r.revision,
                }
            }
            Kind::Bucket => {
                let req = pb::ListBucketsRequest {
                    parent,
                    page_size,
                    page_token,
                    filter,
                };
                let r = self.unary(self.buckets.clone().list_buckets(req)).await?;
                Page {
                    items: r.buckets.into_iter().map(Resource::Bucket).collect(),
                    next_page_token: r.next_page_token,
                    revision: r.revision,
                }
            }
        })
    }

    /// Requests deletion; returns the resource as deletion began. `purge`
    /// (buckets only) deletes a bucket's objects too; without it the server
    /// refuses a bucket that holds objects with FAILED_PRECONDITION.
    pub async fn delete(
        &self,
        kind: Kind,
        name: &str,
        request_id: &str,
        purge: bool,
    ) -> Result<Resource> {
        let (name, request_id) = (name.to_owned(), request_id.to_owned());
        Ok(match kind {
            Kind::Instance => {
                let req = pb::DeleteInstanceRequest { name, request_id };
                let r = self
                    .unary(self.instances.clone().delete_instance(req))
                    .await?;
                Resource::Instance(r.instance.ok_or_else(|| missing("instance"))?)
            }
            Kind::Volume => {
                let req = pb::DeleteVolumeRequest { name, request_id };
                let r = self.unary(self.volumes.clone().delete_volume(req)).await?;
                Resource::Volume(r.volume.ok_or_else(|| missing("volume"))?)
            }
            Kind::Bucket => {
                let req = pb::DeleteBucketRequest {
                    name,
                    request_id,
                    purge,
                };
                let r = self.unary(self.buckets.clone().delete_bucket(req)).await?;
                Resource::Bucket(r.bucket.ok_or_else(|| missing("bucket"))?)
            }
        })
    }

    /// Watches every resource of a kind under `parent` from
    /// `start_revision` (0: from now).
    pub async fn watch(
        &self,
        kind: Kind,
        parent: &str,
        start_revision: i64,
    ) -> Result<EventStream> {
        let parent = parent.to_owned();
        Ok(match kind {
            Kind::Instance => {
                let req = pb::WatchInstancesRequest {
                    parent,
                    start_revision,
                };
                self.unary(self.instances.clone().watch_instances(req))
                    .await?
                    .map(|r| {
                        r.map(|e| event(e.r#type, e.revision, e.instance.map(Resource::Instance)))
                    })
                    .boxed()
            }
            Kind::Volume => {
                let req = pb::WatchVolumesRequest {
                    parent,
                    start_revision,
                };
                self.unary(self.volumes.clone().watch_volumes(req))
                    .await?
                    .map(|r| r.map(|e| event(e.r#type, e.revision, e.volume.map(Resource::Volume))))
                    .boxed()
            }
            Kind::Bucket => {
                let req = pb::WatchBucketsRequest {
                    parent,
                    start_revision,
                };
                self.unary(self.buckets.clone().watch_buckets(req))
                    .await?
                    .map(|r| r.map(|e| event(e.r#type, e.revision, e.bucket.map(Resource::Bucket))))
                    .boxed()
            }
        })
    }
}

/// The condition the provisioner keeps on a volume: `True` with the
/// instance's short name as its message while the cloud has it attached.
pub const ATTACHED_CONDITION: &str = "Attached";

/// A volume's `Attached` condition, if the server reported one.
pub fn attached_condition(v: &pb::Volume) -> Option<&pb::Condition> {
    v.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.r#type == ATTACHED_CONDITION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(attach_to: &str, attached: Option<&str>) -> Resource {
        Resource::Volume(pb::Volume {
            metadata: None,
            spec: Some(pb::VolumeSpec {
                attach_to: attach_to.into(),
                ..Default::default()
            }),
            status: Some(pb::VolumeStatus {
                conditions: attached
                    .map(|on| pb::Condition {
                        r#type: ATTACHED_CONDITION.into(),
                        status: if on.is_empty() {
                            pb::ConditionStatus::False as i32
                        } else {
                            pb::ConditionStatus::True as i32
                        },
                        message: on.into(),
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn a_volume_shows_where_the_cloud_has_it_attached() {
        let web_1 = "departments/health/instances/web-1";
        assert_eq!(volume(web_1, Some("web-1")).attachment(), "web-1");
        assert_eq!(volume(web_1, None).attachment(), "web-1 (attaching)");
        assert_eq!(volume(web_1, Some("")).attachment(), "web-1 (attaching)");
        assert_eq!(volume("", Some("web-1")).attachment(), "web-1 (detaching)");
        assert_eq!(volume("", Some("")).attachment(), "");
        assert_eq!(volume("", None).attachment(), "");
    }

    #[test]
    fn short_names_become_resource_names() {
        assert_eq!(
            Kind::Instance.resource_name("departments/health", "web-1"),
            "departments/health/instances/web-1"
        );
        assert_eq!(
            Kind::Bucket.resource_name("departments/health", "departments/transport/buckets/b"),
            "departments/transport/buckets/b"
        );
    }

    #[test]
    fn missing_messages_read_as_empty() {
        let r = Resource::Volume(pb::Volume::default());
        assert_eq!(r.name(), "");
        assert_eq!(r.phase(), Phase::Unspecified);
        assert_eq!(r.foundation(), "");
        assert!(r.addresses().is_empty());
        let r = Resource::Instance(pb::Instance {
            metadata: Some(pb::ObjectMeta {
                name: "departments/health/instances/web-1".into(),
                ..Default::default()
            }),
            spec: None,
            status: Some(pb::InstanceStatus {
                phase: Phase::Ready.into(),
                foundation: "foundations/kunpeng-1".into(),
                addresses: vec!["10.0.0.4".into()],
                ..Default::default()
            }),
        });
        assert_eq!(r.name(), "web-1");
        assert_eq!(r.phase(), Phase::Ready);
        assert_eq!(r.foundation(), "kunpeng-1");
        assert_eq!(r.addresses(), ["10.0.0.4"]);
    }
}
