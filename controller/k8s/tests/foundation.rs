//! A Foundation CR syncs into the store and its status is applied back with
//! server-side apply: once as an ordered scenario against the mocked API
//! (every call asserted in turn, a 409 on the status write retried), and
//! once end to end through the controllers against the fake API server,
//! where a probe's health in the store turns into `Ready` and events.

mod common;

use std::{sync::Arc, time::Duration};

use http::Method;
use kube::core::DeserializeGuard;
use serde_json::{Value, json};
use yunshu_core::{
    meta::Kind,
    model::{FoundationSpec, Health, InventoryRecord},
    resources::ResourceClass,
};
use yunshu_crds::Foundation;
use yunshu_k8s::{admin, context::Ctx};

use common::{expect, failure, reply};

const STATUS: &str = "/apis/yunshu.io/v1alpha1/foundations/kunpeng-1/status";
const SECRET: &str = "/api/v1/namespaces/yunshu-system/secrets/kunpeng-1-admin";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn cr(status: Option<Value>) -> Foundation {
    let mut cr = common::foundation("kunpeng-1", Some(("yunshu-system", "kunpeng-1-admin")));
    cr["metadata"] = json!({
        "name": "kunpeng-1",
        "uid": "f-uid-1",
        "generation": 1,
        "resourceVersion": "7",
        "finalizers": ["yunshu.io/cleanup"],
    });
    if let Some(status) = status {
        cr["status"] = status;
    }
    serde_json::from_value(cr).expect("a valid Foundation")
}

#[tokio::test]
async fn a_status_conflict_is_retried_and_the_status_lands_with_its_conditions() {
    let store = common::store();
    let (client, mut api) = common::mock_client();
    let ctx = Ctx::new(common::context(client, store.clone()));
    let hub = ctx.op.credentials.clone();
    let first = tokio::spawn(admin::reconcile(
        Arc::new(DeserializeGuard(Ok(cr(None)))),
        ctx.clone(),
    ));

    // The Secret the Foundation references is read.
    let (_, send) = expect(&mut api, Method::GET, SECRET).await;
    send.send_response(reply(
        200,
        &common::secret(
            "yunshu-system",
            "kunpeng-1-admin",
            &[("username", "admin"), ("password", "pw-1")],
        ),
    ));

    // The status is applied with SSA; the API answers 409 once.
    let (seen, send) = expect(&mut api, Method::PATCH, STATUS).await;
    assert!(seen.query.contains("fieldManager=yunshu"), "{}", seen.query);
    assert!(seen.query.contains("force=true"), "{}", seen.query);
    assert_eq!(seen.content_type, "application/apply-patch+yaml");
    let applied = seen.body;
    assert_eq!(applied["apiVersion"], "yunshu.io/v1alpha1");
    assert_eq!(applied["kind"], "Foundation");
    let status = &applied["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["arch"], "aarch64");
    assert_eq!(status["health"], "Unknown");
    let synced = common::condition(&applied, "Synced").expect("Synced");
    assert_eq!(synced["status"], "True");
    assert_eq!(synced["reason"], "Synced");
    assert_eq!(synced["observedGeneration"], 1);
    let ready = common::condition(&applied, "Ready").expect("Ready");
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("Unknown"), Some("NotProbed"))
    );
    send.send_response(failure(409, "Conflict"));

    // The same status is applied again and accepted.
    let (seen, send) = expect(&mut api, Method::PATCH, STATUS).await;
    assert_eq!(seen.body, applied, "the retry applies the same status");
    let mut answered = serde_json::to_value(cr(None)).expect("serializes");
    answered["status"] = status.clone();
    send.send_response(reply(200, &answered));

    // The transition to Synced is announced once.
    let (seen, send) = expect(&mut api, Method::POST, EVENTS).await;
    assert_eq!(seen.body["reason"], "Synced");
    assert_eq!(seen.body["type"], "Normal");
    assert_eq!(seen.body["regarding"]["name"], "kunpeng-1");
    assert_eq!(seen.body["reportingController"], "yunshu-operator");
    send.send_response(reply(201, &seen.body));

    first
        .await
        .expect("the reconcile ran")
        .expect("the reconcile succeeded after the retry");

    let object =
        common::stored::<FoundationSpec>(store.as_ref(), Kind::Foundation, None, "kunpeng-1")
            .await
            .expect("the foundation is in the store");
    assert_eq!(object.meta.uid, "f-uid-1");
    assert_eq!(object.meta.request_id.as_deref(), Some("k8s-f-uid-1"));
    assert_eq!(
        object.spec.endpoint,
        "https://keystone.kunpeng.example:5000/v3"
    );
    assert_eq!(object.spec.allocation_ratios[&ResourceClass::Vcpu], 4.0);
    let credentials = hub.current("kunpeng-1").expect("credentials published");
    assert_eq!(credentials.get("password"), Some("pw-1"));

    // A second reconcile of the CR as it is now writes nothing at all.
    let again = tokio::spawn(admin::reconcile(
        Arc::new(DeserializeGuard(Ok(cr(Some(status.clone()))))),
        ctx,
    ));
    let (_, send) = expect(&mut api, Method::GET, SECRET).await;
    send.send_response(reply(
        200,
        &common::secret(
            "yunshu-system",
            "kunpeng-1-admin",
            &[("username", "admin"), ("password", "pw-1")],
        ),
    ));
    let mut again = again;
    tokio::select! {
        biased;
        done = &mut again => {
            done.expect("ran").expect("succeeded");
        }
        extra = api.next_request() => {
            if let Some((request, _)) = extra {
                panic!("an unchanged CR caused {} {}", request.method(), request.uri());
            }
            again.await.expect("ran").expect("succeeded");
        }
    }
    let extra = tokio::time::timeout(Duration::from_millis(200), api.next_request()).await;
    assert!(
        matches!(extra, Err(_) | Ok(None)),
        "an unchanged CR caused another API call"
    );
    let revision = object.meta.revision;
    let unchanged =
        common::stored::<FoundationSpec>(store.as_ref(), Kind::Foundation, None, "kunpeng-1")
            .await
            .expect("still there");
    assert_eq!(
        unchanged.meta.revision, revision,
        "an unchanged spec was written again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foundation_syncs_and_its_probed_health_becomes_ready_with_events() {
    let fake = common::fake_api::FakeApi::new();
    let store = common::store();
    fake.create(
        "/apis/yunshu.io/v1alpha1/foundations",
        common::foundation("kunpeng-1", None),
    );
    let ctx = Ctx::new(common::context(fake.client(), store.clone()));
    let operator = tokio::spawn(yunshu_k8s::controllers(ctx));

    let path = "/apis/yunshu.io/v1alpha1/foundations/kunpeng-1";
    let cr = common::eventually(10, "the Foundation to be Synced", || async {
        let cr = fake.get(path)?;
        (common::condition(&cr, "Synced")?["status"] == "True").then_some(cr)
    })
    .await;
    assert_eq!(cr["metadata"]["finalizers"], json!(["yunshu.io/cleanup"]));
    assert_eq!(cr["status"]["observedGeneration"], 1);
    let object =
        common::stored::<FoundationSpec>(store.as_ref(), Kind::Foundation, None, "kunpeng-1")
            .await
            .expect("the foundation is in the store");
    assert_eq!(
        object.meta.uid,
        cr["metadata"]["uid"].as_str().expect("uid")
    );
    let apply = fake
        .calls()
        .into_iter()
        .find(|c| c.method == Method::PATCH && c.path.ends_with("/kunpeng-1/status"))
        .expect("a status write");
    assert!(apply.content_type.starts_with("application/apply-patch"));
    assert!(apply.query.contains("fieldManager=yunshu") && apply.query.contains("force=true"));

    // A probe loop records health and inventory in the store.
    let mut probed = object;
    probed.status.health = Health::Ready;
    probed.status.api_latency_ms = Some(12.5);
    probed.status.inventory.insert(
        ResourceClass::Vcpu,
        InventoryRecord {
            total: 64,
            reserved: 0,
            allocation_ratio: 4.0,
            used: 10,
            max_unit: 32,
        },
    );
    common::write(store.as_ref(), &probed).await;

    let cr = common::eventually(10, "Ready from the probed health", || async {
        let cr = fake.get(path)?;
        (common::condition(&cr, "Ready")?["status"] == "True").then_some(cr)
    })
    .await;
    assert_eq!(cr["status"]["health"], "Ready");
    assert_eq!(cr["status"]["apiLatencyMs"], 12.5);
    assert_eq!(cr["status"]["inventory"]["vcpu"]["capacity"], 256);
    assert_eq!(cr["status"]["inventory"]["vcpu"]["used"], 10);
    assert_eq!(
        common::condition(&cr, "Ready").expect("Ready")["reason"],
        "Healthy"
    );
    let event = |reason: &'static str| {
        let fake = fake.clone();
        move || {
            let fake = fake.clone();
            async move {
                fake.list("/apis/events.k8s.io/v1/events")
                    .into_iter()
                    .find(|e| e["reason"] == reason && e["regarding"]["name"] == "kunpeng-1")
            }
        }
    };
    let became = common::eventually(5, "a BecameReady event", event("BecameReady")).await;
    assert_eq!(became["type"], "Normal");

    // The foundation degrades: Ready turns false with a Warning event.
    probed.status.health = Health::Degraded;
    common::write(store.as_ref(), &probed).await;
    common::eventually(10, "Ready=False Degraded", || async {
        let cr = fake.get(path)?;
        (common::condition(&cr, "Ready")?["reason"] == "Degraded").then_some(())
    })
    .await;
    let degraded = common::eventually(5, "a Degraded event", event("Degraded")).await;
    assert_eq!(degraded["type"], "Warning");

    operator.abort();
}
