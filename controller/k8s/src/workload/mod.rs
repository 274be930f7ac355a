//! The reconciler of department resources — Instance, Volume and Bucket CRs
//! in namespaces bound to a department — written once over [`WorkloadCr`].
//!
//! A CR is forwarded to admission as its department (GitOps): the request
//! id is derived from the CR's uid, so a retry after any failure is the same
//! request and never creates a second object. The department comes from the
//! namespace's `yunshu.io/department` label and is pinned on the CR (an
//! annotation, set together with the `yunshu.io/cleanup` finalizer) so a
//! relabelled namespace does not orphan objects; the pin counts only for
//! a CR the store holds in that department, so writing it by hand moves
//! nothing. The store object's status
//! (phase, placement, addresses, conditions) is mirrored to the CR; while
//! the phase moves by itself the CR is read again every
//! [`poll_active`](crate::OperatorConfig::poll_active).
//!
//! Deletion runs through the finalizer: the store object is released at
//! once when no Yunshu finalizer holds it (its charge returns to the
//! department), else marked for deletion; the CR's finalizer is removed
//! only once the store object is gone.

pub mod plan;

use std::{fmt::Debug, sync::Arc};

use chrono::Utc;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Resource, ResourceExt,
    core::{DeserializeGuard, NamespaceResourceScope},
    runtime::controller::Action,
};
use serde::{Serialize, de::DeserializeOwned};
use yunshu_core::{
    codec, keys,
    meta::{Kind, Object, Spec},
    model::{self as core, Charge},
    store::{Compare, Op, Store, Txn},
};
use yunshu_crds::{Bucket, ConversionError, DEPARTMENT_LABEL, Instance, Volume, WorkloadStatus};

use self::plan::{CatalogCheck, DeletionStep, Step};
use crate::{
    conditions::{self, Decided, Inputs, Notice, SYNCED},
    context::Ctx,
    error::{Error, Result},
    kubeapi::{self, DEPARTMENT_ANNOTATION, has_finalizer},
    names,
};

/// A namespaced department-resource CR.
pub trait WorkloadCr:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The core spec it converts to.
    type Spec: Spec<Status = core::WorkloadStatus> + Charge + CatalogCheck;

    /// The spec as the core model has it, or the field it refuses.
    fn core_spec(&self) -> Result<Self::Spec, ConversionError>;

    /// The CR's current status.
    fn status(&self) -> Option<&WorkloadStatus>;
}

macro_rules! workload_cr {
    ($cr:ty, $spec:ty) => {
        impl WorkloadCr for $cr {
            type Spec = $spec;

            fn core_spec(&self) -> Result<Self::Spec, ConversionError> {
                self.spec.clone().try_into()
            }

            fn status(&self) -> Option<&WorkloadStatus> {
                self.status.as_ref()
            }
        }
    };
}

workload_cr!(Instance, core::InstanceSpec);
workload_cr!(Volume, core::VolumeSpec);
workload_cr!(Bucket, core::BucketSpec);

/// What one reconcile decided: the `Synced` verdict, the store object to
/// mirror, and a transient error to retry with.
struct Outcome<S: Spec> {
    verdict: Decided,
    stored: Option<Object<S>>,
    failure: Option<Error>,
}

/// Reconciles one department-resource CR; see the module docs.
pub async fn reconcile<K: WorkloadCr>(
    guard: Arc<DeserializeGuard<K>>,
    ctx: Arc<Ctx>,
) -> Result<Action> {
    let cr = match &guard.0 {
        Ok(cr) => cr,
        Err(invalid) => {
            kubeapi::report_invalid::<K>(&ctx, invalid).await;
            return Ok(Action::await_change());
        }
    };
    let name = cr.name_any();
    let namespace = cr.namespace().unwrap_or_default();
    let uid = cr.uid().unwrap_or_default();
    let api: Api<DeserializeGuard<K>> = Api::namespaced(ctx.client(), &namespace);
    let pinned = plan::pinned(cr.annotations());
    let department =
        bound_department::<K>(&ctx, pinned.as_deref(), &namespace, &name, &uid).await?;
    if cr.meta().deletion_timestamp.is_some() {
        return finalize(&ctx, &api, cr, department.as_deref(), &uid).await;
    }
    let Some(department) = department else {
        let verdict = Decided::fails(
            SYNCED,
            "NoDepartment",
            format!("namespace {namespace} has no {DEPARTMENT_LABEL} label naming its department"),
        );
        publish_status(&ctx, &api, cr, None::<&Object<K::Spec>>, None, verdict).await?;
        return Ok(Action::requeue(ctx.config().poll_active * 6));
    };
    if pinned.as_deref() != Some(department.as_str()) || !has_finalizer(cr.meta()) {
        kubeapi::add_finalizer(&api, cr.meta(), Some((DEPARTMENT_ANNOTATION, &department))).await?;
    }
    let outcome = forward(&ctx, cr, &department, &namespace, &name, &uid).await?;
    let refused = outcome.verdict.status != yunshu_crds::ConditionStatus::True;
    let arch = arch_of(ctx.op.store.as_ref(), outcome.stored.as_ref()).await;
    publish_status(
        &ctx,
        &api,
        cr,
        outcome.stored.as_ref(),
        arch,
        outcome.verdict,
    )
    .await?;
    if let Some(e) = outcome.failure {
        return Err(e);
    }
    // A refusal may clear by itself (quota freed, department created):
    // look again soon; a moving phase sooner still.
    let moving = outcome
        .stored
        .as_ref()
        .is_some_and(|o| plan::is_moving(o.status.phase));
    Ok(Action::requeue(if moving {
        ctx.config().poll_active
    } else if refused {
        ctx.config().poll_active * 6
    } else {
        ctx.config().resync
    }))
}

/// The department a CR belongs to. The pin on the CR counts only when the
/// store holds this very CR (its uid) in the pinned department — that is,
/// when the operator admitted it there and wrote the pin; anyone who may
/// edit the CR can write the annotation, so a pin alone never chooses the
/// department. Otherwise the namespace's [`DEPARTMENT_LABEL`] decides (and
/// the pin is rewritten to it). `None`: the namespace names no department.
async fn bound_department<K: WorkloadCr>(
    ctx: &Ctx,
    pinned: Option<&str>,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<Option<String>> {
    if let Some(pinned) = pinned {
        let key = keys::object(<K::Spec as Spec>::KIND, Some(pinned), name);
        let stored = read::<K::Spec>(ctx.op.store.as_ref(), &key).await?;
        if stored.is_some_and(|o| o.meta.uid == uid) {
            return Ok(Some(pinned.to_owned()));
        }
    }
    let ns = Api::<Namespace>::all(ctx.client())
        .get_opt(namespace)
        .await
        .map_err(|e| Error::kube(format!("read namespace {namespace}"), e))?;
    Ok(ns.and_then(|n| plan::of_namespace(n.labels())))
}

/// Validates the CR and forwards it: admission for a new object, an update
/// for a changed spec.
async fn forward<K: WorkloadCr>(
    ctx: &Ctx,
    cr: &K,
    department: &str,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<Outcome<K::Spec>> {
    let store = ctx.op.store.as_ref();
    let kind = <K::Spec as Spec>::KIND;
    let key = keys::object(kind, Some(department), name);
    let existing = read::<K::Spec>(store, &key).await?;
    let spec = if names::is_dns_label(name) {
        cr.core_spec().map_err(|e| e.to_string()).and_then(|spec| {
            let broken = spec.check(&ctx.config().catalog);
            if broken.is_empty() {
                Ok(spec)
            } else {
                Err(broken.join("; "))
            }
        })
    } else {
        Err(format!("metadata.name {}", names::DNS_LABEL_RULE))
    };
    let spec = match spec {
        Ok(spec) => spec,
        Err(message) => {
            return Ok(Outcome {
                verdict: Decided::fails(SYNCED, "InvalidSpec", message),
                stored: existing.filter(|o| o.meta.uid == uid),
                failure: None,
            });
        }
    };
    // One message whatever this reconcile did, so the status does not flap.
    let admitted = || {
        Decided::holds(
            SYNCED,
            "Admitted",
            format!("{kind} {department}/{name} is in Yunshu"),
        )
    };
    Ok(
        match plan::plan(existing, department, namespace, name, uid, spec) {
            Step::Admit(object) => {
                let request_id = names::request_id(uid);
                match ctx.op.admission.create(&request_id, object).await {
                    Ok(created) => {
                        if created.created {
                            tracing::info!(%kind, department, name, %request_id, "admitted");
                        }
                        Outcome {
                            verdict: admitted(),
                            stored: Some(created.object),
                            failure: None,
                        }
                    }
                    Err(e) => failed(
                        e,
                        department,
                        None,
                        format!("admit {kind} {department}/{name}"),
                    ),
                }
            }
            Step::Update { old, new } => {
                let written = if old.spec.charge() == new.spec.charge() {
                    put_if_unchanged(store, &key, new).await
                } else {
                    ctx.op.admission.update(&old, new).await
                };
                match written {
                    Ok(object) => {
                        tracing::info!(%kind, department, name, "spec change forwarded");
                        Outcome {
                            verdict: admitted(),
                            stored: Some(object),
                            failure: None,
                        }
                    }
                    Err(e) if e.kind() == yunshu_core::ErrorKind::Conflict => Outcome {
                        verdict: Decided::fails(SYNCED, "SyncFailed", e.to_string()),
                        stored: Some(old),
                        failure: Some(Error::store(
                            format!("update {kind} {department}/{name}"),
                            e,
                        )),
                    },
                    Err(e) => failed(
                        e,
                        department,
                        Some(old),
                        format!("update {kind} {department}/{name}"),
                    ),
                }
            }
            Step::InSync(object) => Outcome {
                verdict: admitted(),
                stored: Some(object),
                failure: None,
            },
            Step::Refuse { stored, verdict } => Outcome {
                verdict,
                stored,
                failure: None,
            },
        },
    )
}

/// An admission failure: reported in the status when it needs a change by
/// someone, retried when it is transient.
fn failed<S: Spec>(
    e: yunshu_core::Error,
    department: &str,
    stored: Option<Object<S>>,
    action: String,
) -> Outcome<S> {
    match plan::admission_verdict(&e, department) {
        Some(verdict) => Outcome {
            verdict,
            stored,
            failure: None,
        },
        None => Outcome {
            verdict: Decided::fails(SYNCED, "SyncFailed", e.to_string()),
            stored,
            failure: Some(Error::store(action, e)),
        },
    }
}

/// Deletion through the finalizer; see the module docs.
async fn finalize<K: WorkloadCr>(
    ctx: &Ctx,
    api: &Api<DeserializeGuard<K>>,
    cr: &K,
    department: Option<&str>,
    uid: &str,
) -> Result<Action> {
    if !has_finalizer(cr.meta()) {
        return Ok(Action::await_change());
    }
    let name = cr.name_any();
    let kind = <K::Spec as Spec>::KIND;
    // Never admitted: nothing in Yunshu to clean up.
    let Some(department) = department else {
        kubeapi::remove_finalizer(api, cr.meta()).await?;
        return Ok(Action::await_change());
    };
    let store = ctx.op.store.as_ref();
    let key = keys::object(kind, Some(department), &name);
    let at = format!("{kind} {department}/{name}");
    let existing = read::<K::Spec>(store, &key).await?;
    let stored = match plan::deletion_step(existing, uid) {
        DeletionStep::RemoveFinalizer => {
            kubeapi::remove_finalizer(api, cr.meta()).await?;
            tracing::info!(%kind, department, name, "gone from the store; finalizer removed");
            return Ok(Action::await_change());
        }
        DeletionStep::Release(object) => {
            ctx.op
                .admission
                .release(&object)
                .await
                .map_err(|e| Error::store(format!("release {at}"), e))?;
            tracing::info!(%kind, department, name, "released");
            if read::<K::Spec>(store, &key).await?.is_none() {
                kubeapi::remove_finalizer(api, cr.meta()).await?;
                return Ok(Action::await_change());
            }
            return Ok(Action::requeue(ctx.config().poll_active));
        }
        DeletionStep::Mark(mut object) => {
            object.meta.deletion_timestamp = Some(Utc::now());
            object.status.phase = core::Phase::Deleting;
            let object = put_if_unchanged(store, &key, object)
                .await
                .map_err(|e| Error::store(format!("request deletion of {at}"), e))?;
            let notice = Notice::normal(
                "DeletionRequested",
                format!("{at} is being deleted in Yunshu"),
                "Delete",
            );
            ctx.notify(&cr.object_ref(&()), &notice).await;
            Some(object)
        }
        DeletionStep::Wait => read::<K::Spec>(store, &key).await?,
    };
    let arch = arch_of(store, stored.as_ref()).await;
    let verdict = Decided::holds(
        SYNCED,
        "Deleting",
        format!("{at} is being deleted in Yunshu"),
    );
    publish_status(ctx, api, cr, stored.as_ref(), arch, verdict).await?;
    Ok(Action::requeue(ctx.config().poll_active))
}

/// Builds the mirrored status, applies it if it changed and publishes the
/// events of its transitions.
async fn publish_status<K: WorkloadCr>(
    ctx: &Ctx,
    api: &Api<DeserializeGuard<K>>,
    cr: &K,
    stored: Option<&Object<K::Spec>>,
    arch: Option<String>,
    verdict: Decided,
) -> Result<()> {
    let previous = cr.status();
    let inputs = Inputs {
        synced: verdict,
        previous: previous.map_or(&[][..], |s| &s.conditions),
        previous_generation: previous.map_or(0, |s| s.observed_generation),
        generation: cr.meta().generation.unwrap_or(1),
        now: Utc::now(),
    };
    let status = plan::status(stored, arch, &inputs);
    let notices = conditions::transitions(inputs.previous, &status.conditions);
    if previous != Some(&status) {
        kubeapi::apply_status(ctx, api, &cr.name_any(), &status).await?;
    }
    let reference = cr.object_ref(&());
    for notice in &notices {
        ctx.notify(&reference, notice).await;
    }
    Ok(())
}

async fn read<S: Spec>(store: &dyn Store, key: &str) -> Result<Option<Object<S>>> {
    let kv = store
        .get(key)
        .await
        .map_err(|e| Error::store(format!("read {key}"), e))?;
    kv.map(|kv| codec::decode_object(&kv))
        .transpose()
        .map_err(|e| Error::store(format!("decode {key}"), e))
}

/// Writes `object` if the key is still at the revision it was read at.
async fn put_if_unchanged<S: Spec>(
    store: &dyn Store,
    key: &str,
    mut object: Object<S>,
) -> yunshu_core::Result<Object<S>> {
    let record = codec::encode(&object)?;
    let resp = store
        .txn(
            Txn::new()
                .when([Compare::unchanged(key, object.meta.revision)])
                .and_then([Op::put(key, record)]),
        )
        .await?;
    if !resp.succeeded {
        return Err(yunshu_core::Error::Conflict {
            message: format!("{key} changed since it was read"),
        });
    }
    object.meta.revision = resp.revision;
    Ok(object)
}

/// The architecture of the foundation the object was placed on, for the
/// status' `arch` column; `None` when unplaced or unknown.
async fn arch_of<S: Spec<Status = core::WorkloadStatus>>(
    store: &dyn Store,
    stored: Option<&Object<S>>,
) -> Option<String> {
    let foundation = stored?.status.placement.foundation.as_deref()?;
    let kv = store
        .get(&keys::object(Kind::Foundation, None, foundation))
        .await
        .ok()??;
    let object: Object<core::FoundationSpec> = codec::decode_object(&kv).ok()?;
    object
        .spec
        .traits
        .iter()
        .find(|t| t.key() == "arch")
        .and_then(|t| t.value().map(str::to_owned))
}
