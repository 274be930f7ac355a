//! Shared test helpers: the in-memory store, the operator context with
//! short timings, fixtures, waiting with a deadline, and the mocked API
//! server for ordered scenarios (tower-test) and for watches ([`fake_api`]).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod fake_api;

use std::{future::Future, sync::Arc, time::Duration};

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use yunshu_core::{
    admission::{Admission, AdmissionConfig},
    codec, keys,
    meta::{Kind, Object, Spec},
    store::{Store, StoreExt},
};
use yunshu_k8s::{CredentialsHub, OperatorConfig, OperatorContext};
use yunshu_store::EmbeddedStore;

/// A fresh in-memory store (the embedded redb backend).
pub fn store() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::in_memory().expect("an in-memory store opens"))
}

/// Settings with waits short enough for tests.
pub fn config() -> OperatorConfig {
    OperatorConfig {
        identity: "replica-a".into(),
        leader_election: false,
        poll_active: Duration::from_millis(100),
        resync: Duration::from_secs(60),
        retry_base: Duration::from_millis(10),
        ..OperatorConfig::default()
    }
}

/// An operator context over `client` and `store`.
pub fn context(client: kube::Client, store: Arc<dyn Store>) -> OperatorContext {
    OperatorContext {
        client,
        admission: Admission::new(store.clone(), AdmissionConfig::default()),
        store,
        credentials: CredentialsHub::new(),
        config: config(),
        on_error: None,
    }
}

/// Polls `check` every 20 ms until it yields a value, failing the test
/// with `what` after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads an object from the store.
pub async fn stored<S: Spec>(
    store: &dyn Store,
    kind: Kind,
    department: Option<&str>,
    name: &str,
) -> Option<Object<S>> {
    let kv = store
        .get(&keys::object(kind, department, name))
        .await
        .expect("the store answers")?;
    Some(codec::decode_object(&kv).expect("a stored object decodes"))
}

/// Writes an object to the store unconditionally (as a Yunshu loop would).
pub async fn write<S: Spec>(store: &dyn Store, object: &Object<S>) {
    let key = keys::object(
        S::KIND,
        object.meta.department.as_deref(),
        &object.meta.name,
    );
    store
        .put(&key, codec::encode(object).expect("encodes"))
        .await
        .expect("the store writes");
}

/// A Foundation CR as JSON.
pub fn foundation(name: &str, secret: Option<(&str, &str)>) -> Value {
    let mut spec = json!({
        "adapter": "openstack",
        "endpoint": "https://keystone.kunpeng.example:5000/v3",
        "region": "RegionOne",
        "traits": ["arch:aarch64", "cpu:kunpeng", "xinchuang"],
        "allocationRatios": { "vcpu": 4.0 },
    });
    if let Some((namespace, secret)) = secret {
        spec["credentialsSecretRef"] = json!({ "namespace": namespace, "name": secret });
    }
    json!({
        "apiVersion": "yunshu.io/v1alpha1",
        "kind": "Foundation",
        "metadata": { "name": name },
        "spec": spec,
    })
}

/// A Secret as JSON, values given as text.
/// kunpeng-1's credentials Secret (password `pw-1`) and its Foundation, on
/// the fake API server.
pub fn kunpeng_with_secret(fake: &fake_api::FakeApi) {
    fake.create(
        "/api/v1/namespaces/yunshu-system/secrets",
        secret(
            "yunshu-system",
            "kunpeng-1-admin",
            &[("username", "admin"), ("password", "pw-1")],
        ),
    );
    fake.create(
        "/apis/yunshu.io/v1alpha1/foundations",
        foundation("kunpeng-1", Some(("yunshu-system", "kunpeng-1-admin"))),
    );
}

pub fn secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(base64(v.as_bytes()))))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "namespace": namespace },
        "data": data,
    })
}

/// Standard base64 (Secret data on the wire).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The condition of `type_` in a CR's JSON status.
pub fn condition(object: &Value, type_: &str) -> Option<Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// The mocked API for ordered scenarios: every request is taken in turn
/// from the handle and answered by the test.
pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// A client over a tower-test mock, and the handle that answers it.
pub fn mock_client() -> (kube::Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

/// One request as the test sees it.
#[derive(Debug)]
pub struct Seen {
    /// The method.
    pub method: http::Method,
    /// The path.
    pub path: String,
    /// The query.
    pub query: String,
    /// The Content-Type.
    pub content_type: String,
    /// The JSON body (Null when empty).
    pub body: Value,
}

/// Takes the next request, checks its method and path, and returns it with
/// the means to answer it.
pub async fn expect(
    handle: &mut Handle,
    method: http::Method,
    path: &str,
) -> (Seen, tower_test::mock::SendResponse<Response<Body>>) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {method} {path}"))
        .expect("the client is still there");
    let (parts, body) = request.into_parts();
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        content_type: parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    assert_eq!(
        (&seen.method, seen.path.as_str()),
        (&method, path),
        "unexpected request {} {}?{}",
        seen.method,
        seen.path,
        seen.query
    );
    (seen, send)
}

/// A JSON answer with a status code.
pub fn reply(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .expect("a valid response")
}

/// The API's answer for a failure.
pub fn failure(code: u16, reason: &str) -> Response<Body> {
    reply(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("{reason} (mocked)"),
            "reason": reason, "code": code,
        }),
    )
}
