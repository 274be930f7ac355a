//! Instances on the real e2e clouds: image choice per architecture, flavors,
//! ownership metadata, actions (stop, start, reboot, resize), zero-disk
//! flavors, and create → ACTIVE timing.

#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeMap, time::Instant};

use common::{DEPT, Raw, TIMEOUT, adapter, instance, owner, state_dir, wait_for, wait_gone};
use serde_json::json;
use yunshu_core::{
    ErrorKind,
    adapter::{Adapter, DeleteOptions, InstanceAction},
    meta::Kind,
};

/// Kylin on Kunpeng boots Glance's aarch64 image, on a flavor the adapter
/// created for an odd size, with the uid metadata and tag on the server, in
/// the department's project.
#[tokio::test]
async fn kunpeng_instance_uses_aarch64_image_new_flavor_and_owner_metadata() {
    let Some(state) = state_dir() else { return };
    let (a, _) = adapter(&state, "kunpeng-cloud");
    let raw = Raw::new(&state, "kunpeng-cloud").await;
    let tenant = a.ensure_tenant(DEPT).await.unwrap();
    let o = owner(DEPT);
    let spec = instance(3, 1536, 3, "kylin-v10");
    let started = Instant::now();
    let created = a.create_instance(&o, &spec).await.unwrap();
    let create_call = started.elapsed();
    let ready = wait_for(&a, Kind::Instance, &o, TIMEOUT, "ACTIVE", |r| r.ready).await;
    eprintln!(
        "timing: kunpeng-cloud create_instance call {create_call:?}, create→ACTIVE {:?}",
        started.elapsed()
    );
    assert_eq!(created.id, ready.id);
    assert!(!ready.addresses.is_empty(), "a port on ys-net: {ready:?}");

    let server = raw.get("compute", &format!("/servers/{}", ready.id)).await["server"].clone();
    let images = raw.get("image", "/v2/images?name=kylin-v10").await;
    let aarch64: Vec<&str> = images["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["hw_architecture"] == "aarch64")
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(aarch64, vec![server["image"]["id"].as_str().unwrap()]);
    assert_eq!(server["flavor"]["original_name"], "ys-3c-1536m-3g");
    assert_eq!(
        (
            server["flavor"]["vcpus"].as_u64(),
            server["flavor"]["ram"].as_u64()
        ),
        (Some(3), Some(1536))
    );
    assert_eq!(server["name"], format!("{DEPT}-{}", o.name));
    assert_eq!(server["tenant_id"], tenant.tenant_id);
    let md: BTreeMap<String, String> = serde_json::from_value(server["metadata"].clone()).unwrap();
    assert_eq!(md.get("yunshu-uid"), Some(&o.uid));
    assert_eq!(md.get("yunshu-department").map(String::as_str), Some(DEPT));
    assert_eq!(md.get("yunshu-name"), Some(&o.name));
    assert_eq!(server["tags"], json!(["yunshu"]));

    // A second instance of the same size reuses the flavor.
    let o2 = owner(DEPT);
    let second = a.create_instance(&o2, &spec).await.unwrap();
    let s2 = raw.get("compute", &format!("/servers/{}", second.id)).await["server"].clone();
    assert_eq!(s2["flavor"]["original_name"], "ys-3c-1536m-3g");
    let flavors = raw.get("compute", "/flavors/detail?is_public=None").await;
    let named = flavors["flavors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "ys-3c-1536m-3g")
        .count();
    assert_eq!(named, 1);

    // An image the cloud does not have is refused with the field named.
    let e = a
        .create_instance(&owner(DEPT), &instance(1, 512, 1, "windows-2019"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(
        e.to_string().contains("spec.image") && e.to_string().contains("aarch64"),
        "{e}"
    );

    for x in [&o, &o2] {
        a.delete(Kind::Instance, x, DeleteOptions::default())
            .await
            .unwrap();
    }
    for x in [&o, &o2] {
        wait_gone(&a, Kind::Instance, x, TIMEOUT).await;
    }
}

/// Stop, start, reboot and resize (with confirmation) on x86.
#[tokio::test]
async fn x86_instance_actions() {
    let Some(state) = state_dir() else { return };
    let (a, _) = adapter(&state, "x86-cloud");
    let o = owner(DEPT);
    let started = Instant::now();
    a.create_instance(&o, &instance(1, 512, 1, "openeuler-22.03"))
        .await
        .unwrap();
    wait_for(&a, Kind::Instance, &o, TIMEOUT, "ACTIVE", |r| r.ready).await;
    eprintln!("timing: x86-cloud create→ACTIVE {:?}", started.elapsed());

    a.instance_action(&o, InstanceAction::Stop).await.unwrap();
    wait_for(&a, Kind::Instance, &o, TIMEOUT, "SHUTOFF", |r| {
        r.status == "SHUTOFF" && r.message.is_empty()
    })
    .await;
    a.instance_action(&o, InstanceAction::Stop).await.unwrap(); // already stopped: Ok
    a.instance_action(&o, InstanceAction::Start).await.unwrap();
    wait_for(&a, Kind::Instance, &o, TIMEOUT, "ACTIVE again", |r| {
        r.ready && r.message.is_empty()
    })
    .await;
    a.instance_action(&o, InstanceAction::Start).await.unwrap(); // already running: Ok
    a.instance_action(&o, InstanceAction::Reboot).await.unwrap();
    wait_for(
        &a,
        Kind::Instance,
        &o,
        TIMEOUT,
        "ACTIVE after reboot",
        |r| r.ready && r.message.is_empty(),
    )
    .await;

    a.instance_action(
        &o,
        InstanceAction::Resize {
            vcpu: 2,
            memory_mib: 1024,
        },
    )
    .await
    .unwrap();
    let r = wait_for(
        &a,
        Kind::Instance,
        &o,
        TIMEOUT,
        "ACTIVE after resize",
        |r| r.ready && r.message.is_empty(),
    )
    .await;
    let raw = Raw::new(&state, "x86-cloud").await;
    let server = raw.get("compute", &format!("/servers/{}", r.id)).await["server"].clone();
    assert_eq!(
        (
            server["flavor"]["vcpus"].as_u64(),
            server["flavor"]["ram"].as_u64()
        ),
        (Some(2), Some(1024))
    );
    assert_eq!(server["status"], "ACTIVE", "the resize was confirmed");
    // Same size again: nothing to do.
    a.instance_action(
        &o,
        InstanceAction::Resize {
            vcpu: 2,
            memory_mib: 1024,
        },
    )
    .await
    .unwrap();

    a.delete(Kind::Instance, &o, DeleteOptions::default())
        .await
        .unwrap();
    wait_gone(&a, Kind::Instance, &o, TIMEOUT).await;
    let e = a
        .instance_action(&o, InstanceAction::Start)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

/// Measures create → ACTIVE through the adapter (polling `get` every 100 ms,
/// as `e2e/openstack/lib/boot_timing.py` polls Nova) for a few sequential
/// boots on each cloud, after one warm-up boot (tokens, flavor, tenant).
#[tokio::test]
async fn create_to_active_timing() {
    let Some(state) = state_dir() else { return };
    for cloud in common::CLOUDS {
        let (a, _) = adapter(&state, cloud);
        a.ensure_tenant(DEPT).await.unwrap();
        let mut lines = Vec::new();
        for round in 0..4 {
            let o = owner(DEPT);
            let t = Instant::now();
            a.create_instance(&o, &instance(1, 512, 1, "kylin-v10"))
                .await
                .unwrap();
            let call = t.elapsed();
            wait_for(&a, Kind::Instance, &o, TIMEOUT, "ACTIVE", |r| r.ready).await;
            let active = t.elapsed();
            a.delete(Kind::Instance, &o, DeleteOptions::default())
                .await
                .unwrap();
            wait_gone(&a, Kind::Instance, &o, TIMEOUT).await;
            lines.push(format!(
                "{}create call {:.2}s, create→ACTIVE {:.2}s",
                if round == 0 { "warm-up " } else { "" },
                call.as_secs_f64(),
                active.as_secs_f64()
            ));
        }
        eprintln!("timing {cloud}: {}", lines.join("; "));
    }
}

/// A zero root disk (the image decides its size) boots too: Nova allows
/// zero-disk flavors only to admins, so the adapter's own user holds the
/// admin role in department projects.
#[tokio::test]
async fn zero_disk_instance_boots() {
    let Some(state) = state_dir() else { return };
    let (a, _) = adapter(&state, "x86-cloud");
    let o = owner(DEPT);
    a.create_instance(&o, &instance(1, 1024, 0, "kylin-v10"))
        .await
        .unwrap();
    let r = wait_for(&a, Kind::Instance, &o, TIMEOUT, "ACTIVE", |r| r.ready).await;
    assert!(!r.addresses.is_empty());
    a.delete(Kind::Instance, &o, DeleteOptions::default())
        .await
        .unwrap();
    wait_gone(&a, Kind::Instance, &o, TIMEOUT).await;
}
