//! What the state metrics are computed from: a view of the store kept
//! current by a watch, so a scrape reads memory, never the store.
//!
//! The view holds, per key, only what a metric needs — a foundation's
//! adapter, architecture, health, probe latency and capacity; a
//! department's quota; a department's charged usage; a foundation's
//! allocation; and per department resource its kind, phase, foundation and
//! age. Each entry keeps the revision it was read at, so replaying watch
//! events older than a list is harmless. A scrape aggregates the resources
//! in one pass (10,000 resources render in about 4 ms even unoptimized), and
//! the per-resource entries never become series: only the aggregates do.
//!
//! The watcher lists the prefixes it needs, then watches `/yunshu/` from
//! the revision read before the lists, and relists when the watch ends or
//! its history was compacted.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;
use yunshu_core::{
    ErrorKind, Result, codec,
    keys::{self, ROOT},
    meta::{Kind, ObjectMeta},
    model::{AdapterKind, Foundation, Health, Phase},
    resources::{Limits, Resources},
    store::{EventKind, KeyValue, RangeRequest, Revision, Store},
};
use yunshu_placement::{AllocationRecord, inventory::Inventory};

/// One foundation as the metrics see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FoundationView {
    /// `openstack`, `s3` or `remote`.
    pub adapter: &'static str,
    /// `x86_64`, `aarch64`, `mixed` (several arch traits) or `none`.
    pub arch: &'static str,
    /// Health as placement sees it (declared capacity counts as Ready).
    pub health: Health,
    /// The last probe's API latency, in seconds.
    pub probe_latency: Option<f64>,
    /// Capacity per class as placement sees it.
    pub inventory: Inventory,
}

/// One department resource as the metrics see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObjectView {
    /// Instance, Volume or Bucket.
    pub kind: Kind,
    /// Its phase.
    pub phase: Phase,
    /// Where it was placed.
    pub foundation: Option<Arc<str>>,
    /// Unix seconds since which it is on its way: creation, or the deletion
    /// request when it is being deleted.
    pub since: i64,
}

/// The view: every entry with the revision it was read at.
#[derive(Debug, Default)]
pub(crate) struct ViewState {
    /// Whether a first list has completed.
    pub synced: bool,
    /// Foundations by name.
    pub foundations: BTreeMap<String, (Revision, FoundationView)>,
    /// Department quotas (hard limits) by name.
    pub quotas: BTreeMap<String, (Revision, Limits)>,
    /// Charged usage by department.
    pub usage: BTreeMap<String, (Revision, Resources)>,
    /// Committed allocations by foundation.
    pub allocations: BTreeMap<String, (Revision, Resources)>,
    /// Department resources by key.
    pub objects: HashMap<String, (Revision, ObjectView)>,
    /// Interned foundation names of placed objects (bounded by the fleet).
    pub names: HashMap<String, Arc<str>>,
}

/// The shared view.
#[derive(Debug, Default)]
pub(crate) struct StoreView {
    state: Mutex<ViewState>,
}

impl StoreView {
    /// Runs `f` on the current state.
    pub fn read<R>(&self, f: impl FnOnce(&ViewState) -> R) -> R {
        f(&self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<R>(&self, f: impl FnOnce(&mut ViewState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    #[cfg(test)]
    pub fn replace_for_tests(&self, state: ViewState) {
        self.write(|s| *s = state);
    }

    /// Keeps the view current until `stop` turns true.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let view = self.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            while !*stop.borrow() {
                let next = match view.relist(&*store).await {
                    Ok(revision) => match store.watch(ROOT, revision + 1).await {
                        Ok(stream) => {
                            failures = 0;
                            view.follow(stream, &mut stop).await
                        }
                        Err(error) => Err(error),
                    },
                    Err(error) => Err(error),
                };
                match next {
                    Ok(()) => {}
                    Err(error) if error.kind() == ErrorKind::Compacted => {
                        tracing::info!(%error, "metrics watch compacted; relisting");
                    }
                    Err(error) => {
                        failures += 1;
                        tracing::warn!(%error, failures, "metrics view failed to list or watch; retrying");
                        let pause = Duration::from_millis(500) * failures.min(10);
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
            }
        })
    }

    /// Replaces the view with fresh lists; returns the revision to watch after.
    async fn relist(&self, store: &dyn Store) -> Result<Revision> {
        let revision = store.current_revision().await?;
        let mut fresh = ViewState::default();
        let prefixes = [
            keys::objects(Kind::Foundation, None),
            keys::objects(Kind::Department, None),
            keys::objects_of_kind(Kind::Instance),
            keys::objects_of_kind(Kind::Volume),
            keys::objects_of_kind(Kind::Bucket),
            format!("{ROOT}usage/"),
            yunshu_placement::keys::allocations(),
        ];
        for prefix in prefixes {
            let mut request = RangeRequest::prefix(prefix).with_limit(1000);
            loop {
                let page = store.range(request.clone()).await?;
                for kv in &page.kvs {
                    fresh.apply(EventKind::Put, kv);
                }
                match (page.more, page.kvs.last()) {
                    (true, Some(last)) => request = request.after(last.key.clone()),
                    _ => break,
                }
            }
        }
        fresh.synced = true;
        let objects = fresh.objects.len();
        self.write(|s| *s = fresh);
        tracing::debug!(revision, objects, "metrics view listed the store");
        Ok(revision)
    }

    /// Applies watch events until the stream ends (`Ok`) or fails.
    async fn follow(
        &self,
        mut stream: yunshu_core::store::WatchStream,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return Ok(());
                    }
                }
                event = stream.next() => match event {
                    Some(Ok(event)) => self.write(|s| s.apply(event.kind, &event.kv)),
                    Some(Err(error)) => return Err(error),
                    None => return Ok(()),
                },
            }
        }
    }
}

/// The parts of a department resource the view keeps.
#[derive(Deserialize)]
struct Slim {
    meta: ObjectMeta,
    #[serde(default)]
    status: SlimStatus,
}

#[derive(Default, Deserialize)]
struct SlimStatus {
    #[serde(default)]
    phase: Phase,
    #[serde(default)]
    placement: SlimPlacement,
}

#[derive(Default, Deserialize)]
struct SlimPlacement {
    #[serde(default)]
    foundation: Option<String>,
}

/// Upserts or removes `key` in `map`, unless the entry is newer than `revision`.
fn upsert<K, V>(map: &mut K, key: &str, revision: Revision, value: Option<V>)
where
    K: Entries<V>,
{
    if map.revision(key).is_some_and(|r| r >= revision) {
        return;
    }
    match value {
        Some(v) => map.put(key.to_owned(), (revision, v)),
        None => map.remove(key),
    }
}

/// The maps of the view, keyed by name or key.
trait Entries<V> {
    fn revision(&self, key: &str) -> Option<Revision>;
    fn put(&mut self, key: String, value: (Revision, V));
    fn remove(&mut self, key: &str);
}

impl<V> Entries<V> for BTreeMap<String, (Revision, V)> {
    fn revision(&self, key: &str) -> Option<Revision> {
        self.get(key).map(|(r, _)| *r)
    }
    fn put(&mut self, key: String, value: (Revision, V)) {
        self.insert(key, value);
    }
    fn remove(&mut self, key: &str) {
        BTreeMap::remove(self, key);
    }
}

impl<V> Entries<V> for HashMap<String, (Revision, V)> {
    fn revision(&self, key: &str) -> Option<Revision> {
        self.get(key).map(|(r, _)| *r)
    }
    fn put(&mut self, key: String, value: (Revision, V)) {
        self.insert(key, value);
    }
    fn remove(&mut self, key: &str) {
        HashMap::remove(self, key);
    }
}

/// A foundation's architecture label from its `arch:` traits.
fn arch_of(f: &Foundation) -> &'static str {
    let mut arches = f.spec.traits.iter().filter(|t| t.key() == "arch");
    match (arches.next(), arches.next()) {
        (None, _) => "none",
        (Some(_), Some(_)) => "mixed",
        (Some(t), None) => yunshu_core::traits::ARCHES
            .iter()
            .find(|a| t.value() == Some(**a))
            .copied()
            .unwrap_or("none"),
    }
}

impl ViewState {
    /// Applies one listed or watched key; keys the view does not keep are ignored.
    pub fn apply(&mut self, kind: EventKind, kv: &KeyValue) {
        let key = kv.key.as_str();
        let put = kind == EventKind::Put;
        let rev = kv.mod_revision;
        if let Some(name) = yunshu_placement::keys::admin_name(Kind::Foundation, key) {
            let view = put
                .then(|| decode_logged::<yunshu_core::model::FoundationSpec>(kv))
                .flatten()
                .map(|f| {
                    let (health, inventory) = yunshu_placement::inventory::observed(&f);
                    FoundationView {
                        adapter: match f.spec.adapter {
                            AdapterKind::Openstack => "openstack",
                            AdapterKind::S3 => "s3",
                            AdapterKind::Remote => "remote",
                        },
                        arch: arch_of(&f),
                        health,
                        probe_latency: f.status.api_latency_ms.map(|ms| ms / 1000.0),
                        inventory,
                    }
                });
            upsert(&mut self.foundations, name, rev, view);
        } else if let Some(name) = yunshu_placement::keys::admin_name(Kind::Department, key) {
            let limits = put
                .then(|| decode_logged::<yunshu_core::model::DepartmentSpec>(kv))
                .flatten()
                .map(|d| d.spec.quota.hard);
            upsert(&mut self.quotas, name, rev, limits);
        } else if let Some(object_kind) = yunshu_placement::keys::workload_kind(key) {
            let view = match put {
                false => None,
                true => match codec::decode::<Slim>(key, &kv.value) {
                    Ok(o) => Some(ObjectView {
                        kind: object_kind,
                        phase: o.status.phase,
                        foundation: o.status.placement.foundation.map(|f| self.intern(f)),
                        since: o
                            .meta
                            .deletion_timestamp
                            .unwrap_or(o.meta.creation_timestamp)
                            .timestamp(),
                    }),
                    Err(error) => {
                        tracing::warn!(%error, key, "metrics view skips an unreadable object");
                        None
                    }
                },
            };
            upsert(&mut self.objects, key, rev, view);
        } else if let Some(department) = key.strip_prefix(&format!("{ROOT}usage/")) {
            let usage = put
                .then(|| codec::decode::<yunshu_core::admission::UsageRecord>(key, &kv.value))
                .and_then(Result::ok)
                .map(|u| u.usage);
            upsert(&mut self.usage, department, rev, usage);
        } else if let Some(foundation) = key.strip_prefix(&yunshu_placement::keys::allocations()) {
            let used = put
                .then(|| codec::decode::<AllocationRecord>(key, &kv.value))
                .and_then(Result::ok)
                .map(|a| a.used);
            upsert(&mut self.allocations, foundation, rev, used);
        }
    }

    fn intern(&mut self, name: String) -> Arc<str> {
        if let Some(n) = self.names.get(&name) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(name.as_str());
        self.names.insert(name, n.clone());
        n
    }
}

fn decode_logged<S: yunshu_core::meta::Spec>(
    kv: &KeyValue,
) -> Option<yunshu_core::meta::Object<S>> {
    codec::decode_object(kv)
        .inspect_err(|error| {
            tracing::warn!(%error, key = %kv.key, "metrics view skips an unreadable object");
        })
        .ok()
}
