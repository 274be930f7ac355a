//! Property tests against an oracle written directly on the core types:
//! the chosen foundation passes every filter, a request some foundation can
//! take is never rejected, and every rejected foundation's explanation names
//! the first filter it fails.

use std::collections::BTreeMap;

use proptest::prelude::*;
use yunshu_core::{
    meta::Kind,
    model::{
        Group, GroupPolicy, Health, InventoryRecord, PlacementPolicySpec, Quota,
        Strategy as Placing, Weights,
    },
    resources::{ResourceClass, Resources, check_quota},
};

use crate::{Filter, GroupRequest, Request, Tenancy, Verdict, decide, testkit::F};

const TRAITS: [&str; 10] = [
    "arch:aarch64",
    "arch:x86_64",
    "cpu:kunpeng",
    "cpu:phytium",
    "xinchuang",
    "os:kylin",
    "security-level:1",
    "security-level:2",
    "security-level:3",
    "security-level:4",
];
const ZONES: [&str; 4] = ["az1", "az2", "az3", "az4"];
const REGIONS: [&str; 3] = ["r1", "r2", "r3"];
const KINDS: [Kind; 3] = [Kind::Instance, Kind::Volume, Kind::Bucket];
const HEALTH: [Health; 7] = [
    Health::Ready,
    Health::Ready,
    Health::Ready,
    Health::Ready,
    Health::Degraded,
    Health::Down,
    Health::Unknown,
];
const CLASSES: [ResourceClass; 5] = [
    ResourceClass::Vcpu,
    ResourceClass::MemoryMib,
    ResourceClass::DiskGib,
    ResourceClass::VolumeGib,
    ResourceClass::Buckets,
];

/// Picks the items of `all` whose bit is set in `mask`.
fn pick<T: Copy>(all: &[T], mask: u32) -> Vec<T> {
    all.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, t)| *t)
        .collect()
}

fn record() -> impl Strategy<Value = Option<InventoryRecord>> {
    let ratio = prop::sample::select(vec![0.0, 1.0, 1.5, 4.0]);
    let r = (0u64..200, 0u64..20, ratio, 0u64..150, 0u64..64);
    prop::option::weighted(
        0.9,
        r.prop_map(
            |(total, reserved, allocation_ratio, used, max_unit)| InventoryRecord {
                total,
                reserved,
                allocation_ratio,
                used,
                max_unit,
            },
        ),
    )
}

/// A mask of `n` bits, each set with probability `p`.
fn mask(n: usize, p: f64) -> impl Strategy<Value = u32> {
    prop::collection::vec(prop::bool::weighted(p), n).prop_map(|bits| {
        bits.iter()
            .enumerate()
            .fold(0, |m, (i, b)| m | (u32::from(*b) << i))
    })
}

fn foundation(i: usize) -> impl Strategy<Value = F> {
    let shape = (
        mask(3, 0.9),
        0usize..HEALTH.len(),
        mask(10, 0.5),
        mask(4, 0.5),
        0usize..4,
    );
    let numbers = (
        prop::option::of(1.0f64..2.5),
        0.0f64..0.5,
        prop::option::of(0.0f64..800.0),
        0.0f64..1.0,
    );
    (shape, prop::collection::vec(record(), 5), numbers).prop_map(move |(shape, inv, numbers)| {
        let (kinds, health, traits, zones, region) = shape;
        let (pue, error_rate, latency, price) = numbers;
        let mut f = F::new(&format!("f{i}"))
            .kinds(&pick(&KINDS, kinds))
            .health(HEALTH[health])
            .traits(&pick(&TRAITS, traits))
            .zones(&pick(&ZONES, zones))
            .tariff(ResourceClass::Vcpu, price)
            .api(error_rate, latency);
        if let Some(r) = REGIONS.get(region) {
            f = f.region(r);
        }
        if let Some(p) = pue {
            f = f.pue(p);
        }
        for (class, r) in CLASSES.iter().zip(inv) {
            if let Some(r) = r {
                f.status.inventory.insert(*class, r);
            }
        }
        f
    })
}

/// Everything one decision needs, in core types.
#[derive(Debug, Clone)]
struct World {
    foundations: Vec<F>,
    quota: Quota,
    usage: BTreeMap<String, Resources>,
    allowed: Vec<String>,
    policy: PlacementPolicySpec,
    request: Request,
}

fn world() -> impl Strategy<Value = World> {
    (1usize..9).prop_flat_map(|n| {
        let foundations = (0..n).map(foundation).collect::<Vec<_>>();
        let names = move |mask: u32| {
            pick(&(0..n).collect::<Vec<_>>(), mask)
                .iter()
                .map(|i| format!("f{i}"))
                .collect()
        };
        let quota = prop::collection::vec(
            (
                0..n,
                prop::sample::select(
                    &[
                        ResourceClass::Vcpu,
                        ResourceClass::Vcpu,
                        ResourceClass::MemoryMib,
                        ResourceClass::VolumeGib,
                    ][..],
                ),
                0u64..24,
            ),
            0..6,
        );
        let usage = prop::collection::vec((0..n, 0u64..30), 0..6);
        let allowed = prop::option::weighted(0.3, 0u32..(1 << n));
        let weights = prop::array::uniform5(0.0f64..2.0);
        let policy = (any::<bool>(), any::<bool>(), weights);
        let amounts = prop::array::uniform3(0u64..16);
        let required = (
            prop::option::weighted(0.6, 0..=TRAITS.len()),
            prop::option::weighted(0.2, 0..=TRAITS.len()),
        );
        let place = (0usize..16, 0usize..20);
        let request = (0usize..3, amounts, required, mask(10, 0.05), place);
        let group = prop::option::of((any::<bool>(), prop::collection::vec(0..n, 0..4)));
        (foundations, quota, usage, allowed, policy, request, group).prop_map(
            move |(foundations, quota, usage, allowed, policy, request, group)| {
                let mut per_foundation = BTreeMap::<String, _>::new();
                for (i, class, limit) in quota {
                    per_foundation
                        .entry(format!("f{i}"))
                        .or_insert_with(BTreeMap::new)
                        .insert(class, limit);
                }
                let usage = usage
                    .into_iter()
                    .map(|(i, v)| {
                        (
                            format!("f{i}"),
                            Resources::from_pairs([(ResourceClass::Vcpu, v)]),
                        )
                    })
                    .collect();
                let (binpack, allow_degraded, [allocation, cost, energy, affinity, api_health]) =
                    policy;
                let (kind, [a, b, c], required, forbidden, (zone, region)) = request;
                let resources = match KINDS[kind] {
                    Kind::Instance => Resources::from_pairs([
                        (ResourceClass::Vcpu, a),
                        (ResourceClass::MemoryMib, b),
                        (ResourceClass::DiskGib, c),
                    ]),
                    Kind::Volume => Resources::from_pairs([(ResourceClass::VolumeGib, a)]),
                    _ => Resources::from_pairs([(ResourceClass::Buckets, 1)]),
                };
                let mut r = Request::new(KINDS[kind], resources);
                // An index past the known traits asks for one no foundation has.
                let required: Vec<&str> = [required.0, required.1]
                    .iter()
                    .flatten()
                    .map(|i| TRAITS.get(*i).copied().unwrap_or("gpu:none"))
                    .collect();
                r.required_traits = crate::testkit::traits(&required);
                r.forbidden_traits = crate::testkit::traits(&pick(&TRAITS, forbidden));
                r.zone = ZONES.get(zone).map(|z| (*z).to_owned());
                r.region = REGIONS.get(region).map(|z| (*z).to_owned());
                r.group = group.map(|(anti, members)| GroupRequest {
                    group: Group {
                        name: "g".into(),
                        policy: if anti {
                            GroupPolicy::AntiAffinity
                        } else {
                            GroupPolicy::Affinity
                        },
                    },
                    members: members.iter().map(|i| format!("f{i}")).collect(),
                });
                World {
                    foundations,
                    quota: Quota {
                        per_foundation,
                        ..Quota::default()
                    },
                    usage,
                    allowed: allowed.map(&names).unwrap_or_default(),
                    policy: PlacementPolicySpec {
                        strategy: if binpack {
                            Placing::Binpack
                        } else {
                            Placing::Spread
                        },
                        weights: Weights {
                            allocation,
                            cost,
                            energy,
                            affinity,
                            api_health,
                        },
                        allow_degraded,
                        department: None,
                    },
                    request: r,
                }
            },
        )
    })
}

/// Every filter `f` fails, in filter order, judged from the core types alone.
fn oracle(w: &World, f: &F) -> Vec<Filter> {
    let r = &w.request;
    let has = |t: &str| f.spec.traits.iter().any(|x| x.as_str() == t);
    let level = f
        .spec
        .traits
        .iter()
        .filter(|t| t.key() == "security-level")
        .filter_map(|t| t.value()?.parse::<u8>().ok())
        .max();
    let traits_ok = r.required_traits.iter().all(|t| match t.key() {
        "security-level" => {
            level.is_some_and(|l| Some(l) >= t.value().and_then(|v| v.parse().ok()))
        }
        _ => has(t.as_str()),
    }) && !r.forbidden_traits.iter().any(|t| has(t.as_str()));
    let capacity_ok = r.resources.iter().all(|(class, amount)| {
        f.status
            .inventory
            .get(&class)
            .is_some_and(|rec| rec.free() >= amount && rec.max_unit >= amount)
    });
    let limits = w
        .quota
        .per_foundation
        .get(&f.name)
        .cloned()
        .unwrap_or_default();
    let used = w.usage.get(&f.name).copied().unwrap_or_default();
    let checks = [
        (
            Filter::Allowed,
            w.allowed.is_empty() || w.allowed.contains(&f.name),
        ),
        (Filter::Capability, f.kinds.contains(&r.kind)),
        (
            Filter::Health,
            f.status.health == Health::Ready
                || (f.status.health == Health::Degraded && w.policy.allow_degraded),
        ),
        (
            Filter::Zone,
            r.zone.as_ref().is_none_or(|z| f.spec.zones.contains(z))
                && r.region
                    .as_ref()
                    .is_none_or(|g| f.spec.region.as_ref() == Some(g)),
        ),
        (Filter::Traits, traits_ok),
        (Filter::Capacity, capacity_ok),
        (
            Filter::Quota,
            check_quota(&limits, &used, &r.resources).is_ok(),
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(f, _)| f)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decisions_agree_with_the_oracle(w in world()) {
        let fleet = crate::Fleet::new(w.foundations.iter().map(F::input));
        let tenancy = Tenancy::new(&fleet, &w.quota, &w.usage, &w.allowed);
        let d = decide(&fleet, &tenancy, &w.policy, &w.request);
        let e = d.explain(&fleet, &w.request);
        let by_name = |name: &str| w.foundations.iter().find(|f| f.name == name).expect("every candidate comes from the world");
        let feasible: Vec<usize> = (0..fleet.len()).filter(|i| oracle(&w, by_name(fleet.candidates()[*i].name())).is_empty()).collect();

        // The chosen foundation passes every filter.
        if let Some(i) = d.chosen() {
            prop_assert_eq!(oracle(&w, by_name(fleet.candidates()[i].name())), vec![]);
        }
        // If any foundation passes every filter, the request is not rejected,
        // and exactly the foundations that pass are ranked.
        prop_assert_eq!(d.chosen().is_some(), !feasible.is_empty());
        let mut ranked: Vec<usize> = d.ranked().collect();
        ranked.sort_unstable();
        prop_assert_eq!(&ranked, &feasible);

        for (i, v) in d.verdicts().iter().enumerate() {
            let failing = oracle(&w, by_name(fleet.candidates()[i].name()));
            match v {
                // Every rejection names the first filter the foundation fails.
                Verdict::Rejected(reason) => {
                    prop_assert_eq!(Some(&reason.filter()), failing.first());
                    let line = e.line(i).to_string();
                    prop_assert!(line.contains(&format!("rejected by {}: ", reason.filter().name())), "{}", line);
                }
                Verdict::Feasible(s) => {
                    for x in [s.allocation, s.cost, s.energy, s.affinity, s.api_health, s.total] {
                        prop_assert!((0.0..=1.0).contains(&x), "{:?}", s);
                    }
                }
            }
        }
        // Ranked best first, ties by name, and the rank recorded on each.
        let ranked: Vec<usize> = d.ranked().collect();
        for (n, pair) in ranked.windows(2).enumerate() {
            let (a, b) = (d.verdicts()[pair[0]].scores().expect("ranked"), d.verdicts()[pair[1]].scores().expect("ranked"));
            prop_assert!(a.total > b.total || (a.total == b.total && pair[0] < pair[1]));
            prop_assert_eq!(a.rank as usize, n + 1);
        }
    }
}
