//! [`AdapterServer`]: any `Adapter` served over `yunshu.adapter.v1`, for an
//! integrator who writes the adapter in Rust, and so that the client can be
//! tested end to end against an in-tree adapter and a real cloud.

use std::{pin::Pin, sync::Arc};

use futures::Stream;
use tonic::{Request, Response, Status};
use yunshu_core::{
    Error,
    adapter::{Adapter, DeleteOptions},
    meta::Kind,
};
use yunshu_proto::adapter::v1::{
    self as pb,
    adapter_service_server::{AdapterService, AdapterServiceServer},
};

use crate::{convert, status::to_status};

/// Serves an adapter; with a token, every call must carry
/// `authorization: Bearer <token>` or is refused with UNAUTHENTICATED.
pub struct AdapterServer {
    adapter: Arc<dyn Adapter>,
    name: String,
    token: Option<String>,
}

impl std::fmt::Debug for AdapterServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterServer")
            .field("adapter", &self.adapter)
            .field("name", &self.name)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl AdapterServer {
    /// Serves `adapter`, which calls itself `name` in capabilities.
    pub fn new(adapter: Arc<dyn Adapter>, name: &str) -> Self {
        Self {
            adapter,
            name: name.to_owned(),
            token: None,
        }
    }

    /// Requires `token` on every call.
    #[must_use]
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// The tonic service to add to a server.
    pub fn into_service(self) -> AdapterServiceServer<Self> {
        AdapterServiceServer::new(self)
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Compared in time independent of where the first difference is.
        let same = given.len() == token.len()
            && given
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "a valid bearer token is required to call this adapter",
            ))
        }
    }

    /// Refuses a kind the adapter did not advertise with UNIMPLEMENTED, as
    /// the protocol asks, before the adapter sees it.
    fn supports(&self, kind: Kind) -> Result<(), Status> {
        if self.adapter.capabilities().kinds.contains(&kind) {
            Ok(())
        } else {
            Err(Status::unimplemented(format!(
                "this adapter does not manage {kind:?} resources"
            )))
        }
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl AdapterService for AdapterServer {
    async fn get_capabilities(
        &self,
        request: Request<pb::GetCapabilitiesRequest>,
    ) -> Answer<pb::GetCapabilitiesResponse> {
        self.check(&request)?;
        Ok(Response::new(convert::capabilities(
            &self.adapter.capabilities(),
            &self.name,
        )))
    }

    async fn probe(&self, request: Request<pb::ProbeRequest>) -> Answer<pb::ProbeResponse> {
        self.check(&request)?;
        let probe = self.adapter.probe().await.map_err(to_status)?;
        Ok(Response::new(convert::probe(probe)))
    }

    async fn ensure_tenant(
        &self,
        request: Request<pb::EnsureTenantRequest>,
    ) -> Answer<pb::EnsureTenantResponse> {
        self.check(&request)?;
        let department = request.into_inner().department;
        if department.is_empty() {
            return Err(to_status(Error::invalid("department", "is required")));
        }
        let t = self
            .adapter
            .ensure_tenant(&department)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::EnsureTenantResponse {
            tenant_id: t.tenant_id,
            user: t.user,
        }))
    }

    async fn create_instance(
        &self,
        request: Request<pb::CreateInstanceRequest>,
    ) -> Answer<pb::CreateInstanceResponse> {
        self.check(&request)?;
        self.supports(Kind::Instance)?;
        let r = request.into_inner();
        let owner = convert::owner_from(r.owner, "owner").map_err(to_status)?;
        let spec = convert::instance_spec_from(r.spec).map_err(to_status)?;
        let created = self
            .adapter
            .create_instance(&owner, &spec)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CreateInstanceResponse {
            resource: Some(convert::resource(created)),
        }))
    }

    async fn create_volume(
        &self,
        request: Request<pb::CreateVolumeRequest>,
    ) -> Answer<pb::CreateVolumeResponse> {
        self.check(&request)?;
        self.supports(Kind::Volume)?;
        let r = request.into_inner();
        let owner = convert::owner_from(r.owner, "owner").map_err(to_status)?;
        let spec = convert::volume_spec_from(r.spec).map_err(to_status)?;
        let created = self
            .adapter
            .create_volume(&owner, &spec)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CreateVolumeResponse {
            resource: Some(convert::resource(created)),
        }))
    }

    async fn create_bucket(
        &self,
        request: Request<pb::CreateBucketRequest>,
    ) -> Answer<pb::CreateBucketResponse> {
        self.check(&request)?;
        self.supports(Kind::Bucket)?;
        let r = request.into_inner();
        let owner = convert::owner_from(r.owner, "owner").map_err(to_status)?;
        let spec = convert::bucket_spec_from(r.spec).map_err(to_status)?;
        let created = self
            .adapter
            .create_bucket(&owner, &spec)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CreateBucketResponse {
            resource: Some(convert::resource(created)),
        }))
    }

    async fn get_resource(
        &self,
        request: Request<pb::GetResourceRequest>,
    ) -> Answer<pb::GetResourceResponse> {
        self.check(&request)?;
        let r = request.into_inner();
        let kind = convert::kind_from(r.kind, "kind").map_err(to_status)?;
        let owner = convert::owner_from(r.owner, "owner").map_err(to_status)?;
        let found = self.adapter.get(kind, &owner).await.map_err(to_status)?;
        Ok(Response::new(pb::GetResourceResponse {
            resource: Some(convert::resource(found)),
        }))
    }

    async fn delete_resource(
        &self,
        request: Request<pb::DeleteResourceRequest>,
    ) -> Answer<pb::DeleteResourceResponse> {
        self.check(&request)?;
        let r = request.into_inner();
        let kind = convert::kind_from(r.kind, "kind").map_err(to_status)?;
        let owner = convert::owner_from(r.owner, "owner").map_err(to_status)?;
        self.adapter
            .delete(kind, &owner, DeleteOptions { purge: r.purge })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeleteResourceResponse {}))
    }

    async fn instance_action(
        &self,
        request: Request<pb::InstanceActionRequest>,
    ) -> Answer<pb::InstanceActionResponse> {
        self.check(&request)?;
        let r = request.into_inner();
        let owner = convert::owner_from(r.owner, "owner").map_err(to_status)?;
        let action = convert::action_from(r.action).map_err(to_status)?;
        self.adapter
            .instance_action(&owner, action)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::InstanceActionResponse {}))
    }

    type ListOwnedResourcesStream =
        Pin<Box<dyn Stream<Item = Result<pb::ListOwnedResourcesResponse, Status>> + Send>>;

    async fn list_owned_resources(
        &self,
        request: Request<pb::ListOwnedResourcesRequest>,
    ) -> Answer<Self::ListOwnedResourcesStream> {
        self.check(&request)?;
        let kind = convert::kind_from(request.into_inner().kind, "kind").map_err(to_status)?;
        let owned = self.adapter.list_owned(kind).await.map_err(to_status)?;
        let items = owned.into_iter().map(|r| {
            Ok(pb::ListOwnedResourcesResponse {
                resource: Some(convert::resource(r)),
            })
        });
        Ok(Response::new(Box::pin(futures::stream::iter(items))))
    }

    async fn issue_credentials(
        &self,
        request: Request<pb::IssueCredentialsRequest>,
    ) -> Answer<pb::IssueCredentialsResponse> {
        self.check(&request)?;
        let r = request.into_inner();
        let owner = convert::owner_from(r.owner, "owner").map_err(to_status)?;
        let ttl = convert::ttl_from(r.ttl).map_err(to_status)?;
        let issued = self
            .adapter
            .issue_credentials(&owner, ttl)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::issued(issued)))
    }

    async fn revoke_credentials(
        &self,
        request: Request<pb::RevokeCredentialsRequest>,
    ) -> Answer<pb::RevokeCredentialsResponse> {
        self.check(&request)?;
        let r = request.into_inner();
        let owner = convert::owner_from(r.owner, "owner").map_err(to_status)?;
        if r.access_key_id.is_empty() {
            return Err(to_status(Error::invalid("access_key_id", "is required")));
        }
        self.adapter
            .revoke_credentials(&owner, &r.access_key_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RevokeCredentialsResponse {}))
    }

    async fn attach_volume(
        &self,
        request: Request<pb::AttachVolumeRequest>,
    ) -> Answer<pb::AttachVolumeResponse> {
        self.check(&request)?;
        let r = request.into_inner();
        let volume = convert::owner_from(r.volume, "volume").map_err(to_status)?;
        let instance = convert::owner_from(r.instance, "instance").map_err(to_status)?;
        self.adapter
            .attach_volume(&volume, &instance)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::AttachVolumeResponse {}))
    }

    async fn detach_volume(
        &self,
        request: Request<pb::DetachVolumeRequest>,
    ) -> Answer<pb::DetachVolumeResponse> {
        self.check(&request)?;
        let volume =
            convert::owner_from(request.into_inner().volume, "volume").map_err(to_status)?;
        self.adapter
            .detach_volume(&volume)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DetachVolumeResponse {}))
    }

    async fn revoke_expired_credentials(
        &self,
        request: Request<pb::RevokeExpiredCredentialsRequest>,
    ) -> Answer<pb::RevokeExpiredCredentialsResponse> {
        self.check(&request)?;
        let revoked = self
            .adapter
            .revoke_expired_credentials()
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RevokeExpiredCredentialsResponse {
            revoked: u32::try_from(revoked).unwrap_or(u32::MAX),
        }))
    }
}
