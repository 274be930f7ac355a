//! [`Vault`]: the [`SecretVault`] over Yunshu's [`Store`], keys under
//! `/yunshu/secrets/<name>`, every value sealed by [`crate::record`].

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, RwLock},
};

use async_trait::async_trait;
use yunshu_core::{
    Error, Result,
    adapter::SecretVault,
    store::{Compare, Op, Store, StoreExt, Txn},
};

use crate::{keyring::KeyRing, record};

/// The store prefix of every sealed secret.
pub const PREFIX: &str = "/yunshu/secrets/";

/// The longest secret name accepted.
const MAX_NAME_LEN: usize = 512;

/// Records read per page while re-wrapping.
const PAGE: usize = 256;

/// The store key of the secret `name`.
pub fn store_key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// What [`Vault::rewrap_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewrapReport {
    /// Records looked at.
    pub scanned: usize,
    /// Records whose data key was re-wrapped under the primary key.
    pub rewrapped: usize,
    /// Records already wrapped under the primary key.
    pub current: usize,
    /// Records changed by someone else between read and write; they were
    /// written by a `put`, which seals under the primary of its ring.
    pub raced: usize,
}

/// Secrets sealed at rest with envelope encryption, in the store.
///
/// The key ring can be replaced at run time ([`Vault::replace_keyring`]),
/// e.g. after the mounted Secret changed; records sealed under keys still in
/// the new ring keep opening.
pub struct Vault {
    store: Arc<dyn Store>,
    ring: RwLock<Arc<KeyRing>>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("store", &self.store.backend())
            .field("keyring", &self.keyring())
            .finish()
    }
}

impl Vault {
    /// A vault over `store` with the master keys of `ring`.
    pub fn new(store: Arc<dyn Store>, ring: KeyRing) -> Self {
        Self {
            store,
            ring: RwLock::new(Arc::new(ring)),
        }
    }

    /// The key ring in use.
    pub fn keyring(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Switches to another key ring (a rotated one). New records are sealed
    /// under its primary; run [`Vault::rewrap_all`] to move old records.
    pub fn replace_keyring(&self, ring: KeyRing) {
        tracing::info!(primary = %ring.primary_id(), "vault key ring replaced");
        let ring = Arc::new(ring);
        match self.ring.write() {
            Ok(mut g) => *g = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
    }

    /// Re-wraps every record's data key under the current primary key,
    /// without touching the ciphertext. Each write is guarded by the
    /// record's revision, so a concurrent `put` is never overwritten.
    /// Stops at the first record that cannot be opened (its key is missing
    /// from the ring, or it was tampered with) and names it.
    pub async fn rewrap_all(&self) -> Result<RewrapReport> {
        let ring = self.keyring();
        let mut report = RewrapReport::default();
        for kv in self.store.range_all(PREFIX, PAGE).await? {
            report.scanned += 1;
            let name = kv.key.trim_start_matches(PREFIX);
            let Some(value) = record::rewrap(&ring, name, &kv.value)? else {
                report.current += 1;
                continue;
            };
            let txn = Txn::new()
                .when([Compare::unchanged(kv.key.clone(), kv.mod_revision)])
                .and_then([Op::put(kv.key.clone(), value)]);
            if self.store.txn(txn).await?.succeeded {
                report.rewrapped += 1;
            } else {
                report.raced += 1;
            }
        }
        tracing::info!(
            primary = %ring.primary_id(),
            scanned = report.scanned,
            rewrapped = report.rewrapped,
            raced = report.raced,
            "vault records re-wrapped"
        );
        Ok(report)
    }

    /// How many records each master key id wraps: check that an old key
    /// wraps none before removing it from the ring.
    pub async fn key_usage(&self) -> Result<BTreeMap<String, usize>> {
        let mut usage = BTreeMap::new();
        for kv in self.store.range_all(PREFIX, PAGE).await? {
            let kid = record::key_id(kv.key.trim_start_matches(PREFIX), &kv.value)?;
            *usage.entry(kid).or_default() += 1;
        }
        Ok(usage)
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(
            "secret name",
            format!("must be 1 to {MAX_NAME_LEN} bytes long"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "secret name",
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[async_trait]
impl SecretVault for Vault {
    async fn put(&self, name: &str, plaintext: &[u8]) -> Result<()> {
        check_name(name)?;
        let sealed = record::seal(&self.keyring(), name, plaintext)?;
        self.store.put(&store_key(name), sealed).await?;
        tracing::debug!(secret = %name, "secret sealed and stored");
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check_name(name)?;
        match self.store.get(&store_key(name)).await? {
            Some(kv) => record::open(&self.keyring(), name, &kv.value).map(Some),
            None => Ok(None),
        }
    }

    async fn delete(&self, name: &str) -> Result<()> {
        check_name(name)?;
        StoreExt::delete(self.store.as_ref(), &store_key(name)).await?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .store
            .range_all(&store_key(prefix), 500)
            .await?
            .into_iter()
            .filter_map(|kv| kv.key.strip_prefix(PREFIX).map(str::to_owned))
            .collect())
    }
}
