//! Replays the store's whole history and checks, at every revision, that
//! placement kept its invariants.

use std::{collections::HashMap, time::Duration};

use futures::StreamExt;
use yunshu_core::{
    codec, keys,
    meta::Kind,
    model::{Charge, Foundation, Instance, Phase},
    resources::{ResourceClass, Resources},
    store::{EventKind, Store, StoreExt, WatchEvent},
};
use yunshu_placement::{AllocationRecord, ClaimRecord, inventory::observed, keys as pkeys};

/// A per-department limit on one foundation to check: (department, foundation, vCPU).
pub type FoundationLimit = (&'static str, &'static str, u64);

#[derive(Default)]
struct State {
    capacity: HashMap<String, Resources>,
    allocations: HashMap<String, AllocationRecord>,
    claims: HashMap<String, ClaimRecord>,
    /// Sum of claims per foundation, and per (foundation, department).
    claimed: HashMap<String, Resources>,
    claimed_by: HashMap<(String, String), Resources>,
    /// Scheduled objects: key → (foundation, charge).
    scheduled: HashMap<String, (String, Resources)>,
    scheduled_sum: HashMap<String, Resources>,
    /// Object keys whose phase or claim changed in the current revision.
    dirty: Vec<String>,
}

fn add(map: &mut HashMap<String, Resources>, k: &str, r: &Resources) {
    let e = map.entry(k.to_owned()).or_default();
    *e = e.checked_add(r).expect("no overflow");
}

fn sub(map: &mut HashMap<String, Resources>, k: &str, r: &Resources) {
    let e = map.entry(k.to_owned()).or_default();
    *e = e.saturating_sub(r);
}

impl State {
    fn apply(&mut self, kind: EventKind, key: &str, value: &[u8], rev: i64) {
        if let Some(name) = key.strip_prefix(&keys::objects(Kind::Foundation, None)) {
            if kind == EventKind::Put {
                let f: Foundation = codec::decode(key, value).expect("foundation");
                let (_, inventory) = observed(&f);
                let cap = Resources::from_pairs(inventory.iter().map(|(c, r)| (*c, r.capacity())));
                self.capacity.insert(name.to_owned(), cap);
            }
        } else if let Some(name) = key.strip_prefix(&pkeys::allocations()) {
            match kind {
                EventKind::Put => {
                    let a: AllocationRecord = codec::decode(key, value).expect("allocation");
                    self.allocations.insert(name.to_owned(), a);
                }
                EventKind::Delete => {
                    self.allocations.remove(name);
                }
            }
        } else if key.starts_with(&pkeys::claims()) {
            self.dirty.extend(pkeys::object_for(key));
            if let Some(old) = self.claims.remove(key) {
                sub(&mut self.claimed, &old.foundation, &old.charge);
                let by = self
                    .claimed_by
                    .entry((old.foundation, old.department))
                    .or_default();
                *by = by.saturating_sub(&old.charge);
            }
            if kind == EventKind::Put {
                let c: ClaimRecord = codec::decode(key, value).expect("claim");
                add(&mut self.claimed, &c.foundation, &c.charge);
                let by = self
                    .claimed_by
                    .entry((c.foundation.clone(), c.department.clone()))
                    .or_default();
                *by = by.checked_add(&c.charge).expect("no overflow");
                self.claims.insert(key.to_owned(), c);
            }
        } else if key.starts_with(&keys::objects_of_kind(Kind::Instance)) {
            self.dirty.push(key.to_owned());
            if let Some((f, charge)) = self.scheduled.remove(key) {
                sub(&mut self.scheduled_sum, &f, &charge);
            }
            if kind == EventKind::Put {
                let o: Instance = codec::decode(key, value).expect("instance");
                if o.status.phase == Phase::Scheduled {
                    let f = o.status.placement.foundation.clone().unwrap_or_else(|| {
                        panic!("revision {rev}: {key} is Scheduled without a foundation")
                    });
                    add(&mut self.scheduled_sum, &f, &o.spec.charge());
                    self.scheduled.insert(key.to_owned(), (f, o.spec.charge()));
                }
            }
        }
    }

    fn check(&mut self, rev: i64, limits: &[FoundationLimit]) {
        let names: std::collections::BTreeSet<&String> = self
            .allocations
            .keys()
            .chain(self.claimed.keys())
            .chain(self.scheduled_sum.keys())
            .collect();
        for f in names {
            let cap = self.capacity.get(f).copied().unwrap_or_default();
            let alloc = self.allocations.get(f).cloned().unwrap_or_default();
            let claimed = self.claimed.get(f).copied().unwrap_or_default();
            let scheduled = self.scheduled_sum.get(f).copied().unwrap_or_default();
            for class in ResourceClass::ALL {
                let c = cap.get(class);
                for (what, used) in [
                    ("allocation key", alloc.used.get(class)),
                    ("claims", claimed.get(class)),
                    ("scheduled objects", scheduled.get(class)),
                ] {
                    assert!(
                        used <= c,
                        "revision {rev}: {what} on {f} hold {used} {class}, over capacity x ratio {c}"
                    );
                }
            }
            assert_eq!(
                alloc.used, claimed,
                "revision {rev}: allocation key of {f} differs from the sum of its claims"
            );
            for (d, used) in &alloc.departments {
                let by = self
                    .claimed_by
                    .get(&(f.clone(), d.clone()))
                    .copied()
                    .unwrap_or_default();
                assert_eq!(
                    *used, by,
                    "revision {rev}: {f}'s allocation for {d} differs from its claims"
                );
            }
        }
        for (d, f, limit) in limits {
            let used = self
                .claimed_by
                .get(&((*f).to_owned(), (*d).to_owned()))
                .map_or(0, |r| r.get(ResourceClass::Vcpu));
            assert!(
                used <= *limit,
                "revision {rev}: {d} holds {used} vcpu on {f}, over its limit {limit}"
            );
        }
        for key in std::mem::take(&mut self.dirty) {
            let Some((f, _)) = self.scheduled.get(&key) else {
                continue;
            };
            let claim = pkeys::claim_for(&key).and_then(|k| self.claims.get(&k));
            assert_eq!(
                claim.map(|c| c.foundation.as_str()),
                Some(f.as_str()),
                "revision {rev}: scheduled {key} has no claim on {f}"
            );
        }
    }
}

/// Records every change from the first revision on, as it happens.
pub struct Recorder {
    task: tokio::task::JoinHandle<Vec<WatchEvent>>,
    sentinel: String,
}

impl Recorder {
    /// Starts recording; call before the first write of the test.
    pub async fn start(store: &dyn Store) -> Self {
        let sentinel = format!("{}zz-history-end", keys::ROOT);
        let mut stream = store.watch(keys::ROOT, 1).await.expect("watch history");
        let end = sentinel.clone();
        let task = tokio::spawn(async move {
            let mut events = Vec::new();
            while let Some(ev) = stream.next().await {
                let ev = ev.expect("history event");
                let done = ev.kv.key == end;
                events.push(ev);
                if done {
                    break;
                }
            }
            events
        });
        Self { task, sentinel }
    }

    /// Closes the history with a sentinel write and checks every revision;
    /// returns how many were checked.
    pub async fn replay(self, store: &dyn Store, limits: &[FoundationLimit]) -> usize {
        // Once the sentinel is seen, every earlier revision has been seen whole.
        store
            .put(&self.sentinel, Vec::new())
            .await
            .expect("sentinel");
        let events = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("history recorded")
            .expect("recorder");
        let mut state = State::default();
        let (mut revisions, mut at) = (0, 0);
        for ev in events {
            let rev = ev.kv.mod_revision;
            if rev != at && at != 0 {
                state.check(at, limits);
                revisions += 1;
            }
            at = rev;
            state.apply(ev.kind, &ev.kv.key, &ev.kv.value, rev);
        }
        revisions
    }
}
