//! Standard status conditions, shaped as Kubernetes' `metav1.Condition`.

use chrono::SecondsFormat;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use yunshu_core::meta;

/// Whether a condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// It holds.
    True,
    /// It does not.
    False,
    /// Not known yet.
    Unknown,
}

/// One observed condition (`Ready`, `Scheduled`, `Synced`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type, CamelCase.
    #[serde(rename = "type")]
    #[schemars(
        length(min = 1, max = 316),
        regex(
            pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
        )
    )]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// Why, as a CamelCase word that metrics and events can use.
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    )]
    pub reason: String,
    /// A human sentence.
    #[serde(default)]
    #[schemars(length(max = 32768))]
    pub message: String,
    /// The `metadata.generation` this was observed at.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub observed_generation: i64,
    /// When `status` last changed, RFC 3339.
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
}

impl From<meta::ConditionStatus> for ConditionStatus {
    fn from(s: meta::ConditionStatus) -> Self {
        match s {
            meta::ConditionStatus::True => Self::True,
            meta::ConditionStatus::False => Self::False,
            meta::ConditionStatus::Unknown => Self::Unknown,
        }
    }
}

impl From<meta::Condition> for Condition {
    fn from(c: meta::Condition) -> Self {
        Self {
            type_: c.type_,
            status: c.status.into(),
            reason: c.reason,
            message: c.message,
            observed_generation: i64::try_from(c.observed_generation).unwrap_or(i64::MAX),
            last_transition_time: c
                .last_transition_time
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

/// Converts core conditions into CR conditions, keeping their order.
pub(crate) fn convert(conditions: Vec<meta::Condition>) -> Vec<Condition> {
    conditions.into_iter().map(Condition::from).collect()
}
