//! Leases on the embedded backend: grant, keep alive, revoke, and expiry,
//! which deletes the keys a lease holds at a new revision (watchers see the
//! deletions). Leases live in redb and change with durable commits of their
//! own; the keys a lease holds are known from the in-memory index.
//!
//! Revoking logs the deletions before it forgets the lease: a crash in
//! between leaves a lease with no keys, which simply expires again.

use std::{sync::Arc, time::Duration};

use redb::{ReadableDatabase, ReadableTable};
use yunshu_core::{Error, Result, store::LeaseId};

use super::{Inner, LEASE_SEQ, LEASES, META, db_err, mem::Batch, now_ms};

impl Inner {
    pub(super) fn lease_grant(&self, ttl: Duration) -> Result<LeaseId> {
        self.check_running()?;
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
        Ok(id)
    }

    pub(super) fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration> {
        self.expire_leases(now_ms())?;
        // Expiry decides and deletes under the writer lock: holding it here
        // keeps a renewal from succeeding for a lease being revoked.
        let _writer = self.lock()?;
        let w = self
            .db
            .begin_write()
            .map_err(db_err("begin a transaction"))?;
        let ttl = {
            let mut leases = w.open_table(LEASES).map_err(db_err("open a table"))?;
            let now = now_ms();
            let (ttl_ms, _) = leases
                .get(id)
                .map_err(db_err("read a lease"))?
                .map(|v| v.value())
                // Past its deadline: expired, whether or not swept yet.
                .filter(|(_, deadline)| *deadline >= now)
                .ok_or_else(|| Error::not_found(format!("lease {id}")))?;
            leases
                .insert(id, (ttl_ms, now.saturating_add(ttl_ms)))
                .map_err(db_err("write a lease"))?;
            Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0))
        };
        w.commit().map_err(db_err("commit"))?;
        Ok(ttl)
    }

    /// The leases `only` names (if it exists), else those past their deadline.
    fn doomed(&self, only: Option<LeaseId>, now: i64) -> Result<Vec<LeaseId>> {
        let r = self.db.begin_read().map_err(db_err("begin a read"))?;
        let leases = r.open_table(LEASES).map_err(db_err("open a table"))?;
        if let Some(id) = only {
            return Ok(match leases.get(id).map_err(db_err("read a lease"))? {
                Some(_) => vec![id],
                None => Vec::new(),
            });
        }
        let mut doomed = Vec::new();
        for item in leases.iter().map_err(db_err("scan leases"))? {
            let (id, v) = item.map_err(db_err("scan leases"))?;
            if v.value().1 < now {
                doomed.push(id.value());
            }
        }
        Ok(doomed)
    }

    /// Revokes `only` if given, else every lease whose deadline passed.
    pub(super) fn revoke(&self, only: Option<LeaseId>, now: i64) -> Result<()> {
        if only.is_none() && self.doomed(None, now)?.is_empty() {
            return Ok(());
        }
        let mut writer = self.lock()?;
        let doomed = self.doomed(only, now)?;
        if let Some(id) = only.filter(|_| doomed.is_empty()) {
            return Err(Error::not_found(format!("lease {id}")));
        }
        if doomed.is_empty() {
            return Ok(());
        }
        let batch = {
            let mem = self.mem();
            let events = mem.lease_deletions(&doomed);
            (!events.is_empty()).then(|| Arc::new(Batch::new(mem.revision + 1, events)))
        };
        if let Some(batch) = batch {
            self.log(&mut writer, &batch)?;
            self.mem_mut().apply(&batch);
            // Applied: watchers hear of it now, whatever happens below.
            let _ = self.events.send(batch);
        }
        let w = self
            .db
            .begin_write()
            .map_err(db_err("begin a transaction"))?;
        {
            let mut leases = w.open_table(LEASES).map_err(db_err("open a table"))?;
            for id in &doomed {
                leases.remove(*id).map_err(db_err("remove a lease"))?;
            }
        }
        w.commit().map_err(db_err("commit"))
    }

    /// Brings every deadline later than `now` plus its ttl down to that: a
    /// deadline so far off was written before the system clock went back
    /// while the store was closed, and would keep its keys too long.
    pub(super) fn bound_lease_deadlines(&self, now: i64) -> Result<()> {
        let mut late = Vec::new();
        {
            let r = self.db.begin_read().map_err(db_err("begin a read"))?;
            let leases = r.open_table(LEASES).map_err(db_err("open a table"))?;
            for item in leases.iter().map_err(db_err("scan leases"))? {
                let (id, v) = item.map_err(db_err("scan leases"))?;
                let (ttl_ms, deadline) = v.value();
                if deadline > now.saturating_add(ttl_ms) {
                    late.push((id.value(), ttl_ms));
                }
            }
        }
        // Most opens find nothing to change and make no durable commit.
        if late.is_empty() {
            return Ok(());
        }
        let w = self
            .db
            .begin_write()
            .map_err(db_err("begin a transaction"))?;
        {
            let mut leases = w.open_table(LEASES).map_err(db_err("open a table"))?;
            for (id, ttl_ms) in late {
                leases
                    .insert(id, (ttl_ms, now.saturating_add(ttl_ms)))
                    .map_err(db_err("write a lease"))?;
            }
        }
        w.commit().map_err(db_err("commit"))
    }

    pub(super) fn expire_leases(&self, now: i64) -> Result<()> {
        self.revoke(None, now)
    }
}
