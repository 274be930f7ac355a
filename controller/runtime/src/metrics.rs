//! Prometheus metrics on the admin port's `/metrics`, in the OpenMetrics
//! text format. Every label set is bounded: gRPC methods come from the
//! served services (anything else is `unknown`), codes from the gRPC code
//! list, auth outcomes from the fixed reason and method lists.

use std::{
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Instant,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tower::{Layer, Service};
use yunshu_auth::{AuthMethod, Authenticator, RejectReason};

/// gRPC calls by service, method and code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    service: &'static str,
    method: &'static str,
    code: &'static str,
}

/// gRPC latency by service and method.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    service: &'static str,
    method: &'static str,
}

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
    registry: Registry,
    grpc_requests: Family<GrpcLabels, Counter>,
    grpc_latency: Family<MethodLabels, Histogram>,
    auth_rejections: Family<ReasonLabels, Counter>,
    auth_accepted: Family<MethodLabel, Counter>,
    store_revision: Gauge,
    auth: Mutex<Option<AuthCounters>>,
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
        let grpc_requests = Family::<GrpcLabels, Counter>::default();
        registry.register(
            "grpc_requests",
            "gRPC calls by service, method and status code",
            grpc_requests.clone(),
        );
        let grpc_latency = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "grpc_request_duration_seconds",
            "gRPC call latency until the response headers",
            grpc_latency.clone(),
        );
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
        Self {
            registry,
            grpc_requests,
            grpc_latency,
            auth_rejections,
            auth_accepted,
            store_revision,
            auth: Mutex::new(None),
        }
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
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "failed to encode metrics");
        }
        out
    }

    fn record(&self, path: &str, code: &'static str, started: Instant) {
        let (service, method) = split_path(path);
        self.grpc_requests
            .get_or_create(&GrpcLabels {
                service,
                method,
                code,
            })
            .inc();
        self.grpc_latency
            .get_or_create(&MethodLabels { service, method })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// `/pkg.Service/Method` as bounded labels: only the served services'
/// methods are named, anything else is `unknown`.
fn split_path(path: &str) -> (&'static str, &'static str) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let known = yunshu_grpc::server::SERVICES
        .iter()
        .chain(
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
            ]
            .iter(),
        )
        .find(|s| **s == service);
    match known {
        Some(s) => (s, intern_method(method)),
        None => ("unknown", "unknown"),
    }
}

/// Method names are interned so labels are `'static`; only names that are
/// identifiers of reasonable length are kept, so the set stays bounded by
/// what the services define plus `unknown`.
fn intern_method(method: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let valid = !method.is_empty()
        && method.len() <= 64
        && method.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid {
        return "unknown";
    }
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(n) = names.iter().find(|n| **n == method) {
        return n;
    }
    if names.len() >= 256 {
        return "unknown";
    }
    let leaked: &'static str = Box::leak(method.to_owned().into_boxed_str());
    names.push(leaked);
    leaked
}

/// The gRPC code name of a status header value.
fn code_name(value: Option<&http::HeaderValue>) -> &'static str {
    let Some(code) = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return "OK";
    };
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "Cancelled",
        tonic::Code::Unknown => "Unknown",
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::DeadlineExceeded => "DeadlineExceeded",
        tonic::Code::NotFound => "NotFound",
        tonic::Code::AlreadyExists => "AlreadyExists",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::ResourceExhausted => "ResourceExhausted",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        tonic::Code::Aborted => "Aborted",
        tonic::Code::OutOfRange => "OutOfRange",
        tonic::Code::Unimplemented => "Unimplemented",
        tonic::Code::Internal => "Internal",
        tonic::Code::Unavailable => "Unavailable",
        tonic::Code::DataLoss => "DataLoss",
        tonic::Code::Unauthenticated => "Unauthenticated",
    }
}

/// Counts gRPC calls by the code in the response headers (errors are
/// trailers-only responses, so their code is there; a call whose status is
/// only in the trailers counts as OK).
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer(pub Arc<Metrics>);

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service of [`GrpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> Service<http::Request<B>> for GrpcMetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let fut = self.inner.call(request);
        Box::pin(async move {
            let resp = fut.await?;
            metrics.record(&path, code_name(resp.headers().get("grpc-status")), started);
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded() {
        assert_eq!(
            split_path("/yunshu.api.v1.InstanceService/CreateInstance"),
            ("yunshu.api.v1.InstanceService", "CreateInstance")
        );
        assert_eq!(split_path("/evil.Service/x"), ("unknown", "unknown"));
        assert_eq!(
            split_path("/yunshu.api.v1.InstanceService/../../etc"),
            ("yunshu.api.v1.InstanceService", "unknown")
        );
        assert_eq!(code_name(None), "OK");
        assert_eq!(
            code_name(Some(&http::HeaderValue::from_static("16"))),
            "Unauthenticated"
        );
    }
}
