//! Table tests, one table per filter. Each row decides over a fleet of the
//! foundation under test, `a`, and a companion, `z`, that knows every zone,
//! region and trait the rows use (so both "known elsewhere" and "unknown
//! everywhere" names are exercised), and checks `a`'s verdict.

use std::collections::BTreeMap;

use yunshu_core::{
    meta::Kind,
    model::{Health, InventoryRecord, PlacementPolicySpec, Quota},
    resources::{ResourceClass::*, Resources},
};

use super::*;
use crate::{
    Request, Tenancy, decide,
    testkit::{F, fleet_of, limits, traits, vcpus},
};

fn companion() -> F {
    F::new("z")
        .zones(&["az1", "az2", "az3"])
        .region("r2")
        .traits(&[
            "arch:aarch64",
            "arch:x86_64",
            "cpu:kunpeng",
            "cpu:phytium",
            "cpu:hygon",
            "xinchuang",
        ])
}

/// `a`'s verdict with the default policy and an unrestricted department.
fn verdict(a: F, r: &Request) -> Result<(), Reason> {
    verdict_with(a, r, &PlacementPolicySpec::default(), |f| {
        Tenancy::unrestricted(f)
    })
}

fn verdict_with(
    a: F,
    r: &Request,
    policy: &PlacementPolicySpec,
    tenancy: impl Fn(&crate::Fleet) -> Tenancy,
) -> Result<(), Reason> {
    let fleet = fleet_of(&[a, companion()]);
    assert_eq!(fleet.candidates()[0].name(), "a");
    let d = decide(&fleet, &tenancy(&fleet), policy, r);
    match d.verdict(0).expect("a verdict for a") {
        crate::Verdict::Rejected(reason) => Err(*reason),
        crate::Verdict::Feasible(_) => Ok(()),
    }
}

#[test]
fn capability() {
    let bucket = Request::new(Kind::Bucket, Resources::from_pairs([(Buckets, 1)]));
    let volume = Request::new(Kind::Volume, Resources::from_pairs([(VolumeGib, 10)]));
    type Row<'a> = (&'a str, &'a [Kind], &'a Request, Result<(), Reason>);
    let rows: [Row<'_>; 4] = [
        (
            "instance on openstack",
            &[Kind::Instance, Kind::Volume],
            &vcpus(2),
            Ok(()),
        ),
        (
            "bucket on openstack",
            &[Kind::Instance, Kind::Volume],
            &bucket,
            Err(Reason::Unsupported { kind: Kind::Bucket }),
        ),
        (
            "volume on s3",
            &[Kind::Bucket],
            &volume,
            Err(Reason::Unsupported { kind: Kind::Volume }),
        ),
        (
            "nothing supported",
            &[],
            &vcpus(2),
            Err(Reason::Unsupported {
                kind: Kind::Instance,
            }),
        ),
    ];
    for (case, kinds, r, want) in rows {
        let a = F::new("a").roomy().inv(Buckets, 100, 0, 100).kinds(kinds);
        assert_eq!(verdict(a, r), want, "{case}");
    }
}

#[test]
fn health() {
    let rows = [
        (Health::Ready, false, Ok(())),
        (Health::Ready, true, Ok(())),
        (
            Health::Degraded,
            false,
            Err(Reason::Unhealthy {
                health: Health::Degraded,
            }),
        ),
        (Health::Degraded, true, Ok(())),
        (
            Health::Unknown,
            true,
            Err(Reason::Unhealthy {
                health: Health::Unknown,
            }),
        ),
        (
            Health::Down,
            true,
            Err(Reason::Unhealthy {
                health: Health::Down,
            }),
        ),
    ];
    for (health, allow_degraded, want) in rows {
        let policy = PlacementPolicySpec {
            allow_degraded,
            ..PlacementPolicySpec::default()
        };
        let got = verdict_with(
            F::new("a").roomy().health(health),
            &vcpus(2),
            &policy,
            Tenancy::unrestricted,
        );
        assert_eq!(got, want, "{health:?}, allow_degraded {allow_degraded}");
    }
}

#[test]
fn allowed() {
    let rows: [(&[&str], Result<(), Reason>); 5] = [
        (&[], Ok(())),
        (&["a"], Ok(())),
        (&["a", "z"], Ok(())),
        (&["z"], Err(Reason::NotAllowed)),
        (&["not-a-foundation"], Err(Reason::NotAllowed)),
    ];
    for (allowed, want) in rows {
        let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
        let tenancy =
            |f: &crate::Fleet| Tenancy::new(f, &Quota::default(), &BTreeMap::new(), &allowed);
        let got = verdict_with(
            F::new("a").roomy(),
            &vcpus(2),
            &PlacementPolicySpec::default(),
            tenancy,
        );
        assert_eq!(got, want, "allowed {allowed:?}");
    }
}

#[test]
fn zone_and_region() {
    type Row<'a> = (
        &'a [&'a str],
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Result<(), Reason>,
    );
    let rows: [Row<'_>; 9] = [
        (&[], None, None, None, Ok(())),
        (&["az1", "az2"], None, Some("az2"), None, Ok(())),
        (
            &["az1"],
            None,
            Some("az2"),
            None,
            Err(Reason::ZoneNotOffered),
        ),
        (
            &["az1"],
            None,
            Some("az9"),
            None,
            Err(Reason::ZoneNotOffered),
        ),
        (&[], None, Some("az1"), None, Err(Reason::ZoneNotOffered)),
        (&[], Some("r1"), None, Some("r1"), Ok(())),
        (
            &[],
            Some("r1"),
            None,
            Some("r2"),
            Err(Reason::RegionMismatch),
        ),
        (&[], None, None, Some("r2"), Err(Reason::RegionMismatch)),
        (
            &["az1"],
            Some("r1"),
            Some("az1"),
            Some("r9"),
            Err(Reason::RegionMismatch),
        ),
    ];
    for (zones, region, want_zone, want_region, want) in rows {
        let mut a = F::new("a").roomy().zones(zones);
        if let Some(r) = region {
            a = a.region(r);
        }
        let mut r = vcpus(2);
        r.zone = want_zone.map(str::to_owned);
        r.region = want_region.map(str::to_owned);
        assert_eq!(
            verdict(a, &r),
            want,
            "zones {zones:?} region {region:?}, asked {want_zone:?} {want_region:?}"
        );
    }
}

#[test]
fn an_attached_volume_goes_where_its_instance_is() {
    let volume = |exists: bool, on: Option<&str>| {
        let mut r = Request::new(Kind::Volume, Resources::from_pairs([(VolumeGib, 10)]));
        r.attach_to = Some(crate::AttachTo {
            instance: "web-1".into(),
            exists,
            foundation: on.map(str::to_owned),
        });
        r
    };
    let rows: [(bool, Option<&str>, Result<(), Reason>); 5] = [
        (true, Some("a"), Ok(())),
        (true, Some("z"), Err(Reason::InstanceElsewhere)),
        (true, Some("gone"), Err(Reason::InstanceElsewhere)),
        (true, None, Err(Reason::InstanceNotPlaced)),
        (false, None, Err(Reason::InstanceMissing)),
    ];
    for (exists, on, want) in rows {
        let a = F::new("a").roomy().inv(VolumeGib, 100, 0, 100);
        assert_eq!(verdict(a, &volume(exists, on)), want, "instance on {on:?}");
    }
    let fleet = fleet_of(&[F::new("a").roomy().inv(VolumeGib, 100, 0, 100), companion()]);
    for (exists, on, says) in [
        (true, Some("z"), "instance `web-1` to attach to is on `z`"),
        (
            true,
            None,
            "instance `web-1` to attach to is not placed yet",
        ),
        (false, None, "instance `web-1` to attach to does not exist"),
    ] {
        let r = volume(exists, on);
        let d = crate::testkit::decide_plain(&fleet, &r);
        let text = d.explain(&fleet, &r).to_placement().per_foundation["a"].clone();
        assert!(text.contains(says), "{text}");
    }
}

#[test]
fn traits_required_forbidden_and_security_level() {
    type Row<'a> = (
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
        Result<(), Reason>,
    );
    let rows: [Row<'_>; 12] = [
        (&[], &[], &[], Ok(())),
        (
            &["arch:aarch64", "cpu:kunpeng"],
            &["arch:aarch64"],
            &[],
            Ok(()),
        ),
        (
            &["arch:x86_64"],
            &["arch:aarch64"],
            &[],
            Err(Reason::MissingTrait { index: 0 }),
        ),
        (
            &["arch:aarch64"],
            &["arch:aarch64", "cpu:phytium"],
            &[],
            Err(Reason::MissingTrait { index: 1 }),
        ),
        (
            &["xinchuang"],
            &["gpu:none"],
            &[],
            Err(Reason::MissingTrait { index: 0 }),
        ),
        (&["security-level:3"], &["security-level:2"], &[], Ok(())),
        (&["security-level:3"], &["security-level:3"], &[], Ok(())),
        (
            &["security-level:3"],
            &["security-level:4"],
            &[],
            Err(Reason::SecurityLevel {
                have: Some(3),
                need: 4,
            }),
        ),
        (
            &[],
            &["security-level:1"],
            &[],
            Err(Reason::SecurityLevel {
                have: None,
                need: 1,
            }),
        ),
        (
            &["cpu:hygon", "xinchuang"],
            &[],
            &["cpu:kunpeng", "cpu:hygon"],
            Err(Reason::ForbiddenTrait { index: 1 }),
        ),
        (
            &["security-level:3"],
            &[],
            &["security-level:3"],
            Err(Reason::ForbiddenTrait { index: 0 }),
        ),
        (
            &["os:kylin", "xinchuang", "cpu:phytium"],
            &["xinchuang", "os:kylin"],
            &["arch:x86_64"],
            Ok(()),
        ),
    ];
    for (has, required, forbidden, want) in rows {
        let mut r = vcpus(2);
        r.required_traits = traits(required);
        r.forbidden_traits = traits(forbidden);
        let got = verdict(F::new("a").roomy().traits(has), &r);
        assert_eq!(
            got, want,
            "has {has:?}, required {required:?}, forbidden {forbidden:?}"
        );
    }
}

#[test]
fn capacity_counts_free_amount_and_largest_free_unit() {
    let rec = |total, reserved, ratio, used, max_unit| InventoryRecord {
        total,
        reserved,
        allocation_ratio: ratio,
        used,
        max_unit,
    };
    let memory = |r: &mut Request, mib| r.resources.set(MemoryMib, mib);
    type Row = (
        &'static str,
        InventoryRecord,
        Option<InventoryRecord>,
        u64,
        u64,
        Result<(), Reason>,
    );
    let rows: [Row; 9] = [
        ("fits", rec(200, 0, 1.0, 100, 8), None, 8, 0, Ok(())),
        ("exact fit", rec(16, 0, 1.0, 8, 8), None, 8, 0, Ok(())),
        (
            "100 free in 2-vCPU fragments",
            rec(200, 0, 1.0, 100, 2),
            None,
            8,
            0,
            Err(Reason::Fragmented {
                class: Vcpu,
                requested: 8,
                max_unit: 2,
                free: 100,
            }),
        ),
        (
            "too little free",
            rec(16, 0, 1.0, 10, 8),
            None,
            8,
            0,
            Err(Reason::Insufficient {
                class: Vcpu,
                requested: 8,
                free: 6,
            }),
        ),
        (
            "overcommit ratio adds room",
            rec(10, 0, 4.0, 30, 8),
            None,
            8,
            0,
            Ok(()),
        ),
        (
            "reserved is not free",
            rec(16, 8, 1.0, 0, 16),
            None,
            10,
            0,
            Err(Reason::Insufficient {
                class: Vcpu,
                requested: 10,
                free: 8,
            }),
        ),
        (
            "no max unit reported",
            rec(16, 0, 1.0, 0, 0),
            None,
            1,
            0,
            Err(Reason::Fragmented {
                class: Vcpu,
                requested: 1,
                max_unit: 0,
                free: 16,
            }),
        ),
        (
            "no memory inventory",
            rec(16, 0, 1.0, 0, 8),
            None,
            2,
            1024,
            Err(Reason::NoInventory { class: MemoryMib }),
        ),
        (
            "memory short while vcpu fits",
            rec(16, 0, 1.0, 0, 8),
            Some(rec(4096, 0, 1.0, 3072, 4096)),
            2,
            2048,
            Err(Reason::Insufficient {
                class: MemoryMib,
                requested: 2048,
                free: 1024,
            }),
        ),
    ];
    for (case, vcpu, mem, want_vcpu, want_mib, want) in rows {
        let mut a = F::new("a");
        a.status.inventory.insert(Vcpu, vcpu);
        if let Some(m) = mem {
            a.status.inventory.insert(MemoryMib, m);
        }
        let mut r = vcpus(want_vcpu);
        memory(&mut r, want_mib);
        assert_eq!(verdict(a, &r), want, "{case}");
    }
}

#[test]
fn quota_on_the_foundation() {
    type Row = (
        &'static str,
        &'static [(&'static str, yunshu_core::resources::ResourceClass, u64)],
        u64,
        Result<(), Reason>,
    );
    let rows: [Row; 6] = [
        ("no limits", &[], 8, Ok(())),
        ("up to the limit", &[("a", Vcpu, 16)], 8, Ok(())),
        (
            "over the limit",
            &[("a", Vcpu, 16)],
            10,
            Err(Reason::OverQuota {
                class: Vcpu,
                requested: 8,
                used: 10,
                limit: 16,
            }),
        ),
        (
            "a limit of zero",
            &[("a", Vcpu, 0)],
            0,
            Err(Reason::OverQuota {
                class: Vcpu,
                requested: 8,
                used: 0,
                limit: 0,
            }),
        ),
        (
            "limit on a class not requested",
            &[("a", MemoryMib, 0)],
            100,
            Ok(()),
        ),
        (
            "limit on another foundation",
            &[("z", Vcpu, 0)],
            100,
            Ok(()),
        ),
    ];
    for (case, per_foundation, used, want) in rows {
        let quota = Quota {
            per_foundation: limits(per_foundation),
            ..Quota::default()
        };
        let usage = BTreeMap::from([("a".to_owned(), Resources::from_pairs([(Vcpu, used)]))]);
        let tenancy = |f: &crate::Fleet| Tenancy::new(f, &quota, &usage, &[]);
        let got = verdict_with(
            F::new("a").roomy(),
            &vcpus(8),
            &PlacementPolicySpec::default(),
            tenancy,
        );
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn the_first_failing_filter_is_reported() {
    let a = F::new("a")
        .vcpu(4, 4, 0)
        .health(Health::Down)
        .traits(&["arch:x86_64"]);
    let mut r = vcpus(8);
    r.required_traits = traits(&["arch:aarch64"]);
    assert_eq!(
        verdict(a, &r),
        Err(Reason::Unhealthy {
            health: Health::Down
        })
    );
    let names: Vec<_> = Filter::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        [
            "allowed",
            "capability",
            "health",
            "zone",
            "traits",
            "capacity",
            "quota"
        ]
    );
}
