//! The in-memory side of the embedded backend: the index of every live key,
//! the batches not yet checkpointed into redb, and the planning of a
//! transaction against them.
//!
//! The index maps each key to its revisions, version and lease (like etcd's
//! `treeIndex`, a few dozen bytes per key plus the key, which a hash map and
//! an ordered set share). A key written since the last checkpoint also
//! points at the batch holding its value, so reads of recent writes never
//! touch redb and every guard is checked in memory. A key that is not in the
//! index does not exist, whatever redb still holds.
//!
//! Point lookups — every guard and every write's previous version — go to
//! the hash map: with keys that share long prefixes (`/yunshu/objects/…`),
//! a B-tree search over a hundred thousand keys was a visible share of a
//! create. The ordered set serves prefix ranges.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    ops::Bound,
    sync::{Arc, OnceLock, Weak},
};

use yunshu_core::{
    Error, Result,
    store::{EventKind, KeyValue, LeaseId, Op, Revision, Txn, TxnResponse, WatchEvent},
};

use super::record::{self, Header};

/// The events of one committed transaction, all at one revision.
#[derive(Debug)]
pub(crate) struct Batch {
    pub revision: Revision,
    pub events: Vec<WatchEvent>,
    /// The encoded batch as a log frame, made once for the log and the
    /// checkpoint.
    frame: OnceLock<Vec<u8>>,
}

impl Batch {
    pub fn new(revision: Revision, events: Vec<WatchEvent>) -> Self {
        Self {
            revision,
            events,
            frame: OnceLock::new(),
        }
    }

    /// The log frame (header bytes unfilled until the log appends it).
    pub fn set_frame(&self, frame: Vec<u8>) {
        let _ = self.frame.set(frame);
    }

    /// The batch payload, as the `history` table stores it.
    pub fn payload(&self) -> &[u8] {
        &self
            .frame
            .get_or_init(|| record::encode_batch(self.revision, &self.events))
            [record::FRAME_HEADER..]
    }

    fn size(&self) -> usize {
        self.events
            .iter()
            .map(|e| 48 + e.kv.key.len() + e.kv.value.len())
            .sum()
    }
}

/// One live key.
#[derive(Debug)]
pub(crate) struct Slot {
    pub header: Header,
    /// The batch and event holding the value. `recent` owns the batch until
    /// a checkpoint puts it in redb; once the last owner lets go, the value
    /// is read from redb. Holding it weakly spares the checkpoint a visit to
    /// every key it wrote.
    pub pending: Option<(Weak<Batch>, u32)>,
}

impl Slot {
    /// The entry, if its value is in memory.
    pub fn cached(&self) -> Option<KeyValue> {
        let (batch, i) = self.pending.as_ref()?;
        batch
            .upgrade()?
            .events
            .get(*i as usize)
            .map(|e| e.kv.clone())
    }
}

/// The state readers see and writers change.
#[derive(Debug, Default)]
pub(crate) struct Mem {
    /// The store's revision.
    pub revision: Revision,
    /// Every revision up to here is in redb's tables.
    pub materialized: Revision,
    /// History before this revision is forgotten.
    pub compacted: Revision,
    /// Every live key.
    index: HashMap<Arc<str>, Slot>,
    /// The same keys, in order.
    order: BTreeSet<Arc<str>>,
    /// Keys attached to each lease.
    pub lease_keys: HashMap<LeaseId, BTreeSet<String>>,
    /// The batches after `materialized`, in revision order.
    pub recent: VecDeque<Arc<Batch>>,
    recent_events: usize,
    recent_bytes: usize,
}

/// What a planned transaction does.
pub(crate) struct Plan {
    pub response: TxnResponse,
    pub events: Vec<WatchEvent>,
    /// Leases the writes attach keys to; each must exist.
    pub leases: Vec<LeaseId>,
}

impl Mem {
    /// Events and bytes waiting for a checkpoint.
    pub fn backlog(&self) -> (usize, usize) {
        (self.recent_events, self.recent_bytes)
    }

    /// A live key.
    pub fn slot(&self, key: &str) -> Option<&Slot> {
        self.index.get(key)
    }

    /// Live keys from `start` on, in order.
    pub fn range_from<'a>(
        &'a self,
        start: Bound<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a Slot)> + 'a {
        self.order
            .range::<str, _>((start, Bound::Unbounded))
            .filter_map(|k| Some((&**k, self.index.get(&**k)?)))
    }

    fn mod_revision(&self, key: &str) -> Revision {
        self.index.get(key).map_or(0, |s| s.header.mod_revision)
    }

    /// Checks the guards and turns the chosen writes into events at the
    /// next revision; consumes the transaction so values move, not copy.
    pub fn plan(&self, txn: Txn) -> Plan {
        let succeeded = txn
            .compares
            .iter()
            .all(|c| c.op.holds(self.mod_revision(&c.key), c.mod_revision));
        let ops = if succeeded { txn.success } else { txn.failure };
        let next = self.revision + 1;
        // No key is written twice (`Inner::txn` refuses that, as etcd does).
        let mut events = Vec::with_capacity(ops.len());
        let mut leases = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let prev = self.index.get(key.as_str()).map(|s| s.header);
                    let kv = KeyValue {
                        create_revision: prev.map_or(next, |p| p.create_revision),
                        mod_revision: next,
                        version: prev.map_or(1, |p| p.version + 1),
                        lease,
                        key,
                        value,
                    };
                    if let Some(id) = lease {
                        leases.push(id);
                    }
                    events.push(WatchEvent {
                        kind: EventKind::Put,
                        kv,
                    });
                }
                Op::Delete { key } => {
                    if self.index.contains_key(key.as_str()) {
                        events.push(delete_event(key, next));
                    }
                }
            }
        }
        let revision = if events.is_empty() {
            self.revision
        } else {
            next
        };
        Plan {
            response: TxnResponse {
                succeeded,
                revision,
            },
            events,
            leases,
        }
    }

    /// Applies a batch planned at the current revision.
    pub fn apply(&mut self, batch: &Arc<Batch>) {
        for (i, ev) in batch.events.iter().enumerate() {
            let key = &ev.kv.key;
            let old = match ev.kind {
                EventKind::Put => {
                    let slot = Slot {
                        header: Header::of(&ev.kv),
                        pending: Some((
                            Arc::downgrade(batch),
                            u32::try_from(i).unwrap_or(u32::MAX),
                        )),
                    };
                    if let Some(lease) = ev.kv.lease {
                        self.lease_keys
                            .entry(lease)
                            .or_default()
                            .insert(key.clone());
                    }
                    match self.index.get_mut(key.as_str()) {
                        Some(s) => Some(std::mem::replace(s, slot)),
                        None => {
                            self.insert(key, slot);
                            None
                        }
                    }
                }
                EventKind::Delete => {
                    self.order.remove(key.as_str());
                    self.index.remove(key.as_str())
                }
            };
            if let Some(lease) = old.and_then(|o| o.header.lease)
                && ev.kv.lease != Some(lease)
            {
                self.unlink(lease, key);
            }
        }
        self.revision = batch.revision;
        self.recent_events += batch.events.len();
        self.recent_bytes += batch.size();
        self.recent.push_back(batch.clone());
    }

    fn insert(&mut self, key: &str, slot: Slot) {
        let key: Arc<str> = Arc::from(key);
        self.order.insert(key.clone());
        self.index.insert(key, slot);
    }

    fn unlink(&mut self, lease: LeaseId, key: &str) {
        if let Some(keys) = self.lease_keys.get_mut(&lease) {
            keys.remove(key);
            if keys.is_empty() {
                self.lease_keys.remove(&lease);
            }
        }
    }

    /// Records that redb now holds every batch up to `upto`: their values
    /// are read from redb once nothing else (a watcher's copy) holds them.
    pub fn materialized(&mut self, upto: Revision) {
        while let Some(batch) = self.recent.front().filter(|b| b.revision <= upto) {
            self.recent_events = self.recent_events.saturating_sub(batch.events.len());
            self.recent_bytes = self.recent_bytes.saturating_sub(batch.size());
            self.recent.pop_front();
        }
        self.materialized = self.materialized.max(upto);
    }

    /// Adds a key read from redb when the store opens.
    pub fn load(&mut self, key: String, header: Header) {
        if let Some(lease) = header.lease {
            self.lease_keys
                .entry(lease)
                .or_default()
                .insert(key.clone());
        }
        self.insert(
            &key,
            Slot {
                header,
                pending: None,
            },
        );
    }

    /// Deletion events, at the next revision, for every key of these leases.
    pub fn lease_deletions(&self, leases: &[LeaseId]) -> Vec<WatchEvent> {
        let next = self.revision + 1;
        leases
            .iter()
            .filter_map(|id| self.lease_keys.get(id))
            .flatten()
            .map(|key| delete_event(key.clone(), next))
            .collect()
    }
}

fn delete_event(key: String, revision: Revision) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Delete,
        kv: KeyValue {
            key,
            value: Vec::new(),
            create_revision: 0,
            mod_revision: revision,
            version: 0,
            lease: None,
        },
    }
}

/// The error of a key the index has but redb lacks.
pub(crate) fn missing(key: &str) -> Error {
    Error::internal(format!(
        "embedded store index lists {key} but its table has no entry"
    ))
}

/// Fails when the index and redb disagree on a key read from redb.
pub(crate) fn expect_entry(key: &str, found: Option<KeyValue>) -> Result<KeyValue> {
    found.ok_or_else(|| missing(key))
}
