//! Leases on the embedded backend: grant, keep alive, revoke, and expiry,
//! which deletes the keys a lease holds at a new revision (watchers see the
//! deletions). Lease changes are durable commits, so they also checkpoint
//! the write-ahead log.

use std::{sync::Arc, time::Duration};

use redb::ReadableTable;
use yunshu_core::{Error, Result, store::LeaseId};

use super::{
    Batch, Inner, KV, LEASE_KEYS, LEASE_SEQ, LEASES, META, REVISION, append_log, db_err,
    delete_key, now_ms,
};

impl Inner {
    pub(super) fn lease_grant(&self, ttl: Duration) -> Result<LeaseId> {
        let mut guard = self.lock()?;
        let w = self
            .db
            .begin_write()
            .map_err(db_err("begin a transaction"))?;
        let id = {
            let mut meta = w.open_table(META).map_err(db_err("open a table"))?;
            let id = meta
                .get(LEASE_SEQ)
                .map_err(db_err("read meta"))?
                .map_or(0, |v| v.value())
                + 1;
            meta.insert(LEASE_SEQ, id).map_err(db_err("write meta"))?;
            let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            let mut leases = w.open_table(LEASES).map_err(db_err("open a table"))?;
            leases
                .insert(id, (ttl_ms, now_ms().saturating_add(ttl_ms)))
                .map_err(db_err("write a lease"))?;
            id
        };
        w.commit().map_err(db_err("commit"))?;
        Self::checkpointed(&mut guard);
        Ok(id)
    }

    pub(super) fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration> {
        self.expire_leases(now_ms())?;
        let mut guard = self.lock()?;
        let w = self
            .db
            .begin_write()
            .map_err(db_err("begin a transaction"))?;
        let ttl = {
            let mut leases = w.open_table(LEASES).map_err(db_err("open a table"))?;
            let (ttl_ms, _) = leases
                .get(id)
                .map_err(db_err("read a lease"))?
                .map(|v| v.value())
                .ok_or_else(|| Error::not_found(format!("lease {id}")))?;
            leases
                .insert(id, (ttl_ms, now_ms().saturating_add(ttl_ms)))
                .map_err(db_err("write a lease"))?;
            Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0))
        };
        w.commit().map_err(db_err("commit"))?;
        Self::checkpointed(&mut guard);
        Ok(ttl)
    }

    /// Revokes `only` if given, else every lease whose deadline passed.
    pub(super) fn revoke(&self, only: Option<LeaseId>, now: i64) -> Result<()> {
        let mut guard = self.lock()?;
        let w = self
            .db
            .begin_write()
            .map_err(db_err("begin a transaction"))?;
        let (revision, events) = {
            let mut leases = w.open_table(LEASES).map_err(db_err("open a table"))?;
            let mut doomed = Vec::new();
            for item in leases.iter().map_err(db_err("scan leases"))? {
                let (id, v) = item.map_err(db_err("scan leases"))?;
                let (id, (_, deadline)) = (id.value(), v.value());
                if only.map_or(deadline < now, |o| o == id) {
                    doomed.push(id);
                }
            }
            if let Some(id) = only.filter(|_| doomed.is_empty()) {
                return Err(Error::not_found(format!("lease {id}")));
            }
            if doomed.is_empty() {
                return Ok(());
            }
            let mut meta = w.open_table(META).map_err(db_err("open a table"))?;
            let next = meta
                .get(REVISION)
                .map_err(db_err("read meta"))?
                .map_or(0, |v| v.value())
                + 1;
            let mut kv = w.open_table(KV).map_err(db_err("open a table"))?;
            let mut lease_keys = w.open_table(LEASE_KEYS).map_err(db_err("open a table"))?;
            let mut events = Vec::new();
            for id in doomed {
                leases.remove(id).map_err(db_err("remove a lease"))?;
                let keys: Vec<String> = lease_keys
                    .range((id, "")..(id + 1, ""))
                    .map_err(db_err("scan lease keys"))?
                    .map(|item| item.map(|(k, _)| k.value().1.to_owned()))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(db_err("scan lease keys"))?;
                for key in keys {
                    events.extend(delete_key(&mut kv, &mut lease_keys, &key, next)?);
                }
            }
            if !events.is_empty() {
                meta.insert(REVISION, next).map_err(db_err("write meta"))?;
                append_log(&w, next, &events)?;
            }
            (next, events)
        };
        w.commit().map_err(db_err("commit"))?;
        Self::checkpointed(&mut guard);
        drop(guard);
        if !events.is_empty() {
            let _ = self.events.send(Arc::new(Batch { revision, events }));
        }
        Ok(())
    }

    pub(super) fn expire_leases(&self, now: i64) -> Result<()> {
        self.revoke(None, now)
    }
}
