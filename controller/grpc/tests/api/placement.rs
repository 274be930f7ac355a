//! Placement answers over the API (Explain, DryRun), and gRPC health checking.

use super::*;

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

    // A department allowed only kunpeng-1 sees no verdict on the others,
    // as its catalog shows none of them.
    common::change_stored::<yunshu_core::model::DepartmentSpec>(
        &*s.store,
        &keys::department("health"),
        |d| d.spec.allowed_foundations = vec!["kunpeng-1".into()],
    )
    .await;
    let mut any = instance(4, 8192, "kylin-v10").spec.expect("spec");
    any.constraints = None;
    let allowed = placement
        .dry_run_placement(as_(
            ALICE,
            pb::DryRunPlacementRequest {
                parent: "departments/health".into(),
                spec: Some(pb::dry_run_placement_request::Spec::Instance(any)),
            },
        ))
        .await
        .expect("dry run")
        .into_inner()
        .explanation
        .expect("explanation");
    let seen: Vec<_> = allowed
        .verdicts
        .iter()
        .map(|v| v.foundation.as_str())
        .collect();
    assert_eq!(seen, ["foundations/kunpeng-1"], "{allowed:?}");

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

    common::create_web_1(&s.channel).await;
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
