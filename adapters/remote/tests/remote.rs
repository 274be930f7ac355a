//! The remote adapter end to end: the conformance suite through
//! `yunshu-adapter-conformance` against the Python example adapter (a
//! process in another language), and through [`AdapterServer`] and
//! [`RemoteAdapter`] against the in-tree OpenStack adapter on a real e2e
//! cloud, so both halves of the protocol meet a real counterpart.

#![allow(clippy::unwrap_used)]

#[path = "common/python.rs"]
mod python;

use std::{path::PathBuf, process::Command, sync::Arc, time::Duration};

use python::PythonAdapter;
use yunshu_adapter_remote::{AdapterServer, RemoteAdapter};
use yunshu_adapter_testkit::{Fixture, Sample, run_conformance};
use yunshu_core::{
    ErrorKind,
    adapter::{Adapter, Credentials},
    model::{FoundationSpec, InstanceSpec, VolumeSpec},
};

const CONFORMANCE: &str = env!("CARGO_BIN_EXE_yunshu-adapter-conformance");

fn spec(endpoint: &str) -> FoundationSpec {
    yunshu_adapter_remote::foundation_spec(endpoint)
}

fn token(t: &str) -> Credentials {
    Credentials([("token".to_owned(), t.to_owned())].into())
}

#[tokio::test]
async fn the_python_example_adapter_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cr3t-adapter-token\n").unwrap();
    let adapter = PythonAdapter::start(&token_file);

    let out = Command::new(CONFORMANCE)
        .args(["--endpoint", &adapter.endpoint(), "--token-file"])
        .arg(&token_file)
        .args([
            "--instance",
            "vcpu=1,memory_mib=512,disk_gib=1,image=kylin-v10",
            "--volume",
            "size_gib=1",
            "--ready-timeout",
            "20",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("conformance checks passed"), "{text}");
    eprintln!("{text}");

    // Without the token the service refuses, and the tool says why.
    let out = Command::new(CONFORMANCE)
        .args(["--endpoint", &adapter.endpoint(), "--volume", "size_gib=1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("unauthorized"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");

    // Through the client: capabilities, a probe with traits, and an image
    // the cloud does not know is Invalid, naming the reason.
    let remote = RemoteAdapter::connect(
        "vendor-cloud",
        &spec(&adapter.endpoint()),
        &token("s3cr3t-adapter-token"),
    )
    .unwrap();
    assert!(!format!("{remote:?}").contains("s3cr3t"));
    let probe = remote.probe().await.unwrap();
    assert_eq!(probe.traits[0].to_string(), "arch:x86_64");
    let caps = remote.capabilities();
    assert_eq!(caps.kinds.len(), 2, "{caps:?}");
    let owner = yunshu_core::adapter::Owner {
        department: "health".into(),
        name: "bad-image".into(),
        uid: uuid_like(),
    };
    let e = remote
        .create_instance(&owner, &instance("no-such-image"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.to_string().contains("no-such-image"), "{e}");
}

fn uuid_like() -> String {
    format!(
        "{:032x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn instance(image: &str) -> InstanceSpec {
    InstanceSpec {
        vcpu: 1,
        memory_mib: 512,
        disk_gib: 1,
        image: image.into(),
        constraints: Default::default(),
        group: None,
        power: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_served_over_the_wire_passes_the_conformance_suite() {
    let state = match std::env::var_os("YUNSHU_OPENSTACK_STATE") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "YUNSHU_OPENSTACK_STATE is unset: run `bash e2e/openstack/up.sh STATE`"
            );
            eprintln!("skipped: YUNSHU_OPENSTACK_STATE is unset");
            return;
        }
    };
    let cloud = yunshu_adapter_openstack::e2e_cloud(&state, "x86-cloud").unwrap();
    let inner = yunshu_adapter_openstack::OpenStackAdapter::new(
        "x86-cloud",
        &cloud.spec,
        cloud.credentials.clone(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let service = AdapterServer::new(Arc::new(inner), "openstack")
        .with_token("wire-token")
        .into_service();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let endpoint = format!("http://127.0.0.1:{port}");
    let wrong = RemoteAdapter::connect("x86-cloud", &spec(&endpoint), &token("wrong")).unwrap();
    let e = wrong.probe().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");

    let remote =
        RemoteAdapter::connect("x86-cloud", &spec(&endpoint), &token("wire-token")).unwrap();
    remote.refresh_capabilities().await.unwrap();
    let fixture = Fixture {
        department: "tk-remote".into(),
        samples: vec![
            Sample::Instance(instance("kylin-v10")),
            Sample::Volume(VolumeSpec {
                size_gib: 1,
                attach_to: None,
                constraints: Default::default(),
            }),
        ],
        ready_timeout: Duration::from_secs(180),
    };
    let outcome = run_conformance(&remote, &fixture).await;
    server.abort();
    match outcome {
        Ok(report) => eprintln!("x86-cloud over yunshu.adapter.v1: {report}"),
        Err(failure) => panic!("x86-cloud over yunshu.adapter.v1: {failure}"),
    }
}
