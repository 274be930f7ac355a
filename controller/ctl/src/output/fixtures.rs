//! Test fixtures shared by the output modules' tests.

use yunshu_proto::api::v1 as pb;

use crate::resource::Resource;

pub(crate) fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

pub(crate) fn instance(name: &str, phase: pb::Phase) -> Resource {
    Resource::Instance(pb::Instance {
        metadata: Some(pb::ObjectMeta {
            name: format!("departments/health/instances/{name}"),
            create_time: ts(1_000_000),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            ..Default::default()
        }),
        spec: Some(pb::InstanceSpec {
            vcpu: 4,
            memory_mib: 8192,
            disk_gib: 40,
            image: "kylin-v10".into(),
            constraints: Some(pb::Constraints {
                required_traits: vec!["xinchuang".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(pb::InstanceStatus {
            phase: phase.into(),
            foundation: "foundations/kunpeng-1".into(),
            addresses: vec!["10.2.0.14".into()],
            ..Default::default()
        }),
    })
}

pub(crate) fn bucket(name: &str, phase: pb::Phase) -> Resource {
    Resource::Bucket(pb::Bucket {
        metadata: Some(pb::ObjectMeta {
            name: format!("departments/health/buckets/{name}"),
            create_time: ts(1_000_000),
            ..Default::default()
        }),
        spec: Some(pb::BucketSpec {
            quota_bytes: 10 << 30,
            quota_objects: Some(5000),
            versioning: true,
            constraints: None,
        }),
        status: Some(pb::BucketStatus {
            phase: phase.into(),
            foundation: "foundations/ceph-1".into(),
            cloud_id: format!("yunshu-health-{name}"),
            endpoints: vec!["http://127.0.0.1:7480".into()],
            used_bytes: 1_395_864_371,
            used_objects: 1204,
            ..Default::default()
        }),
    })
}
