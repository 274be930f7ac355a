//! Shared by the S3 adapter's tests: finding a running server, building the
//! adapter over a real vault, a plain S3 client, and capturing logs.
//!
//! The servers are started by `e2e/s3/up.sh` (the project's test script does
//! it and sets the variables): `YUNSHU_S3_CEPH_STATE` and
//! `YUNSHU_S3_SEAWEEDFS_STATE` name their state directories, whose `env` file
//! says where they answer.

#![allow(dead_code)] // each test binary uses a different part

use std::{
    collections::BTreeMap,
    io,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials as AwsCredentials, Region, RequestChecksumCalculation,
    ResponseChecksumValidation, retry::RetryConfig,
};
use yunshu_adapter_s3::S3Adapter;
use yunshu_core::{
    adapter::Credentials,
    model::FoundationSpec,
    resources::{ResourceClass, Resources},
};
use yunshu_store::EmbeddedStore;
use yunshu_vault::{KeyRing, Vault};

/// A running S3 server, as its state directory describes it.
pub struct Backend {
    /// `ceph` or `seaweedfs`.
    pub name: &'static str,
    /// Its `env` file.
    pub env: BTreeMap<String, String>,
}

impl Backend {
    /// A value of the env file.
    pub fn get(&self, key: &str) -> &str {
        self.env.get(key).map_or("", String::as_str)
    }
}

/// The server named by `var`, or `None` (after printing `skipped: …`) when
/// the variable is unset outside CI. In CI an unset variable is a failure.
pub fn backend(var: &str, name: &'static str) -> Option<Backend> {
    let hint = format!(
        "start it with `bash e2e/s3/install.sh {name} && bash e2e/s3/up.sh --backend {name} /var/tmp/ys-s3-{name}` and set {var}=/var/tmp/ys-s3-{name}"
    );
    let Some(state) = std::env::var_os(var).map(PathBuf::from) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{var} is not set: the {name} S3 server is needed; {hint}");
        }
        eprintln!("skipped: {var} is not set ({hint})");
        return None;
    };
    let text = std::fs::read_to_string(state.join("env"))
        .unwrap_or_else(|e| panic!("cannot read {}/env ({e}); {hint}", state.display()));
    let env = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(Backend { name, env })
}

/// The Foundation spec for the server, with a declared capacity.
pub fn spec(b: &Backend) -> FoundationSpec {
    let mut settings = BTreeMap::from([("dialect".to_owned(), b.get("S3_DIALECT").to_owned())]);
    if b.get("S3_DIALECT") == "iam" {
        settings.insert("seaweedfs.weed".into(), b.get("SEAWEEDFS_WEED").into());
        settings.insert("seaweedfs.master".into(), b.get("SEAWEEDFS_MASTER").into());
        settings.insert("seaweedfs.filer".into(), b.get("SEAWEEDFS_FILER").into());
    }
    // Built from JSON, as a Foundation object carries it, so fields added
    // to the spec later take their defaults here too.
    let capacity = Resources::from_pairs([
        (ResourceClass::BucketBytes, 10 << 30),
        (ResourceClass::Buckets, 1000),
    ]);
    serde_json::from_value(serde_json::json!({
        "adapter": "s3",
        "endpoint": b.get("S3_ENDPOINT"),
        "region": b.get("S3_REGION"),
        "capacity": capacity,
        "settings": settings,
    }))
    .expect("a valid Foundation spec")
}

/// The admin credentials of the server.
pub fn admin_credentials(b: &Backend) -> Credentials {
    Credentials(BTreeMap::from([
        (
            "access_key".to_owned(),
            b.get("S3_ADMIN_ACCESS_KEY").to_owned(),
        ),
        (
            "secret_key".to_owned(),
            b.get("S3_ADMIN_SECRET_KEY").to_owned(),
        ),
    ]))
}

/// The adapter over a real vault (embedded in-memory store, fresh key ring).
pub struct Setup {
    /// Holds the key ring's directory.
    pub _keys: tempfile::TempDir,
    /// The vault the adapter keeps department keys in.
    pub vault: Arc<Vault>,
    /// The adapter.
    pub adapter: S3Adapter,
}

/// Builds the adapter for foundation `foundation` on `b`.
pub fn setup(b: &Backend, foundation: &str) -> Setup {
    setup_with(b, foundation, admin_credentials(b))
}

/// Builds the adapter for foundation `foundation` on `b`, acting with
/// `credentials`.
pub fn setup_with(b: &Backend, foundation: &str, credentials: Credentials) -> Setup {
    let keys = tempfile::tempdir().expect("tempdir");
    let ring = KeyRing::generate_dir(keys.path().join("ring")).expect("key ring");
    let store = Arc::new(EmbeddedStore::in_memory().expect("in-memory store"));
    let vault = Arc::new(Vault::new(store, ring));
    let adapter = S3Adapter::new(foundation, &spec(b), credentials, vault.clone())
        .expect("adapter from a valid spec");
    Setup {
        _keys: keys,
        vault,
        adapter,
    }
}

/// A short random token for names that must not collide between runs.
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_owned()
}

/// A plain aws-sdk-s3 client for the server, signing with the given keys —
/// what a department would use with credentials Yunshu issued.
pub fn plain_client(b: &Backend, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(b.get("S3_ENDPOINT"))
        .region(Region::new(b.get("S3_REGION").to_owned()))
        .credentials_provider(AwsCredentials::new(
            access_key, secret_key, None, None, "test",
        ))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(RetryConfig::disabled())
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Retries `f` for up to 15 s while it fails: a key made through an admin
/// API may take a moment to reach the S3 front end.
pub async fn eventually<T, E, F, Fut>(mut f: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match f().await {
            Ok(t) => return Ok(t),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Everything logged through `tracing` on this thread while it lives.
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct BufWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for BufWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Starts capturing at `debug` everywhere and `trace` for Yunshu.
    pub fn start() -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = BufWriter(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,yunshu_adapter_s3=trace,yunshu_vault=trace",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        Self {
            buf,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// What was captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .buf
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}
