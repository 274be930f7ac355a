//! [`S3Adapter`]: Yunshu's [`Adapter`] for an S3-compatible object store.
//!
//! This module holds the adapter and its bucket life cycle; [`tenant`] the
//! department users and their vaulted keys; [`credentials`] the keys issued
//! to departments.

mod credentials;
mod tenant;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use aws_sdk_s3::{Client, config::SharedHttpClient};
use yunshu_core::{
    Error, ErrorKind, Result,
    adapter::{
        Adapter, Capabilities, CloudResource, Credentials, DeleteOptions, InstanceAction,
        IssuedCredentials, Owner, Probe, SecretVault,
    },
    meta::Kind,
    model::{
        AdapterKind, BucketSpec, FoundationSpec, Health, InstanceSpec, InventoryRecord,
        TenantMapping, VolumeSpec,
    },
    resources::{ResourceClass, Resources},
};

use crate::{
    admin::{AdminApi, iam::IamAdmin, rgw::RgwAdmin},
    config::{Dialect, S3Config},
    error::{from_sdk, sdk_code},
    naming, policy,
    s3::{self, Usage},
};

/// The tag holding the owning object's uid.
pub const TAG_UID: &str = "yunshu-uid";
/// The tag holding the owning department.
pub const TAG_DEPARTMENT: &str = "yunshu-department";
/// The tag holding the owning object's name.
pub const TAG_NAME: &str = "yunshu-name";

/// The S3 adapter: buckets through aws-sdk-s3, users, keys, quotas and
/// usage through the server's admin dialect. See the crate docs for the
/// design.
pub struct S3Adapter {
    foundation: String,
    config: S3Config,
    capacity: Option<Resources>,
    http: SharedHttpClient,
    admin_s3: Client,
    admin: Arc<dyn AdminApi>,
    vault: Arc<dyn SecretVault>,
    departments: Mutex<HashMap<String, (String, Client)>>,
    /// Serialises key handling in `ensure_tenant`, so concurrent calls in
    /// this process agree on one department key.
    tenant_lock: tokio::sync::Mutex<()>,
    /// Serialises bucket-policy rewrites (read, change, write) in this
    /// process, so an issue, a revoke, a create and the expiry sweep never
    /// write over each other's statements.
    policy_lock: tokio::sync::Mutex<()>,
}

impl fmt::Debug for S3Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Adapter")
            .field("foundation", &self.foundation)
            .field("endpoint", &self.config.endpoint)
            .field("dialect", &self.config.dialect)
            .finish_non_exhaustive()
    }
}

fn buckets_only() -> Error {
    Error::invalid("kind", "the S3 adapter serves buckets only")
}

impl S3Adapter {
    /// An adapter for `foundation` as `spec` declares it, acting with the
    /// admin `credentials` (`access_key`, `secret_key`) and keeping the
    /// departments' keys in `vault`. Nothing is contacted until first use.
    pub fn new(
        foundation: &str,
        spec: &FoundationSpec,
        credentials: Credentials,
        vault: Arc<dyn SecretVault>,
    ) -> Result<Self> {
        if foundation.is_empty() {
            return Err(Error::invalid("foundation", "must not be empty"));
        }
        let config = S3Config::from_spec(spec, &credentials)?;
        let http = s3::http_client();
        let admin_s3 = s3::client(&config, &http, &config.admin);
        let admin: Arc<dyn AdminApi> = match config.dialect {
            Dialect::RgwAdmin => Arc::new(RgwAdmin::new(&config)?),
            Dialect::Iam => Arc::new(IamAdmin::new(&config, admin_s3.clone())?),
        };
        Ok(Self {
            foundation: foundation.to_owned(),
            config,
            capacity: spec.capacity,
            http,
            admin_s3,
            admin,
            vault,
            departments: Mutex::new(HashMap::new()),
            tenant_lock: tokio::sync::Mutex::new(()),
            policy_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The bucket name a department's bucket object gets on this server.
    pub fn bucket_name(owner: &Owner) -> String {
        naming::bucket(&owner.department, &owner.name)
    }

    /// The vault entry holding `department`'s keys.
    pub fn vault_entry(&self, department: &str) -> String {
        naming::vault_entry(&self.foundation, department)
    }

    /// The bucket of `owner` if it exists and is not another object's:
    /// `(bucket, tags)`, or `None`.
    async fn find(
        &self,
        client: &Client,
        owner: &Owner,
    ) -> Result<Option<(String, BTreeMap<String, String>)>> {
        let bucket = Self::bucket_name(owner);
        if !s3::exists(client, &bucket).await? {
            return Ok(None);
        }
        let tags = s3::tags(client, &bucket).await?;
        match tags.get(TAG_UID) {
            Some(uid) if *uid != owner.uid => {
                tracing::warn!(%bucket, found = %uid, wanted = %owner.uid, "bucket belongs to another object");
                Ok(None)
            }
            _ => Ok(Some((bucket, tags))),
        }
    }

    async fn usage(&self, client: &Client, bucket: &str) -> Result<Usage> {
        if let Some(stat) = self.admin.bucket_stat(bucket).await?
            && let (Some(bytes), Some(objects)) = (stat.bytes, stat.objects)
        {
            return Ok(Usage { objects, bytes });
        }
        s3::usage(client, bucket).await
    }

    fn resource(
        &self,
        bucket: &str,
        owner_uid: Option<String>,
        usage: Usage,
        message: String,
    ) -> CloudResource {
        CloudResource {
            id: bucket.to_owned(),
            owner_uid,
            status: "available".to_owned(),
            ready: true,
            failed: false,
            // The service endpoint, as S3 clients take it; the bucket's
            // name is the resource id.
            addresses: vec![self.config.endpoint.clone()],
            message,
            bytes_used: Some(usage.bytes),
            objects_used: Some(usage.objects),
        }
    }

    /// Inventory from measured use: the servers report what is stored but
    /// not how much they can hold, so totals come from `spec.capacity`
    /// (zero when undeclared: nothing is placed on a foundation whose size
    /// nobody declared).
    fn inventory(&self, bytes_used: u64, buckets: u64) -> BTreeMap<ResourceClass, InventoryRecord> {
        [
            (ResourceClass::BucketBytes, bytes_used),
            (ResourceClass::Buckets, buckets),
        ]
        .into_iter()
        .map(|(class, used)| {
            let total = self.capacity.map_or(0, |c| c.get(class));
            let record = InventoryRecord {
                total,
                reserved: 0,
                allocation_ratio: 1.0,
                used,
                max_unit: total,
            };
            (class, record)
        })
        .collect()
    }
}

#[async_trait]
impl Adapter for S3Adapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::S3
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kinds: vec![Kind::Bucket],
            issues_credentials: true,
        }
    }

    async fn probe(&self) -> Result<Probe> {
        let started = Instant::now();
        let s3 = self
            .admin_s3
            .list_buckets()
            .send()
            .await
            .map_err(|e| from_sdk(e, "list buckets"));
        let admin = self.admin.health().await;
        let health = match (&s3, &admin) {
            (Ok(_), Ok(())) => Health::Ready,
            (Ok(_), Err(error)) => {
                tracing::warn!(foundation = %self.foundation, %error, "S3 admin API not answering");
                Health::Degraded
            }
            (Err(error), _) => {
                tracing::warn!(foundation = %self.foundation, %error, "S3 endpoint not answering");
                Health::Down
            }
        };
        let mut inventory = BTreeMap::new();
        if health == Health::Ready {
            if let Err(error) = self.admin.maintain().await {
                tracing::warn!(foundation = %self.foundation, %error, "S3 quota maintenance failed");
            }
            match self.admin.bucket_stats().await {
                Ok(stats) => {
                    let bytes = stats.iter().filter_map(|s| s.bytes).sum();
                    inventory = self.inventory(bytes, stats.len() as u64);
                }
                Err(error) => {
                    tracing::warn!(foundation = %self.foundation, %error, "S3 bucket stats unavailable");
                    inventory = self.inventory(0, 0);
                }
            }
        }
        Ok(Probe {
            health,
            latency: started.elapsed(),
            inventory,
            traits: vec![],
        })
    }

    async fn ensure_tenant(&self, department: &str) -> Result<TenantMapping> {
        self.tenant(department).await
    }

    async fn create_instance(&self, _owner: &Owner, _spec: &InstanceSpec) -> Result<CloudResource> {
        Err(buckets_only())
    }

    async fn create_volume(&self, _owner: &Owner, _spec: &VolumeSpec) -> Result<CloudResource> {
        Err(buckets_only())
    }

    async fn create_bucket(&self, owner: &Owner, spec: &BucketSpec) -> Result<CloudResource> {
        if spec.quota_bytes == 0 {
            return Err(Error::invalid("spec.quotaBytes", "must be at least 1 byte"));
        }
        if spec.quota_objects == Some(0) {
            return Err(Error::invalid(
                "spec.quotaObjects",
                "must be at least 1 when set",
            ));
        }
        let bucket = Self::bucket_name(owner);
        self.tenant(&owner.department).await?;
        let (user, dept_client) = self.department_client(&owner.department).await?;
        let (_, client) = self.operator(&owner.department).await?;
        self.admin.grant_bucket(&user, &bucket).await?;

        let what = format!("create bucket {bucket}");
        match dept_client.create_bucket().bucket(&bucket).send().await {
            Ok(_) => {
                tracing::info!(foundation = %self.foundation, %bucket, uid = %owner.uid, "bucket created")
            }
            Err(e) if sdk_code(&e) == Some("BucketAlreadyOwnedByYou") => {}
            Err(e) => {
                let e = from_sdk(e, &what);
                if e.kind() != ErrorKind::AlreadyExists {
                    return Err(e);
                }
                // Ours from an earlier attempt, or someone else's?
                let mine = matches!(s3::exists(&client, &bucket).await, Ok(true));
                if !mine {
                    return Err(Error::AlreadyExists {
                        what: format!(
                            "bucket {bucket} (owned outside Yunshu's department user {user})"
                        ),
                    });
                }
            }
        }

        // Claim it first, so a crash after this point leaves a bucket the
        // next attempt recognises.
        let mut tags = s3::tags(&client, &bucket).await?;
        if let Some(uid) = tags.get(TAG_UID).filter(|uid| **uid != owner.uid) {
            return Err(Error::AlreadyExists {
                what: format!("bucket {bucket} (it belongs to object uid {uid})"),
            });
        }
        tags.insert(TAG_UID.to_owned(), owner.uid.clone());
        tags.insert(TAG_DEPARTMENT.to_owned(), owner.department.clone());
        tags.insert(TAG_NAME.to_owned(), owner.name.clone());
        s3::put_tags(&client, &bucket, &tags).await?;
        s3::set_versioning(&client, &bucket, spec.versioning).await?;
        {
            let _rewriting = self.policy_lock.lock().await;
            let existing = s3::policy(&client, &bucket).await?;
            s3::put_policy(
                &client,
                &bucket,
                &policy::bucket_policy(&bucket, &user, existing.as_deref()),
            )
            .await?;
        }
        let quota = self
            .admin
            .set_bucket_quota(&user, &bucket, spec.quota_bytes, spec.quota_objects)
            .await?;
        let usage = self.usage(&client, &bucket).await?;
        Ok(self.resource(
            &bucket,
            Some(owner.uid.clone()),
            usage,
            quota.note.unwrap_or_default(),
        ))
    }

    async fn get(&self, kind: Kind, owner: &Owner) -> Result<CloudResource> {
        if kind != Kind::Bucket {
            return Err(buckets_only());
        }
        let (_, client) = self.operator(&owner.department).await?;
        let Some((bucket, tags)) = self.find(&client, owner).await? else {
            return Err(Error::not_found(format!(
                "bucket {}",
                Self::bucket_name(owner)
            )));
        };
        let usage = self.usage(&client, &bucket).await?;
        Ok(self.resource(&bucket, tags.get(TAG_UID).cloned(), usage, String::new()))
    }

    async fn delete(&self, kind: Kind, owner: &Owner, opts: DeleteOptions) -> Result<()> {
        if kind != Kind::Bucket {
            return Err(buckets_only());
        }
        let (user, client) = self.operator(&owner.department).await?;
        let bucket = Self::bucket_name(owner);
        if let Some((bucket, _)) = self.find(&client, owner).await? {
            // Counted here rather than left to the server: SeaweedFS deletes
            // a versioned bucket with its objects.
            let blocking = s3::blocking_objects(&client, &bucket).await?;
            if blocking > 0 && !opts.purge {
                return Err(Error::Conflict {
                    message: format!(
                        "bucket {bucket} is not empty: {blocking} objects; set purge to delete them"
                    ),
                });
            }
            self.admin.release_bucket(&bucket).await?;
            if blocking > 0 {
                let n = s3::purge(&client, &bucket).await?;
                tracing::info!(foundation = %self.foundation, %bucket, objects = n, "bucket purged");
            }
            if let Err(e) = client.delete_bucket().bucket(&bucket).send().await {
                let e = from_sdk(e, &format!("delete bucket {bucket}"));
                match e.kind() {
                    ErrorKind::NotFound => {}
                    ErrorKind::Conflict => {
                        return Err(Error::Conflict {
                            message: format!(
                                "bucket {bucket} is not empty: objects were written while deleting; set purge to delete them"
                            ),
                        });
                    }
                    _ => return Err(e),
                }
            }
            tracing::info!(foundation = %self.foundation, %bucket, uid = %owner.uid, "bucket deleted");
        } else if s3::exists(&client, &bucket).await? {
            // Another object's bucket under this name: not ours to clean up.
            return Ok(());
        }
        for issued in self
            .admin
            .list_users(&naming::issued_prefix(&owner.department, &bucket))
            .await?
        {
            self.admin.delete_user(&issued).await?;
        }
        self.admin.revoke_bucket(&user, &bucket).await
    }

    async fn attach_volume(&self, _volume: &Owner, _instance: &Owner) -> Result<()> {
        Err(buckets_only())
    }

    async fn detach_volume(&self, _volume: &Owner) -> Result<()> {
        Err(buckets_only())
    }

    async fn instance_action(&self, _owner: &Owner, _action: InstanceAction) -> Result<()> {
        Err(buckets_only())
    }

    async fn list_owned(&self, kind: Kind) -> Result<Vec<CloudResource>> {
        if kind != Kind::Bucket {
            return Err(buckets_only());
        }
        let stats = self.admin.bucket_stats().await?;
        Ok(stats
            .into_iter()
            .filter_map(|s| {
                let uid = s.tags.as_ref()?.get(TAG_UID)?.clone();
                let usage = Usage {
                    objects: s.objects.unwrap_or(0),
                    bytes: s.bytes.unwrap_or(0),
                };
                let mut r = self.resource(&s.name, Some(uid), usage, String::new());
                r.objects_used = s.objects;
                r.bytes_used = s.bytes;
                Some(r)
            })
            .collect())
    }

    async fn issue_credentials(&self, owner: &Owner, ttl: Duration) -> Result<IssuedCredentials> {
        self.issue(owner, ttl).await
    }

    async fn revoke_credentials(&self, owner: &Owner, access_key: &str) -> Result<()> {
        self.revoke(owner, access_key).await
    }

    async fn revoke_expired_credentials(&self) -> Result<usize> {
        self.revoke_expired().await
    }
}
