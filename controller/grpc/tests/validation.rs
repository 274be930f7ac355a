//! Bad input is refused with the field and the rule, and writes nothing.

mod common;

use common::{ALICE, as_, assert_names_field, create, department, instance, spec, start};
use tonic_types::StatusExt;
use yunshu_proto::api::v1::{
    self as pb, admin_service_client::AdminServiceClient,
    instance_service_client::InstanceServiceClient,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field_and_writes_nothing() {
    let s = start().await;
    department(&*s.store, "health", 48).await;
    let mut c = InstanceServiceClient::new(s.channel.clone());
    let base = || create("web-1", "r1", instance(4, 8192, "kylin-v10"));
    type Case = (&'static str, Box<dyn Fn(&mut pb::CreateInstanceRequest)>);
    let cases: Vec<Case> = vec![
        ("instance_id", Box::new(|r| r.instance_id = "Web_1".into())),
        ("request_id", Box::new(|r| r.request_id = String::new())),
        ("parent", Box::new(|r| r.parent = "health".into())),
        ("instance", Box::new(|r| r.instance = None)),
        (
            "instance.spec",
            Box::new(|r| r.instance.as_mut().expect("i").spec = None),
        ),
        ("instance.spec.vcpu", Box::new(|r| spec(r).vcpu = 0)),
        (
            "instance.spec.memory_mib",
            Box::new(|r| spec(r).memory_mib = 0),
        ),
        (
            "instance.spec.vcpu",
            Box::new(|r| spec(r).memory_mib = 1000),
        ),
        ("instance.spec.disk_gib", Box::new(|r| spec(r).disk_gib = 0)),
        (
            "instance.spec.image",
            Box::new(|r| spec(r).image = "windows-2019".into()),
        ),
        (
            "instance.spec.constraints.required_traits[0]",
            Box::new(|r| {
                spec(r).constraints = Some(pb::Constraints {
                    required_traits: vec!["Arch:X86".into()],
                    ..Default::default()
                })
            }),
        ),
        (
            "instance.spec.image",
            Box::new(|r| {
                spec(r).image = "centos-7".into();
                spec(r).constraints = Some(pb::Constraints {
                    required_traits: vec!["arch:aarch64".into()],
                    ..Default::default()
                })
            }),
        ),
        (
            "instance.spec.constraints.zone",
            Box::new(|r| {
                spec(r).constraints = Some(pb::Constraints {
                    zone: "Zone 1".into(),
                    ..Default::default()
                })
            }),
        ),
        (
            "instance.spec.group.policy",
            Box::new(|r| {
                spec(r).group = Some(pb::Group {
                    name: "g".into(),
                    policy: 0,
                })
            }),
        ),
        (
            "instance.metadata.labels[bad key]",
            Box::new(|r| {
                r.instance.as_mut().expect("i").metadata = Some(pb::ObjectMeta {
                    labels: [("bad key".to_owned(), "v".to_owned())].into(),
                    ..Default::default()
                })
            }),
        ),
        (
            // Reserved: `yunshu.io/purge` would delete a bucket's contents.
            "instance.metadata.labels[yunshu.io/purge]",
            Box::new(|r| {
                r.instance.as_mut().expect("i").metadata = Some(pb::ObjectMeta {
                    labels: [("yunshu.io/purge".to_owned(), "true".to_owned())].into(),
                    ..Default::default()
                })
            }),
        ),
    ];
    let before = s.store.current_revision().await.expect("revision");
    for (field, mutate) in cases {
        let mut req = base();
        mutate(&mut req);
        let err = c.create_instance(as_(ALICE, req)).await.expect_err(field);
        assert_names_field(err, field);
        assert_eq!(
            s.store.current_revision().await.expect("revision"),
            before,
            "{field}: the store changed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_buckets_and_admin_refuse_bad_input_without_writing() {
    use yunshu_proto::api::v1::{
        bucket_service_client::BucketServiceClient, volume_service_client::VolumeServiceClient,
    };
    let s = start().await;
    department(&*s.store, "health", 48).await;
    let before = s.store.current_revision().await.expect("revision");
    let mut volumes = VolumeServiceClient::new(s.channel.clone());
    let volume = |size_gib, attach_to: &str| pb::CreateVolumeRequest {
        parent: "departments/health".into(),
        volume_id: "data-1".into(),
        volume: Some(pb::Volume {
            metadata: None,
            spec: Some(pb::VolumeSpec {
                size_gib,
                attach_to: attach_to.into(),
                constraints: None,
            }),
            status: None,
        }),
        request_id: "v1".into(),
    };
    for (req, field) in [
        (volume(0, ""), "volume.spec.size_gib"),
        (
            volume(10, "departments/transport/instances/web"),
            "volume.spec.attach_to",
        ),
        (volume(10, "web"), "volume.spec.attach_to"),
    ] {
        let err = volumes
            .create_volume(as_(ALICE, req))
            .await
            .expect_err(field);
        assert_names_field(err, field);
    }
    let mut buckets = BucketServiceClient::new(s.channel.clone());
    let bucket = |quota_bytes, quota_objects| pb::CreateBucketRequest {
        parent: "departments/health".into(),
        bucket_id: "logs".into(),
        bucket: Some(pb::Bucket {
            metadata: None,
            spec: Some(pb::BucketSpec {
                quota_bytes,
                quota_objects,
                versioning: false,
                constraints: None,
            }),
            status: None,
        }),
        request_id: "b1".into(),
    };
    for (req, field) in [
        (bucket(0, None), "bucket.spec.quota_bytes"),
        (bucket(1 << 30, Some(0)), "bucket.spec.quota_objects"),
    ] {
        let err = buckets
            .create_bucket(as_(ALICE, req))
            .await
            .expect_err(field);
        assert_names_field(err, field);
    }
    let mut admin = AdminServiceClient::new(s.channel.clone());
    let foundation = pb::CreateFoundationRequest {
        foundation_id: "kunpeng-1".into(),
        foundation: Some(pb::Foundation {
            metadata: None,
            spec: Some(pb::FoundationSpec {
                adapter: 0,
                endpoint: "keystone:5000".into(),
                traits: vec!["arch:sparc".into()],
                pue: Some(0.5),
                ..Default::default()
            }),
            status: None,
        }),
        request_id: "f1".into(),
    };
    let err = admin
        .create_foundation(as_("platform:admin:root", foundation))
        .await
        .expect_err("invalid foundation");
    let fields: Vec<_> = err
        .get_details_bad_request()
        .expect("details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    for field in [
        "foundation.spec.adapter",
        "foundation.spec.endpoint",
        "foundation.spec.traits[0]",
        "foundation.spec.pue",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field}: {fields:?}");
    }
    // Identities that could never match a caller, and a policy for a
    // department named the wrong way (it would apply to none).
    let identity = |principal| pb::Identity {
        role: pb::Role::Operator as i32,
        principal: Some(principal),
    };
    let department = pb::CreateDepartmentRequest {
        department_id: "edu".into(),
        department: Some(pb::Department {
            spec: Some(pb::DepartmentSpec {
                identities: vec![
                    identity(pb::identity::Principal::ApiToken(pb::ApiToken {
                        id: "ci_bot".into(),
                        sha256: "0".repeat(64),
                        revoked: false,
                    })),
                    identity(pb::identity::Principal::OidcSubject(" ".into())),
                    identity(pb::identity::Principal::OidcGroup(String::new())),
                    identity(pb::identity::Principal::CertificateSubject(String::new())),
                ],
                ..Default::default()
            }),
            ..Default::default()
        }),
        request_id: "d1".into(),
    };
    let err = admin
        .create_department(as_("platform:admin:root", department))
        .await
        .expect_err("identities that match no one");
    let fields = violated(&err);
    for field in [
        "department.spec.identities[0].api_token.id",
        "department.spec.identities[1].oidc_subject",
        "department.spec.identities[2].oidc_group",
        "department.spec.identities[3].certificate_subject",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field}: {fields:?}");
    }
    for department in ["health", "departments/Health"] {
        let policy = pb::CreatePlacementPolicyRequest {
            placement_policy_id: "health-binpack".into(),
            placement_policy: Some(pb::PlacementPolicy {
                spec: Some(pb::PlacementPolicySpec {
                    department: department.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: "p1".into(),
        };
        let err = admin
            .create_placement_policy(as_("platform:admin:root", policy))
            .await
            .expect_err(department);
        assert_eq!(
            violated(&err),
            ["placement_policy.spec.department"],
            "{department}"
        );
    }
    assert_eq!(
        s.store.current_revision().await.expect("revision"),
        before,
        "nothing was written"
    );
}

fn violated(err: &tonic::Status) -> Vec<String> {
    err.get_details_bad_request()
        .expect("details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}
