//! Foundation: one cloud that Yunshu drives through an adapter.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    meta::{Condition, Kind, Object, Spec},
    resources::{ResourceClass, Resources},
    traits::Trait,
};

/// Which adapter drives a foundation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// Keystone, Nova, Cinder, Glance, Placement.
    Openstack,
    /// An S3-compatible object store.
    S3,
    /// An out-of-process adapter speaking `yunshu.adapter.v1`.
    Remote,
}

/// Where a foundation's admin credentials are kept. They are never stored in
/// the object itself. Written by its fields alone:
/// `{ namespace: yunshu, name: x86-cloud-admin }` for a Secret,
/// `{ path: /etc/yunshu/x86-cloud.yaml }` for a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum CredentialsRef {
    /// A Kubernetes Secret.
    Secret {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// A file on the controller's filesystem.
    File {
        /// Its path.
        path: String,
    },
}

/// A per-foundation API rate budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// Sustained calls per second.
    pub requests_per_second: u32,
    /// Calls allowed in a burst.
    pub burst: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            requests_per_second: 10,
            burst: 20,
        }
    }
}

impl Budget {
    /// This budget with each field left 0 at its default: 0 means unset.
    #[must_use]
    pub fn or_defaults(self) -> Self {
        let d = Self::default();
        let pick = |v: u32, default: u32| if v == 0 { default } else { v };
        Self {
            requests_per_second: pick(self.requests_per_second, d.requests_per_second),
            burst: pick(self.burst, d.burst),
        }
    }
}

/// A foundation's declared specification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundationSpec {
    /// The adapter that drives it.
    pub adapter: AdapterKind,
    /// The adapter's endpoint (Keystone URL, S3 endpoint, remote adapter address).
    pub endpoint: String,
    /// The cloud's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The availability zones offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Where its admin credentials are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsRef>,
    /// Capability traits (`arch:aarch64`, `xinchuang`, …).
    #[serde(default)]
    pub traits: Vec<Trait>,
    /// Overcommit per class (1.0 when absent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocation_ratios: BTreeMap<ResourceClass, f64>,
    /// Price per unit-hour per class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tariff: BTreeMap<ResourceClass, f64>,
    /// Power usage effectiveness, for the energy score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pue: Option<f64>,
    /// API rate budget.
    #[serde(default)]
    pub budget: Budget,
    /// Declared inventory: used until the adapter probes, and afterwards for
    /// every class the probe does not measure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Resources>,
    /// Adapter-specific settings (e.g. the S3 admin dialect).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
}

/// How a foundation is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    /// Not probed yet.
    #[default]
    Unknown,
    /// Answering and usable.
    Ready,
    /// Answering badly; the scheduler avoids it.
    Degraded,
    /// Not answering.
    Down,
}

/// One resource class of a foundation's inventory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryRecord {
    /// Physical total.
    pub total: u64,
    /// Held back by the operator.
    pub reserved: u64,
    /// Overcommit ratio.
    pub allocation_ratio: f64,
    /// Allocated.
    pub used: u64,
    /// The largest amount one request can get on a single host.
    pub max_unit: u64,
}

impl InventoryRecord {
    /// `(total - reserved) * ratio`: what may be allocated in all.
    pub fn capacity(&self) -> u64 {
        let ratio = if self.allocation_ratio > 0.0 {
            self.allocation_ratio
        } else {
            1.0
        };
        // Truncation is intended: capacity is a whole number of units.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let cap = (self.total.saturating_sub(self.reserved) as f64 * ratio) as u64;
        cap
    }

    /// What is still free.
    pub fn free(&self) -> u64 {
        self.capacity().saturating_sub(self.used)
    }
}

/// A foundation's observed state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundationStatus {
    /// Health from the last probe.
    pub health: Health,
    /// Measured API latency of the last probe, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_latency_ms: Option<f64>,
    /// The share of recent adapter calls the cloud failed (0 to 1), as of
    /// the last probe; placement's API-health score reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_error_rate: Option<f64>,
    /// Inventory per class.
    #[serde(default)]
    pub inventory: BTreeMap<ResourceClass, InventoryRecord>,
    /// When it was last probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe: Option<DateTime<Utc>>,
    /// The resource kinds its adapter said at the last probe it can create
    /// (what a remote adapter serves is known only from it); empty before
    /// a probe, when placement goes by the adapter kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<Kind>,
    /// Ready, Synced.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl Spec for FoundationSpec {
    const KIND: Kind = Kind::Foundation;
    type Status = FoundationStatus;
}

/// A foundation object.
pub type Foundation = Object<FoundationSpec>;
