//! The bench's world: a city's foundations (x86 phase-1 and phase-2,
//! Kunpeng, Phytium "PK", S3) in core types, departments with allowed lists
//! and per-foundation quotas, and a request mix of 70% repeated shapes and
//! 30% unique ones, of which 10% are made infeasible on purpose.
//! Deterministic: everything comes from a seeded SplitMix64.

use std::collections::BTreeMap;

use yunshu_core::{
    meta::Kind,
    model::{
        AdapterKind, Budget, DepartmentSpec, FoundationSpec, FoundationStatus, Group, GroupPolicy,
        Health, InventoryRecord, Quota,
    },
    resources::{ResourceClass, Resources},
    traits::Trait,
};
use yunshu_scheduler::{GroupRequest, Request};

/// SplitMix64: small, fast, good enough for workloads.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A foundation in core types, as the store would hold it.
pub struct Foundation {
    pub name: String,
    pub spec: FoundationSpec,
    pub status: FoundationStatus,
    pub kinds: Vec<Kind>,
    pub error_rate: f64,
}

/// A department and its usage per foundation.
pub struct Department {
    pub spec: DepartmentSpec,
    pub usage: BTreeMap<String, Resources>,
}

/// One request and the department it comes from.
pub struct Job {
    pub department: usize,
    pub request: Request,
}

pub struct World {
    pub foundations: Vec<Foundation>,
    pub departments: Vec<Department>,
    pub jobs: Vec<Job>,
    /// How many jobs were made infeasible on purpose.
    pub sabotaged: usize,
}

fn traits(ts: &[&str]) -> Vec<Trait> {
    ts.iter().filter_map(|t| t.parse().ok()).collect()
}

/// (name prefix, traits, vCPU allocation ratio, PUE, price per vCPU-hour).
const PROFILES: [(&str, &[&str], f64, f64, f64); 5] = [
    (
        "phase1",
        &["arch:x86_64", "cpu:intel", "security-level:2"],
        4.0,
        1.65,
        0.060,
    ),
    (
        "phase2",
        &["arch:x86_64", "cpu:hygon", "xinchuang", "security-level:3"],
        3.0,
        1.45,
        0.075,
    ),
    (
        "kunpeng",
        &[
            "arch:aarch64",
            "cpu:kunpeng",
            "os:kylin",
            "os:openeuler",
            "xinchuang",
            "security-level:3",
        ],
        2.0,
        1.30,
        0.070,
    ),
    (
        "pk",
        &[
            "arch:aarch64",
            "cpu:phytium",
            "os:kylin",
            "xinchuang",
            "security-level:3",
        ],
        2.0,
        1.35,
        0.065,
    ),
    ("s3", &["xinchuang", "security-level:3"], 1.0, 1.40, 0.0),
];

fn foundation(rng: &mut Rng, i: usize) -> Foundation {
    let (prefix, ts, ratio, pue, vcpu_price) = PROFILES[i % PROFILES.len()];
    let name = format!("{prefix}-{:02}", i / PROFILES.len() + 1);
    let s3 = prefix == "s3";
    let zones: Vec<String> = ["az1", "az2", "az3"]
        .iter()
        .filter(|_| rng.chance(70))
        .map(|z| (*z).to_owned())
        .collect();
    let mut tariff = BTreeMap::new();
    let mut inventory = BTreeMap::new();
    let mut rec = |rng: &mut Rng, class, total: u64, ratio: f64, max_unit: u64| {
        let capacity = (total as f64 * ratio) as u64;
        let used = capacity * (20 + rng.below(76)) / 100;
        let max_unit = max_unit.min(capacity - used);
        inventory.insert(
            class,
            InventoryRecord {
                total,
                reserved: 0,
                allocation_ratio: ratio,
                used,
                max_unit,
            },
        );
    };
    if s3 {
        rec(rng, ResourceClass::Buckets, 10_000, 1.0, 10_000);
        rec(rng, ResourceClass::BucketBytes, 1 << 50, 1.0, 1 << 50);
        tariff.insert(ResourceClass::BucketBytes, 2e-14);
    } else {
        let vcpus = 512 * (1 + rng.below(8));
        // One host in ten is badly fragmented: plenty free, in small pieces.
        let max_vcpu = if rng.chance(10) {
            *rng.pick(&[2, 4])
        } else {
            *rng.pick(&[16, 32, 64])
        };
        rec(rng, ResourceClass::Vcpu, vcpus, ratio, max_vcpu);
        rec(
            rng,
            ResourceClass::MemoryMib,
            vcpus * 4096,
            1.0,
            max_vcpu * 8192,
        );
        rec(rng, ResourceClass::DiskGib, 200_000, 1.0, 4_000);
        rec(rng, ResourceClass::VolumeGib, 500_000, 1.0, 16_000);
        tariff.insert(ResourceClass::Vcpu, vcpu_price * (0.9 + 0.2 * rng.unit()));
        tariff.insert(ResourceClass::MemoryMib, 0.000_01);
        tariff.insert(ResourceClass::VolumeGib, 0.000_4);
    }
    let health = match rng.below(100) {
        0..=84 => Health::Ready,
        85..=94 => Health::Degraded,
        _ => Health::Down,
    };
    Foundation {
        spec: FoundationSpec {
            adapter: if s3 {
                AdapterKind::S3
            } else {
                AdapterKind::Openstack
            },
            endpoint: format!("https://{name}.gov.invalid"),
            region: Some("city".into()),
            zones,
            credentials: None,
            traits: traits(ts),
            allocation_ratios: BTreeMap::new(),
            tariff,
            pue: Some(pue + 0.1 * rng.unit()),
            budget: Budget::default(),
            capacity: None,
            settings: BTreeMap::new(),
        },
        status: FoundationStatus {
            health,
            api_latency_ms: Some(20.0 + 280.0 * rng.unit()),
            inventory,
            ..FoundationStatus::default()
        },
        kinds: if s3 {
            vec![Kind::Bucket]
        } else {
            vec![Kind::Instance, Kind::Volume]
        },
        error_rate: 0.05 * rng.unit(),
        name,
    }
}

fn department(rng: &mut Rng, foundations: &[Foundation]) -> Department {
    let mut spec = DepartmentSpec::default();
    if rng.chance(50) {
        spec.allowed_foundations = foundations
            .iter()
            .filter(|_| rng.chance(70))
            .map(|f| f.name.clone())
            .collect();
    }
    let mut quota = Quota::default();
    let mut usage = BTreeMap::new();
    for f in foundations {
        if !rng.chance(30) {
            continue;
        }
        let limit = 64 * (1 + rng.below(8));
        quota.per_foundation.insert(
            f.name.clone(),
            BTreeMap::from([(ResourceClass::Vcpu, limit)]),
        );
        usage.insert(
            f.name.clone(),
            Resources::from_pairs([(ResourceClass::Vcpu, limit * rng.below(95) / 100)]),
        );
    }
    spec.quota = quota;
    Department { spec, usage }
}

/// The repeated shapes: (vCPU, GiB of memory, GiB of disk, required traits).
const SHAPES: [(u64, u64, u64, &[&str]); 12] = [
    (2, 4, 40, &[]),
    (4, 8, 80, &[]),
    (8, 16, 100, &[]),
    (2, 4, 40, &["xinchuang"]),
    (4, 8, 80, &["xinchuang"]),
    (8, 32, 200, &["xinchuang", "security-level:3"]),
    (4, 16, 100, &["arch:aarch64"]),
    (8, 16, 100, &["cpu:kunpeng"]),
    (4, 8, 80, &["os:kylin"]),
    (16, 64, 500, &["arch:x86_64"]),
    (2, 8, 40, &["cpu:phytium", "os:kylin"]),
    (32, 128, 1000, &[]),
];

const EXTRA_TRAITS: [&str; 8] = [
    "arch:aarch64",
    "arch:x86_64",
    "xinchuang",
    "os:kylin",
    "security-level:2",
    "security-level:3",
    "cpu:kunpeng",
    "cpu:hygon",
];

fn instance(vcpu: u64, mem_gib: u64, disk: u64) -> Request {
    Request::new(
        Kind::Instance,
        Resources::from_pairs([
            (ResourceClass::Vcpu, vcpu),
            (ResourceClass::MemoryMib, mem_gib * 1024),
            (ResourceClass::DiskGib, disk),
        ]),
    )
}

fn job(rng: &mut Rng, foundations: &[Foundation], departments: usize, has_s3: bool) -> (Job, bool) {
    let mut r = if rng.chance(70) {
        // A repeated shape: one of a dozen catalogue entries, or a volume or bucket.
        match rng.below(20) {
            0..=15 => {
                let (vcpu, mem, disk, ts) = *rng.pick(&SHAPES);
                let mut r = instance(vcpu, mem, disk);
                r.required_traits = traits(ts);
                r
            }
            16..=18 => Request::new(
                Kind::Volume,
                Resources::from_pairs([(ResourceClass::VolumeGib, 100 * (1 + rng.below(4)))]),
            ),
            _ if has_s3 => Request::new(
                Kind::Bucket,
                Resources::from_pairs([
                    (ResourceClass::Buckets, 1),
                    (ResourceClass::BucketBytes, 1 << 40),
                ]),
            ),
            _ => instance(2, 4, 40),
        }
    } else {
        // A unique shape.
        let vcpu = 1 + rng.below(24);
        let mut r = instance(
            vcpu,
            vcpu * (1 + rng.below(8)) + rng.below(4),
            20 + rng.below(500),
        );
        r.required_traits = traits(&[*rng.pick(&EXTRA_TRAITS)]);
        if rng.chance(20) {
            r.forbidden_traits = traits(&[*rng.pick(&["cpu:hygon", "cpu:intel", "os:openeuler"])]);
        }
        if rng.chance(20) {
            r.zone = Some((*rng.pick(&["az1", "az2", "az3"])).to_owned());
        }
        r
    };
    if r.kind == Kind::Instance && rng.chance(20) {
        let policy = if rng.chance(50) {
            GroupPolicy::Affinity
        } else {
            GroupPolicy::AntiAffinity
        };
        let members = (0..rng.below(6))
            .map(|_| rng.pick(foundations).name.clone())
            .collect();
        r.group = Some(GroupRequest {
            group: Group {
                name: "web".into(),
                policy,
            },
            members,
        });
    }
    let sabotaged = rng.chance(10);
    if sabotaged {
        match rng.below(4) {
            0 => r.resources.set(ResourceClass::Vcpu, 256),
            1 => r.required_traits = traits(&["gpu:a100"]),
            2 => r.zone = Some("az9".into()),
            _ => r.required_traits = traits(&["arch:aarch64", "arch:x86_64"]),
        }
        if r.kind != Kind::Instance {
            r.required_traits = traits(&["gpu:a100"]);
        }
    }
    let department = rng.below(departments as u64) as usize;
    (
        Job {
            department,
            request: r,
        },
        sabotaged,
    )
}

impl World {
    pub fn new(n: usize, jobs: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let foundations: Vec<_> = (0..n).map(|i| foundation(&mut rng, i)).collect();
        let departments: Vec<_> = (0..8).map(|_| department(&mut rng, &foundations)).collect();
        let has_s3 = foundations.iter().any(|f| f.kinds.contains(&Kind::Bucket));
        let (mut sabotaged, mut out) = (0, Vec::with_capacity(jobs));
        for _ in 0..jobs {
            let (j, s) = job(&mut rng, &foundations, departments.len(), has_s3);
            sabotaged += usize::from(s);
            out.push(j);
        }
        Self {
            foundations,
            departments,
            jobs: out,
            sabotaged,
        }
    }
}
