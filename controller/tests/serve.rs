//! The real `yunshu` binary, driven as an operator would: start it, probe
//! its admin endpoints, stop it with a signal.

mod common;

use std::process::Command;

use common::{BIN, Serving, get};
use yunshu_testenv::{EtcdServer, free_port};

#[test]
fn version_prints_the_version() {
    let out = Command::new(BIN).arg("version").output().expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("yunshu {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_documents_flags_and_their_environment_variables() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--store",
        "[env: YUNSHU_STORE=]",
        "--etcd-endpoints",
        "[env: YUNSHU_ETCD_ENDPOINTS=]",
        "--data-dir",
    ] {
        assert!(help.contains(needle), "help lacks {needle}:\n{help}");
    }
}

#[test]
fn a_bad_flag_names_the_flag_and_exits_2() {
    let out = Command::new(BIN)
        .args(["serve", "--store", "postgres"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--store"), "{err}");
}

#[test]
fn serves_on_the_embedded_store_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let s = Serving::start(&[
        "--data-dir",
        data.to_str().expect("utf8"),
        "--log-format",
        "json",
    ]);
    let (code, body) = get(s.port, "/readyz").expect("readyz");
    assert_eq!(code, 200);
    assert!(body.contains("embedded store"), "{body}");
    assert_eq!(get(s.port, "/healthz").map(|r| r.0), Some(200));
    let (status, logs) = s.stop();
    assert!(status.success(), "exit status {status}: {logs}");
    assert!(
        logs.contains("\"message\":\"stopped\""),
        "structured shutdown log missing:\n{logs}"
    );
    assert!(
        data.join("yunshu.redb").exists(),
        "the embedded store lives under --data-dir"
    );
}

#[test]
fn the_memory_store_writes_nothing_to_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let s = Serving::start(&[
        "--store",
        "memory",
        "--data-dir",
        data.to_str().expect("utf8"),
    ]);
    let (code, _) = get(s.port, "/readyz").expect("readyz");
    assert_eq!(code, 200);
    let (status, logs) = s.stop();
    assert!(status.success(), "exit status {status}: {logs}");
    assert!(
        !data.exists(),
        "neither the store nor the master keys touch --data-dir"
    );
}

#[test]
fn serves_on_etcd() {
    let etcd = EtcdServer::start().expect("etcd");
    let endpoint = etcd.endpoint();
    // Replicas on a shared store are given their keys; none is generated.
    let keys = tempfile::tempdir().expect("tempdir");
    let key = keys.path().join("k1");
    std::fs::write(&key, "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").expect("write key");
    let s = Serving::start(&[
        "--store",
        "etcd",
        "--etcd-endpoints",
        &endpoint,
        "--master-keys",
        key.to_str().expect("utf8"),
    ]);
    let (code, body) = get(s.port, "/readyz").expect("readyz");
    assert_eq!(code, 200);
    assert!(body.contains("etcd store"), "{body}");
    let (status, _) = s.stop();
    assert!(status.success());
}

#[test]
fn an_unreachable_etcd_fails_fast_with_a_clear_error() {
    let port = free_port().expect("port");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--store",
            "etcd",
            "--etcd-endpoints",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env("YUNSHU_ETCD_TIMEOUT", "2s")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("etcd"), "{err}");
}

#[test]
fn plaintext_on_a_network_address_is_refused_without_allow_plaintext() {
    let (grpc, admin) = (free_port().expect("port"), free_port().expect("port"));
    // `timeout` bounds the run should the refusal regress into serving.
    let out = Command::new("timeout")
        .args([
            "20",
            BIN,
            "serve",
            "--store",
            "memory",
            "--grpc-addr",
            &format!("0.0.0.0:{grpc}"),
            "--admin-addr",
            &format!("127.0.0.1:{admin}"),
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert_ne!(
        out.status.code(),
        Some(124),
        "it served instead of refusing"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--allow-plaintext") && err.contains("--tls-cert"),
        "{err}"
    );
}
