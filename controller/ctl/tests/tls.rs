//! yunshuctl over TLS: the server's CA from `caFile`, and mutual TLS with a
//! client certificate instead of a token. Certificates are made by rcgen.

mod common;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use common::{ctl, declare, department, serve};
use tonic::transport::Identity;
use yunshu_auth::{AuthConfig, MtlsConfig, server_tls_config};
use yunshu_core::{
    model::{Identity as DeptIdentity, Role},
    store::Store,
};
use yunshu_ctl::Exit;
use yunshu_store::EmbeddedStore;

/// The shared test CA, with this file's infallible calls.
struct Ca(yunshu_testenv::pki::Ca);

impl Ca {
    fn new(name: &str) -> Self {
        Self(yunshu_testenv::pki::Ca::new(name).expect("ca"))
    }

    fn server(&self) -> (String, String) {
        self.0.server().expect("server cert")
    }

    fn client(&self, cn: &str) -> (String, String) {
        self.0.client(cn).expect("client cert")
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn config(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    write(dir, name, yaml)
}

#[tokio::test]
async fn a_client_certificate_authenticates_over_mutual_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = Ca::new("Yunshu Test CA");
    let (server_cert, server_key) = ca.server();
    let (client_cert, client_key) = ca.client("health-ci");
    let ca_file = write(d, "ca.pem", &ca.0.pem);
    write(d, "client.pem", &client_cert);
    write(d, "client-key.pem", &client_key);

    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory().expect("store"));
    let departments = [department(
        "health",
        8,
        vec![DeptIdentity::CertificateSubject {
            subject: "health-ci".into(),
            role: Role::Operator,
        }],
    )];
    declare(&*store, &departments).await;
    let mtls = MtlsConfig {
        client_ca_file: ca_file.clone(),
        require_client_cert: false,
    };
    let tls = server_tls_config(Identity::from_pem(server_cert, server_key), Some(&mtls))
        .expect("server tls");
    let auth = AuthConfig {
        mtls: Some(mtls),
        ..AuthConfig::default()
    };
    let addr = serve(store, &departments, &auth, Some(tls)).await;
    let endpoint = format!("https://127.0.0.1:{}", addr.port());

    // Relative paths in the file are relative to the file.
    let with_cert = config(
        d,
        "mtls.yaml",
        &format!(
            "endpoint: {endpoint}\ndepartment: health\ncaFile: ca.pem\n\
             clientCertFile: client.pem\nclientKeyFile: client-key.pem\n"
        ),
    );
    let out = ctl(
        &with_cert,
        &[
            "create",
            "instance",
            "web-1",
            "--vcpu",
            "2",
            "--memory",
            "4Gi",
            "--image",
            "kylin-v10",
        ],
    )
    .await
    .ok();
    assert_eq!(out, "instance web-1 created (Pending)\n");
    ctl(&with_cert, &["get", "instance", "web-1"]).await.ok();

    // TLS without a client certificate or token: the server does not know who it is.
    let anonymous = config(
        d,
        "anonymous.yaml",
        &format!("endpoint: {endpoint}\ndepartment: health\ncaFile: ca.pem\n"),
    );
    let run = ctl(&anonymous, &["quota"]).await;
    assert_eq!(run.exit, Exit::Denied, "{run:?}");

    // A CA that did not sign the server's certificate: the handshake fails.
    let other_ca = Ca::new("Somebody Else");
    write(d, "other-ca.pem", &other_ca.0.pem);
    let wrong_ca = config(
        d,
        "wrong-ca.yaml",
        &format!("endpoint: {endpoint}\ndepartment: health\ncaFile: other-ca.pem\n"),
    );
    let run = ctl(&wrong_ca, &["quota"]).await;
    assert_eq!(
        run.exit,
        Exit::Usage,
        "a setting to fix, not to retry: {run:?}"
    );
    assert!(
        run.err
            .starts_with(&format!("error: failed to connect to {endpoint}")),
        "{}",
        run.err
    );
    assert!(run.err.contains("invalid peer certificate"), "{}", run.err);
    assert!(run.err.contains("hint: caFile"), "{}", run.err);

    // A CA file that does not exist is named.
    let missing = config(
        d,
        "missing-ca.yaml",
        &format!("endpoint: {endpoint}\ndepartment: health\ncaFile: nowhere.pem\n"),
    );
    let run = ctl(&missing, &["quota"]).await;
    assert_eq!(run.exit, Exit::Usage, "{run:?}");
    assert!(run.err.contains("failed to read CA file"), "{}", run.err);
    assert!(run.err.contains("nowhere.pem"), "{}", run.err);
}
