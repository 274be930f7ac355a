//! The public handle: run the loop, explain, dry-run, release.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{mpsc, oneshot, watch};
use yunshu_core::{
    Error, ErrorKind, Result, codec,
    keys::{object, objects, objects_of_kind},
    meta::{Kind, condition_types},
    model::{Instance, Phase},
    store::{EventKind, Store},
};
use yunshu_scheduler::Request;

use crate::{
    cache::Cache,
    commit::{CommitConfig, Committers, Job, Outcome, ReleaseJob},
    inventory::ClaimRecord,
    keys,
    list::{list, load_cache},
    observe::{ObserverSlot, PlacementObserver},
    report::Report,
    worker::Worker,
    workload::Workload,
};

/// Tuning of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// The most jobs folded into one transaction (further capped by the
    /// store's transaction size limit).
    pub max_batch: usize,
    /// How many times a commit is retried after conflicts or store errors
    /// before its object is parked for a later retry.
    pub max_attempts: u32,
    /// The most decisions handed to committers and not answered yet.
    pub max_in_flight: usize,
    /// How often Unschedulable objects are decided again even if nothing
    /// they depend on was seen to change.
    pub retry_interval: Duration,
    /// How often claims are checked for objects that are gone.
    pub sweep_interval: Duration,
    /// The pause after a failed list or watch, growing with repeated failures.
    pub watch_backoff: Duration,
    /// Test-only: leave the allocation key's revision out of the guard. Exists
    /// so the invariant test can show that the guard is what keeps capacity.
    #[doc(hidden)]
    pub unguarded_allocations_for_tests: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_batch: 32,
            max_attempts: 100,
            max_in_flight: 512,
            retry_interval: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(60),
            watch_backoff: Duration::from_millis(500),
            unguarded_allocations_for_tests: false,
        }
    }
}

/// The scheduler of one replica: cheap to clone. [`Scheduler::run`] is the
/// loop; the other methods work whether or not it runs.
#[derive(Debug, Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    config: SchedulerConfig,
    committers: Arc<Committers>,
    outcomes: Mutex<Option<mpsc::UnboundedReceiver<Outcome>>>,
    observer: ObserverSlot,
}

impl Scheduler {
    /// A scheduler over `store`.
    pub fn new(store: Arc<dyn Store>, config: SchedulerConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let commit = CommitConfig {
            max_batch: config.max_batch,
            max_attempts: config.max_attempts,
            unguarded: config.unguarded_allocations_for_tests,
        };
        let committers = Arc::new(Committers::new(store.clone(), commit, tx));
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                committers,
                outcomes: Mutex::new(Some(rx)),
                observer: ObserverSlot::default(),
            }),
        }
    }

    /// The batch size in force.
    pub fn max_batch(&self) -> usize {
        self.inner.committers.max_batch()
    }

    /// Installs the observer the loop reports decisions to (see
    /// [`observe`](crate::observe)); it takes effect even if the loop already
    /// runs. Returns `false`, keeping the first, if one was installed before.
    pub fn set_observer(&self, observer: Arc<dyn PlacementObserver>) -> bool {
        self.inner.observer.set(observer)
    }

    /// Runs the scheduling loop until `stop` turns true (or its sender is
    /// dropped). Commits already handed to committers still finish. Fails if
    /// the loop is already running.
    pub async fn run(&self, stop: watch::Receiver<bool>) -> Result<()> {
        let outcomes = self
            .inner
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .ok_or_else(|| Error::internal("the scheduling loop is already running"))?;
        let worker = Worker::new(
            self.inner.store.clone(),
            self.inner.config.clone(),
            self.inner.committers.clone(),
            outcomes,
            self.inner.observer.clone(),
        );
        let outcomes = worker.run(stop).await;
        *self
            .inner
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(outcomes);
        Ok(())
    }

    /// The decision the scheduler would make now for `request` of
    /// `department`, without writing anything. An instance's group members,
    /// and the instance a volume attaches to, are looked up in the
    /// department. The department's overall quota is
    /// admission's business and is not checked.
    pub async fn dry_run(&self, department: &str, request: Request) -> Result<Report> {
        let store = &self.inner.store;
        let (mut cache, _) = load_cache(store).await?;
        let mut request = request;
        if let Some(group) = request.group.clone() {
            let prefix = objects(Kind::Instance, Some(department));
            let (kvs, _) = list(&**store, &prefix).await?;
            let members = kvs.iter().filter_map(|kv| {
                let o: Instance = codec::decode_object(kv).ok()?;
                (o.spec.group.as_ref()?.name == group.group.name).then_some(())?;
                o.status.placement.foundation
            });
            request = request.with_group_members(members.collect::<Vec<_>>());
        }
        if let Some(instance) = request.attach_to.as_ref().map(|a| a.instance.clone()) {
            let key = yunshu_core::keys::object(Kind::Instance, Some(department), &instance);
            let (exists, at) = match store.get(&key).await? {
                Some(kv) => {
                    let o: Instance = codec::decode_object(&kv)?;
                    let placed = !matches!(o.status.phase, Phase::Pending | Phase::Unschedulable);
                    (true, o.status.placement.foundation.filter(|_| placed))
                }
                None => (false, None),
            };
            request = request.with_instance(exists, at);
        }
        let decided = cache
            .decide(department, request)
            .ok_or_else(|| Error::not_found(format!("department {department}")))?;
        Ok(Report {
            decided_at: Some(chrono::Utc::now()),
            ..Report::from_decision(
                &decided.decision,
                cache.current_fleet(),
                &decided.request,
                decided.policy,
            )
        })
    }

    /// The decision kept on an instance, volume or bucket; `None` while it
    /// has not been decided yet.
    pub async fn explain(
        &self,
        kind: Kind,
        department: &str,
        name: &str,
    ) -> Result<Option<Report>> {
        let store = &self.inner.store;
        let key = object(kind, Some(department), name);
        let kv = store
            .get(&key)
            .await?
            .ok_or_else(|| Error::not_found(format!("{kind} {department}/{name}")))?;
        let w = Workload::decode(kind, &kv)?;
        let placement = &w.status().placement;
        if placement.summary.is_empty() {
            return Ok(None);
        }
        let mut cache = Cache::default();
        let (kvs, _) = list(&**store, &objects_of_kind(Kind::PlacementPolicy)).await?;
        for kv in &kvs {
            cache.apply(EventKind::Put, kv);
        }
        let (policy, spec) = cache.policy_for(department);
        let decided_at = w
            .status()
            .conditions
            .iter()
            .find(|c| c.type_ == condition_types::SCHEDULED)
            .map(|c| c.last_transition_time);
        Ok(Some(Report {
            decided_at,
            ..Report::from_kept(placement, policy, &spec.weights)
        }))
    }

    /// Returns the claim of the object at `object_key` to its foundation.
    /// The object must be gone, or be marked for deletion (a finalizer may
    /// release before the object is removed). Returns whether this call
    /// released it (`false`: there was no claim, or it was already released).
    ///
    /// The loop also releases the claims of objects it sees deleted, so
    /// calling this is only needed to release earlier, from a finalizer.
    pub async fn release(&self, object_key: &str) -> Result<bool> {
        let kind = keys::workload_kind(object_key)
            .ok_or_else(|| Error::invalid("key", "is not an instance, volume or bucket key"))?;
        let claim_key = keys::claim_for(object_key)
            .ok_or_else(|| Error::invalid("key", "is not an instance, volume or bucket key"))?;
        let store = &self.inner.store;
        for _ in 0..3 {
            let (claim, obj) = futures::join!(store.get(&claim_key), store.get(object_key));
            let Some(ckv) = claim? else {
                return Ok(false);
            };
            let claim: ClaimRecord = codec::decode(&ckv.key, &ckv.value)?;
            let object_revision = match obj? {
                None => 0,
                Some(kv) => {
                    let w = Workload::decode(kind, &kv)?;
                    if w.meta().uid == claim.uid && w.meta().deletion_timestamp.is_none() {
                        return Err(Error::Conflict {
                            message: format!("{object_key} still exists and is not being deleted"),
                        });
                    }
                    kv.mod_revision
                }
            };
            let (reply, answer) = oneshot::channel();
            let job = ReleaseJob {
                claim_key: claim_key.clone(),
                claim_revision: ckv.mod_revision,
                object_key: object_key.to_owned(),
                object_revision,
                reply: Some(reply),
                claim,
            };
            let foundation = job.claim.foundation.clone();
            self.inner
                .committers
                .send(Some(&foundation), Job::Release(job));
            match answer.await {
                Ok(Err(e)) if e.kind() == ErrorKind::Conflict => continue,
                Ok(answer) => return answer,
                Err(_) => {
                    return Err(Error::internal(
                        "placement committer stopped before answering",
                    ));
                }
            }
        }
        Err(Error::Conflict {
            message: format!("{object_key} kept changing while its claim was released"),
        })
    }
}
