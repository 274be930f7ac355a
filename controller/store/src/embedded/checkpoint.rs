//! Checkpoints: batches leave memory for redb.
//!
//! A transaction is durable once its batch is in the write-ahead log; redb
//! is brought up to date in the background, many batches per durable
//! commit, off the request path. Only the last state of each key is written
//! (a hot key such as a department's usage, written by every admission
//! batch, costs one write per checkpoint), and each batch becomes one
//! `history` row holding its encoded events — the same bytes the log got.
//!
//! Writers that outrun the checkpointer wait for it once the backlog passes
//! eight times what starts one ([`Limits`]), so memory stays bounded.

use std::{
    sync::{Arc, PoisonError, atomic::Ordering},
    time::Duration,
};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use yunshu_core::{
    Error, Result,
    store::{EventKind, KeyValue, Revision, WatchEvent},
};

use super::{
    COMPACTED, HISTORY, Inner, KV, LEASE_KEYS, LEASES, META, REVISION, db_err,
    mem::{Batch, Mem},
    record, wal,
};

/// When checkpoints start, and when writers wait for them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Start a checkpoint once this many events…
    pub soft_events: usize,
    /// …or bytes of keys and values wait in memory. Writers wait for the
    /// checkpointer at eight times either.
    pub soft_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            soft_events: 8192,
            soft_bytes: 8 << 20,
        }
    }
}

impl Limits {
    pub(super) fn due(self, (events, bytes): (usize, usize)) -> bool {
        events >= self.soft_events || bytes >= self.soft_bytes
    }

    pub(super) fn over(self, (events, bytes): (usize, usize)) -> bool {
        events >= 8 * self.soft_events || bytes >= 8 * self.soft_bytes
    }
}

/// The log layout of earlier builds: one row per event.
const OLD_LOG: TableDefinition<(i64, u32), &[u8]> = TableDefinition::new("log");

impl Inner {
    /// Writes every batch not yet in redb into it with one durable commit,
    /// then retires the log file those batches were appended to.
    pub(super) fn checkpoint(&self) -> Result<()> {
        let _one = self
            .checkpointing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (batches, upto) = {
            let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let mem = self.mem();
            if mem.recent.is_empty() {
                return Ok(());
            }
            // Appends from now on go to the other file; this one holds
            // every batch taken here.
            if let Some(wal) = writer.as_mut() {
                wal.rotate();
            }
            (mem.recent.iter().cloned().collect::<Vec<_>>(), mem.revision)
        };
        let w = self
            .db
            .begin_write()
            .map_err(db_err("begin a transaction"))?;
        materialize(&w, &batches, upto)?;
        w.commit().map_err(db_err("commit a checkpoint"))?;
        self.mem_mut().materialized(upto);
        if let Some(wal) = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            wal.retire();
        }
        tracing::trace!(revision = upto, batches = batches.len(), "checkpointed");
        Ok(())
    }

    /// Fills the idle log file with zeros (see [`wal`]), holding the
    /// checkpoint lock so no rotation makes it active meanwhile; appends go
    /// on in the active file.
    pub(super) fn prefill_idle(&self) -> Result<()> {
        let _one = self
            .checkpointing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let job = match self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            Some(wal) => wal.prefill_job()?,
            None => None,
        };
        let Some(job) = job else { return Ok(()) };
        job.run()?;
        if let Some(wal) = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            wal.prefilled(&job);
        }
        Ok(())
    }

    /// Prefills the idle log file on a thread of its own.
    pub(super) fn prefill_in_background(self: &Arc<Self>) {
        if !self.durable {
            return;
        }
        let inner = self.clone();
        let spawned = std::thread::Builder::new()
            .name("yunshu-wal-prefill".into())
            .spawn(move || {
                background_priority();
                if let Err(e) = inner.prefill_idle() {
                    tracing::warn!(error = %e, "failed to preallocate the write-ahead log");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "failed to start preallocating the write-ahead log");
        }
    }

    /// Starts a background checkpoint unless one is running.
    pub(super) fn request_checkpoint(self: &Arc<Self>) {
        if self.checkpoint_running.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.clone();
        let spawned = std::thread::Builder::new()
            .name("yunshu-checkpoint".into())
            .spawn(move || {
                background_priority();
                loop {
                    let failed = inner.checkpoint().err();
                    if let Some(e) = &failed {
                        tracing::warn!(error = %e, "checkpoint failed; the write-ahead log keeps every write");
                        std::thread::sleep(Duration::from_secs(1));
                    } else if let Err(e) = inner.prefill_idle() {
                        tracing::warn!(error = %e, "failed to preallocate the write-ahead log");
                    }
                    inner.checkpoint_running.store(false, Ordering::Release);
                    // Writers that asked while this one ran were turned away.
                    if failed.is_some()
                        || !inner.limits.due(inner.mem().backlog())
                        || inner.checkpoint_running.swap(true, Ordering::AcqRel)
                    {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            self.checkpoint_running.store(false, Ordering::Release);
            tracing::warn!(error = %e, "failed to start a checkpoint");
        }
    }

    /// Waits for (or runs) a checkpoint when writers have outrun it.
    pub(super) fn make_room(&self) -> Result<()> {
        if self.limits.over(self.mem().backlog()) {
            self.checkpoint()?;
        }
        Ok(())
    }
}

/// Lowers the calling thread's CPU priority (nice 10; on Linux, nice is per
/// thread). Checkpoints come in bursts of tens of milliseconds of CPU; at
/// normal priority each burst took a core from the request path, and at
/// half load p99 rose to hundreds of milliseconds. Niced, they use idle
/// CPU; a checkpointer that falls behind still makes writers wait for it
/// at [`Limits::over`], so memory stays bounded.
fn background_priority() {
    // No pid: the calling thread.
    if let Err(e) = rustix::process::setpriority_process(None, 10) {
        tracing::debug!(error = %e, "could not lower the checkpoint thread's priority");
    }
}

/// Writes batches into redb's tables: the last state of each key, one
/// history row per batch, and the revision they reach.
fn materialize(w: &WriteTransaction, batches: &[Arc<Batch>], upto: Revision) -> Result<()> {
    let mut kv = w.open_table(KV).map_err(db_err("open a table"))?;
    let mut lease_keys = w.open_table(LEASE_KEYS).map_err(db_err("open a table"))?;
    let mut history = w.open_table(HISTORY).map_err(db_err("open a table"))?;
    let mut meta = w.open_table(META).map_err(db_err("open a table"))?;
    // The last event of each key, in key order (a stable sort keeps the
    // events of one key in revision order).
    let mut events: Vec<&WatchEvent> = batches.iter().flat_map(|b| &b.events).collect();
    events.sort_by(|a, b| a.kv.key.cmp(&b.kv.key));
    let mut buf = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        if events
            .get(i + 1)
            .is_some_and(|next| next.kv.key == ev.kv.key)
        {
            continue;
        }
        match ev.kind {
            EventKind::Put => put_entry(&mut kv, &mut lease_keys, &ev.kv, &mut buf)?,
            EventKind::Delete => delete_entry(&mut kv, &mut lease_keys, &ev.kv.key)?,
        }
    }
    let compacted = meta
        .get(COMPACTED)
        .map_err(db_err("read meta"))?
        .map_or(0, |v| v.value());
    for b in batches.iter().filter(|b| b.revision >= compacted) {
        history
            .insert(b.revision, b.payload())
            .map_err(db_err("append to the history"))?;
    }
    meta.insert(REVISION, upto).map_err(db_err("write meta"))?;
    Ok(())
}

fn put_entry(
    kv: &mut redb::Table<&str, &[u8]>,
    lease_keys: &mut redb::Table<(i64, &str), ()>,
    entry: &KeyValue,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let key = entry.key.as_str();
    buf.clear();
    record::push_entry(buf, entry);
    let old = kv
        .insert(key, buf.as_slice())
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

fn delete_entry(
    kv: &mut redb::Table<&str, &[u8]>,
    lease_keys: &mut redb::Table<(i64, &str), ()>,
    key: &str,
) -> Result<()> {
    let prev = kv
        .remove(key)
        .map_err(db_err("delete a key"))?
        .map(|v| record::header(v.value()))
        .transpose()?;
    if let Some(id) = prev.and_then(|p| p.lease) {
        lease_keys
            .remove((id, key))
            .map_err(db_err("unlink a lease"))?;
    }
    Ok(())
}

/// Creates the tables, converting the per-event log of earlier builds.
pub(super) fn prepare(db: &Database) -> Result<()> {
    let w = db.begin_write().map_err(db_err("begin a transaction"))?;
    let old = w
        .list_tables()
        .map_err(db_err("list tables"))?
        .any(|t| redb::TableHandle::name(&t) == "log");
    if old {
        migrate_log(&w)?;
    }
    w.open_table(KV).map_err(db_err("open a table"))?;
    w.open_table(HISTORY).map_err(db_err("open a table"))?;
    w.open_table(META).map_err(db_err("open a table"))?;
    w.open_table(LEASES).map_err(db_err("open a table"))?;
    w.open_table(LEASE_KEYS).map_err(db_err("open a table"))?;
    w.commit().map_err(db_err("commit"))
}

fn migrate_log(w: &WriteTransaction) -> Result<()> {
    {
        let old = w.open_table(OLD_LOG).map_err(db_err("open a table"))?;
        let mut history = w.open_table(HISTORY).map_err(db_err("open a table"))?;
        let mut batch: Option<(Revision, Vec<WatchEvent>)> = None;
        let mut flush = |b: Option<(Revision, Vec<WatchEvent>)>| -> Result<()> {
            if let Some((rev, events)) = b {
                let frame = record::encode_batch(rev, &events);
                history
                    .insert(rev, &frame[record::FRAME_HEADER..])
                    .map_err(db_err("convert the log"))?;
            }
            Ok(())
        };
        for item in old.iter().map_err(db_err("read the log"))? {
            let (k, v) = item.map_err(db_err("read the log"))?;
            let (rev, _) = k.value();
            let ev = record::decode_event(v.value())?;
            match &mut batch {
                Some((r, events)) if *r == rev => events.push(ev),
                _ => flush(batch.replace((rev, vec![ev])))?,
            }
        }
        flush(batch)?;
    }
    w.delete_table(OLD_LOG)
        .map_err(db_err("drop the old log"))?;
    tracing::info!("converted the embedded store's log to one row per revision");
    Ok(())
}

/// Writes log records newer than redb's revision into redb, durably.
pub(super) fn replay(db: &Database, records: Vec<wal::WalRecord>) -> Result<()> {
    let w = db.begin_write().map_err(db_err("begin a transaction"))?;
    let mut revision = {
        let meta = w.open_table(META).map_err(db_err("open a table"))?;
        meta.get(REVISION)
            .map_err(db_err("read meta"))?
            .map_or(0, |v| v.value())
    };
    let mut batches = Vec::new();
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
        let (rev, events) = record::decode_batch(&rec.payload, None)?;
        let batch = Batch::new(rev, events);
        let mut frame = vec![0; record::FRAME_HEADER];
        frame.extend_from_slice(&rec.payload);
        batch.set_frame(frame);
        batches.push(Arc::new(batch));
        revision = rec.revision;
    }
    if batches.is_empty() {
        return Ok(());
    }
    materialize(&w, &batches, revision)?;
    w.commit().map_err(db_err("commit"))?;
    tracing::info!(transactions = batches.len(), "replayed the write-ahead log");
    Ok(())
}

/// The in-memory state of a database whose tables are up to date.
pub(super) fn load(db: &Database) -> Result<Mem> {
    let r = db.begin_read().map_err(db_err("begin a read"))?;
    let meta = r.open_table(META).map_err(db_err("open a table"))?;
    let get = |name: &str| -> Result<i64> {
        Ok(meta
            .get(name)
            .map_err(db_err("read meta"))?
            .map_or(0, |v| v.value()))
    };
    let mut mem = Mem::default();
    mem.revision = get(REVISION)?;
    mem.materialized = mem.revision;
    mem.compacted = get(COMPACTED)?;
    let kv = r.open_table(KV).map_err(db_err("open a table"))?;
    for item in kv.iter().map_err(db_err("read keys"))? {
        let (k, v) = item.map_err(db_err("read keys"))?;
        mem.load(k.value().to_owned(), record::header(v.value())?);
    }
    Ok(mem)
}
