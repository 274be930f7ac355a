//! Resizing placed instances, on the embedded store: a claim and its
//! foundation's allocation grow before the cloud does, and only as far as
//! the foundation has room; a growth that does not fit waits and goes
//! ahead once room is freed or added; a shrink is given back only once the
//! cloud has shrunk; a resize under way is covered whatever the spec says.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use tokio::sync::watch;
use yunshu_core::{
    admission::{Admission, AdmissionConfig},
    codec, keys,
    meta::Kind,
    model::{Charge, Instance, Phase},
    resources::ResourceClass,
    store::{Store, StoreExt},
};
use yunshu_placement::{ClaimRecord, Scheduler, SchedulerConfig, keys as pkeys};
use yunshu_store::EmbeddedStore;

const WAIT: Duration = Duration::from_secs(10);

/// The vCPUs of instance `name`'s claim.
async fn claimed(store: &dyn Store, name: &str) -> u64 {
    let key =
        pkeys::claim_for(&keys::object(Kind::Instance, Some("health"), name)).expect("claim key");
    let kv = store.get(&key).await.expect("get").expect("claimed");
    let claim: ClaimRecord = codec::decode(&kv.key, &kv.value).expect("decode");
    claim.charge.get(ResourceClass::Vcpu)
}

/// Waits until instance `name` claims `vcpu` on kunpeng, which then has
/// `used` vCPUs allocated, all to `health`.
async fn wait_claim(store: &dyn Store, name: &str, vcpu: u64, used: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (got, alloc) = (
            claimed(store, name).await,
            allocation(store, "kunpeng").await,
        );
        if got == vcpu && alloc.used.get(ResourceClass::Vcpu) == used {
            assert_eq!(alloc.department("health"), alloc.used, "{alloc:?}");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} claims {got} vCPUs (want {vcpu}); allocation {alloc:?} (want {used})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the provisioner writes once the cloud holds `i`'s spec: Ready,
/// with that size recorded.
async fn cloud_holds_spec(store: &dyn Store, name: &str) {
    let mut i: Instance = read_instance(store, "health", name).await.expect("stored");
    i.status.phase = Phase::Ready;
    i.status.provisioned = Some(i.spec.charge());
    let key = keys::object(Kind::Instance, Some("health"), name);
    store
        .put(&key, codec::encode(&i).expect("encode"))
        .await
        .expect("put");
}

/// What the API's ResizeInstance does: the new size through admission.
async fn resize(admission: &Admission, store: &dyn Store, name: &str, vcpu: u32) {
    let old: Instance = read_instance(store, "health", name).await.expect("stored");
    let mut new = old.clone();
    new.spec.vcpu = vcpu;
    new.spec.memory_mib = u64::from(vcpu) * 1024;
    new.meta.generation += 1;
    admission.update(&old, new).await.expect("admitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_follow_resizes_without_overcommitting() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory().expect("open"));
    put_foundation(
        &*store,
        "kunpeng",
        foundation(&["arch:aarch64"], 16, 1.0, 256),
    )
    .await;
    put_department(&*store, "health", department(&[], &[])).await;
    let admission = Admission::new(store.clone(), AdmissionConfig::default());
    let scheduler = Scheduler::new(store.clone(), SchedulerConfig::default());
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(async move { scheduler.run(rx).await.expect("loop runs once") });

    for (name, vcpu) in [("a", 4), ("b", 8)] {
        admission
            .create(&format!("req-{name}"), instance("health", name, vcpu, &[]))
            .await
            .expect("admitted");
        wait_phase(&store, "health", name, Phase::Scheduled, WAIT).await;
        cloud_holds_spec(&*store, name).await;
    }
    wait_claim(&*store, "b", 8, 12).await;

    // a grows from 4 to 8: its claim grows before the cloud does.
    resize(&admission, &*store, "a", 8).await;
    wait_claim(&*store, "a", 8, 16).await;
    cloud_holds_spec(&*store, "a").await;

    // b wants 12, but only its own 8 are free to it: it waits.
    resize(&admission, &*store, "b", 12).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_claim(&*store, "b", 8, 16).await;

    // a shrinks to 2: the foundation keeps a's 8 until the cloud has
    // shrunk it, then b's growth fits without being asked again.
    resize(&admission, &*store, "a", 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_claim(&*store, "a", 8, 16).await;
    cloud_holds_spec(&*store, "a").await;
    wait_claim(&*store, "a", 2, 14).await;
    wait_claim(&*store, "b", 12, 14).await;
    cloud_holds_spec(&*store, "b").await;

    // b wants 20 of a foundation of 16: it waits until the admin makes the
    // foundation 32, however long its committer has known it as 16.
    resize(&admission, &*store, "b", 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_claim(&*store, "b", 12, 14).await;
    put_foundation(
        &*store,
        "kunpeng",
        foundation(&["arch:aarch64"], 32, 1.0, 256),
    )
    .await;
    wait_claim(&*store, "b", 20, 22).await;
    cloud_holds_spec(&*store, "b").await;

    // While the cloud is being resized (to 6, say) its claim covers that
    // too, whatever the spec says meanwhile; then it goes back.
    let mut a: Instance = read_instance(&*store, "health", "a").await.expect("stored");
    a.status.resizing_to = Some(instance("health", "a", 6, &[]).spec.charge());
    let key = keys::object(Kind::Instance, Some("health"), "a");
    store
        .put(&key, codec::encode(&a).expect("encode"))
        .await
        .expect("put");
    wait_claim(&*store, "a", 6, 26).await;
    cloud_holds_spec(&*store, "a").await;
    a = read_instance(&*store, "health", "a").await.expect("stored");
    a.status.resizing_to = None;
    store
        .put(&key, codec::encode(&a).expect("encode"))
        .await
        .expect("put");
    wait_claim(&*store, "a", 2, 22).await;

    stop.send(true).expect("loop listening");
    tokio::time::timeout(WAIT, task)
        .await
        .expect("loop stops")
        .expect("loop task");
}
