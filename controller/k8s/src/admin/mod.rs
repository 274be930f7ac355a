//! The reconciler of the admin kinds — Foundation, Department and
//! PlacementPolicy — written once over [`AdminCr`].
//!
//! Stages of one reconcile:
//! 1. a CR that did not deserialize is reported and left alone;
//! 2. a CR being deleted is finalized: deletion is requested in the store
//!    and the finalizer removed only once the store object is gone;
//! 3. otherwise the finalizer is ensured, the spec validated and converted
//!    (crds `TryFrom`), and written to the store if it changed ([`sync`]);
//! 4. the kind reads what its status needs besides the store object (a
//!    foundation's Secret, a department's usage) and builds the status
//!    ([`status`]);
//! 5. the status is applied if it changed, and transitions become events.

mod kinds;
pub mod status;
pub mod sync;

use std::{fmt::Debug, future::Future, sync::Arc};

use kube::{
    Api, Resource, ResourceExt,
    core::{ClusterResourceScope, DeserializeGuard},
    runtime::controller::Action,
};
use serde::{Serialize, de::DeserializeOwned};
use yunshu_core::{
    meta::{Object, Spec},
    store::Txn,
};
use yunshu_crds::{Condition, ConversionError};

use crate::{
    conditions::{self, Decided, Notice, SYNCED},
    context::Ctx,
    error::{Error, Result},
    kubeapi::{self, has_finalizer},
    names,
};

/// A cluster-scoped CR synced into the store.
pub trait AdminCr:
    Resource<DynamicType = (), Scope = ClusterResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The core spec it converts to.
    type Spec: Spec;
    /// Its CR status.
    type Status: Serialize + PartialEq + Debug + Send + Sync;

    /// The spec as the core model has it, or the field it refuses.
    fn core_spec(&self) -> Result<Self::Spec, ConversionError>;

    /// The CR's current status.
    fn status(&self) -> Option<&Self::Status>;

    /// The conditions of a status.
    fn conditions(status: &Self::Status) -> &[Condition];

    /// Reads what the status needs besides the store object and builds it.
    /// `synced` is the sync verdict, which the kind may turn into a failure
    /// (a foundation whose Secret is missing).
    fn observe<'a>(
        ctx: &'a Ctx,
        cr: &'a Self,
        stored: Option<&'a Object<Self::Spec>>,
        synced: Decided,
    ) -> impl Future<Output = Result<Self::Status>> + Send + 'a;

    /// Why the CR may not be deleted yet (`Err`), or the transaction its
    /// removal from the store extends (guards and deletes of its own).
    fn deletion<'a>(
        _ctx: &'a Ctx,
        _name: &'a str,
    ) -> impl Future<Output = Result<std::result::Result<Txn, String>>> + Send + 'a {
        async { Ok(Ok(Txn::new())) }
    }

    /// Clean-up once the store object is gone.
    fn cleanup<'a>(_ctx: &'a Ctx, _name: &'a str) -> impl Future<Output = Result<()>> + Send + 'a {
        async { Ok(()) }
    }
}

/// Reconciles one admin CR; see the module docs.
pub async fn reconcile<K: AdminCr>(
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
    let api: Api<DeserializeGuard<K>> = Api::all(ctx.client());
    if cr.meta().deletion_timestamp.is_some() {
        return finalize(&ctx, &api, cr, &name).await;
    }
    if !has_finalizer(cr.meta()) {
        kubeapi::add_finalizer(&api, cr.meta(), None).await?;
    }
    let (synced, stored, failure) = sync_spec(&ctx, cr, &name).await;
    let status = K::observe(&ctx, cr, stored.as_ref(), synced).await?;
    publish_status(&ctx, &api, cr, &name, &status).await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(Action::requeue(ctx.config().resync)),
    }
}

/// Validates, converts and syncs the spec: the `Synced` verdict, the store
/// object (the current one, even when the new spec was refused), and the
/// error to retry with, if the store failed.
async fn sync_spec<K: AdminCr>(
    ctx: &Ctx,
    cr: &K,
    name: &str,
) -> (Decided, Option<Object<K::Spec>>, Option<Error>) {
    let store = ctx.op.store.as_ref();
    let refused = |reason: &str, message: String| {
        Decided::fails(
            SYNCED,
            reason,
            format!("{message}; the store keeps the last valid spec"),
        )
    };
    if !names::is_dns_label(name) {
        let verdict = refused(
            "InvalidName",
            format!("metadata.name {}", names::DNS_LABEL_RULE),
        );
        return (verdict, None, None);
    }
    let spec = match cr.core_spec() {
        Ok(spec) => spec,
        Err(e) => {
            let stored = sync::read::<K::Spec>(store, name).await.ok().flatten();
            return (refused("InvalidSpec", e.to_string()), stored, None);
        }
    };
    let written = async {
        let existing = sync::read::<K::Spec>(store, name).await?;
        let plan = sync::plan(existing, name, cr.meta().uid.as_deref(), spec);
        let verb = plan.verb();
        let object = sync::apply(store, plan).await?;
        Ok::<_, yunshu_core::Error>((verb, object))
    };
    match written.await {
        Ok((verb, object)) => {
            if verb != "unchanged" {
                tracing::info!(kind = %K::kind(&()), name, verb, "synced into the store");
            }
            (status::synced(), Some(object), None)
        }
        Err(e) => {
            let verdict = Decided::fails(SYNCED, "SyncFailed", e.to_string());
            let error = Error::store(format!("sync {} {name} into the store", K::kind(&())), e);
            (verdict, None, Some(error))
        }
    }
}

/// Applies `status` if it differs from the CR's, then publishes the events
/// its transitions deserve.
async fn publish_status<K: AdminCr>(
    ctx: &Ctx,
    api: &Api<DeserializeGuard<K>>,
    cr: &K,
    name: &str,
    status: &K::Status,
) -> Result<()> {
    let previous = cr.status().map_or(&[][..], K::conditions);
    let notices = conditions::transitions(previous, K::conditions(status));
    if cr.status() != Some(status) {
        kubeapi::apply_status(ctx, api, name, status).await?;
    }
    let reference = cr.object_ref(&());
    for notice in &notices {
        ctx.notify(&reference, notice).await;
    }
    Ok(())
}

/// Deletion: request it in the store, remove the finalizer once the store
/// object is gone.
async fn finalize<K: AdminCr>(
    ctx: &Ctx,
    api: &Api<DeserializeGuard<K>>,
    cr: &K,
    name: &str,
) -> Result<Action> {
    if !has_finalizer(cr.meta()) {
        return Ok(Action::await_change());
    }
    let kind = K::kind(&());
    let base = match K::deletion(ctx, name).await? {
        Ok(base) => base,
        Err(why) => {
            let notice = Notice::warning("DeletionBlocked", why, "Delete");
            ctx.notify(&cr.object_ref(&()), &notice).await;
            return Ok(Action::requeue(ctx.config().poll_active * 6));
        }
    };
    let deletion = sync::request_deletion::<K::Spec>(ctx.op.store.as_ref(), name, base)
        .await
        .map_err(|e| Error::store(format!("delete {kind} {name} from the store"), e))?;
    match deletion {
        sync::Deletion::Gone => {
            K::cleanup(ctx, name).await?;
            kubeapi::remove_finalizer(api, cr.meta()).await?;
            tracing::info!(%kind, name, "removed from the store; finalizer removed");
            Ok(Action::await_change())
        }
        sync::Deletion::Marked => {
            let notice = Notice::normal(
                "DeletionRequested",
                format!("{kind} {name} is being deleted in Yunshu"),
                "Delete",
            );
            ctx.notify(&cr.object_ref(&()), &notice).await;
            Ok(Action::requeue(ctx.config().poll_active))
        }
        sync::Deletion::Waiting => Ok(Action::requeue(ctx.config().poll_active)),
    }
}
