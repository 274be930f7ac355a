//! Resource classes and amounts: what quotas limit, inventories hold and
//! objects are charged.

use std::{collections::BTreeMap, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::error::QuotaViolation;

/// A countable resource that quotas and inventories track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceClass {
    /// Virtual CPUs.
    Vcpu,
    /// Instance memory in MiB.
    MemoryMib,
    /// Instance root disk in GiB.
    DiskGib,
    /// Block volumes in GiB.
    VolumeGib,
    /// Number of buckets.
    Buckets,
    /// Bucket capacity in bytes.
    BucketBytes,
}

impl ResourceClass {
    /// Every class, in a fixed order (the index of [`Resources`]).
    pub const ALL: [ResourceClass; 6] = [
        Self::Vcpu,
        Self::MemoryMib,
        Self::DiskGib,
        Self::VolumeGib,
        Self::Buckets,
        Self::BucketBytes,
    ];

    /// The class's stable name, as used in configs, metrics and messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Vcpu => "vcpu",
            Self::MemoryMib => "memory_mib",
            Self::DiskGib => "disk_gib",
            Self::VolumeGib => "volume_gib",
            Self::Buckets => "buckets",
            Self::BucketBytes => "bucket_bytes",
        }
    }

    /// The position of this class in [`ResourceClass::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ResourceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceClass {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown resource class `{s}`"))
    }
}

/// An amount of every resource class; absent classes are zero.
///
/// Serialized as a map of the non-zero classes, e.g. `{"vcpu": 4, "memory_mib": 8192}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Resources([u64; 6]);

impl Resources {
    /// Nothing of anything.
    pub const ZERO: Resources = Resources([0; 6]);

    /// Resources from `(class, amount)` pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (ResourceClass, u64)>) -> Self {
        let mut r = Self::ZERO;
        for (c, v) in pairs {
            r.0[c.index()] = v;
        }
        r
    }

    /// The amount of `class`.
    pub const fn get(&self, class: ResourceClass) -> u64 {
        self.0[class.index()]
    }

    /// Sets the amount of `class`.
    pub fn set(&mut self, class: ResourceClass, amount: u64) {
        self.0[class.index()] = amount;
    }

    /// Whether every class is zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0)
    }

    /// The non-zero classes and their amounts.
    pub fn iter(&self) -> impl Iterator<Item = (ResourceClass, u64)> + '_ {
        ResourceClass::ALL
            .into_iter()
            .map(|c| (c, self.get(c)))
            .filter(|(_, v)| *v != 0)
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(&self, other: &Resources) -> Option<Resources> {
        let mut out = [0; 6];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.0[i].checked_add(other.0[i])?;
        }
        Some(Resources(out))
    }

    /// `self - other`, flooring at zero.
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        let mut out = [0; 6];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.0[i].saturating_sub(other.0[i]);
        }
        Resources(out)
    }

    /// The larger amount of each class.
    #[must_use]
    pub fn max(&self, other: &Resources) -> Resources {
        let mut out = [0; 6];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.0[i].max(other.0[i]);
        }
        Resources(out)
    }

    /// Whether `self` holds at least `other` in every class.
    pub fn covers(&self, other: &Resources) -> bool {
        self.0.iter().zip(other.0).all(|(a, b)| *a >= b)
    }
}

impl Serialize for Resources {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter().map(|(c, v)| (c.as_str(), v)))
    }
}

impl<'de> Deserialize<'de> for Resources {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = BTreeMap::<ResourceClass, u64>::deserialize(d)?;
        Ok(Self::from_pairs(m))
    }
}

/// Per-class limits; a class with no limit is unlimited, a limit of 0 allows none.
pub type Limits = BTreeMap<ResourceClass, u64>;

/// Checks that `used + requested` stays within `limits`, naming every class that would not.
pub fn check_quota(
    limits: &Limits,
    used: &Resources,
    requested: &Resources,
) -> Result<(), Vec<QuotaViolation>> {
    let violations: Vec<_> = limits
        .iter()
        .filter_map(|(&class, &limit)| {
            let (u, r) = (used.get(class), requested.get(class));
            (r > 0 && u.saturating_add(r) > limit).then_some(QuotaViolation {
                class,
                requested: r,
                used: u,
                limit,
            })
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn max_and_covers_go_class_by_class() {
        let a = Resources::from_pairs([(ResourceClass::Vcpu, 4), (ResourceClass::MemoryMib, 2048)]);
        let b = Resources::from_pairs([(ResourceClass::Vcpu, 2), (ResourceClass::MemoryMib, 8192)]);
        let m = a.max(&b);
        assert_eq!(m.get(ResourceClass::Vcpu), 4);
        assert_eq!(m.get(ResourceClass::MemoryMib), 8192);
        assert!(m.covers(&a) && m.covers(&b));
        assert!(!a.covers(&b) && !b.covers(&a));
        assert!(a.covers(&Resources::ZERO));
    }

    #[test]
    fn serializes_non_zero_classes_only() {
        let r = Resources::from_pairs([(ResourceClass::Vcpu, 4), (ResourceClass::MemoryMib, 8192)]);
        let json = serde_json::to_string(&r).expect("serialize");
        assert_eq!(json, r#"{"vcpu":4,"memory_mib":8192}"#);
        let back: Resources = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, r);
    }

    #[test]
    fn unknown_class_is_rejected() {
        assert!(serde_json::from_str::<Resources>(r#"{"gpu":1}"#).is_err());
    }

    #[test]
    fn quota_names_each_class_over_limit() {
        let limits = Limits::from([(ResourceClass::Vcpu, 48), (ResourceClass::MemoryMib, 1024)]);
        let used = Resources::from_pairs([(ResourceClass::Vcpu, 44)]);
        let req = Resources::from_pairs([(ResourceClass::Vcpu, 16), (ResourceClass::DiskGib, 900)]);
        let v = check_quota(&limits, &used, &req).expect_err("over quota");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].to_string(), "vcpu requested 16, used 44, limit 48");
        let ok = Resources::from_pairs([(ResourceClass::Vcpu, 4)]);
        assert!(check_quota(&limits, &used, &ok).is_ok());
    }

    proptest! {
        #[test]
        fn add_then_sub_round_trips(a in prop::array::uniform6(0u64..1 << 40), b in prop::array::uniform6(0u64..1 << 40)) {
            let (a, b) = (Resources(a), Resources(b));
            let sum = a.checked_add(&b).expect("no overflow below 2^41");
            prop_assert_eq!(sum.saturating_sub(&b), a);
        }
    }
}
