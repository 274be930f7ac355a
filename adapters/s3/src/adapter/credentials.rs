//! Credentials issued to departments: one server user per issue, confined
//! to one bucket, named after its expiry so a sweep can end it.

use std::time::Duration;

use aws_sdk_s3::Client;
use chrono::Utc;
use yunshu_core::{
    Error, ErrorKind, Result,
    adapter::{IssuedCredentials, Owner},
};

use super::{S3Adapter, TAG_DEPARTMENT};
use crate::{admin::IssuedGrant, naming, policy, s3};

impl S3Adapter {
    /// The body of `Adapter::revoke_expired_credentials`: deletes every
    /// issued user whose name says it has expired. On RGW the bucket policy
    /// already refuses expired keys, and this removes their statements and
    /// users; on SeaweedFS this sweep is what ends them. A user that cannot
    /// be revoked is logged and the others still are; the first such
    /// failure is returned after them.
    pub(super) async fn revoke_expired(&self) -> Result<usize> {
        let now = Utc::now();
        let expired: Vec<String> = self
            .admin
            .list_users(naming::USER_PREFIX)
            .await?
            .into_iter()
            .filter(|user| naming::issued_expiry(user).is_some_and(|t| t <= now))
            .collect();
        let mut failed = None;
        let mut revoked = 0;
        for user in self.unnamed_by_policies(expired, &mut failed).await {
            match self.admin.delete_user(&user).await {
                Ok(()) => {
                    tracing::info!(foundation = %self.foundation, %user, "expired credentials revoked");
                    revoked += 1;
                }
                Err(e) => {
                    tracing::warn!(foundation = %self.foundation, %user, error = %e, "expired credentials not revoked");
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(revoked),
        }
    }

    /// Of `users`, those no bucket policy names any more. On RGW their
    /// statements are removed here first: a user deleted before its
    /// statement would leave that statement behind with nothing left to
    /// find it by. A bucket whose policy cannot be rewritten is logged and
    /// its users wait for the next sweep (the policy's time condition
    /// refuses them meanwhile).
    async fn unnamed_by_policies(
        &self,
        mut users: Vec<String>,
        failed: &mut Option<Error>,
    ) -> Vec<String> {
        if users.is_empty() || self.admin.issued_grant() != IssuedGrant::BucketPolicy {
            return users;
        }
        let buckets = match self.admin.bucket_stats().await {
            Ok(buckets) => buckets,
            Err(e) => {
                tracing::warn!(foundation = %self.foundation, error = %e, "expired credentials not revoked: buckets not listed");
                failed.get_or_insert(e);
                return Vec::new();
            }
        };
        for stat in buckets {
            let Some(department) = stat.tags.as_ref().and_then(|t| t.get(TAG_DEPARTMENT)) else {
                continue;
            };
            let prefix = naming::issued_prefix(department, &stat.name);
            let named: Vec<&str> = users
                .iter()
                .filter(|u| u.starts_with(&prefix))
                .map(String::as_str)
                .collect();
            if named.is_empty() {
                continue;
            }
            let dropped = async {
                let (_, client) = self.operator(department).await?;
                self.drop_from_policy(&client, &stat.name, &named).await
            }
            .await;
            if let Err(e) = dropped {
                tracing::warn!(foundation = %self.foundation, bucket = %stat.name, error = %e, "expired credentials not revoked: the bucket policy still names them");
                failed.get_or_insert(e);
                users.retain(|u| !u.starts_with(&prefix));
            }
        }
        users
    }

    /// The body of `Adapter::issue_credentials`.
    pub(super) async fn issue(&self, owner: &Owner, ttl: Duration) -> Result<IssuedCredentials> {
        if ttl.is_zero() {
            return Err(Error::invalid("ttl", "must be longer than zero"));
        }
        let ttl =
            chrono::Duration::from_std(ttl).map_err(|_| Error::invalid("ttl", "is too long"))?;
        let (dept_user, client) = self.operator(&owner.department).await?;
        let Some((bucket, _)) = self.find(&client, owner).await? else {
            return Err(Error::not_found(format!(
                "bucket {}",
                Self::bucket_name(owner)
            )));
        };
        let expires_at = Utc::now() + ttl;
        let nonce = u16::from_be_bytes(
            uuid::Uuid::new_v4().as_bytes()[..2]
                .try_into()
                .expect("a uuid has more than two bytes"),
        );
        let user = naming::issued_user(&owner.department, &bucket, expires_at, nonce);
        self.admin
            .ensure_user(
                &user,
                &format!("Yunshu credentials for bucket {bucket}"),
                false,
            )
            .await?;
        let granted = async {
            let key = self.admin.create_access_key(&user).await?;
            match self.admin.issued_grant() {
                IssuedGrant::UserPolicy => self.admin.grant_bucket(&user, &bucket).await?,
                IssuedGrant::BucketPolicy => {
                    let _rewriting = self.policy_lock.lock().await;
                    // Another replica may rewrite the policy at the same
                    // time (the lock is this process's): read it back and
                    // write again until the new statement is there.
                    let mut attempts = 0;
                    loop {
                        let existing = s3::policy(&client, &bucket)
                            .await?
                            .unwrap_or_else(|| policy::bucket_policy(&bucket, &dept_user, None));
                        let doc = policy::with_issued(&existing, &bucket, &user, expires_at);
                        s3::put_policy(&client, &bucket, &doc).await?;
                        let now = s3::policy(&client, &bucket).await?.unwrap_or_default();
                        attempts += 1;
                        if policy::names_user(&now, &user) {
                            break;
                        }
                        if attempts == 3 {
                            return Err(Error::Conflict {
                                message: format!(
                                    "the policy of bucket {bucket} kept changing while credentials were issued; try again"
                                ),
                            });
                        }
                    }
                }
            }
            Ok::<_, Error>(key)
        }
        .await;
        let key = match granted {
            Ok(key) => key,
            Err(e) => {
                // No half-made credential stays behind.
                let _ = self.admin.delete_user(&user).await;
                return Err(e);
            }
        };
        tracing::info!(
            foundation = %self.foundation, department = %owner.department, %bucket, %user,
            access_key = %key.access_key, %expires_at, "credentials issued"
        );
        Ok(IssuedCredentials {
            access_key: key.access_key,
            secret_key: key.secret_key.expose().to_owned(),
            expires_at: Some(expires_at),
        })
    }

    /// The body of `Adapter::revoke_credentials`: only a key issued for this
    /// owner's bucket is revoked; an unknown key counts as revoked already.
    pub(super) async fn revoke(&self, owner: &Owner, access_key: &str) -> Result<()> {
        let bucket = Self::bucket_name(owner);
        let prefix = naming::issued_prefix(&owner.department, &bucket);
        let Some(user) = self.admin.key_owner(access_key, &prefix).await? else {
            return Ok(());
        };
        if !user.starts_with(&prefix) {
            // The caller's mistake, not a permission Yunshu lacks.
            return Err(Error::invalid(
                "access_key_id",
                format!("access key {access_key} was not issued for bucket {bucket}"),
            ));
        }
        // The statement goes before the user: once the user is gone a retry
        // finds no owner for the key, and would leave the statement behind.
        let (_, client) = self.operator(&owner.department).await?;
        self.drop_from_policy(&client, &bucket, &[&user]).await?;
        self.admin.delete_user(&user).await?;
        tracing::info!(
            foundation = %self.foundation, department = %owner.department, %bucket, %user,
            %access_key, "credentials revoked"
        );
        Ok(())
    }

    /// Removes the statements naming `users` from the bucket's policy (RGW).
    async fn drop_from_policy(&self, client: &Client, bucket: &str, users: &[&str]) -> Result<()> {
        if self.admin.issued_grant() != IssuedGrant::BucketPolicy {
            return Ok(());
        }
        let _rewriting = self.policy_lock.lock().await;
        match s3::policy(client, bucket).await {
            Ok(Some(doc)) => match policy::without_users(&doc, users) {
                Some(doc) => s3::put_policy(client, bucket, &doc).await,
                None => Ok(()),
            },
            Ok(None) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}
