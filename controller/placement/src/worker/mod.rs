//! The scheduling loop of one replica: list, then watch everything under
//! `/yunshu/` from the list's revision (relisting after compaction); keep
//! the [`Cache`] and an index of the department resources; decide every
//! Pending object and hand the decision to its foundation's committer.
//!
//! Objects no foundation takes are written `Unschedulable` and parked; they
//! are decided again whenever a foundation, department or policy changes,
//! room is freed on a foundation, and every `retry_interval`. Claims of
//! deleted objects are released as the deletions are seen, and a sweep
//! every `sweep_interval` releases any the loop missed.
//!
//! A placed object's claim follows its size ([`Worker::maybe_adjust`]): it
//! holds the largest of the spec's charge, what the cloud was last made to
//! hold and what it is being resized to, so a resized instance grows its
//! claim before the cloud grows it, and shrinks it only after the cloud has
//! shrunk it.

mod apply;
mod dispatch;

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use yunshu_core::{
    ErrorKind, Result,
    keys::ROOT,
    resources::Resources,
    store::{Revision, Store, WatchStream},
};

use crate::{
    cache::Cache,
    commit::{Committers, Outcome},
    inventory::ClaimRecord,
    list::{list, load_cache, workload_prefixes},
    observe::ObserverSlot,
    scheduler::SchedulerConfig,
    workload::Workload,
};

/// The shortest time between two retries of every parked object.
const RETRY_COALESCE: Duration = Duration::from_millis(100);

/// A department resource as the loop knows it.
#[derive(Debug)]
struct Tracked {
    revision: Revision,
    uid: String,
    /// The object, kept while it waits for placement.
    waiting: Option<Workload>,
    /// Its sizes once placed (and not being deleted).
    placed: Option<Placed>,
}

/// What a placed object's claim must cover.
#[derive(Debug, Clone, Copy)]
struct Placed {
    /// The spec's charge.
    charge: Resources,
    /// What the cloud was last made to hold, if recorded.
    provisioned: Option<Resources>,
    /// The largest size the cloud was asked for since, if a resize is
    /// under way.
    resizing_to: Option<Resources>,
}

/// A decision handed to a committer and not answered yet.
#[derive(Debug)]
struct InFlight {
    /// The foundation; `None` for an Unschedulable write.
    target: Option<String>,
    department: String,
    charge: Resources,
    /// The object's revision the decision was made on.
    revision: Revision,
    cancel: Arc<AtomicBool>,
    /// Whether the cache still holds its charge.
    held: bool,
    /// The retry epoch when it was decided.
    epoch: u64,
    /// Decide again once answered: something it depended on changed (the
    /// instance a volume attaches to was placed or deleted).
    again: bool,
    group: Option<(String, String)>,
    /// When the decision started, for the latency the observer sees.
    decided_at: tokio::time::Instant,
}

/// Why the loop stopped following the watch.
enum Next {
    Stop,
    Relist,
}

pub(crate) struct Worker {
    store: Arc<dyn Store>,
    config: SchedulerConfig,
    committers: Arc<Committers>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    cache: Cache,
    objects: HashMap<String, Tracked>,
    claims: HashMap<String, (Revision, ClaimRecord)>,
    /// Placed members per (department, group): object key → foundation.
    groups: HashMap<(String, String), HashMap<String, String>>,
    /// The group each placed member is indexed under.
    group_of: HashMap<String, (String, String)>,
    /// Placed instances: object key → foundation, where the volumes
    /// attached to them must go.
    instances_at: HashMap<String, String>,
    /// Volumes decided while the instance they attach to was not placed,
    /// by the instance's key (registered at each such decision and each
    /// new version); decided again, and dropped, when it is placed or
    /// deleted.
    attach_waiters: HashMap<String, BTreeSet<String>>,
    /// The instance key each volume in `attach_waiters` waits under.
    waits_on: HashMap<String, String>,
    queue: VecDeque<String>,
    queued: HashSet<String>,
    parked: BTreeSet<String>,
    in_flight: HashMap<String, InFlight>,
    /// Objects to decide again once their next version is seen.
    recheck: HashSet<String>,
    releasing: HashSet<String>,
    /// Claims being adjusted: the claim's and the object's revisions the
    /// adjustment was based on.
    adjusting: HashMap<String, (Revision, Revision)>,
    /// Objects whose claim could not grow to their new size yet; tried
    /// again with the parked objects.
    blocked: BTreeSet<String>,
    /// Bumped whenever a retry of the parked objects is asked for.
    epoch: u64,
    retry_wanted: bool,
    next_retry: tokio::time::Instant,
    observer: ObserverSlot,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        config: SchedulerConfig,
        committers: Arc<Committers>,
        outcomes: mpsc::UnboundedReceiver<Outcome>,
        observer: ObserverSlot,
    ) -> Self {
        Self {
            store,
            config,
            committers,
            outcomes,
            cache: Cache::default(),
            objects: HashMap::new(),
            claims: HashMap::new(),
            groups: HashMap::new(),
            group_of: HashMap::new(),
            instances_at: HashMap::new(),
            attach_waiters: HashMap::new(),
            waits_on: HashMap::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            parked: BTreeSet::new(),
            in_flight: HashMap::new(),
            recheck: HashSet::new(),
            releasing: HashSet::new(),
            adjusting: HashMap::new(),
            blocked: BTreeSet::new(),
            epoch: 0,
            retry_wanted: false,
            next_retry: tokio::time::Instant::now(),
            observer,
        }
    }

    /// Runs until `stop` turns true (or its sender is dropped); gives the
    /// outcome channel back for the next run.
    pub async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
    ) -> mpsc::UnboundedReceiver<Outcome> {
        let mut failures = 0u32;
        while !*stop.borrow() {
            let stream = match self.relist().await {
                Ok(since) => self.store.watch(ROOT, since + 1).await,
                Err(e) => Err(e),
            };
            let next = match stream {
                Ok(stream) => {
                    failures = 0;
                    self.follow(stream, &mut stop).await
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "scheduler failed to list and watch; retrying");
                    let pause = self.config.watch_backoff * failures.min(10);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => Next::Relist,
                        changed = stop.changed() => match changed {
                            Ok(()) => Next::Relist,
                            Err(_) => Next::Stop,
                        },
                    }
                }
            };
            if matches!(next, Next::Stop) {
                break;
            }
        }
        tracing::info!("scheduler stopped");
        self.outcomes
    }

    /// Reads everything the loop keeps; returns the revision to watch after.
    async fn relist(&mut self) -> Result<Revision> {
        let (cache, mut since) = load_cache(&self.store).await?;
        self.cache = cache;
        for f in self.in_flight.values() {
            if let Some(target) = f.target.as_deref().filter(|_| f.held) {
                self.cache.hold(target, &f.department, &f.charge);
            }
        }
        self.objects.clear();
        self.claims.clear();
        self.groups.clear();
        self.group_of.clear();
        self.instances_at.clear();
        self.attach_waiters.clear();
        self.waits_on.clear();
        self.queue.clear();
        self.queued.clear();
        self.parked.clear();
        self.recheck.clear();
        self.blocked.clear();
        let mut listed = 0;
        for prefix in workload_prefixes() {
            let (kvs, revision) = list(&*self.store, &prefix).await?;
            since = since.min(revision);
            listed += kvs.len();
            for kv in &kvs {
                self.apply_workload(yunshu_core::store::EventKind::Put, kv);
            }
        }
        let (kvs, revision) = list(&*self.store, &crate::keys::claims()).await?;
        since = since.min(revision);
        for kv in &kvs {
            self.apply_claim(yunshu_core::store::EventKind::Put, kv);
        }
        self.sweep();
        tracing::info!(
            revision = since,
            objects = listed,
            claims = kvs.len(),
            foundations = self.cache.foundations.len(),
            waiting = self.queue.len() + self.parked.len(),
            "scheduler listed the store"
        );
        Ok(since)
    }

    async fn follow(&mut self, mut stream: WatchStream, stop: &mut watch::Receiver<bool>) -> Next {
        let mut retry = tokio::time::interval(self.config.retry_interval);
        let mut sweep = tokio::time::interval(self.config.sweep_interval);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Both fire at once; the list has just been read.
        retry.tick().await;
        sweep.tick().await;
        loop {
            let ready = self.can_dispatch();
            let retry_at = self.next_retry;
            let retry_wanted = self.retry_wanted;
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return Next::Stop;
                    }
                }
                event = stream.next() => match event {
                    Some(Ok(event)) => self.apply(event.kind, &event.kv),
                    Some(Err(error)) if error.kind() == ErrorKind::Compacted => {
                        tracing::info!(%error, "scheduler watch compacted; relisting");
                        return Next::Relist;
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "scheduler watch failed; relisting");
                        return Next::Relist;
                    }
                    None => {
                        tracing::warn!("scheduler watch ended; relisting");
                        return Next::Relist;
                    }
                },
                Some(outcome) = self.outcomes.recv() => self.outcome(outcome),
                _ = retry.tick() => self.retry_parked(),
                () = tokio::time::sleep_until(retry_at), if retry_wanted => self.requeue_parked(),
                _ = sweep.tick() => self.sweep(),
                () = std::future::ready(()), if ready => self.dispatch(),
            }
        }
    }
}
