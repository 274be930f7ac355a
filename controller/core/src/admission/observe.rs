//! Instrumentation hooks of admission.
//!
//! Core depends on no metrics library: admission reports what it does to an
//! [`AdmissionObserver`] installed with
//! [`Admission::set_observer`](super::Admission::set_observer), and the
//! runtime turns the reports into metrics. Every value reported comes from a
//! fixed set, so labels built from them stay bounded.

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::Duration,
};

use super::{Admitted, Change};
use crate::{ErrorKind, error::Result};

/// How one change submitted to admission ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdmissionOutcome {
    /// A create stored a new object.
    Created,
    /// A create repeated an earlier request id: the earlier object came back.
    Repeated,
    /// An update (a resize) was stored.
    Updated,
    /// A release (a delete) returned its charge.
    Released,
    /// Refused or failed, with the error's kind (`QuotaExceeded`, `Conflict`,
    /// `Unavailable`, …).
    Rejected(ErrorKind),
}

impl AdmissionOutcome {
    /// The outcome's stable name, for metric labels: `created`, `repeated`,
    /// `updated`, `released`, or the error kind's category.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Repeated => "repeated",
            Self::Updated => "updated",
            Self::Released => "released",
            Self::Rejected(kind) => kind.category(),
        }
    }

    /// The outcome of a `verb` change answered with `result`.
    pub(super) fn of(verb: Verb, result: &Result<Admitted>) -> Self {
        match (result, verb) {
            (Err(e), _) => Self::Rejected(e.kind()),
            (Ok(a), Verb::Create) if a.created => Self::Created,
            (Ok(_), Verb::Create) => Self::Repeated,
            (Ok(_), Verb::Update) => Self::Updated,
            (Ok(_), Verb::Release) => Self::Released,
        }
    }
}

/// What a change does, kept while the change itself moves to a committer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verb {
    Create,
    Update,
    Release,
}

impl Verb {
    pub(super) fn of(change: &Change) -> Self {
        match change {
            Change::Create(_) => Self::Create,
            Change::Update { .. } => Self::Update,
            Change::Release { .. } => Self::Release,
        }
    }
}

/// Receives what admission does. Implementations must be cheap and must not
/// block: they are called on the committers' tasks and the callers' tasks.
pub trait AdmissionObserver: Send + Sync + fmt::Debug {
    /// A batch of `size` changes was decided in one guarded transaction that
    /// committed, the store call taking `duration`.
    fn batch(&self, size: usize, duration: Duration);

    /// A batch's guard failed (the department or its usage moved, or a
    /// request id or object was taken meanwhile): the committer rereads and
    /// retries.
    fn conflict(&self);

    /// A change was answered, `latency` after it was submitted (queueing,
    /// batching and retries included).
    fn outcome(&self, outcome: AdmissionOutcome, latency: Duration);
}

/// Where admission finds its observer: set at most once, shared by the
/// front and every committer, read on each report.
#[derive(Debug, Clone, Default)]
pub(super) struct ObserverSlot(Arc<OnceLock<Arc<dyn AdmissionObserver>>>);

impl ObserverSlot {
    /// Installs `observer`; `false` if one was installed before.
    pub fn set(&self, observer: Arc<dyn AdmissionObserver>) -> bool {
        self.0.set(observer).is_ok()
    }

    /// The observer, if one is installed.
    pub fn get(&self) -> Option<&dyn AdmissionObserver> {
        self.0.get().map(|o| &**o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn outcomes_have_bounded_names() {
        let release = Change::Release {
            department: "d".into(),
            key: "k".into(),
            revision: 1,
            charge: crate::resources::Resources::ZERO,
        };
        let ok = Ok(Admitted {
            created: false,
            key: "k".into(),
            revision: 2,
            record: Vec::new(),
        });
        let verb = Verb::of(&release);
        assert_eq!(AdmissionOutcome::of(verb, &ok), AdmissionOutcome::Released);
        assert_eq!(
            AdmissionOutcome::of(Verb::Create, &ok),
            AdmissionOutcome::Repeated
        );
        let quota = Err(Error::QuotaExceeded { violations: vec![] });
        let outcome = AdmissionOutcome::of(verb, &quota);
        assert_eq!(outcome.as_str(), "quota_exceeded");
    }
}
