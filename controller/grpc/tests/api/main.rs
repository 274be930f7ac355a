//! The department API over a real gRPC connection: the life of an
//! instance, quota, isolation, lists and watches, placement.
//!
//! This file: the life of an instance, and quota. `access.rs`: isolation
//! between departments and the viewer role; `lists.rs`: pages and watches;
//! `placement.rs`: placement and health; `buckets.rs`: deleting buckets;
//! `actions.rs`: reboots, credentials, and actions a foundation refuses;
//! `retries.rs`: retried spec changes.

mod access;
mod actions;
mod admin;
mod attach;
mod billing;
mod buckets;
#[path = "../common/mod.rs"]
mod common;
mod lists;
mod placement;
mod retries;

use std::time::Duration;

use common::{ALICE, as_, create, department, instance, start};
use futures::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;
use yunshu_proto::api::v1::{
    self as pb, admin_service_client::AdminServiceClient,
    department_service_client::DepartmentServiceClient,
    instance_service_client::InstanceServiceClient,
    placement_service_client::PlacementServiceClient,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_list_watch_delete() {
    let s = start().await;
    department(&*s.store, "health", 48).await;
    let mut c = InstanceServiceClient::new(s.channel.clone());

    let mut watch = c
        .watch_instances(as_(
            ALICE,
            pb::WatchInstancesRequest {
                parent: "departments/health".into(),
                start_revision: 0,
            },
        ))
        .await
        .expect("watch")
        .into_inner();

    let created = c
        .create_instance(as_(
            ALICE,
            create("web-1", "r1", instance(4, 8192, "kylin-v10")),
        ))
        .await
        .expect("create")
        .into_inner();
    let meta = created
        .instance
        .as_ref()
        .and_then(|i| i.metadata.clone())
        .expect("metadata");
    assert_eq!(meta.name, "departments/health/instances/web-1");
    let status = created
        .instance
        .as_ref()
        .and_then(|i| i.status.clone())
        .expect("status");
    assert_eq!(status.phase, pb::Phase::Pending as i32);

    let again = c
        .create_instance(as_(
            ALICE,
            create("web-1", "r1", instance(4, 8192, "kylin-v10")),
        ))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(
        again.instance.and_then(|i| i.metadata).expect("meta").uid,
        meta.uid,
        "a retry returns the same object"
    );

    let got = c
        .get_instance(as_(
            ALICE,
            pb::GetInstanceRequest {
                name: meta.name.clone(),
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.instance.and_then(|i| i.spec).expect("spec").vcpu, 4);

    let list = c
        .list_instances(as_(
            ALICE,
            pb::ListInstancesRequest {
                parent: "departments/health".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.instances.len(), 1);
    assert!(list.revision > 0);

    let ev = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("event")
        .expect("open")
        .expect("ok");
    assert_eq!(ev.r#type, pb::WatchEventType::Created as i32);
    assert_eq!(
        ev.instance.and_then(|i| i.metadata).expect("meta").name,
        meta.name
    );

    c.delete_instance(as_(
        ALICE,
        pb::DeleteInstanceRequest {
            name: meta.name.clone(),
            request_id: "d1".into(),
        },
    ))
    .await
    .expect("delete");
    let ev = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("event")
        .expect("open")
        .expect("ok");
    assert_eq!(ev.r#type, pb::WatchEventType::Deleted as i32);
    let err = c
        .get_instance(as_(
            ALICE,
            pb::GetInstanceRequest {
                name: meta.name.clone(),
            },
        ))
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);

    // The delete retried once the instance is gone answers as it did; a
    // new delete is NOT_FOUND; the create's request id reused is ABORTED.
    let delete = |request_id: &str| {
        as_(
            ALICE,
            pb::DeleteInstanceRequest {
                name: meta.name.clone(),
                request_id: request_id.into(),
            },
        )
    };
    let again = c
        .delete_instance(delete("d1"))
        .await
        .expect("a retried delete succeeds")
        .into_inner()
        .instance
        .expect("its last state");
    assert_eq!(
        again.metadata.expect("metadata").name,
        "departments/health/instances/web-1"
    );
    assert!(
        again
            .status
            .is_some_and(|s| s.phase == pb::Phase::Deleting as i32)
    );
    // Its record says when it was written, which the retention sweep reads.
    let record = s
        .store
        .get(&yunshu_core::keys::request("health", "d1"))
        .await
        .expect("get")
        .expect("a delete record");
    let written =
        yunshu_core::codec::decode::<yunshu_core::requests::Written>(&record.key, &record.value)
            .expect("decode");
    assert!(written.written_at.is_some(), "{written:?}");
    let err = c.delete_instance(delete("d2")).await.expect_err("gone");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // web-1 made again: a late retry of the first delete answers as before
    // and leaves the new one alone.
    let reborn = c
        .create_instance(as_(
            ALICE,
            create("web-1", "r1-again", instance(4, 8192, "kylin-v10")),
        ))
        .await
        .expect("create web-1 again")
        .into_inner()
        .instance
        .expect("instance");
    let late = c
        .delete_instance(delete("d1"))
        .await
        .expect("a late retry")
        .into_inner()
        .instance
        .expect("the first delete's answer");
    assert_ne!(
        late.metadata.expect("metadata").uid,
        reborn.metadata.as_ref().expect("metadata").uid
    );
    c.get_instance(as_(
        ALICE,
        pb::GetInstanceRequest {
            name: meta.name.clone(),
        },
    ))
    .await
    .expect("the new web-1 is still there");
    c.delete_instance(delete("d3"))
        .await
        .expect("delete the new web-1");
    let err = c.delete_instance(delete("r1")).await.expect_err("reused");
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    c.create_instance(as_(
        ALICE,
        create("web-2", "r2", instance(2, 4096, "kylin-v10")),
    ))
    .await
    .expect("create web-2");
    let err = c
        .delete_instance(as_(
            ALICE,
            pb::DeleteInstanceRequest {
                name: "departments/health/instances/web-2".into(),
                request_id: "r2".into(),
            },
        ))
        .await
        .expect_err("a create's id reused for a delete");
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    c.get_instance(as_(
        ALICE,
        pb::GetInstanceRequest {
            name: "departments/health/instances/web-2".into(),
        },
    ))
    .await
    .expect("web-2 was not deleted");
    c.delete_instance(as_(
        ALICE,
        pb::DeleteInstanceRequest {
            name: "departments/health/instances/web-2".into(),
            request_id: "d-web-2".into(),
        },
    ))
    .await
    .expect("delete web-2");

    let quota = DepartmentServiceClient::new(s.channel.clone())
        .get_quota(as_(
            ALICE,
            pb::GetQuotaRequest {
                department: "departments/health".into(),
            },
        ))
        .await
        .expect("quota")
        .into_inner();
    let vcpu = quota
        .resources
        .iter()
        .find(|r| r.resource_class == pb::ResourceClass::Vcpu as i32)
        .expect("vcpu");
    assert_eq!(
        (vcpu.limit, vcpu.used),
        (Some(48), 0),
        "delete returned the charge"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_is_exact_and_resize_is_checked() {
    let s = start().await;
    department(&*s.store, "health", 48).await;
    let mut c = InstanceServiceClient::new(s.channel.clone());
    for i in 0..5 {
        c.create_instance(as_(
            ALICE,
            create(
                &format!("db-{i}"),
                &format!("q{i}"),
                instance(8, 16384, "openeuler-22.03"),
            ),
        ))
        .await
        .expect("fits");
    }
    c.create_instance(as_(
        ALICE,
        create("db-5", "q5", instance(4, 8192, "openeuler-22.03")),
    ))
    .await
    .expect("44 of 48");
    let err = c
        .create_instance(as_(
            ALICE,
            create("db-6", "q6", instance(16, 32768, "kylin-v10")),
        ))
        .await
        .expect_err("over");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(
        err.message(),
        "quota exceeded: vcpu requested 16, used 44, limit 48"
    );
    assert_eq!(
        err.get_details_quota_failure().expect("details").violations[0].subject,
        "vcpu"
    );

    let err = c
        .resize_instance(as_(
            ALICE,
            pb::ResizeInstanceRequest {
                name: "departments/health/instances/db-5".into(),
                vcpu: 16,
                memory_mib: 32768,
                request_id: "z1".into(),
            },
        ))
        .await
        .expect_err("resize over quota");
    assert_eq!(
        err.message(),
        "quota exceeded: vcpu requested 12, used 44, limit 48"
    );
    let resized = c
        .resize_instance(as_(
            ALICE,
            pb::ResizeInstanceRequest {
                name: "departments/health/instances/db-5".into(),
                vcpu: 2,
                memory_mib: 4096,
                request_id: "z2".into(),
            },
        ))
        .await
        .expect("resize down")
        .into_inner();
    assert_eq!(resized.instance.and_then(|i| i.spec).expect("spec").vcpu, 2);
    // Once placed, an instance keeps its size until the provisioner can move
    // its foundation allocation with it.
    {
        use yunshu_core::{
            keys,
            meta::Kind,
            model::{InstanceSpec, Phase},
        };
        let key = keys::object(Kind::Instance, Some("health"), "db-0");
        common::change_stored::<InstanceSpec>(&*s.store, &key, |o| {
            o.status.phase = Phase::Scheduled;
        })
        .await;
        let err = c
            .resize_instance(as_(
                ALICE,
                pb::ResizeInstanceRequest {
                    name: "departments/health/instances/db-0".into(),
                    vcpu: 4,
                    memory_mib: 8192,
                    request_id: "z3".into(),
                },
            ))
            .await
            .expect_err("placed");
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    }
    let stopped = c
        .stop_instance(as_(
            ALICE,
            pb::StopInstanceRequest {
                name: "departments/health/instances/db-5".into(),
                request_id: "s1".into(),
            },
        ))
        .await
        .expect("stop")
        .into_inner();
    assert_eq!(
        stopped.instance.and_then(|i| i.spec).expect("spec").power,
        pb::PowerState::Stopped as i32
    );
}
