//! The runtime's [`Actions`]: reboots, bucket object counts and bucket
//! credentials ([`credentials`]), through the adapter registry.

mod credentials;
mod expiry;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use yunshu_core::{
    adapter::{InstanceAction, IssuedCredentials, SecretVault},
    codec,
    error::{Error, ErrorKind, Result},
    keys,
    meta::{Kind, Object},
    model::{BucketSpec, Foundation, InstanceSpec},
    principal::Principal,
    store::Store,
};
use yunshu_grpc::actions::Actions;

pub use credentials::{AuditRecord, CredentialRecord, RETENTION};
pub use expiry::expire;

use crate::{
    adapters::{FoundationClient, Priority, Registry},
    provisioner::owner_of,
};

/// Runtime actions over the adapter registry.
#[derive(Debug)]
pub struct RuntimeActions {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    vault: Arc<dyn SecretVault>,
}

impl RuntimeActions {
    /// Actions on the foundations of `store`.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        vault: Arc<dyn SecretVault>,
    ) -> Self {
        Self {
            store,
            registry,
            vault,
        }
    }

    async fn client_of(&self, foundation: Option<&str>) -> Result<FoundationClient> {
        let name = foundation.ok_or_else(|| Error::Conflict {
            message: "the resource is not placed on a foundation".into(),
        })?;
        let key = keys::object(Kind::Foundation, None, name);
        let kv = self
            .store
            .get(&key)
            .await?
            .ok_or_else(|| Error::not_found(format!("foundation {name}")))?;
        let f: Foundation = codec::decode_object(&kv)?;
        self.registry
            .client(&f)
            .await?
            .ok_or_else(|| Error::Conflict {
                message: format!("foundation {name} has no adapter credentials"),
            })
    }
}

#[async_trait]
impl Actions for RuntimeActions {
    async fn reboot(&self, instance: &Object<InstanceSpec>) -> Result<()> {
        let client = self
            .client_of(instance.status.placement.foundation.as_deref())
            .await?;
        client
            .instance_action(&owner_of(instance), InstanceAction::Reboot)
            .await
    }

    async fn bucket_objects(&self, bucket: &Object<BucketSpec>) -> Result<Option<u64>> {
        let client = self
            .client_of(bucket.status.placement.foundation.as_deref())
            .await?;
        match client
            .get(Kind::Bucket, &owner_of(bucket), Priority::User)
            .await
        {
            Ok(r) => Ok(r.objects_used),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn issue_credentials(
        &self,
        who: &Principal,
        bucket: &Object<BucketSpec>,
        ttl: Duration,
        request_id: &str,
    ) -> Result<IssuedCredentials> {
        self.issue(who, bucket, ttl, request_id).await
    }

    async fn revoke_credentials(
        &self,
        who: &Principal,
        bucket: &Object<BucketSpec>,
        access_key: &str,
    ) -> Result<()> {
        self.revoke(who, bucket, access_key).await
    }
}
