//! Status conditions as the operator writes them, and the events their
//! transitions produce — pure functions, so every rule is tested without
//! Kubernetes.
//!
//! A condition keeps its `lastTransitionTime` while its status stays the
//! same, so a status computed twice from the same observations is equal and
//! the reconciler does not write it again. Events are emitted on transitions
//! only (a status or reason change), never on every reconcile.

use chrono::{DateTime, SecondsFormat, Utc};
use yunshu_crds::{Condition, ConditionStatus};

/// The object is usable.
pub const READY: &str = "Ready";
/// The CR's spec is in Yunshu's store (for department resources: admitted).
pub const SYNCED: &str = "Synced";

/// A condition as the reconciler decides it, before its times are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// `Ready`, `Synced`, …
    pub type_: &'static str,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase reason, also the event reason on a transition.
    pub reason: String,
    /// A human sentence.
    pub message: String,
}

impl Decided {
    /// A condition that holds.
    pub fn holds(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: ConditionStatus::True,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn fails(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: ConditionStatus::False,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// A condition not known yet.
    pub fn unknown(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: ConditionStatus::Unknown,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// The RFC 3339 form Kubernetes uses for condition times.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Sets `decided` in `conditions` at `generation`. The transition time is
/// the one in `previous` (the CR's current conditions) when the status is
/// unchanged there, else `now`.
pub fn put(
    conditions: &mut Vec<Condition>,
    previous: &[Condition],
    decided: Decided,
    generation: i64,
    now: DateTime<Utc>,
) {
    let since = previous
        .iter()
        .find(|c| c.type_ == decided.type_ && c.status == decided.status)
        .map_or_else(|| timestamp(now), |c| c.last_transition_time.clone());
    let condition = Condition {
        type_: decided.type_.to_owned(),
        status: decided.status,
        reason: decided.reason,
        message: decided.message,
        observed_generation: generation,
        last_transition_time: since,
    };
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// What every status builder needs besides the store object.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The operator's verdict on the sync.
    pub synced: Decided,
    /// The CR's current conditions.
    pub previous: &'a [Condition],
    /// The CR's current `status.observedGeneration`.
    pub previous_generation: i64,
    /// The CR's `metadata.generation`.
    pub generation: i64,
    /// The time of this reconcile.
    pub now: DateTime<Utc>,
}

impl Inputs<'_> {
    /// The generation the status describes: the CR's when synced, else the
    /// one it described before.
    pub fn observed(&self) -> i64 {
        if self.synced.status == ConditionStatus::True {
            self.generation
        } else {
            self.previous_generation
        }
    }

    /// Sets `decided` at this reconcile's generation and time.
    pub fn put(&self, conditions: &mut Vec<Condition>, decided: Decided) {
        put(
            conditions,
            self.previous,
            decided,
            self.generation,
            self.now,
        );
    }
}

/// Maps the observed generations of conditions copied from a store object
/// at `store_generation` into CR generations: one observed at the store
/// object's current generation describes the CR's current generation; an
/// older one keeps the generation it had on the CR (0 if it is new there).
pub fn remap_generations(conditions: &mut [Condition], store_generation: u64, inputs: &Inputs<'_>) {
    let current = i64::try_from(store_generation).unwrap_or(i64::MAX);
    for c in conditions {
        c.observed_generation = if c.observed_generation >= current {
            inputs.generation
        } else {
            find(inputs.previous, &c.type_).map_or(0, |p| p.observed_generation)
        };
    }
}

/// An event to publish about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// A Warning (else Normal).
    pub warning: bool,
    /// A CamelCase reason.
    pub reason: String,
    /// A human sentence (never a secret).
    pub note: String,
    /// What the operator was doing.
    pub action: &'static str,
}

impl Notice {
    /// A Normal event.
    pub fn normal(reason: &str, note: impl Into<String>, action: &'static str) -> Self {
        Self {
            warning: false,
            reason: reason.to_owned(),
            note: note.into(),
            action,
        }
    }

    /// A Warning event.
    pub fn warning(reason: &str, note: impl Into<String>, action: &'static str) -> Self {
        Self {
            warning: true,
            reason: reason.to_owned(),
            note: note.into(),
            action,
        }
    }
}

/// The events that going from `previous` to `current` conditions deserves:
/// `Synced` and `Ready` turning true (Normal `Synced`, `BecameReady`), and
/// turning false or changing their failure reason (Warning, with the
/// condition's reason and message: `Degraded`, `Down`, `InvalidSpec`,
/// `QuotaExceeded`…).
pub fn transitions(previous: &[Condition], current: &[Condition]) -> Vec<Notice> {
    let mut out = Vec::new();
    for (type_, became, action) in [
        (SYNCED, "Synced", "Sync"),
        (READY, "BecameReady", "Observe"),
    ] {
        let Some(now) = find(current, type_) else {
            continue;
        };
        let before = find(previous, type_);
        let same = before.is_some_and(|b| b.status == now.status && b.reason == now.reason);
        if same {
            continue;
        }
        match now.status {
            ConditionStatus::True => {
                if before.is_none_or(|b| b.status != ConditionStatus::True) {
                    out.push(Notice::normal(became, now.message.clone(), action));
                }
            }
            ConditionStatus::False => {
                out.push(Notice::warning(&now.reason, now.message.clone(), action));
            }
            ConditionStatus::Unknown => {
                if before.is_some_and(|b| b.status == ConditionStatus::True) {
                    out.push(Notice::warning(&now.reason, now.message.clone(), action));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("valid time")
    }

    fn computed(previous: &[Condition], decided: Vec<Decided>, now: i64) -> Vec<Condition> {
        let mut out = Vec::new();
        for d in decided {
            put(&mut out, previous, d, 3, at(now));
        }
        out
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let first = computed(&[], vec![Decided::holds(READY, "Healthy", "ok")], 10);
        assert_eq!(first[0].last_transition_time, "1970-01-01T00:00:10Z");
        assert_eq!(first[0].observed_generation, 3);
        let again = computed(&first, vec![Decided::holds(READY, "Healthy", "ok")], 20);
        assert_eq!(
            again, first,
            "same observation, same status: nothing to write"
        );
        let down = computed(&again, vec![Decided::fails(READY, "Down", "no answer")], 30);
        assert_eq!(down[0].last_transition_time, "1970-01-01T00:00:30Z");
    }

    #[test]
    fn events_fire_on_transitions_only() {
        let ready = computed(&[], vec![Decided::holds(READY, "Healthy", "ok")], 1);
        let notices = transitions(&[], &ready);
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].reason, "BecameReady");
        assert!(!notices[0].warning);
        assert!(transitions(&ready, &ready).is_empty());

        let degraded = computed(&ready, vec![Decided::fails(READY, "Degraded", "slow")], 2);
        let notices = transitions(&ready, &degraded);
        assert_eq!(notices.len(), 1);
        assert!(notices[0].warning);
        assert_eq!(notices[0].reason, "Degraded");
        assert_eq!(notices[0].note, "slow");

        let down = computed(&degraded, vec![Decided::fails(READY, "Down", "gone")], 3);
        assert_eq!(transitions(&degraded, &down)[0].reason, "Down");
    }

    #[test]
    fn a_sync_failure_is_reported_with_its_reason() {
        let synced = computed(&[], vec![Decided::holds(SYNCED, "Synced", "in store")], 1);
        let failed = computed(
            &synced,
            vec![Decided::fails(
                SYNCED,
                "InvalidSpec",
                "invalid spec.traits[0]: bad",
            )],
            2,
        );
        let notices = transitions(&synced, &failed);
        assert_eq!(
            notices,
            vec![Notice::warning(
                "InvalidSpec",
                "invalid spec.traits[0]: bad",
                "Sync"
            )]
        );
        let back = computed(
            &failed,
            vec![Decided::holds(SYNCED, "Synced", "in store")],
            3,
        );
        assert_eq!(transitions(&failed, &back)[0].reason, "Synced");
    }
}
