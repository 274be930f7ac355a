//! Metrics shared by the background loops: reconcile errors by loop and
//! category, and orphaned cloud resources per foundation and kind.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use yunshu_core::{error::ErrorKind, meta::Kind};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    category: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrphanLabels {
    foundation: String,
    kind: &'static str,
}

/// Reconcile error counters and the orphan gauge.
#[derive(Debug, Default)]
pub struct ReconcileMetrics {
    errors: Family<ErrorLabels, Counter>,
    orphans: Family<OrphanLabels, Gauge>,
    swept_requests: Counter,
}

impl ReconcileMetrics {
    /// Registers the families under `registry` (prefix `yunshu`), with
    /// every loop × category series at zero.
    pub fn register(&self, registry: &mut Registry) {
        for controller in [
            "provisioner",
            "prober",
            "sweeper",
            "retention",
            "meter",
            "operator",
        ] {
            for kind in [
                ErrorKind::NotFound,
                ErrorKind::AlreadyExists,
                ErrorKind::Conflict,
                ErrorKind::Throttled,
                ErrorKind::Unavailable,
                ErrorKind::Unauthorized,
                ErrorKind::PermissionDenied,
                ErrorKind::Invalid,
                ErrorKind::QuotaExceeded,
                ErrorKind::Compacted,
                ErrorKind::Internal,
            ] {
                let _ = self.errors.get_or_create(&ErrorLabels {
                    controller,
                    category: kind.category(),
                });
            }
        }
        registry.register(
            "reconcile_errors",
            "Errors of the background loops by loop (provisioner, prober, sweeper, retention, meter, operator) and error category",
            self.errors.clone(),
        );
        registry.register(
            "orphans",
            "Yunshu-tagged cloud resources that no object owns, per foundation and kind",
            self.orphans.clone(),
        );
        registry.register(
            "request_records_swept",
            "Client request ids forgotten after the retention period (--request-retention)",
            self.swept_requests.clone(),
        );
    }

    /// Counts request records the retention sweep removed.
    pub fn requests_forgotten(&self, count: usize) {
        self.swept_requests
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// Counts an error of `controller`.
    pub fn error(&self, controller: &'static str, kind: ErrorKind) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller,
                category: kind.category(),
            })
            .inc();
    }

    /// Sets the orphan count of a foundation and kind.
    pub fn set_orphans(&self, foundation: &str, kind: Kind, count: usize) {
        self.orphans
            .get_or_create(&OrphanLabels {
                foundation: foundation.to_owned(),
                kind: kind.plural(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}
