//! What a reader of `yunshuctl explain` sees: the summary, every kind of
//! rejection line, score lines and the placement record.

use std::collections::BTreeMap;

use yunshu_core::{
    meta::Kind,
    model::{GroupPolicy, Health, PlacementPolicySpec, Quota},
    resources::{ResourceClass::*, Resources},
};

use crate::{
    Request, Tenancy, decide,
    testkit::{F, decide_plain, fleet_of, group, limits, traits, vcpus},
};

fn with(f: impl FnOnce(&mut Request)) -> Request {
    let mut r = vcpus(8);
    f(&mut r);
    r
}

#[test]
fn every_rejection_renders_its_filter_and_reason() {
    let rows: Vec<(F, Request, &str)> = vec![
        (
            F::new("a").roomy().kinds(&[Kind::Bucket]),
            vcpus(8),
            "capability: adapter cannot create instances",
        ),
        (
            F::new("a").roomy().health(Health::Degraded),
            vcpus(8),
            "health: Degraded, and the policy does not allow degraded foundations",
        ),
        (
            F::new("a").roomy().health(Health::Down),
            vcpus(8),
            "health: health is Down",
        ),
        (
            F::new("a").roomy().zones(&["az1", "az2"]),
            with(|r| r.zone = Some("az3".into())),
            "zone: zone `az3` not offered (offers az1, az2)",
        ),
        (
            F::new("a").roomy(),
            with(|r| r.zone = Some("az3".into())),
            "zone: zone `az3` not offered (offers none)",
        ),
        (
            F::new("a").roomy().region("r1"),
            with(|r| r.region = Some("r2".into())),
            "zone: region `r2` requested, foundation is in `r1`",
        ),
        (
            F::new("a").roomy(),
            with(|r| r.region = Some("r2".into())),
            "zone: region `r2` requested, foundation declares no region",
        ),
        (
            F::new("a").roomy().traits(&["arch:aarch64"]),
            with(|r| r.required_traits = traits(&["arch:aarch64", "cpu:kunpeng"])),
            "traits: lacks required trait `cpu:kunpeng`",
        ),
        (
            F::new("a").roomy().traits(&["cpu:hygon"]),
            with(|r| r.forbidden_traits = traits(&["cpu:hygon"])),
            "traits: has forbidden trait `cpu:hygon`",
        ),
        (
            F::new("a").roomy().traits(&["security-level:2"]),
            with(|r| r.required_traits = traits(&["security-level:3"])),
            "traits: security level 2 is below the required 3",
        ),
        (
            F::new("a").roomy(),
            with(|r| r.required_traits = traits(&["security-level:3"])),
            "traits: no security level, 3 required",
        ),
        (
            F::new("a").vcpu(16, 0, 16),
            with(|r| r.resources.set(MemoryMib, 1024)),
            "capacity: no memory_mib inventory",
        ),
        (
            F::new("a").vcpu(16, 10, 16),
            vcpus(8),
            "capacity: vcpu: 8 requested, 6 free",
        ),
        (
            F::new("a").vcpu(200, 100, 2),
            vcpus(8),
            "capacity: vcpu: largest free unit 2 < 8 requested (100 free in all)",
        ),
    ];
    for (a, r, want) in rows {
        let fleet = fleet_of(&[a]);
        let d = decide_plain(&fleet, &r);
        assert_eq!(
            d.explain(&fleet, &r).line(0).to_string(),
            format!("a: rejected by {want}")
        );
    }
}

#[test]
fn allowed_and_quota_rejections_render() {
    let fleet = fleet_of(&[F::new("a").roomy(), F::new("b").roomy()]);
    let quota = Quota {
        per_foundation: limits(&[("a", Vcpu, 16)]),
        ..Quota::default()
    };
    let usage = BTreeMap::from([("a".to_owned(), Resources::from_pairs([(Vcpu, 12)]))]);
    let tenancy = Tenancy::new(&fleet, &quota, &usage, &["a".into()]);
    let r = vcpus(8);
    let d = decide(&fleet, &tenancy, &PlacementPolicySpec::default(), &r);
    let e = d.explain(&fleet, &r);
    let lines: Vec<_> = e.lines().map(|l| l.to_string()).collect();
    assert_eq!(
        lines,
        [
            "a: rejected by quota: vcpu requested 8, used 12, limit 16 on this foundation",
            "b: rejected by allowed: not among the department's allowed foundations",
        ]
    );
    // The summary, shown to the department, leaves out the foundation it
    // may not use.
    assert_eq!(
        e.summary().to_string(),
        "unschedulable; 0 of 1 feasible; rejected by quota 1"
    );
    let none = Tenancy::new(&fleet, &quota, &usage, &["elsewhere".into()]);
    let d = decide(&fleet, &none, &PlacementPolicySpec::default(), &r);
    assert_eq!(
        d.explain(&fleet, &r).summary().to_string(),
        "unschedulable: the department may use no foundation"
    );
}

/// The city's four clouds and an object store, asked for a xinchuang 8-vCPU instance.
#[test]
fn a_city_decision_reads_well() {
    let fleet = fleet_of(&[
        F::new("kunpeng-1")
            .roomy()
            .traits(&[
                "arch:aarch64",
                "cpu:kunpeng",
                "os:kylin",
                "xinchuang",
                "security-level:3",
            ])
            .pue(1.3)
            .api(0.01, Some(40.0)),
        F::new("phase-1")
            .vcpu(200, 100, 2)
            .traits(&["arch:x86_64", "cpu:hygon", "xinchuang"]),
        F::new("phase-2").roomy().traits(&["arch:x86_64"]),
        F::new("pk-1").roomy().health(Health::Degraded).traits(&[
            "arch:aarch64",
            "cpu:phytium",
            "os:kylin",
            "xinchuang",
        ]),
        F::new("s3").kinds(&[Kind::Bucket]),
    ]);
    let mut r = vcpus(8);
    r.required_traits = traits(&["xinchuang"]);
    r.group = Some(group(GroupPolicy::AntiAffinity, &["phase-2"]));
    let d = decide_plain(&fleet, &r);
    let e = d.explain(&fleet, &r);
    assert_eq!(
        e.to_string(),
        "kunpeng-1 chosen, total 0.94; 1 of 5 feasible; rejected by capability 1, health 1, traits 1, capacity 1\n\
         kunpeng-1: filters ok, spread 0.99, cost 1.00, energy 0.77, anti-affinity 1.00, api 0.71, total 0.94, rank 1\n\
         phase-1: rejected by capacity: vcpu: largest free unit 2 < 8 requested (100 free in all)\n\
         phase-2: rejected by traits: lacks required trait `xinchuang`\n\
         pk-1: rejected by health: Degraded, and the policy does not allow degraded foundations\n\
         s3: rejected by capability: adapter cannot create instances"
    );
    let p = e.to_placement();
    assert_eq!(p.foundation.as_deref(), Some("kunpeng-1"));
    assert_eq!(p.summary, e.summary().to_string());
    assert_eq!(p.per_foundation.len(), 5);
    assert_eq!(
        p.per_foundation["phase-2"],
        "rejected by traits: lacks required trait `xinchuang`"
    );
}

#[test]
fn an_empty_fleet_says_so() {
    let fleet = fleet_of(&[]);
    let r = vcpus(1);
    let d = decide_plain(&fleet, &r);
    assert_eq!(
        d.explain(&fleet, &r).summary().to_string(),
        "unschedulable: no foundations"
    );
    assert_eq!(d.explain(&fleet, &r).to_placement().foundation, None);
}

#[test]
fn scores_render_with_two_decimals() {
    use super::Fixed2;
    let rows = [
        (0.0, "0.00"),
        (1.0, "1.00"),
        (0.994, "0.99"),
        (0.995, "1.00"),
        (0.5, "0.50"),
        (0.071, "0.07"),
        (-1.0, "0.00"),
        (f64::NAN, "0.00"),
    ];
    for (x, want) in rows {
        assert_eq!(Fixed2(x).to_string(), want, "{x}");
    }
}
