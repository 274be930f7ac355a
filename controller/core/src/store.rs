//! The `Store` trait: etcd's data model — keys with create/mod revisions, a
//! global revision bumped once per transaction, compare-then-write
//! transactions, watches from a revision, compaction and leases.
//!
//! Backends live in `yunshu-store` (etcd and embedded redb); one conformance
//! suite runs against both.

use std::{fmt, time::Duration};

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::{Error, Result};

/// A store revision. Each successful writing transaction bumps it by one.
pub type Revision = i64;

/// A lease id.
pub type LeaseId = i64;

/// A stored key and its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value; empty for delete events.
    pub value: Vec<u8>,
    /// The revision that created the key.
    pub create_revision: Revision,
    /// The revision that last changed the key.
    pub mod_revision: Revision,
    /// How many times the key was written since it was created.
    pub version: i64,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// A page of a prefix range.
#[derive(Debug, Clone, Default)]
pub struct RangeRequest {
    /// Every key starting with this.
    pub prefix: String,
    /// Continue after this key (exclusive); the last key of the previous page.
    pub start_after: Option<String>,
    /// At most this many keys; 0 means no limit.
    pub limit: usize,
}

impl RangeRequest {
    /// All keys under `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// At most `limit` keys.
    #[must_use]
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Continue after `key`.
    #[must_use]
    pub fn after(mut self, key: impl Into<String>) -> Self {
        self.start_after = Some(key.into());
        self
    }
}

/// The answer to a [`RangeRequest`].
#[derive(Debug, Clone, Default)]
pub struct RangeResponse {
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// Whether more keys follow; continue after the last key.
    pub more: bool,
    /// The store revision the range was read at.
    pub revision: Revision,
}

/// How a compare tests a key's revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// Equal.
    Equal,
    /// Not equal.
    NotEqual,
    /// Less than.
    Less,
    /// Greater than.
    Greater,
}

impl CmpOp {
    /// Applies the comparison `actual op expected`.
    pub fn holds(self, actual: i64, expected: i64) -> bool {
        match self {
            Self::Equal => actual == expected,
            Self::NotEqual => actual != expected,
            Self::Less => actual < expected,
            Self::Greater => actual > expected,
        }
    }
}

/// A guard of a transaction: a key's mod revision compared to a value. A
/// missing key has mod revision 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// The key.
    pub key: String,
    /// The comparison.
    pub op: CmpOp,
    /// The revision compared with.
    pub mod_revision: Revision,
}

impl Compare {
    /// `mod_revision(key) op revision`.
    pub fn mod_revision(key: impl Into<String>, op: CmpOp, revision: Revision) -> Self {
        Self {
            key: key.into(),
            op,
            mod_revision: revision,
        }
    }

    /// The key is unchanged since `revision` (0: the key does not exist).
    pub fn unchanged(key: impl Into<String>, revision: Revision) -> Self {
        Self::mod_revision(key, CmpOp::Equal, revision)
    }

    /// The key does not exist.
    pub fn absent(key: impl Into<String>) -> Self {
        Self::unchanged(key, 0)
    }
}

/// A write in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write `value` at `key`, attached to `lease` if given.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The lease to attach the key to.
        lease: Option<LeaseId>,
    },
    /// Remove `key` (a no-op when it does not exist).
    Delete {
        /// The key.
        key: String,
    },
}

impl Op {
    /// A put without lease.
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }

    /// A delete.
    pub fn delete(key: impl Into<String>) -> Self {
        Self::Delete { key: key.into() }
    }

    /// The key written.
    pub fn key(&self) -> &str {
        match self {
            Self::Put { key, .. } | Self::Delete { key } => key,
        }
    }
}

/// Compare every guard; if all hold, apply `success`, else `failure`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// The guards.
    pub compares: Vec<Compare>,
    /// Writes applied when every guard holds.
    pub success: Vec<Op>,
    /// Writes applied otherwise.
    pub failure: Vec<Op>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds guards.
    #[must_use]
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    /// Adds writes for success.
    #[must_use]
    pub fn and_then(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.success.extend(ops);
        self
    }

    /// Adds writes for failure.
    #[must_use]
    pub fn or_else(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.failure.extend(ops);
        self
    }

    /// A key written twice in one branch, which every backend refuses as
    /// etcd does (`Invalid`), so code that works on one works on all.
    pub fn duplicate_key(&self) -> Option<&str> {
        [&self.success, &self.failure].into_iter().find_map(|ops| {
            let mut seen = std::collections::HashSet::with_capacity(ops.len());
            ops.iter().map(Op::key).find(|k| !seen.insert(*k))
        })
    }
}

/// The outcome of a [`Txn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether every guard held.
    pub succeeded: bool,
    /// The store revision after the transaction (its own revision if it wrote).
    pub revision: Revision,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created or updated.
    Put,
    /// Deleted (or its lease expired).
    Delete,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; for deletes, the key with an empty value and
    /// `mod_revision` set to the deleting revision.
    pub kv: KeyValue,
}

/// A stream of watch events in revision order. It ends with an
/// [`Error::Compacted`] if the requested history is gone.
pub type WatchStream = BoxStream<'static, Result<WatchEvent>>;

/// What a backend supports, so callers know before calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreCapabilities {
    /// Several processes can share the store.
    pub shared: bool,
    /// The largest number of compares (and of writes) in one transaction.
    pub max_txn_ops: usize,
}

/// etcd's data model, behind one object-safe trait.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// The backend's name, for logs and metrics (`etcd`, `embedded`).
    fn backend(&self) -> &'static str;

    /// What the backend supports.
    fn capabilities(&self) -> StoreCapabilities;

    /// One key, if it exists.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// A page of keys under a prefix, in key order.
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse>;

    /// A compare-then-write transaction, atomic and isolated.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse>;

    /// Every change under `prefix` from revision `from` (inclusive; 0 means
    /// from now on), in order, resuming by itself after disconnects without
    /// gaps or duplicates. If `from` was compacted, the stream yields
    /// [`Error::Compacted`]: relist, then watch from the list's revision + 1.
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream>;

    /// Forgets history before `revision`.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The current store revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Grants a lease that expires after `ttl` unless kept alive.
    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId>;

    /// Renews a lease; returns its remaining time to live. `NotFound` once expired.
    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<Duration>;

    /// Revokes a lease and deletes the keys attached to it.
    async fn lease_revoke(&self, lease: LeaseId) -> Result<()>;
}

/// Helpers on top of [`Store`].
#[async_trait]
pub trait StoreExt: Store {
    /// Writes one key unconditionally; returns the new revision.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        Ok(self
            .txn(Txn::new().and_then([Op::put(key, value)]))
            .await?
            .revision)
    }

    /// Deletes one key unconditionally; returns the new revision.
    async fn delete(&self, key: &str) -> Result<Revision> {
        Ok(self
            .txn(Txn::new().and_then([Op::delete(key)]))
            .await?
            .revision)
    }

    /// Every key under `prefix`, paging `page` keys at a time.
    async fn range_all(&self, prefix: &str, page: usize) -> Result<Vec<KeyValue>> {
        let mut out = Vec::new();
        let mut request = RangeRequest::prefix(prefix).with_limit(page);
        loop {
            let resp = self.range(request.clone()).await?;
            let last = resp.kvs.last().map(|kv| kv.key.clone());
            out.extend(resp.kvs);
            match (resp.more, last) {
                (true, Some(last)) => request = request.after(last),
                _ => return Ok(out),
            }
        }
    }
}

impl<T: Store + ?Sized> StoreExt for T {}

/// The smallest key greater than every key starting with `prefix`, or `None`
/// when no such key exists (the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Maps a compaction error's revisions, for backends.
pub fn compacted(requested: Revision, compacted: Revision) -> Error {
    Error::Compacted {
        requested,
        compacted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
