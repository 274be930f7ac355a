//! End to end against two real OpenStack clouds (`e2e/openstack`): the real
//! `yunshu` binary on the embedded store, driven with `yunshuctl` as a
//! department would, with `x86-cloud` and `kunpeng-cloud` registered as
//! foundations. What Nova has is read back through its own API
//! (`e2e/openstack/lib/nova_servers.py`).
//!
//! The clouds are found through `YUNSHU_OPENSTACK_STATE` (the state directory
//! `e2e/openstack/up.sh` wrote). Without it the tests are skipped, except in
//! CI, where that is a failure. They share the clouds, so they take a lock
//! and each uses its own department.

mod attach;
mod cloud;
#[path = "../common/mod.rs"]
mod common;

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Mutex,
    time::{Duration, Instant},
};

use cloud::*;
use common::{Served, mint, text};
use serde_json::Value;

#[test]
fn instances_land_by_architecture_and_delete_cleans_up() {
    let Some(state) = state_dir() else { return };
    let _clouds = CLOUDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let y = Yunshu::new(&state, "e2e-arch");
    y.wait_health("kunpeng-cloud", "HEALTH_READY", Duration::from_secs(60));
    y.wait_health("x86-cloud", "HEALTH_READY", Duration::from_secs(60));

    let mut timings = Vec::new();
    for (name, arch, cloud) in [
        ("arm-1", "aarch64", "kunpeng-cloud"),
        ("x86-1", "x86_64", "x86-cloud"),
    ] {
        let (out, took) = create(&y, name, arch, ("1", "1Gi"), true);
        assert!(out.status.success(), "{}\n{}", text(&out), y.logs());
        timings.push((cloud, took));
        let v = y.wait_phase(name, &["Ready"], Duration::from_secs(5));
        assert!(
            v["status"]["foundation"]
                .as_str()
                .unwrap_or_default()
                .contains(cloud),
            "{name} should be on {cloud}: {v}"
        );
        let uid = uid_of(&v);
        assert!(!uid.is_empty(), "no uid in {v}");
        let servers = y.servers_with_uid(cloud, &uid);
        assert_eq!(
            servers.len(),
            1,
            "exactly one server tagged {uid} on {cloud}: {servers:?}"
        );
        assert_eq!(servers[0]["status"], "ACTIVE", "{servers:?}");
        let other = if cloud == "x86-cloud" {
            "kunpeng-cloud"
        } else {
            "x86-cloud"
        };
        assert!(
            y.servers_with_uid(other, &uid).is_empty(),
            "no server on {other}"
        );
    }

    // Resized while Ready: the foundation's claim grows, then Nova's server
    // takes a flavor of the new size, confirmed and running again.
    let out = y.ctl(&[
        "resize",
        "instance",
        "x86-1",
        "--vcpu",
        "2",
        "--memory",
        "4Gi",
        "--wait",
        "--timeout",
        "3m",
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), y.logs());
    let servers = y.servers_with_uid("x86-cloud", &uid_of(&y.instance("x86-1")));
    let flavor = &servers[0]["flavor"];
    assert_eq!(
        (flavor["vcpus"].as_u64(), flavor["ram"].as_u64()),
        (Some(2), Some(4096)),
        "{servers:?}"
    );
    assert_eq!(servers[0]["status"], "ACTIVE", "{servers:?}");

    // Nothing fits 128 vCPU on one host: Unschedulable, with a reason per foundation.
    let out = y.ctl(&[
        "create",
        "instance",
        "huge",
        "--vcpu",
        "128",
        "--memory",
        "256Gi",
        "--disk",
        "1Gi",
        "--image",
        "kylin-v10",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    y.wait_phase("huge", &["Unschedulable"], Duration::from_secs(20));
    let explain = y.ctl(&["explain", "instance", "huge"]);
    let t = text(&explain);
    assert!(
        t.contains("x86-cloud") && t.contains("kunpeng-cloud"),
        "{t}"
    );
    let out = y.ctl(&["delete", "instance", "huge"]);
    assert!(out.status.success(), "{}", text(&out));

    // Delete removes the server from Nova and returns the quota.
    for (name, cloud) in [("arm-1", "kunpeng-cloud"), ("x86-1", "x86-cloud")] {
        let uid = uid_of(&y.instance(name));
        delete_and_wait_gone(&y, name, cloud, &uid);
    }
    let quota = y.ctl(&["-o", "json", "quota"]);
    let q: Value = serde_json::from_slice(&quota.stdout).expect("quota json");
    let used: u64 = q["resources"]
        .as_array()
        .map(|a| a.iter().map(|r| r["used"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0);
    assert_eq!(used, 0, "usage back to zero after deletes: {q}");

    // Create → Ready through Yunshu (tenant and flavor already made by the
    // creates above) vs `openstack server create --wait` on the same Nova.
    let cold = timings.clone();
    timings.clear();
    for (name, arch, cloud) in [
        ("arm-t", "aarch64", "kunpeng-cloud"),
        ("x86-t", "x86_64", "x86-cloud"),
    ] {
        let (out, took) = create(&y, name, arch, ("1", "1Gi"), true);
        assert!(out.status.success(), "{}\n{}", text(&out), y.logs());
        timings.push((cloud, took));
        let uid = uid_of(&y.instance(name));
        delete_and_wait_gone(&y, name, cloud, &uid);
    }
    let osc = |cloud: &str, name: &str, args: &[&str]| -> Output {
        Command::new("openstack")
            .env("OS_CLIENT_CONFIG_FILE", state.join("clouds.yaml"))
            .args(["--os-cloud", cloud, "server"])
            .args(args)
            .arg(name)
            .output()
            .expect("openstack")
    };
    let mut report = String::new();
    for (cloud, through_yunshu) in &timings {
        let name = format!("ys-timing-{}", std::process::id());
        let started = Instant::now();
        let out = osc(
            cloud,
            &name,
            &[
                "create",
                "--wait",
                "--flavor",
                "m1.tiny",
                "--image",
                "kylin-v10",
                "--network",
                "ys-net",
            ],
        );
        let direct = started.elapsed();
        assert!(out.status.success(), "{}", text(&out));
        let _ = osc(cloud, &name, &["delete", "--wait"]);
        let first = cold
            .iter()
            .find(|(c, _)| c == cloud)
            .map_or(0.0, |(_, d)| d.as_secs_f64());
        report.push_str(&format!(
            "{cloud}: yunshuctl create --wait {:.2}s (first request of the department: {first:.2}s), \
             openstack server create --wait {:.2}s, ratio {:.2}\n",
            through_yunshu.as_secs_f64(),
            direct.as_secs_f64(),
            through_yunshu.as_secs_f64() / direct.as_secs_f64()
        ));
    }
    eprintln!("create-to-ready timing:\n{report}");
}

#[test]
fn kill_9_while_provisioning_leaves_exactly_one_server_each() {
    let Some(state) = state_dir() else { return };
    let _clouds = CLOUDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut y = Yunshu::new(&state, "e2e-crash");
    y.wait_health("x86-cloud", "HEALTH_READY", Duration::from_secs(60));
    y.wait_health("kunpeng-cloud", "HEALTH_READY", Duration::from_secs(60));
    let names: Vec<String> = (0..20).map(|i| format!("crash-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        let arch = if i % 2 == 0 { "x86_64" } else { "aarch64" };
        let (out, _) = create(&y, name, arch, ("1", "1Gi"), false);
        assert!(out.status.success(), "{}", text(&out));
    }
    // Kill as soon as provisioning is under way.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let provisioning = names
            .iter()
            .filter(|n| {
                y.instance(n)["status"]["phase"]
                    .as_str()
                    .is_some_and(|p| p.eq_ignore_ascii_case("Provisioning"))
            })
            .count();
        if provisioning > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing started provisioning\n{}",
            y.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    y.kill9();
    y.start();
    let mut uids = HashSet::new();
    for name in &names {
        let v = y.wait_phase(name, &["Ready"], Duration::from_secs(180));
        uids.insert(uid_of(&v));
    }
    assert_eq!(uids.len(), 20);
    let mut found = 0;
    for cloud in ["x86-cloud", "kunpeng-cloud"] {
        for s in y.servers(cloud) {
            if s["metadata"]["yunshu-department"].as_str() == Some("e2e-crash")
                || s["metadata"]["yunshu-uid"]
                    .as_str()
                    .is_some_and(|u| uids.contains(u))
            {
                let uid = s["metadata"]["yunshu-uid"].as_str().unwrap_or_default();
                assert!(uids.contains(uid), "orphan server {s}");
                found += 1;
            }
        }
    }
    assert_eq!(found, 20, "exactly 20 servers in Nova, no duplicates");
    for (i, name) in names.iter().enumerate() {
        let cloud = if i % 2 == 0 {
            "x86-cloud"
        } else {
            "kunpeng-cloud"
        };
        let uid = uid_of(&y.instance(name));
        let out = y.ctl(&["delete", "instance", name]);
        assert!(out.status.success(), "{}", text(&out));
        let _ = (cloud, uid);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left: usize = ["x86-cloud", "kunpeng-cloud"]
            .iter()
            .map(|c| {
                y.servers(c)
                    .iter()
                    .filter(|s| {
                        s["metadata"]["yunshu-uid"]
                            .as_str()
                            .is_some_and(|u| uids.contains(u))
                    })
                    .count()
            })
            .sum();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} servers left after deletes\n{}",
            y.logs()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn keystone_down_degrades_one_foundation_and_it_recovers() {
    let Some(state) = state_dir() else { return };
    let _clouds = CLOUDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let y = Yunshu::new(&state, "e2e-degraded");
    y.wait_health("kunpeng-cloud", "HEALTH_READY", Duration::from_secs(60));
    y.wait_health("x86-cloud", "HEALTH_READY", Duration::from_secs(60));
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/openstack");
    let down = Command::new("bash")
        .arg(scripts.join("down.sh"))
        .arg(&state)
        .args(["kunpeng-cloud", "keystone"])
        .output()
        .expect("down.sh");
    assert!(down.status.success(), "{}", text(&down));
    let restore = || {
        let up = Command::new("bash")
            .arg(scripts.join("up.sh"))
            .arg(&state)
            .env("YS_OSP_SKIP_INSTALL", "1")
            .output()
            .expect("up.sh");
        assert!(up.status.success(), "{}", text(&up));
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        y.wait_health("kunpeng-cloud", "HEALTH_DEGRADED", Duration::from_secs(60));
        assert_eq!(y.health("x86-cloud"), "HEALTH_READY");
        // An aarch64 request waits with a clear reason; an x86 one is served.
        let (out, _) = create(&y, "arm-wait", "aarch64", ("1", "1Gi"), false);
        assert!(out.status.success(), "{}", text(&out));
        let v = y.wait_phase("arm-wait", &["Unschedulable"], Duration::from_secs(30));
        let explain = text(&y.ctl(&["explain", "instance", "arm-wait"]));
        assert!(
            explain.contains("Degraded"),
            "the reason names the degraded foundation: {explain}\n{v}"
        );
        let (out, _) = create(&y, "x86-now", "x86_64", ("1", "1Gi"), true);
        assert!(out.status.success(), "{}\n{}", text(&out), y.logs());
    }));
    restore();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
    y.wait_health("kunpeng-cloud", "HEALTH_READY", Duration::from_secs(120));
    let v = y.wait_phase("arm-wait", &["Ready"], Duration::from_secs(120));
    assert!(
        v["status"]["foundation"]
            .as_str()
            .unwrap_or_default()
            .contains("kunpeng-cloud"),
        "{v}"
    );
    for (name, cloud) in [("arm-wait", "kunpeng-cloud"), ("x86-now", "x86-cloud")] {
        let uid = uid_of(&y.instance(name));
        assert_eq!(
            y.servers_with_uid(cloud, &uid).len(),
            1,
            "{name} exists once on {cloud}"
        );
        delete_and_wait_gone(&y, name, cloud, &uid);
    }
}
