//! The runtime's [`Actions`]: reboots, bucket object counts and bucket
//! credentials, through the adapter registry.
//!
//! Credentials are issued by the bucket's foundation, scoped to the
//! department (and to the bucket where the server supports it), and:
//! - kept for idempotent retries only sealed in the vault, under the
//!   request id, so a repeated `IssueBucketCredentials` returns the same
//!   keys instead of minting more;
//! - recorded without their secret at `/yunshu/credentials/{department}/{bucket}/{access key}`
//!   with their expiry, so [`expire`] revokes them when they run out;
//! - written to the audit log, `/yunshu/audit/{department}/…` in the store
//!   and a `yunshu::audit` log event: who, what, which bucket, which access
//!   key, until when — never the secret.

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
    store::{Store, StoreExt},
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
}

/// One audit log entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// When.
    pub time: DateTime<Utc>,
    /// `issue-credentials`, `revoke-credentials`, `expire-credentials`.
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

#[derive(Serialize, Deserialize)]
struct Sealed {
    access_key: String,
    secret_key: String,
    expires_at: Option<DateTime<Utc>>,
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
        let sealed_name = format!(
            "credentials/{department}/{}/{}/{request_id}",
            bucket.meta.name, bucket.meta.uid
        );
        if let Some(bytes) = self.vault.get(&sealed_name).await? {
            let s: Sealed = serde_json::from_slice(&bytes)
                .map_err(|_| Error::internal("a sealed credential record does not parse"))?;
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
        })
        .map_err(|_| Error::internal("cannot encode a credential record"))?;
        self.vault.put(&sealed_name, &sealed).await?;
        let record = CredentialRecord {
            foundation,
            bucket_uid: bucket.meta.uid.clone(),
            expires_at,
            issued_by: format!("{}/{}", who.department, who.subject),
            request_id: request_id.to_owned(),
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
        let client = self
            .client_of(bucket.status.placement.foundation.as_deref())
            .await?;
        client
            .revoke_credentials(&owner_of(bucket), access_key)
            .await?;
        self.store
            .delete(&credential_key(&department, &bucket.meta.name, access_key))
            .await?;
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

/// Revokes every issued credential past its expiry; returns how many.
pub async fn expire(store: &Arc<dyn Store>, registry: &Registry) -> Result<usize> {
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
        store.delete(&kv.key).await?;
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
