//! Rebooting an instance: a retry with the same request id does not reboot
//! it again.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use super::*;
use yunshu_core::{
    adapter::IssuedCredentials,
    keys,
    meta::{Kind, Object},
    model::{BucketSpec, InstanceSpec, Phase},
    principal::Principal,
};

/// Counts reboots; the other actions are not used here.
#[derive(Debug, Default)]
struct Reboots(AtomicUsize);

#[tonic::async_trait]
impl yunshu_grpc::actions::Actions for Reboots {
    async fn reboot(&self, _: &Object<InstanceSpec>) -> yunshu_core::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
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
        _: &str,
    ) -> yunshu_core::Result<IssuedCredentials> {
        Err(yunshu_core::Error::internal("not used"))
    }
    async fn revoke_credentials(
        &self,
        _: &Principal,
        _: &Object<BucketSpec>,
        _: &str,
    ) -> yunshu_core::Result<()> {
        Err(yunshu_core::Error::internal("not used"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_reboot_reboots_once() {
    let reboots = Arc::new(Reboots::default());
    let s = common::start_with(Some(reboots.clone())).await;
    department(&*s.store, "health", 48).await;
    let mut c = InstanceServiceClient::new(s.channel.clone());
    c.create_instance(as_(
        ALICE,
        create("web-1", "r1", instance(2, 4096, "kylin-v10")),
    ))
    .await
    .expect("create");
    // Ready, as the provisioner would leave it.
    let key = keys::object(Kind::Instance, Some("health"), "web-1");
    common::change_stored::<InstanceSpec>(&*s.store, &key, |o| {
        o.status.phase = Phase::Ready;
        o.status.placement.foundation = Some("kunpeng-1".into());
    })
    .await;

    let reboot = |request_id: &str| pb::RebootInstanceRequest {
        name: "departments/health/instances/web-1".into(),
        request_id: request_id.into(),
    };
    for _ in 0..2 {
        c.reboot_instance(as_(ALICE, reboot("boot-1")))
            .await
            .expect("reboot");
    }
    assert_eq!(reboots.0.load(Ordering::SeqCst), 1, "a retry reboots again");
    c.reboot_instance(as_(ALICE, reboot("boot-2")))
        .await
        .expect("another reboot");
    assert_eq!(reboots.0.load(Ordering::SeqCst), 2);
    let err = c
        .reboot_instance(as_(ALICE, reboot("")))
        .await
        .expect_err("no request id");
    common::assert_names_field(err, "request_id");
}
