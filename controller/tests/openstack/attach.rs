//! A volume follows its `attach_to`: when the spec names another instance
//! (as a CR edit does through the operator) it is detached and attached
//! there; when the spec names none, it is detached. Nova is asked where
//! the volume really is.

use super::*;
use yunshu_core::{
    codec, keys,
    meta::{Kind, Object},
    model::VolumeSpec,
    store::{Store, StoreExt},
};

/// Changes the volume's `attach_to` in the stored object, as the operator
/// does for an edited CR; `yunshu` must be stopped.
fn set_attach_to(y: &Yunshu, name: &str, attach_to: Option<&str>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = yunshu_store::EmbeddedStore::open(y.store_file()).expect("open the store");
        let key = keys::object(Kind::Volume, Some(y.department()), name);
        let kv = store.get(&key).await.expect("read").expect("stored");
        let mut v: Object<VolumeSpec> = codec::decode_object(&kv).expect("decode");
        v.spec.attach_to = attach_to.map(str::to_owned);
        v.meta.generation += 1;
        store
            .put(&key, codec::encode(&v).expect("encode"))
            .await
            .expect("write");
    });
}

/// The instances (by name) whose Nova servers have the volume attached.
fn attached_to(y: &Yunshu, volume_id: &str, instances: &[(&str, String)]) -> Vec<String> {
    let servers = y.servers("kunpeng-cloud");
    instances
        .iter()
        .filter(|(_, uid)| {
            servers.iter().any(|s| {
                s["metadata"]["yunshu-uid"].as_str() == Some(uid.as_str())
                    && s["volumes"]
                        .as_array()
                        .is_some_and(|v| v.iter().any(|id| id.as_str() == Some(volume_id)))
            })
        })
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

/// Waits until Nova has the volume attached to exactly `want`.
fn wait_attached(y: &Yunshu, volume_id: &str, instances: &[(&str, String)], want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = attached_to(y, volume_id, instances);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "volume {volume_id} is attached to {now:?}, never {want:?}\n{}",
            y.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The volume's Attached condition: its status and message.
fn attached_condition(y: &Yunshu, name: &str) -> (String, String) {
    let out = y.ctl(&["-o", "json", "get", "volume", name]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Attached"))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .unwrap_or_default()
}

#[test]
fn a_volume_follows_its_attach_to() {
    let Some(state) = state_dir() else { return };
    let _clouds = CLOUDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut y = Yunshu::new(&state, "e2e-attach");
    y.wait_health("kunpeng-cloud", "HEALTH_READY", Duration::from_secs(60));
    let mut instances = Vec::new();
    for name in ["att-a", "att-b"] {
        let (out, _) = create(&y, name, "aarch64", ("1", "1Gi"), true);
        assert!(out.status.success(), "{}\n{}", text(&out), y.logs());
        instances.push((name, uid_of(&y.instance(name))));
    }
    let out = y.ctl(&[
        "create",
        "volume",
        "vol-1",
        "--size",
        "1Gi",
        "--attach-to",
        "att-a",
        "--wait",
        "--timeout",
        "3m",
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), y.logs());
    let got = y.ctl(&["-o", "json", "get", "volume", "vol-1"]);
    let v: Value = serde_json::from_slice(&got.stdout).expect("volume json");
    let volume_id = v["status"]["cloud_id"]
        .as_str()
        .expect("cloud id")
        .to_owned();
    wait_attached(&y, &volume_id, &instances, &["att-a"]);

    // Moved to another instance: detached from the first, attached there.
    y.kill9();
    set_attach_to(&y, "vol-1", Some("att-b"));
    y.start();
    wait_attached(&y, &volume_id, &instances, &["att-b"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while attached_condition(&y, "vol-1") != ("True".into(), "att-b".into()) {
        assert!(
            Instant::now() < deadline,
            "{:?}\n{}",
            attached_condition(&y, "vol-1"),
            y.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Moved to an instance on another foundation: it cannot follow, stays
    // attached where it is, and says why.
    let (out, _) = create(&y, "att-x", "x86_64", ("1", "1Gi"), true);
    assert!(out.status.success(), "{}\n{}", text(&out), y.logs());
    let x86_uid = uid_of(&y.instance("att-x"));
    y.kill9();
    set_attach_to(&y, "vol-1", Some("att-x"));
    y.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = y.ctl(&["-o", "json", "get", "volume", "vol-1"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let message = v["status"]["message"].as_str().unwrap_or_default();
        if message.contains("volumes do not move between foundations") {
            break;
        }
        assert!(Instant::now() < deadline, "{v}\n{}", y.logs());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(attached_to(&y, &volume_id, &instances), ["att-b"]);

    // No instance named: detached, and the condition says so.
    y.kill9();
    set_attach_to(&y, "vol-1", None);
    y.start();
    wait_attached(&y, &volume_id, &instances, &[]);
    let (status, message) = attached_condition(&y, "vol-1");
    assert_eq!(status, "False", "{message}");
    assert!(message.contains("att-b"), "{message}");

    let out = y.ctl(&["delete", "volume", "vol-1", "--wait", "--timeout", "2m"]);
    assert!(out.status.success(), "{}\n{}", text(&out), y.logs());
    for (name, uid) in &instances {
        delete_and_wait_gone(&y, name, "kunpeng-cloud", uid);
    }
    delete_and_wait_gone(&y, "att-x", "x86-cloud", &x86_uid);
}
