//! Group commit of placements, per foundation.
//!
//! A foundation's allocation key is hot: every placement on the foundation
//! must check and bump it. So decisions queue per foundation, and one
//! committer per foundation folds a batch of them into one transaction
//! guarded by the revisions of the foundation (its capacity), its
//! allocation key, the departments involved (their per-foundation quotas),
//! each object (still as decided) and each object's claim (absent). The
//! transaction writes every object `Scheduled` with its claim, and the new
//! allocation totals.
//!
//! Before writing, the committer checks every placement against what it
//! read, not what the decision saw: one that no longer fits goes back to be
//! decided again. On a failed guard it rereads and retries; objects that
//! moved meanwhile are dropped (the watch brings their new version).
//! Releases (claims of deleted objects) go through the same committer.
//!
//! Objects no foundation takes are written `Unschedulable` by one more
//! committer with no foundation, guarded by the objects' revisions only.
//!
//! Correctness does not rely on a committer being alone: several replicas
//! run committers for the same foundation against one shared store, and the
//! guards keep each foundation within capacity × allocation ratio.

mod committer;
mod plan;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::sync::{mpsc, oneshot};
use yunshu_core::{Result, resources::Resources, store::Revision, store::Store};

use crate::inventory::{AllocationRecord, ClaimRecord};

/// Tuning of the committers.
#[derive(Debug, Clone)]
pub(crate) struct CommitConfig {
    pub max_batch: usize,
    pub max_attempts: u32,
    pub unguarded: bool,
}

/// Write a decided object: `Scheduled` on a foundation (with its claim) or
/// `Unschedulable` (no foundation).
#[derive(Debug)]
pub(crate) struct PlaceJob {
    /// The object's key.
    pub key: String,
    /// The object's revision the decision was made on.
    pub revision: Revision,
    /// The object's uid.
    pub uid: String,
    /// Its department.
    pub department: String,
    /// What it charges.
    pub charge: Resources,
    /// The object as it is to be written.
    pub record: Vec<u8>,
    /// The foundation's spec generation the decision saw.
    pub generation: u64,
    /// Set when the object moved since the decision.
    pub cancel: Arc<AtomicBool>,
}

impl PlaceJob {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Return a deleted object's claim to its foundation.
#[derive(Debug)]
pub(crate) struct ReleaseJob {
    pub claim_key: String,
    pub claim_revision: Revision,
    pub claim: ClaimRecord,
    pub object_key: String,
    /// The object's revision when the release was asked for (0: absent).
    pub object_revision: Revision,
    /// The caller waiting, if any; otherwise the loop hears of it.
    pub reply: Option<oneshot::Sender<Result<bool>>>,
}

/// Move a placed object's claim to a new charge: a resize. Growth must
/// fit the foundation and the department's quota on it; shrinking always
/// fits.
#[derive(Debug)]
pub(crate) struct AdjustJob {
    pub claim_key: String,
    pub claim_revision: Revision,
    pub claim: ClaimRecord,
    /// What the claim is to hold.
    pub charge: Resources,
    pub object_key: String,
    /// The object's revision the new charge was read from.
    pub object_revision: Revision,
}

impl AdjustJob {
    /// Whether the new charge is more than the claim holds in some class.
    pub fn grows(&self) -> bool {
        !self.claim.charge.covers(&self.charge)
    }
}

/// A unit of work for a committer.
#[derive(Debug)]
pub(crate) enum Job {
    /// Schedule on the committer's foundation.
    Place(PlaceJob),
    /// Write `Unschedulable` (the foundation-less committer).
    Park(PlaceJob),
    /// Release a claim.
    Release(ReleaseJob),
    /// Change a claim's charge.
    Adjust(AdjustJob),
}

/// What a committer tells the loop.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Written: scheduled on `target`, or parked when `target` is `None`.
    Done { key: String, target: Option<String> },
    /// No longer fits (or the foundation changed): decide again.
    Bounced {
        key: String,
        target: Option<String>,
        why: String,
    },
    /// The object moved since the decision; its new version comes by watch.
    Stale { key: String, target: Option<String> },
    /// Retries ran out.
    GaveUp { key: String, target: Option<String> },
    /// A release the loop asked for finished.
    Released { claim_key: String, released: bool },
    /// A claim adjustment was answered: written, or why not.
    Adjusted {
        claim_key: String,
        object_key: String,
        answer: Adjusted,
    },
    /// The allocation as a committer last read or wrote it.
    Allocation {
        foundation: String,
        revision: Revision,
        record: AllocationRecord,
    },
}

/// How a claim adjustment fared.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Adjusted {
    /// The claim holds the new charge.
    Done,
    /// The claim or its object moved since; their new versions decide.
    Stale,
    /// The growth does not fit (or did not settle); try again when room frees.
    Refused(String),
}

/// The committers of one scheduler, one per target, started on first use.
#[derive(Debug)]
pub(crate) struct Committers {
    store: Arc<dyn Store>,
    config: CommitConfig,
    queues: Mutex<HashMap<Option<String>, mpsc::UnboundedSender<Job>>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

impl Committers {
    pub fn new(
        store: Arc<dyn Store>,
        mut config: CommitConfig,
        outcomes: mpsc::UnboundedSender<Outcome>,
    ) -> Self {
        // Each job adds up to three compares (object, claim, department) and
        // two writes; two compares guard the foundation and its allocation.
        let cap = store.capabilities().max_txn_ops.saturating_sub(2) / 3;
        config.max_batch = config.max_batch.clamp(1, cap.max(1));
        Self {
            store,
            config,
            queues: Mutex::new(HashMap::new()),
            outcomes,
        }
    }

    /// The batch size in force.
    pub fn max_batch(&self) -> usize {
        self.config.max_batch
    }

    /// Queues a job for `target`'s committer (`None`: the Unschedulable writer).
    pub fn send(&self, target: Option<&str>, job: Job) {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = target.map(str::to_owned);
        let job = match queues.get(&key) {
            Some(q) => match q.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let committer = committer::Committer::new(
            self.store.clone(),
            self.config.clone(),
            key.clone(),
            self.outcomes.clone(),
        );
        tokio::spawn(committer.run(rx));
        if tx.send(job).is_err() {
            tracing::error!(foundation = ?key, "committer stopped before its first job");
        }
        queues.insert(key, tx);
    }
}
