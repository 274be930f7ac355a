//! Placement through the real binaries: foundations declared in the config
//! file, the scheduling loop placing requests by architecture, and
//! `yunshuctl explain` / `dry-run` showing why, per foundation.

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::{BIN, CTL, Serving, text};

#[test]
fn requests_land_by_architecture_and_explain_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    let minted = Command::new(BIN)
        .args(["token", "--id", "lin", "--out"])
        .arg(&token_file)
        .output()
        .expect("token");
    let identity = String::from_utf8_lossy(&minted.stdout)
        .lines()
        .find(|l| l.contains("apiToken"))
        .expect("identity")
        .trim()
        .to_owned();
    let foundation = |name: &str, arch: &str, vcpu: u32| {
        format!(
            "  - name: {name}\n    spec: {{ adapter: openstack, endpoint: \"http://127.0.0.1:5000/v3\", traits: [\"arch:{arch}\"], capacity: {{ vcpu: {vcpu}, memory_mib: 262144, disk_gib: 4096 }} }}\n"
        )
    };
    let config = dir.path().join("yunshu.yaml");
    std::fs::write(
        &config,
        format!(
            "departments:\n  - name: health\n    spec:\n      identities:\n        {identity}\n      quota: {{ hard: {{ vcpu: 200 }}, perFoundation: {{ kunpeng-1: {{ vcpu: 40 }} }} }}\nfoundations:\n{}{}",
            foundation("x86-phase1", "x86_64", 64),
            foundation("kunpeng-1", "aarch64", 32)
        ),
    )
    .expect("config");
    let serving = Serving::start(&[
        "--store",
        "memory",
        "--config",
        config.to_str().expect("utf8"),
    ]);
    let ctl = |args: &[&str]| {
        Command::new(CTL)
            .args([
                "--endpoint",
                &serving.grpc_url(),
                "--department",
                "health",
                "--token-file",
            ])
            .arg(&token_file)
            .args(args)
            .env_remove("YUNSHU_TOKEN")
            .env_remove("YUNSHUCTL_CONFIG")
            .env("XDG_CONFIG_HOME", dir.path())
            .output()
            .expect("yunshuctl")
    };
    let phase_of = |name: &str| -> (String, String) {
        let out = ctl(&["-o", "json", "get", "instance", name]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let status = &v["status"];
        (
            status["phase"].as_str().unwrap_or_default().to_owned(),
            status["foundation"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let wait_for = |name: &str, want: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (phase, foundation) = phase_of(name);
            if phase.eq_ignore_ascii_case(want) {
                return foundation;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached {want}: phase {phase:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    for (name, arch) in [("arm-1", "aarch64"), ("x86-1", "x86_64")] {
        let out = ctl(&[
            "create",
            "instance",
            name,
            "--vcpu",
            "4",
            "--memory",
            "8Gi",
            "--image",
            "kylin-v10",
            "--require",
            &format!("arch:{arch}"),
        ]);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert!(wait_for("arm-1", "Scheduled").contains("kunpeng-1"));
    assert!(wait_for("x86-1", "Scheduled").contains("x86-phase1"));

    let quota = ctl(&["-o", "json", "quota"]);
    assert!(quota.status.success(), "{}", text(&quota));
    let q: serde_json::Value = serde_json::from_slice(&quota.stdout).expect("quota json");
    let kunpeng = &q["foundations"][0];
    assert_eq!(kunpeng["foundation"], "foundations/kunpeng-1", "{q}");
    assert_eq!(
        (
            kunpeng["resources"][0]["used"].as_u64(),
            kunpeng["resources"][0]["limit"].as_u64()
        ),
        (Some(4), Some(40)),
        "{q}"
    );

    let explain = ctl(&["explain", "instance", "arm-1"]);
    assert!(explain.status.success(), "{}", text(&explain));
    let t = text(&explain);
    assert!(
        t.contains("kunpeng-1") && t.contains("x86-phase1") && t.contains("traits"),
        "{t}"
    );

    let too_big = ctl(&[
        "create",
        "instance",
        "huge",
        "--vcpu",
        "32",
        "--memory",
        "64Gi",
        "--image",
        "kylin-v10",
        "--require",
        "arch:aarch64",
    ]);
    assert!(too_big.status.success(), "{}", text(&too_big));
    let out = ctl(&[
        "create",
        "instance",
        "huge-2",
        "--vcpu",
        "32",
        "--memory",
        "64Gi",
        "--image",
        "kylin-v10",
        "--require",
        "arch:aarch64",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // 4 + 32 fit on kunpeng-1's 32 vCPU only once: one of the two waits.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let phases = [phase_of("huge").0, phase_of("huge-2").0];
        if phases
            .iter()
            .any(|p| p.eq_ignore_ascii_case("Unschedulable"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "neither huge request became Unschedulable: {phases:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let dry = ctl(&[
        "dry-run",
        "instance",
        "--vcpu",
        "8",
        "--memory",
        "16Gi",
        "--image",
        "kylin-v10",
        "--require",
        "arch:x86_64",
    ]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(text(&dry).contains("x86-phase1"), "{}", text(&dry));
    let (status, _) = serving.stop();
    assert!(status.success());
}
