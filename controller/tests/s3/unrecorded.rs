//! Credentials no record names, and the sweep that still ends them.

use super::*;

/// Keys minted in the instant before a crash, before their record was
/// written, are named by no record; the sweep still ends them at their
/// expiry by asking the foundation for its expired issued users. The crash
/// is made by killing `yunshu` and deleting the record and the sealed copy
/// its issue wrote.
pub(super) fn keys_end_at_their_expiry(y: &mut Yunshu, bucket: &str) {
    let issue = y.ctl(
        "alpha",
        &[
            "-o",
            "json",
            "credentials",
            "issue",
            "bucket",
            bucket,
            "--ttl",
            "20s",
            "--request-id=unrecorded-1",
        ],
    );
    assert!(issue.status.success(), "{}\n{}", text(&issue), y.logs());
    let issued: Value = serde_json::from_slice(&issue.stdout).expect("credentials json");
    let key = issued["accessKeyId"].as_str().expect("key").to_owned();
    let expires =
        chrono::DateTime::parse_from_rfc3339(issued["expireTime"].as_str().expect("expireTime"))
            .expect("expireTime is RFC 3339");
    until_listing(&issued, true, "the fresh key");
    y.served.kill();
    forget_issue(&y.served.store_file(), &key, "unrecorded-1");
    y.served.start();

    // The adapter names each issued user after its expiry (in hex seconds).
    let expiry = format!("{:08x}", expires.timestamp());
    y.wait_for_log(
        Duration::from_secs(40),
        &format!("the sweep to revoke the unrecorded key {key}"),
        |l| l.contains("expired credentials revoked") && l.contains(&expiry),
    );
    y.wait_for_log(
        Duration::from_secs(10),
        "the sweep's count of unrecorded keys",
        |l| l.contains("expired credentials that no record named were revoked"),
    );
    until_listing(&issued, false, "the unrecorded key");
}

/// Deletes what an issue under `request_id` recorded of `access_key`: its
/// record and its sealed copy. `yunshu` must be stopped.
fn forget_issue(store_file: &Path, access_key: &str, request_id: &str) {
    use yunshu_core::store::StoreExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = yunshu_store::EmbeddedStore::open(store_file).expect("open the store");
        let records = store
            .range_all("/yunshu/credentials/alpha/", 100)
            .await
            .expect("records");
        let sealed = store
            .range_all("/yunshu/secrets/credentials/alpha/", 100)
            .await
            .expect("sealed copies");
        let doomed: Vec<String> = records
            .iter()
            .filter(|kv| kv.key.ends_with(&format!("/{access_key}")))
            .chain(
                sealed
                    .iter()
                    .filter(|kv| kv.key.ends_with(&format!("/{request_id}"))),
            )
            .map(|kv| kv.key.clone())
            .collect();
        assert_eq!(doomed.len(), 2, "a record and a sealed copy: {doomed:?}");
        for key in doomed {
            store.delete(&key).await.expect("delete");
        }
    });
}
