//! TLS and mutual TLS through the real binaries: `yunshu serve --tls-cert
//! --tls-key` with client certificates trusted from `auth.mtls.clientCaFile`,
//! and `yunshuctl` authenticating with a client certificate.

mod common;

use std::process::Command;

use common::{CTL, Serving, text};
use yunshu_testenv::pki::Ca;

#[test]
fn a_client_certificate_authenticates_and_an_untrusted_one_fails_the_handshake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let write = |name: &str, body: &str| {
        let p = d.join(name);
        std::fs::write(&p, body).expect("write");
        p.to_str().expect("utf8").to_owned()
    };
    let ca = Ca::new("yunshu test ca").expect("ca");
    let (server_cert, server_key) = ca.server().expect("server cert");
    let (client_cert, client_key) = ca.client("health-automation").expect("client cert");
    let rogue = Ca::new("rogue ca").expect("ca");
    let (rogue_cert, rogue_key) = rogue.client("health-automation").expect("rogue cert");
    let ca_file = write("ca.pem", &ca.pem);
    let (server_cert, server_key) = (
        write("server.pem", &server_cert),
        write("server-key.pem", &server_key),
    );
    let (client_cert, client_key) = (
        write("client.pem", &client_cert),
        write("client-key.pem", &client_key),
    );
    let (rogue_cert, rogue_key) = (
        write("rogue.pem", &rogue_cert),
        write("rogue-key.pem", &rogue_key),
    );
    let config = write(
        "yunshu.yaml",
        &format!(
            "departments:\n  - name: health\n    spec:\n      identities:\n        - {{ type: certificateSubject, subject: health-automation, role: operator }}\n      quota: {{ hard: {{ vcpu: 48 }} }}\n\
             auth:\n  mtls: {{ clientCaFile: \"{ca_file}\", requireClientCert: false }}\n  publicPaths: [\"/grpc.health.v1.Health/\"]\n"
        ),
    );
    let serving = Serving::start(&[
        "--store",
        "memory",
        "--config",
        &config,
        "--tls-cert",
        &server_cert,
        "--tls-key",
        &server_key,
    ]);
    let endpoint = format!("https://127.0.0.1:{}", serving.grpc_port);
    let ctl = |extra: &[&str], args: &[&str]| {
        Command::new(CTL)
            .args([
                "--endpoint",
                &endpoint,
                "--department",
                "health",
                "--ca-file",
                &ca_file,
            ])
            .args(extra)
            .args(args)
            .env_remove("YUNSHU_TOKEN")
            .env_remove("YUNSHUCTL_CONFIG")
            .env("XDG_CONFIG_HOME", d)
            .output()
            .expect("yunshuctl")
    };
    let with_cert = [
        "--client-cert",
        client_cert.as_str(),
        "--client-key",
        client_key.as_str(),
    ];
    let created = ctl(
        &with_cert,
        &[
            "create",
            "instance",
            "ops-1",
            "--vcpu",
            "2",
            "--memory",
            "4Gi",
            "--image",
            "kylin-v10",
        ],
    );
    assert!(created.status.success(), "{}", text(&created));
    let listed = ctl(&with_cert, &["list", "instance"]);
    assert!(text(&listed).contains("ops-1"), "{}", text(&listed));

    let anonymous = ctl(&[], &["list", "instance"]);
    assert_eq!(
        anonymous.status.code(),
        Some(4),
        "TLS without a certificate or token is unauthenticated: {}",
        text(&anonymous)
    );

    let rogue = ctl(
        &["--client-cert", &rogue_cert, "--client-key", &rogue_key],
        &["list", "instance"],
    );
    assert_eq!(
        rogue.status.code(),
        Some(7),
        "an untrusted CA fails the handshake: {}",
        text(&rogue)
    );

    let (status, _) = serving.stop();
    assert!(status.success());
}
