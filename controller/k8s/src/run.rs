//! Wiring: the six controllers, the triggers that feed them, the error
//! policy, and [`run`] — leader election around the controllers.

use std::{fmt::Debug, future::Future, sync::Arc, time::Duration};

use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Resource,
    core::DeserializeGuard,
    runtime::{
        Controller,
        controller::{self, Action},
        reflector::{ObjectRef, Store as Reader},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use yunshu_core::{keys, meta::Kind, store::Store};
use yunshu_crds::{Bucket, Department, Foundation, Instance, PlacementPolicy, Volume};

use crate::{
    admin,
    context::{Ctx, OperatorContext},
    error::{Error, Result},
    leader::{LeaderElector, while_leader},
    workload,
};

/// Runs the operator until `shutdown` resolves.
///
/// With leader election on (the default), this replica campaigns for the
/// Lease `config.namespace/config.lease_name` and runs the reconcilers only
/// while it holds it; they stop within one renew deadline of losing it and
/// start again on the next win. On shutdown the Lease is released (so
/// another replica takes over at once) before this returns.
pub async fn run(ctx: OperatorContext, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
    let (stop, stopped) = watch::channel(false);
    let shared = Ctx::new(ctx.clone());
    let config = &ctx.config;
    // Held until the end: with no election the "leader" channel stays true.
    let (always, unelected) = watch::channel(true);
    let mut leader = if config.leader_election {
        LeaderElector::new(
            ctx.client.clone(),
            &config.namespace,
            &config.lease_name,
            &config.identity,
            config.lease_duration,
        )
        .run(until_true(stopped))
    } else {
        unelected
    };
    let singletons = while_leader(leader.clone(), || controllers(shared.clone()));
    tokio::select! {
        () = shutdown => tracing::info!("operator shutting down"),
        () = singletons => tracing::info!("operator loops ended"),
    }
    stop.send_replace(true);
    drop(always);
    // Wait (bounded) for the elector to release the Lease.
    let released = async { while leader.changed().await.is_ok() {} };
    if tokio::time::timeout(Duration::from_secs(5), released)
        .await
        .is_err()
    {
        tracing::warn!("the lease was not released in time");
    }
    Ok(())
}

async fn until_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// The six controllers, until dropped.
pub async fn controllers(ctx: Arc<Ctx>) {
    let client = ctx.client();
    let wc = watcher::Config::default();
    let settings = controller::Config::default().concurrency(16);
    let store = ctx.op.store.clone();

    let foundations = Controller::new(
        Api::<DeserializeGuard<Foundation>>::all(client.clone()),
        wc.clone(),
    );
    let reader = foundations.store();
    // One Secret watch per namespace the RBAC lets the operator read: a
    // cluster-wide watch would be forbidden where only those are granted.
    let namespaces = &ctx.config().secret_namespaces;
    let secret_apis: Vec<Api<Secret>> = if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    let mut foundations = foundations;
    for secrets in secret_apis {
        let reader = reader.clone();
        foundations = foundations.watches(secrets, wc.clone(), move |secret| {
            referencing(&reader, &secret)
        });
    }
    let foundations = foundations
        .reconcile_all_on(store_changes(
            store.clone(),
            vec![keys::objects_of_kind(Kind::Foundation)],
        ))
        .with_config(settings.clone())
        .run(admin::reconcile::<Foundation>, error_policy, ctx.clone());

    let departments = Controller::new(
        Api::<DeserializeGuard<Department>>::all(client.clone()),
        wc.clone(),
    )
    .reconcile_all_on(store_changes(
        store.clone(),
        vec![
            keys::objects_of_kind(Kind::Department),
            format!("{}usage/", keys::ROOT),
        ],
    ))
    .with_config(settings.clone())
    .run(admin::reconcile::<Department>, error_policy, ctx.clone());

    let policies = Controller::new(
        Api::<DeserializeGuard<PlacementPolicy>>::all(client.clone()),
        wc.clone(),
    )
    .reconcile_all_on(store_changes(
        store,
        vec![keys::objects_of_kind(Kind::PlacementPolicy)],
    ))
    .with_config(settings.clone())
    .run(
        admin::reconcile::<PlacementPolicy>,
        error_policy,
        ctx.clone(),
    );

    let instances = Controller::new(
        Api::<DeserializeGuard<Instance>>::all(client.clone()),
        wc.clone(),
    )
    .with_config(settings.clone())
    .run(workload::reconcile::<Instance>, error_policy, ctx.clone());
    let volumes = Controller::new(
        Api::<DeserializeGuard<Volume>>::all(client.clone()),
        wc.clone(),
    )
    .with_config(settings.clone())
    .run(workload::reconcile::<Volume>, error_policy, ctx.clone());
    let buckets = Controller::new(Api::<DeserializeGuard<Bucket>>::all(client), wc)
        .with_config(settings)
        .run(workload::reconcile::<Bucket>, error_policy, ctx.clone());

    futures::join!(
        drain(foundations, &ctx),
        drain(departments, &ctx),
        drain(policies, &ctx),
        drain(instances, &ctx),
        drain(volumes, &ctx),
        drain(buckets, &ctx),
    );
}

type Outcome<K> =
    std::result::Result<(ObjectRef<K>, Action), controller::Error<Error, watcher::Error>>;

/// Consumes a controller's outcomes: successes reset the object's backoff;
/// failures other than the reconciler's own (logged by the error policy)
/// are logged here.
async fn drain<K>(outcomes: impl Stream<Item = Outcome<K>>, ctx: &Ctx)
where
    K: Resource<DynamicType = ()> + kube::runtime::reflector::Lookup<DynamicType = ()>,
{
    outcomes
        .for_each(|outcome| async move {
            match outcome {
                Ok((object, _)) => ctx.succeeded(&object.to_string()),
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(error) => {
                    // A watch the RBAC forbids, a lost API server: counted
                    // like a failed reconcile, so ReconcileErrors fires.
                    if let Some(count) = &ctx.op.on_error {
                        count(yunshu_core::error::ErrorKind::Unavailable);
                    }
                    tracing::warn!(%error, "controller error");
                }
            }
        })
        .await;
}

/// Retries a failed reconcile with a per-object backoff (1 s doubling to 5 min).
fn error_policy<K>(object: Arc<DeserializeGuard<K>>, error: &Error, ctx: Arc<Ctx>) -> Action
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let key = ObjectRef::from_obj(&*object).to_string();
    let wait = ctx.backoff(&key);
    if let Some(count) = &ctx.op.on_error {
        count(error.kind());
    }
    tracing::warn!(%error, kind = error.kind().category(), object = %key, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

/// The Foundations whose credentials live in `secret`.
fn referencing(
    foundations: &Reader<DeserializeGuard<Foundation>>,
    secret: &Secret,
) -> Vec<ObjectRef<DeserializeGuard<Foundation>>> {
    let (Some(ns), Some(name)) = (&secret.metadata.namespace, &secret.metadata.name) else {
        return Vec::new();
    };
    foundations
        .state()
        .into_iter()
        .filter(|guard| {
            guard.0.as_ref().is_ok_and(|f| {
                f.spec
                    .credentials_secret_ref
                    .as_ref()
                    .is_some_and(|r| &r.namespace == ns && &r.name == name)
            })
        })
        .map(|guard| ObjectRef::from_obj(&*guard))
        .collect()
}

/// A trigger for every change under `prefixes` in the store, coalesced: a
/// burst of changes yields one item. After a watch failure the watch
/// restarts and one item is sent, since changes may have been missed.
fn store_changes(
    store: Arc<dyn Store>,
    prefixes: Vec<String>,
) -> impl Stream<Item = ()> + Send + 'static {
    let (tx, rx) = mpsc::channel::<()>(1);
    for prefix in prefixes {
        let store = store.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                match store.watch(&prefix, 0).await {
                    Ok(mut events) => loop {
                        tokio::select! {
                            () = tx.closed() => return,
                            event = events.next() => match event {
                                Some(Ok(_)) => { let _ = tx.try_send(()); }
                                Some(Err(error)) => {
                                    tracing::warn!(%error, prefix, "store watch failed; watching again");
                                    break;
                                }
                                None => break,
                            },
                        }
                    },
                    Err(error) => tracing::warn!(%error, prefix, "failed to watch the store"),
                }
                let _ = tx.try_send(());
                tokio::select! {
                    () = tx.closed() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }
    stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
    )
}
