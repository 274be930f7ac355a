//! Table tests, one table per score component and one for the weighting,
//! plus a decision per component showing that it alone can pick the winner.

use yunshu_core::{
    model::{PlacementPolicySpec, Weights},
    resources::ResourceClass::{MemoryMib as MEM, Vcpu as VCPU},
};

use super::*;
use crate::{
    Request, Tenancy, decide,
    testkit::{F, fleet_of, group, vcpus},
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Decides with only one weight set; returns the winner's name and every feasible score.
fn decide_by(
    fs: &[F],
    r: &Request,
    strategy: Strategy,
    only: fn(&mut Weights),
) -> (String, Vec<Scores>) {
    let mut weights = Weights {
        allocation: 0.0,
        cost: 0.0,
        energy: 0.0,
        affinity: 0.0,
        api_health: 0.0,
    };
    only(&mut weights);
    let policy = PlacementPolicySpec {
        strategy,
        weights,
        ..PlacementPolicySpec::default()
    };
    let fleet = fleet_of(fs);
    let d = decide(&fleet, &Tenancy::unrestricted(&fleet), &policy, r);
    let chosen = d
        .chosen()
        .map_or("-", |i| fleet.candidates()[i].name())
        .to_owned();
    (
        chosen,
        d.verdicts()
            .iter()
            .filter_map(|v| v.scores().copied())
            .collect(),
    )
}

#[test]
fn allocation_spread_and_binpack() {
    let rows = [
        (Strategy::Spread, 0, 2, 10, 0.8),
        (Strategy::Binpack, 0, 2, 10, 0.2),
        (Strategy::Spread, 8, 2, 10, 0.0),
        (Strategy::Binpack, 8, 2, 10, 1.0),
        (Strategy::Spread, 0, 0, 0, 0.0),
    ];
    for (strategy, used, requested, capacity, want) in rows {
        let got = allocation(strategy, utilization(used, requested, capacity));
        assert!(
            close(got, want),
            "{strategy:?} {used}+{requested}/{capacity}: {got} != {want}"
        );
    }
    // Mean over the requested classes: vcpu 50% and memory 25% after placement.
    let a = F::new("a").vcpu(8, 2, 8).inv(MEM, 4096, 0, 4096);
    let mut r = vcpus(2);
    r.resources.set(MEM, 1024);
    let (_, s) = decide_by(&[a], &r, Strategy::Spread, |w| w.allocation = 1.0);
    assert!(
        close(s[0].utilization, 0.375) && close(s[0].allocation, 0.625),
        "{s:?}"
    );

    let fs = [F::new("a").vcpu(100, 80, 8), F::new("b").vcpu(100, 20, 8)];
    assert_eq!(
        decide_by(&fs, &vcpus(4), Strategy::Spread, |w| w.allocation = 1.0).0,
        "b"
    );
    assert_eq!(
        decide_by(&fs, &vcpus(4), Strategy::Binpack, |w| w.allocation = 1.0).0,
        "a"
    );
}

#[test]
fn cost_is_relative_to_the_cheapest_feasible() {
    let rows = [
        (1.0, 1.0, 1.0),
        (1.0, 2.0, 0.5),
        (0.0, 0.0, 1.0),
        (0.0, 3.0, 0.0),
        (2.0, 8.0, 0.25),
    ];
    for (cheapest, hourly, want) in rows {
        assert!(close(cost(cheapest, hourly), want), "{cheapest} / {hourly}");
    }
    let fs = [
        F::new("a").roomy().tariff(VCPU, 0.2).tariff(MEM, 0.001),
        F::new("b").roomy().tariff(VCPU, 0.1),
        F::new("c").vcpu(1, 0, 1).tariff(VCPU, 0.0),
    ];
    let mut r = vcpus(4);
    r.resources.set(MEM, 1000);
    let (chosen, s) = decide_by(&fs, &r, Strategy::Spread, |w| w.cost = 1.0);
    assert_eq!(
        chosen, "b",
        "c is free but too small, so b is the cheapest feasible"
    );
    assert!(
        close(s[0].hourly_cost, 1.8) && close(s[1].hourly_cost, 0.4),
        "{s:?}"
    );
    assert!(
        close(s[0].cost, 0.4 / 1.8) && close(s[1].cost, 1.0),
        "{s:?}"
    );
}

#[test]
fn energy_is_one_over_pue() {
    let rows = [
        (Some(1.0), 1.0),
        (Some(1.25), 0.8),
        (Some(2.0), 0.5),
        (Some(0.8), 1.0),
        (None, 1.0 / UNKNOWN_PUE),
        (Some(f64::NAN), 1.0 / UNKNOWN_PUE),
        (Some(-1.0), 1.0 / UNKNOWN_PUE),
    ];
    for (pue, want) in rows {
        assert!(close(energy(pue), want), "{pue:?}");
    }
    let fs = [
        F::new("a").roomy().pue(1.6),
        F::new("b").roomy().pue(1.2),
        F::new("c").roomy(),
    ];
    assert_eq!(
        decide_by(&fs, &vcpus(2), Strategy::Spread, |w| w.energy = 1.0).0,
        "b"
    );
}

#[test]
fn affinity_and_anti_affinity() {
    use GroupPolicy::{Affinity, AntiAffinity};
    let rows = [
        (Affinity, 2, 2, 1.0),
        (Affinity, 1, 2, 0.5),
        (Affinity, 0, 2, 0.0),
        (AntiAffinity, 0, 2, 1.0),
        (AntiAffinity, 2, 2, 0.0),
        (AntiAffinity, 1, 4, 0.75),
        (Affinity, 0, 0, 1.0),
        (AntiAffinity, 0, 0, 1.0),
    ];
    for (policy, here, most, want) in rows {
        assert!(
            close(affinity(policy, here, most), want),
            "{policy:?} {here}/{most}"
        );
    }
    let fs = || {
        [
            F::new("a").roomy(),
            F::new("b").roomy(),
            F::new("c").roomy(),
        ]
    };
    let with_group = |policy, members: &[&str]| {
        let mut r = vcpus(2);
        r.group = Some(group(policy, members));
        r
    };
    let only = |w: &mut Weights| w.affinity = 1.0;
    assert_eq!(
        decide_by(
            &fs(),
            &with_group(Affinity, &["b", "c", "b"]),
            Strategy::Spread,
            only
        )
        .0,
        "b"
    );
    assert_eq!(
        decide_by(
            &fs(),
            &with_group(AntiAffinity, &["a", "b"]),
            Strategy::Spread,
            only
        )
        .0,
        "c"
    );
    // No group: affinity does not count, whatever its weight.
    let (chosen, s) = decide_by(&fs(), &vcpus(2), Strategy::Spread, only);
    assert_eq!(chosen, "a");
    assert!(s.iter().all(|s| s.total == 0.0), "{s:?}");
}

#[test]
fn api_health_from_error_rate_and_latency() {
    let rows = [
        (0.0, Some(0.0), 1.0),
        (0.0, Some(100.0), 0.5),
        (0.5, Some(0.0), 0.5),
        (0.0, None, 0.5),
        (0.0, Some(-5.0), 0.5),
        (1.0, Some(0.0), 0.0),
        (2.0, Some(0.0), 0.0),
        (f64::NAN, Some(0.0), 0.0),
        (0.1, Some(300.0), 0.9 * 0.25),
    ];
    for (error_rate, latency, want) in rows {
        assert!(
            close(api_health(error_rate, latency), want),
            "{error_rate} {latency:?}"
        );
    }
    let fs = [
        F::new("a").roomy().api(0.2, Some(10.0)),
        F::new("b").roomy().api(0.0, Some(30.0)),
        F::new("c").roomy().api(0.0, Some(900.0)),
    ];
    assert_eq!(
        decide_by(&fs, &vcpus(2), Strategy::Spread, |w| w.api_health = 1.0).0,
        "b"
    );
}

#[test]
fn total_is_the_weighted_mean() {
    let s = Scores {
        allocation: 1.0,
        cost: 0.5,
        energy: 0.0,
        affinity: 0.25,
        api_health: 1.0,
        total: 0.0,
        utilization: 0.0,
        hourly_cost: 0.0,
        rank: 0,
    };
    let w = |allocation, cost, energy, affinity, api_health| Weights {
        allocation,
        cost,
        energy,
        affinity,
        api_health,
    };
    let rows = [
        (w(1.0, 0.0, 0.0, 0.0, 0.0), true, 1.0),
        (w(1.0, 1.0, 0.0, 0.0, 0.0), true, 0.75),
        (w(0.0, 0.0, 1.0, 1.0, 0.0), true, 0.125),
        (w(0.0, 0.0, 1.0, 1.0, 0.0), false, 0.0),
        (w(1.0, -5.0, f64::NAN, 0.0, 1.0), true, 1.0),
        (w(0.0, 0.0, 0.0, 0.0, 0.0), true, 0.0),
        (
            Weights::default(),
            true,
            (1.0 + 0.25 + 0.0 + 0.25 + 0.5) / 3.2,
        ),
    ];
    for (weights, grouped, want) in rows {
        let got = EffectiveWeights::new(&weights, grouped).total(&s);
        assert!(
            close(got, want),
            "{weights:?} grouped {grouped}: {got} != {want}"
        );
    }
}
