//! A real Yunshu API server for the CLI to talk to: the gRPC services of
//! yunshu-grpc over an in-memory store, behind the real yunshu-auth layer,
//! on a loopback port. Departments carry minted API tokens; each test user
//! gets a configuration file written by `yunshuctl config init` itself.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use clap::Parser;
use tempfile::TempDir;
use tonic::transport::ServerTlsConfig;
use yunshu_auth::{AuthConfig, Authenticator, IdentityIndex, mint_api_token};
use yunshu_core::{
    admission::{Admission, AdmissionConfig},
    catalog::Catalog,
    codec, keys,
    meta::Kind,
    model::{
        BucketSpec, Department, DepartmentSpec, Foundation, FoundationSpec, InstanceSpec, Quota,
        Role,
    },
    resources::ResourceClass,
    store::{Store, StoreExt},
};
use yunshu_ctl::{Cli, Exit, Io, run_and_report};
use yunshu_store::EmbeddedStore;

/// The department most tests act for, and its vCPU limit.
pub const DEPARTMENT: &str = "health";
pub const VCPU_LIMIT: u64 = 8;

/// A running server and configuration files for its users.
pub struct Server {
    pub store: Arc<dyn Store>,
    pub addr: SocketAddr,
    pub dir: TempDir,
    /// An operator of `health`.
    pub operator: PathBuf,
    /// A viewer of `health`.
    pub viewer: PathBuf,
    /// An operator of `transport`.
    pub other: PathBuf,
    /// An admin, granted in `platform` (admins act in every department).
    pub admin: PathBuf,
}

/// What a run of the CLI printed, and its exit code.
#[derive(Debug)]
pub struct Run {
    pub exit: Exit,
    pub out: String,
    pub err: String,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(self) -> String {
        assert_eq!(
            self.exit,
            Exit::Ok,
            "stdout:\n{}\nstderr:\n{}",
            self.out,
            self.err
        );
        self.out
    }

    /// Parses stdout as JSON, asserting success.
    pub fn json(self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
    }
}

/// Runs `yunshuctl --config <config> <args…>` in-process.
pub async fn ctl(config: &Path, args: &[&str]) -> Run {
    let config = config.to_str().expect("utf-8 path");
    let argv = ["yunshuctl", "--config", config]
        .into_iter()
        .chain(args.iter().copied());
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"));
    run_cli(&cli).await
}

/// Runs a parsed command line in-process.
pub async fn run_cli(cli: &Cli) -> Run {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let exit = run_and_report(
        cli,
        &mut Io {
            out: &mut out,
            err: &mut err,
        },
    )
    .await;
    Run {
        exit,
        out: String::from_utf8(out).expect("utf-8 stdout"),
        err: String::from_utf8(err).expect("utf-8 stderr"),
    }
}

pub fn department(
    name: &str,
    vcpu: u64,
    identities: Vec<yunshu_core::model::Identity>,
) -> Department {
    Department::new(
        None,
        name,
        DepartmentSpec {
            display_name: format!("{name} commission"),
            identities,
            quota: Quota {
                hard: BTreeMap::from([
                    (ResourceClass::Vcpu, vcpu),
                    (ResourceClass::MemoryMib, vcpu * 2048),
                ]),
                ..Quota::default()
            },
            ..DepartmentSpec::default()
        },
    )
}

fn foundation() -> Foundation {
    let spec: FoundationSpec = serde_json::from_value(serde_json::json!({
        "adapter": "openstack",
        "endpoint": "https://keystone.kunpeng.example:5000/v3",
        "zones": ["az1"],
        "traits": ["arch:aarch64", "xinchuang"],
    }))
    .expect("foundation spec");
    Foundation::new(None, "kunpeng-1", spec)
}

async fn put<T: serde::Serialize>(store: &dyn Store, key: &str, value: &T) {
    store
        .put(key, codec::encode(value).expect("encode"))
        .await
        .expect("put");
}

/// Serves the API over `store` on a loopback port, behind the real
/// authentication layer for `departments`, with TLS when given.
pub async fn serve(
    store: Arc<dyn Store>,
    departments: &[Department],
    auth: &AuthConfig,
    tls: Option<ServerTlsConfig>,
) -> SocketAddr {
    let auth = Authenticator::new(auth, IdentityIndex::from_departments(departments))
        .await
        .expect("authenticator");
    let api = yunshu_grpc::Api {
        store: store.clone(),
        admission: Admission::new(store, AdmissionConfig::default()),
        catalog: Arc::new(Catalog::default()),
        placement: None,
        // Reboots, bucket object counts and credentials need the runtime's
        // adapters; without them those calls answer FAILED_PRECONDITION.
        actions: None,
        crds_own_config: false,
        currency: "CNY".into(),
    };
    let routes = yunshu_grpc::server::routes(api).await.expect("routes");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).expect("tls config");
    }
    tokio::spawn(
        builder
            .layer(auth.layer())
            .add_routes(routes)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

/// Stores departments (and the foundation `kunpeng-1`).
pub async fn declare(store: &dyn Store, departments: &[Department]) {
    for d in departments {
        put(store, &keys::department(&d.meta.name), d).await;
    }
    put(
        store,
        &keys::object(Kind::Foundation, None, "kunpeng-1"),
        &foundation(),
    )
    .await;
}

/// Writes a configuration with `config init`, as a user would.
pub async fn config_init(path: &Path, endpoint: &str, department: &str, token_file: &Path) {
    let cli = Cli::try_parse_from([
        "yunshuctl",
        "--config",
        path.to_str().expect("utf-8"),
        "config",
        "init",
        "--endpoint",
        endpoint,
        "--department",
        department,
        "--token-file",
        token_file.to_str().expect("utf-8"),
    ])
    .expect("parses");
    let run = run_cli(&cli).await;
    assert!(run.ok().starts_with("wrote "));
}

/// Starts the server with `health` (operator and viewer tokens, 8 vCPU)
/// and `transport` (an operator token), and the foundation `kunpeng-1`.
pub async fn start() -> Server {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory().expect("store"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut departments = Vec::new();
    let mut configs = Vec::new();
    for (dept, role, file) in [
        (DEPARTMENT, Role::Operator, "operator"),
        (DEPARTMENT, Role::Viewer, "viewer"),
        ("transport", Role::Operator, "other"),
        ("platform", Role::Admin, "admin"),
    ] {
        let token = mint_api_token().expect("mint");
        let token_file = dir.path().join(format!("{file}.token"));
        std::fs::write(&token_file, format!("{}\n", token.token.expose())).expect("token file");
        configs.push((dept, dir.path().join(format!("{file}.yaml")), token_file));
        match departments
            .iter_mut()
            .find(|d: &&mut Department| d.meta.name == dept)
        {
            Some(d) => d.spec.identities.push(token.identity(role)),
            None => departments.push(department(dept, VCPU_LIMIT, vec![token.identity(role)])),
        }
    }
    declare(&*store, &departments).await;

    let addr = serve(store.clone(), &departments, &AuthConfig::default(), None).await;
    let endpoint = format!("http://{addr}");
    for (dept, config, token_file) in &configs {
        config_init(config, &endpoint, dept, token_file).await;
    }
    let [operator, viewer, other, admin]: [PathBuf; 4] = configs
        .into_iter()
        .map(|(_, c, _)| c)
        .collect::<Vec<_>>()
        .try_into()
        .expect("four users");
    Server {
        store,
        addr,
        dir,
        operator,
        viewer,
        other,
        admin,
    }
}

/// Plays the scheduler and provisioner: sets an instance's status in the
/// store, as they will.
pub async fn set_instance_status(
    store: &dyn Store,
    name: &str,
    change: impl FnOnce(&mut yunshu_core::meta::Object<InstanceSpec>),
) {
    set_object::<InstanceSpec>(store, Kind::Instance, name, change).await;
}

/// Plays the provisioner for a bucket: changes it in the store.
pub async fn set_bucket_status(
    store: &dyn Store,
    name: &str,
    change: impl FnOnce(&mut yunshu_core::meta::Object<BucketSpec>),
) {
    set_object::<BucketSpec>(store, Kind::Bucket, name, change).await;
}

/// Reads an object of `health` from the store, if it exists.
pub async fn read_object<S: yunshu_core::meta::Spec>(
    store: &dyn Store,
    kind: Kind,
    name: &str,
) -> Option<yunshu_core::meta::Object<S>> {
    let key = keys::object(kind, Some(DEPARTMENT), name);
    let kv = store.get(&key).await.expect("get")?;
    Some(codec::decode_object::<S>(&kv).expect("decode"))
}

async fn set_object<S: yunshu_core::meta::Spec>(
    store: &dyn Store,
    kind: Kind,
    name: &str,
    change: impl FnOnce(&mut yunshu_core::meta::Object<S>),
) {
    let key = keys::object(kind, Some(DEPARTMENT), name);
    let mut object = read_object::<S>(store, kind, name)
        .await
        .unwrap_or_else(|| panic!("{name} exists"));
    change(&mut object);
    put(store, &key, &object).await;
}

/// Waits until the instance exists in the store.
pub async fn instance_stored(store: &dyn Store, name: &str) {
    let key = keys::object(Kind::Instance, Some(DEPARTMENT), name);
    for _ in 0..200 {
        if store.get(&key).await.expect("get").is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("instance {name} never appeared");
}
