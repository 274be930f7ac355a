//! Deletion of a department resource through the `yunshu.io/cleanup`
//! finalizer: the CR is admitted into the store as its namespace's
//! department; deleting it requests deletion in Yunshu, and the finalizer
//! is removed only once the store object is gone.

mod common;

use serde_json::{Value, json};
use yunshu_core::{
    admission::{Admission, AdmissionConfig},
    meta::Kind,
    model::{InstanceSpec, Phase},
    store::Store,
};
use yunshu_k8s::context::Ctx;

use common::fake_api::FakeApi;

const INSTANCE: &str = "/apis/yunshu.io/v1alpha1/namespaces/health/instances/web-1";
const DEPARTMENT: &str = "/apis/yunshu.io/v1alpha1/departments/health";

fn seed(fake: &FakeApi) {
    seed_with(fake, json!({}));
}

/// The health namespace and department, and web-1 in it carrying
/// `annotations`.
fn seed_with(fake: &FakeApi, annotations: Value) {
    fake.create(
        "/api/v1/namespaces",
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": "health", "labels": { "yunshu.io/department": "health" } },
        }),
    );
    fake.create(
        "/apis/yunshu.io/v1alpha1/departments",
        json!({
            "apiVersion": "yunshu.io/v1alpha1", "kind": "Department",
            "metadata": { "name": "health" },
            "spec": {
                "displayName": "Health Commission",
                "quota": { "hard": { "vcpu": 48, "memory_mib": 98304 } },
            },
        }),
    );
    fake.create(
        "/apis/yunshu.io/v1alpha1/namespaces/health/instances",
        json!({
            "apiVersion": "yunshu.io/v1alpha1", "kind": "Instance",
            "metadata": { "name": "web-1", "namespace": "health", "annotations": annotations },
            "spec": { "vcpu": 4, "memoryMib": 8192, "diskGib": 40, "image": "kylin-v10" },
        }),
    );
}

async fn instance(store: &dyn Store) -> Option<yunshu_core::meta::Object<InstanceSpec>> {
    common::stored::<InstanceSpec>(store, Kind::Instance, Some("health"), "web-1").await
}

async fn admitted(
    fake: &FakeApi,
    store: &dyn Store,
) -> (Value, yunshu_core::meta::Object<InstanceSpec>) {
    let object = common::eventually(10, "web-1 admitted", || instance(store)).await;
    let cr = common::eventually(10, "web-1 mirrored", || async {
        let cr = fake.get(INSTANCE)?;
        (common::condition(&cr, "Synced")?["reason"] == "Admitted").then_some(cr)
    })
    .await;
    (cr, object)
}

async fn usage(fake: &FakeApi, vcpu: u64) {
    common::eventually(10, "the department's usage", || async {
        (fake.get(DEPARTMENT)?["status"]["usage"]["vcpu"] == vcpu).then_some(())
    })
    .await;
}

/// Deletes the CR; it goes, with its store object and charge.
async fn deleted_with_its_store_object(fake: &FakeApi, store: &dyn Store) {
    fake.delete(INSTANCE);
    common::eventually(10, "the CR to be gone", || async {
        fake.get(INSTANCE).is_none().then_some(())
    })
    .await;
    assert!(
        instance(store).await.is_none(),
        "the store object outlived its CR"
    );
    usage(fake, 0).await;
}

fn finalizer_patches(fake: &FakeApi) -> Vec<Value> {
    fake.calls()
        .into_iter()
        .filter(|c| c.method == http::Method::PATCH && c.path == INSTANCE)
        .map(|c| c.body["metadata"]["finalizers"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_finalizer_goes_only_after_the_store_object_is_gone() {
    let fake = FakeApi::new();
    let store = common::store();
    seed(&fake);
    let ctx = Ctx::new(common::context(fake.client(), store.clone()));
    let operator = tokio::spawn(yunshu_k8s::controllers(ctx));

    let (cr, mut object) = admitted(&fake, store.as_ref()).await;
    let uid = cr["metadata"]["uid"].as_str().expect("uid");
    assert_eq!(object.meta.uid, uid);
    assert_eq!(
        object.meta.request_id.as_deref(),
        Some(format!("k8s-{uid}").as_str())
    );
    assert_eq!(cr["metadata"]["finalizers"], json!(["yunshu.io/cleanup"]));
    assert_eq!(
        cr["metadata"]["annotations"]["yunshu.io/department"],
        "health"
    );
    assert_eq!(cr["status"]["phase"], "Pending");
    usage(&fake, 4).await;

    // A Yunshu loop (the provisioner) holds the object with its own finalizer.
    object.meta.finalizers.push("yunshu.io/provisioner".into());
    common::write(store.as_ref(), &object).await;

    fake.delete(INSTANCE);
    let marked = common::eventually(10, "deletion requested in the store", || async {
        instance(store.as_ref())
            .await
            .filter(|o| o.meta.deletion_timestamp.is_some())
    })
    .await;
    assert_eq!(marked.status.phase, Phase::Deleting);
    common::eventually(10, "the CR mirroring Deleting", || async {
        (fake.get(INSTANCE)?["status"]["phase"] == "Deleting").then_some(())
    })
    .await;
    // Many reconciles later the CR is still held: the store object is there.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let cr = fake
        .get(INSTANCE)
        .expect("the CR waits for the store object");
    assert_eq!(cr["metadata"]["finalizers"], json!(["yunshu.io/cleanup"]));
    assert!(
        finalizer_patches(&fake)
            .iter()
            .all(|f| *f == json!(["yunshu.io/cleanup"])),
        "the finalizer was touched while the store object existed: {:?}",
        finalizer_patches(&fake)
    );

    // The provisioner finishes: the object leaves the store, its charge returns.
    let admission = Admission::new(store.clone(), AdmissionConfig::default());
    admission.release(&marked).await.expect("released");
    common::eventually(10, "the CR to be gone", || async {
        fake.get(INSTANCE).is_none().then_some(())
    })
    .await;
    assert_eq!(finalizer_patches(&fake).last(), Some(&json!([])));
    usage(&fake, 0).await;

    operator.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_no_yunshu_loop_holds_is_released_at_once() {
    let fake = FakeApi::new();
    let store = common::store();
    seed(&fake);
    let ctx = Ctx::new(common::context(fake.client(), store.clone()));
    let operator = tokio::spawn(yunshu_k8s::controllers(ctx));
    admitted(&fake, store.as_ref()).await;
    usage(&fake, 4).await;

    deleted_with_its_store_object(&fake, store.as_ref()).await;

    operator.abort();
}

/// The department pin is an annotation anyone who may edit the CR can
/// write: it must not move a CR into another department, at admission or
/// at deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_written_by_hand_does_not_choose_the_department() {
    let fake = FakeApi::new();
    let store = common::store();
    seed_with(&fake, json!({ "yunshu.io/department": "transport" }));
    fake.create(
        "/apis/yunshu.io/v1alpha1/departments",
        json!({
            "apiVersion": "yunshu.io/v1alpha1", "kind": "Department",
            "metadata": { "name": "transport" },
            "spec": { "quota": { "hard": { "vcpu": 48, "memory_mib": 98304 } } },
        }),
    );
    let ctx = Ctx::new(common::context(fake.client(), store.clone()));
    let operator = tokio::spawn(yunshu_k8s::controllers(ctx));

    let (cr, object) = admitted(&fake, store.as_ref()).await;
    assert_eq!(object.meta.department.as_deref(), Some("health"));
    assert_eq!(
        cr["metadata"]["annotations"]["yunshu.io/department"], "health",
        "the pin is rewritten to the namespace's department"
    );
    let elsewhere =
        common::stored::<InstanceSpec>(store.as_ref(), Kind::Instance, Some("transport"), "web-1")
            .await;
    assert!(elsewhere.is_none(), "admitted into another department");
    usage(&fake, 4).await;

    // A pin changed by hand after admission: deletion still releases the
    // object where it was admitted.
    fake.patch(
        INSTANCE,
        json!({ "metadata": { "annotations": { "yunshu.io/department": "transport" } } }),
    );
    deleted_with_its_store_object(&fake, store.as_ref()).await;

    operator.abort();
}
