//! Department tenants: one server user per department, whose keys live in
//! the vault and nowhere else, and the S3 clients that sign as them.

use aws_sdk_s3::Client;
use serde::{Deserialize, Serialize};
use yunshu_core::{Error, Result, model::TenantMapping};

use super::{S3Adapter, TAG_DEPARTMENT};
use crate::{
    config::{Dialect, KeyPair, Secret},
    naming, s3,
};

/// A department's keys as sealed in the vault.
#[derive(Serialize, Deserialize)]
struct StoredKey {
    access_key: String,
    secret_key: String,
}

impl S3Adapter {
    /// Makes sure `department` has its user and a key held in the vault
    /// (the body of `Adapter::ensure_tenant`). A key the vault does not hold
    /// is useless to Yunshu: when the vault's key is missing or unknown to
    /// the server, a new one is made and the others are deleted.
    pub(super) async fn tenant(&self, department: &str) -> Result<TenantMapping> {
        if department.is_empty() {
            return Err(Error::invalid("department", "must not be empty"));
        }
        let user = naming::department_user(department);
        let _serial = self.tenant_lock.lock().await;
        let created = self
            .admin
            .ensure_user(&user, &format!("Yunshu department {department}"), true)
            .await?;
        let keys = self.admin.access_keys(&user).await?;
        let key = match self.stored_key(department).await? {
            Some(k) if keys.contains(&k.access_key) => k,
            stored => {
                let key = self.admin.create_access_key(&user).await?;
                if let Err(e) = self.store_key(department, &key).await {
                    // Never leave a key on the server that nobody holds.
                    let _ = self.admin.delete_access_key(&user, &key.access_key).await;
                    return Err(e);
                }
                for stale in keys.iter().filter(|k| **k != key.access_key) {
                    self.admin.delete_access_key(&user, stale).await?;
                }
                tracing::info!(
                    foundation = %self.foundation, %department, %user, created,
                    replaced = stored.is_some(), access_key = %key.access_key,
                    "department S3 keys made and sealed in the vault"
                );
                key
            }
        };
        self.remember(department, &user, &key);
        Ok(TenantMapping {
            tenant_id: user.clone(),
            user,
        })
    }

    /// Removes the department's user, its issued users and its vault entry.
    /// Refuses while the department still owns a bucket here: RGW deletes a
    /// user's buckets with the user.
    pub async fn remove_tenant(&self, department: &str) -> Result<()> {
        let user = naming::department_user(department);
        let owned: Vec<String> = self
            .admin
            .bucket_stats()
            .await?
            .into_iter()
            .filter(|s| {
                s.owner.as_deref() == Some(user.as_str())
                    || s.tags
                        .as_ref()
                        .and_then(|t| t.get(TAG_DEPARTMENT))
                        .map(String::as_str)
                        == Some(department)
            })
            .map(|s| s.name)
            .collect();
        if !owned.is_empty() {
            return Err(Error::Conflict {
                message: format!(
                    "department {department} still owns {} buckets on foundation {}: {}",
                    owned.len(),
                    self.foundation,
                    owned.join(", ")
                ),
            });
        }
        for issued in self.admin.list_users(&format!("{user}.")).await? {
            self.admin.delete_user(&issued).await?;
        }
        self.admin.delete_user(&user).await?;
        self.vault.delete(&self.vault_entry(department)).await?;
        self.departments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(department);
        tracing::info!(foundation = %self.foundation, %department, %user, "department tenant removed");
        Ok(())
    }

    fn cached(&self, department: &str) -> Option<(String, Client)> {
        self.departments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(department)
            .cloned()
    }

    fn remember(&self, department: &str, user: &str, key: &KeyPair) {
        let client = s3::client(&self.config, &self.http, key);
        self.departments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(department.to_owned(), (user.to_owned(), client));
    }

    async fn stored_key(&self, department: &str) -> Result<Option<KeyPair>> {
        let Some(bytes) = self.vault.get(&self.vault_entry(department)).await? else {
            return Ok(None);
        };
        let stored: StoredKey = serde_json::from_slice(&bytes).map_err(|_| {
            Error::internal(format!(
                "vault entry {} does not hold S3 keys",
                self.vault_entry(department)
            ))
        })?;
        Ok(Some(KeyPair {
            access_key: stored.access_key,
            secret_key: Secret::new(stored.secret_key),
        }))
    }

    async fn store_key(&self, department: &str, key: &KeyPair) -> Result<()> {
        let bytes = serde_json::to_vec(&StoredKey {
            access_key: key.access_key.clone(),
            secret_key: key.secret_key.expose().to_owned(),
        })
        .map_err(|e| Error::Internal {
            message: "failed to encode department keys".into(),
            source: Some(Box::new(e)),
        })?;
        self.vault.put(&self.vault_entry(department), &bytes).await
    }

    /// The department's user and an S3 client signing as it.
    pub(super) async fn department_client(&self, department: &str) -> Result<(String, Client)> {
        if let Some(hit) = self.cached(department) {
            return Ok(hit);
        }
        self.tenant(department).await?;
        self.cached(department).ok_or_else(|| {
            Error::internal(format!(
                "department {department} has no S3 client after ensure_tenant"
            ))
        })
    }

    /// The client that manages a department's buckets: the owner itself on
    /// RGW (nobody else may touch a user's bucket there), the admin on
    /// SeaweedFS (whose admin identity reaches every bucket, and whose users
    /// see 403 rather than 404 for buckets outside their policies).
    pub(super) async fn operator(&self, department: &str) -> Result<(String, Client)> {
        let (user, client) = self.department_client(department).await?;
        Ok(match self.config.dialect {
            Dialect::RgwAdmin => (user, client),
            Dialect::Iam => (user, self.admin_s3.clone()),
        })
    }
}
