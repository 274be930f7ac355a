//! The OpenStack adapter against the real e2e clouds: inventory and traits,
//! tenants, auth failures and token renewal, error kinds (unreachable,
//! over quota, unsupported kinds) and Degraded health.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{DEPT, Raw, adapter, instance, owner, state_dir};
use reqwest::Method;
use serde_json::json;
use yunshu_adapter_openstack::OpenStackAdapter;
use yunshu_core::{
    ErrorKind,
    adapter::{Adapter, Credentials},
    meta::Kind,
    model::{BucketSpec, Health},
    resources::ResourceClass,
    traits::Trait,
};

#[tokio::test]
async fn probe_reports_placement_inventory_and_arch_traits() {
    let Some(state) = state_dir() else { return };
    // (cloud, arch, vCPU total, memory MiB total, disk GiB total, largest vCPU host) from e2e/openstack/README.md.
    for (cloud, arch, vcpu, mem, disk, big) in [
        (
            "x86-cloud",
            "x86_64",
            32 + 16,
            (128 + 64) * 1024,
            1000 + 500,
            32,
        ),
        (
            "kunpeng-cloud",
            "aarch64",
            96 + 64,
            (256 + 128) * 1024,
            2000 + 1000,
            96,
        ),
    ] {
        let (a, _) = adapter(&state, cloud);
        let p = a.probe().await.unwrap();
        assert_eq!(p.health, Health::Ready, "{cloud}");
        assert_eq!(p.traits, vec![Trait::arch(arch).unwrap()], "{cloud}");
        let v = p.inventory[&ResourceClass::Vcpu];
        let m = p.inventory[&ResourceClass::MemoryMib];
        let d = p.inventory[&ResourceClass::DiskGib];
        assert_eq!((v.total, m.total, d.total), (vcpu, mem, disk), "{cloud}");
        assert_eq!(
            m.reserved,
            2 * 512,
            "{cloud}: each compute reserves 512 MiB"
        );
        // Nova's defaults: 16x vCPU, 1.5x RAM, 1x disk, so the largest vCPU
        // request one host takes is capped by that host's max_unit.
        assert!((v.allocation_ratio - 16.0).abs() < 1e-9, "{cloud}: {v:?}");
        assert_eq!(v.max_unit, big, "{cloud}");
        assert!(
            m.max_unit <= m.capacity() && m.max_unit > 0,
            "{cloud}: {m:?}"
        );
        assert!(p.latency > Duration::ZERO);
        eprintln!(
            "{cloud}: probe latency {:?}, inventory {:?}",
            p.latency, p.inventory
        );
    }
}

#[tokio::test]
async fn ensure_tenant_is_idempotent_and_grants_roles() {
    let Some(state) = state_dir() else { return };
    let (a, _) = adapter(&state, "x86-cloud");
    let first = a.ensure_tenant(DEPT).await.unwrap();
    let second = a.ensure_tenant(DEPT).await.unwrap();
    assert_eq!(first, second);
    // Concurrent first use converges too.
    let dept = format!("tk-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (x, y) = tokio::join!(a.ensure_tenant(&dept), a.ensure_tenant(&dept));
    assert_eq!(x.unwrap(), y.unwrap());

    let raw = Raw::new(&state, "x86-cloud").await;
    let project = raw
        .get("identity", &format!("/projects/{}", first.tenant_id))
        .await;
    assert_eq!(project["project"]["name"], format!("yunshu-{DEPT}"));
    let user = raw.get("identity", &format!("/users/{}", first.user)).await;
    assert_eq!(user["user"]["name"], format!("yunshu-{DEPT}"));
    let roles = raw
        .get(
            "identity",
            &format!(
                "/role_assignments?scope.project.id={}&include_names=1",
                first.tenant_id
            ),
        )
        .await;
    let holders: Vec<(String, String)> = roles["role_assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user"]["id"].as_str().unwrap().to_owned(),
                r["role"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        holders.contains(&(first.user.clone(), "member".into())),
        "{holders:?}"
    );
    assert!(
        holders.contains(&(raw.user_id.clone(), "admin".into())),
        "{holders:?}"
    );
    // Leave no per-run projects behind.
    for coll in ["projects", "users"] {
        let found = raw
            .get("identity", &format!("/{coll}?name=yunshu-{dept}"))
            .await;
        for item in found[coll].as_array().unwrap() {
            raw.call(
                Method::DELETE,
                "identity",
                &format!("/{coll}/{}", item["id"].as_str().unwrap()),
                None,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn wrong_password_is_unauthorized_without_the_password() {
    let Some(state) = state_dir() else { return };
    let (_, cloud) = adapter(&state, "kunpeng-cloud");
    let wrong = "not-the-Pa55word-xyz";
    let mut creds = cloud.credentials.clone();
    creds.0.insert("password".into(), wrong.into());
    let a = OpenStackAdapter::new("kunpeng-cloud", &cloud.spec, creds).unwrap();
    for e in [
        a.probe().await.unwrap_err(),
        a.ensure_tenant(DEPT).await.unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
        let text = format!("{e} / {e:?}");
        assert!(!text.contains(wrong), "the password leaked: {text}");
        assert!(text.contains("admin"), "names the user: {text}");
    }
    assert!(!format!("{a:?}").contains(wrong));
}

#[tokio::test]
async fn unreachable_cloud_is_unavailable_and_buckets_are_invalid() {
    let Some(state) = state_dir() else { return };
    let (_, cloud) = adapter(&state, "x86-cloud");
    let mut spec = cloud.spec.clone();
    spec.endpoint = "http://127.0.0.1:9/v3".into(); // discard port: nothing listens
    let a = OpenStackAdapter::new("nowhere", &spec, cloud.credentials.clone()).unwrap();
    assert_eq!(a.probe().await.unwrap_err().kind(), ErrorKind::Unavailable);

    let (a, _) = adapter(&state, "x86-cloud");
    let o = owner(DEPT);
    let bucket = BucketSpec {
        quota_bytes: 1 << 20,
        quota_objects: None,
        versioning: false,
        constraints: Default::default(),
    };
    let e = a.create_bucket(&o, &bucket).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("buckets"), "{e}");
    assert_eq!(
        a.issue_credentials(&o, Duration::from_secs(60))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Invalid
    );
}

/// A revoked token is replaced: the adapter re-authenticates once on 401.
/// Re-setting a user's password (even to the same value) revokes its tokens.
#[tokio::test]
async fn revoked_token_is_renewed_once() {
    let Some(state) = state_dir() else { return };
    let (_, cloud) = adapter(&state, "x86-cloud");
    let raw = Raw::new(&state, "x86-cloud").await;
    let name = format!(
        "ys-reauth-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let password = "reauth-pw-1";
    let (s, user) = raw
        .call(
            Method::POST,
            "identity",
            "/users",
            Some(json!({ "user": { "name": name, "password": password, "domain_id": "default" } })),
        )
        .await;
    assert_eq!(s, 201, "{user}");
    let user_id = user["user"]["id"].as_str().unwrap().to_owned();
    let roles = raw.get("identity", "/roles?name=admin").await;
    let admin_role = roles["roles"][0]["id"].as_str().unwrap();
    let (s, _) = raw
        .call(
            Method::PUT,
            "identity",
            &format!(
                "/projects/{}/users/{user_id}/roles/{admin_role}",
                raw.project_id
            ),
            None,
        )
        .await;
    assert_eq!(s, 204);

    let mut creds = cloud.credentials.0.clone();
    creds.insert("username".into(), name.clone());
    creds.insert("password".into(), password.into());
    let a = OpenStackAdapter::new("x86-cloud", &cloud.spec, Credentials(creds)).unwrap();
    assert_eq!(a.probe().await.unwrap().health, Health::Ready);

    let (s, _) = raw
        .call(
            Method::PATCH,
            "identity",
            &format!("/users/{user_id}"),
            Some(json!({ "user": { "password": password } })),
        )
        .await;
    assert_eq!(s, 200);
    // Revocation has one-second granularity: a token issued in the same
    // second as the revocation counts as revoked.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Keystone validates tokens itself (Nova and Placement cache validations
    // for minutes), so a Keystone call sees the revocation at once.
    a.ensure_tenant(DEPT)
        .await
        .expect("the adapter re-authenticates after its token was revoked");

    // A changed password: the cached token is revoked (401), the one
    // re-authentication is refused too, and the answer is Unauthorized.
    let (s, _) = raw
        .call(
            Method::PATCH,
            "identity",
            &format!("/users/{user_id}"),
            Some(json!({ "user": { "password": "reauth-pw-2" } })),
        )
        .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let e = a.ensure_tenant(DEPT).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(!e.to_string().contains(password), "{e}");
    raw.call(
        Method::DELETE,
        "identity",
        &format!("/users/{user_id}"),
        None,
    )
    .await;
}

/// Application-credential auth probes; it cannot act in department projects.
#[tokio::test]
async fn application_credential_auth() {
    let Some(state) = state_dir() else { return };
    let (_, cloud) = adapter(&state, "kunpeng-cloud");
    let raw = Raw::new(&state, "kunpeng-cloud").await;
    let name = format!(
        "ys-appcred-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let (s, body) = raw
        .call(
            Method::POST,
            "identity",
            &format!("/users/{}/application_credentials", raw.user_id),
            Some(json!({ "application_credential": { "name": name } })),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let id = body["application_credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = body["application_credential"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let creds = Credentials(
        [
            ("application_credential_id".to_owned(), id.clone()),
            ("application_credential_secret".to_owned(), secret.clone()),
        ]
        .into(),
    );
    let a = OpenStackAdapter::new("kunpeng-cloud", &cloud.spec, creds).unwrap();
    let p = a.probe().await.unwrap();
    assert_eq!(p.health, Health::Ready);
    assert!(p.traits.contains(&Trait::arch("aarch64").unwrap()));
    a.list_owned(Kind::Instance).await.unwrap();
    let e = a
        .create_volume(
            &owner(DEPT),
            &yunshu_core::model::VolumeSpec {
                size_gib: 1,
                attach_to: None,
                constraints: Default::default(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(
        e.to_string()
            .contains("credentials.application_credential_id")
            && !e.to_string().contains(&secret),
        "{e}"
    );
    raw.call(
        Method::DELETE,
        "identity",
        &format!("/users/{}/application_credentials/{id}", raw.user_id),
        None,
    )
    .await;
}

/// Over-quota requests come back as QuotaExceeded with the class parsed:
/// Cinder answers 413 (with Retry-After: 0), Nova 403.
#[tokio::test]
async fn over_quota_is_quota_exceeded() {
    let Some(state) = state_dir() else { return };
    let (a, _) = adapter(&state, "x86-cloud");
    let huge = yunshu_core::model::VolumeSpec {
        size_gib: 100_000,
        attach_to: None,
        constraints: Default::default(),
    };
    let o = owner(DEPT);
    let e = a.create_volume(&o, &huge).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
    assert!(e.to_string().contains("volume_gib requested 100000"), "{e}");
    assert_eq!(
        a.get(Kind::Volume, &o).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Nova's default quota here is 400 cores per project.
    let o = owner(DEPT);
    let e = a
        .create_instance(&o, &instance(401, 512, 1, "kylin-v10"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
    assert!(e.to_string().contains("vcpu requested 401"), "{e}");
    let raw = Raw::new(&state, "x86-cloud").await;
    let flavors = raw.get("compute", "/flavors/detail?is_public=None").await;
    for f in flavors["flavors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "ys-401c-512m-1g")
    {
        raw.call(
            Method::DELETE,
            "compute",
            &format!("/flavors/{}", f["id"].as_str().unwrap()),
            None,
        )
        .await;
    }
}

/// Placement down → Degraded (Keystone and Nova still answer); back up →
/// Ready. Disruptive, so it runs alone: it stops kunpeng-cloud's Placement
/// with `e2e/openstack/down.sh` and restarts it with `up.sh`, which would
/// fail the other suites sharing the cloud. `e2e/scripts/test.sh` runs it
/// last, once every other test is done:
/// `cargo test -p yunshu-adapter-openstack --test openstack -- --ignored degraded`.
#[tokio::test]
#[ignore = "stops and restarts a service of the shared e2e cloud"]
async fn degraded_while_placement_is_down() {
    let Some(state) = state_dir() else { return };
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/openstack");
    let (a, _) = adapter(&state, "kunpeng-cloud");
    assert_eq!(a.probe().await.unwrap().health, Health::Ready);
    let down = tokio::process::Command::new("bash")
        .arg(scripts.join("down.sh"))
        .args([
            state.as_os_str(),
            "kunpeng-cloud".as_ref(),
            "placement".as_ref(),
        ])
        .status()
        .await
        .unwrap();
    assert!(down.success());
    let p = a.probe().await;
    let up = tokio::process::Command::new("bash")
        .arg(scripts.join("up.sh"))
        .arg(&state)
        .env("YS_OSP_SKIP_INSTALL", "1")
        .status()
        .await
        .unwrap();
    let p = p.unwrap();
    assert_eq!(p.health, Health::Degraded, "{p:?}");
    assert!(p.inventory.is_empty());
    assert!(up.success(), "up.sh could not bring Placement back");
    assert_eq!(a.probe().await.unwrap().health, Health::Ready);
}
