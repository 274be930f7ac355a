//! yunshuctl end to end: the CLI's commands, in-process, against a real
//! server with real API-token authentication on a loopback port.

#[path = "../common/mod.rs"]
mod common;
mod wait;

use std::time::Duration;

use common::{Run, ctl, instance_stored, set_instance_status, start};
use yunshu_core::model::Phase;
use yunshu_ctl::Exit;

const WEB: &[&str] = &[
    "--vcpu",
    "4",
    "--memory",
    "8Gi",
    "--image",
    "kylin-v10",
    "--require",
    "xinchuang",
];

/// Table text with runs of spaces squeezed to one, for matching rows whose
/// column widths depend on other rows (alignment has its own unit tests).
fn squeeze(table: &str) -> String {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn create_instance<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["create", "instance", name];
    args.extend_from_slice(WEB);
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
async fn a_first_session_creates_reads_lists_and_deletes() {
    let s = start().await;
    let op = &s.operator;

    let catalog = squeeze(&ctl(op, &["catalog"]).await.ok());
    assert!(catalog.contains("c4m8 4 8Gi 4 vCPU, 8 GiB"), "{catalog}");
    assert!(catalog.contains("kylin-v10"), "{catalog}");
    assert!(
        catalog.contains("kunpeng-1 aarch64 Unknown instance,volume az1 arch:aarch64,xinchuang"),
        "{catalog}"
    );

    let out = ctl(op, &create_instance("web-1", &["-l", "app=web"]))
        .await
        .ok();
    assert_eq!(out, "instance web-1 created (Pending)\n");

    let detail = ctl(op, &["get", "instance", "web-1"]).await.ok();
    for want in [
        "Name:            web-1",
        "Phase:           Pending",
        "Requires:        xinchuang",
        "Labels:          app=web",
    ] {
        assert!(detail.contains(want), "missing {want:?} in\n{detail}");
    }

    ctl(
        op,
        &[
            "create",
            "volume",
            "data",
            "--size",
            "100Gi",
            "--attach-to",
            "web-1",
        ],
    )
    .await
    .ok();
    ctl(
        op,
        &[
            "create",
            "bucket",
            "scans",
            "--quota-bytes",
            "10Gi",
            "--versioning",
        ],
    )
    .await
    .ok();

    let list = ctl(op, &["list", "instances"]).await.ok();
    let lines: Vec<_> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("NAME    PHASE     VCPU   MEMORY   DISK   IMAGE"),
        "{list}"
    );
    assert!(
        lines[1].starts_with("web-1   Pending   4      8Gi      40Gi   kylin-v10   -"),
        "{list}"
    );
    let volumes = ctl(op, &["list", "volumes"]).await.ok();
    assert!(
        volumes.contains("data   Pending   100Gi   web-1"),
        "{volumes}"
    );
    let buckets = ctl(op, &["list", "buckets"]).await.ok();
    assert!(
        buckets.contains("scans   Pending   10Gi    -      on"),
        "{buckets}"
    );

    let quota = squeeze(&ctl(op, &["quota"]).await.ok());
    assert!(quota.contains("all vcpu 4 8 4"), "{quota}");
    assert!(quota.contains("all memory 8Gi 16Gi 8Gi"), "{quota}");
    assert!(quota.contains("all volumes 100Gi unlimited -"), "{quota}");

    let deleted = ctl(op, &["delete", "instance", "web-1"]).await.ok();
    assert_eq!(deleted, "instance web-1 deleted\n");
    let gone = ctl(op, &["get", "instance", "web-1"]).await;
    assert_eq!(gone.exit, Exit::NotFound, "{gone:?}");
    assert!(gone.err.starts_with("error: "), "{}", gone.err);
    let quota = squeeze(&ctl(op, &["quota"]).await.ok());
    assert!(quota.contains("all vcpu 0 8 8"), "{quota}");

    let empty = ctl(op, &["list", "instances"]).await;
    assert_eq!(empty.exit, Exit::Ok);
    assert_eq!(empty.out, "");
    assert_eq!(empty.err, "no instances in departments/health\n");
}

#[tokio::test]
async fn exceeding_the_quota_is_exit_5_with_the_exact_numbers() {
    let s = start().await;
    ctl(&s.operator, &create_instance("web-1", &[])).await.ok();
    let over = ctl(
        &s.operator,
        &[
            "create",
            "instance",
            "batch-1",
            "--vcpu",
            "8",
            "--memory",
            "16Gi",
            "--image",
            "kylin-v10",
        ],
    )
    .await;
    assert_eq!(over.exit, Exit::Exhausted, "{over:?}");
    assert_eq!(over.exit.code(), 5);
    assert!(
        over.err
            .starts_with("error: quota exceeded: vcpu requested 8, used 4, limit 8"),
        "{}",
        over.err
    );
    assert_eq!(over.out, "");
}

#[tokio::test]
async fn invalid_fields_are_exit_2_one_per_line_and_write_nothing() {
    let s = start().await;
    let bad = ctl(
        &s.operator,
        &[
            "create",
            "instance",
            "Web_1",
            "--vcpu",
            "3",
            "--memory",
            "8Gi",
            "--image",
            "windows-95",
        ],
    )
    .await;
    assert_eq!(bad.exit, Exit::Usage, "{bad:?}");
    assert_eq!(bad.exit.code(), 2);
    let lines: Vec<_> = bad.err.lines().collect();
    assert_eq!(lines[0], "error: invalid request", "{}", bad.err);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  instance_id: must be a DNS label")),
        "{}",
        bad.err
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  instance.spec.image: unknown image `windows-95`")),
        "{}",
        bad.err
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("no catalog size has 3 vCPU")),
        "{}",
        bad.err
    );
    assert!(lines.len() >= 4, "{}", bad.err);
    let list = ctl(&s.operator, &["list", "instances", "-o", "json"])
        .await
        .json();
    assert_eq!(list, serde_json::json!([]));
}

#[tokio::test]
async fn json_and_yaml_output_parse_with_stable_fields() {
    let s = start().await;
    let created = ctl(
        &s.operator,
        &create_instance("web-1", &["-o", "json", "-l", "app=web"]),
    )
    .await
    .json();
    assert_eq!(created["kind"], "instance");
    assert_eq!(created["name"], "web-1");
    assert_eq!(
        created["metadata"]["name"],
        "departments/health/instances/web-1"
    );
    assert_eq!(created["metadata"]["labels"]["app"], "web");
    assert_eq!(created["spec"]["vcpu"], 4);
    assert_eq!(created["spec"]["memory_mib"], 8192);
    assert_eq!(
        created["spec"]["constraints"]["required_traits"],
        serde_json::json!(["xinchuang"])
    );
    assert_eq!(created["status"]["phase"], "Pending");
    assert!(
        created["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );

    let list = ctl(&s.operator, &["list", "instances", "-o", "json"])
        .await
        .json();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["metadata"]["uid"], created["metadata"]["uid"]);

    let got: serde_json::Value = serde_yaml::from_str(
        &ctl(&s.operator, &["get", "instance", "web-1", "-o", "yaml"])
            .await
            .ok(),
    )
    .expect("yaml");
    assert_eq!(got["status"]["phase"], "Pending");

    let quota = ctl(&s.operator, &["quota", "-o", "json"]).await.json();
    let vcpu = quota["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|u| u["resource_class"] == "vcpu"))
        .cloned()
        .expect("vcpu row");
    assert_eq!(vcpu["used"], 4);
    assert_eq!(vcpu["limit"], 8);

    let catalog = ctl(&s.operator, &["catalog", "-o", "json"]).await.json();
    assert!(
        catalog["sizes"]
            .as_array()
            .is_some_and(|s| s.iter().any(|z| z["name"] == "c4m8"))
    );
    // The proto documents `foundations/{name}`; today's server sends the
    // bare name. Either way the CLI shows `kunpeng-1`.
    let foundation = catalog["foundations"][0]["name"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(foundation.trim_start_matches("foundations/"), "kunpeng-1");
    assert_eq!(catalog["foundations"][0]["architecture"], "aarch64");
}

#[tokio::test]
async fn list_follows_pages_and_filters() {
    let s = start().await;
    for i in 0..3 {
        let name = format!("small-{i}");
        ctl(
            &s.operator,
            &[
                "create",
                "instance",
                &name,
                "--vcpu",
                "1",
                "--memory",
                "1Gi",
                "--image",
                "uos-20",
                "-l",
                &format!("n={i}"),
            ],
        )
        .await
        .ok();
    }
    let names = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    // --limit 2 asks for pages of two and stops; no limit follows every token.
    let two = ctl(
        &s.operator,
        &["list", "instances", "--limit", "2", "-o", "json"],
    )
    .await
    .json();
    assert_eq!(names(two), ["small-0", "small-1"]);
    let all = ctl(&s.operator, &["list", "instances", "-o", "json"])
        .await
        .json();
    assert_eq!(names(all), ["small-0", "small-1", "small-2"]);
    let labelled = ctl(
        &s.operator,
        &["list", "instances", "-l", "n=1", "-o", "json"],
    )
    .await
    .json();
    assert_eq!(names(labelled), ["small-1"]);
    let ready = ctl(&s.operator, &["list", "instances", "--phase", "ready"]).await;
    assert_eq!(ready.exit, Exit::Ok);
    assert_eq!(ready.err, "no instances in departments/health match\n");
}

#[tokio::test]
async fn a_request_id_makes_a_retried_create_safe() {
    let s = start().await;
    let args = create_instance(
        "web-1",
        &[
            "--request-id",
            "7d9f6a52-0d7e-4c43-9a0b-1f2e3d4c5b6a",
            "-o",
            "json",
        ],
    );
    let first = ctl(&s.operator, &args).await.json();
    let retry = ctl(&s.operator, &args).await.json();
    assert_eq!(first["metadata"]["uid"], retry["metadata"]["uid"]);
    assert_eq!(
        first["metadata"]["request_id"],
        "7d9f6a52-0d7e-4c43-9a0b-1f2e3d4c5b6a"
    );
    let quota = squeeze(&ctl(&s.operator, &["quota"]).await.ok());
    assert!(quota.contains("all vcpu 4 8 4"), "charged once:\n{quota}");
    // Without a request id, the same name is a conflict.
    let again = ctl(&s.operator, &create_instance("web-1", &[])).await;
    assert_eq!(again.exit, Exit::Conflict, "{again:?}");
}

#[tokio::test]
async fn credentials_are_checked_and_departments_isolated() {
    let s = start().await;
    ctl(&s.operator, &create_instance("web-1", &[])).await.ok();

    let viewer_reads = ctl(&s.viewer, &["get", "instance", "web-1"]).await;
    assert_eq!(viewer_reads.exit, Exit::Ok, "{viewer_reads:?}");
    let viewer_writes = ctl(&s.viewer, &["delete", "instance", "web-1"]).await;
    assert_eq!(viewer_writes.exit, Exit::Denied, "{viewer_writes:?}");
    assert_eq!(viewer_writes.exit.code(), 4);

    let other = ctl(
        &s.other,
        &["get", "instance", "departments/health/instances/web-1"],
    )
    .await;
    assert_eq!(other.exit, Exit::NotFound, "{other:?}");

    let forged = ctl(
        &s.operator,
        &[
            "quota",
            "--token",
            "ysk_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000",
        ],
    )
    .await;
    assert_eq!(forged.exit, Exit::Denied, "{forged:?}");
    assert!(
        forged.err.contains("hint: check the token"),
        "{}",
        forged.err
    );
    assert!(
        !forged.err.contains("0000000000"),
        "the token must not be echoed: {}",
        forged.err
    );
}

/// An admin works in every department with `-d`, though granted in one.
#[tokio::test]
async fn an_admin_works_in_any_department_with_d() {
    let s = start().await;
    ctl(&s.operator, &create_instance("web-1", &[])).await.ok();
    let listed = ctl(&s.admin, &["-d", "health", "list", "instances"])
        .await
        .ok();
    assert!(listed.contains("web-1"), "{listed}");
    let quota = ctl(&s.admin, &["-d", "transport", "quota"]).await;
    assert_eq!(quota.exit, Exit::Ok, "{quota:?}");
    ctl(&s.admin, &["-d", "health", "stop", "instance", "web-1"])
        .await
        .ok();
    // Not so an operator: another department is not theirs to name.
    let other = ctl(&s.other, &["-d", "health", "list", "instances"]).await;
    assert_eq!(other.exit, Exit::Denied, "{other:?}");
}

#[tokio::test]
async fn placement_commands_print_the_servers_unimplemented_message_without_a_scheduler() {
    let s = start().await;
    ctl(&s.operator, &create_instance("web-1", &[])).await.ok();
    let explain = ctl(&s.operator, &["explain", "instance", "web-1"]).await;
    assert_eq!(explain.exit, Exit::Error, "{explain:?}");
    assert_eq!(
        explain.err,
        "error: placement is not served by this process: it runs without a scheduler\n"
    );
    let dry = ctl(
        &s.operator,
        &[
            "dry-run",
            "instance",
            "--vcpu",
            "4",
            "--memory",
            "8Gi",
            "--image",
            "kylin-v10",
        ],
    )
    .await;
    assert_eq!(dry.exit, Exit::Error, "{dry:?}");
    assert!(
        dry.err
            .starts_with("error: placement is not served by this process"),
        "{}",
        dry.err
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_exit_7() {
    let s = start().await;
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let run: Run = ctl(&s.operator, &["quota", "--endpoint", &endpoint]).await;
    assert_eq!(run.exit, Exit::Unavailable, "{run:?}");
    assert!(
        run.err
            .starts_with(&format!("error: failed to connect to {endpoint}")),
        "{}",
        run.err
    );
}

#[tokio::test]
async fn config_init_refuses_to_overwrite_and_show_redacts_the_token() {
    let s = start().await;
    let again = ctl(
        &s.operator,
        &["config", "init", "--endpoint", "http://127.0.0.1:1"],
    )
    .await;
    assert_eq!(again.exit, Exit::Conflict, "{again:?}");
    assert!(again.err.contains("pass --force"), "{}", again.err);

    let shown = ctl(&s.operator, &["config", "show", "-o", "json"])
        .await
        .json();
    assert_eq!(shown["department"], "health");
    assert_eq!(shown["endpoint"], format!("http://{}", s.addr));
    assert!(
        shown["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("file:")),
        "{shown}"
    );

    let file = std::fs::read_to_string(&s.operator).expect("config file");
    assert!(file.contains("tokenFile:"), "{file}");
    assert!(
        !file.contains("ysk_"),
        "the token stays in its own file:\n{file}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&s.operator)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "config must be private, mode {mode:o}");
    }
    let missing_endpoint = ctl(&s.dir.path().join("new.yaml"), &["config", "init"]).await;
    assert_eq!(missing_endpoint.exit, Exit::Usage, "{missing_endpoint:?}");
}

#[tokio::test]
async fn no_department_is_a_usage_error_that_says_how_to_set_it() {
    let s = start().await;
    let cfg = s.dir.path().join("nodept.yaml");
    let token = s.dir.path().join("operator.token");
    common::config_init(&cfg, &format!("http://{}", s.addr), "", &token).await;
    let run = ctl(&cfg, &["list", "instances"]).await;
    assert_eq!(run.exit, Exit::Usage, "{run:?}");
    assert!(run.err.contains("--department"), "{}", run.err);
}
