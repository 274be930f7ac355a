//! Applying watched changes to the loop's index, queue and cache, and
//! releasing the claims of deleted objects.

use std::sync::atomic::Ordering;

use yunshu_core::{
    codec,
    model::Phase,
    store::{EventKind, KeyValue},
};

use super::{Placed, Tracked, Worker};
use crate::{
    cache::Changed,
    commit::{AdjustJob, Adjusted, Job, ReleaseJob},
    inventory::ClaimRecord,
    keys,
    workload::Workload,
};

impl Worker {
    /// Applies one watched change.
    pub(super) fn apply(&mut self, kind: EventKind, kv: &KeyValue) {
        if keys::workload_kind(&kv.key).is_some() {
            self.apply_workload(kind, kv);
        } else if kv.key.starts_with(&keys::claims()) {
            self.apply_claim(kind, kv);
        } else {
            match self.cache.apply(kind, kv) {
                Changed::Nothing | Changed::Allocation { freed: false } => {}
                Changed::Config | Changed::Allocation { freed: true } => self.retry_parked(),
            }
        }
    }

    pub(super) fn apply_workload(&mut self, kind: EventKind, kv: &KeyValue) {
        let key = kv.key.as_str();
        if self
            .objects
            .get(key)
            .is_some_and(|t| t.revision >= kv.mod_revision)
        {
            return;
        }
        self.cancel_older(key, kv.mod_revision);
        let recheck = self.recheck.remove(key);
        let workload = match kind {
            EventKind::Delete => None,
            EventKind::Put => {
                let Some(k) = keys::workload_kind(key) else {
                    return;
                };
                match Workload::decode(k, kv) {
                    Ok(w) => Some(w),
                    Err(error) => {
                        // Skipped, and its earlier version is not decided either.
                        tracing::warn!(%error, key, "skipping malformed object");
                        if let Some(t) = self.objects.get_mut(key) {
                            t.revision = kv.mod_revision;
                            t.waiting = None;
                        }
                        self.forget(key);
                        return;
                    }
                }
            }
        };
        self.index_group(key, workload.as_ref());
        self.index_instance(key, workload.as_ref());
        self.stop_waiting(key);
        let Some(w) = workload else {
            self.objects.remove(key);
            self.forget(key);
            if let Some(claim) = keys::claim_for(key) {
                self.maybe_release(&claim);
            }
            return;
        };
        let waiting = w.wants_placement();
        let phase = w.status().phase;
        let uid = w.meta().uid.clone();
        // Placed and not being deleted (so not waiting either).
        let placed = (!matches!(phase, Phase::Pending | Phase::Unschedulable)
            && w.meta().deletion_timestamp.is_none())
        .then(|| Placed {
            charge: w.charge(),
            provisioned: w.status().provisioned,
            resizing_to: w.status().resizing_to,
        });
        // A volume waiting on its instance: decided again once that is
        // placed, or now if it already is (after a relist, say).
        let instance_placed = match w.attach_to().filter(|_| waiting) {
            Some(i) => {
                let ikey = instance_key(&w, i);
                let placed = self.instances_at.contains_key(&ikey);
                if !placed {
                    self.wait_on(key, ikey);
                }
                placed
            }
            None => false,
        };
        if instance_placed && let Some(f) = self.in_flight.get_mut(key) {
            // Decided before its instance was placed: decide again.
            f.again = true;
        }
        self.objects.insert(
            key.to_owned(),
            Tracked {
                revision: kv.mod_revision,
                uid,
                waiting: waiting.then_some(w),
                placed,
            },
        );
        self.maybe_adjust(key);
        if !waiting {
            self.forget(key);
        } else if phase == Phase::Pending || recheck || instance_placed {
            self.parked.remove(key);
            self.enqueue(key);
        } else if !self.in_flight.contains_key(key) && !self.queued.contains(key) {
            self.parked.insert(key.to_owned());
        }
    }

    pub(super) fn apply_claim(&mut self, kind: EventKind, kv: &KeyValue) {
        let key = kv.key.as_str();
        if self
            .claims
            .get(key)
            .is_some_and(|(rev, _)| *rev >= kv.mod_revision)
        {
            return;
        }
        match kind {
            EventKind::Put => match codec::decode::<ClaimRecord>(key, &kv.value) {
                Ok(claim) => {
                    self.claims.insert(key.to_owned(), (kv.mod_revision, claim));
                    if let Some(object) = keys::object_for(key) {
                        self.maybe_adjust(&object);
                    }
                }
                Err(error) => tracing::warn!(%error, key, "skipping malformed claim"),
            },
            EventKind::Delete => {
                if self.claims.remove(key).is_some() {
                    // An object of the same name may have waited for this release.
                    if let Some(object) = keys::object_for(key)
                        && self
                            .objects
                            .get(&object)
                            .is_some_and(|t| t.waiting.is_some())
                    {
                        self.parked.remove(&object);
                        self.enqueue(&object);
                    }
                }
            }
        }
    }

    /// Cancels an in-flight decision made on a version older than `revision`
    /// and stops holding its charge: either this is its own commit (the
    /// allocation now counts it) or its guard will fail.
    fn cancel_older(&mut self, key: &str, revision: i64) {
        if let Some(f) = self.in_flight.get_mut(key)
            && f.revision < revision
        {
            f.cancel.store(true, Ordering::Relaxed);
            if let Some(target) = f.target.as_deref().filter(|_| f.held) {
                self.cache.unhold(target, &f.department, &f.charge);
                f.held = false;
            }
        }
    }

    /// Keeps the group index: which foundation each placed member is on.
    fn index_group(&mut self, key: &str, w: Option<&Workload>) {
        let placed = w.and_then(|w| {
            let group = w.group()?;
            let foundation = w.status().placement.foundation.as_ref()?;
            let placed = !matches!(w.status().phase, Phase::Pending | Phase::Unschedulable);
            placed.then(|| {
                (
                    (w.department().to_owned(), group.to_owned()),
                    foundation.clone(),
                )
            })
        });
        if let Some(group) = self.group_of.remove(key)
            && let Some(members) = self.groups.get_mut(&group)
        {
            members.remove(key);
            if members.is_empty() {
                self.groups.remove(&group);
            }
        }
        if let Some((group, foundation)) = placed {
            self.groups
                .entry(group.clone())
                .or_default()
                .insert(key.to_owned(), foundation);
            self.group_of.insert(key.to_owned(), group);
        }
    }

    /// Keeps the index of placed instances; an instance placed or deleted
    /// just now wakes the volumes parked on it.
    fn index_instance(&mut self, key: &str, w: Option<&Workload>) {
        let placed = w
            .filter(|w| matches!(w, Workload::Instance(_)))
            .and_then(|w| {
                let placed = !matches!(w.status().phase, Phase::Pending | Phase::Unschedulable);
                w.status().placement.foundation.clone().filter(|_| placed)
            });
        let Some(foundation) = placed else {
            self.instances_at.remove(key);
            if w.is_none() {
                // Deleted: its volumes now say so, and wait for an
                // instance of the same name.
                self.wake_waiters(key);
            }
            return;
        };
        if self
            .instances_at
            .insert(key.to_owned(), foundation)
            .is_some()
        {
            return;
        }
        self.wake_waiters(key);
    }

    /// Decides again the volumes waiting on instance `key`, which was just
    /// placed or deleted.
    fn wake_waiters(&mut self, key: &str) {
        for v in self.attach_waiters.remove(key).unwrap_or_default() {
            let still = self
                .objects
                .get(&v)
                .and_then(|t| t.waiting.as_ref())
                .is_some_and(|w| w.attach_to().is_some_and(|i| instance_key(w, i) == key));
            if self.waits_on.get(&v).is_some_and(|k| k == key) {
                self.waits_on.remove(&v);
            }
            if !still {
                continue;
            }
            if let Some(f) = self.in_flight.get_mut(&v) {
                // Its decision (Unschedulable) is being written: decide
                // again once it is answered.
                f.again = true;
            } else if self.parked.remove(&v) {
                self.enqueue(&v);
            }
        }
    }

    /// Registers a volume as waiting on instance `ikey`.
    pub(super) fn wait_on(&mut self, key: &str, ikey: String) {
        self.attach_waiters
            .entry(ikey.clone())
            .or_default()
            .insert(key.to_owned());
        self.waits_on.insert(key.to_owned(), ikey);
    }

    /// Drops a volume from the waiters of the instance it waited on; its
    /// current version, if still waiting, registers again.
    fn stop_waiting(&mut self, key: &str) {
        if let Some(ikey) = self.waits_on.remove(key)
            && let Some(waiters) = self.attach_waiters.get_mut(&ikey)
        {
            waiters.remove(key);
            if waiters.is_empty() {
                self.attach_waiters.remove(&ikey);
            }
        }
    }

    /// Drops a key from the queue and the parked set.
    fn forget(&mut self, key: &str) {
        self.parked.remove(key);
        if self.queued.remove(key) {
            self.queue.retain(|k| k != key);
        }
    }

    /// Queues a key for a decision unless it is queued or in flight.
    pub(super) fn enqueue(&mut self, key: &str) {
        if !self.in_flight.contains_key(key) && self.queued.insert(key.to_owned()) {
            self.queue.push_back(key.to_owned());
        }
    }

    /// Asks for every parked object to be decided again. Requests are
    /// coalesced: the parked set moves to the queue at most once per
    /// [`RETRY_COALESCE`](super::RETRY_COALESCE).
    pub(super) fn retry_parked(&mut self) {
        self.epoch += 1;
        self.retry_wanted = true;
    }

    /// Moves every parked object to the queue, and tries again the claims
    /// that could not grow.
    pub(super) fn requeue_parked(&mut self) {
        self.retry_wanted = false;
        self.next_retry = tokio::time::Instant::now() + super::RETRY_COALESCE;
        for key in std::mem::take(&mut self.parked) {
            self.enqueue(&key);
        }
        for key in std::mem::take(&mut self.blocked) {
            self.maybe_adjust(&key);
        }
    }

    /// Moves a placed object's claim to what it must hold now: the largest,
    /// in each class, of its spec's charge, what the cloud was last made to
    /// hold (the claim's own charge when that was never recorded, as on
    /// objects placed before resizes were) and what a resize under way
    /// asked the cloud for. One adjustment per claim is in flight at a
    /// time; its answer looks again.
    pub(super) fn maybe_adjust(&mut self, object_key: &str) {
        let Some(claim_key) = keys::claim_for(object_key) else {
            return;
        };
        if self.adjusting.contains_key(&claim_key) {
            return;
        }
        let Some((t, placed)) = self
            .objects
            .get(object_key)
            .and_then(|t| Some((t, t.placed?)))
        else {
            self.blocked.remove(object_key);
            return;
        };
        let Some((claim_revision, claim)) =
            self.claims.get(&claim_key).filter(|(_, c)| c.uid == t.uid)
        else {
            return;
        };
        let charge = placed
            .charge
            .max(&placed.provisioned.unwrap_or(claim.charge))
            .max(&placed.resizing_to.unwrap_or_default());
        if charge == claim.charge {
            self.blocked.remove(object_key);
            return;
        }
        tracing::debug!(key = object_key, foundation = %claim.foundation, from = ?claim.charge, to = ?charge, "adjusting claim");
        let job = AdjustJob {
            claim_key: claim_key.clone(),
            claim_revision: *claim_revision,
            claim: claim.clone(),
            charge,
            object_key: object_key.to_owned(),
            object_revision: t.revision,
        };
        let foundation = claim.foundation.clone();
        self.adjusting
            .insert(claim_key, (job.claim_revision, job.object_revision));
        self.committers.send(Some(&foundation), Job::Adjust(job));
    }

    /// Acts on the answer to an adjustment: a refused growth waits for
    /// room; otherwise, if the claim or object has moved on in the loop's
    /// view meanwhile, the new versions are looked at (later versions look
    /// for themselves as they arrive).
    pub(super) fn adjusted(&mut self, claim_key: &str, object_key: &str, answer: Adjusted) {
        let based = self.adjusting.remove(claim_key);
        let seen = (
            self.claims.get(claim_key).map_or(0, |(r, _)| *r),
            self.objects.get(object_key).map_or(0, |t| t.revision),
        );
        let moved = based != Some(seen);
        match answer {
            Adjusted::Refused(why) if !moved => {
                tracing::debug!(key = object_key, why, "claim cannot grow yet");
                self.blocked.insert(object_key.to_owned());
            }
            _ if moved => self.maybe_adjust(object_key),
            Adjusted::Refused(_) | Adjusted::Done | Adjusted::Stale => {}
        }
    }

    /// Releases every claim whose object is gone.
    pub(super) fn sweep(&mut self) {
        let keys: Vec<String> = self.claims.keys().cloned().collect();
        for key in keys {
            self.maybe_release(&key);
        }
    }

    /// Releases a claim if its object is gone (or is another object of the
    /// same name). The committer's guards make a wrong belief harmless.
    pub(super) fn maybe_release(&mut self, claim_key: &str) {
        if self.releasing.contains(claim_key) {
            return;
        }
        let Some((claim_revision, claim)) = self.claims.get(claim_key) else {
            return;
        };
        let Some(object_key) = keys::object_for(claim_key) else {
            return;
        };
        let object_revision = match self.objects.get(&object_key) {
            None => 0,
            Some(t) if t.uid != claim.uid => t.revision,
            Some(_) => return,
        };
        tracing::debug!(claim = claim_key, foundation = %claim.foundation, "releasing claim");
        let job = ReleaseJob {
            claim_key: claim_key.to_owned(),
            claim_revision: *claim_revision,
            claim: claim.clone(),
            object_key,
            object_revision,
            reply: None,
        };
        let foundation = claim.foundation.clone();
        self.releasing.insert(claim_key.to_owned());
        self.committers.send(Some(&foundation), Job::Release(job));
    }
}

/// The store key of the instance `name` in the department of `w`.
pub(super) fn instance_key(w: &Workload, name: &str) -> String {
    yunshu_core::keys::object(
        yunshu_core::meta::Kind::Instance,
        Some(w.department()),
        name,
    )
}
