//! Instrumentation hooks of the scheduling loop.
//!
//! The loop knows nothing of Prometheus: it reports what happened to a
//! [`PlacementObserver`] the runtime installs with
//! [`Scheduler::set_observer`](crate::Scheduler::set_observer), and the
//! runtime turns the reports into metrics. Every value reported comes from a
//! fixed set ([`PlacementOutcome::ALL`], [`UNSCHEDULABLE_REASONS`]), so
//! metric labels built from them stay bounded whatever the objects are
//! called.

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::Duration,
};

use yunshu_scheduler::{Decision, Filter};

/// How one decision handed to a committer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlacementOutcome {
    /// Written `Scheduled` on a foundation, its allocation charged.
    Scheduled,
    /// Written `Unschedulable`: no foundation takes it now.
    Unschedulable,
    /// The chosen foundation no longer had room when the committer checked;
    /// decided again.
    Bounced,
    /// The object changed after the decision; its new version is decided.
    Stale,
    /// The commit ran out of retries; the object waits for the next retry.
    GaveUp,
}

impl PlacementOutcome {
    /// Every outcome.
    pub const ALL: [PlacementOutcome; 5] = [
        Self::Scheduled,
        Self::Unschedulable,
        Self::Bounced,
        Self::Stale,
        Self::GaveUp,
    ];

    /// The outcome's stable name, for metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Unschedulable => "unschedulable",
            Self::Bounced => "bounced",
            Self::Stale => "stale",
            Self::GaveUp => "gave_up",
        }
    }
}

/// The reason reported when no foundation takes an object when there are no
/// foundations at all.
pub const NO_FOUNDATIONS: &str = "no_foundations";

/// Every reason [`unschedulable_reason`] can give: the filter names, then
/// [`NO_FOUNDATIONS`].
pub const UNSCHEDULABLE_REASONS: [&str; Filter::ALL.len() + 1] = {
    let mut out = [NO_FOUNDATIONS; Filter::ALL.len() + 1];
    let mut i = 0;
    while i < Filter::ALL.len() {
        out[i] = Filter::ALL[i].name();
        i += 1;
    }
    out
};

/// Why nothing fits, in one word: the filter that stopped the foundation
/// that got furthest through the filters (filters run cheapest first, so
/// that is the constraint closest to being met — `capacity` when one
/// foundation was down and another full), or [`NO_FOUNDATIONS`].
pub fn unschedulable_reason(decision: &Decision) -> &'static str {
    decision
        .rejections()
        .iter()
        .zip(Filter::ALL)
        .rev()
        .find(|(n, _)| **n > 0)
        .map_or(NO_FOUNDATIONS, |(_, f)| f.name())
}

/// Receives what the scheduling loop does. Implementations must be cheap
/// and must not block: they are called on the loop's task.
pub trait PlacementObserver: Send + Sync + fmt::Debug {
    /// A decision handed to a committer was answered, `latency` after the
    /// decision started (deciding plus the group-committed write).
    fn decided(&self, outcome: PlacementOutcome, latency: Duration);

    /// A decision found no foundation for an object, for `reason` (one of
    /// [`UNSCHEDULABLE_REASONS`]); reported when the object is written
    /// `Unschedulable`, not again while it stays parked for the same reason.
    fn unschedulable(&self, reason: &'static str);
}

/// Where the loop finds its observer; set at most once, read on each report,
/// so an observer installed after the loop started is still used.
#[derive(Debug, Clone, Default)]
pub(crate) struct ObserverSlot(Arc<OnceLock<Arc<dyn PlacementObserver>>>);

impl ObserverSlot {
    /// Installs `observer`; `false` if one was installed before.
    pub fn set(&self, observer: Arc<dyn PlacementObserver>) -> bool {
        self.0.set(observer).is_ok()
    }

    /// The observer, if one is installed.
    pub fn get(&self) -> Option<&dyn PlacementObserver> {
        self.0.get().map(|o| &**o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_the_filters_then_no_foundations() {
        assert_eq!(
            UNSCHEDULABLE_REASONS,
            [
                "allowed",
                "capability",
                "health",
                "zone",
                "traits",
                "capacity",
                "quota",
                "no_foundations"
            ]
        );
        let names: Vec<_> = PlacementOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            ["scheduled", "unschedulable", "bounced", "stale", "gave_up"]
        );
    }
}
