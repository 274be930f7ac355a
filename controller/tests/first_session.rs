//! The README's first session, with both real binaries: an admin mints a
//! token and declares the department; the department's engineer configures
//! yunshuctl, reads the catalog, creates an instance, reads her quota, and
//! gets an exact answer when she asks for too much.

mod common;

use std::process::Command;

use common::{BIN, CTL, Serving, text};

#[test]
fn a_departments_first_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    let minted = Command::new(BIN)
        .args(["token", "--id", "lin", "--role", "operator", "--out"])
        .arg(&token_file)
        .output()
        .expect("yunshu token");
    assert!(minted.status.success(), "{}", text(&minted));
    let stdout = String::from_utf8_lossy(&minted.stdout);
    let identity = stdout
        .lines()
        .find(|l| l.contains("type: apiToken"))
        .expect("identity line")
        .trim()
        .to_owned();
    let token = std::fs::read_to_string(&token_file).expect("token file");
    assert!(
        !identity.contains(token.trim()),
        "only the hash goes into the config"
    );

    let config = dir.path().join("yunshu.yaml");
    std::fs::write(
        &config,
        format!("departments:\n  - name: health\n    spec:\n      identities:\n        {identity}\n      quota: {{ hard: {{ vcpu: 48 }} }}\n"),
    )
    .expect("config");
    let data = dir.path().join("data");
    let serving = Serving::start(&[
        "--config",
        config.to_str().expect("utf8"),
        "--data-dir",
        data.to_str().expect("utf8"),
    ]);

    let ctl_config = dir.path().join("ctl.yaml");
    let ctl = |args: &[&str]| {
        Command::new(CTL)
            .arg("--config")
            .arg(&ctl_config)
            .args(args)
            .env_remove("YUNSHU_TOKEN")
            .output()
            .expect("yunshuctl")
    };
    let init = ctl(&[
        "--endpoint",
        &serving.grpc_url(),
        "--department",
        "health",
        "--token-file",
        token_file.to_str().expect("utf8"),
        "config",
        "init",
    ]);
    assert!(init.status.success(), "{}", text(&init));

    let catalog = ctl(&["catalog"]);
    assert!(catalog.status.success(), "{}", text(&catalog));
    assert!(text(&catalog).contains("kylin-v10"), "{}", text(&catalog));

    let created = ctl(&[
        "create",
        "instance",
        "web-1",
        "--vcpu",
        "4",
        "--memory",
        "8Gi",
        "--image",
        "kylin-v10",
        "--require",
        "xinchuang",
    ]);
    assert!(created.status.success(), "{}", text(&created));
    let got = ctl(&["-o", "json", "get", "instance", "web-1"]);
    assert!(got.status.success(), "{}", text(&got));
    assert!(
        text(&got).contains("departments/health/instances/web-1"),
        "{}",
        text(&got)
    );

    let quota = ctl(&["quota"]);
    assert!(quota.status.success(), "{}", text(&quota));
    let vcpu_line = String::from_utf8_lossy(&quota.stdout)
        .lines()
        .find(|l| l.contains("vcpu"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        vcpu_line.contains('4') && vcpu_line.contains("48"),
        "{vcpu_line}"
    );

    for i in 0..5 {
        let ok = ctl(&[
            "create",
            "instance",
            &format!("db-{i}"),
            "--vcpu",
            "8",
            "--memory",
            "16Gi",
            "--image",
            "kylin-v10",
        ]);
        assert!(ok.status.success(), "{}", text(&ok));
    }
    let over = ctl(&[
        "create",
        "instance",
        "batch-1",
        "--vcpu",
        "16",
        "--memory",
        "32Gi",
        "--image",
        "kylin-v10",
    ]);
    assert_eq!(over.status.code(), Some(5), "{}", text(&over));
    assert!(
        text(&over).contains("quota exceeded: vcpu requested 16, used 44, limit 48"),
        "{}",
        text(&over)
    );

    let bad = ctl(&[
        "create",
        "instance",
        "Web_1",
        "--vcpu",
        "3",
        "--memory",
        "8Gi",
        "--image",
        "kylin-v11",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    for field in ["instance_id", "instance.spec.vcpu", "instance.spec.image"] {
        assert!(
            text(&bad).contains(field),
            "{field} missing:\n{}",
            text(&bad)
        );
    }
    let (status, logs) = serving.stop();
    assert!(status.success());
    assert!(
        !logs.contains(token.trim()),
        "the token leaked into the logs"
    );
}
