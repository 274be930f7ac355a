//! Reports: from a fresh decision, and read back from the kept lines.

use std::collections::BTreeMap;

use yunshu_core::{
    meta::Kind,
    model::{
        AdapterKind, Budget, FoundationSpec, FoundationStatus, Group, GroupPolicy, Health,
        InventoryRecord, PlacementPolicySpec,
    },
    resources::{ResourceClass, Resources},
};
use yunshu_scheduler::{FoundationInput, GroupRequest, Tenancy, decide};

use super::*;

fn spec(traits: &[&str]) -> FoundationSpec {
    FoundationSpec {
        adapter: AdapterKind::Openstack,
        endpoint: "https://x.invalid".into(),
        region: None,
        zones: Vec::new(),
        credentials: None,
        traits: traits.iter().map(|t| t.parse().expect("trait")).collect(),
        allocation_ratios: BTreeMap::new(),
        tariff: BTreeMap::from([(ResourceClass::Vcpu, 0.1)]),
        pue: Some(1.4),
        budget: Budget::default(),
        capacity: None,
        settings: BTreeMap::new(),
    }
}

fn status(vcpu: u64) -> FoundationStatus {
    FoundationStatus {
        health: Health::Ready,
        inventory: BTreeMap::from([(
            ResourceClass::Vcpu,
            InventoryRecord {
                total: vcpu,
                reserved: 0,
                allocation_ratio: 1.0,
                used: 0,
                max_unit: vcpu,
            },
        )]),
        ..FoundationStatus::default()
    }
}

/// Decides a 4-vCPU aarch64 request over three foundations.
fn decided(group: bool) -> (Decision, Fleet, Request) {
    let specs = [
        spec(&["arch:aarch64"]),
        spec(&["arch:aarch64"]),
        spec(&["arch:x86_64"]),
    ];
    let statuses = [status(64), status(2), status(64)];
    let names = ["arm-a", "arm-b", "x86"];
    let fleet = Fleet::new((0..3).map(|i| FoundationInput {
        name: names[i],
        spec: &specs[i],
        status: &statuses[i],
        kinds: &[Kind::Instance],
        api_error_rate: 0.0,
    }));
    let mut request = Request::new(
        Kind::Instance,
        Resources::from_pairs([(ResourceClass::Vcpu, 4)]),
    );
    request.required_traits = vec!["arch:aarch64".parse().expect("trait")];
    if group {
        request.group = Some(GroupRequest {
            group: Group {
                name: "g".into(),
                policy: GroupPolicy::AntiAffinity,
            },
            members: vec!["arm-a".into()],
        });
    }
    let policy = PlacementPolicySpec::default();
    let d = decide(&fleet, &Tenancy::unrestricted(&fleet), &policy, &request);
    (d, fleet, request)
}

#[test]
fn a_fresh_decision_reports_every_foundation() {
    let (d, fleet, request) = decided(false);
    let r = Report::from_decision(&d, &fleet, &request, Some("default".into()));
    assert_eq!(r.foundation.as_deref(), Some("arm-a"));
    assert_eq!(r.policy.as_deref(), Some("default"));
    assert!(r.summary.starts_with("arm-a chosen"), "{}", r.summary);
    let names: Vec<_> = r.verdicts.iter().map(|v| v.foundation.as_str()).collect();
    assert_eq!(names, ["arm-a", "arm-b", "x86"]);
    assert_eq!(
        r.verdicts[1].verdict,
        VerdictReport::FilteredOut {
            filter: "capacity".into(),
            reason: "vcpu: 4 requested, 2 free".into()
        }
    );
    assert_eq!(
        r.verdicts[2].verdict,
        VerdictReport::FilteredOut {
            filter: "traits".into(),
            reason: "lacks required trait `arch:aarch64`".into()
        }
    );
    let VerdictReport::Scored(s) = &r.verdicts[0].verdict else {
        panic!("arm-a scored");
    };
    assert_eq!(s.rank, 1);
    let names: Vec<_> = s.components.iter().map(|c| c.name).collect();
    assert_eq!(names, ["allocation", "cost", "energy", "api_health"]);
    assert_eq!(s.components[0].weight, 1.0);
    assert!(s.hourly_cost.is_some_and(|c| (c - 0.4).abs() < 1e-9));
}

#[test]
fn the_kept_lines_read_back_to_the_same_report() {
    for group in [false, true] {
        let (d, fleet, request) = decided(group);
        let fresh = Report::from_decision(&d, &fleet, &request, None);
        let placement = d.explain(&fleet, &request).to_placement();
        let kept = Report::from_kept(&placement, None, &yunshu_core::model::Weights::default());
        assert_eq!(kept.summary, fresh.summary);
        assert_eq!(kept.foundation, fresh.foundation);
        for (k, f) in kept.verdicts.iter().zip(&fresh.verdicts) {
            assert_eq!(k.foundation, f.foundation);
            match (&k.verdict, &f.verdict) {
                (VerdictReport::Scored(k), VerdictReport::Scored(f)) => {
                    assert_eq!(k.rank, f.rank);
                    assert!((k.total - f.total).abs() <= 0.005);
                    assert_eq!(k.components.len(), f.components.len());
                    for (kc, fc) in k.components.iter().zip(&f.components) {
                        assert_eq!((kc.name, kc.weight), (fc.name, fc.weight));
                        assert!((kc.score - fc.score).abs() <= 0.005, "{kc:?} {fc:?}");
                    }
                    assert_eq!((k.utilization, k.hourly_cost), (None, None));
                }
                (k, f) => assert_eq!(k, f),
            }
        }
    }
}

#[test]
fn an_unreadable_line_is_kept_as_text() {
    let w = yunshu_core::model::Weights::default();
    assert_eq!(
        parse_line("filters ok, warp 0.5, total 0.5, rank 1", &w),
        VerdictReport::Text("filters ok, warp 0.5, total 0.5, rank 1".into())
    );
    assert_eq!(parse_line("", &w), VerdictReport::Text(String::new()));
}
