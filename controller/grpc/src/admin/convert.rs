//! Conversions of the admin kinds — Foundation, Department, PlacementPolicy —
//! between core and the wire.

use std::{collections::BTreeMap, time::Duration};

use yunshu_core::{
    error::FieldViolation,
    meta::Object,
    model::{
        AdapterKind, Budget, CredentialsRef, DepartmentSpec, FoundationSpec, Health, Identity,
        PlacementPolicySpec, Quota, Role, Strategy, Weights,
    },
    resources::{Limits, Resources},
    traits::Trait,
};
use yunshu_proto::api::v1 as pb;

use crate::{
    convert::{class, class_from, conditions, foundation_name, meta, timestamp},
    names::is_dns_label,
};

fn limits_from(path: &str, raw: &[pb::QuotaLimit], out: &mut Vec<FieldViolation>) -> Limits {
    let mut limits = Limits::new();
    for (i, l) in raw.iter().enumerate() {
        match class_from(l.resource_class) {
            Some(c) => {
                limits.insert(c, l.limit);
            }
            None => out.push(FieldViolation::new(
                format!("{path}[{i}].resource_class"),
                "must name a resource class",
            )),
        }
    }
    limits
}

fn limits(l: &Limits) -> Vec<pb::QuotaLimit> {
    l.iter()
        .map(|(c, v)| pb::QuotaLimit {
            resource_class: class(*c) as i32,
            limit: *v,
        })
        .collect()
}

fn amounts(r: &Resources) -> Vec<pb::ResourceAmount> {
    r.iter()
        .map(|(c, v)| pb::ResourceAmount {
            resource_class: class(c) as i32,
            amount: v,
        })
        .collect()
}

fn role_from(r: i32) -> Option<Role> {
    match pb::Role::try_from(r).ok()? {
        pb::Role::Viewer => Some(Role::Viewer),
        pb::Role::Operator => Some(Role::Operator),
        pb::Role::Admin => Some(Role::Admin),
        pb::Role::Unspecified => None,
    }
}

fn role(r: Role) -> pb::Role {
    match r {
        Role::Viewer => pb::Role::Viewer,
        Role::Operator => pb::Role::Operator,
        Role::Admin => pb::Role::Admin,
    }
}

/// A department spec from the wire.
pub fn department_spec_from(
    path: &str,
    s: &pb::DepartmentSpec,
    out: &mut Vec<FieldViolation>,
) -> DepartmentSpec {
    let identities = s
        .identities
        .iter()
        .enumerate()
        .filter_map(|(i, id)| {
            let at = format!("{path}.identities[{i}]");
            let Some(role) = role_from(id.role) else {
                out.push(FieldViolation::new(
                    format!("{at}.role"),
                    "must be VIEWER, OPERATOR or ADMIN",
                ));
                return None;
            };
            let named = |field: &str, value: &str, out: &mut Vec<FieldViolation>| {
                if value.trim().is_empty() {
                    out.push(FieldViolation::new(
                        format!("{at}.{field}"),
                        "must not be empty",
                    ));
                }
            };
            let identity = match &id.principal {
                Some(pb::identity::Principal::OidcSubject(subject)) => {
                    named("oidc_subject", subject, out);
                    Identity::OidcSubject {
                        subject: subject.clone(),
                        role,
                    }
                }
                Some(pb::identity::Principal::OidcGroup(group)) => {
                    named("oidc_group", group, out);
                    Identity::OidcGroup {
                        group: group.clone(),
                        role,
                    }
                }
                Some(pb::identity::Principal::CertificateSubject(subject)) => {
                    named("certificate_subject", subject, out);
                    Identity::CertificateSubject {
                        subject: subject.clone(),
                        role,
                    }
                }
                Some(pb::identity::Principal::ApiToken(t)) => {
                    if !yunshu_core::model::is_api_token_id(&t.id) {
                        out.push(FieldViolation::new(
                            format!("{at}.api_token.id"),
                            "must be 1-64 ASCII letters, digits or '-'",
                        ));
                    }
                    if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                        out.push(FieldViolation::new(
                            format!("{at}.api_token.sha256"),
                            "must be 64 hex digits: the SHA-256 of the token, never the token",
                        ));
                    }
                    Identity::ApiToken {
                        id: t.id.clone(),
                        sha256: t.sha256.to_ascii_lowercase(),
                        role,
                        revoked: t.revoked,
                    }
                }
                None => {
                    out.push(FieldViolation::new(
                        at,
                        "must set one of oidc_subject, oidc_group, certificate_subject, api_token",
                    ));
                    return None;
                }
            };
            Some(identity)
        })
        .collect();
    let quota = s.quota.as_ref().map_or_else(Quota::default, |q| Quota {
        hard: limits_from(&format!("{path}.quota.hard"), &q.hard, out),
        per_foundation: q
            .per_foundation
            .iter()
            .enumerate()
            .map(|(i, f)| {
                (
                    foundation_ref(
                        &format!("{path}.quota.per_foundation[{i}].foundation"),
                        &f.foundation,
                        out,
                    ),
                    limits_from(
                        &format!("{path}.quota.per_foundation[{i}].limits"),
                        &f.limits,
                        out,
                    ),
                )
            })
            .collect(),
    });
    DepartmentSpec {
        display_name: s.display_name.clone(),
        identities,
        quota,
        allowed_foundations: s
            .allowed_foundations
            .iter()
            .enumerate()
            .map(|(i, f)| foundation_ref(&format!("{path}.allowed_foundations[{i}]"), f, out))
            .collect(),
    }
}

/// The foundation a `foundations/{foundation}` reference names.
fn foundation_ref(field: &str, name: &str, out: &mut Vec<FieldViolation>) -> String {
    reference(field, "foundations", name, out)
}

/// The name a `{collection}/{name}` reference names; anything else is a
/// field violation, since a bare or misspelt reference would silently
/// match nothing at all.
fn reference(field: &str, collection: &str, name: &str, out: &mut Vec<FieldViolation>) -> String {
    match name.split_once('/') {
        Some((c, n)) if c == collection && is_dns_label(n) => n.to_owned(),
        _ => {
            let singular = collection.trim_end_matches('s');
            out.push(FieldViolation::new(
                field,
                format!("must be `{collection}/{{{singular}}}`, got `{name}`"),
            ));
            String::new()
        }
    }
}

/// A department for the wire.
pub fn department(o: &Object<DepartmentSpec>) -> pb::Department {
    let s = &o.spec;
    pb::Department {
        metadata: Some(meta(&o.meta, format!("departments/{}", o.meta.name))),
        spec: Some(pb::DepartmentSpec {
            display_name: s.display_name.clone(),
            identities: s
                .identities
                .iter()
                .map(|id| {
                    let (principal, r) = match id {
                        Identity::OidcSubject { subject, role } => {
                            (pb::identity::Principal::OidcSubject(subject.clone()), *role)
                        }
                        Identity::OidcGroup { group, role } => {
                            (pb::identity::Principal::OidcGroup(group.clone()), *role)
                        }
                        Identity::CertificateSubject { subject, role } => (
                            pb::identity::Principal::CertificateSubject(subject.clone()),
                            *role,
                        ),
                        Identity::ApiToken {
                            id,
                            sha256,
                            role,
                            revoked,
                        } => (
                            pb::identity::Principal::ApiToken(pb::ApiToken {
                                id: id.clone(),
                                sha256: sha256.clone(),
                                revoked: *revoked,
                            }),
                            *role,
                        ),
                    };
                    pb::Identity {
                        principal: Some(principal),
                        role: role(r) as i32,
                    }
                })
                .collect(),
            quota: Some(pb::Quota {
                hard: limits(&s.quota.hard),
                per_foundation: s
                    .quota
                    .per_foundation
                    .iter()
                    .map(|(f, l)| pb::FoundationQuota {
                        foundation: foundation_name(f),
                        limits: limits(l),
                    })
                    .collect(),
            }),
            allowed_foundations: s
                .allowed_foundations
                .iter()
                .map(|f| foundation_name(f))
                .collect(),
        }),
        status: Some(pb::DepartmentStatus {
            usage: amounts(&o.status.usage),
            tenants: o
                .status
                .tenants
                .iter()
                .map(|(f, t)| pb::TenantMapping {
                    foundation: foundation_name(f),
                    tenant_id: t.tenant_id.clone(),
                    user: t.user.clone(),
                })
                .collect(),
            conditions: conditions(&o.status.conditions),
        }),
    }
}

/// A foundation spec from the wire.
pub fn foundation_spec_from(
    path: &str,
    s: &pb::FoundationSpec,
    out: &mut Vec<FieldViolation>,
) -> FoundationSpec {
    let adapter = match pb::AdapterKind::try_from(s.adapter) {
        Ok(pb::AdapterKind::Openstack) => AdapterKind::Openstack,
        Ok(pb::AdapterKind::S3) => AdapterKind::S3,
        Ok(pb::AdapterKind::Remote) => AdapterKind::Remote,
        _ => {
            out.push(FieldViolation::new(
                format!("{path}.adapter"),
                "must be OPENSTACK, S3 or REMOTE",
            ));
            AdapterKind::Openstack
        }
    };
    if !(s.endpoint.starts_with("http://") || s.endpoint.starts_with("https://")) {
        out.push(FieldViolation::new(
            format!("{path}.endpoint"),
            "must be an http:// or https:// URL",
        ));
    }
    let traits = s
        .traits
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            t.parse::<Trait>()
                .map_err(|e| out.push(FieldViolation::new(format!("{path}.traits[{i}]"), e)))
                .ok()
        })
        .collect();
    let mut ratios = BTreeMap::new();
    for (i, r) in s.allocation_ratios.iter().enumerate() {
        match class_from(r.resource_class) {
            Some(c) if r.ratio > 0.0 && r.ratio <= 64.0 => {
                ratios.insert(c, r.ratio);
            }
            _ => out.push(FieldViolation::new(
                format!("{path}.allocation_ratios[{i}]"),
                "needs a resource class and a ratio in (0, 64]",
            )),
        }
    }
    let mut tariff = BTreeMap::new();
    for (i, t) in s.tariffs.iter().enumerate() {
        match class_from(t.resource_class) {
            Some(c) if t.price_per_unit_hour >= 0.0 => {
                tariff.insert(c, t.price_per_unit_hour);
            }
            _ => out.push(FieldViolation::new(
                format!("{path}.tariffs[{i}]"),
                "needs a resource class and a price of at least 0",
            )),
        }
    }
    if s.pue.is_some_and(|p| !(1.0..=5.0).contains(&p)) {
        out.push(FieldViolation::new(
            format!("{path}.pue"),
            "must be between 1.0 and 5.0",
        ));
    }
    let capacity = (!s.capacity.is_empty()).then(|| {
        Resources::from_pairs(
            s.capacity
                .iter()
                .filter_map(|a| Some((class_from(a.resource_class)?, a.amount))),
        )
    });
    // 0 in either field means its default, as the proto says.
    let budget = s.budget.as_ref().map_or_else(Budget::default, |b| {
        Budget {
            requests_per_second: b.requests_per_second,
            burst: b.burst,
        }
        .or_defaults()
    });
    let credentials = s.credentials.as_ref().and_then(|c| match &c.source {
        Some(pb::credentials_ref::Source::Secret(sr)) => Some(CredentialsRef::Secret {
            namespace: sr.namespace.clone(),
            name: sr.name.clone(),
        }),
        Some(pb::credentials_ref::Source::File(f)) => Some(CredentialsRef::File {
            path: f.path.clone(),
        }),
        None => None,
    });
    FoundationSpec {
        adapter,
        endpoint: s.endpoint.clone(),
        region: (!s.region.is_empty()).then(|| s.region.clone()),
        zones: s.zones.clone(),
        credentials,
        traits,
        allocation_ratios: ratios,
        tariff,
        pue: s.pue,
        budget,
        capacity,
        settings: s
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// A foundation for the wire.
pub fn foundation(o: &Object<FoundationSpec>) -> pb::Foundation {
    let s = &o.spec;
    let st = &o.status;
    pb::Foundation {
        metadata: Some(meta(&o.meta, foundation_name(&o.meta.name))),
        spec: Some(pb::FoundationSpec {
            adapter: match s.adapter {
                AdapterKind::Openstack => pb::AdapterKind::Openstack,
                AdapterKind::S3 => pb::AdapterKind::S3,
                AdapterKind::Remote => pb::AdapterKind::Remote,
            } as i32,
            endpoint: s.endpoint.clone(),
            region: s.region.clone().unwrap_or_default(),
            zones: s.zones.clone(),
            credentials: s.credentials.as_ref().map(|c| pb::CredentialsRef {
                source: Some(match c {
                    CredentialsRef::Secret { namespace, name } => {
                        pb::credentials_ref::Source::Secret(pb::SecretRef {
                            namespace: namespace.clone(),
                            name: name.clone(),
                        })
                    }
                    CredentialsRef::File { path } => {
                        pb::credentials_ref::Source::File(pb::FileRef { path: path.clone() })
                    }
                }),
            }),
            traits: s.traits.iter().map(ToString::to_string).collect(),
            allocation_ratios: s
                .allocation_ratios
                .iter()
                .map(|(c, r)| pb::AllocationRatio {
                    resource_class: class(*c) as i32,
                    ratio: *r,
                })
                .collect(),
            tariffs: s
                .tariff
                .iter()
                .map(|(c, p)| pb::Tariff {
                    resource_class: class(*c) as i32,
                    price_per_unit_hour: *p,
                })
                .collect(),
            pue: s.pue,
            budget: Some(pb::ApiBudget {
                requests_per_second: s.budget.requests_per_second,
                burst: s.budget.burst,
            }),
            capacity: s.capacity.as_ref().map(amounts).unwrap_or_default(),
            settings: s
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
        status: Some(pb::FoundationStatus {
            health: health(st.health) as i32,
            api_latency: st.api_latency_ms.and_then(|ms| {
                prost_types::Duration::try_from(Duration::from_secs_f64(ms.max(0.0) / 1000.0)).ok()
            }),
            inventory: st
                .inventory
                .iter()
                .map(|(c, r)| pb::Inventory {
                    resource_class: class(*c) as i32,
                    total: r.total,
                    reserved: r.reserved,
                    allocation_ratio: r.allocation_ratio,
                    used: r.used,
                    max_unit: r.max_unit,
                })
                .collect(),
            last_probe_time: st.last_probe.map(timestamp),
            conditions: conditions(&st.conditions),
        }),
    }
}

/// A health for the wire.
pub fn health(h: Health) -> pb::Health {
    match h {
        Health::Unknown => pb::Health::Unspecified,
        Health::Ready => pb::Health::Ready,
        Health::Degraded => pb::Health::Degraded,
        Health::Down => pb::Health::Down,
    }
}

/// A placement policy spec from the wire.
pub fn policy_spec_from(
    path: &str,
    s: &pb::PlacementPolicySpec,
    out: &mut Vec<FieldViolation>,
) -> PlacementPolicySpec {
    let strategy = match pb::PlacementStrategy::try_from(s.strategy) {
        Ok(pb::PlacementStrategy::Binpack) => Strategy::Binpack,
        Ok(_) => Strategy::Spread,
        Err(_) => {
            out.push(FieldViolation::new(
                format!("{path}.strategy"),
                "must be SPREAD or BINPACK",
            ));
            Strategy::Spread
        }
    };
    let d = Weights::default();
    let w = s.weights.unwrap_or_default();
    let weights = Weights {
        allocation: w.allocation.unwrap_or(d.allocation),
        cost: w.cost.unwrap_or(d.cost),
        energy: w.energy.unwrap_or(d.energy),
        affinity: w.affinity.unwrap_or(d.affinity),
        api_health: w.api_health.unwrap_or(d.api_health),
    };
    for (name, v) in [
        ("allocation", weights.allocation),
        ("cost", weights.cost),
        ("energy", weights.energy),
        ("affinity", weights.affinity),
        ("api_health", weights.api_health),
    ] {
        if !(0.0..=100.0).contains(&v) {
            out.push(FieldViolation::new(
                format!("{path}.weights.{name}"),
                "must be between 0 and 100",
            ));
        }
    }
    PlacementPolicySpec {
        department: (!s.department.is_empty()).then(|| {
            reference(
                &format!("{path}.department"),
                "departments",
                &s.department,
                out,
            )
        }),
        strategy,
        weights,
        allow_degraded: s.allow_degraded,
    }
}

/// A placement policy for the wire.
pub fn policy(o: &Object<PlacementPolicySpec>) -> pb::PlacementPolicy {
    let s = &o.spec;
    pb::PlacementPolicy {
        metadata: Some(meta(&o.meta, format!("placementpolicies/{}", o.meta.name))),
        spec: Some(pb::PlacementPolicySpec {
            department: s
                .department
                .as_ref()
                .map(|d| format!("departments/{d}"))
                .unwrap_or_default(),
            strategy: match s.strategy {
                Strategy::Spread => pb::PlacementStrategy::Spread,
                Strategy::Binpack => pb::PlacementStrategy::Binpack,
            } as i32,
            weights: Some(pb::ScoreWeights {
                allocation: Some(s.weights.allocation),
                cost: Some(s.weights.cost),
                energy: Some(s.weights.energy),
                affinity: Some(s.weights.affinity),
                api_health: Some(s.weights.api_health),
            }),
            allow_degraded: s.allow_degraded,
        }),
        status: Some(pb::PlacementPolicyStatus {
            conditions: conditions(&o.status.conditions),
        }),
    }
}
