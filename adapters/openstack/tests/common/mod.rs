//! Shared by the integration tests: finding the e2e clouds, building
//! adapters, and a raw admin client to look at the clouds behind the adapter.

#![allow(dead_code, clippy::unwrap_used)]

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::Value;
use yunshu_adapter_openstack::{E2eCloud, OpenStackAdapter, e2e_cloud};
use yunshu_core::{
    adapter::{Adapter, CloudResource, Owner},
    meta::Kind,
    model::InstanceSpec,
};

/// The department the adapter tests use (its tenant persists across runs).
pub const DEPT: &str = "ys-adapter-test";
/// How long a resource may take to reach a state.
pub const TIMEOUT: Duration = Duration::from_secs(180);

/// An instance request.
pub fn instance(vcpu: u32, memory_mib: u64, disk_gib: u64, image: &str) -> InstanceSpec {
    InstanceSpec {
        vcpu,
        memory_mib,
        disk_gib,
        image: image.into(),
        constraints: Default::default(),
        group: None,
        power: Default::default(),
    }
}

/// The clouds `e2e/openstack/up.sh` starts.
pub const CLOUDS: [&str; 2] = ["x86-cloud", "kunpeng-cloud"];

/// The state directory from `YUNSHU_OPENSTACK_STATE`; `None` (after printing
/// `skipped: …`) when unset outside CI; a panic in CI.
pub fn state_dir() -> Option<PathBuf> {
    match std::env::var_os("YUNSHU_OPENSTACK_STATE") {
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => {
            let how = "start the clouds with `bash e2e/openstack/up.sh /var/tmp/ys-osp` and set \
                       YUNSHU_OPENSTACK_STATE=/var/tmp/ys-osp";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("YUNSHU_OPENSTACK_STATE is unset: {how}");
            }
            eprintln!("skipped: YUNSHU_OPENSTACK_STATE is unset ({how})");
            None
        }
    }
}

/// The adapter for one e2e cloud, and the cloud's description.
pub fn adapter(state: &std::path::Path, cloud: &str) -> (OpenStackAdapter, E2eCloud) {
    let c = e2e_cloud(state, cloud).expect("clouds.json describes the cloud");
    let a = OpenStackAdapter::new(cloud, &c.spec, c.credentials.clone()).expect("adapter");
    (a, c)
}

/// A fresh owner in `department`.
pub fn owner(department: &str) -> Owner {
    let uid = uuid::Uuid::new_v4();
    Owner {
        department: department.into(),
        name: format!("t-{}", &uid.simple().to_string()[..8]),
        uid: uid.to_string(),
    }
}

/// Polls `get` every 100 ms until `done` holds; panics after `timeout`.
pub async fn wait_for(
    a: &dyn Adapter,
    kind: Kind,
    o: &Owner,
    timeout: Duration,
    what: &str,
    done: impl Fn(&CloudResource) -> bool,
) -> CloudResource {
    let start = Instant::now();
    loop {
        let r = a.get(kind, o).await.expect("get");
        assert!(!r.failed, "{what}: the cloud failed it: {r:?}");
        if done(&r) {
            return r;
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: not reached within {timeout:?}; last {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until `get` answers NotFound.
pub async fn wait_gone(a: &dyn Adapter, kind: Kind, o: &Owner, timeout: Duration) {
    let start = Instant::now();
    loop {
        match a.get(kind, o).await {
            Err(e) if e.kind() == yunshu_core::ErrorKind::NotFound => return,
            Err(e) => panic!("get while waiting for deletion: {e}"),
            Ok(_) => {}
        }
        assert!(
            start.elapsed() < timeout,
            "{} {} still there after {timeout:?}",
            kind.plural(),
            o.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A raw admin client straight on the cloud's APIs, to check what the
/// adapter did from the outside.
pub struct Raw {
    http: reqwest::Client,
    token: String,
    /// Endpoints by service type, from clouds.json.
    pub endpoints: serde_json::Map<String, Value>,
    /// The admin user's id.
    pub user_id: String,
    /// The admin project's id.
    pub project_id: String,
}

impl Raw {
    pub async fn new(state: &std::path::Path, cloud: &str) -> Self {
        let all: Value =
            serde_json::from_str(&std::fs::read_to_string(state.join("clouds.json")).unwrap())
                .unwrap();
        let c = &all[cloud];
        let http = reqwest::Client::new();
        let resp = http
            .post(format!("{}/auth/tokens", c["auth_url"].as_str().unwrap()))
            .json(&serde_json::json!({ "auth": {
                "identity": { "methods": ["password"], "password": { "user": {
                    "name": c["username"], "password": c["password"], "domain": { "name": c["user_domain_name"] } } } },
                "scope": { "project": { "name": c["project_name"], "domain": { "name": c["project_domain_name"] } } }
            } }))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "raw admin login: {}",
            resp.status()
        );
        let token = resp.headers()["x-subject-token"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = resp.json().await.unwrap();
        Self {
            http,
            token,
            endpoints: c["endpoints"].as_object().unwrap().clone(),
            user_id: body["token"]["user"]["id"].as_str().unwrap().to_owned(),
            project_id: body["token"]["project"]["id"].as_str().unwrap().to_owned(),
        }
    }

    fn url(&self, service: &str, path: &str) -> String {
        format!("{}{path}", self.endpoints[service].as_str().unwrap())
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        service: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(service, path))
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", "compute 2.79");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, service: &str, path: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, service, path, None).await;
        assert!((200..300).contains(&s), "GET {service}{path}: {s} {v}");
        v
    }
}
