//! PlacementPolicy: how the scheduler filters and scores.

use serde::{Deserialize, Serialize};

use crate::meta::{Condition, Kind, Object, Spec};

/// Spread work out or pack it tight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Prefer the least allocated foundation.
    #[default]
    Spread,
    /// Prefer the most allocated foundation that fits.
    Binpack,
}

/// Weights of each score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Weights {
    /// Allocation (spread or bin-pack).
    pub allocation: f64,
    /// Tariff.
    pub cost: f64,
    /// PUE / carbon.
    pub energy: f64,
    /// Group affinity and anti-affinity.
    pub affinity: f64,
    /// API error rate and latency.
    pub api_health: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            allocation: 1.0,
            cost: 0.5,
            energy: 0.2,
            affinity: 1.0,
            api_health: 0.5,
        }
    }
}

/// A placement policy: the default one (no department) or a department's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementPolicySpec {
    /// The department it applies to; `None` for the default policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Spread or bin-pack.
    #[serde(default)]
    pub strategy: Strategy,
    /// Score weights.
    #[serde(default)]
    pub weights: Weights,
    /// Whether Degraded foundations may still be chosen.
    #[serde(default)]
    pub allow_degraded: bool,
}

/// A policy's observed state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlacementPolicyStatus {
    /// Synced.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl Spec for PlacementPolicySpec {
    const KIND: Kind = Kind::PlacementPolicy;
    type Status = PlacementPolicyStatus;
}

/// A placement policy object.
pub type PlacementPolicy = Object<PlacementPolicySpec>;
