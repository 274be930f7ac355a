//! A department sees and changes only its own resources; viewers read only;
//! only admins use the admin service.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departments_are_isolated_and_viewers_cannot_mutate() {
    let s = start().await;
    department(&*s.store, "health", 48).await;
    department(&*s.store, "transport", 48).await;
    let mut c = common::create_web_1(&s.channel).await;
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
