//! The embedded backend: etcd's data model on one redb file.
//!
//! Tables: `kv` (key → entry), `log` ((revision, index) → event; the watch
//! history until compaction), `meta` (current and compacted revision, lease
//! sequence), `leases` (id → ttl and deadline) and `lease_keys` (which keys a
//! lease owns). Writes are serialized by one lock that also orders the
//! broadcast of their events, so watchers see revisions in order.

mod lease;
mod record;
mod wal;
mod watch;

use std::{
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition,
    backends::InMemoryBackend,
};
use tokio::sync::broadcast;
use yunshu_core::{
    Error, Result,
    store::{
        EventKind, KeyValue, LeaseId, Op, RangeRequest, RangeResponse, Revision, Store,
        StoreCapabilities, Txn, TxnResponse, WatchEvent, WatchStream,
    },
};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<(i64, u32), &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const LEASES: TableDefinition<i64, (i64, i64)> = TableDefinition::new("leases");
const LEASE_KEYS: TableDefinition<(i64, &str), ()> = TableDefinition::new("lease_keys");

const REVISION: &str = "revision";
const COMPACTED: &str = "compacted";
const LEASE_SEQ: &str = "lease_seq";

/// The events of one committed transaction, all at one revision.
#[derive(Debug)]
pub(crate) struct Batch {
    revision: Revision,
    events: Vec<WatchEvent>,
}

/// A `Store` on an embedded redb database.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    db: Database,
    /// Serializes writers; holds the write-ahead log of file-backed stores.
    write_lock: Mutex<Option<wal::Wal>>,
    /// Set when a transaction reached the log but not redb: every later call
    /// fails until a restart replays the log.
    poisoned: AtomicBool,
    events: broadcast::Sender<Arc<Batch>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

fn db_err<E: std::error::Error + Send + Sync + 'static>(
    action: &'static str,
) -> impl FnOnce(E) -> Error {
    move |e| Error::Internal {
        message: format!("embedded store failed to {action}"),
        source: Some(Box::new(e)),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl EmbeddedStore {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        if let Some(dir) = path.as_ref().parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(db_err("create the data directory"))?;
        }
        // A store dropped a moment ago may still be closing (a background
        // task can hold it briefly); another process holding it never lets go.
        let mut tries = 0;
        let db = loop {
            match Database::create(path.as_ref()) {
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if tries < 40 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(Error::Unavailable {
                        message: format!(
                            "{} is already open in another process",
                            path.as_ref().display()
                        ),
                        source: None,
                    });
                }
                other => break other.map_err(db_err("open the database file"))?,
            }
        };
        let (wal, records) = wal::Wal::open(path.as_ref())?;
        let store = Self::with_db(db, Some(wal))?;
        store.inner.replay(records)?;
        Ok(store)
    }

    /// A fresh in-memory database.
    pub fn in_memory() -> Result<Self> {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .map_err(db_err("create an in-memory database"))?;
        Self::with_db(db, None)
    }

    fn with_db(db: Database, wal: Option<wal::Wal>) -> Result<Self> {
        let w = db.begin_write().map_err(db_err("begin a transaction"))?;
        {
            w.open_table(KV).map_err(db_err("open a table"))?;
            w.open_table(LOG).map_err(db_err("open a table"))?;
            w.open_table(META).map_err(db_err("open a table"))?;
            w.open_table(LEASES).map_err(db_err("open a table"))?;
            w.open_table(LEASE_KEYS).map_err(db_err("open a table"))?;
        }
        w.commit().map_err(db_err("commit"))?;
        let (events, _) = broadcast::channel(1024);
        let store = Self {
            inner: Arc::new(Inner {
                db,
                write_lock: Mutex::new(wal),
                poisoned: AtomicBool::new(false),
                events,
            }),
        };
        store.spawn_lease_sweeper();
        Ok(store)
    }

    /// Expires leases in the background while the store is alive.
    fn spawn_lease_sweeper(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        handle.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let res = tokio::task::spawn_blocking(move || inner.expire_leases(now_ms())).await;
                if let Ok(Err(e)) = res {
                    tracing::warn!(error = %e, "failed to expire leases");
                }
            }
        });
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| Error::Internal {
                message: "embedded store task failed".into(),
                source: Some(Box::new(e)),
            })?
    }
}

impl Inner {
    fn lock(&self) -> Result<MutexGuard<'_, Option<wal::Wal>>> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Unavailable {
                message:
                    "embedded store stopped after a failed commit; restart to recover from its log"
                        .into(),
                source: None,
            });
        }
        Ok(self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Applies log records newer than redb's durable revision, then
    /// checkpoints.
    fn replay(&self, records: Vec<wal::WalRecord>) -> Result<()> {
        let mut guard = self.lock()?;
        let w = self
            .db
            .begin_write()
            .map_err(db_err("begin a transaction"))?;
        let mut replayed = 0;
        {
            let mut meta = w.open_table(META).map_err(db_err("open a table"))?;
            let mut revision = meta
                .get(REVISION)
                .map_err(db_err("read meta"))?
                .map_or(0, |v| v.value());
            let mut kv = w.open_table(KV).map_err(db_err("open a table"))?;
            let mut lease_keys = w.open_table(LEASE_KEYS).map_err(db_err("open a table"))?;
            for rec in records {
                if rec.revision <= revision {
                    continue;
                }
                if rec.revision != revision + 1 {
                    return Err(Error::internal(format!(
                        "write-ahead log jumps from revision {revision} to {}",
                        rec.revision
                    )));
                }
                for ev in &rec.events {
                    match ev.kind {
                        EventKind::Put => put_entry(&mut kv, &mut lease_keys, &ev.kv)?,
                        EventKind::Delete => {
                            delete_key(&mut kv, &mut lease_keys, &ev.kv.key, rec.revision)?;
                        }
                    }
                }
                append_log(&w, rec.revision, &rec.events)?;
                revision = rec.revision;
                meta.insert(REVISION, revision)
                    .map_err(db_err("write meta"))?;
                replayed += 1;
            }
        }
        w.commit().map_err(db_err("commit"))?;
        if replayed > 0 {
            tracing::info!(transactions = replayed, "replayed the write-ahead log");
        }
        if let Some(wal) = guard.as_mut() {
            wal.reset()?;
        }
        Ok(())
    }

    /// After a durable commit every earlier transaction is in redb: empty the log.
    fn checkpointed(guard: &mut Option<wal::Wal>) {
        if let Some(wal) = guard.as_mut().filter(|w| !w.is_empty())
            && let Err(e) = wal.reset()
        {
            tracing::warn!(error = %e, "failed to truncate the write-ahead log; it will be replayed harmlessly");
        }
    }

    fn meta(&self, name: &str) -> Result<i64> {
        let r = self.db.begin_read().map_err(db_err("begin a read"))?;
        let t = r.open_table(META).map_err(db_err("open a table"))?;
        Ok(t.get(name)
            .map_err(db_err("read meta"))?
            .map_or(0, |v| v.value()))
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let r = self.db.begin_read().map_err(db_err("begin a read"))?;
        let t = r.open_table(KV).map_err(db_err("open a table"))?;
        t.get(key)
            .map_err(db_err("read a key"))?
            .map(|v| record::decode_entry(key, v.value()))
            .transpose()
    }

    fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let r = self.db.begin_read().map_err(db_err("begin a read"))?;
        let meta = r.open_table(META).map_err(db_err("open a table"))?;
        let revision = meta
            .get(REVISION)
            .map_err(db_err("read meta"))?
            .map_or(0, |v| v.value());
        let t = r.open_table(KV).map_err(db_err("open a table"))?;
        let start = match &req.start_after {
            Some(after) if after.as_str() >= req.prefix.as_str() => format!("{after}\0"),
            _ => req.prefix.clone(),
        };
        let mut kvs = Vec::new();
        let mut more = false;
        for item in t.range(start.as_str()..).map_err(db_err("range keys"))? {
            let (k, v) = item.map_err(db_err("range keys"))?;
            let key = k.value();
            if !key.starts_with(&req.prefix) {
                break;
            }
            if req.limit > 0 && kvs.len() == req.limit {
                more = true;
                break;
            }
            kvs.push(record::decode_entry(key, v.value())?);
        }
        Ok(RangeResponse {
            kvs,
            more,
            revision,
        })
    }

    /// Applies a transaction atomically and broadcasts its events.
    fn txn(&self, txn: &Txn) -> Result<TxnResponse> {
        let mut guard = self.lock()?;
        let mut w = self
            .db
            .begin_write()
            .map_err(db_err("begin a transaction"))?;
        // With a log, ordinary commits skip redb's sync; every so often one
        // is a durable checkpoint.
        let checkpoint = guard.as_ref().is_none_or(wal::Wal::checkpoint_due);
        if !checkpoint {
            w.set_durability(Durability::None)
                .map_err(db_err("set durability"))?;
        }
        let (resp, events) = {
            let mut kv = w.open_table(KV).map_err(db_err("open a table"))?;
            let mut meta = w.open_table(META).map_err(db_err("open a table"))?;
            let revision = meta
                .get(REVISION)
                .map_err(db_err("read meta"))?
                .map_or(0, |v| v.value());
            let mut succeeded = true;
            for c in &txn.compares {
                let actual = match kv.get(c.key.as_str()).map_err(db_err("read a key"))? {
                    Some(v) => record::header(v.value())?.mod_revision,
                    None => 0,
                };
                if !c.op.holds(actual, c.mod_revision) {
                    succeeded = false;
                    break;
                }
            }
            let ops = if succeeded {
                &txn.success
            } else {
                &txn.failure
            };
            let next = revision + 1;
            let leases = w.open_table(LEASES).map_err(db_err("open a table"))?;
            let mut lease_keys = w.open_table(LEASE_KEYS).map_err(db_err("open a table"))?;
            let mut events = Vec::with_capacity(ops.len());
            for op in ops {
                match op {
                    Op::Put { key, value, lease } => {
                        if let Some(id) = lease
                            && leases.get(*id).map_err(db_err("read a lease"))?.is_none()
                        {
                            return Err(Error::not_found(format!("lease {id}")));
                        }
                        let prev = kv
                            .get(key.as_str())
                            .map_err(db_err("read a key"))?
                            .map(|v| record::header(v.value()))
                            .transpose()?;
                        let entry = KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision: prev.as_ref().map_or(next, |p| p.create_revision),
                            mod_revision: next,
                            version: prev.as_ref().map_or(1, |p| p.version + 1),
                            lease: *lease,
                        };
                        put_entry(&mut kv, &mut lease_keys, &entry)?;
                        events.push(WatchEvent {
                            kind: EventKind::Put,
                            kv: entry,
                        });
                    }
                    Op::Delete { key } => {
                        if let Some(ev) = delete_key(&mut kv, &mut lease_keys, key, next)? {
                            events.push(ev);
                        }
                    }
                }
            }
            if events.is_empty() {
                (
                    TxnResponse {
                        succeeded,
                        revision,
                    },
                    events,
                )
            } else {
                meta.insert(REVISION, next).map_err(db_err("write meta"))?;
                append_log(&w, next, &events)?;
                (
                    TxnResponse {
                        succeeded,
                        revision: next,
                    },
                    events,
                )
            }
        };
        let logged = match guard.as_mut() {
            Some(wal) if !checkpoint && !events.is_empty() => {
                // Dropping `w` on error aborts the redb transaction.
                wal.append(resp.revision, &events)?;
                true
            }
            _ => false,
        };
        if let Err(e) = w.commit() {
            if logged {
                self.poisoned.store(true, Ordering::Release);
            }
            return Err(db_err("commit")(e));
        }
        if checkpoint {
            Self::checkpointed(&mut guard);
        }
        drop(guard);
        if !events.is_empty() {
            // No receivers is fine: nobody watches.
            let _ = self.events.send(Arc::new(Batch {
                revision: resp.revision,
                events,
            }));
        }
        Ok(resp)
    }

    fn compact(&self, revision: Revision) -> Result<()> {
        let mut guard = self.lock()?;
        let w = self
            .db
            .begin_write()
            .map_err(db_err("begin a transaction"))?;
        {
            let mut meta = w.open_table(META).map_err(db_err("open a table"))?;
            let current = meta
                .get(REVISION)
                .map_err(db_err("read meta"))?
                .map_or(0, |v| v.value());
            let compacted = meta
                .get(COMPACTED)
                .map_err(db_err("read meta"))?
                .map_or(0, |v| v.value());
            if revision > current {
                return Err(Error::invalid(
                    "revision",
                    format!("cannot compact to {revision}, beyond the current revision {current}"),
                ));
            }
            if revision <= compacted {
                return Err(Error::Compacted {
                    requested: revision,
                    compacted,
                });
            }
            let mut log = w.open_table(LOG).map_err(db_err("open a table"))?;
            log.retain_in((0, 0)..(revision, 0), |_, _| false)
                .map_err(db_err("compact the log"))?;
            meta.insert(COMPACTED, revision)
                .map_err(db_err("write meta"))?;
        }
        w.commit().map_err(db_err("commit"))?;
        Self::checkpointed(&mut guard);
        Ok(())
    }
}

fn put_entry(
    kv: &mut redb::Table<&str, &[u8]>,
    lease_keys: &mut redb::Table<(i64, &str), ()>,
    entry: &KeyValue,
) -> Result<()> {
    let key = entry.key.as_str();
    let old = kv
        .insert(key, record::encode_entry(entry).as_slice())
        .map_err(db_err("write a key"))?
        .map(|v| record::header(v.value()))
        .transpose()?;
    if let Some(id) = old.and_then(|o| o.lease) {
        lease_keys
            .remove((id, key))
            .map_err(db_err("unlink a lease"))?;
    }
    if let Some(id) = entry.lease {
        lease_keys
            .insert((id, key), ())
            .map_err(db_err("link a lease"))?;
    }
    Ok(())
}

fn delete_key(
    kv: &mut redb::Table<&str, &[u8]>,
    lease_keys: &mut redb::Table<(i64, &str), ()>,
    key: &str,
    revision: Revision,
) -> Result<Option<WatchEvent>> {
    let prev = kv
        .remove(key)
        .map_err(db_err("delete a key"))?
        .map(|v| record::header(v.value()))
        .transpose()?;
    let Some(prev) = prev else { return Ok(None) };
    if let Some(id) = prev.lease {
        lease_keys
            .remove((id, key))
            .map_err(db_err("unlink a lease"))?;
    }
    Ok(Some(WatchEvent {
        kind: EventKind::Delete,
        kv: KeyValue {
            key: key.to_owned(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: revision,
            version: 0,
            lease: None,
        },
    }))
}

fn append_log(w: &redb::WriteTransaction, revision: Revision, events: &[WatchEvent]) -> Result<()> {
    let mut log = w.open_table(LOG).map_err(db_err("open a table"))?;
    for (i, ev) in events.iter().enumerate() {
        let idx = u32::try_from(i).unwrap_or(u32::MAX);
        log.insert((revision, idx), record::encode_event(ev).as_slice())
            .map_err(db_err("append to the log"))?;
    }
    Ok(())
}

impl Drop for Inner {
    /// A clean shutdown checkpoints, so the next open has nothing to replay.
    fn drop(&mut self) {
        let mut guard = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if guard.as_ref().is_none_or(wal::Wal::is_empty) || self.poisoned.load(Ordering::Acquire) {
            return;
        }
        let durable = match self.db.begin_write() {
            Ok(w) => w.commit().map_err(redb::Error::from),
            Err(e) => Err(redb::Error::from(e)),
        };
        match durable {
            Ok(()) => Self::checkpointed(&mut guard),
            Err(e) => {
                tracing::warn!(error = %e, "failed to checkpoint on close; the log will be replayed")
            }
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities {
            shared: false,
            max_txn_ops: 1024,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.blocking(move |i| i.get(&key)).await
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.blocking(move |i| i.range(&request)).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.blocking(move |i| i.txn(&txn)).await
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        watch::watch(self.inner.clone(), prefix.to_owned(), from).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.blocking(move |i| i.compact(revision)).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.blocking(|i| i.meta(REVISION)).await
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId> {
        self.blocking(move |i| i.lease_grant(ttl)).await
    }

    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        self.blocking(move |i| i.lease_keep_alive(lease)).await
    }

    async fn lease_revoke(&self, lease: LeaseId) -> Result<()> {
        self.blocking(move |i| i.revoke(Some(lease), now_ms()))
            .await
    }
}
