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
//!    and its message says why.
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
//! placed on it stay Scheduled.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use chrono::Utc;
use futures::{StreamExt, future::BoxFuture};
use tokio::sync::{Semaphore, mpsc, watch};
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

/// What to do after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Nothing until the object changes.
    Done,
    /// Look again after a while.
    After(Duration),
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
        })
    }

    /// Runs until `stop` turns true: lists every department resource,
    /// watches for changes, and reconciles what needs it.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let queue = Arc::new(Queue {
            tx: tx.clone(),
            slots: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(self.config.workers.max(1))),
        });
        let dispatcher = {
            let (me, queue) = (self.clone(), queue.clone());
            tokio::spawn(async move {
                while let Some(key) = rx.recv().await {
                    queue.dispatch(&me, key);
                }
            })
        };
        let result = self.clone().follow(&tx, &mut stop).await;
        dispatcher.abort();
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

    async fn record_intent<S: Provisioned>(
        &self,
        key: &str,
        object: &Object<S>,
        foundation: &str,
    ) -> Result<Next> {
        if self.client(foundation).await?.is_none() {
            return Ok(Next::Done);
        }
        let uid = object.meta.uid.clone();
        let foundation = foundation.to_owned();
        mutate::<S>(&*self.store, key, |o| {
            if o.meta.uid != uid
                || o.status.phase != Phase::Scheduled
                || o.meta.deletion_timestamp.is_some()
            {
                return false;
            }
            if !o.meta.finalizers.iter().any(|f| f == FINALIZER) {
                o.meta.finalizers.push(FINALIZER.to_owned());
            }
            o.status.phase = Phase::Provisioning;
            o.status.message = format!("creating on {foundation}");
            let generation = o.meta.generation;
            set_condition(
                &mut o.status.conditions,
                condition(
                    condition_types::READY,
                    ConditionStatus::False,
                    "Provisioning",
                    format!("creating on foundation {foundation}"),
                    generation,
                ),
            );
            true
        })
        .await?;
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), Instant::now());
        Ok(Next::Done)
    }

    async fn ensure_tenant(&self, client: &FoundationClient, department: &str) -> Result<()> {
        let id = (client.name().to_owned(), department.to_owned());
        let mut tenants = self.tenants.lock().await;
        if tenants.contains_key(&id) {
            return Ok(());
        }
        let mapping = client.ensure_tenant(department, Priority::User).await?;
        let foundation = client.name().to_owned();
        let dkey = keys::object(Kind::Department, None, department);
        mutate::<DepartmentSpec>(&*self.store, &dkey, |d| {
            if d.status.tenants.get(&foundation) == Some(&mapping) {
                return false;
            }
            d.status.tenants.insert(foundation.clone(), mapping.clone());
            true
        })
        .await?;
        tenants.insert(id, ());
        Ok(())
    }

    fn poll_delay(&self, key: &str) -> Duration {
        let elapsed = self
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_insert_with(Instant::now)
            .elapsed();
        // Fast while a create usually finishes, slower for long ones.
        let step = if elapsed < Duration::from_secs(15) {
            self.config.poll_min
        } else if elapsed < Duration::from_secs(60) {
            self.config.poll_min * 4
        } else {
            self.config.poll_max
        };
        step.min(self.config.poll_max)
    }

    async fn wait_with_message<S: Provisioned>(
        &self,
        key: &str,
        uid: &str,
        message: String,
    ) -> Result<Next> {
        mutate::<S>(&*self.store, key, |o| {
            if o.meta.uid != uid || o.status.message == message {
                return false;
            }
            o.status.message = message.clone();
            true
        })
        .await?;
        Ok(Next::After(self.config.retry_after))
    }

    async fn provision<S: Provisioned>(
        &self,
        key: &str,
        object: Object<S>,
        foundation: &str,
    ) -> Result<Next> {
        let uid = object.meta.uid.clone();
        let Some(client) = self.client(foundation).await? else {
            return self
                .wait_with_message::<S>(
                    key,
                    &uid,
                    format!("waiting: foundation {foundation} has no adapter credentials"),
                )
                .await;
        };
        let owner = owner_of(&object);
        let result = match self.ensure_tenant(&client, &owner.department).await {
            Err(e) => Err(e),
            Ok(()) if object.status.cloud_id.is_none() => {
                S::create(&client, &owner, &object.spec).await
            }
            Ok(()) => client.get(S::KIND, &owner, Priority::User).await,
        };
        let resource = match result {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound && object.status.cloud_id.is_some() => {
                // The resource vanished while being created: create again.
                mutate::<S>(&*self.store, key, |o| {
                    o.meta.uid == uid && o.status.cloud_id.take().is_some()
                })
                .await?;
                return Ok(Next::After(self.config.poll_min));
            }
            Err(e) if waits(e.kind()) => {
                self.metrics.error("provisioner", e.kind());
                return self
                    .wait_with_message::<S>(
                        key,
                        &uid,
                        format!("waiting for foundation {foundation}: {e}"),
                    )
                    .await;
            }
            Err(e) => {
                self.metrics.error("provisioner", e.kind());
                let message = format!("foundation {foundation} refused the request: {e}");
                self.set_failed::<S>(key, &uid, None, message).await?;
                return Ok(Next::Done);
            }
        };
        if resource.failed {
            let message = if resource.message.is_empty() {
                format!(
                    "foundation {foundation} reports the resource as {}",
                    resource.status
                )
            } else {
                format!("foundation {foundation}: {}", resource.message)
            };
            self.set_failed::<S>(key, &uid, Some(resource.id.clone()), message)
                .await?;
            return Ok(Next::Done);
        }
        if resource.ready {
            let written = mutate::<S>(&*self.store, key, |o| {
                if o.meta.uid != uid || o.status.phase != Phase::Provisioning {
                    return false;
                }
                apply_resource(&mut o.status, &resource);
                o.status.phase = Phase::Ready;
                o.status.message = String::new();
                let generation = o.meta.generation;
                set_condition(
                    &mut o.status.conditions,
                    condition(
                        condition_types::READY,
                        ConditionStatus::True,
                        "Provisioned",
                        format!("{} on foundation {foundation}", resource.status),
                        generation,
                    ),
                );
                true
            })
            .await?;
            if let Some(started) = self
                .started
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(key)
            {
                tracing::info!(key, foundation, took = ?started.elapsed(), "provisioned");
            }
            // A Ready volume may have an attachment to make.
            return Ok(match written {
                Some(_) if S::KIND == Kind::Volume => Next::After(Duration::ZERO),
                _ => Next::Done,
            });
        }
        let status = resource.status.clone();
        mutate::<S>(&*self.store, key, |o| {
            let message = format!("{status} on foundation {foundation}");
            if o.meta.uid != uid
                || (o.status.cloud_id.as_deref() == Some(resource.id.as_str())
                    && o.status.message == message)
            {
                return false;
            }
            o.status.cloud_id = Some(resource.id.clone());
            o.status.message = message;
            true
        })
        .await?;
        Ok(Next::After(self.poll_delay(key)))
    }

    async fn set_failed<S: Provisioned>(
        &self,
        key: &str,
        uid: &str,
        cloud_id: Option<String>,
        message: String,
    ) -> Result<()> {
        tracing::warn!(key, message, "provisioning failed");
        mutate::<S>(&*self.store, key, |o| {
            if o.meta.uid != uid || o.status.phase == Phase::Failed {
                return false;
            }
            o.status.phase = Phase::Failed;
            if cloud_id.is_some() {
                o.status.cloud_id.clone_from(&cloud_id);
            }
            o.status.message = message.clone();
            let generation = o.meta.generation;
            set_condition(
                &mut o.status.conditions,
                condition(
                    condition_types::READY,
                    ConditionStatus::False,
                    "ProvisioningFailed",
                    message.clone(),
                    generation,
                ),
            );
            true
        })
        .await?;
        self.forget(key);
        Ok(())
    }

    /// Keeps a Ready resource as its spec says: an instance's power state,
    /// a volume's attachment.
    async fn maintain<S: Provisioned>(
        &self,
        key: &str,
        object: Object<S>,
        foundation: &str,
    ) -> Result<Next> {
        let Some(client) = self.client(foundation).await? else {
            return Ok(Next::Done);
        };
        let any: &dyn std::any::Any = &object;
        if let Some(instance) = any.downcast_ref::<Object<InstanceSpec>>() {
            return self.maintain_power(key, instance, &client).await;
        }
        if let Some(volume) = any.downcast_ref::<Object<VolumeSpec>>() {
            return self.maintain_attachment(key, volume, &client).await;
        }
        if let Some(bucket) = any.downcast_ref::<Object<BucketSpec>>() {
            return self.refresh_usage(key, bucket, &client).await;
        }
        Ok(Next::Done)
    }

    async fn maintain_power(
        &self,
        key: &str,
        o: &Object<InstanceSpec>,
        client: &FoundationClient,
    ) -> Result<Next> {
        let observed = o
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == condition_types::READY)
            .map_or(0, |c| c.observed_generation);
        if observed >= o.meta.generation {
            return Ok(Next::Done);
        }
        let owner = owner_of(o);
        let current = client.get(Kind::Instance, &owner, Priority::User).await?;
        let (want, action) = match o.spec.power {
            PowerState::Running => ("ACTIVE", InstanceAction::Start),
            PowerState::Stopped => ("SHUTOFF", InstanceAction::Stop),
        };
        if !current.status.eq_ignore_ascii_case(want) {
            if current.ready || current.status.eq_ignore_ascii_case("SHUTOFF") {
                client.instance_action(&owner, action).await?;
            }
            return Ok(Next::After(self.config.poll_min * 2));
        }
        let (uid, generation) = (o.meta.uid.clone(), o.meta.generation);
        mutate::<InstanceSpec>(&*self.store, key, |o| {
            if o.meta.uid != uid || o.meta.generation != generation {
                return false;
            }
            apply_resource(&mut o.status, &current);
            set_condition(
                &mut o.status.conditions,
                condition(
                    condition_types::READY,
                    ConditionStatus::True,
                    "Provisioned",
                    format!("{} on foundation {}", current.status, client.name()),
                    generation,
                ),
            );
            true
        })
        .await?;
        Ok(Next::Done)
    }

    /// Brings a bucket's usage in the status up to date (on every resync).
    async fn refresh_usage(
        &self,
        key: &str,
        b: &Object<BucketSpec>,
        client: &FoundationClient,
    ) -> Result<Next> {
        let current = client
            .get(Kind::Bucket, &owner_of(b), Priority::Background)
            .await?;
        let uid = b.meta.uid.clone();
        mutate::<BucketSpec>(&*self.store, key, |o| {
            let changed = (current.bytes_used.is_some()
                && o.status.used_bytes != current.bytes_used)
                || (current.objects_used.is_some()
                    && o.status.used_objects != current.objects_used);
            if o.meta.uid != uid || !changed {
                return false;
            }
            apply_resource(&mut o.status, &current);
            true
        })
        .await?;
        Ok(Next::Done)
    }

    async fn maintain_attachment(
        &self,
        key: &str,
        v: &Object<VolumeSpec>,
        client: &FoundationClient,
    ) -> Result<Next> {
        let Some(target) = &v.spec.attach_to else {
            return Ok(Next::Done);
        };
        let attached = v.status.conditions.iter().any(|c| {
            c.type_ == ATTACHED && c.status == ConditionStatus::True && c.message == *target
        });
        if attached {
            return Ok(Next::Done);
        }
        let department = v.meta.department.clone().unwrap_or_default();
        let ikey = keys::object(Kind::Instance, Some(&department), target);
        let instance = match self.store.get(&ikey).await? {
            Some(kv) => codec::decode_object::<InstanceSpec>(&kv)?,
            None => {
                return self
                    .wait_with_message::<VolumeSpec>(
                        key,
                        &v.meta.uid,
                        format!("waiting for instance {target} to exist"),
                    )
                    .await;
            }
        };
        if instance.status.phase != Phase::Ready
            || instance.status.placement.foundation.as_deref() != Some(client.name())
        {
            return self
                .wait_with_message::<VolumeSpec>(
                    key,
                    &v.meta.uid,
                    format!(
                        "waiting for instance {target} to be Ready on foundation {}",
                        client.name()
                    ),
                )
                .await;
        }
        client
            .attach_volume(&owner_of(v), &owner_of(&instance))
            .await?;
        let (uid, target) = (v.meta.uid.clone(), target.clone());
        mutate::<VolumeSpec>(&*self.store, key, |o| {
            if o.meta.uid != uid {
                return false;
            }
            o.status.message = String::new();
            let generation = o.meta.generation;
            set_condition(
                &mut o.status.conditions,
                condition(
                    ATTACHED,
                    ConditionStatus::True,
                    "Attached",
                    target.clone(),
                    generation,
                ),
            );
            true
        })
        .await?;
        Ok(Next::Done)
    }

    /// Deletion through the finalizer.
    async fn finalize<S: Provisioned>(&self, key: &str, object: Object<S>) -> Result<Next> {
        let ours = object.meta.finalizers.iter().any(|f| f == FINALIZER);
        if !ours {
            if object.meta.finalizers.is_empty() {
                self.release(key, &object).await?;
            }
            return Ok(Next::Done);
        }
        let uid = object.meta.uid.clone();
        if object.status.phase != Phase::Deleting {
            mutate::<S>(&*self.store, key, |o| {
                if o.meta.uid != uid || o.status.phase == Phase::Deleting {
                    return false;
                }
                o.status.phase = Phase::Deleting;
                true
            })
            .await?;
        }
        if let Some(foundation) = object.status.placement.foundation.clone() {
            let Some(client) = self.client(&foundation).await? else {
                return self
                    .wait_with_message::<S>(
                        key,
                        &uid,
                        format!(
                            "deleting: waiting for foundation {foundation}'s adapter credentials"
                        ),
                    )
                    .await;
            };
            let owner = owner_of(&object);
            if S::KIND == Kind::Volume {
                match client.detach_volume(&owner).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return self.deletion_wait::<S>(key, &uid, &foundation, &e).await,
                }
            }
            let purge = object
                .meta
                .labels
                .get(PURGE_LABEL)
                .is_some_and(|v| v == "true");
            if let Err(e) = client
                .delete(S::KIND, &owner, DeleteOptions { purge })
                .await
            {
                return self.deletion_wait::<S>(key, &uid, &foundation, &e).await;
            }
            match client.get(S::KIND, &owner, Priority::User).await {
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Ok(r) => {
                    let _ = self
                        .wait_with_message::<S>(
                            key,
                            &uid,
                            format!("deleting: {} on foundation {foundation}", r.status),
                        )
                        .await;
                    return Ok(Next::After(self.poll_delay(key)));
                }
                Err(e) => return self.deletion_wait::<S>(key, &uid, &foundation, &e).await,
            }
        }
        // The cloud resource is gone: return the charge and remove the object.
        let current = mutate::<S>(&*self.store, key, |_| false).await?;
        if let Some(current) = current
            && current.meta.uid == uid
        {
            self.release(key, &current).await?;
        }
        Ok(Next::Done)
    }

    async fn deletion_wait<S: Provisioned>(
        &self,
        key: &str,
        uid: &str,
        foundation: &str,
        e: &Error,
    ) -> Result<Next> {
        self.metrics.error("provisioner", e.kind());
        self.wait_with_message::<S>(
            key,
            uid,
            format!("deleting on foundation {foundation}: {e}"),
        )
        .await
    }

    async fn release<S: Provisioned>(&self, key: &str, object: &Object<S>) -> Result<()> {
        // A conflict (the object moved) comes back as an error and the
        // reconcile runs again on the new revision.
        self.admission.release(object).await?;
        tracing::info!(key, "deleted");
        self.forget(key);
        Ok(())
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

struct Queue {
    tx: mpsc::UnboundedSender<String>,
    slots: Mutex<HashMap<String, bool>>,
    permits: Arc<Semaphore>,
}

impl Queue {
    /// Starts a reconcile of `key`, or marks it to run again if one is
    /// running.
    fn dispatch(self: &Arc<Self>, p: &Arc<Provisioner>, key: String) {
        {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(dirty) = slots.get_mut(&key) {
                *dirty = true;
                return;
            }
            slots.insert(key.clone(), false);
        }
        let (queue, p) = (self.clone(), p.clone());
        tokio::spawn(async move {
            let Ok(_permit) = queue.permits.clone().acquire_owned().await else {
                return;
            };
            loop {
                let next = p.reconcile_key(&key).await;
                let again = {
                    let mut slots = queue.slots.lock().unwrap_or_else(PoisonError::into_inner);
                    match slots.get_mut(&key) {
                        Some(dirty) if *dirty => {
                            *dirty = false;
                            true
                        }
                        _ => {
                            slots.remove(&key);
                            false
                        }
                    }
                };
                if again {
                    continue;
                }
                if let Next::After(delay) = next {
                    let tx = queue.tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(key);
                    });
                }
                break;
            }
        });
    }
}
