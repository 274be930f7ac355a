//! The runtime's [`Actions`]: reboots, bucket object counts and bucket
//! credentials, through the adapter registry.
//!
//! Credentials are issued by the bucket's foundation, scoped to the
//! department (and to the bucket where the server supports it), and:
//! - kept for idempotent retries only sealed in the vault, under the
//!   request id, so a repeated `IssueBucketCredentials` returns the same
//!   keys instead of minting more (audited as `reissue-credentials`);
//! - recorded without their secret at `/yunshu/credentials/{department}/{bucket}/{access key}`
//!   with their expiry, so [`expire`] revokes them when they run out;
//! - written to the audit log, `/yunshu/audit/{department}/…` in the store
//!   and a `yunshu::audit` log event: who, what, which bucket, which access
//!   key, until when — never the secret.
//!
//! Revoking replaces the sealed secret with a tombstone, so no copy of a
//! revoked secret is kept, and a retried issue under the old request id is
//! refused instead of minting new keys behind the revocation. The record
//! stays, marked revoked, until the credentials would have expired; then
//! [`expire`] deletes it with the tombstone.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use yunshu_core::{
    adapter::{InstanceAction, IssuedCredentials, SecretVault},
    codec,
    error::{Error, ErrorKind, Result},
    keys,
    meta::{Kind, Object},
    model::{BucketSpec, Foundation, FoundationSpec, InstanceSpec},
    principal::Principal,
    store::{Compare, Op, Store, StoreExt, Txn},
};
use yunshu_grpc::actions::Actions;

use crate::{
    adapters::{FoundationClient, Priority, Registry},
    provisioner::owner_of,
};

/// What is kept of issued credentials, without the secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRecord {
    /// The foundation that issued them.
    pub foundation: String,
    /// The bucket object's uid.
    pub bucket_uid: String,
    /// When they stop working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who asked for them.
    pub issued_by: String,
    /// The request id of the issue.
    pub request_id: String,
    /// Revoked before they expired; the record stays until then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

/// One audit log entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// When.
    pub time: DateTime<Utc>,
    /// `issue-credentials`, `reissue-credentials` (a retry returned the keys
    /// issued before), `revoke-credentials`, `expire-credentials`.
    pub action: String,
    /// The principal's department and subject (or `yunshu` for expiry).
    pub actor: String,
    /// `departments/{d}/buckets/{b}`.
    pub resource: String,
    /// The access key concerned.
    pub access_key: String,
    /// The expiry, for issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// What the vault keeps under a request id: the issued keys, or once they
/// are revoked a tombstone without the secret.
#[derive(Serialize, Deserialize)]
struct Sealed {
    access_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    secret_key: String,
    expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    revoked: bool,
}

/// The vault name of what an issue under `request_id` returned.
fn sealed_name(department: &str, bucket: &str, bucket_uid: &str, request_id: &str) -> String {
    format!("credentials/{department}/{bucket}/{bucket_uid}/{request_id}")
}

fn credential_key(department: &str, bucket: &str, access_key: &str) -> String {
    format!(
        "{}credentials/{department}/{bucket}/{access_key}",
        keys::ROOT
    )
}

fn credentials_prefix() -> String {
    format!("{}credentials/", keys::ROOT)
}

fn audit_key(department: &str, time: DateTime<Utc>, access_key: &str) -> String {
    format!(
        "{}audit/{department}/{:020}-{access_key}",
        keys::ROOT,
        time.timestamp_nanos_opt().unwrap_or_default()
    )
}

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

    async fn audit(&self, department: &str, record: &AuditRecord) -> Result<()> {
        tracing::info!(
            target: "yunshu::audit",
            action = %record.action,
            actor = %record.actor,
            resource = %record.resource,
            access_key = %record.access_key,
            expires_at = ?record.expires_at,
            "audit"
        );
        self.store
            .put(
                &audit_key(department, record.time, &record.access_key),
                codec::encode(record)?,
            )
            .await?;
        Ok(())
    }
}

fn resource_name(bucket: &Object<BucketSpec>) -> String {
    format!(
        "departments/{}/buckets/{}",
        bucket.meta.department.as_deref().unwrap_or_default(),
        bucket.meta.name
    )
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
        let department = bucket.meta.department.clone().unwrap_or_default();
        let sealed_name = sealed_name(&department, &bucket.meta.name, &bucket.meta.uid, request_id);
        if let Some(bytes) = self.vault.get(&sealed_name).await? {
            let s: Sealed = serde_json::from_slice(&bytes)
                .map_err(|_| Error::internal("a sealed credential record does not parse"))?;
            let gone = if s.revoked {
                Some("were revoked")
            } else if s.expires_at.is_some_and(|t| t <= Utc::now()) {
                Some("have expired")
            } else {
                None
            };
            if let Some(gone) = gone {
                return Err(Error::invalid(
                    "request_id",
                    format!(
                        "the credentials issued under this request id ({}) {gone}; use a new request id to issue new ones",
                        s.access_key
                    ),
                ));
            }
            self.audit(
                &department,
                &AuditRecord {
                    time: Utc::now(),
                    action: "reissue-credentials".into(),
                    actor: format!("{}/{}", who.department, who.subject),
                    resource: resource_name(bucket),
                    access_key: s.access_key.clone(),
                    expires_at: s.expires_at,
                },
            )
            .await?;
            return Ok(IssuedCredentials {
                access_key: s.access_key,
                secret_key: s.secret_key,
                expires_at: s.expires_at,
            });
        }
        let foundation = bucket
            .status
            .placement
            .foundation
            .clone()
            .unwrap_or_default();
        let client = self.client_of(Some(&foundation)).await?;
        let issued = client.issue_credentials(&owner_of(bucket), ttl).await?;
        let expires_at = issued
            .expires_at
            .or_else(|| chrono::Duration::from_std(ttl).ok().map(|d| Utc::now() + d));
        let sealed = serde_json::to_vec(&Sealed {
            access_key: issued.access_key.clone(),
            secret_key: issued.secret_key.clone(),
            expires_at,
            revoked: false,
        })
        .map_err(|_| Error::internal("cannot encode a credential record"))?;
        self.vault.put(&sealed_name, &sealed).await?;
        let record = CredentialRecord {
            foundation,
            bucket_uid: bucket.meta.uid.clone(),
            expires_at,
            issued_by: format!("{}/{}", who.department, who.subject),
            request_id: request_id.to_owned(),
            revoked: false,
        };
        self.store
            .put(
                &credential_key(&department, &bucket.meta.name, &issued.access_key),
                codec::encode(&record)?,
            )
            .await?;
        self.audit(
            &department,
            &AuditRecord {
                time: Utc::now(),
                action: "issue-credentials".into(),
                actor: record.issued_by.clone(),
                resource: resource_name(bucket),
                access_key: issued.access_key.clone(),
                expires_at,
            },
        )
        .await?;
        Ok(IssuedCredentials {
            expires_at,
            ..issued
        })
    }

    async fn revoke_credentials(
        &self,
        who: &Principal,
        bucket: &Object<BucketSpec>,
        access_key: &str,
    ) -> Result<()> {
        let department = bucket.meta.department.clone().unwrap_or_default();
        let key = credential_key(&department, &bucket.meta.name, access_key);
        let record = match self.store.get(&key).await? {
            Some(kv) => Some((codec::decode::<CredentialRecord>(&kv.key, &kv.value)?, kv)),
            None => None,
        };
        if record.as_ref().is_some_and(|(r, _)| r.revoked) {
            return Ok(());
        }
        let client = self
            .client_of(bucket.status.placement.foundation.as_deref())
            .await?;
        match client
            .revoke_credentials(&owner_of(bucket), access_key)
            .await
        {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            // The foundation's answer to a key of another bucket: the
            // caller's mistake, not Yunshu's permissions.
            Err(Error::PermissionDenied { message }) => {
                return Err(Error::invalid("access_key_id", message));
            }
            Err(e) => return Err(e),
        }
        if let Some((mut r, kv)) = record {
            let tombstone = serde_json::to_vec(&Sealed {
                access_key: access_key.to_owned(),
                secret_key: String::new(),
                expires_at: r.expires_at,
                revoked: true,
            })
            .map_err(|_| Error::internal("cannot encode a credential record"))?;
            self.vault
                .put(
                    &sealed_name(&department, &bucket.meta.name, &r.bucket_uid, &r.request_id),
                    &tombstone,
                )
                .await?;
            r.revoked = true;
            // Only if nothing else changed it meanwhile: a concurrent
            // revoke has written the same, and expiry deleted it.
            let _ = self
                .store
                .txn(
                    Txn::new()
                        .when([Compare::unchanged(key.as_str(), kv.mod_revision)])
                        .and_then([Op::put(key.as_str(), codec::encode(&r)?)]),
                )
                .await?;
        }
        self.audit(
            &department,
            &AuditRecord {
                time: Utc::now(),
                action: "revoke-credentials".into(),
                actor: format!("{}/{}", who.department, who.subject),
                resource: resource_name(bucket),
                access_key: access_key.to_owned(),
                expires_at: None,
            },
        )
        .await
    }
}

/// Revokes every issued credential past its expiry; returns how many. The
/// record and its sealed copy (or tombstone) go with it, also for
/// credentials revoked earlier.
pub async fn expire(
    store: &Arc<dyn Store>,
    registry: &Registry,
    vault: &dyn SecretVault,
) -> Result<usize> {
    let mut revoked = 0;
    let now = Utc::now();
    for kv in store.range_all(&credentials_prefix(), 500).await? {
        let Ok(record) = codec::decode::<CredentialRecord>(&kv.key, &kv.value) else {
            continue;
        };
        if record.expires_at.is_none_or(|t| t > now) {
            continue;
        }
        let rest = kv.key.trim_start_matches(&credentials_prefix());
        let mut parts = rest.splitn(3, '/');
        let (Some(department), Some(bucket), Some(access_key)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !record.revoked {
            let fkey = keys::object(Kind::Foundation, None, &record.foundation);
            let Some(fkv) = store.get(&fkey).await? else {
                continue;
            };
            let f = codec::decode_object::<FoundationSpec>(&fkv)?;
            let Some(client) = registry.client(&f).await? else {
                continue;
            };
            let owner = yunshu_core::adapter::Owner {
                department: department.to_owned(),
                name: bucket.to_owned(),
                uid: record.bucket_uid.clone(),
            };
            match client.revoke_credentials(&owner, access_key).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(access_key, error = %e, "cannot revoke expired credentials yet");
                    continue;
                }
            }
        }
        vault
            .delete(&sealed_name(
                department,
                bucket,
                &record.bucket_uid,
                &record.request_id,
            ))
            .await?;
        store.delete(&kv.key).await?;
        if record.revoked {
            continue;
        }
        let record = AuditRecord {
            time: Utc::now(),
            action: "expire-credentials".into(),
            actor: "yunshu".into(),
            resource: format!("departments/{department}/buckets/{bucket}"),
            access_key: access_key.to_owned(),
            expires_at: record.expires_at,
        };
        tracing::info!(target: "yunshu::audit", action = %record.action, resource = %record.resource, access_key = %record.access_key, "audit");
        store
            .put(
                &audit_key(department, record.time, access_key),
                codec::encode(&record)?,
            )
            .await?;
        revoked += 1;
    }
    Ok(revoked)
}
