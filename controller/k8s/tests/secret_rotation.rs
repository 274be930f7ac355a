//! Foundation credentials come from the Secret the Foundation references;
//! a rotated Secret is picked up and published again, and a removed one
//! withdraws them and is reported.

mod common;

use std::time::Duration;

use serde_json::json;
use yunshu_core::{meta::Kind, model::FoundationSpec};
use yunshu_k8s::context::Ctx;

use common::fake_api::FakeApi;

const SECRET: &str = "/api/v1/namespaces/yunshu-system/secrets/kunpeng-1-admin";
const FOUNDATION: &str = "/apis/yunshu.io/v1alpha1/foundations/kunpeng-1";

/// The operator watching Secrets in `namespaces` (empty: everywhere), with
/// kunpeng-1's Secret and Foundation in place, once it has published the
/// first credentials and the Foundation is Synced and quiet, so only the
/// Secret's watch can bring a rotation in.
struct Running {
    fake: FakeApi,
    store: std::sync::Arc<dyn yunshu_core::store::Store>,
    credentials: tokio::sync::watch::Receiver<Option<yunshu_core::adapter::Credentials>>,
    operator: tokio::task::JoinHandle<()>,
}

async fn running(namespaces: &[&str]) -> Running {
    let fake = FakeApi::new();
    let store = common::store();
    common::kunpeng_with_secret(&fake);
    let mut op = common::context(fake.client(), store.clone());
    op.config.secret_namespaces = namespaces.iter().map(|n| (*n).to_owned()).collect();
    let mut credentials = op.credentials.subscribe("kunpeng-1");
    let operator = tokio::spawn(yunshu_k8s::controllers(Ctx::new(op)));
    wait_password(&mut credentials, "pw-1").await;
    common::eventually(10, "the Foundation Synced", || async {
        (common::condition(&fake.get(FOUNDATION)?, "Synced")?["status"] == "True").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    Running {
        fake,
        store,
        credentials,
        operator,
    }
}

async fn wait_password(
    credentials: &mut tokio::sync::watch::Receiver<Option<yunshu_core::adapter::Credentials>>,
    want: &str,
) {
    tokio::time::timeout(
        Duration::from_secs(10),
        credentials.wait_for(|c| c.as_ref().and_then(|c| c.get("password")) == Some(want)),
    )
    .await
    .unwrap_or_else(|_| panic!("the credentials with password {want} in time"))
    .expect("the hub is alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_published_again() {
    let Running {
        fake,
        store,
        mut credentials,
        operator,
    } = running(&[]).await;
    let before =
        common::stored::<FoundationSpec>(store.as_ref(), Kind::Foundation, None, "kunpeng-1")
            .await
            .expect("synced");

    fake.patch(
        SECRET,
        json!({ "data": { "password": common::base64(b"pw-2") } }),
    );
    wait_password(&mut credentials, "pw-2").await;
    let after =
        common::stored::<FoundationSpec>(store.as_ref(), Kind::Foundation, None, "kunpeng-1")
            .await
            .expect("synced");
    assert_eq!(
        after.meta.revision, before.meta.revision,
        "a rotation rewrote the foundation"
    );
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c.body.to_string().contains("pw-2") && c.path != SECRET),
        "a credential value left the Secret"
    );

    // The Secret goes: credentials are withdrawn and the CR says why.
    fake.delete(SECRET);
    tokio::time::timeout(
        Duration::from_secs(10),
        credentials.wait_for(Option::is_none),
    )
    .await
    .expect("withdrawn in time")
    .expect("the hub is alive");
    let synced = common::eventually(10, "Synced=False SecretNotFound", || async {
        let c = common::condition(&fake.get(FOUNDATION)?, "Synced")?;
        (c["reason"] == "SecretNotFound").then_some(c)
    })
    .await;
    assert_eq!(synced["status"], "False");
    assert!(
        synced["message"]
            .as_str()
            .expect("message")
            .contains("yunshu-system/kunpeng-1-admin")
    );

    operator.abort();
}

/// With the namespaces the chart's Roles grant, Secrets are watched there
/// only (a cluster-wide watch would be forbidden), and a rotation there is
/// still seen at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_watched_only_in_the_granted_namespaces() {
    let Running {
        fake,
        mut credentials,
        operator,
        ..
    } = running(&["yunshu-system", "creds"]).await;
    fake.patch(
        SECRET,
        json!({ "data": { "password": common::base64(b"pw-2") } }),
    );
    wait_password(&mut credentials, "pw-2").await;

    let calls = fake.calls();
    assert!(
        !calls.iter().any(|c| c.path == "/api/v1/secrets"),
        "a cluster-wide Secret call was made"
    );
    for ns in ["yunshu-system", "creds"] {
        let collection = format!("/api/v1/namespaces/{ns}/secrets");
        assert!(
            calls
                .iter()
                .any(|c| c.path == collection && c.query.contains("watch")),
            "no Secret watch in {ns}"
        );
    }
    operator.abort();
}
