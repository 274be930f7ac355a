//! The state metrics, computed at scrape time from the [`StoreView`]:
//! foundation health, capacity and allocation, department quota and usage,
//! and department resources counted per kind, phase and foundation.
//!
//! Labels are bounded by what admins declare (foundations, departments,
//! resource classes) and by fixed sets (kinds, phases, health states); no
//! label ever names a department resource, so 10,000 resources make no more
//! series than ten.

use std::{collections::BTreeMap, fmt, sync::Arc};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{MetricType, gauge::ConstGauge},
};
use yunshu_core::{
    meta::Kind,
    model::{Health, Phase},
    resources::ResourceClass,
};

use super::view::{StoreView, ViewState};

/// Every health state, as the `state` label names them.
const HEALTH_STATES: [(Health, &str); 4] = [
    (Health::Unknown, "Unknown"),
    (Health::Ready, "Ready"),
    (Health::Degraded, "Degraded"),
    (Health::Down, "Down"),
];

/// Phases in which an object is on its way somewhere; their oldest object's
/// age is exported so a stuck one shows.
const MOVING: [Phase; 4] = [
    Phase::Pending,
    Phase::Scheduled,
    Phase::Provisioning,
    Phase::Deleting,
];

/// The label value of a phase.
pub(crate) const fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Unschedulable => "Unschedulable",
        Phase::Scheduled => "Scheduled",
        Phase::Provisioning => "Provisioning",
        Phase::Ready => "Ready",
        Phase::Failed => "Failed",
        Phase::Deleting => "Deleting",
    }
}

/// The label value of a department resource kind.
const fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Instance => "instance",
        Kind::Volume => "volume",
        Kind::Bucket => "bucket",
        Kind::Foundation => "foundation",
        Kind::Department => "department",
        Kind::PlacementPolicy => "placementpolicy",
    }
}

/// The foundation label of an object not placed anywhere.
pub(crate) const UNPLACED: &str = "none";

/// Encodes the state families on each scrape.
#[derive(Debug)]
pub(crate) struct StateCollector {
    view: Arc<StoreView>,
    clock: fn() -> i64,
}

impl StateCollector {
    /// A collector over `view`.
    pub fn new(view: Arc<StoreView>) -> Self {
        Self {
            view,
            clock: unix_now,
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One family of gauges: descriptor, then one sample per label set.
fn gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

type Labels<'a, const N: usize> = [(&'static str, &'a str); N];

/// Lossless for every amount below 2^53, which covers any real inventory.
#[allow(clippy::cast_precision_loss)]
fn float(v: u64) -> f64 {
    v as f64
}

/// The aggregates of one scrape, computed under the view's lock.
struct Aggregates {
    /// (kind, phase, foundation) → count.
    resources: BTreeMap<(&'static str, &'static str, String), u64>,
    /// (kind, phase) → oldest `since`, for the moving phases.
    oldest: BTreeMap<(&'static str, &'static str), i64>,
}

fn aggregate(state: &ViewState) -> Aggregates {
    let mut counts: BTreeMap<(&'static str, &'static str, &str), u64> = BTreeMap::new();
    let mut oldest = BTreeMap::new();
    for (_, o) in state.objects.values() {
        let (kind, phase) = (kind_name(o.kind), phase_name(o.phase));
        let foundation = o.foundation.as_deref().unwrap_or(UNPLACED);
        *counts.entry((kind, phase, foundation)).or_default() += 1;
        if MOVING.contains(&o.phase) {
            let e = oldest.entry((kind, phase)).or_insert(o.since);
            *e = (*e).min(o.since);
        }
    }
    Aggregates {
        resources: counts
            .into_iter()
            .map(|((k, p, f), n)| ((k, p, f.to_owned()), n))
            .collect(),
        oldest,
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let now = (self.clock)();
        self.view.read(|state| {
            if !state.synced {
                return Ok(());
            }
            encode_foundations(&mut encoder, state)?;
            encode_departments(&mut encoder, state)?;
            let agg = aggregate(state);
            gauges(
                &mut encoder,
                "resources",
                "Department resources by kind, phase and foundation (`none` when not placed)",
                agg.resources.iter().map(|((kind, phase, foundation), n)| {
                    let l: Labels<3> = [
                        ("kind", kind),
                        ("phase", phase),
                        ("foundation", foundation.as_str()),
                    ];
                    (l, float(*n))
                }),
            )?;
            gauges(
                &mut encoder,
                "resources_oldest_seconds",
                "Age of the oldest resource per kind in Pending, Scheduled or Provisioning (since creation) and Deleting (since the deletion request)",
                agg.oldest.iter().map(|((kind, phase), since)| {
                    let l: Labels<2> = [("kind", kind), ("phase", phase)];
                    (l, float(u64::try_from(now - since).unwrap_or(0)))
                }),
            )
        })
    }
}

fn encode_foundations(encoder: &mut DescriptorEncoder, state: &ViewState) -> fmt::Result {
    let fs = &state.foundations;
    gauges(
        encoder,
        "foundation_up",
        "1 when the foundation is Ready or Degraded, else 0",
        fs.iter().map(|(name, (_, f))| {
            let up = matches!(f.health, Health::Ready | Health::Degraded);
            let l: Labels<2> = [("foundation", name), ("adapter", f.adapter)];
            (l, if up { 1.0 } else { 0.0 })
        }),
    )?;
    gauges(
        encoder,
        "foundation_health",
        "The foundation's health: 1 for the current state, 0 for the others",
        fs.iter().flat_map(|(name, (_, f))| {
            HEALTH_STATES.iter().map(move |(h, s)| {
                let l: Labels<2> = [("foundation", name), ("state", s)];
                (l, if *h == f.health { 1.0 } else { 0.0 })
            })
        }),
    )?;
    gauges(
        encoder,
        "foundation_probe_latency_seconds",
        "API latency measured by the foundation's last probe",
        fs.iter().filter_map(|(name, (_, f))| {
            let l: Labels<1> = [("foundation", name)];
            f.probe_latency.map(|s| (l, s))
        }),
    )?;
    gauges(
        encoder,
        "foundation_info",
        "The foundation's adapter and CPU architecture; always 1",
        fs.iter().map(|(name, (_, f))| {
            let l: Labels<3> = [
                ("foundation", name),
                ("adapter", f.adapter),
                ("arch", f.arch),
            ];
            (l, 1.0)
        }),
    )?;
    let mut rows = Vec::new();
    for (name, (_, f)) in fs {
        let allocated = state.allocations.get(name).map(|(_, a)| *a);
        for (class, record) in &f.inventory {
            let used = allocated.map_or(0, |a| a.get(*class));
            for (kind, value) in [
                ("total", record.total),
                ("reserved", record.reserved),
                ("capacity", record.capacity()),
                ("allocated", used),
            ] {
                let l: Labels<3> = [
                    ("foundation", name.as_str()),
                    ("class", class.as_str()),
                    ("type", kind),
                ];
                rows.push((l, float(value)));
            }
        }
    }
    gauges(
        encoder,
        "foundation_inventory",
        "Inventory per foundation and class: total, reserved, capacity ((total - reserved) × allocation ratio) and allocated by placement",
        rows,
    )
}

fn encode_departments(encoder: &mut DescriptorEncoder, state: &ViewState) -> fmt::Result {
    gauges(
        encoder,
        "department_quota",
        "The department's hard quota per class (classes without a limit are absent)",
        state.quotas.iter().flat_map(|(name, (_, limits))| {
            limits.iter().map(move |(class, limit)| {
                let l: Labels<2> = [("department", name), ("class", class.as_str())];
                (l, float(*limit))
            })
        }),
    )?;
    // Usage of every class that is limited or used, for every known department.
    let mut rows = Vec::new();
    for (name, (_, limits)) in &state.quotas {
        let usage = state.usage.get(name).map(|(_, u)| *u).unwrap_or_default();
        for class in ResourceClass::ALL {
            if limits.contains_key(&class) || usage.get(class) > 0 {
                let l: Labels<2> = [("department", name.as_str()), ("class", class.as_str())];
                rows.push((l, float(usage.get(class))));
            }
        }
    }
    gauges(
        encoder,
        "department_usage",
        "What the department's resources charge against its quota, per class",
        rows,
    )
}

#[cfg(test)]
mod tests {
    use yunshu_core::{
        codec,
        model::{Instance, InstanceSpec},
        store::{EventKind, KeyValue},
    };

    use super::*;

    fn kv(key: String, value: Vec<u8>, rev: i64) -> KeyValue {
        KeyValue {
            key,
            value,
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: None,
        }
    }

    fn instance(n: usize, phase: Phase, foundation: Option<&str>) -> KeyValue {
        let mut o = Instance::new(
            Some(&format!("d{}", n % 10)),
            &format!("vm-{n}"),
            InstanceSpec {
                vcpu: 1,
                memory_mib: 512,
                disk_gib: 1,
                image: "kylin-v10".into(),
                constraints: Default::default(),
                group: None,
                power: Default::default(),
            },
        );
        o.status.phase = phase;
        o.status.placement.foundation = foundation.map(str::to_owned);
        let key =
            yunshu_core::keys::object(Kind::Instance, o.meta.department.as_deref(), &o.meta.name);
        kv(
            key,
            codec::encode(&o).expect("encode"),
            i64::try_from(n).expect("small") + 1,
        )
    }

    fn render(state: ViewState) -> String {
        let view = Arc::new(StoreView::default());
        view.replace_for_tests(state);
        let mut registry = prometheus_client::registry::Registry::with_prefix("yunshu");
        registry.register_collector(Box::new(StateCollector::new(view)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        out
    }

    #[test]
    fn resources_aggregate_without_per_object_series() {
        let mut state = ViewState {
            synced: true,
            ..ViewState::default()
        };
        for n in 0..10_000 {
            let (phase, f) = match n % 3 {
                0 => (Phase::Scheduled, Some("kunpeng-1")),
                1 => (Phase::Pending, None),
                _ => (Phase::Ready, Some("x86-phase1")),
            };
            state.apply(EventKind::Put, &instance(n, phase, f));
        }
        let started = std::time::Instant::now();
        let text = render(state);
        eprintln!("10,000 resources rendered in {:?}", started.elapsed());
        let resources: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("yunshu_resources{"))
            .collect();
        assert_eq!(resources.len(), 3, "{text}");
        assert!(
            text.contains(
                r#"yunshu_resources{kind="instance",phase="Pending",foundation="none"} 3333"#
            ),
            "{text}"
        );
        let oldest = text
            .lines()
            .filter(|l| l.starts_with("yunshu_resources_oldest_seconds{"))
            .count();
        assert_eq!(oldest, 2, "Pending and Scheduled only: {text}");
    }

    #[test]
    fn deletes_and_stale_replays_keep_the_view_right() {
        let mut state = ViewState {
            synced: true,
            ..ViewState::default()
        };
        let a = instance(5, Phase::Pending, None);
        let newer = KeyValue {
            mod_revision: 50,
            ..instance(5, Phase::Scheduled, Some("f"))
        };
        state.apply(EventKind::Put, &newer);
        // A replayed older version does not win over the listed newer one.
        state.apply(EventKind::Put, &a);
        assert_eq!(
            state.objects.values().next().map(|(_, o)| o.phase),
            Some(Phase::Scheduled)
        );
        let gone = KeyValue {
            mod_revision: 51,
            value: Vec::new(),
            ..a
        };
        state.apply(EventKind::Delete, &gone);
        assert!(state.objects.is_empty());
        assert!(!render(state).contains("yunshu_resources{"));
    }

    #[test]
    fn foundations_and_departments_report_capacity_quota_and_usage() {
        use yunshu_core::{
            admission::UsageRecord,
            model::{AdapterKind, Budget, Department, DepartmentSpec, Foundation, FoundationSpec},
            resources::{ResourceClass::Vcpu, Resources},
        };
        use yunshu_placement::AllocationRecord;

        let mut state = ViewState {
            synced: true,
            ..ViewState::default()
        };
        let spec = FoundationSpec {
            adapter: AdapterKind::Openstack,
            endpoint: "http://127.0.0.1:5000/v3".into(),
            region: None,
            zones: vec![],
            credentials: None,
            traits: vec!["arch:aarch64".parse().expect("trait")],
            allocation_ratios: [(Vcpu, 2.0)].into(),
            tariff: Default::default(),
            pue: None,
            budget: Budget::default(),
            capacity: Some(Resources::from_pairs([(Vcpu, 32)])),
            settings: Default::default(),
        };
        let f = Foundation::new(None, "kunpeng-1", spec);
        let key = yunshu_core::keys::object(Kind::Foundation, None, "kunpeng-1");
        state.apply(
            EventKind::Put,
            &kv(key, codec::encode(&f).expect("encode"), 1),
        );
        let alloc = AllocationRecord {
            used: Resources::from_pairs([(Vcpu, 60)]),
            departments: Default::default(),
        };
        let key = yunshu_placement::keys::allocation("kunpeng-1");
        state.apply(
            EventKind::Put,
            &kv(key, codec::encode(&alloc).expect("encode"), 2),
        );
        let mut d = Department::new(None, "health", DepartmentSpec::default());
        d.spec.quota.hard.insert(Vcpu, 48);
        let key = yunshu_core::keys::department("health");
        state.apply(
            EventKind::Put,
            &kv(key, codec::encode(&d).expect("encode"), 3),
        );
        let usage = UsageRecord {
            usage: Resources::from_pairs([(Vcpu, 44)]),
        };
        let key = yunshu_core::keys::usage("health");
        state.apply(
            EventKind::Put,
            &kv(key, codec::encode(&usage).expect("encode"), 4),
        );

        let text = render(state);
        for line in [
            r#"yunshu_foundation_up{foundation="kunpeng-1",adapter="openstack"} 1"#,
            r#"yunshu_foundation_health{foundation="kunpeng-1",state="Ready"} 1"#,
            r#"yunshu_foundation_health{foundation="kunpeng-1",state="Down"} 0"#,
            r#"yunshu_foundation_info{foundation="kunpeng-1",adapter="openstack",arch="aarch64"} 1"#,
            r#"yunshu_foundation_inventory{foundation="kunpeng-1",class="vcpu",type="total"} 32"#,
            r#"yunshu_foundation_inventory{foundation="kunpeng-1",class="vcpu",type="capacity"} 64"#,
            r#"yunshu_foundation_inventory{foundation="kunpeng-1",class="vcpu",type="allocated"} 60"#,
            r#"yunshu_department_quota{department="health",class="vcpu"} 48"#,
            r#"yunshu_department_usage{department="health",class="vcpu"} 44"#,
        ] {
            assert!(text.contains(line), "missing {line}:\n{text}");
        }
        // Declared capacity is never probed: no latency to report.
        assert!(
            !text.contains("yunshu_foundation_probe_latency_seconds{"),
            "{text}"
        );
    }

    #[test]
    fn nothing_is_reported_before_the_first_list() {
        assert_eq!(render(ViewState::default()).trim(), "# EOF");
    }
}
