//! A real tonic server on a loopback port over an in-memory store, with a
//! test layer that takes the principal from an `x-test-principal` header
//! (`department:role:subject`). The real authentication layer is tested in
//! yunshu-auth and end to end through the binary.

#![allow(dead_code)]

use std::{collections::BTreeMap, sync::Arc};

use tonic::{Code, Request, transport::Channel};
use tonic_types::StatusExt;
use yunshu_core::{
    admission::{Admission, AdmissionConfig},
    catalog::Catalog,
    codec, keys,
    model::{Department, DepartmentSpec, Quota, Role},
    principal::Principal,
    resources::ResourceClass,
    store::{Store, StoreExt},
};
use yunshu_grpc::Api;
use yunshu_proto::api::v1 as pb;
use yunshu_store::EmbeddedStore;

pub struct Server {
    pub store: Arc<dyn Store>,
    pub channel: Channel,
}

fn principal_from(req: &http::Request<tonic::body::Body>) -> Option<Principal> {
    let raw = req.headers().get("x-test-principal")?.to_str().ok()?;
    let mut parts = raw.splitn(3, ':');
    let department = parts.next()?.to_owned();
    let role = match parts.next()? {
        "viewer" => Role::Viewer,
        "operator" => Role::Operator,
        "admin" => Role::Admin,
        _ => return None,
    };
    Some(Principal {
        department,
        role,
        subject: parts.next()?.to_owned(),
    })
}

pub async fn start() -> Server {
    start_with(None).await
}

/// A server whose one-shot actions (reboot, bucket credentials) go to
/// `actions`.
pub async fn start_with(actions: Option<Arc<dyn yunshu_grpc::actions::Actions>>) -> Server {
    serve(actions, false).await
}

/// A server in Kubernetes mode, where the CRDs own the admin kinds.
pub async fn start_kubernetes_mode() -> Server {
    serve(None, true).await
}

/// A server over `store`.
pub async fn start_on(store: Arc<dyn Store>) -> Server {
    serve_on(store, None, false).await
}

async fn serve(
    actions: Option<Arc<dyn yunshu_grpc::actions::Actions>>,
    crds_own_config: bool,
) -> Server {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory().expect("store"));
    serve_on(store, actions, crds_own_config).await
}

async fn serve_on(
    store: Arc<dyn Store>,
    actions: Option<Arc<dyn yunshu_grpc::actions::Actions>>,
    crds_own_config: bool,
) -> Server {
    let api = Api {
        store: store.clone(),
        admission: Admission::new(store.clone(), AdmissionConfig::default()),
        catalog: Arc::new(Catalog::default()),
        placement: Some(yunshu_placement::Scheduler::new(
            store.clone(),
            yunshu_placement::SchedulerConfig::default(),
        )),
        actions,
        crds_own_config,
        currency: "CNY".into(),
    };
    let routes = yunshu_grpc::server::routes(api).await.expect("routes");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let layer = tower::util::MapRequestLayer::new(|mut req: http::Request<tonic::body::Body>| {
        if let Some(p) = principal_from(&req) {
            req.extensions_mut().insert(p);
        }
        req
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_routes(routes)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    Server { store, channel }
}

pub async fn department(store: &dyn Store, name: &str, vcpu: u64) {
    let dept = Department::new(
        None,
        name,
        DepartmentSpec {
            quota: Quota {
                hard: BTreeMap::from([(ResourceClass::Vcpu, vcpu)]),
                ..Quota::default()
            },
            ..DepartmentSpec::default()
        },
    );
    store
        .put(
            &keys::department(name),
            codec::encode(&dept).expect("encode"),
        )
        .await
        .expect("put");
}

/// A request as `who` (`department:role:subject`).
pub fn as_<T>(who: &str, message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("x-test-principal", who.parse().expect("ascii"));
    r
}

/// An operator of the health department.
pub const ALICE: &str = "health:operator:alice";

pub fn instance(vcpu: u32, memory_mib: u64, image: &str) -> pb::Instance {
    pb::Instance {
        metadata: None,
        spec: Some(pb::InstanceSpec {
            vcpu,
            memory_mib,
            disk_gib: 40,
            image: image.into(),
            constraints: None,
            group: None,
            power: 0,
        }),
        status: None,
    }
}

pub fn assert_names_field(err: tonic::Status, field: &str) {
    assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
    let br = err
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("{field}: no field violations"));
    assert!(
        br.field_violations.iter().any(|v| v.field == field),
        "{field}: got {:?}",
        br.field_violations
    );
}

pub fn spec(r: &mut pb::CreateInstanceRequest) -> &mut pb::InstanceSpec {
    r.instance
        .as_mut()
        .and_then(|i| i.spec.as_mut())
        .expect("spec")
}

pub fn create(id: &str, request_id: &str, i: pb::Instance) -> pb::CreateInstanceRequest {
    pb::CreateInstanceRequest {
        parent: "departments/health".into(),
        instance_id: id.into(),
        instance: Some(i),
        request_id: request_id.into(),
    }
}

/// Creates instance `web-1` of `health` as Alice (2 vCPU, 4 GiB,
/// kylin-v10); returns the client that did.
pub async fn create_web_1(
    channel: &Channel,
) -> yunshu_proto::api::v1::instance_service_client::InstanceServiceClient<Channel> {
    let mut c =
        yunshu_proto::api::v1::instance_service_client::InstanceServiceClient::new(channel.clone());
    c.create_instance(as_(
        ALICE,
        create("web-1", "r1", instance(2, 4096, "kylin-v10")),
    ))
    .await
    .expect("create");
    c
}

/// Changes a stored object in place, as another loop would (placement,
/// the provisioner): reads `key`, applies `change`, writes it back.
pub async fn change_stored<S: yunshu_core::meta::Spec>(
    store: &dyn Store,
    key: &str,
    change: impl FnOnce(&mut yunshu_core::meta::Object<S>),
) {
    let kv = store.get(key).await.expect("read").expect("stored");
    let mut object = codec::decode_object::<S>(&kv).expect("decode");
    change(&mut object);
    store
        .put(key, codec::encode(&object).expect("encode"))
        .await
        .expect("write");
}

/// An in-memory store where another writer gets in first: when armed, the
/// next transaction guarded on `key` finds it rewritten since it was read
/// (its value put again, as a status write would), once.
#[derive(Debug)]
pub struct Racing {
    pub inner: EmbeddedStore,
    pub key: String,
    pub armed: std::sync::atomic::AtomicBool,
    pub raced: std::sync::atomic::AtomicUsize,
}

#[tonic::async_trait]
impl Store for Racing {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn capabilities(&self) -> yunshu_core::store::StoreCapabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> yunshu_core::Result<Option<yunshu_core::store::KeyValue>> {
        self.inner.get(key).await
    }
    async fn range(
        &self,
        request: yunshu_core::store::RangeRequest,
    ) -> yunshu_core::Result<yunshu_core::store::RangeResponse> {
        self.inner.range(request).await
    }
    async fn txn(
        &self,
        txn: yunshu_core::store::Txn,
    ) -> yunshu_core::Result<yunshu_core::store::TxnResponse> {
        use std::sync::atomic::Ordering;
        if txn.compares.iter().any(|c| c.key == self.key)
            && self.armed.swap(false, Ordering::SeqCst)
            && let Some(kv) = self.inner.get(&self.key).await?
        {
            self.inner.put(&self.key, kv.value).await?;
            self.raced.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.txn(txn).await
    }
    async fn watch(
        &self,
        prefix: &str,
        from: yunshu_core::store::Revision,
    ) -> yunshu_core::Result<yunshu_core::store::WatchStream> {
        self.inner.watch(prefix, from).await
    }
    async fn compact(&self, revision: yunshu_core::store::Revision) -> yunshu_core::Result<()> {
        self.inner.compact(revision).await
    }
    async fn current_revision(&self) -> yunshu_core::Result<yunshu_core::store::Revision> {
        self.inner.current_revision().await
    }
    async fn lease_grant(
        &self,
        ttl: std::time::Duration,
    ) -> yunshu_core::Result<yunshu_core::store::LeaseId> {
        self.inner.lease_grant(ttl).await
    }
    async fn lease_keep_alive(
        &self,
        lease: yunshu_core::store::LeaseId,
    ) -> yunshu_core::Result<std::time::Duration> {
        self.inner.lease_keep_alive(lease).await
    }
    async fn lease_revoke(&self, lease: yunshu_core::store::LeaseId) -> yunshu_core::Result<()> {
        self.inner.lease_revoke(lease).await
    }
}
