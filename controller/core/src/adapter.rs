//! The `Adapter` trait: how Yunshu drives one foundation. Implementations live
//! in `adapters/` (OpenStack, S3, remote over `yunshu.adapter.v1`), and
//! `adapters/testkit` is the conformance suite each must pass.

use std::{collections::BTreeMap, fmt, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    error::Result,
    meta::Kind,
    model::{
        AdapterKind, BucketSpec, Health, InstanceSpec, InventoryRecord, TenantMapping, VolumeSpec,
    },
    resources::ResourceClass,
    traits::Trait,
};

/// What an adapter can do, so callers know before calling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The resource kinds it can create.
    pub kinds: Vec<Kind>,
    /// Whether it can issue scoped credentials to departments.
    pub issues_credentials: bool,
}

/// The result of a probe: health and measured inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Health as measured.
    pub health: Health,
    /// How long the probe's API calls took.
    pub latency: Duration,
    /// Inventory per class.
    pub inventory: BTreeMap<ResourceClass, InventoryRecord>,
    /// Traits the cloud reports (e.g. from Placement).
    pub traits: Vec<Trait>,
}

/// Who a cloud resource is made for: the object's department and uid, which
/// is both the idempotency key and the ownership tag on the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The department.
    pub department: String,
    /// The object's name.
    pub name: String,
    /// The object's uid.
    pub uid: String,
}

/// A resource as the cloud reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudResource {
    /// The cloud's id.
    pub id: String,
    /// The ownership tag found on it.
    pub owner_uid: Option<String>,
    /// The cloud's status word (ACTIVE, BUILD, ERROR, available…).
    pub status: String,
    /// Whether the resource is usable.
    pub ready: bool,
    /// Whether the cloud failed it; `message` says why.
    pub failed: bool,
    /// Addresses or endpoints.
    pub addresses: Vec<String>,
    /// The cloud's message, e.g. a fault.
    pub message: String,
    /// Bytes stored (buckets), where the cloud reports it.
    pub bytes_used: Option<u64>,
    /// Objects stored (buckets), where the cloud reports it.
    pub objects_used: Option<u64>,
}

/// How to delete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Delete a bucket's objects too; without it a non-empty bucket is
    /// refused with `Conflict`.
    pub purge: bool,
}

/// A foundation's admin credentials, read from a file or a Secret: string
/// keys to string values (`username`, `password`, `project_name`,
/// `application_credential_id`, `access_key`, `secret_key`, …). Values never
/// appear in `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(pub BTreeMap<String, String>);

impl Credentials {
    /// The value of `key`, if present and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The value of `key`, or an `Invalid` error naming it.
    pub fn require(&self, key: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| {
            crate::error::Error::invalid(
                format!("credentials.{key}"),
                "is required for this adapter",
            )
        })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// Something to do to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceAction {
    /// Power on.
    Start,
    /// Power off.
    Stop,
    /// Reboot.
    Reboot,
    /// Change size.
    Resize {
        /// New vCPU count.
        vcpu: u32,
        /// New memory in MiB.
        memory_mib: u64,
    },
}

/// Credentials issued to a department; the secret is never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCredentials {
    /// The access key id.
    pub access_key: String,
    /// The secret.
    pub secret_key: String,
    /// When they stop working.
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One foundation's driver. Every method is idempotent under the owner uid.
#[async_trait]
pub trait Adapter: Send + Sync + fmt::Debug {
    /// Which adapter this is.
    fn kind(&self) -> AdapterKind;

    /// What it supports.
    fn capabilities(&self) -> Capabilities;

    /// Health and inventory.
    async fn probe(&self) -> Result<Probe>;

    /// Makes sure the department has a tenant on the cloud.
    async fn ensure_tenant(&self, department: &str) -> Result<TenantMapping>;

    /// Creates (or finds, by owner uid) an instance.
    async fn create_instance(&self, owner: &Owner, spec: &InstanceSpec) -> Result<CloudResource>;

    /// Creates (or finds) a volume.
    async fn create_volume(&self, owner: &Owner, spec: &VolumeSpec) -> Result<CloudResource>;

    /// Creates (or finds) a bucket.
    async fn create_bucket(&self, owner: &Owner, spec: &BucketSpec) -> Result<CloudResource>;

    /// The current state of an owned resource; `NotFound` if gone.
    async fn get(&self, kind: Kind, owner: &Owner) -> Result<CloudResource>;

    /// Deletes an owned resource; succeeds if it is already gone. A
    /// non-empty bucket is refused with `Conflict` unless `opts.purge`.
    async fn delete(&self, kind: Kind, owner: &Owner, opts: DeleteOptions) -> Result<()>;

    /// Attaches an owned volume to an owned instance; succeeds if attached.
    async fn attach_volume(&self, volume: &Owner, instance: &Owner) -> Result<()>;

    /// Detaches an owned volume; succeeds if it is not attached.
    async fn detach_volume(&self, volume: &Owner) -> Result<()>;

    /// Acts on an instance.
    async fn instance_action(&self, owner: &Owner, action: InstanceAction) -> Result<()>;

    /// Every resource of `kind` tagged as Yunshu's, for drift and orphan sweeps.
    async fn list_owned(&self, kind: Kind) -> Result<Vec<CloudResource>>;

    /// Issues scoped, expiring credentials to a department for the bucket
    /// `owner` names (or the department's whole tenant where the server
    /// cannot scope to one bucket).
    async fn issue_credentials(&self, owner: &Owner, ttl: Duration) -> Result<IssuedCredentials>;

    /// Revokes credentials issued earlier; succeeds if already revoked.
    async fn revoke_credentials(&self, owner: &Owner, access_key: &str) -> Result<()>;

    /// Revokes every credential this adapter issued that is past its
    /// expiry, as found on the server rather than in Yunshu's records, so
    /// that keys minted just before a crash, which no record names, end
    /// too; returns how many. Adapters that issue no credentials keep this
    /// default.
    async fn revoke_expired_credentials(&self) -> Result<usize> {
        Ok(0)
    }
}

/// Where adapters keep secrets they create (a department's S3 keys, an
/// application credential): values are sealed at rest by the implementation
/// (envelope encryption), never stored in plain text.
#[async_trait]
pub trait SecretVault: Send + Sync + fmt::Debug {
    /// Seals and stores `plaintext` under `name`, replacing any earlier value.
    async fn put(&self, name: &str, plaintext: &[u8]) -> Result<()>;

    /// Opens the value under `name`, if any.
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// Removes the value under `name`; succeeds if absent.
    async fn delete(&self, name: &str) -> Result<()>;

    /// The names of the values whose names start with `prefix`, in order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
}
