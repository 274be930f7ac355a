//! Prometheus metrics on the admin port's `/metrics`, in the OpenMetrics
//! text format, every family under the `yunshu_` prefix.
//!
//! Three sources, each in its own module:
//!
//! - **gRPC** ([`grpc`]): a tower layer counts and times every call by
//!   service, method and code; auth outcomes are copied from the
//!   authenticator's counters at scrape time.
//! - **Events** ([`events`]): admission and the scheduling loop report
//!   through observer hooks (core and placement know no metrics library);
//!   counters and histograms here count them.
//! - **State** ([`collector`]): foundations, departments, allocations and
//!   department resources are read from a view of the store that a watch
//!   keeps current ([`view`]), and turned into gauges when scraped. Reading
//!   the store on every scrape would cost a full range per scrape and
//!   replica; the watch costs one list and then one decode per change.
//!
//! Label sets are bounded: by fixed lists (codes, kinds, phases, health
//! states, outcomes, reasons) or by what admins declare (foundations,
//! departments, resource classes). Nothing is labelled per resource, so the
//! series count does not grow with the number of instances, volumes or
//! buckets. Other components register their own families through
//! [`Metrics::with_registry`].

mod collector;
mod events;
mod grpc;
mod view;

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::sync::watch;
use yunshu_auth::{AuthMethod, Authenticator, RejectReason};
use yunshu_core::{admission::Admission, store::Store};

pub use self::grpc::{GrpcLabels, GrpcMetricsLayer, GrpcMetricsService, MethodLabels};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// The authenticator whose counters are exported, and what was exported so
/// far of each (its counters are cumulative; ours grow by the difference).
type AuthCounters = (
    Authenticator,
    [u64; RejectReason::ALL.len()],
    [u64; AuthMethod::ALL.len()],
);

/// The process's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    grpc: grpc::GrpcMetrics,
    auth_rejections: Family<ReasonLabels, Counter>,
    auth_accepted: Family<MethodLabel, Counter>,
    store_revision: Gauge,
    auth: Mutex<Option<AuthCounters>>,
    admission: Arc<events::AdmissionMetrics>,
    scheduling: Arc<events::SchedulingMetrics>,
    view: Arc<view::StoreView>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family under the `yunshu_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("yunshu");
        let grpc = grpc::GrpcMetrics::register(&mut registry);
        let auth_rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "auth_rejections",
            "Refused calls by reason",
            auth_rejections.clone(),
        );
        let auth_accepted = Family::<MethodLabel, Counter>::default();
        registry.register(
            "auth_accepted",
            "Authenticated calls by method",
            auth_accepted.clone(),
        );
        let store_revision = Gauge::default();
        registry.register(
            "store_revision",
            "The store's current revision",
            store_revision.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "Build information; always 1", build);
        let admission = Arc::new(events::AdmissionMetrics::register(&mut registry));
        let scheduling = Arc::new(events::SchedulingMetrics::register(&mut registry));
        let view = Arc::new(view::StoreView::default());
        registry.register_collector(Box::new(collector::StateCollector::new(view.clone())));
        Self {
            registry: Mutex::new(registry),
            grpc,
            auth_rejections,
            auth_accepted,
            store_revision,
            auth: Mutex::new(None),
            admission,
            scheduling,
            view,
        }
    }

    /// Lets another component register its families (or a collector) in
    /// the registry `/metrics` renders; its prefix is `yunshu`.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.registry.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Wires the event and state metrics: installs the observers on
    /// admission and the scheduler, and keeps the state view current from
    /// `store` until `stop` turns true.
    pub fn instrument(
        &self,
        store: Arc<dyn Store>,
        admission: &Admission,
        scheduler: &yunshu_placement::Scheduler,
        stop: watch::Receiver<bool>,
    ) {
        if !admission.set_observer(self.admission.clone()) {
            tracing::warn!("admission already had an observer; its metrics stay empty");
        }
        if !scheduler.set_observer(self.scheduling.clone()) {
            tracing::warn!("the scheduler already had an observer; its metrics stay empty");
        }
        self.view.spawn_watcher(store, stop);
    }

    /// Exports the authenticator's counters from now on.
    pub fn watch_auth(&self, auth: Authenticator) {
        *self.auth.lock().unwrap_or_else(PoisonError::into_inner) = Some((
            auth,
            [0; RejectReason::ALL.len()],
            [0; AuthMethod::ALL.len()],
        ));
    }

    /// Brings sampled values up to date and renders the text format.
    pub fn render(&self, store_revision: Option<i64>) -> String {
        if let Some(rev) = store_revision {
            self.store_revision.set(rev);
        }
        if let Some((auth, seen_rejected, seen_accepted)) = self
            .auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            let stats = auth.stats();
            for (i, (reason, n)) in stats.rejected.iter().enumerate() {
                let c = self.auth_rejections.get_or_create(&ReasonLabels {
                    reason: reason.as_str(),
                });
                c.inc_by(n.saturating_sub(seen_rejected[i]));
                seen_rejected[i] = *n;
            }
            for (i, (method, n)) in stats.accepted.iter().enumerate() {
                let c = self.auth_accepted.get_or_create(&MethodLabel {
                    method: method.as_str(),
                });
                c.inc_by(n.saturating_sub(seen_accepted[i]));
                seen_accepted[i] = *n;
            }
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::warn!(error = %e, "failed to encode metrics");
        }
        out
    }
}
