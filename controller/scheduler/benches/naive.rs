//! The baseline: the straightforward scheduler one writes first. It works on
//! the core types as stored, runs every filter on every foundation, collects
//! each verdict as a `String`, then scores every survivor and formats its
//! explanation eagerly. Same semantics as `yunshu_scheduler::decide` (it
//! shares the score formulas), so the bench can check both pick the same
//! foundation.

use std::collections::BTreeMap;

use yunshu_core::{
    model::{DepartmentSpec, GroupPolicy, Health, PlacementPolicySpec, Strategy},
    resources::{Resources, check_quota},
};
use yunshu_scheduler::{EffectiveWeights, Request, Scores, score};

use crate::workload::Foundation;

pub struct NaiveDecision {
    pub chosen: Option<String>,
    pub feasible: Vec<String>,
    pub explanations: Vec<(String, String)>,
}

type Check = Result<(), String>;

fn capability(f: &Foundation, r: &Request) -> Check {
    if f.kinds.contains(&r.kind) {
        Ok(())
    } else {
        Err(format!("adapter cannot create {}", r.kind.plural()))
    }
}

fn health(f: &Foundation, p: &PlacementPolicySpec) -> Check {
    match f.status.health {
        Health::Ready => Ok(()),
        Health::Degraded if p.allow_degraded => Ok(()),
        h => Err(format!("health is {h:?}")),
    }
}

fn allowed(f: &Foundation, d: &DepartmentSpec) -> Check {
    if d.allowed_foundations.is_empty() || d.allowed_foundations.contains(&f.name) {
        Ok(())
    } else {
        Err("not among the department's allowed foundations".to_owned())
    }
}

fn zone(f: &Foundation, r: &Request) -> Check {
    if let Some(z) = &r.zone
        && !f.spec.zones.contains(z)
    {
        return Err(format!(
            "zone `{z}` not offered (offers {})",
            f.spec.zones.join(", ")
        ));
    }
    match &r.region {
        Some(g) if f.spec.region.as_ref() != Some(g) => Err(format!("region `{g}` requested")),
        _ => Ok(()),
    }
}

fn level(f: &Foundation) -> Option<u8> {
    f.spec
        .traits
        .iter()
        .filter(|t| t.key() == "security-level")
        .filter_map(|t| t.value()?.parse().ok())
        .max()
}

fn traits(f: &Foundation, r: &Request) -> Check {
    let mut problems = Vec::new();
    for t in &r.required_traits {
        if t.key() == "security-level" {
            let need: Option<u8> = t.value().and_then(|v| v.parse().ok());
            if level(f) < need {
                problems.push(format!(
                    "security level {:?} is below the required {need:?}",
                    level(f)
                ));
            }
        } else if !f.spec.traits.iter().any(|x| x == t) {
            problems.push(format!("lacks required trait `{t}`"));
        }
    }
    for t in &r.forbidden_traits {
        if f.spec.traits.iter().any(|x| x == t) {
            problems.push(format!("has forbidden trait `{t}`"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

fn capacity(f: &Foundation, r: &Request) -> Check {
    let mut problems = Vec::new();
    for (class, amount) in r.resources.iter() {
        match f.status.inventory.get(&class) {
            None => problems.push(format!("no {class} inventory")),
            Some(rec) if rec.free() < amount => {
                problems.push(format!("{class}: {amount} requested, {} free", rec.free()))
            }
            Some(rec) if rec.max_unit < amount => {
                problems.push(format!(
                    "{class}: largest free unit {} < {amount} requested",
                    rec.max_unit
                ));
            }
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

fn quota(
    f: &Foundation,
    d: &DepartmentSpec,
    usage: &BTreeMap<String, Resources>,
    r: &Request,
) -> Check {
    let Some(limits) = d.quota.per_foundation.get(&f.name) else {
        return Ok(());
    };
    let used = usage.get(&f.name).copied().unwrap_or_default();
    check_quota(limits, &used, &r.resources).map_err(|v| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    })
}

pub fn decide(
    fs: &[Foundation],
    dept: &DepartmentSpec,
    usage: &BTreeMap<String, Resources>,
    policy: &PlacementPolicySpec,
    r: &Request,
) -> NaiveDecision {
    let mut explanations = Vec::new();
    let mut survivors = Vec::new();
    for f in fs {
        let checks = [
            ("capability", capability(f, r)),
            ("health", health(f, policy)),
            ("allowed", allowed(f, dept)),
            ("zone", zone(f, r)),
            ("traits", traits(f, r)),
            ("capacity", capacity(f, r)),
            ("quota", quota(f, dept, usage, r)),
        ];
        let failures: Vec<String> = checks
            .into_iter()
            .filter_map(|(name, c)| c.err().map(|e| format!("rejected by {name}: {e}")))
            .collect();
        if failures.is_empty() {
            survivors.push(f);
        } else {
            explanations.push((f.name.clone(), failures.join("; ")));
        }
    }

    let mut members: BTreeMap<&str, u32> = BTreeMap::new();
    for m in r.group.iter().flat_map(|g| &g.members) {
        *members.entry(m.as_str()).or_default() += 1;
    }
    let most = members.values().copied().max().unwrap_or(0);
    let weights = EffectiveWeights::new(&policy.weights, r.group.is_some());
    let mut scored: Vec<(String, Scores)> = survivors
        .iter()
        .map(|f| {
            let (mut util, mut hourly, mut n) = (0.0, 0.0, 0usize);
            for (class, amount) in r.resources.iter() {
                let rec = f.status.inventory.get(&class).copied().unwrap_or_default();
                util += score::utilization(rec.used, amount, rec.capacity());
                let price = f
                    .spec
                    .tariff
                    .get(&class)
                    .copied()
                    .filter(|p| p.is_finite() && *p > 0.0)
                    .unwrap_or(0.0);
                hourly += amount as f64 * price;
                n += 1;
            }
            let utilization = util / n.max(1) as f64;
            let here = members.get(f.name.as_str()).copied().unwrap_or(0);
            let s = Scores {
                allocation: score::allocation(policy.strategy, utilization),
                cost: 1.0,
                energy: score::energy(f.spec.pue),
                affinity: r
                    .group
                    .as_ref()
                    .map_or(1.0, |g| score::affinity(g.group.policy, here, most)),
                api_health: score::api_health(f.error_rate, f.status.api_latency_ms),
                total: 0.0,
                utilization,
                hourly_cost: hourly,
                rank: 0,
            };
            (f.name.clone(), s)
        })
        .collect();
    let cheapest = scored
        .iter()
        .map(|(_, s)| s.hourly_cost)
        .fold(f64::INFINITY, f64::min);
    for (_, s) in &mut scored {
        s.cost = score::cost(cheapest, s.hourly_cost);
        s.total = weights.total(s);
    }
    scored.sort_by(|a, b| b.1.total.total_cmp(&a.1.total).then_with(|| a.0.cmp(&b.0)));
    let alloc = match policy.strategy {
        Strategy::Spread => "spread",
        Strategy::Binpack => "binpack",
    };
    for (rank, (name, s)) in scored.iter().enumerate() {
        let affinity = match r.group.as_ref().map(|g| g.group.policy) {
            Some(GroupPolicy::Affinity) => format!(", affinity {:.2}", s.affinity),
            Some(GroupPolicy::AntiAffinity) => format!(", anti-affinity {:.2}", s.affinity),
            None => String::new(),
        };
        let line = format!(
            "filters ok, {alloc} {:.2}, cost {:.2}, energy {:.2}{affinity}, api {:.2}, total {:.2}, rank {}",
            s.allocation,
            s.cost,
            s.energy,
            s.api_health,
            s.total,
            rank + 1
        );
        explanations.push((name.clone(), line));
    }
    NaiveDecision {
        chosen: scored.first().map(|(n, _)| n.clone()),
        feasible: scored.into_iter().map(|(n, _)| n).collect(),
        explanations,
    }
}
