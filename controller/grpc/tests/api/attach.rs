//! AttachVolume and DetachVolume: the volume's `attach_to` changes; the
//! provisioner does the rest (tested with it, in yunshu-runtime and end to
//! end).

use tonic::Code;
use yunshu_core::{
    keys,
    meta::Kind,
    model::{InstanceSpec, VolumeSpec},
};
use yunshu_proto::api::v1::{self as pb, volume_service_client::VolumeServiceClient};

use crate::common::{
    ALICE, as_, assert_names_field, change_stored, create_web_1, department, start,
};

fn attach(instance: &str, request_id: &str) -> pb::AttachVolumeRequest {
    pb::AttachVolumeRequest {
        name: "departments/health/volumes/data-1".into(),
        instance: instance.into(),
        request_id: request_id.into(),
    }
}

fn attached_to(v: &pb::Volume) -> &str {
    v.spec.as_ref().map_or("", |s| s.attach_to.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_attach_and_detach_within_their_department() {
    let s = start().await;
    department(&*s.store, "health", 48).await;
    department(&*s.store, "transport", 16).await;
    create_web_1(&s.channel).await;
    let mut c = VolumeServiceClient::new(s.channel.clone());
    c.create_volume(as_(
        ALICE,
        pb::CreateVolumeRequest {
            parent: "departments/health".into(),
            volume_id: "data-1".into(),
            volume: Some(pb::Volume {
                metadata: None,
                spec: Some(pb::VolumeSpec {
                    size_gib: 10,
                    ..Default::default()
                }),
                status: None,
            }),
            request_id: "v1".into(),
        },
    ))
    .await
    .expect("create");

    let web = "departments/health/instances/web-1";
    let v = c
        .attach_volume(as_(ALICE, attach(web, "a1")))
        .await
        .expect("attach")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(attached_to(&v), web);
    let generation = v.metadata.as_ref().map_or(0, |m| m.generation);
    // Again (a retry, or the same wish): nothing changes.
    let again = c
        .attach_volume(as_(ALICE, attach(web, "a1")))
        .await
        .expect("attach again")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(again.metadata.map(|m| m.generation), Some(generation));

    // Bad targets name the field; a missing instance is NOT_FOUND; viewers
    // and other departments cannot.
    for bad in ["", "web-1", "departments/transport/instances/x"] {
        let err = c
            .attach_volume(as_(ALICE, attach(bad, "a2")))
            .await
            .expect_err(bad);
        assert_names_field(err, "instance");
    }
    let err = c
        .attach_volume(as_(
            ALICE,
            attach("departments/health/instances/nope", "a3"),
        ))
        .await
        .expect_err("no such instance");
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .detach_volume(as_(
            "health:viewer:v",
            pb::DetachVolumeRequest {
                name: "departments/health/volumes/data-1".into(),
                request_id: "d0".into(),
            },
        ))
        .await
        .expect_err("viewer");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = c
        .attach_volume(as_("transport:operator:bob", attach(web, "a4")))
        .await
        .expect_err("another department");
    assert_eq!(err.code(), Code::NotFound);

    let detached = c
        .detach_volume(as_(
            ALICE,
            pb::DetachVolumeRequest {
                name: "departments/health/volumes/data-1".into(),
                request_id: "d1".into(),
            },
        ))
        .await
        .expect("detach")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(attached_to(&detached), "");

    // Placed on different foundations: volumes do not move.
    change_stored::<VolumeSpec>(
        &*s.store,
        &keys::object(Kind::Volume, Some("health"), "data-1"),
        |v| {
            v.status.placement.foundation = Some("x86-1".into());
        },
    )
    .await;
    change_stored::<InstanceSpec>(
        &*s.store,
        &keys::object(Kind::Instance, Some("health"), "web-1"),
        |i| {
            i.status.placement.foundation = Some("kunpeng-1".into());
        },
    )
    .await;
    let err = c
        .attach_volume(as_(ALICE, attach(web, "a5")))
        .await
        .expect_err("different foundations");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("do not move"), "{}", err.message());
}
