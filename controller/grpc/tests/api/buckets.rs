//! Deleting buckets.

use super::*;
use yunshu_core::{
    codec, keys,
    meta::{Kind, Object},
    model::{BucketSpec, PURGE_LABEL},
    store::{Store, StoreExt},
};
use yunshu_proto::api::v1::bucket_service_client::BucketServiceClient;

async fn stored(store: &dyn Store) -> Object<BucketSpec> {
    let kv = store
        .get(&keys::object(Kind::Bucket, Some("health"), "logs"))
        .await
        .expect("read")
        .expect("the bucket is stored");
    codec::decode_object(&kv).expect("decode")
}

fn delete(request_id: &str, purge: bool) -> pb::DeleteBucketRequest {
    pb::DeleteBucketRequest {
        name: "departments/health/buckets/logs".into(),
        request_id: request_id.into(),
        purge,
    }
}

/// Creates bucket `logs` of `health` (1 GiB).
pub(super) async fn create_logs(c: &mut BucketServiceClient<tonic::transport::Channel>) {
    c.create_bucket(as_(
        ALICE,
        pb::CreateBucketRequest {
            parent: "departments/health".into(),
            bucket_id: "logs".into(),
            bucket: Some(pb::Bucket {
                metadata: None,
                spec: Some(pb::BucketSpec {
                    quota_bytes: 1 << 30,
                    ..Default::default()
                }),
                status: None,
            }),
            request_id: "create-logs".into(),
        },
    ))
    .await
    .expect("create");
}

/// A delete without purge may be held up by what the bucket holds; asking
/// again with purge must reach the provisioner, not be dropped because the
/// bucket is already being deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_asked_for_after_a_plain_delete_is_marked_on_the_bucket() {
    let s = start().await;
    department(&*s.store, "health", 48).await;
    let mut c = BucketServiceClient::new(s.channel.clone());
    create_logs(&mut c).await;
    // The provisioner holds the bucket, as once it is created in a cloud.
    let mut held = stored(&*s.store).await;
    held.meta.finalizers.push("yunshu.io/provisioner".into());
    s.store
        .put(
            &keys::object(Kind::Bucket, Some("health"), "logs"),
            codec::encode(&held).expect("encode"),
        )
        .await
        .expect("write");

    c.delete_bucket(as_(ALICE, delete("delete-1", false)))
        .await
        .expect("delete");
    let marked = stored(&*s.store).await;
    assert!(marked.meta.deletion_timestamp.is_some());
    assert!(!marked.meta.labels.contains_key(PURGE_LABEL));

    c.delete_bucket(as_(ALICE, delete("delete-2", true)))
        .await
        .expect("delete with purge");
    let purged = stored(&*s.store).await;
    assert_eq!(
        purged.meta.labels.get(PURGE_LABEL).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        purged.meta.deletion_timestamp, marked.meta.deletion_timestamp,
        "the first deletion time stands"
    );
}
