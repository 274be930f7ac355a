//! The gRPC API through the real binary: departments declared in the config
//! file, API tokens minted and stored only as hashes, and a client in
//! another language.

mod common;

use std::process::Command;

use common::Serving;
use tonic::{Code, Request};
use yunshu_auth::{MintedToken, mint_api_token_with_id};
use yunshu_proto::api::v1::{self as pb, instance_service_client::InstanceServiceClient};

struct Fixture {
    _dir: tempfile::TempDir,
    serving: Serving,
    health: MintedToken,
    transport: MintedToken,
    revoked: MintedToken,
    admin: MintedToken,
}

fn start() -> Fixture {
    start_with(&[])
}

fn start_with(args: &[&str]) -> Fixture {
    let health = mint_api_token_with_id("health-ci").expect("mint");
    let transport = mint_api_token_with_id("transport-ci").expect("mint");
    let revoked = mint_api_token_with_id("health-old").expect("mint");
    let admin = mint_api_token_with_id("platform-ci").expect("mint");
    let config = format!(
        r#"
auth: {{ watchRecheckSecs: 1 }}
departments:
  - name: health
    spec:
      displayName: Health Commission
      identities:
        - {{ type: apiToken, id: {}, sha256: "{}", role: operator }}
        - {{ type: apiToken, id: {}, sha256: "{}", role: operator, revoked: true }}
      quota: {{ hard: {{ vcpu: 48 }} }}
  - name: transport
    spec:
      identities:
        - {{ type: apiToken, id: {}, sha256: "{}", role: operator }}
      quota: {{ hard: {{ vcpu: 16 }} }}
  - name: platform
    spec:
      identities:
        - {{ type: apiToken, id: {}, sha256: "{}", role: admin }}
"#,
        health.id,
        health.sha256,
        revoked.id,
        revoked.sha256,
        transport.id,
        transport.sha256,
        admin.id,
        admin.sha256
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yunshu.yaml");
    std::fs::write(&path, config).expect("write config");
    let mut all = vec![
        "--store",
        "memory",
        "--config",
        path.to_str().expect("utf8"),
    ];
    all.extend_from_slice(args);
    let serving = Serving::start(&all);
    Fixture {
        _dir: dir,
        serving,
        health,
        transport,
        revoked,
        admin,
    }
}

fn with_token<T>(token: &MintedToken, message: T) -> Request<T> {
    let mut r = Request::new(message);
    let value = format!("Bearer {}", token.token.expose());
    r.metadata_mut()
        .insert("authorization", value.parse().expect("ascii"));
    r
}

fn create(id: &str) -> pb::CreateInstanceRequest {
    pb::CreateInstanceRequest {
        parent: "departments/health".into(),
        instance_id: id.into(),
        instance: Some(pb::Instance {
            metadata: None,
            spec: Some(pb::InstanceSpec {
                vcpu: 4,
                memory_mib: 8192,
                disk_gib: 40,
                image: "kylin-v10".into(),
                ..Default::default()
            }),
            status: None,
        }),
        request_id: format!("req-{id}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_guard_the_api() {
    let f = start();
    let mut c = InstanceServiceClient::connect(f.serving.grpc_url())
        .await
        .expect("connect");

    let err = c
        .create_instance(Request::new(create("anon")))
        .await
        .expect_err("no credentials");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = c
        .create_instance(with_token(&f.revoked, create("old")))
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        !err.message().contains(f.revoked.token.expose()),
        "the token never appears in errors"
    );

    let made = c
        .create_instance(with_token(&f.health, create("web-1")))
        .await
        .expect("create")
        .into_inner();
    let name = made.instance.and_then(|i| i.metadata).expect("meta").name;

    let err = c
        .get_instance(with_token(
            &f.transport,
            pb::GetInstanceRequest { name: name.clone() },
        ))
        .await
        .expect_err("other department");
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .create_instance(with_token(&f.transport, create("intruder")))
        .await
        .expect_err("other department");
    assert_eq!(err.code(), Code::NotFound);

    let err = c
        .create_instance(with_token(&f.health, create("big").clone()))
        .await;
    assert!(err.is_ok(), "8 of 48 vCPU");
    // Every call and every refusal shows in /metrics, with bounded labels.
    let (code, metrics) = common::get(f.serving.port, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    for line in [
        r#"yunshu_grpc_requests_total{service="yunshu.api.v1.InstanceService",method="CreateInstance",code="Unauthenticated"} 2"#,
        r#"yunshu_grpc_requests_total{service="yunshu.api.v1.InstanceService",method="GetInstance",code="NotFound"} 1"#,
        r#"yunshu_auth_rejections_total{reason="missing_credentials"} 1"#,
        r#"yunshu_auth_rejections_total{reason="revoked_api_token"} 1"#,
        r#"yunshu_build_info{version="0.1.0"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in:\n{metrics}"
        );
    }
    let (status, logs) = f.serving.stop();
    assert!(status.success(), "{logs}");
    for t in [&f.health, &f.transport, &f.revoked, &f.admin] {
        assert!(
            !logs.contains(t.token.expose()),
            "a token leaked into the logs"
        );
    }
}

/// Request ids are remembered for `--request-retention`: a retry within it
/// gets the first answer, one after it finds the name taken or gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_forgotten_after_the_retention() {
    let f = start_with(&["--request-retention", "2s"]);
    let mut c = InstanceServiceClient::connect(f.serving.grpc_url())
        .await
        .expect("connect");
    let first = c
        .create_instance(with_token(&f.health, create("kept")))
        .await
        .expect("create")
        .into_inner();
    let retried = c
        .create_instance(with_token(&f.health, create("kept")))
        .await
        .expect("a retry within the retention gets the first answer")
        .into_inner();
    let uid = |i: &Option<pb::Instance>| {
        i.as_ref()
            .and_then(|i| i.metadata.as_ref())
            .map(|m| m.uid.clone())
    };
    assert_eq!(
        uid(&first.instance),
        uid(&retried.instance),
        "the same instance"
    );
    let name = first.instance.and_then(|i| i.metadata).expect("meta").name;
    let delete = pb::DeleteInstanceRequest {
        name: name.clone(),
        request_id: "del-kept".into(),
    };
    c.delete_instance(with_token(&f.health, delete.clone()))
        .await
        .expect("delete");
    c.delete_instance(with_token(&f.health, delete.clone()))
        .await
        .expect("a retry within the retention gets the first answer");

    // Within a few sweeps (every second here), both ids are forgotten: the
    // delete id finds nothing, and the create id makes a new instance.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let deleted = c
            .delete_instance(with_token(&f.health, delete.clone()))
            .await;
        if deleted.as_ref().is_err_and(|e| e.code() == Code::NotFound) {
            let made = c
                .create_instance(with_token(&f.health, create("kept")))
                .await;
            if let Ok(made) = made {
                assert_ne!(uid(&made.get_ref().instance), uid(&retried.instance));
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "request ids still remembered after 20 s: {deleted:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let (_, metrics) = common::get(f.serving.port, "/metrics").expect("metrics");
    let swept = metrics
        .lines()
        .find_map(|l| l.strip_prefix("yunshu_request_records_swept_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(swept >= Some(2), "swept {swept:?}:\n{metrics}");
}

/// A watch outlives the check of its credentials: revoking its token ends
/// it with UNAUTHENTICATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_ends_its_open_watches() {
    use yunshu_proto::api::v1::admin_service_client::AdminServiceClient;

    let f = start();
    let mut c = InstanceServiceClient::connect(f.serving.grpc_url())
        .await
        .expect("connect");
    let mut watch = c
        .watch_instances(with_token(
            &f.health,
            pb::WatchInstancesRequest {
                parent: "departments/health".into(),
                start_revision: 0,
            },
        ))
        .await
        .expect("watch")
        .into_inner();
    c.create_instance(with_token(&f.health, create("web-1")))
        .await
        .expect("create");
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
        .await
        .expect("an event in time")
        .expect("delivered");
    assert!(first.is_some(), "the watch delivers while the token holds");

    let mut admin = AdminServiceClient::connect(f.serving.grpc_url())
        .await
        .expect("connect");
    let mut dept = admin
        .get_department(with_token(
            &f.admin,
            pb::GetDepartmentRequest {
                name: "departments/health".into(),
            },
        ))
        .await
        .expect("get department")
        .into_inner()
        .department
        .expect("department");
    let spec = dept.spec.as_mut().expect("spec");
    for identity in &mut spec.identities {
        if let Some(pb::identity::Principal::ApiToken(t)) = &mut identity.principal
            && t.id == f.health.id
        {
            t.revoked = true;
        }
    }
    admin
        .update_department(with_token(
            &f.admin,
            pb::UpdateDepartmentRequest {
                department: Some(dept),
                request_id: "revoke-health-ci".into(),
            },
        ))
        .await
        .expect("revoke");

    let ended = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the watch ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the watch ends soon after the revocation");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    assert!(!ended.message().contains(f.health.token.expose()));
    let (status, logs) = f.serving.stop();
    assert!(status.success(), "{logs}");
}

#[test]
fn a_python_grpcio_client_creates_lists_and_watches() {
    let f = start();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("python3")
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "e2e/python/test_client.py",
        ])
        .current_dir(&root)
        .env("YUNSHU_GRPC", format!("127.0.0.1:{}", f.serving.grpc_port))
        .env("YUNSHU_TOKEN", f.health.token.expose())
        .env("YUNSHU_DEPARTMENT", "health")
        .output()
        .expect("run python3 (install grpcio grpcio-tools pytest: e2e/scripts/install-deps.sh)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "python client failed:\n{report}");
    assert!(report.contains("2 passed"), "{report}");
}
