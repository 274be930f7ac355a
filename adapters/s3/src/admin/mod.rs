//! The admin dialect: users, keys, quotas and usage, the part of an object
//! store that S3 itself does not standardise.
//!
//! [`AdminApi`] is what the adapter needs, phrased in its own terms; each
//! server family implements it once:
//!
//! - [`rgw::RgwAdmin`] — Ceph RGW Admin Ops: every user owns its buckets, bucket
//!   and user quotas by size and object count enforced on each write, exact
//!   bucket stats (and tags) from one call.
//! - [`iam::IamAdmin`] — the IAM query API SeaweedFS embeds: one account whose
//!   users reach only what their policies allow, no quota API (size quotas
//!   through `weed shell`, see [`weed`]).

pub mod iam;
pub mod rgw;
pub mod weed;

use std::collections::BTreeMap;

use async_trait::async_trait;
use yunshu_core::{ErrorKind, Result};

use crate::config::{Dialect, KeyPair};

/// How an issued credential is confined to its one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuedGrant {
    /// A statement in the bucket's policy names the issued user, with an
    /// `aws:CurrentTime` condition, so the server itself enforces expiry (RGW).
    BucketPolicy,
    /// An inline policy on the issued user allows that bucket only. The
    /// server enforces no expiry; revocation does (SeaweedFS, whose policy
    /// engine refuses `aws:CurrentTime` conditions).
    UserPolicy,
}

/// What a quota call achieved on the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaOutcome {
    /// Whether a size limit is now in force.
    pub bytes: bool,
    /// Whether an object-count limit is now in force.
    pub objects: bool,
    /// What the server could not do, in words for the resource's message.
    pub note: Option<String>,
}

/// A bucket as the admin API reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketStat {
    /// The bucket's name.
    pub name: String,
    /// The owning user, where reported.
    pub owner: Option<String>,
    /// Bytes stored, where reported.
    pub bytes: Option<u64>,
    /// Objects stored, where reported.
    pub objects: Option<u64>,
    /// Tags, where the call reports them.
    pub tags: Option<BTreeMap<String, String>>,
}

/// Users, keys, quotas and usage on one server.
#[async_trait]
pub trait AdminApi: Send + Sync + std::fmt::Debug {
    /// Which dialect this is.
    fn dialect(&self) -> Dialect;

    /// Whether the admin API answers and accepts the admin identity.
    async fn health(&self) -> Result<()>;

    /// Creates `user` unless it exists (no key is made). `may_create_buckets`
    /// is false for issued users, so they cannot make buckets of their own.
    /// Returns whether it was created.
    async fn ensure_user(
        &self,
        user: &str,
        display_name: &str,
        may_create_buckets: bool,
    ) -> Result<bool>;

    /// Deletes `user` with its keys and policies; succeeds if it is gone.
    async fn delete_user(&self, user: &str) -> Result<()>;

    /// Every user whose name starts with `prefix`.
    async fn list_users(&self, prefix: &str) -> Result<Vec<String>>;

    /// The access key ids of `user`.
    async fn access_keys(&self, user: &str) -> Result<Vec<String>>;

    /// A new key pair for `user`.
    async fn create_access_key(&self, user: &str) -> Result<KeyPair>;

    /// Deletes one key of `user`; succeeds if it is gone.
    async fn delete_access_key(&self, user: &str, access_key: &str) -> Result<()>;

    /// The user holding `access_key`, looked for among users starting with
    /// `prefix` where the server cannot look a key up directly.
    async fn key_owner(&self, access_key: &str, prefix: &str) -> Result<Option<String>>;

    /// The user starting with `prefix` that holds `access_key`, found by
    /// listing them and their keys; fails if the admin may not list.
    async fn owner_among(&self, access_key: &str, prefix: &str) -> Result<Option<String>> {
        for user in self.list_users(prefix).await? {
            match self.access_keys(&user).await {
                Ok(keys) if keys.iter().any(|k| k == access_key) => return Ok(Some(user)),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// How issued credentials are confined to a bucket.
    fn issued_grant(&self) -> IssuedGrant;

    /// Lets `user` use `bucket` through its own policy, where the dialect
    /// works that way (IAM); a no-op where bucket ownership and the bucket
    /// policy do it (RGW).
    async fn grant_bucket(&self, user: &str, bucket: &str) -> Result<()>;

    /// Undoes [`AdminApi::grant_bucket`]; succeeds if there is nothing to undo.
    async fn revoke_bucket(&self, user: &str, bucket: &str) -> Result<()>;

    /// Sets the bucket's quota (`owner` is the owning user).
    async fn set_bucket_quota(
        &self,
        owner: &str,
        bucket: &str,
        max_bytes: u64,
        max_objects: Option<u64>,
    ) -> Result<QuotaOutcome>;

    /// Lifts any quota and forgets per-bucket server state before the
    /// bucket is emptied and deleted (a bucket SeaweedFS made read-only for
    /// being over quota cannot be emptied otherwise).
    async fn release_bucket(&self, bucket: &str) -> Result<()>;

    /// One bucket's stats; `None` if the server does not report them
    /// through its admin API (the adapter then counts by listing).
    async fn bucket_stat(&self, bucket: &str) -> Result<Option<BucketStat>>;

    /// Every bucket on the server, with whatever the admin API reports.
    async fn bucket_stats(&self) -> Result<Vec<BucketStat>>;

    /// Periodic work done on each probe (SeaweedFS: apply quotas now rather
    /// than on the server's own schedule).
    async fn maintain(&self) -> Result<()> {
        Ok(())
    }
}
