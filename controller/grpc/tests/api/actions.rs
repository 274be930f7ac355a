//! One-shot actions: a retried reboot does not reboot again, credential
//! calls need a request id, and a foundation refusing Yunshu's own
//! credentials is not reported as the caller's bad token.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use super::*;
use yunshu_core::{
    adapter::IssuedCredentials,
    keys,
    meta::{Kind, Object},
    model::{BucketSpec, InstanceSpec, Phase},
    principal::Principal,
};
use yunshu_proto::api::v1::bucket_service_client::BucketServiceClient;

/// A foundation's actions, counted.
#[derive(Debug, Default)]
struct Foundation {
    reboots: AtomicUsize,
    /// Pairs issued, by request id (an issue is idempotent under it).
    issued: std::sync::Mutex<std::collections::HashMap<String, IssuedCredentials>>,
    revokes: AtomicUsize,
    /// The foundation refuses Yunshu's credentials.
    refuse: AtomicBool,
    /// Reboots take a moment, so retries overlap them.
    slow: AtomicBool,
}

#[tonic::async_trait]
impl yunshu_grpc::actions::Actions for Foundation {
    async fn reboot(&self, _: &Object<InstanceSpec>) -> yunshu_core::Result<()> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(yunshu_core::Error::Unauthorized {
                message: "the foundation does not know Yunshu's application credential".into(),
            });
        }
        if self.slow.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        self.reboots.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn bucket_objects(&self, _: &Object<BucketSpec>) -> yunshu_core::Result<Option<u64>> {
        Ok(None)
    }
    async fn issue_credentials(
        &self,
        _: &Principal,
        _: &Object<BucketSpec>,
        _: std::time::Duration,
        request_id: &str,
    ) -> yunshu_core::Result<IssuedCredentials> {
        let mut issued = self.issued.lock().expect("issued");
        let n = issued.len();
        let pair = issued
            .entry(request_id.to_owned())
            .or_insert_with(|| IssuedCredentials {
                access_key: format!("AKIA{n:04}"),
                secret_key: format!("secret-{n}"),
                expires_at: None,
            });
        Ok(pair.clone())
    }
    async fn revoke_credentials(
        &self,
        _: &Principal,
        _: &Object<BucketSpec>,
        _: &str,
    ) -> yunshu_core::Result<()> {
        self.revokes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A server with `actions`, and instance `web-1` of `health` Ready on
/// `kunpeng-1`, as the provisioner would leave it.
async fn ready_instance(
    actions: Arc<Foundation>,
) -> (
    common::Server,
    InstanceServiceClient<tonic::transport::Channel>,
) {
    let s = common::start_with(Some(actions)).await;
    department(&*s.store, "health", 48).await;
    let c = common::create_web_1(&s.channel).await;
    let key = keys::object(Kind::Instance, Some("health"), "web-1");
    common::change_stored::<InstanceSpec>(&*s.store, &key, |o| {
        o.status.phase = Phase::Ready;
        o.status.placement.foundation = Some("kunpeng-1".into());
    })
    .await;
    (s, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_reboot_reboots_once() {
    let reboots = Arc::new(Foundation::default());
    let (_s, mut c) = ready_instance(reboots.clone()).await;

    let reboot = |request_id: &str| pb::RebootInstanceRequest {
        name: "departments/health/instances/web-1".into(),
        request_id: request_id.into(),
    };
    for _ in 0..2 {
        c.reboot_instance(as_(ALICE, reboot("boot-1")))
            .await
            .expect("reboot");
    }
    assert_eq!(
        reboots.reboots.load(Ordering::SeqCst),
        1,
        "a retry reboots again"
    );
    c.reboot_instance(as_(ALICE, reboot("boot-2")))
        .await
        .expect("another reboot");
    assert_eq!(reboots.reboots.load(Ordering::SeqCst), 2);
    let err = c
        .reboot_instance(as_(ALICE, reboot("")))
        .await
        .expect_err("no request id");
    common::assert_names_field(err, "request_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_retries_of_a_reboot_reboot_once_and_a_failed_one_can_be_retried() {
    let actions = Arc::new(Foundation::default());
    let (s, c) = ready_instance(actions.clone()).await;
    let reboot = |request_id: &str| pb::RebootInstanceRequest {
        name: "departments/health/instances/web-1".into(),
        request_id: request_id.into(),
    };

    // A reboot the foundation refuses is not remembered as done.
    actions.refuse.store(true, Ordering::SeqCst);
    c.clone()
        .reboot_instance(as_(ALICE, reboot("boot-1")))
        .await
        .expect_err("refused");
    actions.refuse.store(false, Ordering::SeqCst);

    // Retries while the reboot is under way are told so; none reboots.
    actions.slow.store(true, Ordering::SeqCst);
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let mut c = c.clone();
            let req = reboot("boot-1");
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(50 * i)).await;
                c.reboot_instance(as_(ALICE, req)).await
            })
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        match call.await.expect("join") {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                assert!(e.message().contains("being carried out"), "{e:?}");
            }
        }
    }
    assert!(ok >= 1, "the first call reboots");
    assert_eq!(actions.reboots.load(Ordering::SeqCst), 1, "one reboot");
    c.clone()
        .reboot_instance(as_(ALICE, reboot("boot-1")))
        .await
        .expect("a retry once it is done");
    assert_eq!(
        actions.reboots.load(Ordering::SeqCst),
        1,
        "still one reboot"
    );

    // Not running since (being rebuilt, say), the instance cannot be
    // rebooted; the retry is still answered as the reboot was.
    let key = keys::object(Kind::Instance, Some("health"), "web-1");
    common::change_stored::<InstanceSpec>(&*s.store, &key, |o| {
        o.status.phase = Phase::Provisioning;
    })
    .await;
    c.clone()
        .reboot_instance(as_(ALICE, reboot("boot-1")))
        .await
        .expect("answered whatever the state now");
    let err = c
        .clone()
        .reboot_instance(as_(ALICE, reboot("boot-2")))
        .await
        .expect_err("a new reboot of an instance that is not running");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(actions.reboots.load(Ordering::SeqCst), 1);

    // The id belongs to the reboot now.
    let err = c
        .clone()
        .stop_instance(as_(
            ALICE,
            pb::StopInstanceRequest {
                name: "departments/health/instances/web-1".into(),
                request_id: "boot-1".into(),
            },
        ))
        .await
        .expect_err("a stop under the reboot's id");
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foundation_refusing_yunshu_is_unavailable_not_unauthenticated() {
    let actions = Arc::new(Foundation::default());
    actions.refuse.store(true, Ordering::SeqCst);
    let (_s, mut c) = ready_instance(actions).await;
    let err = c
        .reboot_instance(as_(
            ALICE,
            pb::RebootInstanceRequest {
                name: "departments/health/instances/web-1".into(),
                request_id: "boot-1".into(),
            },
        ))
        .await
        .expect_err("the foundation refuses");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("an admin must fix"), "{err:?}");
}

/// A server with `actions`, and bucket `logs` of `health` Ready on
/// `object-store`, as the provisioner would leave it.
async fn ready_bucket(
    actions: Arc<Foundation>,
) -> (
    common::Server,
    BucketServiceClient<tonic::transport::Channel>,
) {
    let s = common::start_with(Some(actions)).await;
    department(&*s.store, "health", 48).await;
    let mut c = BucketServiceClient::new(s.channel.clone());
    super::buckets::create_logs(&mut c).await;
    let key = keys::object(Kind::Bucket, Some("health"), "logs");
    common::change_stored::<BucketSpec>(&*s.store, &key, |o| {
        o.status.phase = Phase::Ready;
        o.status.placement.foundation = Some("object-store".into());
    })
    .await;
    (s, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_credential_issue_must_ask_the_same_ttl() {
    use yunshu_core::store::StoreExt;
    let actions = Arc::new(Foundation::default());
    let (s, mut c) = ready_bucket(actions.clone()).await;
    let issue = |request_id: &str, ttl: Option<i64>| pb::IssueBucketCredentialsRequest {
        name: "departments/health/buckets/logs".into(),
        ttl: ttl.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
        request_id: request_id.into(),
    };
    // (The pair a retry gets back is the foundation's to keep, under the
    // request id, as `Foundation` does.)
    for _ in 0..2 {
        c.issue_bucket_credentials(as_(ALICE, issue("keys-1", Some(600))))
            .await
            .expect("issue, and its retry");
    }
    for ttl in [Some(60), None, Some(3600)] {
        let err = c
            .issue_bucket_credentials(as_(ALICE, issue("keys-1", ttl)))
            .await
            .expect_err("the id was used for another ttl");
        assert_eq!(err.code(), Code::Aborted, "{err:?}");
    }
    // Asking the default ttl is asking none.
    c.issue_bucket_credentials(as_(ALICE, issue("keys-2", None)))
        .await
        .expect("issue with the default ttl");
    c.issue_bucket_credentials(as_(ALICE, issue("keys-2", Some(3600))))
        .await
        .expect("retry naming the default ttl");
    // A request an earlier build recorded, whatever ttl it asked, is
    // answered as done, not refused as another request.
    let key = keys::object(Kind::Bucket, Some("health"), "logs");
    let bucket = s.store.get(&key).await.expect("read").expect("bucket");
    let uid = yunshu_core::codec::decode_object::<BucketSpec>(&bucket)
        .expect("decode")
        .meta
        .uid;
    let earlier = serde_json::json!({
        "objectKey": key,
        "uid": uid,
        "fingerprint": yunshu_core::admission::fingerprint(Kind::Bucket, "logs", b"issue credentials"),
        "done": true,
        "writtenAt": yunshu_core::requests::unix_now(),
    });
    s.store
        .put(
            &keys::request("health", "keys-old"),
            yunshu_core::codec::encode(&earlier).expect("encode"),
        )
        .await
        .expect("write");
    c.issue_bucket_credentials(as_(ALICE, issue("keys-old", Some(600))))
        .await
        .expect("an earlier build's request, retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_credentials_needs_a_request_id() {
    let actions = Arc::new(Foundation::default());
    let (_s, mut c) = ready_bucket(actions.clone()).await;
    let revoke = |request_id: &str| pb::RevokeBucketCredentialsRequest {
        name: "departments/health/buckets/logs".into(),
        access_key_id: "AKIA0001".into(),
        request_id: request_id.into(),
    };
    let err = c
        .revoke_bucket_credentials(as_(ALICE, revoke("")))
        .await
        .expect_err("no request id");
    common::assert_names_field(err, "request_id");
    assert_eq!(
        actions.revokes.load(Ordering::SeqCst),
        0,
        "nothing was revoked"
    );
    c.revoke_bucket_credentials(as_(ALICE, revoke("revoke-1")))
        .await
        .expect("revoke");
    assert_eq!(actions.revokes.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_recorded_by_an_earlier_build_is_not_repeated() {
    use yunshu_core::store::StoreExt;
    let actions = Arc::new(Foundation::default());
    let (s, mut c) = ready_instance(actions.clone()).await;
    let key = keys::object(Kind::Instance, Some("health"), "web-1");
    let kv = s.store.get(&key).await.expect("read").expect("stored");
    let uid = yunshu_core::codec::decode_object::<InstanceSpec>(&kv)
        .expect("decode")
        .meta
        .uid;
    // Where builds before request records for actions kept a reboot's id.
    s.store
        .put(&format!("/yunshu/reboots/health/{uid}/old-1"), Vec::new())
        .await
        .expect("put");
    c.reboot_instance(as_(
        ALICE,
        pb::RebootInstanceRequest {
            name: "departments/health/instances/web-1".into(),
            request_id: "old-1".into(),
        },
    ))
    .await
    .expect("answered");
    assert_eq!(
        actions.reboots.load(Ordering::SeqCst),
        0,
        "not rebooted again"
    );
}
