//! `InstanceService`, `VolumeService` and `BucketService`: thin adapters from
//! the wire to the shared operations in [`crate::resource`].

use std::{collections::HashMap, pin::Pin};

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use yunshu_core::{
    catalog::Catalog,
    error::FieldViolation,
    meta::Object,
    model::{BucketSpec, InstanceSpec, Phase, PowerState, VolumeSpec},
};
use yunshu_proto::api::v1::{
    self as pb, bucket_service_server::BucketService, instance_service_server::InstanceService,
    volume_service_server::VolumeService,
};

use crate::{
    Api, authz, convert,
    resource::{ApiResource, Change, full_name},
    validate,
};

/// Whether a delete request asks to delete a bucket's contents too.
trait PurgeFlag {
    fn purge(&self) -> bool;
}

impl PurgeFlag for pb::DeleteInstanceRequest {
    fn purge(&self) -> bool {
        false
    }
}

impl PurgeFlag for pb::DeleteVolumeRequest {
    fn purge(&self) -> bool {
        false
    }
}

impl PurgeFlag for pb::DeleteBucketRequest {
    fn purge(&self) -> bool {
        self.purge
    }
}

/// A server stream of watch responses.
pub type WatchStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn labels_of(
    meta: Option<&pb::ObjectMeta>,
    out: &mut Vec<FieldViolation>,
    field: &str,
) -> HashMap<String, String> {
    let labels = meta.map(|m| m.labels.clone()).unwrap_or_default();
    let field = format!("{field}.metadata.labels");
    validate::labels(&field, &labels, out);
    validate::unreserved_labels(&field, &labels, out);
    labels
}

impl ApiResource for InstanceSpec {
    const COLLECTION: &'static str = "instances";
    const FIELD: &'static str = "instance";
    type Message = pb::Instance;

    fn from_create(
        _department: &str,
        m: &pb::Instance,
        catalog: &Catalog,
        out: &mut Vec<FieldViolation>,
    ) -> Option<(Self, HashMap<String, String>)> {
        let labels = labels_of(m.metadata.as_ref(), out, Self::FIELD);
        let Some(spec) = &m.spec else {
            out.push(FieldViolation::new("instance.spec", "is required"));
            return None;
        };
        let spec = convert::instance_spec_from("instance.spec", spec, out);
        validate::instance("instance.spec", &spec, catalog, out);
        Some((spec, labels))
    }

    fn with_meta(meta: pb::ObjectMeta) -> pb::Instance {
        pb::Instance {
            metadata: Some(meta),
            ..Default::default()
        }
    }

    fn to_message(o: &Object<Self>) -> pb::Instance {
        pb::Instance {
            metadata: Some(convert::meta(&o.meta, full_name(o))),
            spec: Some(convert::instance_spec(&o.spec)),
            status: Some(convert::instance_status(&o.status)),
        }
    }
}

impl ApiResource for VolumeSpec {
    const COLLECTION: &'static str = "volumes";
    const FIELD: &'static str = "volume";
    type Message = pb::Volume;

    fn from_create(
        department: &str,
        m: &pb::Volume,
        catalog: &Catalog,
        out: &mut Vec<FieldViolation>,
    ) -> Option<(Self, HashMap<String, String>)> {
        let labels = labels_of(m.metadata.as_ref(), out, Self::FIELD);
        let Some(spec) = &m.spec else {
            out.push(FieldViolation::new("volume.spec", "is required"));
            return None;
        };
        let spec = convert::volume_spec_from("volume.spec", department, spec, out);
        validate::volume("volume.spec", &spec, catalog, out);
        Some((spec, labels))
    }

    fn with_meta(meta: pb::ObjectMeta) -> pb::Volume {
        pb::Volume {
            metadata: Some(meta),
            ..Default::default()
        }
    }

    fn to_message(o: &Object<Self>) -> pb::Volume {
        pb::Volume {
            metadata: Some(convert::meta(&o.meta, full_name(o))),
            spec: Some(convert::volume_spec(
                o.meta.department.as_deref().unwrap_or_default(),
                &o.spec,
            )),
            status: Some(convert::volume_status(&o.status)),
        }
    }
}

impl ApiResource for BucketSpec {
    const COLLECTION: &'static str = "buckets";
    const FIELD: &'static str = "bucket";
    type Message = pb::Bucket;

    fn from_create(
        _department: &str,
        m: &pb::Bucket,
        _catalog: &Catalog,
        out: &mut Vec<FieldViolation>,
    ) -> Option<(Self, HashMap<String, String>)> {
        let labels = labels_of(m.metadata.as_ref(), out, Self::FIELD);
        let Some(spec) = &m.spec else {
            out.push(FieldViolation::new("bucket.spec", "is required"));
            return None;
        };
        let spec = convert::bucket_spec_from("bucket.spec", spec, out);
        validate::bucket("bucket.spec", &spec, out);
        Some((spec, labels))
    }

    fn with_meta(meta: pb::ObjectMeta) -> pb::Bucket {
        pb::Bucket {
            metadata: Some(meta),
            ..Default::default()
        }
    }

    fn to_message(o: &Object<Self>) -> pb::Bucket {
        pb::Bucket {
            metadata: Some(convert::meta(&o.meta, full_name(o))),
            spec: Some(convert::bucket_spec(&o.spec)),
            status: Some(convert::bucket_status(&o.status)),
        }
    }
}

/// A watch change as the parts every `Watch*Response` has; a deleted
/// object is sent as its name and the deleting revision.
fn watch_parts<R: ApiResource>(c: Change<R>, parent: &str) -> (i32, i64, R::Message) {
    let message = match c.object {
        Ok(o) => R::to_message(&o),
        Err(name) => R::with_meta(pb::ObjectMeta {
            name: format!("{parent}/{}/{name}", R::COLLECTION),
            revision: c.revision,
            ..Default::default()
        }),
    };
    (c.kind as i32, c.revision, message)
}

/// A department resource service: the five operations they all share,
/// generated so their wire types stay concrete, plus the service's own rpcs.
macro_rules! workload_service {
    ($trait:ident for $spec:ty: $field:ident, $id:ident, $list_field:ident,
     $create:ident: $create_req:ident => $create_resp:ident,
     $get:ident: $get_req:ident => $get_resp:ident,
     $list:ident: $list_req:ident => $list_resp:ident,
     $delete:ident: $delete_req:ident => $delete_resp:ident,
     $watch:ident: $watch_req:ident => $watch_resp:ident / $stream:ident;
     $($extra:tt)*) => {
        #[tonic::async_trait]
        impl $trait for Api {
        async fn $create(&self, request: Request<pb::$create_req>) -> Result<Response<pb::$create_resp>, Status> {
            let p = authz::principal(&request)?;
            let r = request.into_inner();
            let o = self.create::<$spec>(&p, &r.parent, &r.$id, r.$field.as_ref(), &r.request_id).await?;
            Ok(Response::new(pb::$create_resp { $field: Some(<$spec>::to_message(&o)) }))
        }

        async fn $get(&self, request: Request<pb::$get_req>) -> Result<Response<pb::$get_resp>, Status> {
            let p = authz::principal(&request)?;
            let o = self.get::<$spec>(&p, &request.get_ref().name).await?;
            Ok(Response::new(pb::$get_resp { $field: Some(<$spec>::to_message(&o)) }))
        }

        async fn $list(&self, request: Request<pb::$list_req>) -> Result<Response<pb::$list_resp>, Status> {
            let p = authz::principal(&request)?;
            let r = request.into_inner();
            let (items, next_page_token, revision) =
                self.list::<$spec>(&p, &r.parent, r.page_size, &r.page_token, r.filter.as_ref()).await?;
            Ok(Response::new(pb::$list_resp {
                $list_field: items.iter().map(<$spec>::to_message).collect(),
                next_page_token,
                revision,
            }))
        }

        async fn $delete(&self, request: Request<pb::$delete_req>) -> Result<Response<pb::$delete_resp>, Status> {
            let p = authz::principal(&request)?;
            let r = request.into_inner();
            let purge = PurgeFlag::purge(&r);
            let o = self.delete::<$spec>(&p, &r.name, &r.request_id, purge).await?;
            Ok(Response::new(pb::$delete_resp { $field: Some(<$spec>::to_message(&o)) }))
        }

        type $stream = WatchStream<pb::$watch_resp>;

        async fn $watch(&self, request: Request<pb::$watch_req>) -> Result<Response<Self::$stream>, Status> {
            let p = authz::principal(&request)?;
            let recheck = request.extensions().get::<yunshu_core::principal::Recheck>().cloned();
            let r = request.into_inner();
            let parent = r.parent.clone();
            let changes = self.watch::<$spec>(&p, recheck, &r.parent, r.start_revision).await?;
            let stream = changes.map(move |c| {
                let (r#type, revision, message) = watch_parts(c?, &parent);
                Ok(pb::$watch_resp { r#type, revision, $field: Some(message) })
            });
            Ok(Response::new(Box::pin(stream)))
        }

        $($extra)*
        }
    };
}

workload_service! {
    InstanceService for InstanceSpec: instance, instance_id, instances,
        create_instance: CreateInstanceRequest => CreateInstanceResponse,
        get_instance: GetInstanceRequest => GetInstanceResponse,
        list_instances: ListInstancesRequest => ListInstancesResponse,
        delete_instance: DeleteInstanceRequest => DeleteInstanceResponse,
        watch_instances: WatchInstancesRequest => WatchInstancesResponse / WatchInstancesStream;

    async fn start_instance(&self, request: Request<pb::StartInstanceRequest>) -> Result<Response<pb::StartInstanceResponse>, Status> {
        let p = authz::principal(&request)?;
        let r = request.into_inner();
        let o = self.change::<InstanceSpec>(&p, &r.name, &r.request_id, "start", |o| {
            o.spec.power = PowerState::Running;
            Ok(())
        });
        Ok(Response::new(pb::StartInstanceResponse { instance: Some(InstanceSpec::to_message(&o.await?)) }))
    }

    async fn stop_instance(&self, request: Request<pb::StopInstanceRequest>) -> Result<Response<pb::StopInstanceResponse>, Status> {
        let p = authz::principal(&request)?;
        let r = request.into_inner();
        let o = self.change::<InstanceSpec>(&p, &r.name, &r.request_id, "stop", |o| {
            o.spec.power = PowerState::Stopped;
            Ok(())
        });
        Ok(Response::new(pb::StopInstanceResponse { instance: Some(InstanceSpec::to_message(&o.await?)) }))
    }

    async fn reboot_instance(&self, request: Request<pb::RebootInstanceRequest>) -> Result<Response<pb::RebootInstanceResponse>, Status> {
        let p = authz::principal(&request)?;
        let r = request.into_inner();
        let o = self.get::<InstanceSpec>(&p, &r.name).await?;
        let department = o.meta.department.clone().unwrap_or_default();
        authz::write(&p, &department)?;
        crate::resource::require_request_id(&r.request_id)?;
        let answer = |o: &Object<InstanceSpec>| Ok(Response::new(pb::RebootInstanceResponse { instance: Some(InstanceSpec::to_message(o)) }));
        // Rebooted before request ids were kept with the others.
        let legacy = format!("{}reboots/{department}/{}/{}", yunshu_core::keys::ROOT, o.meta.uid, r.request_id);
        if self.store.get(&legacy).await.map_err(crate::status::to_status)?.is_some() {
            return answer(&o);
        }
        // The id is reserved before the reboot and marked after, so neither
        // a concurrent nor a later retry reboots again; a retry of one that
        // was done is answered whatever state the instance is in now.
        let fingerprint = yunshu_core::admission::fingerprint(<InstanceSpec as yunshu_core::meta::Spec>::KIND, &o.meta.name, b"reboot");
        let Some(actions) = self.actions.clone().filter(|_| o.status.phase == Phase::Ready) else {
            if self.action_done(&r.request_id, &[&fingerprint], &o).await? {
                return answer(&o);
            }
            return Err(Status::failed_precondition(format!(
                "instance {} is {:?}, not Ready on a foundation; only a running instance can be rebooted",
                r.name, o.status.phase
            )));
        };
        let reserved_at = match self.reserve_action(&r.request_id, &[&fingerprint], &o).await? {
            crate::changes::Reserved::Done => return answer(&o),
            crate::changes::Reserved::Go(at) => at,
        };
        // Carried out and recorded even if the caller goes away meanwhile,
        // so the reservation never outlives the reboot.
        let (api, instance, request_id) = (self.clone(), o.clone(), r.request_id.clone());
        let rebooted = tokio::spawn(async move {
            let rebooted = actions.reboot(&instance).await;
            api.finish_action(&department, &request_id, reserved_at, rebooted.is_ok()).await;
            rebooted
        })
        .await
        .map_err(|e| Status::internal(format!("the reboot task failed: {e}")))?;
        rebooted.map_err(crate::status::from_foundation)?;
        tracing::info!(instance = %r.name, request_id = %r.request_id, "rebooted");
        answer(&o)
    }

    async fn resize_instance(&self, request: Request<pb::ResizeInstanceRequest>) -> Result<Response<pb::ResizeInstanceResponse>, Status> {
        let p = authz::principal(&request)?;
        let r = request.into_inner();
        let what = format!("resize {} {}", r.vcpu, r.memory_mib);
        if let Some(first) = self.answered::<InstanceSpec>(&p, &r.name, &r.request_id, &what).await? {
            return Ok(Response::new(pb::ResizeInstanceResponse { instance: Some(InstanceSpec::to_message(&first)) }));
        }
        // The arguments next: a bad size is INVALID_ARGUMENT whatever
        // state the instance is in, named as the request names it.
        let mut out = Vec::new();
        validate::size(["vcpu", "memory_mib"], (r.vcpu, r.memory_mib), &self.catalog, &mut out);
        if !out.is_empty() {
            return Err(crate::status::invalid(&out));
        }
        let o = self.change::<InstanceSpec>(&p, &r.name, &r.request_id, &what, |o| {
            // Already this size (a retry once it was placed, say): nothing to do.
            if (o.spec.vcpu, o.spec.memory_mib) == (r.vcpu, r.memory_mib) {
                return Ok(());
            }
            // Unplaced, it is placed at the new size; Ready, placement grows
            // its claim and the provisioner resizes it in the cloud. While it
            // is being created the cloud may be making it at either size.
            if !matches!(o.status.phase, Phase::Pending | Phase::Unschedulable | Phase::Ready) {
                return Err(Status::failed_precondition(format!(
                    "instance {} is {:?}; only a Ready instance, or one not placed yet, can be resized",
                    o.meta.name, o.status.phase
                )));
            }
            o.spec.vcpu = r.vcpu;
            o.spec.memory_mib = r.memory_mib;
            Ok(())
        });
        Ok(Response::new(pb::ResizeInstanceResponse { instance: Some(InstanceSpec::to_message(&o.await?)) }))
    }
}

workload_service! {
    VolumeService for VolumeSpec: volume, volume_id, volumes,
        create_volume: CreateVolumeRequest => CreateVolumeResponse,
        get_volume: GetVolumeRequest => GetVolumeResponse,
        list_volumes: ListVolumesRequest => ListVolumesResponse,
        delete_volume: DeleteVolumeRequest => DeleteVolumeResponse,
        watch_volumes: WatchVolumesRequest => WatchVolumesResponse / WatchVolumesStream;

    async fn attach_volume(&self, request: Request<pb::AttachVolumeRequest>) -> Result<Response<pb::AttachVolumeResponse>, Status> {
        let p = authz::principal(&request)?;
        let r = request.into_inner();
        let (department, _) = crate::names::parse_name("name", &r.name, "volumes")?;
        authz::write(&p, &department)?;
        crate::resource::require_request_id(&r.request_id)?;
        let instance = match crate::names::parse_name("instance", &r.instance, "instances") {
            Ok((d, n)) if d == department => n,
            Ok(_) => {
                return Err(crate::status::invalid(&[FieldViolation::new(
                    "instance",
                    "must name an instance of the volume's department",
                )]));
            }
            Err(status) => return Err(crate::status::invalid(&[FieldViolation::new("instance", status.message())])),
        };
        let what = format!("attach {instance}");
        if let Some(first) = self.answered::<VolumeSpec>(&p, &r.name, &r.request_id, &what).await? {
            return Ok(Response::new(pb::AttachVolumeResponse { volume: Some(VolumeSpec::to_message(&first)) }));
        }
        let target = self.get::<InstanceSpec>(&p, &r.instance).await?;
        let o = self.change::<VolumeSpec>(&p, &r.name, &r.request_id, &what, |v| {
            if v.spec.attach_to.as_deref() == Some(instance.as_str()) {
                return Ok(());
            }
            // Volumes do not move between foundations.
            if let (Some(on), Some(there)) = (&v.status.placement.foundation, &target.status.placement.foundation)
                && on != there
            {
                return Err(Status::failed_precondition(format!(
                    "volume {} is on foundation {on} and instance {instance} on {there}; volumes do not move between foundations",
                    v.meta.name
                )));
            }
            v.spec.attach_to = Some(instance.clone());
            Ok(())
        });
        Ok(Response::new(pb::AttachVolumeResponse { volume: Some(VolumeSpec::to_message(&o.await?)) }))
    }

    async fn detach_volume(&self, request: Request<pb::DetachVolumeRequest>) -> Result<Response<pb::DetachVolumeResponse>, Status> {
        let p = authz::principal(&request)?;
        let r = request.into_inner();
        let o = self.change::<VolumeSpec>(&p, &r.name, &r.request_id, "detach", |v| {
            v.spec.attach_to = None;
            Ok(())
        });
        Ok(Response::new(pb::DetachVolumeResponse { volume: Some(VolumeSpec::to_message(&o.await?)) }))
    }
}

workload_service! {
    BucketService for BucketSpec: bucket, bucket_id, buckets,
        create_bucket: CreateBucketRequest => CreateBucketResponse,
        get_bucket: GetBucketRequest => GetBucketResponse,
        list_buckets: ListBucketsRequest => ListBucketsResponse,
        delete_bucket: DeleteBucketRequest => DeleteBucketResponse,
        watch_buckets: WatchBucketsRequest => WatchBucketsResponse / WatchBucketsStream;

    async fn issue_bucket_credentials(
        &self,
        request: Request<pb::IssueBucketCredentialsRequest>,
    ) -> Result<Response<pb::IssueBucketCredentialsResponse>, Status> {
        let p = authz::principal(&request)?;
        let r = request.into_inner();
        let o = self.get::<BucketSpec>(&p, &r.name).await?;
        authz::write(&p, o.meta.department.as_deref().unwrap_or_default())?;
        crate::resource::require_request_id(&r.request_id)?;
        let ttl = match r.ttl {
            None => DEFAULT_CREDENTIALS_TTL,
            Some(d) if d.seconds > 0 && d.nanos >= 0 => std::time::Duration::from_secs(d.seconds.unsigned_abs())
                .min(MAX_CREDENTIALS_TTL),
            Some(_) => {
                return Err(crate::status::invalid(&[FieldViolation::new(
                    "ttl",
                    "must be positive (at most 7 days; longer is shortened)",
                )]));
            }
        };
        let Some(actions) = self.actions.as_ref() else {
            return Err(not_ready(&r.name, o.status.phase));
        };
        // Reserved while the keys are made, so overlapping retries do not
        // make a second pair; once made, a retry gets the same pair back,
        // whatever state the bucket is in now.
        // A retry must ask the same ttl, or it is a different request. The
        // default ttl keeps the fingerprint earlier builds wrote for every
        // issue, which a retry of any ttl asked before an upgrade matches.
        let print = |asked: &str| yunshu_core::admission::fingerprint(<BucketSpec as yunshu_core::meta::Spec>::KIND, &o.meta.name, asked.as_bytes());
        let earlier = print("issue credentials");
        let asked = (ttl != DEFAULT_CREDENTIALS_TTL).then(|| print(&format!("issue credentials for {}s", ttl.as_secs())));
        let fingerprints: Vec<&str> = asked.iter().chain([&earlier]).map(String::as_str).collect();
        let reserved = if o.status.phase == Phase::Ready {
            self.reserve_action(&r.request_id, &fingerprints, &o).await?
        } else if self.action_done(&r.request_id, &fingerprints, &o).await? {
            crate::changes::Reserved::Done
        } else {
            return Err(not_ready(&r.name, o.status.phase));
        };
        // Carried out and recorded even if the caller goes away meanwhile.
        let (api, actions, bucket, who, request_id) = (self.clone(), actions.clone(), o.clone(), p.clone(), r.request_id.clone());
        let issued = tokio::spawn(async move {
            let issued = actions.issue_credentials(&who, &bucket, ttl, &request_id).await;
            if let crate::changes::Reserved::Go(at) = reserved {
                let department = bucket.meta.department.as_deref().unwrap_or_default();
                api.finish_action(department, &request_id, at, issued.is_ok()).await;
            }
            issued
        })
        .await
        .map_err(|e| Status::internal(format!("the credentials task failed: {e}")))?
        .map_err(crate::status::from_foundation)?;
        Ok(Response::new(pb::IssueBucketCredentialsResponse {
            access_key_id: issued.access_key.clone(),
            secret_access_key: issued.secret_key.clone(),
            expire_time: issued.expires_at.map(|t| prost_types::Timestamp {
                seconds: t.timestamp(),
                nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or_default(),
            }),
            endpoints: o.status.addresses.clone(),
        }))
    }

    async fn revoke_bucket_credentials(
        &self,
        request: Request<pb::RevokeBucketCredentialsRequest>,
    ) -> Result<Response<pb::RevokeBucketCredentialsResponse>, Status> {
        let p = authz::principal(&request)?;
        let r = request.into_inner();
        let o = self.get::<BucketSpec>(&p, &r.name).await?;
        authz::write(&p, o.meta.department.as_deref().unwrap_or_default())?;
        if r.access_key_id.is_empty() {
            return Err(crate::status::invalid(&[FieldViolation::new("access_key_id", "is required")]));
        }
        crate::resource::require_request_id(&r.request_id)?;
        let Some(actions) = self.actions.as_ref().filter(|_| o.status.phase == Phase::Ready) else {
            return Err(not_ready(&r.name, o.status.phase));
        };
        actions
            .revoke_credentials(&p, &o, &r.access_key_id)
            .await
            .map_err(crate::status::from_foundation)?;
        Ok(Response::new(pb::RevokeBucketCredentialsResponse {}))
    }
}

/// How long issued credentials last when the request names no ttl.
pub const DEFAULT_CREDENTIALS_TTL: std::time::Duration = std::time::Duration::from_secs(3600);
/// The longest ttl granted.
pub const MAX_CREDENTIALS_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

fn not_ready(name: &str, phase: Phase) -> Status {
    Status::failed_precondition(format!(
        "bucket {name} is {phase:?}, not Ready on a storage foundation; credentials are issued for ready buckets"
    ))
}
