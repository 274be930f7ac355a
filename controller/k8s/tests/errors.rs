//! A failed reconcile is told to the runtime, by its error kind, so
//! `yunshu_reconcile_errors{controller="operator"}` counts CR sync failures
//! and the ReconcileErrors alert can fire for them.

mod common;

use std::sync::{Arc, Mutex};

use http::Method;
use yunshu_core::error::ErrorKind;
use yunshu_k8s::context::Ctx;

use common::fake_api::FakeApi;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_reconciles_are_counted_by_kind() {
    let fake = FakeApi::new();
    common::kunpeng_with_secret(&fake);
    // Every status write fails: each reconcile of the Foundation does.
    fake.fail_next(Method::PATCH, "/foundations/kunpeng-1/status", 500, 1000);
    let seen: Arc<Mutex<Vec<ErrorKind>>> = Arc::default();
    let mut op = common::context(fake.client(), common::store());
    let sink = seen.clone();
    op.on_error = Some(Arc::new(move |kind| {
        sink.lock().expect("lock").push(kind);
    }));
    let operator = tokio::spawn(yunshu_k8s::controllers(Ctx::new(op)));
    common::eventually(10, "a counted reconcile error", || async {
        (!seen.lock().expect("lock").is_empty()).then_some(())
    })
    .await;
    operator.abort();
    let kinds = seen.lock().expect("lock").clone();
    assert!(
        kinds.iter().all(|k| *k == ErrorKind::Unavailable),
        "a 500 from the API server is Unavailable: {kinds:?}"
    );
}
