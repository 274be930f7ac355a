//! The department's own view: quota and usage, and the catalog.

use std::io::{self, Write};

use serde::Serialize;
use yunshu_proto::api::v1::{self as pb, Health, ResourceClass, ResourceKind};

use crate::{
    resource::short_foundation,
    table::{Table, list},
    units::{format_bytes, format_gib, format_mib},
};

/// `GetQuotaResponse` as JSON/YAML.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaView {
    /// Overall limit and usage per class.
    pub resources: Vec<UsageView>,
    /// Per foundation.
    pub foundations: Vec<FoundationUsageView>,
}

/// One class's limit and usage.
#[derive(Debug, Clone, Serialize)]
pub struct UsageView {
    /// `vcpu`, `memory_mib`, `disk_gib`, `volume_gib`, `buckets`, `bucket_bytes`.
    pub resource_class: &'static str,
    /// The limit; `null` is unlimited.
    pub limit: Option<u64>,
    /// Units charged now.
    pub used: u64,
}

/// Limits and usage on one foundation.
#[derive(Debug, Clone, Serialize)]
pub struct FoundationUsageView {
    /// `foundations/{name}`.
    pub foundation: String,
    /// Per class.
    pub resources: Vec<UsageView>,
}

/// A resource class's name, as in quota messages.
pub const fn class_name(class: ResourceClass) -> &'static str {
    match class {
        ResourceClass::Unspecified => "unknown",
        ResourceClass::Vcpu => "vcpu",
        ResourceClass::MemoryMib => "memory_mib",
        ResourceClass::DiskGib => "disk_gib",
        ResourceClass::VolumeGib => "volume_gib",
        ResourceClass::Buckets => "buckets",
        ResourceClass::BucketBytes => "bucket_bytes",
    }
}

fn usage(u: &[pb::ResourceUsage]) -> Vec<UsageView> {
    u.iter()
        .map(|u| UsageView {
            resource_class: class_name(
                ResourceClass::try_from(u.resource_class).unwrap_or_default(),
            ),
            limit: u.limit,
            used: u.used,
        })
        .collect()
}

impl From<&pb::GetQuotaResponse> for QuotaView {
    fn from(q: &pb::GetQuotaResponse) -> Self {
        Self {
            resources: usage(&q.resources),
            foundations: q
                .foundations
                .iter()
                .map(|f| FoundationUsageView {
                    foundation: f.foundation.clone(),
                    resources: usage(&f.resources),
                })
                .collect(),
        }
    }
}

/// An amount of a class for people: `vcpu` stays a count, sizes get units.
fn amount(class: &str, n: u64) -> String {
    match class {
        "memory_mib" => format_mib(n),
        "disk_gib" | "volume_gib" => format_gib(n),
        "bucket_bytes" => format_bytes(n),
        _ => n.to_string(),
    }
}

/// A class's name for people.
fn class_label(class: &str) -> &str {
    match class {
        "memory_mib" => "memory",
        "disk_gib" => "disk",
        "volume_gib" => "volumes",
        "bucket_bytes" => "bucket bytes",
        other => other,
    }
}

/// Writes the quota table: one row per class overall, then per foundation.
pub fn render_quota(q: &QuotaView, w: &mut dyn Write) -> io::Result<()> {
    let mut t = Table::new(["SCOPE", "RESOURCE", "USED", "LIMIT", "FREE"]);
    let scopes = std::iter::once(("all", &q.resources)).chain(
        q.foundations
            .iter()
            .map(|f| (short_foundation(&f.foundation), &f.resources)),
    );
    for (scope, resources) in scopes {
        for u in resources {
            let c = u.resource_class;
            let (limit, free) = match u.limit {
                Some(l) => (amount(c, l), amount(c, l.saturating_sub(u.used))),
                None => ("unlimited".to_owned(), String::new()),
            };
            t.row([
                scope.to_owned(),
                class_label(c).to_owned(),
                amount(c, u.used),
                limit,
                free,
            ]);
        }
    }
    t.render(w)
}

/// `GetCatalogResponse` as JSON/YAML.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogView {
    /// Instance sizes.
    pub sizes: Vec<SizeView>,
    /// Logical images.
    pub images: Vec<ImageView>,
    /// Zones.
    pub zones: Vec<ZoneView>,
    /// Foundations the department may use.
    pub foundations: Vec<FoundationView>,
}

/// An instance size.
#[derive(Debug, Clone, Serialize)]
pub struct SizeView {
    /// E.g. `c4m8`.
    pub name: String,
    /// Virtual CPUs.
    pub vcpu: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Description.
    pub description: String,
}

/// A logical image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageView {
    /// E.g. `kylin-v10`.
    pub name: String,
    /// Description.
    pub description: String,
    /// `x86_64`, `aarch64`.
    pub architectures: Vec<String>,
}

/// A zone.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneView {
    /// Its name.
    pub name: String,
    /// `foundations/{name}` offering it.
    pub foundations: Vec<String>,
}

/// A foundation the department may use.
#[derive(Debug, Clone, Serialize)]
pub struct FoundationView {
    /// `foundations/{name}`.
    pub name: String,
    /// `x86_64`, `aarch64`, or empty for object storage.
    pub architecture: String,
    /// Its traits.
    pub traits: Vec<String>,
    /// Its zones.
    pub zones: Vec<String>,
    /// `instance`, `volume`, `bucket`.
    pub kinds: Vec<&'static str>,
    /// `Ready`, `Degraded`, `Down` or `Unknown`.
    pub health: &'static str,
}

impl From<&pb::GetCatalogResponse> for CatalogView {
    fn from(c: &pb::GetCatalogResponse) -> Self {
        Self {
            sizes: c
                .sizes
                .iter()
                .map(|s| SizeView {
                    name: s.name.clone(),
                    vcpu: s.vcpu,
                    memory_mib: s.memory_mib,
                    description: s.description.clone(),
                })
                .collect(),
            images: c
                .images
                .iter()
                .map(|i| ImageView {
                    name: i.name.clone(),
                    description: i.description.clone(),
                    architectures: i.architectures.clone(),
                })
                .collect(),
            zones: c
                .zones
                .iter()
                .map(|z| ZoneView {
                    name: z.name.clone(),
                    foundations: z.foundations.clone(),
                })
                .collect(),
            foundations: c
                .foundations
                .iter()
                .map(|f| FoundationView {
                    name: f.name.clone(),
                    architecture: f.architecture.clone(),
                    traits: f.traits.clone(),
                    zones: f.zones.clone(),
                    kinds: f
                        .kinds
                        .iter()
                        .map(|k| match ResourceKind::try_from(*k) {
                            Ok(ResourceKind::Instance) => "instance",
                            Ok(ResourceKind::Volume) => "volume",
                            Ok(ResourceKind::Bucket) => "bucket",
                            _ => "unknown",
                        })
                        .collect(),
                    health: match Health::try_from(f.health) {
                        Ok(Health::Ready) => "Ready",
                        Ok(Health::Degraded) => "Degraded",
                        Ok(Health::Down) => "Down",
                        _ => "Unknown",
                    },
                })
                .collect(),
        }
    }
}

/// Writes the catalog: sizes, images, zones and foundations, one table each.
pub fn render_catalog(c: &CatalogView, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "SIZES")?;
    let mut t = Table::new(["NAME", "VCPU", "MEMORY", "DESCRIPTION"]);
    for s in &c.sizes {
        t.row([
            s.name.clone(),
            s.vcpu.to_string(),
            format_mib(s.memory_mib),
            s.description.clone(),
        ]);
    }
    t.render(w)?;

    writeln!(w, "\nIMAGES")?;
    let mut t = Table::new(["NAME", "ARCHITECTURES", "DESCRIPTION"]);
    for i in &c.images {
        t.row([
            i.name.clone(),
            list(&i.architectures),
            i.description.clone(),
        ]);
    }
    t.render(w)?;

    writeln!(w, "\nZONES")?;
    if c.zones.is_empty() {
        writeln!(w, "(none)")?;
    } else {
        let mut t = Table::new(["NAME", "FOUNDATIONS"]);
        for z in &c.zones {
            let names: Vec<String> = z
                .foundations
                .iter()
                .map(|f| short_foundation(f).to_owned())
                .collect();
            t.row([z.name.clone(), list(&names)]);
        }
        t.render(w)?;
    }

    writeln!(w, "\nFOUNDATIONS")?;
    if c.foundations.is_empty() {
        writeln!(w, "(none)")?;
    } else {
        let mut t = Table::new(["NAME", "ARCH", "HEALTH", "KINDS", "ZONES", "TRAITS"]);
        for f in &c.foundations {
            let kinds: Vec<String> = f.kinds.iter().map(|k| (*k).to_owned()).collect();
            t.row([
                short_foundation(&f.name).to_owned(),
                f.architecture.clone(),
                f.health.to_owned(),
                list(&kinds),
                list(&f.zones),
                list(&f.traits),
            ]);
        }
        t.render(w)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_table_shows_units_and_free_room() {
        let q = pb::GetQuotaResponse {
            resources: vec![
                pb::ResourceUsage {
                    resource_class: ResourceClass::Vcpu.into(),
                    limit: Some(48),
                    used: 44,
                },
                pb::ResourceUsage {
                    resource_class: ResourceClass::MemoryMib.into(),
                    limit: None,
                    used: 8192,
                },
            ],
            foundations: vec![pb::FoundationUsage {
                foundation: "foundations/kunpeng-1".into(),
                resources: vec![pb::ResourceUsage {
                    resource_class: ResourceClass::Vcpu.into(),
                    limit: Some(16),
                    used: 0,
                }],
            }],
        };
        let view = QuotaView::from(&q);
        let mut out = Vec::new();
        render_quota(&view, &mut out).expect("renders");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "SCOPE       RESOURCE   USED   LIMIT       FREE\n\
             all         vcpu       44     48          4\n\
             all         memory     8Gi    unlimited   -\n\
             kunpeng-1   vcpu       0      16          16\n"
        );
        let v = serde_json::to_value(&view).expect("json");
        assert_eq!(v["resources"][0]["resource_class"], "vcpu");
        assert_eq!(v["resources"][1]["limit"], serde_json::Value::Null);
        assert_eq!(v["foundations"][0]["foundation"], "foundations/kunpeng-1");
    }

    #[test]
    fn catalog_sections() {
        let c = pb::GetCatalogResponse {
            sizes: vec![pb::CatalogSize {
                name: "c4m8".into(),
                vcpu: 4,
                memory_mib: 8192,
                description: "4 vCPU, 8 GiB".into(),
            }],
            images: vec![pb::CatalogImage {
                name: "kylin-v10".into(),
                description: "Kylin Advanced Server V10".into(),
                architectures: vec!["x86_64".into(), "aarch64".into()],
            }],
            zones: vec![],
            foundations: vec![pb::CatalogFoundation {
                name: "foundations/kunpeng-1".into(),
                architecture: "aarch64".into(),
                traits: vec!["arch:aarch64".into(), "xinchuang".into()],
                zones: vec![],
                kinds: vec![ResourceKind::Instance.into(), ResourceKind::Volume.into()],
                health: Health::Ready.into(),
            }],
        };
        let mut out = Vec::new();
        render_catalog(&CatalogView::from(&c), &mut out).expect("renders");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.contains("c4m8   4      8Gi      4 vCPU, 8 GiB"),
            "{text}"
        );
        assert!(
            text.contains("kylin-v10   x86_64,aarch64   Kylin Advanced Server V10"),
            "{text}"
        );
        assert!(text.contains("ZONES\n(none)"), "{text}");
        assert!(
            text.contains(
                "kunpeng-1   aarch64   Ready    instance,volume   -       arch:aarch64,xinchuang"
            ),
            "{text}"
        );
    }
}
