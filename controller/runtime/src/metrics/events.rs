//! Event metrics: what admission and the scheduling loop report through
//! their observer hooks (`yunshu_core::admission::observe`,
//! `yunshu_placement::observe`), counted and timed here. Every label value
//! comes from a fixed set, and each set is created at zero up front so rates
//! and alerts see every series from the first scrape.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use yunshu_core::{
    ErrorKind,
    admission::{AdmissionObserver, AdmissionOutcome},
};
use yunshu_placement::{PlacementObserver, PlacementOutcome, observe::UNSCHEDULABLE_REASONS};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Latency buckets from half a millisecond to ten seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Scheduling: decision outcomes and latency, unschedulable reasons.
#[derive(Debug)]
pub(crate) struct SchedulingMetrics {
    duration: Histogram,
    decisions: Family<OutcomeLabel, Counter>,
    unschedulable: Family<ReasonLabel, Counter>,
}

impl SchedulingMetrics {
    /// Registers the families under `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let duration = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "scheduling_duration_seconds",
            "From the start of a placement decision to its committed write (or its bounce)",
            duration.clone(),
        );
        let decisions = Family::<OutcomeLabel, Counter>::default();
        for o in PlacementOutcome::ALL {
            let _ = decisions.get_or_create(&OutcomeLabel {
                outcome: o.as_str(),
            });
        }
        registry.register(
            "scheduling_decisions",
            "Answered placement decisions by outcome: scheduled, unschedulable, bounced (no room any more), stale (object changed), gave_up (retries ran out)",
            decisions.clone(),
        );
        let unschedulable = Family::<ReasonLabel, Counter>::default();
        for reason in UNSCHEDULABLE_REASONS {
            let _ = unschedulable.get_or_create(&ReasonLabel { reason });
        }
        registry.register(
            "scheduling_unschedulable",
            "Objects written Unschedulable, by the filter that stopped the foundation that got furthest (or no_foundations)",
            unschedulable.clone(),
        );
        Self {
            duration,
            decisions,
            unschedulable,
        }
    }
}

impl PlacementObserver for SchedulingMetrics {
    fn decided(&self, outcome: PlacementOutcome, latency: Duration) {
        self.decisions
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
        self.duration.observe(latency.as_secs_f64());
    }

    fn unschedulable(&self, reason: &'static str) {
        self.unschedulable
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
}

/// Admission: request outcomes and latency, batch sizes, commit time, conflicts.
#[derive(Debug)]
pub(crate) struct AdmissionMetrics {
    duration: Histogram,
    requests: Family<OutcomeLabel, Counter>,
    batch_size: Histogram,
    commit_duration: Histogram,
    conflicts: Counter,
}

impl AdmissionMetrics {
    /// Registers the families under `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let duration = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "admission_duration_seconds",
            "From submitting a change to admission to its answer (queueing, batching and retries included)",
            duration.clone(),
        );
        let requests = Family::<OutcomeLabel, Counter>::default();
        let expected = [
            AdmissionOutcome::Created,
            AdmissionOutcome::Repeated,
            AdmissionOutcome::Updated,
            AdmissionOutcome::Released,
            AdmissionOutcome::Rejected(ErrorKind::QuotaExceeded),
            AdmissionOutcome::Rejected(ErrorKind::AlreadyExists),
            AdmissionOutcome::Rejected(ErrorKind::Conflict),
            AdmissionOutcome::Rejected(ErrorKind::NotFound),
            AdmissionOutcome::Rejected(ErrorKind::Unavailable),
            AdmissionOutcome::Rejected(ErrorKind::Internal),
        ];
        for o in expected {
            let _ = requests.get_or_create(&OutcomeLabel {
                outcome: o.as_str(),
            });
        }
        registry.register(
            "admission_requests",
            "Changes answered by admission, by outcome: created, repeated, updated, released, or the error category",
            requests.clone(),
        );
        let batch_size = Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]);
        registry.register(
            "admission_batch_size",
            "Changes folded into one committed admission transaction",
            batch_size.clone(),
        );
        let commit_duration = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "admission_commit_duration_seconds",
            "Store time of one committed admission transaction",
            commit_duration.clone(),
        );
        let conflicts = Counter::default();
        registry.register(
            "admission_conflicts",
            "Admission transactions whose guard failed (another writer moved the department's usage or keys); each is reread and retried",
            conflicts.clone(),
        );
        Self {
            duration,
            requests,
            batch_size,
            commit_duration,
            conflicts,
        }
    }
}

impl AdmissionObserver for AdmissionMetrics {
    fn batch(&self, size: usize, duration: Duration) {
        // Batch sizes are small; the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        self.batch_size.observe(size as f64);
        self.commit_duration.observe(duration.as_secs_f64());
    }

    fn conflict(&self) {
        self.conflicts.inc();
    }

    fn outcome(&self, outcome: AdmissionOutcome, latency: Duration) {
        self.requests
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
        self.duration.observe(latency.as_secs_f64());
    }
}
