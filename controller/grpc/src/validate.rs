//! Field-level validation of department resources against the rules and the
//! catalog. Each function collects every violation, so one round trip tells
//! the caller everything that is wrong.

use std::collections::HashMap;

use yunshu_core::{
    catalog::Catalog,
    error::FieldViolation,
    model::{BucketSpec, Constraints, InstanceSpec, VolumeSpec},
};

use crate::names::{DNS_LABEL_RULE, is_dns_label};

/// A client request id: required on every mutation.
pub fn request_id(field: &str, id: &str, out: &mut Vec<FieldViolation>) {
    if id.is_empty() {
        out.push(FieldViolation::new(
            field,
            "is required: a client-chosen id that makes retries safe",
        ));
    } else if id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        out.push(FieldViolation::new(
            field,
            "must be 1-128 characters of letters, digits, '-', '_' and '.'",
        ));
    }
}

/// A new object's name.
pub fn object_name(field: &str, name: &str, out: &mut Vec<FieldViolation>) {
    if !is_dns_label(name) {
        out.push(FieldViolation::new(field, DNS_LABEL_RULE));
    }
}

/// Labels: keys and values of at most 63 characters of `[A-Za-z0-9._/-]`.
pub fn labels(field: &str, labels: &HashMap<String, String>, out: &mut Vec<FieldViolation>) {
    let ok = |s: &str, empty_ok: bool| {
        (empty_ok || !s.is_empty())
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
    };
    for (k, v) in labels {
        if !ok(k, false) {
            out.push(FieldViolation::new(
                format!("{field}[{k}]"),
                "label keys are 1-63 characters of A-Z, a-z, 0-9, '.', '_', '/' and '-'",
            ));
        }
        if !ok(v, true) {
            out.push(FieldViolation::new(
                format!("{field}[{k}]"),
                "label values are at most 63 characters of A-Z, a-z, 0-9, '.', '_', '/' and '-'",
            ));
        }
    }
}

/// The label prefix Yunshu keeps for itself (such as `yunshu.io/purge`,
/// which deletes a bucket's contents with it).
pub const RESERVED_LABEL_PREFIX: &str = "yunshu.io/";

/// Labels a department sets: none under [`RESERVED_LABEL_PREFIX`].
pub fn unreserved_labels(
    field: &str,
    labels: &HashMap<String, String>,
    out: &mut Vec<FieldViolation>,
) {
    for k in labels
        .keys()
        .filter(|k| k.starts_with(RESERVED_LABEL_PREFIX))
    {
        out.push(FieldViolation::new(
            format!("{field}[{k}]"),
            format!("label keys starting with {RESERVED_LABEL_PREFIX} are reserved for Yunshu"),
        ));
    }
}

fn constraints(path: &str, c: &Constraints, out: &mut Vec<FieldViolation>) {
    for t in &c.required_traits {
        if c.forbidden_traits.contains(t) {
            out.push(FieldViolation::new(
                format!("{path}.forbidden_traits"),
                format!("`{t}` is both required and forbidden"),
            ));
        }
    }
    let arches: Vec<_> = c
        .required_traits
        .iter()
        .filter(|t| t.key() == "arch")
        .collect();
    if arches.len() > 1 {
        out.push(FieldViolation::new(
            format!("{path}.required_traits"),
            "at most one `arch:` trait may be required",
        ));
    }
    if let Some(zone) = &c.zone
        && !is_dns_label(zone)
    {
        out.push(FieldViolation::new(format!("{path}.zone"), DNS_LABEL_RULE));
    }
}

/// An instance spec.
pub fn instance(path: &str, s: &InstanceSpec, catalog: &Catalog, out: &mut Vec<FieldViolation>) {
    size(
        [&format!("{path}.vcpu"), &format!("{path}.memory_mib")],
        (s.vcpu, s.memory_mib),
        catalog,
        out,
    );
    if s.disk_gib == 0 || s.disk_gib > catalog.max_disk_gib {
        out.push(FieldViolation::new(
            format!("{path}.disk_gib"),
            format!("must be 1 to {}", catalog.max_disk_gib),
        ));
    }
    match catalog.image(&s.image) {
        None if s.image.is_empty() => {
            out.push(FieldViolation::new(format!("{path}.image"), "is required"))
        }
        None => {
            let names: Vec<_> = catalog.images.iter().map(|i| i.name.as_str()).collect();
            out.push(FieldViolation::new(
                format!("{path}.image"),
                format!(
                    "unknown image `{}`; the catalog has: {}",
                    s.image,
                    names.join(", ")
                ),
            ));
        }
        Some(image) => {
            for arch in s
                .constraints
                .required_traits
                .iter()
                .filter(|t| t.key() == "arch")
                .filter_map(|t| t.value())
            {
                if !image.architectures.iter().any(|a| a == arch) {
                    out.push(FieldViolation::new(
                        format!("{path}.image"),
                        format!(
                            "`{}` has no {arch} build (it has {})",
                            image.name,
                            image.architectures.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    if let Some(g) = &s.group
        && !is_dns_label(&g.name)
    {
        out.push(FieldViolation::new(
            format!("{path}.group.name"),
            DNS_LABEL_RULE,
        ));
    }
    constraints(&format!("{path}.constraints"), &s.constraints, out);
}

/// An instance size, `(vcpu, memory_mib)` reported under `paths`: both
/// positive, and a size of the catalog.
pub fn size(
    paths: [&str; 2],
    (vcpu, memory_mib): (u32, u64),
    catalog: &Catalog,
    out: &mut Vec<FieldViolation>,
) {
    if vcpu == 0 {
        out.push(FieldViolation::new(paths[0], "must be at least 1"));
    }
    if memory_mib == 0 {
        out.push(FieldViolation::new(paths[1], "must be at least 1"));
    }
    if vcpu > 0 && memory_mib > 0 && catalog.size(vcpu, memory_mib).is_none() {
        let sizes: Vec<_> = catalog
            .sizes
            .iter()
            .map(|z| format!("{} ({}/{})", z.name, z.vcpu, z.memory_mib))
            .collect();
        out.push(FieldViolation::new(
            paths[0],
            format!(
                "no catalog size has {vcpu} vCPU and {memory_mib} MiB; sizes (vCPU/MiB): {}",
                sizes.join(", ")
            ),
        ));
    }
}

/// A volume spec.
pub fn volume(path: &str, s: &VolumeSpec, catalog: &Catalog, out: &mut Vec<FieldViolation>) {
    if s.size_gib == 0 || s.size_gib > catalog.max_volume_gib {
        out.push(FieldViolation::new(
            format!("{path}.size_gib"),
            format!("must be 1 to {}", catalog.max_volume_gib),
        ));
    }
    constraints(&format!("{path}.constraints"), &s.constraints, out);
}

/// A bucket spec.
pub fn bucket(path: &str, s: &BucketSpec, out: &mut Vec<FieldViolation>) {
    if s.quota_bytes == 0 {
        out.push(FieldViolation::new(
            format!("{path}.quota_bytes"),
            "must be at least 1: every bucket has a size quota",
        ));
    }
    if s.quota_objects == Some(0) {
        out.push(FieldViolation::new(
            format!("{path}.quota_objects"),
            "must be at least 1 when set",
        ));
    }
    constraints(&format!("{path}.constraints"), &s.constraints, out);
}

#[cfg(test)]
mod tests {
    use yunshu_core::model::{Constraints, PowerState};

    use super::*;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            vcpu: 4,
            memory_mib: 8192,
            disk_gib: 40,
            image: "kylin-v10".into(),
            constraints: Constraints::default(),
            group: None,
            power: PowerState::Running,
        }
    }

    fn check(s: &InstanceSpec) -> Vec<FieldViolation> {
        let mut out = vec![];
        instance("instance.spec", s, &Catalog::default(), &mut out);
        out
    }

    #[test]
    fn a_catalog_instance_is_valid() {
        assert!(check(&spec()).is_empty());
    }

    #[test]
    fn each_rule_names_its_field() {
        type Case = (Box<dyn Fn(&mut InstanceSpec)>, &'static str);
        let cases: Vec<Case> = vec![
            (Box::new(|s| s.vcpu = 0), "instance.spec.vcpu"),
            (Box::new(|s| s.memory_mib = 5000), "instance.spec.vcpu"),
            (Box::new(|s| s.disk_gib = 0), "instance.spec.disk_gib"),
            (
                Box::new(|s| s.image = "windows".into()),
                "instance.spec.image",
            ),
            (
                Box::new(|s| s.image = "centos-7".into()),
                "instance.spec.image",
            ),
            (
                Box::new(|s| {
                    s.image = "centos-7".into();
                    s.constraints.required_traits = vec!["arch:aarch64".parse().expect("trait")];
                }),
                "instance.spec.image",
            ),
            (
                Box::new(|s| {
                    let t: yunshu_core::traits::Trait = "xinchuang".parse().expect("trait");
                    s.constraints.required_traits = vec![t.clone()];
                    s.constraints.forbidden_traits = vec![t];
                }),
                "instance.spec.constraints.forbidden_traits",
            ),
            (
                Box::new(|s| s.constraints.zone = Some("Zone A".into())),
                "instance.spec.constraints.zone",
            ),
        ];
        for (i, (mutate, field)) in cases.into_iter().enumerate() {
            let mut s = spec();
            mutate(&mut s);
            let v = check(&s);
            if i == 4 {
                assert!(
                    v.is_empty(),
                    "centos-7 without an arch requirement is fine: {v:?}"
                );
                continue;
            }
            assert!(
                v.iter().any(|v| v.field == field),
                "case {i}: expected {field}, got {v:?}"
            );
        }
    }
}
