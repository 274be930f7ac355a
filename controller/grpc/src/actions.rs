//! What the API asks of the side that drives the clouds: one-shot actions
//! that do not fit "change the spec and let the provisioner converge" —
//! rebooting an instance, counting a bucket's objects before deleting it,
//! and issuing or revoking a bucket's credentials. The runtime implements
//! [`Actions`] over its adapter registry; without one these calls answer
//! FAILED_PRECONDITION.

use std::time::Duration;

use async_trait::async_trait;
use yunshu_core::{
    adapter::IssuedCredentials,
    error::Result,
    meta::Object,
    model::{BucketSpec, InstanceSpec},
    principal::Principal,
};

/// One-shot actions on cloud resources.
#[async_trait]
pub trait Actions: Send + Sync + std::fmt::Debug {
    /// Reboots a Ready instance.
    async fn reboot(&self, instance: &Object<InstanceSpec>) -> Result<()>;

    /// How many objects a Ready bucket holds now, if the store says.
    async fn bucket_objects(&self, bucket: &Object<BucketSpec>) -> Result<Option<u64>>;

    /// Issues credentials for a Ready bucket, idempotent under `request_id`,
    /// and writes the issue to the audit log as `who`.
    async fn issue_credentials(
        &self,
        who: &Principal,
        bucket: &Object<BucketSpec>,
        ttl: Duration,
        request_id: &str,
    ) -> Result<IssuedCredentials>;

    /// Revokes credentials issued for a bucket; audited as `who`.
    async fn revoke_credentials(
        &self,
        who: &Principal,
        bucket: &Object<BucketSpec>,
        access_key: &str,
    ) -> Result<()>;
}
