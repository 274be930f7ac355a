//! The provisioner: turns Scheduled objects into cloud resources and
//! removes them again through a finalizer.
//!
//! For each instance, volume and bucket, in order:
//!
//! 1. **Scheduled → Provisioning.** Before anything is created on a cloud,
//!    one guarded write records the intent: the finalizer
//!    [`FINALIZER`] and phase Provisioning. From then on the object cannot
//!    disappear without the cloud resource being deleted first, and a crash
//!    at any later point resumes here.
//! 2. **Tenant.** `ensure_tenant` for the department on the chosen
//!    foundation (cached; the mapping is recorded in the department's
//!    status).
//! 3. **Create**, with the object's uid as idempotency key and ownership
//!    tag: the adapter finds a resource carrying the uid before it creates
//!    one, so a retry, a restart or a second replica never duplicates it.
//! 4. **Poll** with `get` until the cloud says ready (phase Ready, with
//!    addresses) or failed (phase Failed, with the cloud's fault message).
//!    While the foundation is unreachable the object waits in Provisioning
//!    and its message says why. Once Ready, the resource is kept as its
//!    spec says ([`maintain`]): an instance is resized once placement's
//!    claim covers the new size, then its power state follows; a volume's
//!    attachment follows `attach_to`.
//! 5. **Deletion.** An object with a deletion timestamp and the finalizer:
//!    the adapter deletes the resource (volumes are detached first), the
//!    provisioner polls until the cloud no longer has it, then admission
//!    removes the object and returns its charge to the department in one
//!    transaction; the placement loop sees the removal and returns the
//!    foundation's allocation.
//!
//! Work is keyed by object: one reconcile per object runs at a time, a
//! change seen while it runs makes it run again, and polls are delayed
//! requeues. A foundation without credentials has no adapter; objects
//! placed on it stay Scheduled. When the replica stops leading, its
//! reconciles end with the term ([`queue`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use chrono::Utc;
use futures::{StreamExt, future::BoxFuture};
use tokio::sync::{mpsc, watch};
use yunshu_core::{
    adapter::{CloudResource, DeleteOptions, InstanceAction, Owner},
    admission::Admission,
    codec,
    error::{Error, ErrorKind, Result},
    keys,
    meta::{Condition, ConditionStatus, Kind, Object, Spec, condition_types, set_condition},
    model::{
        BucketSpec, Charge, DepartmentSpec, Foundation, InstanceSpec, Phase, PowerState,
        VolumeSpec, WorkloadStatus,
    },
    store::{Compare, EventKind, Op, RangeRequest, Store, Txn},
};

use crate::{
    adapters::{FoundationClient, Priority, Registry},
    reconcile::ReconcileMetrics,
};

mod create;
mod delete;
mod maintain;
mod queue;

use self::queue::{Next, Queue};
use yunshu_placement::ClaimRecord;

/// The finalizer the provisioner puts on every object it provisions.
pub const FINALIZER: &str = "yunshu.io/provisioner";

pub use yunshu_core::model::PURGE_LABEL;

/// Condition type of a volume's attachment.
pub const ATTACHED: &str = "Attached";

/// Provisioner settings.
#[derive(Debug, Clone, Copy)]
pub struct ProvisionerConfig {
    /// Objects reconciled at once.
    pub workers: usize,
    /// The first poll interval while a resource is being created.
    pub poll_min: Duration,
    /// The longest poll interval.
    pub poll_max: Duration,
    /// How long to wait before trying an unavailable foundation again.
    pub retry_after: Duration,
    /// How often every unfinished object is looked at again anyway.
    pub resync: Duration,
}

impl Default for ProvisionerConfig {
    fn default() -> Self {
        Self {
            workers: 16,
            poll_min: Duration::from_millis(250),
            poll_max: Duration::from_secs(5),
            retry_after: Duration::from_secs(3),
            resync: Duration::from_secs(30),
        }
    }
}

/// The provisioner.
pub struct Provisioner {
    store: Arc<dyn Store>,
    admission: Admission,
    registry: Arc<Registry>,
    config: ProvisionerConfig,
    metrics: Arc<ReconcileMetrics>,
    tenants: tokio::sync::Mutex<HashMap<(String, String), ()>>,
    started: Mutex<HashMap<String, Instant>>,
    /// Resized instances whose claim did not cover the new size yet, and
    /// since when ([`maintain`]).
    resize_waits: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner").finish_non_exhaustive()
    }
}

/// A department resource the provisioner drives.
pub trait Provisioned: Spec<Status = WorkloadStatus> + Charge {
    /// Creates (or finds) the resource.
    fn create<'a>(
        client: &'a FoundationClient,
        owner: &'a Owner,
        spec: &'a Self,
    ) -> BoxFuture<'a, Result<CloudResource>>;
}

impl Provisioned for InstanceSpec {
    fn create<'a>(
        client: &'a FoundationClient,
        owner: &'a Owner,
        spec: &'a Self,
    ) -> BoxFuture<'a, Result<CloudResource>> {
        Box::pin(client.create_instance(owner, spec))
    }
}

impl Provisioned for VolumeSpec {
    fn create<'a>(
        client: &'a FoundationClient,
        owner: &'a Owner,
        spec: &'a Self,
    ) -> BoxFuture<'a, Result<CloudResource>> {
        Box::pin(client.create_volume(owner, spec))
    }
}

impl Provisioned for BucketSpec {
    fn create<'a>(
        client: &'a FoundationClient,
        owner: &'a Owner,
        spec: &'a Self,
    ) -> BoxFuture<'a, Result<CloudResource>> {
        Box::pin(client.create_bucket(owner, spec))
    }
}

/// The owner a cloud resource is tagged with.
pub fn owner_of<S: Spec>(o: &Object<S>) -> Owner {
    Owner {
        department: o.meta.department.clone().unwrap_or_default(),
        name: o.meta.name.clone(),
        uid: o.meta.uid.clone(),
    }
}

const KINDS: [Kind; 3] = [Kind::Instance, Kind::Volume, Kind::Bucket];

fn condition(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: String,
    generation: u64,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: Utc::now(),
    }
}

/// Marks a workload Ready: the cloud resource is up on `foundation`.
fn set_provisioned(
    status: &mut WorkloadStatus,
    resource: &CloudResource,
    foundation: &str,
    generation: u64,
) {
    apply_resource(status, resource);
    set_condition(
        &mut status.conditions,
        condition(
            condition_types::READY,
            ConditionStatus::True,
            "Provisioned",
            format!("{} on foundation {foundation}", resource.status),
            generation,
        ),
    );
}

/// Reads `key`, applies `change` and writes it back if it changed, guarded
/// by the revision read; retries on a concurrent change. `change` returns
/// false to write nothing. Returns the object as written (or as found),
/// `None` if it is gone.
pub async fn mutate<S: Spec>(
    store: &dyn Store,
    key: &str,
    mut change: impl FnMut(&mut Object<S>) -> bool,
) -> Result<Option<Object<S>>> {
    for _ in 0..8 {
        let Some(kv) = store.get(key).await? else {
            return Ok(None);
        };
        let mut object: Object<S> = codec::decode_object(&kv)?;
        if !change(&mut object) {
            return Ok(Some(object));
        }
        let record = codec::encode(&object)?;
        let resp = store
            .txn(
                Txn::new()
                    .when([Compare::unchanged(key, kv.mod_revision)])
                    .and_then([Op::put(key, record)]),
            )
            .await?;
        if resp.succeeded {
            object.meta.revision = resp.revision;
            return Ok(Some(object));
        }
    }
    Err(Error::Conflict {
        message: format!("{key} kept changing while it was being updated"),
    })
}

impl Provisioner {
    /// A provisioner over `store`, calling clouds through `registry`.
    pub fn new(
        store: Arc<dyn Store>,
        admission: Admission,
        registry: Arc<Registry>,
        config: ProvisionerConfig,
        metrics: Arc<ReconcileMetrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            admission,
            registry,
            config,
            metrics,
            tenants: tokio::sync::Mutex::new(HashMap::new()),
            started: Mutex::new(HashMap::new()),
            resize_waits: Mutex::new(HashMap::new()),
        })
    }

    /// Runs until `stop` turns true: lists every department resource,
    /// watches for changes, and reconciles what needs it.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let reconcile: queue::Reconcile = {
            let me = self.clone();
            Arc::new(move |key: String| {
                let me = me.clone();
                Box::pin(async move { me.reconcile_key(&key).await })
            })
        };
        let queue = Queue::new(tx.clone(), self.config.workers, reconcile);
        let dispatcher = {
            let queue = queue.clone();
            tokio::spawn(async move {
                while let Some(key) = rx.recv().await {
                    queue.dispatch(key);
                }
            })
        };
        let result = self.clone().follow(&tx, &mut stop).await;
        dispatcher.abort();
        // No reconcile outlives the term: another replica may lead now.
        queue.stop().await;
        result
    }

    async fn follow(
        self: Arc<Self>,
        tx: &mpsc::UnboundedSender<String>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let prefix = format!("{}objects/", keys::ROOT);
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let revision = match self.enqueue_all(tx).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "provisioner cannot list objects; retrying");
                    self.metrics.error("provisioner", e.kind());
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.retry_after) => continue,
                        _ = stop.changed() => return Ok(()),
                    }
                }
            };
            let mut events = match self.store.watch(&prefix, revision + 1).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "provisioner cannot watch; relisting");
                    tokio::time::sleep(self.config.retry_after).await;
                    continue;
                }
            };
            let mut resync = tokio::time::interval(self.config.resync);
            resync.tick().await;
            loop {
                tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    _ = resync.tick() => {
                        if let Err(e) = self.enqueue_all(tx).await {
                            tracing::warn!(error = %e, "provisioner resync failed");
                        }
                    }
                    event = events.next() => match event {
                        Some(Ok(e)) => {
                            if e.kind == EventKind::Put && is_workload_key(&e.kv.key) {
                                let _ = tx.send(e.kv.key.clone());
                            } else if e.kind == EventKind::Delete {
                                self.forget(&e.kv.key);
                            }
                        }
                        Some(Err(e)) => {
                            tracing::info!(error = %e, "provisioner watch ended; relisting");
                            break;
                        }
                        None => break,
                    },
                }
            }
        }
    }

    fn forget(&self, key: &str) {
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        self.resize_waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Queues every unfinished object; returns the listing's revision.
    async fn enqueue_all(&self, tx: &mpsc::UnboundedSender<String>) -> Result<i64> {
        let mut since = i64::MAX;
        for kind in KINDS {
            let mut request = RangeRequest::prefix(keys::objects_of_kind(kind)).with_limit(500);
            loop {
                let resp = self.store.range(request.clone()).await?;
                since = since.min(resp.revision);
                for kv in &resp.kvs {
                    if needs_work(&kv.value) {
                        let _ = tx.send(kv.key.clone());
                    }
                }
                match (resp.more, resp.kvs.last()) {
                    (true, Some(last)) => request = request.after(last.key.clone()),
                    _ => break,
                }
            }
        }
        Ok(if since == i64::MAX { 0 } else { since })
    }

    async fn reconcile_key(&self, key: &str) -> Next {
        let kind = if key.contains("/objects/instances/") {
            Kind::Instance
        } else if key.contains("/objects/volumes/") {
            Kind::Volume
        } else {
            Kind::Bucket
        };
        let result = match kind {
            Kind::Instance => self.reconcile::<InstanceSpec>(key).await,
            Kind::Volume => self.reconcile::<VolumeSpec>(key).await,
            _ => self.reconcile::<BucketSpec>(key).await,
        };
        match result {
            Ok(next) => next,
            Err(e) => {
                self.metrics.error("provisioner", e.kind());
                tracing::warn!(key, error = %e, "reconcile failed; will retry");
                Next::After(self.config.retry_after)
            }
        }
    }

    async fn reconcile<S: Provisioned>(&self, key: &str) -> Result<Next> {
        let Some(kv) = self.store.get(key).await? else {
            self.forget(key);
            return Ok(Next::Done);
        };
        let object: Object<S> = codec::decode_object(&kv)?;
        if object.meta.deletion_timestamp.is_some() {
            return self.finalize(key, object).await;
        }
        let Some(foundation) = object.status.placement.foundation.clone() else {
            return Ok(Next::Done);
        };
        match object.status.phase {
            Phase::Scheduled => self.record_intent(key, &object, &foundation).await,
            Phase::Provisioning => self.provision(key, object, &foundation).await,
            Phase::Ready => self.maintain(key, object, &foundation).await,
            _ => Ok(Next::Done),
        }
    }

    async fn client(&self, foundation: &str) -> Result<Option<FoundationClient>> {
        let key = keys::object(Kind::Foundation, None, foundation);
        let Some(kv) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let f: Foundation = codec::decode_object(&kv)?;
        self.registry.client(&f).await
    }
}

/// Errors that mean "try again later" rather than "this request is wrong".
fn waits(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Unavailable
            | ErrorKind::Throttled
            | ErrorKind::Conflict
            | ErrorKind::Unauthorized
    )
}

fn apply_resource(status: &mut WorkloadStatus, r: &CloudResource) {
    status.cloud_id = Some(r.id.clone());
    status.addresses.clone_from(&r.addresses);
    if r.bytes_used.is_some() {
        status.used_bytes = r.bytes_used;
    }
    if r.objects_used.is_some() {
        status.used_objects = r.objects_used;
    }
}

fn is_workload_key(key: &str) -> bool {
    KINDS
        .iter()
        .any(|k| key.starts_with(&keys::objects_of_kind(*k)))
}

/// Whether a stored object may need the provisioner: it is placed and not
/// finished, or it is being deleted.
fn needs_work(value: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Peek {
        meta: PeekMeta,
        #[serde(default)]
        status: PeekStatus,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct PeekMeta {
        #[serde(default)]
        deletion_timestamp: Option<serde_json::Value>,
    }
    #[derive(serde::Deserialize, Default)]
    struct PeekStatus {
        #[serde(default)]
        phase: Phase,
    }
    let Ok(p) = codec::decode::<Peek>("", value) else {
        return true;
    };
    p.meta.deletion_timestamp.is_some()
        || matches!(
            p.status.phase,
            Phase::Scheduled | Phase::Provisioning | Phase::Deleting | Phase::Ready
        )
}
