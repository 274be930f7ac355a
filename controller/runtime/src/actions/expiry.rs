//! The credential sweep: expired keys are revoked, at the foundation
//! first, then their sealed copy becomes a tombstone and their record is
//! marked; records and tombstones go [`RETENTION`] after the expiry.
//! Foundations are also asked for expired keys no record names, and the
//! vault for sealed copies no record accounts for.

use std::sync::Arc;

use chrono::Utc;
use yunshu_core::{
    adapter::SecretVault,
    codec,
    error::{Error, ErrorKind, Result},
    keys,
    meta::Kind,
    model::FoundationSpec,
    store::{KeyValue, Store, StoreExt},
};

use super::credentials::{
    AuditRecord, CredentialRecord, RETENTION, SEALED_PREFIX, Sealed, audit, credential_key,
    credentials_prefix, mark_revoked, resource_name, sealed_for_another, sealed_name, tombstone,
    write_tombstone,
};
use crate::adapters::Registry;

/// Revokes every issued credential past its expiry and drops the records
/// and tombstones [`RETENTION`] past it; then has every foundation that
/// issues credentials revoke the expired ones still on it that no record
/// named ([`expire_unrecorded`]), and clears the vault of sealed copies no
/// record accounts for ([`sweep_sealed`]). Returns how many credentials
/// were revoked. A failure with one credential or foundation is logged and
/// the sweep goes on; a credential whose foundation is not registered
/// waits for it.
pub async fn expire(
    store: &Arc<dyn Store>,
    registry: &Registry,
    vault: &dyn SecretVault,
) -> Result<usize> {
    let mut revoked = 0;
    let now = Utc::now();
    let retention = chrono::Duration::from_std(RETENTION).unwrap_or_default();
    for kv in store.range_all(&credentials_prefix(), 500).await? {
        let Ok(record) = codec::decode::<CredentialRecord>(&kv.key, &kv.value) else {
            continue;
        };
        let Some(expires_at) = record.expires_at.filter(|t| *t <= now) else {
            continue;
        };
        let step = if record.revoked {
            if expires_at + retention > now {
                continue;
            }
            drop_retained(&**store, vault, &kv, &record).await
        } else {
            expire_one(store, registry, vault, &kv, &record).await
        };
        match step {
            Ok(true) => revoked += usize::from(!record.revoked),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(key = %kv.key, error = %e, "credential expiry: will try again")
            }
        }
    }
    match expire_unrecorded(store, registry).await {
        Ok(n) => revoked += n,
        Err(e) => {
            tracing::warn!(error = %e, "asking foundations for expired credentials: will try again")
        }
    }
    match sweep_sealed(&**store, vault).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            cleared = n,
            "sealed credentials that no record accounts for were cleared"
        ),
        Err(e) => tracing::warn!(error = %e, "sweeping sealed credentials: will try again"),
    }
    Ok(revoked)
}

/// Sealed copies that no live record accounts for: keys a revoke of an
/// earlier build left sealed after deleting their record become tombstones
/// (the keys are dead, and a retry of their request id is refused), and
/// tombstones whose record is gone are deleted [`RETENTION`] after their
/// expiry, as [`drop_retained`] does for those with a record. Returns how
/// many it changed; a failure with one is logged and the sweep goes on.
async fn sweep_sealed(store: &dyn Store, vault: &dyn SecretVault) -> Result<usize> {
    let mut changed = 0;
    for name in vault.list(SEALED_PREFIX).await? {
        match clear_sealed(store, vault, &name).await {
            Ok(true) => changed += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(secret = %name, error = %e, "sealed credential sweep: will try again")
            }
        }
    }
    Ok(changed)
}

/// [`sweep_sealed`] for one vault entry; whether it changed it. Issues
/// write the record before the sealed copy, so a live issue always has its
/// record by the time its copy is seen here.
async fn clear_sealed(store: &dyn Store, vault: &dyn SecretVault, name: &str) -> Result<bool> {
    let mut parts = name.strip_prefix(SEALED_PREFIX).unwrap_or("").split('/');
    let (Some(department), Some(bucket)) = (parts.next(), parts.next()) else {
        return Ok(false);
    };
    let Some(bytes) = vault.get(name).await? else {
        return Ok(false);
    };
    let s = serde_json::from_slice::<Sealed>(&bytes)
        .map_err(|_| Error::internal("a sealed credential does not parse"))?;
    let record = store
        .get(&credential_key(department, bucket, &s.access_key))
        .await?
        .map(|kv| codec::decode::<CredentialRecord>(&kv.key, &kv.value))
        .transpose()?;
    let retention = chrono::Duration::from_std(RETENTION).unwrap_or_default();
    if !s.revoked {
        if record.is_none_or(|r| r.revoked) {
            write_tombstone(vault, name, &s.access_key, s.expires_at).await?;
            return Ok(true);
        }
    } else if record.is_none() && s.expires_at.is_none_or(|t| t + retention <= Utc::now()) {
        vault.delete(name).await?;
        return Ok(true);
    }
    Ok(false)
}

/// Has every registered foundation that issues credentials revoke those on
/// it past their expiry, found from the server's own list: keys minted in
/// the instant before a crash, before their record was written, end too.
/// Runs after the records' sweep, so it finds only such keys (or keys whose
/// revocation above failed; their records are marked on the next sweep).
async fn expire_unrecorded(store: &Arc<dyn Store>, registry: &Registry) -> Result<usize> {
    let mut revoked = 0;
    for kv in store
        .range_all(&keys::objects(Kind::Foundation, None), 500)
        .await?
    {
        let swept = async {
            let f = codec::decode_object::<FoundationSpec>(&kv)?;
            match registry.client(&f).await? {
                Some(c) if c.capabilities().issues_credentials => {
                    c.revoke_expired_credentials().await
                }
                _ => Ok(0),
            }
        };
        match swept.await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(key = %kv.key, revoked = n, "expired credentials that no record named were revoked");
                revoked += n;
            }
            Err(e) => {
                tracing::warn!(key = %kv.key, error = %e, "credential expiry on the foundation: will try again")
            }
        }
    }
    Ok(revoked)
}

/// The department, bucket and access key a record's key names, and the
/// vault name of its issue.
fn parts_of<'a>(
    kv: &'a KeyValue,
    record: &CredentialRecord,
) -> Option<(&'a str, &'a str, &'a str, String)> {
    let rest = kv.key.strip_prefix(&credentials_prefix())?;
    let mut parts = rest.splitn(3, '/');
    let (department, bucket, access_key) = (parts.next()?, parts.next()?, parts.next()?);
    let sealed = sealed_name(department, bucket, &record.bucket_uid, &record.request_id);
    Some((department, bucket, access_key, sealed))
}

/// Deletes a revoked record and its tombstone after the retention.
async fn drop_retained(
    store: &dyn Store,
    vault: &dyn SecretVault,
    kv: &KeyValue,
    record: &CredentialRecord,
) -> Result<bool> {
    let Some((_, _, access_key, sealed)) = parts_of(kv, record) else {
        return Ok(false);
    };
    if !sealed_for_another(vault, &sealed, access_key).await? {
        vault.delete(&sealed).await?;
    }
    store.delete(&kv.key).await?;
    Ok(true)
}

/// Revokes one expired credential; `false` while its foundation is not
/// registered (it is tried again on the next sweep).
async fn expire_one(
    store: &Arc<dyn Store>,
    registry: &Registry,
    vault: &dyn SecretVault,
    kv: &KeyValue,
    record: &CredentialRecord,
) -> Result<bool> {
    let Some((department, bucket, access_key, sealed)) = parts_of(kv, record) else {
        return Ok(false);
    };
    if !revoke_at_foundation(store, registry, department, bucket, access_key, record).await? {
        return Ok(false);
    }
    tombstone(vault, &sealed, access_key, record.expires_at).await?;
    mark_revoked(&**store, kv, record.clone()).await?;
    audit(
        &**store,
        department,
        &AuditRecord {
            time: Utc::now(),
            action: "expire-credentials".into(),
            actor: "yunshu".into(),
            resource: resource_name(department, bucket),
            access_key: access_key.to_owned(),
            expires_at: record.expires_at,
        },
    )
    .await?;
    Ok(true)
}

/// Revokes expired credentials on the foundation that issued them;
/// `false` if that foundation is not registered now.
async fn revoke_at_foundation(
    store: &Arc<dyn Store>,
    registry: &Registry,
    department: &str,
    bucket: &str,
    access_key: &str,
    record: &CredentialRecord,
) -> Result<bool> {
    let fkey = keys::object(Kind::Foundation, None, &record.foundation);
    let Some(fkv) = store.get(&fkey).await? else {
        return Ok(false);
    };
    let f = codec::decode_object::<FoundationSpec>(&fkv)?;
    let Some(client) = registry.client(&f).await? else {
        return Err(Error::Conflict {
            message: format!(
                "foundation {} has no adapter credentials",
                record.foundation
            ),
        });
    };
    let owner = yunshu_core::adapter::Owner {
        department: department.to_owned(),
        name: bucket.to_owned(),
        uid: record.bucket_uid.clone(),
    };
    match client.revoke_credentials(&owner, access_key).await {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use yunshu_vault::{KeyRing, Vault};

    use super::*;

    /// Seals what an issue of `access_key` under `request` would keep.
    async fn seal(vault: &Vault, request: &str, access_key: &str, dead: bool, expires_at: i64) {
        let sealed = Sealed {
            access_key: access_key.to_owned(),
            secret_key: if dead { String::new() } else { "s3cr3t".into() },
            expires_at: Some(Utc::now() + chrono::Duration::hours(expires_at)),
            revoked: dead,
        };
        let name = sealed_name("health", "scans", "uid-1", request);
        let bytes = serde_json::to_vec(&sealed).expect("encode");
        vault.put(&name, &bytes).await.expect("seal");
    }

    async fn record(store: &dyn Store, access_key: &str, revoked: bool) {
        let record = CredentialRecord {
            foundation: "object-store".into(),
            bucket_uid: "uid-1".into(),
            expires_at: None,
            issued_by: "health/alice".into(),
            request_id: "r".into(),
            revoked,
        };
        store
            .put(
                &credential_key("health", "scans", access_key),
                codec::encode(&record).expect("encode"),
            )
            .await
            .expect("record");
    }

    #[tokio::test]
    async fn sealed_copies_no_record_accounts_for_are_cleared() {
        let store: Arc<dyn Store> =
            Arc::new(yunshu_store::EmbeddedStore::in_memory().expect("store"));
        let vault = Vault::new(store.clone(), KeyRing::generate());
        // Live keys and their record: kept.
        seal(&vault, "live", "K-LIVE", false, 1).await;
        record(&*store, "K-LIVE", false).await;
        // Keys whose record an earlier build's revoke deleted, and keys
        // whose record is revoked: dead, so tombstones.
        seal(&vault, "legacy", "K-LEGACY", false, 1).await;
        seal(&vault, "revoked", "K-REVOKED", false, 1).await;
        record(&*store, "K-REVOKED", true).await;
        // Tombstones without a record: deleted once the retention is past
        // their expiry, kept before.
        seal(&vault, "old", "K-OLD", true, -24 * 8).await;
        seal(&vault, "recent", "K-RECENT", true, -1).await;
        // A tombstone with its record is the records' sweep's to drop.
        seal(&vault, "kept", "K-KEPT", true, -24 * 8).await;
        record(&*store, "K-KEPT", true).await;
        // A record that does not decode is logged; the others still go on.
        seal(&vault, "bad", "K-BAD", false, 1).await;
        store
            .put(
                &credential_key("health", "scans", "K-BAD"),
                b"not a record".to_vec(),
            )
            .await
            .expect("bad record");

        assert_eq!(sweep_sealed(&*store, &vault).await.expect("sweep"), 3);
        let state = |request: &'static str| {
            let vault = &vault;
            async move {
                let name = sealed_name("health", "scans", "uid-1", request);
                vault
                    .get(&name)
                    .await
                    .expect("get")
                    .map(|b| serde_json::from_slice::<Sealed>(&b).expect("parse"))
                    .map(|s| (s.revoked, s.secret_key.is_empty()))
            }
        };
        assert_eq!(state("live").await, Some((false, false)));
        assert_eq!(state("legacy").await, Some((true, true)));
        assert_eq!(state("revoked").await, Some((true, true)));
        assert_eq!(state("old").await, None);
        assert_eq!(state("recent").await, Some((true, true)));
        assert_eq!(state("kept").await, Some((true, true)));
        assert_eq!(state("bad").await, Some((false, false)));
        assert_eq!(sweep_sealed(&*store, &vault).await.expect("again"), 0);
    }
}
