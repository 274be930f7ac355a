//! PlacementPolicy: how the scheduler filters and scores (cluster-scoped).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use yunshu_core::model as core;

use crate::{Condition, condition::convert as conditions, schema};

/// Spread work out or pack it tight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Prefer the least allocated foundation.
    #[default]
    Spread,
    /// Prefer the most allocated foundation that fits.
    Binpack,
}

/// Weights of each score, each in [0, 100]; absent weights take the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Weights {
    /// Allocation (spread or bin-pack); default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub allocation: Option<f64>,
    /// Tariff; default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub cost: Option<f64>,
    /// PUE / carbon; default 0.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub energy: Option<f64>,
    /// Group affinity and anti-affinity; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub affinity: Option<f64>,
    /// API error rate and latency; default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub api_health: Option<f64>,
}

/// Scheduler settings: the default policy (no department) or a department's own.
// Each printcolumn(...) repeats `name`/`type_`, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "yunshu.io",
    version = "v1alpha1",
    kind = "PlacementPolicy",
    plural = "placementpolicies",
    shortname = "ppol",
    category = "yunshu",
    status = "PlacementPolicyStatus",
    derive = "PartialEq",
    doc = "How the scheduler filters and scores foundations, by default or for one department.",
    printcolumn(name = "Department", type_ = "string", json_path = ".spec.department"),
    printcolumn(name = "Strategy", type_ = "string", json_path = ".spec.strategy"),
    printcolumn(
        name = "Synced",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Synced\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PlacementPolicySpec {
    /// The department it applies to; absent for the default policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::dns_label")]
    pub department: Option<String>,
    /// Spread or bin-pack.
    #[serde(default)]
    pub strategy: Strategy,
    /// Score weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
    /// Whether Degraded foundations may still be chosen.
    #[serde(default)]
    pub allow_degraded: bool,
}

/// What the operator observed of the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementPolicyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// Synced.
    #[serde(default)]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
}

impl From<PlacementPolicySpec> for core::PlacementPolicySpec {
    fn from(s: PlacementPolicySpec) -> Self {
        let d = core::Weights::default();
        let w = s.weights.unwrap_or_default();
        Self {
            department: s.department,
            strategy: match s.strategy {
                Strategy::Spread => core::Strategy::Spread,
                Strategy::Binpack => core::Strategy::Binpack,
            },
            weights: core::Weights {
                allocation: w.allocation.unwrap_or(d.allocation),
                cost: w.cost.unwrap_or(d.cost),
                energy: w.energy.unwrap_or(d.energy),
                affinity: w.affinity.unwrap_or(d.affinity),
                api_health: w.api_health.unwrap_or(d.api_health),
            },
            allow_degraded: s.allow_degraded,
        }
    }
}

impl PlacementPolicyStatus {
    /// The CR status for a core status and the generation it describes.
    pub fn from_core(status: core::PlacementPolicyStatus, generation: i64) -> Self {
        Self {
            observed_generation: generation,
            conditions: conditions(status.conditions),
        }
    }
}
