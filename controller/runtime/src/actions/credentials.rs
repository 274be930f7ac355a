//! Bucket credentials: issued by the bucket's foundation, scoped to the
//! department (and to the bucket where the server supports it), and:
//! - recorded without their secret at `/yunshu/credentials/{department}/{bucket}/{access key}`
//!   with their expiry, before anyone sees them, so [`expire`](super::expire) revokes
//!   them when they run out;
//! - kept for idempotent retries only sealed in the vault, under the
//!   request id, so a repeated `IssueBucketCredentials` returns the same
//!   keys instead of minting more (audited as `reissue-credentials`);
//! - written to the audit log, `/yunshu/audit/{department}/…` in the store
//!   and a `yunshu::audit` log event: who, what, which bucket, which access
//!   key, until when — never the secret.
//!
//! Revoking, and expiry, replace the sealed secret with a tombstone, so no
//! copy of a dead secret is kept and a retried issue under the old request
//! id is refused instead of minting keys behind the revocation. A sealed
//! copy whose record is gone or revoked counts as dead too. Record and
//! tombstone stay, marked revoked, for [`RETENTION`] after the expiry; then
//! [`expire`](super::expire) deletes both, and the request id may be used again.
//!
//! Crash windows: keys recorded but not yet sealed were never returned; a
//! retry mints new ones and [`expire`](super::expire) revokes the first at their expiry.
//! Keys minted but not recorded (the record could not be written) are
//! revoked at once; a crash in that instant leaves keys no record names,
//! which [`expire`](super::expire) still revokes at their expiry by asking the foundation
//! for its expired issued credentials.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use yunshu_core::{
    adapter::{IssuedCredentials, SecretVault},
    codec,
    error::{Error, ErrorKind, Result},
    keys,
    meta::Object,
    model::BucketSpec,
    principal::Principal,
    store::{Compare, KeyValue, Op, Store, StoreExt, Txn},
};

use super::RuntimeActions;
use crate::provisioner::owner_of;

/// How long a record and tombstone outlive the credentials' expiry: a
/// retried issue under their request id is refused for that long.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

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
    /// Revoked, by a caller or at expiry; the record stays for
    /// [`RETENTION`] after the expiry.
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
/// are dead a tombstone with an empty secret.
#[derive(Serialize, Deserialize)]
pub(super) struct Sealed {
    pub(super) access_key: String,
    pub(super) secret_key: String,
    pub(super) expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(super) revoked: bool,
}

/// Where in the vault issues keep what they returned.
pub(super) const SEALED_PREFIX: &str = "credentials/";

/// The vault name of what an issue under `request_id` returned.
pub(super) fn sealed_name(
    department: &str,
    bucket: &str,
    bucket_uid: &str,
    request_id: &str,
) -> String {
    format!("{SEALED_PREFIX}{department}/{bucket}/{bucket_uid}/{request_id}")
}

pub(super) fn credential_key(department: &str, bucket: &str, access_key: &str) -> String {
    format!(
        "{}credentials/{department}/{bucket}/{access_key}",
        keys::ROOT
    )
}

pub(super) fn credentials_prefix() -> String {
    format!("{}credentials/", keys::ROOT)
}

fn audit_key(department: &str, time: DateTime<Utc>, access_key: &str) -> String {
    format!(
        "{}audit/{department}/{:020}-{access_key}",
        keys::ROOT,
        time.timestamp_nanos_opt().unwrap_or_default()
    )
}

pub(super) fn resource_name(department: &str, bucket: &str) -> String {
    format!("departments/{department}/buckets/{bucket}")
}

/// Writes an audit entry to the log and the store.
pub(super) async fn audit(store: &dyn Store, department: &str, record: &AuditRecord) -> Result<()> {
    tracing::info!(
        target: "yunshu::audit",
        action = %record.action,
        actor = %record.actor,
        resource = %record.resource,
        access_key = %record.access_key,
        expires_at = ?record.expires_at,
        "audit"
    );
    store
        .put(
            &audit_key(department, record.time, &record.access_key),
            codec::encode(record)?,
        )
        .await?;
    Ok(())
}

/// Replaces what the vault holds under `name` with a tombstone, unless it
/// holds the keys of another issue under the same request id (two issues
/// can share one: a crash between record and seal, then a retry).
pub(super) async fn tombstone(
    vault: &dyn SecretVault,
    name: &str,
    access_key: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<()> {
    if sealed_for_another(vault, name, access_key).await? {
        return Ok(());
    }
    write_tombstone(vault, name, access_key, expires_at).await
}

/// Writes a tombstone under `name`, whatever the vault holds there.
pub(super) async fn write_tombstone(
    vault: &dyn SecretVault,
    name: &str,
    access_key: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<()> {
    let t = serde_json::to_vec(&Sealed {
        access_key: access_key.to_owned(),
        secret_key: String::new(),
        expires_at,
        revoked: true,
    })
    .map_err(|_| Error::internal("cannot encode a credential tombstone"))?;
    vault.put(name, &t).await
}

/// Whether the vault's entry under `name` belongs to another access key.
pub(super) async fn sealed_for_another(
    vault: &dyn SecretVault,
    name: &str,
    access_key: &str,
) -> Result<bool> {
    Ok(match vault.get(name).await? {
        Some(bytes) => {
            serde_json::from_slice::<Sealed>(&bytes).is_ok_and(|s| s.access_key != access_key)
        }
        None => false,
    })
}

/// Marks a record revoked, unless it changed since it was read (a
/// concurrent revoke wrote the same; expiry may have removed it).
pub(super) async fn mark_revoked(
    store: &dyn Store,
    kv: &KeyValue,
    mut record: CredentialRecord,
) -> Result<()> {
    record.revoked = true;
    store
        .txn(
            Txn::new()
                .when([Compare::unchanged(kv.key.as_str(), kv.mod_revision)])
                .and_then([Op::put(kv.key.as_str(), codec::encode(&record)?)]),
        )
        .await?;
    Ok(())
}

async fn read_record(store: &dyn Store, key: &str) -> Result<Option<(CredentialRecord, KeyValue)>> {
    match store.get(key).await? {
        Some(kv) => Ok(Some((codec::decode(&kv.key, &kv.value)?, kv))),
        None => Ok(None),
    }
}

impl RuntimeActions {
    /// Issues credentials for a bucket, idempotent under `request_id`.
    pub(super) async fn issue(
        &self,
        who: &Principal,
        bucket: &Object<BucketSpec>,
        ttl: Duration,
        request_id: &str,
    ) -> Result<IssuedCredentials> {
        let department = bucket.meta.department.clone().unwrap_or_default();
        let name = &bucket.meta.name;
        let sealed_name = sealed_name(&department, name, &bucket.meta.uid, request_id);
        let actor = format!("{}/{}", who.department, who.subject);
        if let Some(bytes) = self.vault.get(&sealed_name).await? {
            let s: Sealed = serde_json::from_slice(&bytes)
                .map_err(|_| Error::internal("a sealed credential record does not parse"))?;
            let record = read_record(
                &*self.store,
                &credential_key(&department, name, &s.access_key),
            )
            .await?;
            let live = !s.revoked
                && record.is_some_and(|(r, _)| !r.revoked)
                && s.expires_at.is_none_or(|t| t > Utc::now());
            if !live {
                if !s.revoked {
                    // Dead keys, or keys no record accounts for: keep no secret.
                    // The entry just read is this one: no need to check it.
                    write_tombstone(&*self.vault, &sealed_name, &s.access_key, s.expires_at)
                        .await?;
                }
                return Err(Error::invalid(
                    "request_id",
                    format!(
                        "the credentials issued under this request id ({}) were revoked or have expired; use a new request id to issue new ones",
                        s.access_key
                    ),
                ));
            }
            audit(
                &*self.store,
                &department,
                &AuditRecord {
                    time: Utc::now(),
                    action: "reissue-credentials".into(),
                    actor,
                    resource: resource_name(&department, name),
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
        // The record first: keys that exist are accounted for before anyone
        // can see them.
        let record = CredentialRecord {
            foundation,
            bucket_uid: bucket.meta.uid.clone(),
            expires_at,
            issued_by: actor,
            request_id: request_id.to_owned(),
            revoked: false,
        };
        let written = match codec::encode(&record) {
            Ok(value) => {
                self.store
                    .put(
                        &credential_key(&department, name, &issued.access_key),
                        value,
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            // Unrecorded keys would never be revoked: take them back now.
            if let Err(undo) = client
                .revoke_credentials(&owner_of(bucket), &issued.access_key)
                .await
            {
                tracing::error!(access_key = %issued.access_key, error = %undo, "issued credentials could be neither recorded nor revoked");
            }
            return Err(e);
        }
        let sealed = serde_json::to_vec(&Sealed {
            access_key: issued.access_key.clone(),
            secret_key: issued.secret_key.clone(),
            expires_at,
            revoked: false,
        })
        .map_err(|_| Error::internal("cannot encode a credential record"))?;
        self.vault.put(&sealed_name, &sealed).await?;
        audit(
            &*self.store,
            &department,
            &AuditRecord {
                time: Utc::now(),
                action: "issue-credentials".into(),
                actor: record.issued_by.clone(),
                resource: resource_name(&department, name),
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

    /// Revokes credentials issued for a bucket. The tombstone goes first:
    /// from then on no retry returns the secret, whatever fails later.
    pub(super) async fn revoke(
        &self,
        who: &Principal,
        bucket: &Object<BucketSpec>,
        access_key: &str,
    ) -> Result<()> {
        let department = bucket.meta.department.clone().unwrap_or_default();
        let name = &bucket.meta.name;
        let record =
            read_record(&*self.store, &credential_key(&department, name, access_key)).await?;
        if record.as_ref().is_some_and(|(r, _)| r.revoked) {
            return Ok(());
        }
        if let Some((r, _)) = &record {
            let sealed = sealed_name(&department, name, &r.bucket_uid, &r.request_id);
            tombstone(&*self.vault, &sealed, access_key, r.expires_at).await?;
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
            Err(e) => return Err(e),
        }
        if let Some((r, kv)) = record {
            mark_revoked(&*self.store, &kv, r).await?;
        }
        audit(
            &*self.store,
            &department,
            &AuditRecord {
                time: Utc::now(),
                action: "revoke-credentials".into(),
                actor: format!("{}/{}", who.department, who.subject),
                resource: resource_name(&department, name),
                access_key: access_key.to_owned(),
                expires_at: None,
            },
        )
        .await
    }
}
