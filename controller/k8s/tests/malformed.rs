//! A CR that does not match its schema is reported (a Warning event, a
//! log line) and skipped; the watch goes on, so valid CRs before and after
//! it still sync into the store, and fixing it syncs it too.

mod common;

use serde_json::json;
use yunshu_core::{meta::Kind, model::FoundationSpec};
use yunshu_k8s::context::Ctx;

use common::fake_api::FakeApi;

const FOUNDATIONS: &str = "/apis/yunshu.io/v1alpha1/foundations";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_foundation_is_skipped_without_stalling_the_watch() {
    let fake = FakeApi::new();
    let store = common::store();
    let mut broken = common::foundation("broken", None);
    broken["spec"]["adapter"] = json!("vmware");
    fake.create(FOUNDATIONS, broken);
    fake.create(FOUNDATIONS, common::foundation("kunpeng-1", None));
    let ctx = Ctx::new(common::context(fake.client(), store.clone()));
    let operator = tokio::spawn(yunshu_k8s::controllers(ctx));

    let in_store = |name: &'static str| {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move {
                common::stored::<FoundationSpec>(store.as_ref(), Kind::Foundation, None, name).await
            }
        }
    };
    common::eventually(10, "kunpeng-1 in the store", in_store("kunpeng-1")).await;

    // While the watch runs: another malformed CR, then a valid one.
    let mut bad = common::foundation("broken-2", None);
    bad["spec"]["allocationRatios"] = json!({ "vcpu": "four" });
    fake.create(FOUNDATIONS, bad);
    fake.create(FOUNDATIONS, common::foundation("x86-phase-1", None));
    common::eventually(10, "x86-phase-1 in the store", in_store("x86-phase-1")).await;

    for name in ["broken", "broken-2"] {
        assert!(in_store(name)().await.is_none(), "{name} reached the store");
        let event = common::eventually(5, "an InvalidObject event", || async {
            fake.list("/apis/events.k8s.io/v1/events")
                .into_iter()
                .find(|e| e["reason"] == "InvalidObject" && e["regarding"]["name"] == name)
        })
        .await;
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["regarding"]["kind"], "Foundation");
        let note = event["note"].as_str().expect("a note");
        assert!(note.contains("does not match its schema"), "{note}");
        let cr = fake
            .get(&format!("{FOUNDATIONS}/{name}"))
            .expect("still there");
        assert!(
            cr["metadata"]["finalizers"].is_null(),
            "a malformed CR was modified"
        );
        assert!(cr["status"].is_null(), "a malformed CR got a status");
    }

    // Fixing the malformed CR syncs it.
    fake.patch(
        &format!("{FOUNDATIONS}/broken"),
        json!({ "spec": { "adapter": "openstack" } }),
    );
    common::eventually(10, "the fixed CR in the store", in_store("broken")).await;

    operator.abort();
}
