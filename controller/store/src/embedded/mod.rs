//! The embedded backend: etcd's data model on one redb file, fronted by
//! memory and a write-ahead log.
//!
//! The write path is what admission's group commit waits on, so it does the
//! least that is safe: check the guards against the in-memory index, append
//! the batch to the write-ahead log with one `fdatasync`, apply it to memory
//! and broadcast it. Only then is it visible — readers never see a write a
//! crash could take back. redb is brought up to date by checkpoints in the
//! background ([`checkpoint`]), which is also when a log file is retired. An
//! in-memory store (tests, benchmarks) works the same without the log.
//!
//! Reads are answered from memory when the values are there (everything
//! written since the last checkpoint) and from redb otherwise. Which keys
//! exist is always known from the index ([`mem`]), so a key deleted in
//! memory but still in redb stays deleted.
//!
//! Tables: `kv` (key → entry), `history` (revision → the batch's events; the
//! watch history until compaction), `meta` (checkpointed and compacted
//! revision, lease sequence), `leases` (id → ttl and deadline) and
//! `lease_keys` (which keys a lease owns). One lock serializes writers and
//! orders the broadcast of their batches, so watchers see revisions in order.

mod backend;
mod checkpoint;
mod lease;
mod mem;
mod record;
#[cfg(test)]
mod tests;
mod wal;
mod watch;

use std::{
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::broadcast;
use yunshu_core::{
    Error, Result,
    store::{
        KeyValue, LeaseId, RangeRequest, RangeResponse, Revision, Store, StoreCapabilities, Txn,
        TxnResponse, WatchStream,
    },
};

use self::mem::{Batch, Mem};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const HISTORY: TableDefinition<i64, &[u8]> = TableDefinition::new("history");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const LEASES: TableDefinition<i64, (i64, i64)> = TableDefinition::new("leases");
const LEASE_KEYS: TableDefinition<(i64, &str), ()> = TableDefinition::new("lease_keys");

const REVISION: &str = "revision";
const COMPACTED: &str = "compacted";
const LEASE_SEQ: &str = "lease_seq";

/// A `Store` on an embedded redb database.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    db: Database,
    /// Serializes writers; holds the write-ahead log of file-backed stores.
    writer: Mutex<Option<wal::Wal>>,
    /// Whether writes wait for a disk (file-backed stores).
    durable: bool,
    limits: checkpoint::Limits,
    /// What readers see.
    mem: RwLock<Mem>,
    /// One checkpoint at a time.
    checkpointing: Mutex<()>,
    /// A background checkpoint is running or starting.
    checkpoint_running: AtomicBool,
    /// Set when an append to the log failed: the log's state is unknown, so
    /// every later call fails until a restart replays it.
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

/// Milliseconds on the store's clock, the unit of lease deadlines: the
/// wall clock read once, then advanced by the monotonic clock. A step of
/// the system clock while the store runs neither expires leases early nor
/// keeps them late, as on etcd. Deadlines persist in this unit so leases
/// run out across a restart; a step while the store was closed cannot be
/// seen, so opening bounds every deadline by its ttl
/// ([`Inner::bound_lease_deadlines`]).
fn now_ms() -> i64 {
    static ANCHOR: OnceLock<(i64, Instant)> = OnceLock::new();
    let (wall, at) = ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        (wall, Instant::now())
    });
    wall.saturating_add(i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX))
}

impl EmbeddedStore {
    /// Opens (or creates) the database file at `path`, replaying its
    /// write-ahead log.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, checkpoint::Limits::default())
    }

    fn open_with(path: impl AsRef<Path>, limits: checkpoint::Limits) -> Result<Self> {
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
        checkpoint::prepare(&db)?;
        let (mut wal, records) = wal::Wal::open(path.as_ref())?;
        checkpoint::replay(&db, records)?;
        wal.reset()?;
        wal.prefill_active()?;
        let mem = checkpoint::load(&db)?;
        let store = Self::with_parts(db, Some(wal), mem, limits);
        store.inner.bound_lease_deadlines(now_ms())?;
        store.inner.prefill_in_background();
        Ok(store)
    }

    /// Writes what is only in the log and memory into redb now, after any
    /// checkpoint in progress, and zero-fills the idle log file if it never
    /// was: the background work writes so far have left. Benchmarks call it
    /// so that work is counted where it was caused.
    pub async fn settle(&self) -> Result<()> {
        self.blocking(|i| {
            i.checkpoint()?;
            i.prefill_idle()
        })
        .await
    }

    /// A fresh in-memory database.
    pub fn in_memory() -> Result<Self> {
        Self::in_memory_with(checkpoint::Limits::default())
    }

    fn in_memory_with(limits: checkpoint::Limits) -> Result<Self> {
        let db = Database::builder()
            .create_with_backend(backend::MemoryBackend::default())
            .map_err(db_err("create an in-memory database"))?;
        checkpoint::prepare(&db)?;
        let mem = checkpoint::load(&db)?;
        Ok(Self::with_parts(db, None, mem, limits))
    }

    fn with_parts(
        db: Database,
        wal: Option<wal::Wal>,
        mem: Mem,
        limits: checkpoint::Limits,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        let store = Self {
            inner: Arc::new(Inner {
                db,
                durable: wal.is_some(),
                limits,
                writer: Mutex::new(wal),
                mem: RwLock::new(mem),
                checkpointing: Mutex::new(()),
                checkpoint_running: AtomicBool::new(false),
                poisoned: AtomicBool::new(false),
                events,
            }),
        };
        store.spawn_lease_sweeper();
        store
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
        f: impl FnOnce(&Arc<Inner>) -> Result<T> + Send + 'static,
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
    fn check_running(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Unavailable {
                message:
                    "embedded store stopped after a failed write to its log; restart to recover from the log"
                        .into(),
                source: None,
            });
        }
        Ok(())
    }

    /// The writer lock, unless the store stopped.
    fn lock(&self) -> Result<MutexGuard<'_, Option<wal::Wal>>> {
        self.check_running()?;
        Ok(self.writer.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn mem(&self) -> RwLockReadGuard<'_, Mem> {
        self.mem.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn mem_mut(&self) -> RwLockWriteGuard<'_, Mem> {
        self.mem.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes a batch durable in the log, if the store has one. A failed
    /// append stops the store: the log may or may not hold the batch.
    fn log(&self, writer: &mut Option<wal::Wal>, batch: &Batch) -> Result<()> {
        let Some(wal) = writer.as_mut() else {
            return Ok(());
        };
        let mut frame = record::encode_batch(batch.revision, &batch.events);
        if let Err(e) = wal.append(&mut frame) {
            self.poisoned.store(true, Ordering::Release);
            return Err(e);
        }
        batch.set_frame(frame);
        Ok(())
    }

    /// One key; `None` (without `disk`) when its value would come from redb.
    fn get(&self, key: &str, disk: bool) -> Result<Option<Option<KeyValue>>> {
        let mem = self.mem();
        let Some(slot) = mem.slot(key) else {
            return Ok(Some(None));
        };
        if let Some(kv) = slot.cached() {
            return Ok(Some(Some(kv)));
        }
        if !disk {
            return Ok(None);
        }
        // Under the read lock: no checkpoint can change what redb holds
        // for a key whose value is not in memory.
        let r = self.db.begin_read().map_err(db_err("begin a read"))?;
        let t = r.open_table(KV).map_err(db_err("open a table"))?;
        let found = t
            .get(key)
            .map_err(db_err("read a key"))?
            .map(|v| record::decode_entry(key, v.value()))
            .transpose()?;
        mem::expect_entry(key, found).map(|kv| Some(Some(kv)))
    }

    /// A page of keys; `None` (without `disk`) when a value would come from redb.
    fn range(&self, req: &RangeRequest, disk: bool) -> Result<Option<RangeResponse>> {
        let mem = self.mem();
        let start = match &req.start_after {
            Some(after) if after.as_str() >= req.prefix.as_str() => {
                std::ops::Bound::Excluded(after.as_str())
            }
            _ => std::ops::Bound::Included(req.prefix.as_str()),
        };
        let mut kvs = Vec::new();
        let mut more = false;
        let mut table = None;
        for (key, slot) in mem.range_from(start) {
            if !key.starts_with(&req.prefix) {
                break;
            }
            if req.limit > 0 && kvs.len() == req.limit {
                more = true;
                break;
            }
            if let Some(kv) = slot.cached() {
                kvs.push(kv);
                continue;
            }
            if !disk {
                return Ok(None);
            }
            if table.is_none() {
                let r = self.db.begin_read().map_err(db_err("begin a read"))?;
                table = Some(r.open_table(KV).map_err(db_err("open a table"))?);
            }
            let Some(t) = &table else { continue };
            let found = t
                .get(key)
                .map_err(db_err("read a key"))?
                .map(|v| record::decode_entry(key, v.value()))
                .transpose()?;
            kvs.push(mem::expect_entry(key, found)?);
        }
        Ok(Some(RangeResponse {
            kvs,
            more,
            revision: mem.revision,
        }))
    }

    /// Applies a transaction atomically and broadcasts its events.
    fn txn(self: &Arc<Self>, txn: Txn) -> Result<TxnResponse> {
        if let Some(key) = txn.duplicate_key() {
            return Err(Error::Invalid {
                violations: vec![yunshu_core::error::FieldViolation::new(
                    "txn",
                    format!("{key} is written twice in one branch"),
                )],
            });
        }
        self.make_room()?;
        let mut writer = self.lock()?;
        let plan = self.mem().plan(txn);
        if plan.events.is_empty() {
            return Ok(plan.response);
        }
        self.check_leases(&plan.leases)?;
        let batch = Arc::new(Batch::new(plan.response.revision, plan.events));
        self.log(&mut writer, &batch)?;
        let due = {
            let mut mem = self.mem_mut();
            mem.apply(&batch);
            self.limits.due(mem.backlog())
        };
        // No receivers is fine: nobody watches.
        let _ = self.events.send(batch);
        drop(writer);
        if due {
            self.request_checkpoint();
        }
        Ok(plan.response)
    }

    fn check_leases(&self, leases: &[LeaseId]) -> Result<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let r = self.db.begin_read().map_err(db_err("begin a read"))?;
        let t = r.open_table(LEASES).map_err(db_err("open a table"))?;
        for id in leases {
            if t.get(*id).map_err(db_err("read a lease"))?.is_none() {
                return Err(Error::not_found(format!("lease {id}")));
            }
        }
        Ok(())
    }

    fn compact(&self, revision: Revision) -> Result<()> {
        self.check_running()?;
        let current = self.mem().revision;
        if revision > current {
            return Err(Error::invalid(
                "revision",
                format!("cannot compact to {revision}, beyond the current revision {current}"),
            ));
        }
        // Everything up to `current` into redb first, so the history
        // forgotten is all there is below `revision`.
        self.checkpoint()?;
        let w = self
            .db
            .begin_write()
            .map_err(db_err("begin a transaction"))?;
        {
            let mut meta = w.open_table(META).map_err(db_err("open a table"))?;
            let compacted = meta
                .get(COMPACTED)
                .map_err(db_err("read meta"))?
                .map_or(0, |v| v.value());
            if revision <= compacted {
                return Err(Error::Compacted {
                    requested: revision,
                    compacted,
                });
            }
            let mut history = w.open_table(HISTORY).map_err(db_err("open a table"))?;
            history
                .retain_in(..revision, |_, _| false)
                .map_err(db_err("compact the history"))?;
            meta.insert(COMPACTED, revision)
                .map_err(db_err("write meta"))?;
        }
        w.commit().map_err(db_err("commit"))?;
        let mut mem = self.mem_mut();
        mem.compacted = mem.compacted.max(revision);
        Ok(())
    }
}

impl Drop for Inner {
    /// A clean shutdown checkpoints, so the next open has nothing to replay.
    fn drop(&mut self) {
        if self.mem().recent.is_empty() {
            return;
        }
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "failed to checkpoint on close; the log will be replayed");
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
        if let Some(found) = self.inner.get(key, false)? {
            return Ok(found);
        }
        let key = key.to_owned();
        self.blocking(move |i| i.get(&key, true))
            .await?
            .ok_or_else(|| Error::internal("embedded store read did not finish"))
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        if let Some(found) = self.inner.range(&request, false)? {
            return Ok(found);
        }
        self.blocking(move |i| i.range(&request, true))
            .await?
            .ok_or_else(|| Error::internal("embedded store read did not finish"))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        // Without a log nothing waits for a disk: apply on the caller's
        // task unless the checkpointer has fallen behind.
        if !self.inner.durable && !self.inner.limits.over(self.inner.mem().backlog()) {
            return self.inner.txn(txn);
        }
        self.blocking(move |i| i.txn(txn)).await
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        self.inner.check_running()?;
        Ok(watch::watch(self.inner.clone(), prefix.to_owned(), from))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.blocking(move |i| i.compact(revision)).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.mem().revision)
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
