//! The orphan and drift sweep: compares every driven foundation's
//! Yunshu-tagged resources with the objects in the store.
//!
//! - An **orphan** is a tagged cloud resource whose uid no object has (for
//!   example one created by hand with a copied tag, or left by a store
//!   restored from an old backup). Orphans are reported — a warning in the
//!   log, the `yunshu_orphans` gauge, and the foundation's `Orphans`
//!   condition listing them — and never deleted by the sweep: deleting a
//!   cloud resource is a decision for a person.
//! - **Drift** is a Ready object whose resource the cloud no longer has. It
//!   is reported on the object (`Synced` condition False, reason Missing).

use std::{collections::HashSet, sync::Arc, time::Duration};

use chrono::Utc;
use tokio::sync::watch;
use yunshu_core::{
    codec,
    error::Result,
    keys,
    meta::{Condition, ConditionStatus, Kind, condition_types, set_condition},
    model::{BucketSpec, FoundationSpec, InstanceSpec, Phase, VolumeSpec, WorkloadStatus},
    store::{KeyValue, Store, StoreExt},
};

use crate::{adapters::Registry, provisioner::mutate, reconcile::ReconcileMetrics};

/// The condition type that lists a foundation's orphans.
pub const ORPHANS: &str = "Orphans";

/// What one sweep found on one foundation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Cloud ids of tagged resources no object owns, per kind.
    pub orphans: Vec<(Kind, String)>,
    /// Keys and uids of Ready objects whose resource is gone.
    pub missing: Vec<(String, String)>,
}

/// The sweeper.
#[derive(Debug)]
pub struct Sweeper {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    interval: Duration,
    metrics: Arc<ReconcileMetrics>,
}

struct Owned {
    key: String,
    uid: String,
    foundation: Option<String>,
    phase: Phase,
}

fn owned(kind: Kind, kv: &KeyValue) -> Option<Owned> {
    fn of<S: yunshu_core::meta::Spec<Status = WorkloadStatus>>(kv: &KeyValue) -> Option<Owned> {
        let o = codec::decode_object::<S>(kv).ok()?;
        Some(Owned {
            key: kv.key.clone(),
            uid: o.meta.uid,
            foundation: o.status.placement.foundation,
            phase: o.status.phase,
        })
    }
    match kind {
        Kind::Instance => of::<InstanceSpec>(kv),
        Kind::Volume => of::<VolumeSpec>(kv),
        Kind::Bucket => of::<BucketSpec>(kv),
        _ => None,
    }
}

impl Sweeper {
    /// A sweeper that runs every `interval`.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        interval: Duration,
        metrics: Arc<ReconcileMetrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            registry,
            interval,
            metrics,
        })
    }

    /// Runs until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> Result<()> {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                _ = stop.changed() => return Ok(()),
            }
            if let Err(e) = self.sweep_all().await {
                self.metrics.error("sweeper", e.kind());
                tracing::warn!(error = %e, "sweep failed");
            }
        }
    }

    /// Sweeps every driven foundation once.
    pub async fn sweep_all(&self) -> Result<Vec<(String, SweepReport)>> {
        let mut out = Vec::new();
        for kv in self
            .store
            .range_all(&keys::objects_of_kind(Kind::Foundation), 500)
            .await?
        {
            let f = codec::decode_object::<FoundationSpec>(&kv)?;
            let Some(client) = self.registry.client(&f).await? else {
                continue;
            };
            let kinds = client.capabilities().kinds;
            if kinds.is_empty() {
                // A remote adapter not reached yet: nothing known, nothing
                // reported (an earlier report stands).
                continue;
            }
            let mut report = SweepReport::default();
            for kind in kinds {
                if !kind.is_namespaced() {
                    continue;
                }
                // Objects first: one created after the cloud listing
                // cannot then look missing.
                let objects: Vec<Owned> = self
                    .store
                    .range_all(&keys::objects_of_kind(kind), 500)
                    .await?
                    .iter()
                    .filter_map(|kv| owned(kind, kv))
                    .collect();
                let cloud = match client.list_owned(kind).await {
                    Ok(c) => c,
                    Err(e) => {
                        self.metrics.error("sweeper", e.kind());
                        tracing::warn!(foundation = %f.meta.name, %kind, error = %e, "cannot list owned resources");
                        continue;
                    }
                };
                let known: HashSet<&str> = objects.iter().map(|o| o.uid.as_str()).collect();
                let in_cloud: HashSet<&str> = cloud
                    .iter()
                    .filter_map(|r| r.owner_uid.as_deref())
                    .collect();
                let orphans: Vec<_> = cloud
                    .iter()
                    .filter(|r| r.owner_uid.as_deref().is_none_or(|u| !known.contains(u)))
                    .map(|r| (kind, r.id.clone()))
                    .collect();
                self.metrics.set_orphans(&f.meta.name, kind, orphans.len());
                for (_, id) in &orphans {
                    tracing::warn!(foundation = %f.meta.name, %kind, id, "orphaned cloud resource: tagged by Yunshu but no object owns it; not deleted");
                }
                report.orphans.extend(orphans);
                for o in &objects {
                    if o.phase == Phase::Ready
                        && o.foundation.as_deref() == Some(f.meta.name.as_str())
                        && !in_cloud.contains(o.uid.as_str())
                    {
                        report.missing.push((o.key.clone(), o.uid.clone()));
                    }
                }
            }
            self.record(&f.meta.name, &report).await?;
            out.push((f.meta.name.clone(), report));
        }
        Ok(out)
    }

    async fn record(&self, foundation: &str, report: &SweepReport) -> Result<()> {
        let message = if report.orphans.is_empty() {
            "no orphaned resources".to_owned()
        } else {
            let ids: Vec<String> = report
                .orphans
                .iter()
                .map(|(k, id)| format!("{} {id}", k.plural().trim_end_matches('s')))
                .collect();
            format!(
                "{} tagged resources have no object (not deleted; review and remove by hand): {}",
                ids.len(),
                ids.join(", ")
            )
        };
        let status = if report.orphans.is_empty() {
            ConditionStatus::False
        } else {
            ConditionStatus::True
        };
        mutate::<FoundationSpec>(
            &*self.store,
            &keys::object(Kind::Foundation, None, foundation),
            |f| {
                let same = f
                    .status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == ORPHANS && c.status == status && c.message == message);
                if same {
                    return false;
                }
                let generation = f.meta.generation;
                set_condition(
                    &mut f.status.conditions,
                    Condition {
                        type_: ORPHANS.into(),
                        status,
                        reason: if report.orphans.is_empty() {
                            "None"
                        } else {
                            "Found"
                        }
                        .into(),
                        message: message.clone(),
                        observed_generation: generation,
                        last_transition_time: Utc::now(),
                    },
                );
                true
            },
        )
        .await?;
        for (key, uid) in &report.missing {
            tracing::warn!(
                key,
                foundation,
                "drift: the cloud no longer has this Ready resource"
            );
            let message = format!("foundation {foundation} no longer has this resource");
            if key.contains("/instances/") {
                mark_missing::<InstanceSpec>(&*self.store, key, uid, &message).await?;
            } else if key.contains("/volumes/") {
                mark_missing::<VolumeSpec>(&*self.store, key, uid, &message).await?;
            } else {
                mark_missing::<BucketSpec>(&*self.store, key, uid, &message).await?;
            }
        }
        Ok(())
    }
}

/// Reports on the object at `key` that its resource is gone — only on the
/// object the sweep saw (`uid`, not one created since under the same name),
/// only while it is Ready, and only once.
async fn mark_missing<S: yunshu_core::meta::Spec<Status = WorkloadStatus>>(
    store: &dyn Store,
    key: &str,
    uid: &str,
    message: &str,
) -> Result<()> {
    mutate::<S>(store, key, |o| {
        let reported = o.status.conditions.iter().any(|c| {
            c.type_ == condition_types::SYNCED && c.reason == "Missing" && c.message == message
        });
        if o.meta.uid != uid || o.status.phase != Phase::Ready || reported {
            return false;
        }
        set_condition(
            &mut o.status.conditions,
            Condition {
                type_: condition_types::SYNCED.into(),
                status: ConditionStatus::False,
                reason: "Missing".into(),
                message: message.to_owned(),
                observed_generation: o.meta.generation,
                last_transition_time: Utc::now(),
            },
        );
        true
    })
    .await?;
    Ok(())
}
