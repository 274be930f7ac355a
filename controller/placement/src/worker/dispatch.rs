//! Deciding queued objects, handing decisions to committers, and acting on
//! what the committers answer.

use std::sync::{Arc, atomic::AtomicBool};

use yunshu_core::model::Phase;

use super::{InFlight, Worker};
use crate::{
    commit::{Job, Outcome, PlaceJob},
    keys,
    observe::{PlacementOutcome, unschedulable_reason},
};

/// The most decisions made in one turn of the loop before it looks at the
/// watch and the committers again.
const DECISIONS_PER_TURN: usize = 256;

impl Worker {
    /// Whether there is something to decide and room to hand it on.
    pub(super) fn can_dispatch(&self) -> bool {
        !self.queue.is_empty() && self.in_flight.len() < self.config.max_in_flight
    }

    /// Decides queued objects, up to the in-flight limit.
    pub(super) fn dispatch(&mut self) {
        let mut decided = 0;
        while decided < DECISIONS_PER_TURN && self.in_flight.len() < self.config.max_in_flight {
            let Some(key) = self.queue.pop_front() else {
                return;
            };
            self.queued.remove(&key);
            decided += 1;
            self.decide_one(key);
        }
    }

    fn decide_one(&mut self, key: String) {
        if self.in_flight.contains_key(&key) {
            return;
        }
        // A volume whose instance is not placed is decided again when it
        // is placed or deleted, whether or not this decision is written.
        let unplaced = self.objects.get(&key).and_then(|t| {
            let w = t.waiting.as_ref()?;
            let ikey = super::apply::instance_key(w, w.attach_to()?);
            (!self.instances_at.contains_key(&ikey)).then_some(ikey)
        });
        if let Some(ikey) = unplaced {
            self.wait_on(&key, ikey);
        }
        let Some(t) = self.objects.get(&key) else {
            return;
        };
        let Some(w) = t.waiting.as_ref() else {
            return;
        };
        // An earlier object of this name still holds a claim: wait for its
        // release (the claim's deletion queues this object again).
        if let Some(claim_key) = keys::claim_for(&key)
            && self.claims.contains_key(&claim_key)
        {
            self.maybe_release(&claim_key);
            return;
        }
        let decided_at = tokio::time::Instant::now();
        let (revision, uid) = (t.revision, t.uid.clone());
        let department = w.department().to_owned();
        let group = w.group().map(|g| (department.clone(), g.to_owned()));
        let members = group.as_ref().map(|g| self.members(g, &key));
        let mut request = w.request();
        if let Some(members) = members {
            request = request.with_group_members(members);
        }
        if let Some(instance) = w.attach_to() {
            // Only a committed placement counts: one still in flight may
            // bounce and land elsewhere, and volumes never move.
            let ikey = super::apply::instance_key(w, instance);
            request = request.with_instance(
                self.objects.contains_key(&ikey),
                self.instances_at.get(&ikey).cloned(),
            );
        }
        let Some(decided) = self.cache.decide(&department, request) else {
            tracing::warn!(key, department, "department of a waiting object not found");
            self.parked.insert(key);
            return;
        };
        let fleet = self.cache.current_fleet();
        let explanation = decided.decision.explain(fleet, &decided.request);
        let chosen = decided
            .decision
            .chosen()
            .and_then(|i| fleet.candidates().get(i))
            .map(|c| c.name().to_owned());
        let placement = explanation.to_placement();
        if chosen.is_none() {
            let status = w.status();
            if status.phase == Phase::Unschedulable
                && status.placement.summary == placement.summary
                && status.placement.per_foundation == placement.per_foundation
            {
                // Nothing new to say: stay parked without a write.
                self.parked.insert(key);
                return;
            }
        }
        if chosen.is_none()
            && let Some(observer) = self.observer.get()
        {
            observer.unschedulable(unschedulable_reason(&decided.decision));
        }
        let (target, written) = match chosen {
            Some(f) => (Some(f), w.scheduled(placement)),
            None => (None, w.unschedulable(placement)),
        };
        let record = match written.encode() {
            Ok(r) => r,
            Err(error) => {
                tracing::error!(%error, key, "failed to encode a decided object");
                return;
            }
        };
        let charge = w.charge();
        let cancel = Arc::new(AtomicBool::new(false));
        let job = PlaceJob {
            key: key.clone(),
            revision,
            uid,
            department: department.clone(),
            charge,
            record,
            generation: target
                .as_deref()
                .and_then(|f| self.cache.generation(f))
                .unwrap_or_default(),
            cancel: cancel.clone(),
        };
        tracing::debug!(key, foundation = ?target, "decided");
        match &target {
            Some(f) => {
                self.cache.hold(f, &department, &charge);
                self.committers.send(Some(f), Job::Place(job));
            }
            None => self.committers.send(None, Job::Park(job)),
        }
        let held = target.is_some();
        self.in_flight.insert(
            key,
            InFlight {
                target,
                department,
                charge,
                revision,
                cancel,
                held,
                epoch: self.epoch,
                again: false,
                group,
                decided_at,
            },
        );
    }

    /// The foundations the group's other members are on, placed or in flight.
    fn members(&self, group: &(String, String), key: &str) -> Vec<String> {
        let placed = self
            .groups
            .get(group)
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(_, f)| f.clone());
        let in_flight = self
            .in_flight
            .values()
            .filter(|f| f.group.as_ref() == Some(group))
            .filter_map(|f| f.target.clone());
        placed.chain(in_flight).collect()
    }

    /// Acts on a committer's answer.
    pub(super) fn outcome(&mut self, outcome: Outcome) {
        let (key, how) = match outcome {
            Outcome::Allocation {
                foundation,
                revision,
                record,
            } => {
                if self.cache.set_allocation(&foundation, revision, record) == Some(true) {
                    self.retry_parked();
                }
                return;
            }
            Outcome::Adjusted {
                claim_key,
                object_key,
                answer,
            } => {
                self.adjusted(&claim_key, &object_key, answer);
                return;
            }
            Outcome::Released {
                claim_key,
                released,
            } => {
                self.releasing.remove(&claim_key);
                tracing::debug!(claim = claim_key, released, "release answered");
                return;
            }
            Outcome::Done { key, .. } => (key, How::Done),
            Outcome::Bounced { key, why, target } => {
                tracing::debug!(key, foundation = ?target, why, "placement bounced; deciding again");
                (key, How::Again)
            }
            Outcome::Stale { key, .. } => (key, How::Stale),
            Outcome::GaveUp { key, target } => {
                tracing::warn!(key, foundation = ?target, "placement did not settle; parked for a retry");
                (key, How::Park)
            }
        };
        let Some(f) = self.in_flight.remove(&key) else {
            return;
        };
        if let Some(observer) = self.observer.get() {
            let outcome = match (how, &f.target) {
                (How::Done, Some(_)) => PlacementOutcome::Scheduled,
                (How::Done, None) => PlacementOutcome::Unschedulable,
                (How::Again, _) => PlacementOutcome::Bounced,
                (How::Stale, _) => PlacementOutcome::Stale,
                (How::Park, _) => PlacementOutcome::GaveUp,
            };
            observer.decided(outcome, f.decided_at.elapsed());
        }
        if let Some(target) = &f.target {
            if f.held {
                self.cache.unhold(target, &f.department, &f.charge);
            }
            if !matches!(how, How::Done) {
                // The room this decision held is free again.
                self.retry_parked();
            }
        }
        let epoch_moved = f.epoch != self.epoch || f.again;
        let newer = self
            .objects
            .get(&key)
            .filter(|t| t.waiting.is_some())
            .map(|t| t.revision > f.revision);
        match (how, newer) {
            // Gone or placed meanwhile, or scheduled by this very job.
            (_, None) => {}
            (How::Done, _) if f.target.is_some() => {}
            (How::Again, Some(_)) => self.enqueue(&key),
            (How::Park, Some(_)) => {
                self.parked.insert(key);
            }
            // Written Unschedulable (the new version is ours), or moved by
            // someone else: decide the new version if anything changed since.
            (How::Done | How::Stale, Some(seen)) => {
                let again = epoch_moved || matches!(how, How::Stale);
                match (again, seen) {
                    (true, true) => self.enqueue(&key),
                    (true, false) => {
                        self.recheck.insert(key);
                    }
                    (false, true) => {
                        let pending = self
                            .objects
                            .get(&key)
                            .and_then(|t| t.waiting.as_ref())
                            .is_some_and(|w| w.status().phase == Phase::Pending);
                        if pending {
                            self.enqueue(&key);
                        } else {
                            self.parked.insert(key);
                        }
                    }
                    // The new version parks itself when it is seen.
                    (false, false) => {}
                }
            }
        }
    }
}

/// What to do with an answered decision.
#[derive(Debug, Clone, Copy)]
enum How {
    /// Written.
    Done,
    /// Decide again now.
    Again,
    /// The object moved; decide its new version.
    Stale,
    /// Retry later with the parked objects.
    Park,
}
