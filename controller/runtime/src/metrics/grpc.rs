//! Counting gRPC calls: a tower layer in front of every service that
//! records each call's service, method and status code, and its latency.
//! Labels stay bounded: methods come from the served services (anything
//! else is `unknown`), codes from the gRPC code list.

use std::{
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Instant,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use tower::{Layer, Service};

use super::Metrics;

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

/// The gRPC families.
#[derive(Debug, Clone)]
pub(super) struct GrpcMetrics {
    requests: Family<GrpcLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
}

impl GrpcMetrics {
    /// Registers the families under `registry`.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let requests = Family::<GrpcLabels, Counter>::default();
        registry.register(
            "grpc_requests",
            "gRPC calls by service, method and status code",
            requests.clone(),
        );
        let latency = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "grpc_request_duration_seconds",
            "gRPC call latency until the response headers",
            latency.clone(),
        );
        Self { requests, latency }
    }

    fn record(&self, path: &str, code: &'static str, started: Instant) {
        let (service, method) = split_path(path);
        self.requests
            .get_or_create(&GrpcLabels {
                service,
                method,
                code,
            })
            .inc();
        self.latency
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
            metrics
                .grpc
                .record(&path, code_name(resp.headers().get("grpc-status")), started);
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
