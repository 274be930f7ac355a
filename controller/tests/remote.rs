//! Journey 4 end to end: a cloud with no in-tree adapter, served by the
//! Python example adapter (`adapters/remote/examples/python`), registered
//! as a Foundation with `adapter: remote`. A department creates, stops,
//! attaches to and deletes on it with `yunshuctl` exactly as on any other
//! foundation, and the adapter sees the same resources.

mod common;
#[path = "../../adapters/remote/tests/common/python.rs"]
mod python;

use std::time::{Duration, Instant};

use common::{Served, mint, text};
use python::PythonAdapter;
use serde_json::Value;

/// The catalog both tests' departments order from.
const CATALOG: &str = r#"catalog:
  maxDiskGib: 100
  maxVolumeGib: 100
  sizes:
    - { name: c2m4, vcpu: 2, memoryMib: 4096 }
    - { name: c4m8, vcpu: 4, memoryMib: 8192 }
  images:
    - { name: kylin-v10, architectures: [x86_64] }
"#;

/// The vendor's cloud: the Python example adapter started with `flags`,
/// and the credentials file a foundation reaches it with.
fn vendor_cloud(dir: &std::path::Path, flags: &[&str]) -> (PythonAdapter, std::path::PathBuf) {
    let adapter_token = dir.join("adapter.token");
    std::fs::write(&adapter_token, "vendor-adapter-token\n").expect("token");
    let adapter = PythonAdapter::start_with(&adapter_token, flags);
    let credentials = dir.join("vendor.credentials.yaml");
    std::fs::write(&credentials, "token: vendor-adapter-token\n").expect("credentials");
    (adapter, credentials)
}

#[test]
fn a_department_uses_a_cloud_served_by_a_python_adapter() {
    let mut served = Served::new("3s", "info");
    let dir = served.dir().to_owned();
    let (adapter, credentials) = vendor_cloud(&dir, &[]);

    let bad_credentials = dir.join("wrong.credentials.yaml");
    std::fs::write(&bad_credentials, "token: not-the-token\n").expect("credentials");

    let (token, identity, _) = mint(&dir, "lin", "operator");
    let (_, admin_identity, admin_token) = mint(&dir, "root", "admin");
    std::fs::write(
        dir.join("yunshu.yaml"),
        format!(
            r#"{CATALOG}departments:
  - name: gov
    spec:
      identities:
        - {identity}
      quota: {{ hard: {{ vcpu: 8, memory_mib: 16384, disk_gib: 100, volume_gib: 100, buckets: 2, bucket_bytes: 1073741824 }} }}
  - name: ops
    spec:
      identities:
        - {admin_identity}
foundations:
  - name: vendor-cloud
    spec:
      adapter: remote
      endpoint: "{endpoint}"
      traits: ["arch:x86_64"]
      capacity: {{ buckets: 100, bucket_bytes: 1099511627776 }}
      tariff: {{ vcpu: 3600, volume_gib: 3600 }}
      credentials: {{ path: "{}" }}
  - name: vendor-cloud-misconfigured
    spec:
      adapter: remote
      endpoint: "{endpoint}"
      credentials: {{ path: "{}" }}
"#,
            credentials.display(),
            bad_credentials.display(),
            endpoint = adapter.endpoint(),
        ),
    )
    .expect("config");
    served.start();
    let ctl = |args: &[&str]| served.ctl("gov", &token, args);

    let out = ctl(&[
        "create",
        "instance",
        "web-1",
        "--vcpu",
        "2",
        "--memory",
        "4Gi",
        "--disk",
        "1Gi",
        "--image",
        "kylin-v10",
        "--wait",
        "--timeout",
        "1m",
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), served.logs());
    let web = get(&ctl, "instance", "web-1");
    assert_eq!(web["status"]["phase"], "Ready", "{web}");
    assert!(
        web["status"]["foundation"]
            .as_str()
            .unwrap_or_default()
            .contains("vendor-cloud"),
        "{web}"
    );
    assert!(
        web.to_string().contains("10.0.0."),
        "the adapter's address is reported: {web}"
    );

    let out = ctl(&[
        "create",
        "volume",
        "data-1",
        "--size",
        "1Gi",
        "--attach-to",
        "web-1",
        "--wait",
        "--timeout",
        "1m",
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), served.logs());
    let data = get(&ctl, "volume", "data-1");
    assert_eq!(data["status"]["phase"], "Ready", "{data}");

    // Both are metered on the foundation they were placed on, at its
    // tariff: at 3600 a unit-hour, each vCPU and GiB costs 1 a second.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ctl(&["-o", "json", "bill"]);
        assert!(out.status.success(), "{}", text(&out));
        let bill: Value = serde_json::from_slice(&out.stdout).expect("json");
        let amount = |class: &str| {
            bill["lines"].as_array().and_then(|lines| {
                lines.iter().find_map(|l| {
                    (l["foundation"] == "foundations/vendor-cloud" && l["resource_class"] == class)
                        .then(|| l["amount"].as_str()?.parse::<f64>().ok())
                        .flatten()
                })
            })
        };
        if amount("vcpu").is_some_and(|a| a >= 2.0)
            && amount("volume_gib").is_some_and(|a| a >= 1.0)
        {
            assert_eq!(bill["currency"], "CNY", "{bill}");
            let table = text(&ctl(&["bill"]));
            assert!(
                table.contains("vCPU-hours") && table.contains("Total"),
                "{table}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not metered: {bill}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // Detached and attached again over the API, waiting for the cloud.
    // The last is already so: done at once.
    for (verb, timeout) in [("detach", "1m"), ("attach", "1m"), ("attach", "10s")] {
        let mut args = vec![verb, "volume", "data-1", "--wait", "--timeout", timeout];
        if verb == "attach" {
            args.extend(["--to", "web-1"]);
        }
        let out = ctl(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            text(&out),
            served.logs()
        );
        let attached = get(&ctl, "volume", "data-1")["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Attached").cloned())
            .unwrap_or_default();
        let want = if verb == "attach" { "True" } else { "False" };
        assert!(attached.to_string().contains(want), "{args:?}: {attached}");
    }

    // The adapter serves no buckets (its capabilities say so), so a bucket
    // is not placed there even though the spec declares bucket capacity.
    let out = ctl(&["create", "bucket", "b-1", "--quota-bytes", "1Mi"]);
    assert!(out.status.success(), "{}\n{}", text(&out), served.logs());
    let deadline = Instant::now() + Duration::from_secs(10);
    let bucket = loop {
        let b = get(&ctl, "bucket", "b-1");
        if b["status"]["phase"] == "Unschedulable" {
            break b;
        }
        assert!(Instant::now() < deadline, "b-1 never Unschedulable: {b}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(bucket.to_string().contains("capability"), "{bucket}");
    let out = ctl(&["delete", "bucket", "b-1"]);
    assert!(out.status.success(), "{}", text(&out));

    // Resized while Ready: the foundation's claim grows first, then the
    // cloud resizes the instance, and its probe counts the new size.
    let out = ctl(&[
        "resize",
        "instance",
        "web-1",
        "--vcpu",
        "4",
        "--memory",
        "8Gi",
        "--wait",
        "--timeout",
        "1m",
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), served.logs());
    let web = get(&ctl, "instance", "web-1");
    assert_eq!(web["status"]["phase"], "Ready", "{web}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let used =
            foundation_status(served.grpc_port, &admin_token, "vendor-cloud").and_then(|s| {
                let vcpu = yunshu_proto::api::v1::ResourceClass::Vcpu as i32;
                s.inventory
                    .iter()
                    .find(|i| i.resource_class == vcpu)
                    .map(|i| i.used)
            });
        if used == Some(4) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cloud holds {used:?} vCPUs, not 4"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let out = ctl(&["stop", "instance", "web-1", "--wait", "--timeout", "1m"]);
    assert!(out.status.success(), "{}\n{}", text(&out), served.logs());

    for (kind, name) in [("volume", "data-1"), ("instance", "web-1")] {
        let out = ctl(&["delete", kind, name, "--wait", "--timeout", "1m"]);
        assert!(out.status.success(), "{}\n{}", text(&out), served.logs());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ctl(&["-o", "json", "list", "instances"]);
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if listed.to_string().contains("web-1") {
            assert!(Instant::now() < deadline, "web-1 never went: {listed}");
            std::thread::sleep(Duration::from_millis(200));
        } else {
            break;
        }
    }
    // The foundation whose adapter refuses Yunshu's token says so, and is
    // misconfigured rather than down.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = ready_condition(served.grpc_port, &admin_token, "vendor-cloud-misconfigured");
        if let Some((health, reason, message)) = &ready
            && reason == "Unauthorized"
        {
            assert_eq!(health, "HEALTH_DEGRADED", "{ready:?}");
            assert!(message.contains("bearer token"), "{message}");
            break;
        }
        assert!(Instant::now() < deadline, "never Unauthorized: {ready:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let logs = served.logs();
    assert!(
        logs.contains("remote adapter capabilities"),
        "the capabilities were asked for: {logs}"
    );
    assert!(!logs.contains("vendor-adapter-token"), "{logs}");
}

/// A resize waits while the foundation has no room for it, saying so, and
/// can be undone meanwhile; once room is freed it goes ahead.
#[test]
fn a_resize_waits_for_room_and_can_be_undone() {
    let mut served = Served::new("3s", "info");
    let dir = served.dir().to_owned();
    // Five vCPUs in all: two instances of two leave one free.
    let (adapter, credentials) = vendor_cloud(&dir, &["--vcpu", "5"]);
    let (token, identity, _) = mint(&dir, "lin", "operator");
    std::fs::write(
        dir.join("yunshu.yaml"),
        format!(
            r#"{CATALOG}departments:
  - name: gov
    spec:
      identities:
        - {identity}
      quota: {{ hard: {{ vcpu: 16, memory_mib: 65536, disk_gib: 100 }} }}
foundations:
  - name: vendor-cloud
    spec:
      adapter: remote
      endpoint: "{}"
      traits: ["arch:x86_64"]
      credentials: {{ path: "{}" }}
"#,
            adapter.endpoint(),
            credentials.display(),
        ),
    )
    .expect("config");
    served.start();
    let ctl = |args: &[&str]| served.ctl("gov", &token, args);
    let run = |args: &[&str]| {
        let out = ctl(args);
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            text(&out),
            served.logs()
        );
    };
    for name in ["web-1", "web-2"] {
        run(&[
            "create",
            "instance",
            name,
            "--vcpu",
            "2",
            "--memory",
            "4Gi",
            "--disk",
            "1Gi",
            "--image",
            "kylin-v10",
            "--wait",
            "--timeout",
            "1m",
        ]);
    }
    let resize = |vcpu: &str, memory: &str| {
        run(&[
            "resize",
            "instance",
            "web-1",
            "--vcpu",
            vcpu,
            "--memory",
            memory,
            "--wait",
            "--timeout",
            "1m",
        ]);
    };

    // Four would need three free: admitted against the quota, then waiting,
    // which `--wait` shows until it gives up (exit 7).
    let out = ctl(&[
        "resize",
        "instance",
        "web-1",
        "--vcpu",
        "4",
        "--memory",
        "8Gi",
        "--wait",
        "--timeout",
        "8s",
    ]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}\n{}",
        text(&out),
        served.logs()
    );
    assert!(
        text(&out).contains("observed 1: waiting for room on foundation vendor-cloud"),
        "{}",
        text(&out)
    );
    let web = get(&ctl, "instance", "web-1");
    assert_eq!(web["status"]["phase"], "Ready", "{web}");
    assert_eq!(web["spec"]["vcpu"], 4, "admitted: {web}");

    // Undone: back to its size at once, and the message goes.
    resize("2", "4Gi");
    let web = get(&ctl, "instance", "web-1");
    assert_eq!(
        web["status"]["message"].as_str().unwrap_or_default(),
        "",
        "{web}"
    );

    // With web-2 gone there is room, and the resize goes ahead.
    run(&["delete", "instance", "web-2", "--wait", "--timeout", "1m"]);
    resize("4", "8Gi");
    let web = get(&ctl, "instance", "web-1");
    assert_eq!(web["spec"]["vcpu"], 4, "{web}");
    assert_eq!(
        web["status"]["message"].as_str().unwrap_or_default(),
        "",
        "{web}"
    );
}

fn get(ctl: &impl Fn(&[&str]) -> std::process::Output, kind: &str, name: &str) -> Value {
    let out = ctl(&["-o", "json", "get", kind, name]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The foundation's health and its Ready condition's reason and message,
/// through the admin API.
fn ready_condition(port: u16, admin_token: &str, name: &str) -> Option<(String, String, String)> {
    let status = foundation_status(port, admin_token, name)?;
    let ready = status.conditions.iter().find(|c| c.r#type == "Ready")?;
    Some((
        status.health().as_str_name().to_owned(),
        ready.reason.clone(),
        ready.message.clone(),
    ))
}

/// The foundation's status, through the admin API.
fn foundation_status(
    port: u16,
    admin_token: &str,
    name: &str,
) -> Option<yunshu_proto::api::v1::FoundationStatus> {
    use yunshu_proto::api::v1::{GetFoundationRequest, admin_service_client::AdminServiceClient};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut c = AdminServiceClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .ok()?;
        let mut req = tonic::Request::new(GetFoundationRequest {
            name: format!("foundations/{name}"),
        });
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {admin_token}").parse().expect("header"),
        );
        c.get_foundation(req)
            .await
            .ok()?
            .into_inner()
            .foundation?
            .status
    })
}
