//! The vault over the real embedded store: round trips, nothing in plain text
//! at rest, tampering and renaming detected, and a full key rotation.

use std::{fs, sync::Arc};

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::Value;
use yunshu_core::{
    ErrorKind,
    adapter::SecretVault,
    store::{Store, StoreExt},
};
use yunshu_store::EmbeddedStore;
use yunshu_vault::{KeyRing, Vault, store_key};

const SECRET: &[u8] = b"AKIA-EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY";

fn store() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::in_memory().expect("in-memory store"))
}

fn ring_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("keys");
    (tmp, dir)
}

async fn raw(store: &Arc<dyn Store>, name: &str) -> Vec<u8> {
    store
        .get(&store_key(name))
        .await
        .expect("store get")
        .expect("record present")
        .value
}

/// Rewrites one base64 field of a stored record with `f` applied to its bytes.
async fn tamper(store: &Arc<dyn Store>, name: &str, field: &str, f: impl Fn(&mut Vec<u8>)) {
    let mut doc: Value = serde_json::from_slice(&raw(store, name).await).expect("json record");
    let mut bytes = STANDARD
        .decode(doc[field].as_str().expect("field is a string"))
        .expect("base64");
    f(&mut bytes);
    doc[field] = Value::String(STANDARD.encode(bytes));
    store
        .put(&store_key(name), serde_json::to_vec(&doc).expect("encode"))
        .await
        .expect("store put");
}

#[tokio::test]
async fn round_trip_and_nothing_plain_at_rest() {
    let (_tmp, dir) = ring_dir();
    let store = store();
    let vault = Vault::new(
        Arc::clone(&store),
        KeyRing::generate_dir(&dir).expect("keys"),
    );

    vault.put("s3/ceph-1/health", SECRET).await.expect("put");
    assert_eq!(
        vault.get("s3/ceph-1/health").await.expect("get").as_deref(),
        Some(SECRET)
    );
    assert_eq!(vault.get("s3/ceph-1/absent").await.expect("get"), None);

    let stored = raw(&store, "s3/ceph-1/health").await;
    let text = String::from_utf8_lossy(&stored);
    for needle in [
        String::from_utf8_lossy(SECRET).into_owned(),
        "wJalrXUtnFEMI".to_owned(),
        STANDARD.encode(SECRET),
    ] {
        assert!(
            !text.contains(&needle),
            "stored record holds `{needle}`: {text}"
        );
    }
    let doc: Value = serde_json::from_slice(&stored).expect("json");
    assert_eq!(doc["v"], 1);
    assert_eq!(doc["kid"].as_str(), Some(vault.keyring().primary_id()));

    // Replacing writes a new record with fresh randomness.
    vault
        .put("s3/ceph-1/health", SECRET)
        .await
        .expect("put again");
    assert_ne!(raw(&store, "s3/ceph-1/health").await, stored);

    vault.delete("s3/ceph-1/health").await.expect("delete");
    vault
        .delete("s3/ceph-1/health")
        .await
        .expect("delete is idempotent");
    assert_eq!(vault.get("s3/ceph-1/health").await.expect("get"), None);

    let dbg = format!("{vault:?}");
    assert!(dbg.contains("embedded") && dbg.contains("primary"), "{dbg}");
}

#[tokio::test]
async fn tampering_is_detected() {
    let (_tmp, dir) = ring_dir();
    let store = store();
    let vault = Vault::new(
        Arc::clone(&store),
        KeyRing::generate_dir(&dir).expect("keys"),
    );
    for field in ["ciphertext", "nonce", "wrappedKey", "wrapNonce"] {
        let name = format!("t/{field}");
        vault.put(&name, SECRET).await.expect("put");
        tamper(&store, &name, field, |b| b[0] ^= 0x01).await;
        let e = vault
            .get(&name)
            .await
            .expect_err("tampered record must not open");
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(
            e.to_string().contains("failed authentication"),
            "{field}: {e}"
        );
        assert!(
            !format!("{e:?}").contains("wJalr"),
            "no plaintext in the error"
        );
    }
    // A truncated tag, too.
    vault.put("t/short", SECRET).await.expect("put");
    tamper(&store, "t/short", "ciphertext", |b| {
        b.pop();
    })
    .await;
    assert!(vault.get("t/short").await.is_err());
}

#[tokio::test]
async fn a_record_copied_to_another_name_does_not_open() {
    let (_tmp, dir) = ring_dir();
    let store = store();
    let vault = Vault::new(
        Arc::clone(&store),
        KeyRing::generate_dir(&dir).expect("keys"),
    );
    vault.put("s3/f/health", SECRET).await.expect("put");
    let record = raw(&store, "s3/f/health").await;
    store
        .put(&store_key("s3/f/finance"), record)
        .await
        .expect("copy");
    let e = vault.get("s3/f/finance").await.expect_err("copied record");
    assert!(e.to_string().contains("s3/f/finance"), "{e}");
    assert_eq!(
        vault.get("s3/f/health").await.expect("get").as_deref(),
        Some(SECRET)
    );
}

#[tokio::test]
async fn rotate_rewrap_and_drop_the_old_key() {
    let (_tmp, dir) = ring_dir();
    let store = store();
    let first = KeyRing::generate_dir(&dir).expect("keys");
    let old_id = first.primary_id().to_owned();
    let vault = Vault::new(Arc::clone(&store), first);
    let names: Vec<String> = (0..5).map(|i| format!("rot/{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        vault
            .put(n, format!("value-{i}").as_bytes())
            .await
            .expect("put");
    }
    let ciphertexts_before: Vec<Value> = {
        let mut v = Vec::new();
        for n in &names {
            let doc: Value = serde_json::from_slice(&raw(&store, n).await).expect("json");
            v.push(doc["ciphertext"].clone());
        }
        v
    };

    // Rotate: a new primary; old records still open, new ones use the new key.
    let rotated = KeyRing::rotate_dir(&dir).expect("rotate");
    let new_id = rotated.primary_id().to_owned();
    assert_ne!(new_id, old_id);
    vault.replace_keyring(rotated);
    assert_eq!(
        vault.get("rot/0").await.expect("get").as_deref(),
        Some(&b"value-0"[..])
    );
    vault.put("rot/new", b"fresh").await.expect("put");
    let usage = vault.key_usage().await.expect("usage");
    assert_eq!(usage.get(&old_id), Some(&5));
    assert_eq!(usage.get(&new_id), Some(&1));

    let report = vault.rewrap_all().await.expect("rewrap");
    assert_eq!(
        (
            report.scanned,
            report.rewrapped,
            report.current,
            report.raced
        ),
        (6, 5, 1, 0)
    );
    let again = vault.rewrap_all().await.expect("rewrap again");
    assert_eq!((again.rewrapped, again.current), (0, 6));
    for (n, ct) in names.iter().zip(&ciphertexts_before) {
        let doc: Value = serde_json::from_slice(&raw(&store, n).await).expect("json");
        assert_eq!(
            &doc["ciphertext"], ct,
            "rewrap must not touch the ciphertext of {n}"
        );
        assert_eq!(doc["kid"].as_str(), Some(new_id.as_str()));
    }

    // Remove the old key from the directory; a fresh vault still opens everything.
    fs::remove_file(dir.join(&old_id)).expect("remove old key");
    let reloaded = KeyRing::load(&dir).expect("reload");
    assert!(!reloaded.contains(&old_id));
    let fresh = Vault::new(Arc::clone(&store), reloaded);
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            fresh.get(n).await.expect("get").expect("present"),
            format!("value-{i}").into_bytes()
        );
    }
    assert_eq!(
        fresh.get("rot/new").await.expect("get").as_deref(),
        Some(&b"fresh"[..])
    );
}

#[tokio::test]
async fn a_record_under_a_removed_key_names_the_key() {
    let (_tmp, dir) = ring_dir();
    let store = store();
    let first = KeyRing::generate_dir(&dir).expect("keys");
    let old_id = first.primary_id().to_owned();
    Vault::new(Arc::clone(&store), first)
        .put("gone/1", SECRET)
        .await
        .expect("put");
    KeyRing::rotate_dir(&dir).expect("rotate");
    fs::remove_file(dir.join(&old_id)).expect("remove old key before rewrapping");
    let vault = Vault::new(Arc::clone(&store), KeyRing::load(&dir).expect("reload"));
    let e = vault.get("gone/1").await.expect_err("key gone");
    assert!(e.to_string().contains(&old_id), "{e}");
    let e = vault
        .rewrap_all()
        .await
        .expect_err("rewrap cannot open it either");
    assert!(e.to_string().contains("gone/1"), "{e}");
}

#[tokio::test]
async fn bad_names_are_refused() {
    let (_tmp, dir) = ring_dir();
    let vault = Vault::new(store(), KeyRing::generate_dir(&dir).expect("keys"));
    let e = vault.put("", b"x").await.expect_err("empty");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("secret name"), "{e}");
    assert!(vault.put("a\nb", b"x").await.is_err());
}
