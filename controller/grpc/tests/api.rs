//! The department API over a real gRPC connection: the life of an
//! instance, quota, isolation, lists and watches, placement.

mod common;

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
        .get_instance(as_(ALICE, pb::GetInstanceRequest { name: meta.name }))
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);

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
            codec, keys,
            meta::Kind,
            model::{Instance, Phase},
            store::StoreExt,
        };
        let key = keys::object(Kind::Instance, Some("health"), "db-0");
        let kv = s.store.get(&key).await.expect("get").expect("db-0");
        let mut placed: Instance = codec::decode_object(&kv).expect("decode");
        placed.status.phase = Phase::Scheduled;
        s.store
            .put(&key, codec::encode(&placed).expect("encode"))
            .await
            .expect("put");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departments_are_isolated_and_viewers_cannot_mutate() {
    let s = start().await;
    department(&*s.store, "health", 48).await;
    department(&*s.store, "transport", 48).await;
    let mut c = InstanceServiceClient::new(s.channel.clone());
    c.create_instance(as_(
        ALICE,
        create("web-1", "r1", instance(2, 4096, "kylin-v10")),
    ))
    .await
    .expect("create");
    let name = "departments/health/instances/web-1".to_owned();

    let bob = "transport:operator:bob";
    let err = c
        .get_instance(as_(bob, pb::GetInstanceRequest { name: name.clone() }))
        .await
        .expect_err("isolated");
    assert_eq!(
        err.code(),
        Code::NotFound,
        "another department's resource looks absent"
    );
    let err = c
        .list_instances(as_(
            bob,
            pb::ListInstancesRequest {
                parent: "departments/health".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("isolated");
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .delete_instance(as_(
            bob,
            pb::DeleteInstanceRequest {
                name: name.clone(),
                request_id: "x".into(),
            },
        ))
        .await
        .expect_err("isolated");
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .create_instance(as_(
            bob,
            create("evil", "e1", instance(2, 4096, "kylin-v10")),
        ))
        .await
        .expect_err("isolated");
    assert_eq!(err.code(), Code::NotFound);

    let viewer = "health:viewer:carol";
    c.get_instance(as_(viewer, pb::GetInstanceRequest { name: name.clone() }))
        .await
        .expect("viewers read");
    for err in [
        c.create_instance(as_(
            viewer,
            create("web-2", "v1", instance(2, 4096, "kylin-v10")),
        ))
        .await
        .expect_err("viewer"),
        c.delete_instance(as_(
            viewer,
            pb::DeleteInstanceRequest {
                name: name.clone(),
                request_id: "v2".into(),
            },
        ))
        .await
        .expect_err("viewer"),
        c.stop_instance(as_(
            viewer,
            pb::StopInstanceRequest {
                name: name.clone(),
                request_id: "v3".into(),
            },
        ))
        .await
        .expect_err("viewer"),
    ] {
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }

    let err = c
        .get_instance(pb::GetInstanceRequest { name: name.clone() })
        .await
        .expect_err("anonymous");
    assert_eq!(err.code(), Code::Unauthenticated);

    let mut admin = AdminServiceClient::new(s.channel.clone());
    let err = admin
        .list_departments(as_(ALICE, pb::ListDepartmentsRequest::default()))
        .await
        .expect_err("not admin");
    assert_eq!(err.code(), Code::PermissionDenied);
    let health = admin
        .get_department(as_(
            "platform:admin:root",
            pb::GetDepartmentRequest {
                name: "departments/health".into(),
            },
        ))
        .await
        .expect("admin reads a department")
        .into_inner();
    let usage = health
        .department
        .and_then(|d| d.status)
        .map(|s| s.usage)
        .unwrap_or_default();
    assert!(
        usage
            .iter()
            .any(|u| u.resource_class == pb::ResourceClass::Vcpu as i32 && u.amount == 2),
        "the department's status shows its usage: {usage:?}"
    );
    let list = admin
        .list_departments(as_(
            "platform:admin:root",
            pb::ListDepartmentsRequest::default(),
        ))
        .await
        .expect("admin")
        .into_inner();
    assert_eq!(list.departments.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_and_watches_resume() {
    let s = start().await;
    department(&*s.store, "health", 1000).await;
    let mut c = InstanceServiceClient::new(s.channel.clone());
    let mut revisions = Vec::new();
    for i in 0..7 {
        let r = c
            .create_instance(as_(
                ALICE,
                create(
                    &format!("vm-{i}"),
                    &format!("p{i}"),
                    instance(1, 1024, "kylin-v10"),
                ),
            ))
            .await
            .expect("create");
        revisions.push(
            r.into_inner()
                .instance
                .and_then(|i| i.metadata)
                .expect("meta")
                .revision,
        );
    }
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .list_instances(as_(
                ALICE,
                pb::ListInstancesRequest {
                    parent: "departments/health".into(),
                    page_size: 3,
                    page_token: token.clone(),
                    filter: None,
                },
            ))
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        names.extend(
            page.instances
                .into_iter()
                .filter_map(|i| i.metadata)
                .map(|m| m.name),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!((pages, names.len()), (3, 7));
    let err = c
        .list_instances(as_(
            ALICE,
            pb::ListInstancesRequest {
                parent: "departments/health".into(),
                page_size: 3,
                page_token: "zz".into(),
                filter: None,
            },
        ))
        .await
        .expect_err("bad token");
    assert_eq!(err.code(), Code::InvalidArgument);

    // Resume from the fourth create: exactly the last four, in order.
    let mut watch = c
        .watch_instances(as_(
            ALICE,
            pb::WatchInstancesRequest {
                parent: "departments/health".into(),
                start_revision: revisions[3],
            },
        ))
        .await
        .expect("watch")
        .into_inner();
    for want in &revisions[3..] {
        let ev = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("event")
            .expect("open")
            .expect("ok");
        assert_eq!(ev.revision, *want);
    }

    s.store.compact(revisions[6]).await.expect("compact");
    let mut watch = c
        .watch_instances(as_(
            ALICE,
            pb::WatchInstancesRequest {
                parent: "departments/health".into(),
                start_revision: revisions[0],
            },
        ))
        .await
        .expect("watch opens")
        .into_inner();
    let err = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("answer")
        .expect("item")
        .expect_err("compacted");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_explains_and_dry_runs_and_health_is_served() {
    use yunshu_core::{
        codec, keys,
        model::{AdapterKind, Foundation, FoundationSpec},
        resources::{ResourceClass, Resources},
        store::StoreExt,
    };
    let s = start().await;
    department(&*s.store, "health", 48).await;
    for (name, arch) in [("x86-phase1", "x86_64"), ("kunpeng-1", "aarch64")] {
        let spec = FoundationSpec {
            adapter: AdapterKind::Openstack,
            endpoint: "http://127.0.0.1:5000/v3".into(),
            region: None,
            zones: vec![],
            credentials: None,
            traits: vec![format!("arch:{arch}").parse().expect("trait")],
            allocation_ratios: Default::default(),
            tariff: Default::default(),
            pue: None,
            budget: Default::default(),
            capacity: Some(Resources::from_pairs([
                (ResourceClass::Vcpu, 64),
                (ResourceClass::MemoryMib, 262_144),
                (ResourceClass::DiskGib, 4096),
            ])),
            settings: Default::default(),
        };
        let f = Foundation::new(None, name, spec);
        s.store
            .put(
                &keys::object(yunshu_core::meta::Kind::Foundation, None, name),
                codec::encode(&f).expect("encode"),
            )
            .await
            .expect("put foundation");
    }
    let mut placement = PlacementServiceClient::new(s.channel.clone());
    let mut aarch64 = instance(4, 8192, "kylin-v10").spec.expect("spec");
    aarch64.constraints = Some(pb::Constraints {
        required_traits: vec!["arch:aarch64".into()],
        ..Default::default()
    });
    let dry = placement
        .dry_run_placement(as_(
            ALICE,
            pb::DryRunPlacementRequest {
                parent: "departments/health".into(),
                spec: Some(pb::dry_run_placement_request::Spec::Instance(aarch64)),
            },
        ))
        .await
        .expect("dry run")
        .into_inner()
        .explanation
        .expect("explanation");
    assert_eq!(dry.foundation, "foundations/kunpeng-1", "{dry:?}");
    let x86 = dry
        .verdicts
        .iter()
        .find(|v| v.foundation == "foundations/x86-phase1")
        .expect("x86 verdict");
    match &x86.outcome {
        Some(pb::foundation_verdict::Outcome::FilteredOut(f)) => {
            assert_eq!(f.filter, "traits", "{f:?}")
        }
        other => panic!("x86 should be filtered by traits: {other:?}"),
    }
    let bad = placement
        .dry_run_placement(as_(
            ALICE,
            pb::DryRunPlacementRequest {
                parent: "departments/health".into(),
                spec: None,
            },
        ))
        .await
        .expect_err("no spec");
    assert_eq!(bad.code(), Code::InvalidArgument);

    let mut c = InstanceServiceClient::new(s.channel.clone());
    c.create_instance(as_(
        ALICE,
        create("web-1", "r1", instance(2, 4096, "kylin-v10")),
    ))
    .await
    .expect("create");
    let err = placement
        .explain_placement(as_(
            ALICE,
            pb::ExplainPlacementRequest {
                name: "departments/health/instances/web-1".into(),
            },
        ))
        .await
        .expect_err("not placed yet");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = placement
        .explain_placement(as_(
            "transport:operator:bob",
            pb::ExplainPlacementRequest {
                name: "departments/health/instances/web-1".into(),
            },
        ))
        .await
        .expect_err("isolated");
    assert_eq!(err.code(), Code::NotFound);

    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel.clone());
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "yunshu.api.v1.InstanceService".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}
