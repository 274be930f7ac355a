//! yunshuctl's instance actions (start, stop, reboot, resize), bucket
//! credentials and purge, in-process against a real server with real
//! API-token authentication on a loopback port. The test plays the
//! provisioner by writing status into the store, as the runtime will; the
//! calls that need the runtime's adapters (reboot, credentials) are served
//! without them here and answer FAILED_PRECONDITION, which is what the CLI
//! must then report.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{ctl, instance_stored, read_object, set_bucket_status, set_instance_status, start};
use yunshu_core::{
    meta::{Condition, ConditionStatus, Kind, condition_types},
    model::{InstanceSpec, Phase, PowerState},
    store::Store,
};
use yunshu_ctl::Exit;

const WEB: &[&str] = &[
    "create",
    "instance",
    "web-1",
    "--vcpu",
    "4",
    "--memory",
    "8Gi",
    "--image",
    "kylin-v10",
];

fn ready_condition(generation: u64, message: &str) -> Condition {
    Condition {
        type_: condition_types::READY.into(),
        status: ConditionStatus::True,
        reason: "Provisioned".into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Utc::now(),
    }
}

/// Makes `web-1` Ready at its current generation, as the provisioner does.
async fn make_ready(store: &dyn Store) {
    set_instance_status(store, "web-1", |o| {
        o.status.phase = Phase::Ready;
        o.status.placement.foundation = Some("kunpeng-1".into());
        o.status.addresses = vec!["10.2.0.14".into()];
        o.status.conditions = vec![ready_condition(
            o.meta.generation,
            "ACTIVE on foundation kunpeng-1",
        )];
    })
    .await;
}

/// Plays the provisioner converging a power change: waits until the spec
/// asks for `power` at a new generation, lets the CLI see it pending, then
/// reports the generation observed.
async fn converge_power(store: &dyn Store, power: PowerState, cloud_status: &str) {
    let mut generation = None;
    for _ in 0..250 {
        let o = read_object::<InstanceSpec>(store, Kind::Instance, "web-1")
            .await
            .expect("web-1 exists");
        if o.spec.power == power && o.meta.generation > 1 {
            generation = Some(o.meta.generation);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let generation = generation.expect("the CLI changed the power state");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let message = format!("{cloud_status} on foundation kunpeng-1");
    set_instance_status(store, "web-1", |o| {
        o.status.conditions = vec![ready_condition(generation, &message)];
    })
    .await;
}

#[tokio::test]
async fn stop_wait_returns_once_the_new_generation_is_observed() {
    let s = start().await;
    ctl(&s.operator, WEB).await.ok();
    instance_stored(&*s.store, "web-1").await;
    make_ready(&*s.store).await;

    let args = ["stop", "instance", "web-1", "--wait", "--timeout", "30s"];
    let (run, ()) = tokio::join!(
        ctl(&s.operator, &args),
        converge_power(&*s.store, PowerState::Stopped, "SHUTOFF")
    );
    let out = run.ok();
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(
        lines[0],
        "instance web-1 stop requested; waiting until Ready at generation 2 or Failed (timeout 30s)",
        "{out}"
    );
    assert!(
        lines[1].ends_with("Ready          applying generation 2, observed 1"),
        "{out}"
    );
    assert!(
        lines[2].ends_with("Ready          SHUTOFF on foundation kunpeng-1"),
        "{out}"
    );
    assert_eq!(lines[3], "instance web-1 stopped", "{out}");
    assert_eq!(lines.len(), 4, "{out}");

    let got = ctl(&s.operator, &["get", "instance", "web-1", "-o", "json"])
        .await
        .json();
    assert_eq!(got["spec"]["power"], "Stopped");
    assert_eq!(got["metadata"]["generation"], 2);

    // Start again, with JSON: progress on stderr, the instance on stdout.
    let args = [
        "start",
        "instance",
        "web-1",
        "--wait",
        "--timeout",
        "30s",
        "-o",
        "json",
    ];
    let (run, ()) = tokio::join!(
        ctl(&s.operator, &args),
        converge_power(&*s.store, PowerState::Running, "ACTIVE")
    );
    assert!(
        run.err
            .contains("Ready          ACTIVE on foundation kunpeng-1"),
        "{}",
        run.err
    );
    let v = run.json();
    assert_eq!(v["spec"]["power"], "Running");
    assert_eq!(v["metadata"]["generation"], 3);
    assert_eq!(v["status"]["conditions"][0]["observed_generation"], 3);
}

#[tokio::test]
async fn stop_without_wait_prints_one_line_and_wait_times_out_with_exit_7() {
    let s = start().await;
    ctl(&s.operator, WEB).await.ok();
    instance_stored(&*s.store, "web-1").await;
    make_ready(&*s.store).await;

    let run = ctl(&s.operator, &["stop", "instance", "web-1"]).await;
    assert_eq!(run.ok(), "instance web-1 stop requested\n");
    // Stopping a stopped instance changes nothing and is no error.
    let again = ctl(&s.operator, &["stop", "instance", "web-1", "-o", "json"])
        .await
        .json();
    assert_eq!(again["metadata"]["generation"], 2);

    // Nobody converges the start: --wait gives up, naming what is pending.
    let run = ctl(
        &s.operator,
        &["start", "instance", "web-1", "--wait", "--timeout", "1s"],
    )
    .await;
    assert_eq!(run.exit, Exit::Unavailable, "{run:?}");
    assert_eq!(
        run.err,
        "error: timed out after 1s waiting for instance web-1 \
         (still Ready, generation 3 not yet applied)\n"
    );

    let missing = ctl(&s.operator, &["start", "instance", "web-9"]).await;
    assert_eq!(missing.exit, Exit::NotFound, "{missing:?}");
    let viewer = ctl(&s.viewer, &["stop", "instance", "web-1"]).await;
    assert_eq!(viewer.exit, Exit::Denied, "{viewer:?}");
}

#[tokio::test]
async fn resize_is_admitted_against_the_quota() {
    let s = start().await;
    ctl(&s.operator, WEB).await.ok();
    let run = ctl(
        &s.operator,
        &[
            "resize", "instance", "web-1", "--vcpu", "2", "--memory", "4Gi",
        ],
    )
    .await;
    assert_eq!(run.ok(), "instance web-1 resize to 2 vCPU, 4Gi requested\n");
    let got = ctl(&s.operator, &["get", "instance", "web-1", "-o", "json"])
        .await
        .json();
    assert_eq!(
        (
            got["spec"]["vcpu"].clone(),
            got["spec"]["memory_mib"].clone()
        ),
        (2.into(), 4096.into())
    );
    let quota = ctl(&s.operator, &["quota", "-o", "json"]).await.json();
    let vcpu = quota["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|u| u["resource_class"] == "vcpu"))
        .cloned()
        .expect("vcpu row");
    assert_eq!(vcpu["used"], 2, "{quota}");

    let over = ctl(
        &s.operator,
        &[
            "resize", "instance", "web-1", "--vcpu", "16", "--memory", "32Gi",
        ],
    )
    .await;
    assert_eq!(over.exit, Exit::Exhausted, "{over:?}");
    assert!(
        over.err.starts_with("error: quota exceeded"),
        "{}",
        over.err
    );
    let bad = ctl(
        &s.operator,
        &[
            "resize", "instance", "web-1", "--vcpu", "3", "--memory", "8Gi",
        ],
    )
    .await;
    assert_eq!(bad.exit, Exit::Usage, "{bad:?}");
    assert!(
        bad.err.contains("no catalog size has 3 vCPU"),
        "{}",
        bad.err
    );
}

#[tokio::test]
async fn resize_wait_follows_the_instance_until_its_new_size_is_ready() {
    let s = start().await;
    ctl(&s.operator, WEB).await.ok();
    let store = s.store.clone();
    let provisioner = async move {
        let mut resized = None;
        for _ in 0..250 {
            let o = read_object::<InstanceSpec>(&*store, Kind::Instance, "web-1")
                .await
                .expect("exists");
            if o.spec.vcpu == 2 {
                resized = Some(o.meta.generation);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let generation = resized.expect("resized");
        tokio::time::sleep(Duration::from_millis(300)).await;
        set_instance_status(&*store, "web-1", |o| {
            o.status.phase = Phase::Ready;
            o.status.addresses = vec!["10.2.0.15".into()];
            o.status.conditions = vec![ready_condition(generation, "ACTIVE on kunpeng-1")];
        })
        .await;
    };
    let args = [
        "resize",
        "instance",
        "web-1",
        "--vcpu",
        "2",
        "--memory",
        "4Gi",
        "--wait",
        "--timeout",
        "30s",
    ];
    let (run, ()) = tokio::join!(ctl(&s.operator, &args), provisioner);
    let out = run.ok();
    let lines: Vec<_> = out.lines().collect();
    assert!(lines[1].ends_with("Pending"), "{out}");
    assert!(
        lines[2].ends_with("Ready          ACTIVE on kunpeng-1"),
        "{out}"
    );
    assert_eq!(
        lines.last(),
        Some(&"instance web-1 resized to 2 vCPU, 4Gi"),
        "{out}"
    );
}

#[tokio::test]
async fn refused_actions_print_the_servers_message_and_exit_6() {
    let s = start().await;
    ctl(&s.operator, WEB).await.ok();
    let reboot = ctl(&s.operator, &["reboot", "instance", "web-1", "--wait"]).await;
    assert_eq!(reboot.exit, Exit::Conflict, "{reboot:?}");
    assert_eq!(reboot.exit.code(), 6);
    assert_eq!(reboot.out, "");
    let first = reboot.err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains("web-1") && first.len() > 20,
        "{}",
        reboot.err
    );

    ctl(
        &s.operator,
        &["create", "bucket", "scans", "--quota-bytes", "1Gi"],
    )
    .await
    .ok();
    let issue = ctl(
        &s.operator,
        &[
            "credentials",
            "issue",
            "bucket",
            "scans",
            "--ttl",
            "1h",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(issue.exit, Exit::Conflict, "{issue:?}");
    assert_eq!(issue.out, "", "no credentials, no output");
    assert!(
        issue.err.starts_with("error: ")
            && issue.err.contains("scans")
            && !issue.err.contains("shown only once"),
        "{}",
        issue.err
    );
    let revoke = ctl(
        &s.operator,
        &["credentials", "revoke", "bucket", "scans", "AKIA0001"],
    )
    .await;
    assert_eq!(revoke.exit, Exit::Conflict, "{revoke:?}");

    let unknown = ctl(&s.operator, &["credentials", "issue", "bucket", "nope"]).await;
    assert_eq!(unknown.exit, Exit::NotFound, "{unknown:?}");
    let viewer = ctl(&s.viewer, &["credentials", "issue", "bucket", "scans"]).await;
    assert_eq!(viewer.exit, Exit::Denied, "{viewer:?}");
}

#[tokio::test]
async fn buckets_show_their_usage_and_delete_with_purge() {
    let s = start().await;
    ctl(
        &s.operator,
        &["create", "bucket", "scans", "--quota-bytes", "10Gi"],
    )
    .await
    .ok();
    let pending = ctl(&s.operator, &["list", "buckets"]).await.ok();
    let lines: Vec<_> = pending.lines().collect();
    assert!(
        lines[0].starts_with("NAME    PHASE     QUOTA   USED   VERSIONING"),
        "{pending}"
    );
    assert!(
        lines[1].starts_with("scans   Pending   10Gi    -      off"),
        "{pending}"
    );

    set_bucket_status(&*s.store, "scans", |o| {
        o.status.phase = Phase::Ready;
        o.status.cloud_id = Some("yunshu-health-scans".into());
        o.status.used_bytes = Some(3 << 30);
        o.status.used_objects = Some(42);
    })
    .await;
    let list = ctl(&s.operator, &["list", "buckets"]).await.ok();
    assert!(
        list.contains("scans   Ready   10Gi    3Gi, 42 objects   off"),
        "{list}"
    );
    let detail = ctl(&s.operator, &["get", "bucket", "scans"]).await.ok();
    assert!(
        detail.contains("Used:            3Gi of 10Gi (30%), 42 objects"),
        "{detail}"
    );
    let json = ctl(&s.operator, &["get", "bucket", "scans", "-o", "json"])
        .await
        .json();
    assert_eq!(json["status"]["used_bytes"], 3_u64 << 30);
    assert_eq!(json["status"]["used_objects"], 42);

    let wrong_kind = ctl(&s.operator, &["delete", "instance", "web-1", "--purge"]).await;
    assert_eq!(wrong_kind.exit, Exit::Usage, "{wrong_kind:?}");
    assert_eq!(
        wrong_kind.err,
        "error: --purge applies to buckets only, not to instances\n"
    );
    let purged = ctl(&s.operator, &["delete", "bucket", "scans", "--purge"]).await;
    assert_eq!(purged.exit, Exit::Ok, "{purged:?}");
    assert!(purged.out.starts_with("bucket scans "), "{}", purged.out);
}
