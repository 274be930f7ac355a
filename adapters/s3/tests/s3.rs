//! The S3 adapter against real servers (Ceph RGW and SeaweedFS), as a
//! department would meet it: issued keys work with a plain S3 client and
//! only on their bucket, quotas bite, non-empty buckets are kept unless
//! purged, revoked and expired keys stop working, and no secret ever shows
//! up in a log line or an error.

mod common;

use std::{panic::AssertUnwindSafe, time::Duration};

use aws_sdk_s3::primitives::ByteStream;
use common::{
    Backend, LogCapture, Setup, admin_credentials, backend, eventually, plain_client, run_id,
    setup, setup_with,
};
use futures::FutureExt;
use yunshu_adapter_s3::{S3Adapter, error::from_sdk};
use yunshu_core::{
    ErrorKind,
    adapter::{Adapter, DeleteOptions, Owner, SecretVault},
    meta::Kind,
    model::{BucketSpec, Health},
};

const KIB: usize = 1024;

fn owner(department: &str, name: &str) -> Owner {
    Owner {
        department: department.to_owned(),
        name: name.to_owned(),
        uid: uuid::Uuid::new_v4().to_string(),
    }
}

fn spec(quota_bytes: u64, quota_objects: Option<u64>) -> BucketSpec {
    BucketSpec {
        quota_bytes,
        quota_objects,
        versioning: false,
        constraints: Default::default(),
    }
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn put(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    data: Vec<u8>,
) -> yunshu_core::Result<()> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data))
        .send()
        .await
        .map(drop)
        .map_err(|e| from_sdk(e, &format!("put {bucket}/{key}")))
}

async fn get(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> yunshu_core::Result<Vec<u8>> {
    let out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| from_sdk(e, &format!("get {bucket}/{key}")))?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| yunshu_core::Error::unavailable("read body", e))?;
    Ok(bytes.into_bytes().to_vec())
}

/// Polls `f` until it fails (returns the error) or `limit` passes (panics).
async fn until_refused<F, Fut>(limit: Duration, what: &str, mut f: F) -> yunshu_core::Error
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = yunshu_core::Result<()>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Err(e) = f().await {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still accepted after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn ceph_rgw_as_a_department_sees_it() {
    if let Some(b) = backend("YUNSHU_S3_CEPH_STATE", "ceph") {
        scenario(&b).await;
    }
}

#[tokio::test]
async fn seaweedfs_as_a_department_sees_it() {
    if let Some(b) = backend("YUNSHU_S3_SEAWEEDFS_STATE", "seaweedfs") {
        scenario(&b).await;
    }
}

/// RGW answers 403 both for an access key nobody holds and to an admin
/// that may not look: a revoke of an unknown key succeeds, but with broken
/// admin credentials it fails instead of reporting the key gone.
#[tokio::test]
async fn ceph_rgw_revoke_tells_an_unknown_key_from_a_refused_admin() {
    let Some(b) = backend("YUNSHU_S3_CEPH_STATE", "ceph") else {
        return;
    };
    let o = owner(&format!("t{}r", run_id()), "docs");
    let s = setup(&b, "ceph-test");
    s.adapter
        .revoke_credentials(&o, "AKIANOBODYHOLDSTHIS0")
        .await
        .expect("an unknown key is already revoked");
    let mut broken = admin_credentials(&b);
    broken
        .0
        .insert("secret_key".to_owned(), "not-the-admin-secret".to_owned());
    let s = setup_with(&b, "ceph-broken", broken);
    let e = s
        .adapter
        .revoke_credentials(&o, "AKIANOBODYHOLDSTHIS0")
        .await
        .expect_err("broken admin credentials");
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Unauthorized | ErrorKind::PermissionDenied
        ),
        "{e}"
    );
}

/// Runs the steps; whatever happens, removes what they made, then passes
/// a failure on.
async fn scenario(b: &Backend) {
    let run = run_id();
    let (dept_a, dept_b) = (format!("t{run}a"), format!("t{run}b"));
    let s = setup(b, &format!("{}-test", b.name));
    let (oa, ob) = (owner(&dept_a, "docs"), owner(&dept_b, "ledger"));
    let outcome = AssertUnwindSafe(steps(b, &s, &run, &oa, &ob))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        for o in [&oa, &ob] {
            let purge = DeleteOptions { purge: true };
            if let Err(e) = s.adapter.delete(Kind::Bucket, o, purge).await {
                eprintln!("cleanup: bucket of {}: {e}", o.department);
            }
            if let Err(e) = s.adapter.remove_tenant(&o.department).await {
                eprintln!("cleanup: tenant {}: {e}", o.department);
            }
        }
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn steps(b: &Backend, s: &Setup, run: &str, oa: &Owner, ob: &Owner) {
    let logs = LogCapture::start();
    let rgw = b.get("S3_DIALECT") == "rgw-admin";
    let (dept_a, dept_b) = (oa.department.clone(), ob.department.clone());
    let adapter = &s.adapter;
    let mut secrets: Vec<String> = vec![b.get("S3_ADMIN_SECRET_KEY").to_owned()];
    let mut errors: Vec<String> = Vec::new();
    let mut note = |e: &yunshu_core::Error| errors.push(format!("{e} | {e:?}"));

    let probe = adapter.probe().await.expect("probe");
    assert_eq!(
        probe.health,
        Health::Ready,
        "{probe:?}\n{}",
        logs.text()
            .lines()
            .filter(|l| l.contains("WARN"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Tenants: the mapping names the user; the keys live in the vault only.
    let ta = adapter.ensure_tenant(&dept_a).await.expect("tenant A");
    adapter.ensure_tenant(&dept_b).await.expect("tenant B");
    assert_eq!(ta.user, format!("yunshu-{dept_a}"));
    for d in [&dept_a, &dept_b] {
        let sealed = s
            .vault
            .get(&adapter.vault_entry(d))
            .await
            .expect("vault")
            .expect("department keys in the vault");
        let keys: serde_json::Value = serde_json::from_slice(&sealed).expect("json");
        secrets.push(keys["secret_key"].as_str().expect("secret").to_owned());
    }
    assert!(!format!("{ta:?}").contains(&secrets[1]));
    let a_dept = {
        let sealed = s.vault.get(&adapter.vault_entry(&dept_a)).await;
        let keys: serde_json::Value =
            serde_json::from_slice(&sealed.expect("vault").expect("A's keys")).expect("json");
        plain_client(
            b,
            keys["access_key"].as_str().expect("access key"),
            &secrets[1],
        )
    };

    // A's bucket, created twice: one bucket.
    let quota = if rgw { 160 * KIB as u64 } else { 1 << 20 };
    let bspec = spec(quota, rgw.then_some(3));
    let first = adapter
        .create_bucket(oa, &bspec)
        .await
        .expect("create A's bucket");
    let again = adapter
        .create_bucket(oa, &bspec)
        .await
        .expect("create again");
    assert_eq!(first.id, again.id);
    assert_eq!(first.id, S3Adapter::bucket_name(oa));
    assert_eq!(first.owner_uid.as_deref(), Some(oa.uid.as_str()));
    assert!(
        first.ready
            && first.addresses[0].starts_with("http")
            && !first.addresses[0].ends_with(&first.id),
        "{first:?}"
    );
    let bucket = first.id.clone();
    eprintln!("[{}] bucket {bucket}: {}", b.name, first.message);

    // A's issued credentials write and read with a plain S3 client.
    let ca = adapter
        .issue_credentials(oa, Duration::from_secs(3600))
        .await
        .expect("issue for A");
    secrets.push(ca.secret_key.clone());
    assert!(ca.expires_at.is_some());
    assert!(!format!("{ca:?}").contains(&ca.secret_key));
    let a = plain_client(b, &ca.access_key, &ca.secret_key);
    let data = body(64 * KIB, 1);
    eventually(|| put(&a, &bucket, "reports/q1.bin", data.clone()))
        .await
        .expect("A writes with issued keys");
    assert_eq!(
        get(&a, &bucket, "reports/q1.bin").await.expect("A reads"),
        data
    );

    // The issued key reaches no other bucket, and may not create one.
    let b_bucket = adapter
        .create_bucket(ob, &spec(1 << 20, None))
        .await
        .expect("B's bucket")
        .id;
    let e = put(&a, &b_bucket, "x", b"x".to_vec())
        .await
        .expect_err("A's key on B's bucket");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    note(&e);
    let e = a
        .create_bucket()
        .bucket(format!("ys-{run}-rogue"))
        .send()
        .await
        .map_err(|e| from_sdk(e, "create a bucket with an issued key"))
        .expect_err("issued keys cannot create buckets");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");

    // Department B, with its issued key and with its department key, gets 403.
    let cb = adapter
        .issue_credentials(ob, Duration::from_secs(3600))
        .await
        .expect("issue for B");
    secrets.push(cb.secret_key.clone());
    let bc = plain_client(b, &cb.access_key, &cb.secret_key);
    eventually(|| put(&bc, &b_bucket, "own", b"mine".to_vec()))
        .await
        .expect("B writes its own bucket");
    let sealed_b = s
        .vault
        .get(&adapter.vault_entry(&dept_b))
        .await
        .expect("vault")
        .expect("keys");
    let keys_b: serde_json::Value = serde_json::from_slice(&sealed_b).expect("json");
    let b_dept = plain_client(
        b,
        keys_b["access_key"].as_str().expect("ak"),
        keys_b["secret_key"].as_str().expect("sk"),
    );
    for (who, client) in [("issued", &bc), ("department", &b_dept)] {
        let e = get(client, &bucket, "reports/q1.bin")
            .await
            .expect_err("B reads A's object");
        assert_eq!(
            e.kind(),
            ErrorKind::PermissionDenied,
            "B's {who} key on GET: {e}"
        );
        let e = put(client, &bucket, "intruder", b"x".to_vec())
            .await
            .expect_err("B writes");
        assert_eq!(
            e.kind(),
            ErrorKind::PermissionDenied,
            "B's {who} key on PUT: {e}"
        );
        note(&e);
    }

    // Quota: refused by the server.
    if rgw {
        put(&a, &bucket, "fits.bin", body(64 * KIB, 2))
            .await
            .expect("under the quota");
        let e = put(&a, &bucket, "too-big.bin", body(64 * KIB, 3))
            .await
            .expect_err("over the size quota");
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
        note(&e);
        put(&a, &bucket, "tiny", b"x".to_vec())
            .await
            .expect("3rd object fits");
        let e = put(&a, &bucket, "tiny-2", b"x".to_vec())
            .await
            .expect_err("4th object");
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "object quota: {e}");
        eprintln!(
            "[ceph] over-quota writes refused at once: 403 QuotaExceeded -> {}",
            e.kind()
        );
    } else {
        put(&a, &bucket, "over.bin", body(1536 * KIB, 2))
            .await
            .expect("SeaweedFS accepts the write that passes the quota (it checks lazily)");
        let started = tokio::time::Instant::now();
        let mut n = 0;
        let e = until_refused(
            Duration::from_secs(120),
            "SeaweedFS over-quota writes",
            || {
                n += 1;
                let key = format!("late-{n}");
                let a = &a;
                let bucket = &bucket;
                async move {
                    adapter.probe().await?; // applies quotas now (weed shell)
                    put(a, bucket, &key, b"x".repeat(100)).await
                }
            },
        )
        .await;
        eprintln!(
            "[seaweedfs] over-quota writes refused {:.1}s after the limit was passed, {} small writes accepted meanwhile: {} ({})",
            started.elapsed().as_secs_f64(),
            n - 1,
            e.kind(),
            e
        );
        assert_eq!(
            e.kind(),
            ErrorKind::Unavailable,
            "SeaweedFS refuses with 500 InternalError, not a quota code: {e}"
        );
        note(&e);
    }

    // Usage as the adapter reports it.
    let got = adapter.get(Kind::Bucket, oa).await.expect("get");
    assert_eq!(got.id, bucket);
    assert_eq!(got.owner_uid.as_deref(), Some(oa.uid.as_str()));
    let objects = got.objects_used.expect("objects reported");
    let bytes = got.bytes_used.expect("bytes reported");
    if rgw {
        assert_eq!((objects, bytes), (3, (128 * KIB + 1) as u64));
    } else {
        assert!(
            objects >= 2 && bytes > (1536 * KIB) as u64,
            "{objects} objects, {bytes} bytes"
        );
    }
    let owned = adapter.list_owned(Kind::Bucket).await.expect("list_owned");
    assert!(
        owned
            .iter()
            .any(|r| r.id == bucket && r.owner_uid.as_deref() == Some(oa.uid.as_str()))
    );

    // Delete without purge: Conflict, and the data is still there.
    let e = adapter
        .delete(Kind::Bucket, oa, DeleteOptions::default())
        .await
        .expect_err("non-empty bucket");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let expected =
        format!("bucket {bucket} is not empty: {objects} objects; set purge to delete them");
    assert!(e.to_string().contains(&expected), "{e}");
    note(&e);
    assert_eq!(
        get(&a, &bucket, "reports/q1.bin")
            .await
            .expect("still there"),
        data
    );

    // Expiry: on RGW the server refuses the key itself; on SeaweedFS the
    // sweep revokes it.
    let short = adapter
        .issue_credentials(oa, Duration::from_secs(3))
        .await
        .expect("short-lived key");
    secrets.push(short.secret_key.clone());
    let sc = plain_client(b, &short.access_key, &short.secret_key);
    eventually(|| async { get(&sc, &bucket, "reports/q1.bin").await.map(drop) })
        .await
        .expect("a fresh short-lived key works");
    tokio::time::sleep(Duration::from_secs(5)).await;
    if rgw {
        let e = get(&sc, &bucket, "reports/q1.bin")
            .await
            .expect_err("expired key");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        eprintln!("[ceph] an expired key is refused by the server's policy condition");
        // The sweep takes the expired statement out of the bucket's policy
        // along with its user; the live key's statement stays.
        let swept = adapter.revoke_expired_credentials().await.expect("sweep");
        assert!(swept >= 1, "the sweep found {swept} expired users");
        let doc = a_dept
            .get_bucket_policy()
            .bucket(&bucket)
            .send()
            .await
            .expect("bucket policy");
        let doc: serde_json::Value =
            serde_json::from_str(doc.policy().expect("a policy")).expect("json");
        let sids: Vec<&str> = doc["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .filter_map(|s| s["Sid"].as_str())
            .collect();
        assert_eq!(sids.len(), 2, "department and live key only: {sids:?}");
        assert_eq!(sids[0], "YunshuDepartment", "{sids:?}");
        get(&a, &bucket, "reports/q1.bin")
            .await
            .expect("the live key still works after the sweep");
    } else {
        let still = get(&sc, &bucket, "reports/q1.bin").await.is_ok();
        eprintln!("[seaweedfs] an expired key before the sweep still works: {still}");
        let swept = adapter.revoke_expired_credentials().await.expect("sweep");
        assert!(swept >= 1, "the sweep found {swept} expired users");
        let e = until_refused(Duration::from_secs(15), "swept key", || async {
            get(&sc, &bucket, "reports/q1.bin").await.map(drop)
        })
        .await;
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Unauthorized | ErrorKind::PermissionDenied
            ),
            "{e}"
        );
    }

    // Revocation: the key stops working; revoking again is fine.
    adapter
        .revoke_credentials(oa, &ca.access_key)
        .await
        .expect("revoke");
    let e = until_refused(Duration::from_secs(15), "revoked key", || async {
        get(&a, &bucket, "reports/q1.bin").await.map(drop)
    })
    .await;
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Unauthorized | ErrorKind::PermissionDenied
        ),
        "{e}"
    );
    note(&e);
    adapter
        .revoke_credentials(oa, &ca.access_key)
        .await
        .expect("revoke again");

    // Purge deletes the objects and the bucket; deleting again is fine.
    adapter
        .delete(Kind::Bucket, oa, DeleteOptions { purge: true })
        .await
        .expect("purge");
    let e = adapter.get(Kind::Bucket, oa).await.expect_err("gone");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    note(&e);
    adapter
        .delete(Kind::Bucket, oa, DeleteOptions::default())
        .await
        .expect("delete is idempotent");
    let e = get(&b_dept, &bucket, "reports/q1.bin")
        .await
        .expect_err("bucket gone");
    note(&e);

    // Clean up B and both tenants.
    adapter
        .delete(Kind::Bucket, ob, DeleteOptions { purge: true })
        .await
        .expect("purge B");
    for d in [&dept_a, &dept_b] {
        adapter.remove_tenant(d).await.expect("remove tenant");
        assert!(
            s.vault
                .get(&adapter.vault_entry(d))
                .await
                .expect("vault")
                .is_none()
        );
    }

    // No secret in any log line, error or Debug output.
    errors.push(format!("{adapter:?}"));
    let captured = logs.text();
    assert!(
        captured.contains("credentials issued"),
        "logs were captured"
    );
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(
            !captured.contains(secret.as_str()),
            "a secret appears in the logs"
        );
        for e in &errors {
            assert!(
                !e.contains(secret.as_str()),
                "a secret appears in an error: {e}"
            );
        }
    }
    eprintln!(
        "[{}] {} log bytes and {} errors checked for {} secrets",
        b.name,
        captured.len(),
        errors.len(),
        secrets.len()
    );
}
