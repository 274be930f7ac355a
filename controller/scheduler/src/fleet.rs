//! The candidate foundations in the compact, index-addressed form the
//! scheduler decides over.
//!
//! A [`Fleet`] is built from core types once and reused for many decisions:
//! traits, zones and regions are interned, each foundation's traits become a
//! bitset, inventory becomes a fixed array indexed by [`ResourceClass`], and
//! the request-independent scores (energy, API health) are computed up front.
//! Foundations are kept sorted by name, so an index order is a name order and
//! the deterministic tie-break is "lowest index".

use yunshu_core::{
    meta::Kind,
    model::{FoundationSpec, FoundationStatus, Health, InventoryRecord},
    resources::ResourceClass,
};

use crate::score;

/// One foundation as the caller knows it, borrowed from core types.
#[derive(Debug, Clone, Copy)]
pub struct FoundationInput<'a> {
    /// The foundation's name.
    pub name: &'a str,
    /// Its declared specification (traits, zones, region, tariff, PUE).
    pub spec: &'a FoundationSpec,
    /// Its observed state (health, latency, inventory).
    pub status: &'a FoundationStatus,
    /// The kinds its adapter can create (`Capabilities::kinds`).
    pub kinds: &'a [Kind],
    /// The fraction of recent adapter calls that failed, in `[0, 1]`.
    pub api_error_rate: f64,
}

/// One resource class of a candidate's inventory, with capacity precomputed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassInventory {
    /// Whether the foundation reports this class at all.
    pub present: bool,
    /// `(total - reserved) * allocation_ratio`.
    pub capacity: u64,
    /// Allocated.
    pub used: u64,
    /// The largest amount one request can get on a single host.
    pub max_unit: u64,
}

impl ClassInventory {
    /// From a core inventory record.
    pub fn from_record(r: &InventoryRecord) -> Self {
        Self {
            present: true,
            capacity: r.capacity(),
            used: r.used,
            max_unit: r.max_unit,
        }
    }

    /// What is still free.
    pub const fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.used)
    }
}

/// A candidate foundation in compact form.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub(crate) name: Box<str>,
    pub(crate) kinds: u8,
    pub(crate) health: Health,
    pub(crate) region: Option<u32>,
    pub(crate) zones: Box<[u32]>,
    pub(crate) traits: Box<[u64]>,
    pub(crate) security_level: Option<u8>,
    pub(crate) inventory: [ClassInventory; 6],
    pub(crate) tariff: [f64; 6],
    pub(crate) energy: f64,
    pub(crate) api_health: f64,
}

impl Candidate {
    /// The foundation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its health.
    pub const fn health(&self) -> Health {
        self.health
    }

    /// Its inventory of `class`.
    pub const fn inventory(&self, class: ResourceClass) -> &ClassInventory {
        &self.inventory[class.index()]
    }

    pub(crate) const fn supports(&self, kind: Kind) -> bool {
        self.kinds & kind_bit(kind) != 0
    }

    pub(crate) fn has_trait(&self, id: u32) -> bool {
        let word = (id / 64) as usize;
        self.traits
            .get(word)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn observe(&mut self, status: &FoundationStatus, api_error_rate: f64) {
        self.health = status.health;
        self.inventory = [ClassInventory::default(); 6];
        for (class, record) in &status.inventory {
            self.inventory[class.index()] = ClassInventory::from_record(record);
        }
        self.api_health = score::api_health(api_error_rate, status.api_latency_ms);
    }
}

const fn kind_bit(kind: Kind) -> u8 {
    1 << (kind as u8)
}

/// A sorted, de-duplicated table of names; a name's id is its position.
#[derive(Debug, Clone, Default)]
pub(crate) struct Interner(Vec<Box<str>>);

impl Interner {
    fn new<'a>(names: impl Iterator<Item = &'a str>) -> Self {
        let mut v: Vec<Box<str>> = names.map(Box::from).collect();
        v.sort_unstable();
        v.dedup();
        Self(v)
    }

    pub(crate) fn id(&self, name: &str) -> Option<u32> {
        let i = self.0.binary_search_by(|s| (**s).cmp(name)).ok()?;
        u32::try_from(i).ok()
    }

    pub(crate) fn name(&self, id: u32) -> &str {
        self.0.get(id as usize).map_or("?", |s| s)
    }

    fn ids<'a>(&self, names: impl Iterator<Item = &'a str>) -> impl Iterator<Item = u32> {
        names.filter_map(|n| self.id(n))
    }
}

/// Every candidate foundation, sorted by name, plus the interned names.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) traits: Interner,
    pub(crate) zones: Interner,
    pub(crate) regions: Interner,
    fingerprint: u64,
}

impl Fleet {
    /// Builds a fleet. Foundations are sorted by name; of two with the same
    /// name the first is kept.
    pub fn new<'a>(inputs: impl IntoIterator<Item = FoundationInput<'a>>) -> Self {
        let mut inputs: Vec<FoundationInput<'a>> = inputs.into_iter().collect();
        inputs.sort_by(|a, b| a.name.cmp(b.name));
        inputs.dedup_by(|b, a| a.name == b.name);
        let traits = Interner::new(
            inputs
                .iter()
                .flat_map(|f| f.spec.traits.iter().map(|t| t.as_str())),
        );
        let zones = Interner::new(
            inputs
                .iter()
                .flat_map(|f| f.spec.zones.iter().map(String::as_str)),
        );
        let regions = Interner::new(inputs.iter().filter_map(|f| f.spec.region.as_deref()));
        let words = traits.0.len().div_ceil(64);
        let candidates = inputs
            .iter()
            .map(|f| {
                let mut bits = vec![0u64; words];
                for id in traits.ids(f.spec.traits.iter().map(|t| t.as_str())) {
                    bits[(id / 64) as usize] |= 1 << (id % 64);
                }
                let security_level = f
                    .spec
                    .traits
                    .iter()
                    .filter(|t| t.key() == "security-level")
                    .filter_map(|t| t.value()?.parse::<u8>().ok())
                    .max();
                let mut tariff = [0.0; 6];
                for (class, price) in &f.spec.tariff {
                    tariff[class.index()] = sanitize_price(*price);
                }
                let mut c = Candidate {
                    name: f.name.into(),
                    kinds: f.kinds.iter().fold(0, |acc, k| acc | kind_bit(*k)),
                    health: Health::Unknown,
                    region: f.spec.region.as_deref().and_then(|r| regions.id(r)),
                    zones: zones.ids(f.spec.zones.iter().map(String::as_str)).collect(),
                    traits: bits.into(),
                    security_level,
                    inventory: [ClassInventory::default(); 6],
                    tariff,
                    energy: score::energy(f.spec.pue),
                    api_health: 0.0,
                };
                c.observe(f.status, f.api_error_rate);
                c
            })
            .collect::<Vec<_>>();
        let fingerprint = fingerprint(candidates.iter().map(|c| &*c.name));
        Self {
            candidates,
            traits,
            zones,
            regions,
            fingerprint,
        }
    }

    /// How many foundations.
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// The candidates, in name order.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// The position of the foundation called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.candidates
            .binary_search_by(|c| (*c.name).cmp(name))
            .ok()
    }

    /// Replaces foundation `index`'s health, inventory and API figures with a
    /// fresh observation (e.g. after a probe or a committed allocation).
    /// Traits, zones and tariffs are part of the spec: rebuild the fleet when
    /// those change. Returns `false` if there is no such foundation.
    pub fn observe(
        &mut self,
        index: usize,
        status: &FoundationStatus,
        api_error_rate: f64,
    ) -> bool {
        self.candidates
            .get_mut(index)
            .map(|c| c.observe(status, api_error_rate))
            .is_some()
    }

    /// Replaces one class of foundation `index`'s inventory. Returns `false`
    /// if there is no such foundation.
    pub fn set_inventory(
        &mut self,
        index: usize,
        class: ResourceClass,
        record: &InventoryRecord,
    ) -> bool {
        self.candidates
            .get_mut(index)
            .map(|c| c.inventory[class.index()] = ClassInventory::from_record(record))
            .is_some()
    }

    /// A hash of the foundation names in order: two fleets with the same
    /// fingerprint address the same foundation by the same index.
    pub const fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

fn sanitize_price(p: f64) -> f64 {
    if p.is_finite() && p > 0.0 { p } else { 0.0 }
}

/// FNV-1a over the names, each followed by a 0 byte.
pub(crate) fn fingerprint<'a>(names: impl Iterator<Item = &'a str>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in names.flat_map(|n| n.bytes().chain([0])) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{F, fleet_of};

    #[test]
    fn sorts_by_name_and_keeps_the_first_duplicate() {
        let fleet = fleet_of(&[
            F::new("b").vcpu(10, 0, 4),
            F::new("a"),
            F::new("b").vcpu(99, 0, 4),
        ]);
        let names: Vec<_> = fleet.candidates().iter().map(Candidate::name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            fleet.candidates()[1]
                .inventory(ResourceClass::Vcpu)
                .capacity,
            10
        );
        assert_eq!(fleet.index_of("b"), Some(1));
        assert_eq!(fleet.index_of("c"), None);
    }

    #[test]
    fn interns_traits_and_reads_the_security_level() {
        let fleet = fleet_of(&[
            F::new("a").traits(&["arch:aarch64", "security-level:2", "security-level:3"]),
            F::new("b").traits(&["arch:x86_64"]),
        ]);
        let a = &fleet.candidates()[0];
        assert_eq!(a.security_level, Some(3));
        let arm = fleet.traits.id("arch:aarch64").expect("interned");
        assert!(a.has_trait(arm));
        assert!(!fleet.candidates()[1].has_trait(arm));
        assert!(!a.has_trait(1000), "ids past the bitset are absent");
    }

    #[test]
    fn observe_refreshes_inventory_and_health() {
        let mut fleet = fleet_of(&[F::new("a").vcpu(10, 0, 4)]);
        let status = FoundationStatus {
            health: Health::Down,
            ..FoundationStatus::default()
        };
        assert!(fleet.observe(0, &status, 0.0));
        assert!(!fleet.observe(7, &status, 0.0));
        let c = &fleet.candidates()[0];
        assert_eq!(c.health(), Health::Down);
        assert!(!c.inventory(ResourceClass::Vcpu).present);
        let record = InventoryRecord {
            total: 8,
            reserved: 0,
            allocation_ratio: 2.0,
            used: 6,
            max_unit: 4,
        };
        assert!(fleet.set_inventory(0, ResourceClass::Vcpu, &record));
        assert_eq!(
            fleet.candidates()[0].inventory(ResourceClass::Vcpu).free(),
            10
        );
    }

    #[test]
    fn fingerprint_depends_on_names_and_order() {
        let ab = fingerprint(["a", "b"].into_iter());
        assert_ne!(ab, fingerprint(["b", "a"].into_iter()));
        assert_ne!(ab, fingerprint(["ab"].into_iter()));
        assert_eq!(ab, fleet_of(&[F::new("b"), F::new("a")]).fingerprint());
    }
}
