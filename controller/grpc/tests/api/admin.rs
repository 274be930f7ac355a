//! The admin service's writes: foundation references in a department are
//! resource names, a foundation holding resources cannot be deleted, and in
//! Kubernetes mode every write is refused.

use super::*;

const ROOT: &str = "platform:admin:root";

fn foundation(name: &str) -> pb::Foundation {
    pb::Foundation {
        metadata: Some(pb::ObjectMeta {
            name: format!("foundations/{name}"),
            ..Default::default()
        }),
        spec: Some(pb::FoundationSpec {
            adapter: pb::AdapterKind::Openstack as i32,
            endpoint: "http://127.0.0.1:5000/v3".into(),
            traits: vec!["arch:aarch64".into()],
            capacity: vec![
                pb::ResourceAmount {
                    resource_class: pb::ResourceClass::Vcpu as i32,
                    amount: 64,
                },
                pb::ResourceAmount {
                    resource_class: pb::ResourceClass::MemoryMib as i32,
                    amount: 262_144,
                },
                pb::ResourceAmount {
                    resource_class: pb::ResourceClass::DiskGib as i32,
                    amount: 4096,
                },
            ],
            ..Default::default()
        }),
        status: None,
    }
}

fn create_kunpeng_1(request_id: &str) -> tonic::Request<pb::CreateFoundationRequest> {
    as_(
        ROOT,
        pb::CreateFoundationRequest {
            foundation: Some(foundation("kunpeng-1")),
            foundation_id: "kunpeng-1".into(),
            request_id: request_id.into(),
        },
    )
}

fn edu(allowed: &str) -> pb::Department {
    pb::Department {
        metadata: Some(pb::ObjectMeta {
            name: "departments/edu".into(),
            ..Default::default()
        }),
        spec: Some(pb::DepartmentSpec {
            display_name: "Education".into(),
            allowed_foundations: vec![allowed.into()],
            quota: Some(pb::Quota {
                hard: vec![pb::QuotaLimit {
                    resource_class: pb::ResourceClass::Vcpu as i32,
                    limit: 16,
                }],
                per_foundation: vec![pb::FoundationQuota {
                    foundation: allowed.into(),
                    limits: vec![pb::QuotaLimit {
                        resource_class: pb::ResourceClass::Vcpu as i32,
                        limit: 8,
                    }],
                }],
            }),
            ..Default::default()
        }),
        status: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foundation_references_are_names_and_a_busy_foundation_stays() {
    let s = start().await;
    let mut admin = AdminServiceClient::new(s.channel.clone());
    admin
        .create_foundation(create_kunpeng_1("f-1"))
        .await
        .expect("create foundation");

    // A bare name would match no foundation: refused, naming both fields.
    let err = admin
        .create_department(as_(
            ROOT,
            pb::CreateDepartmentRequest {
                department: Some(edu("kunpeng-1")),
                department_id: "edu".into(),
                request_id: "d-1".into(),
            },
        ))
        .await
        .expect_err("a bare foundation name");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let fields: Vec<String> = err
        .get_details_bad_request()
        .expect("field violations")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "department.spec.quota.per_foundation[0].foundation",
            "department.spec.allowed_foundations[0]"
        ],
        "{err:?}"
    );

    let created = admin
        .create_department(as_(
            ROOT,
            pb::CreateDepartmentRequest {
                department: Some(edu("foundations/kunpeng-1")),
                department_id: "edu".into(),
                request_id: "d-2".into(),
            },
        ))
        .await
        .expect("create department")
        .into_inner()
        .department
        .expect("department");
    let spec = created.spec.expect("spec");
    assert_eq!(spec.allowed_foundations, ["foundations/kunpeng-1"]);
    assert_eq!(
        spec.quota.expect("quota").per_foundation[0].foundation,
        "foundations/kunpeng-1"
    );

    // The department's instance lands on the foundation it may use, and
    // its status names the foundation as a resource name.
    let scheduler = yunshu_placement::Scheduler::new(
        s.store.clone(),
        yunshu_placement::SchedulerConfig::default(),
    );
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move { scheduler.run(stopped).await });
    let mut instances = InstanceServiceClient::new(s.channel.clone());
    let mut web = instance(2, 4096, "kylin-v10");
    web.spec.as_mut().expect("spec").constraints = Some(pb::Constraints {
        required_traits: vec!["arch:aarch64".into()],
        ..Default::default()
    });
    let mut request = create("web-1", "i-1", web);
    request.parent = "departments/edu".into();
    instances
        .create_instance(as_("edu:operator:lin", request))
        .await
        .expect("create instance");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let placed = loop {
        let got = instances
            .get_instance(as_(
                "edu:operator:lin",
                pb::GetInstanceRequest {
                    name: "departments/edu/instances/web-1".into(),
                },
            ))
            .await
            .expect("get")
            .into_inner()
            .instance
            .and_then(|i| i.status)
            .unwrap_or_default();
        if !got.foundation.is_empty() {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "never placed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(placed.foundation, "foundations/kunpeng-1", "{placed:?}");

    // The quota view lists the foundation with every class limited or used.
    let quota = DepartmentServiceClient::new(s.channel.clone())
        .get_quota(as_(
            "edu:viewer:kim",
            pb::GetQuotaRequest {
                department: "departments/edu".into(),
            },
        ))
        .await
        .expect("quota")
        .into_inner();
    let on = &quota.foundations[0];
    assert_eq!(on.foundation, "foundations/kunpeng-1");
    let of = |c: pb::ResourceClass| {
        on.resources
            .iter()
            .find(|r| r.resource_class == c as i32)
            .map(|r| (r.limit, r.used))
    };
    assert_eq!(of(pb::ResourceClass::Vcpu), Some((Some(8), 2)), "{on:?}");
    assert_eq!(
        of(pb::ResourceClass::MemoryMib),
        Some((None, 4096)),
        "used without a limit is listed: {on:?}"
    );
    assert_eq!(of(pb::ResourceClass::Buckets), None, "{on:?}");

    // A resize retried after the instance was placed finds it at that size
    // already and succeeds; a real resize of one still being created
    // (Scheduled: this foundation has no adapter) is refused.
    let resize = |vcpu: u32, memory_mib: u64| {
        as_(
            "edu:operator:lin",
            pb::ResizeInstanceRequest {
                name: "departments/edu/instances/web-1".into(),
                vcpu,
                memory_mib,
                request_id: format!("resize-{vcpu}"),
            },
        )
    };
    instances
        .resize_instance(resize(2, 4096))
        .await
        .expect("already this size");
    let err = instances
        .resize_instance(resize(4, 8192))
        .await
        .expect_err("placed");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // Once Ready (as the provisioner leaves it), it is resized: the spec at
    // once, and the foundation's allocation as placement grows its claim.
    let key = yunshu_core::keys::object(yunshu_core::meta::Kind::Instance, Some("edu"), "web-1");
    let kv = s.store.get(&key).await.expect("get").expect("stored");
    let mut ready: yunshu_core::model::Instance =
        yunshu_core::codec::decode_object(&kv).expect("decode");
    ready.status.phase = yunshu_core::model::Phase::Ready;
    ready.status.provisioned = Some(yunshu_core::model::Charge::charge(&ready.spec));
    yunshu_core::store::StoreExt::put(
        &*s.store,
        &key,
        yunshu_core::codec::encode(&ready).expect("encode"),
    )
    .await
    .expect("ready");
    let mut bigger = resize(4, 8192);
    bigger.get_mut().request_id = "resize-once-ready".into();
    let resized = instances
        .resize_instance(bigger)
        .await
        .expect("a Ready instance is resized")
        .into_inner();
    assert_eq!(
        resized.instance.and_then(|i| i.spec).map(|s| s.vcpu),
        Some(4)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let a: yunshu_placement::AllocationRecord = s
            .store
            .get(&yunshu_placement::keys::allocation("kunpeng-1"))
            .await
            .expect("get")
            .map(|kv| yunshu_core::codec::decode(&kv.key, &kv.value).expect("decode"))
            .unwrap_or_default();
        if a.used.get(yunshu_core::resources::ResourceClass::Vcpu) == 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{a:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Resources are allocated on it: the foundation cannot go.
    let err = admin
        .delete_foundation(as_(
            ROOT,
            pb::DeleteFoundationRequest {
                name: "foundations/kunpeng-1".into(),
                request_id: "f-del-1".into(),
            },
        ))
        .await
        .expect_err("busy foundation");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("edu"), "{}", err.message());
    admin
        .get_foundation(as_(
            ROOT,
            pb::GetFoundationRequest {
                name: "foundations/kunpeng-1".into(),
            },
        ))
        .await
        .expect("still there");

    // An idle foundation goes; its delete retried answers as it did, a new
    // delete is NOT_FOUND.
    admin
        .create_foundation(as_(
            ROOT,
            pb::CreateFoundationRequest {
                foundation: Some(foundation("spare-1")),
                foundation_id: "spare-1".into(),
                request_id: "f-spare".into(),
            },
        ))
        .await
        .expect("create spare-1");
    let delete = |request_id: &str| {
        as_(
            ROOT,
            pb::DeleteFoundationRequest {
                name: "foundations/spare-1".into(),
                request_id: request_id.into(),
            },
        )
    };
    admin
        .delete_foundation(delete("f-del-spare"))
        .await
        .expect("delete spare-1");
    let again = admin
        .delete_foundation(delete("f-del-spare"))
        .await
        .expect("the retried delete")
        .into_inner()
        .foundation
        .expect("its last state");
    assert_eq!(
        again.metadata.expect("metadata").name,
        "foundations/spare-1"
    );
    let err = admin
        .delete_foundation(delete("f-del-other"))
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_mode_refuses_admin_writes_and_serves_reads() {
    let s = common::start_kubernetes_mode().await;
    department(&*s.store, "health", 48).await;
    let mut admin = AdminServiceClient::new(s.channel.clone());
    let err = admin
        .create_foundation(create_kunpeng_1("f-1"))
        .await
        .expect_err("kubernetes mode");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("kubectl"), "{}", err.message());
    let err = admin
        .delete_department(as_(
            ROOT,
            pb::DeleteDepartmentRequest {
                name: "departments/health".into(),
                request_id: "d-del".into(),
            },
        ))
        .await
        .expect_err("kubernetes mode");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    admin
        .get_department(as_(
            ROOT,
            pb::GetDepartmentRequest {
                name: "departments/health".into(),
            },
        ))
        .await
        .expect("reads still work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_retries_are_answered_as_first_and_an_id_is_for_one_request() {
    let s = start().await;
    let mut admin = AdminServiceClient::new(s.channel.clone());
    let first = admin
        .create_foundation(create_kunpeng_1("f-1"))
        .await
        .expect("create")
        .into_inner();

    // The same id with another spec is another request.
    let mut other = create_kunpeng_1("f-1");
    if let Some(spec) = other
        .get_mut()
        .foundation
        .as_mut()
        .and_then(|f| f.spec.as_mut())
    {
        spec.traits.push("cpu:kunpeng".into());
    }
    let err = admin.create_foundation(other).await.expect_err("reused id");
    assert_eq!(err.code(), Code::Aborted, "{err:?}");

    // An update retried after a later update answers as it did and does
    // not undo the later one, with or without its revision guard.
    let update = |request_id: &str, traits: &[&str], revision: i64| {
        let mut f = foundation("kunpeng-1");
        if let Some(spec) = f.spec.as_mut() {
            spec.traits = traits.iter().map(|t| (*t).to_owned()).collect();
        }
        if let Some(m) = f.metadata.as_mut() {
            m.revision = revision;
        }
        as_(
            ROOT,
            pb::UpdateFoundationRequest {
                foundation: Some(f),
                request_id: request_id.into(),
            },
        )
    };
    let revision = first
        .foundation
        .as_ref()
        .and_then(|f| f.metadata.as_ref())
        .map_or(0, |m| m.revision);
    let traits = |r: pb::UpdateFoundationResponse| {
        r.foundation
            .and_then(|f| f.spec)
            .map(|s| s.traits)
            .unwrap_or_default()
    };
    let u1 = traits(
        admin
            .update_foundation(update("u-1", &["arch:aarch64", "cpu:kunpeng"], revision))
            .await
            .expect("update")
            .into_inner(),
    );
    admin
        .update_foundation(update("u-2", &["arch:aarch64", "xinchuang"], 0))
        .await
        .expect("a later update");
    let retried = traits(
        admin
            .update_foundation(update("u-1", &["arch:aarch64", "cpu:kunpeng"], revision))
            .await
            .expect("the retry is answered, not refused for its old revision")
            .into_inner(),
    );
    assert_eq!(retried, u1);
    let now = admin
        .get_foundation(as_(
            ROOT,
            pb::GetFoundationRequest {
                name: "foundations/kunpeng-1".into(),
            },
        ))
        .await
        .expect("get")
        .into_inner()
        .foundation
        .and_then(|f| f.spec)
        .map(|s| s.traits)
        .unwrap_or_default();
    assert_eq!(
        now,
        ["arch:aarch64", "xinchuang"],
        "the later update stands"
    );

    // Deleted by another admin, a retried create does not bring it back,
    // and a retried update is answered too.
    admin
        .delete_foundation(as_(
            ROOT,
            pb::DeleteFoundationRequest {
                name: "foundations/kunpeng-1".into(),
                request_id: "f-del".into(),
            },
        ))
        .await
        .expect("delete");
    let again = admin
        .create_foundation(create_kunpeng_1("f-1"))
        .await
        .expect("the retry is answered")
        .into_inner();
    assert_eq!(again.foundation, first.foundation, "the first answer");
    let retried = traits(
        admin
            .update_foundation(update("u-1", &["arch:aarch64", "cpu:kunpeng"], revision))
            .await
            .expect("answered after the delete")
            .into_inner(),
    );
    assert_eq!(retried, u1);
    let err = admin
        .get_foundation(as_(
            ROOT,
            pb::GetFoundationRequest {
                name: "foundations/kunpeng-1".into(),
            },
        ))
        .await
        .expect_err("not made again");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}
