//! The tower stack every adapter call goes through, outermost first:
//!
//! 1. [`Measured`] — counts calls per foundation × operation × outcome and
//!    observes their latency (what the caller saw, retries included);
//! 2. [`Breaker`] — the circuit breaker ([`super::circuit`]): fails fast
//!    while the foundation is unwell, which marks it Degraded;
//! 3. [`Retry`] — retries Throttled and Unavailable with jittered
//!    exponential backoff, waiting at least the Retry-After the cloud asked
//!    for; counts throttles;
//! 4. [`Budgeted`] — the foundation's token bucket ([`super::budget`]), user
//!    calls before background ones; every attempt takes a token;
//! 5. [`Timeout`] — bounds each attempt;
//! 6. [`Invoke`] — the adapter itself.
//!
//! A call is a [`Call`]: the operation's name, its priority, and a closure
//! that performs it on the adapter. The closure is re-run for each attempt,
//! so it must capture its arguments by value. Every layer is generic over
//! the call's result type, so one stack serves every operation.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use rand::Rng;
use tower::Service;
use yunshu_core::{
    adapter::Adapter,
    error::{Error, ErrorKind, Result},
};

use super::{
    budget::{Priority, TokenBucket},
    circuit::{Admit, Circuit},
};

/// Performs one operation on an adapter.
pub type Run<T> = Arc<dyn Fn(Arc<dyn Adapter>) -> BoxFuture<'static, Result<T>> + Send + Sync>;

/// One adapter call.
pub struct Call<T> {
    /// The operation, as a metric label (`create_instance`, `probe`, …).
    pub operation: &'static str,
    /// Who waits for it.
    pub priority: Priority,
    /// What to do.
    pub run: Run<T>,
}

impl<T> Clone for Call<T> {
    fn clone(&self) -> Self {
        Self {
            operation: self.operation,
            priority: self.priority,
            run: self.run.clone(),
        }
    }
}

impl<T> fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("operation", &self.operation)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

/// Why the stack itself failed a call; attached as the error's source so
/// metrics can tell a timeout or an open circuit from the cloud's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StackFailure {
    /// The attempt ran out of time.
    #[error("timed out")]
    Timeout,
    /// The circuit was open.
    #[error("circuit open")]
    CircuitOpen,
}

fn stack_failure(e: &Error) -> Option<StackFailure> {
    std::error::Error::source(e).and_then(|s| s.downcast_ref::<StackFailure>().copied())
}

/// The metric label for a call's outcome.
pub fn outcome<T>(r: &Result<T>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => match stack_failure(e) {
            Some(StackFailure::Timeout) => "timeout",
            Some(StackFailure::CircuitOpen) => "circuit_open",
            None => e.kind().category(),
        },
    }
}

type Ready = Poll<std::result::Result<(), Error>>;

/// The adapter itself, at the bottom of the stack.
#[derive(Clone)]
pub struct Invoke {
    adapter: Arc<dyn Adapter>,
}

impl Invoke {
    /// Calls into `adapter`.
    pub fn new(adapter: Arc<dyn Adapter>) -> Self {
        Self { adapter }
    }
}

impl<T: Send + 'static> Service<Call<T>> for Invoke {
    type Response = T;
    type Error = Error;
    type Future = BoxFuture<'static, Result<T>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Ready {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<T>) -> Self::Future {
        (call.run)(self.adapter.clone())
    }
}

/// Bounds each attempt.
#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
    foundation: Arc<str>,
}

impl<S> Timeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, limit: Duration, foundation: Arc<str>) -> Self {
        Self {
            inner,
            limit,
            foundation,
        }
    }
}

impl<S, T> Service<Call<T>> for Timeout<S>
where
    S: Service<Call<T>, Response = T, Error = Error>,
    S::Future: Send + 'static,
    T: Send + 'static,
{
    type Response = T;
    type Error = Error;
    type Future = BoxFuture<'static, Result<T>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Ready {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call<T>) -> Self::Future {
        let (limit, op, foundation) = (self.limit, call.operation, self.foundation.clone());
        let fut = self.inner.call(call);
        Box::pin(async move {
            match tokio::time::timeout(limit, fut).await {
                Ok(r) => r,
                Err(_) => Err(Error::unavailable(
                    format!("{op} on foundation {foundation} timed out after {limit:?}"),
                    StackFailure::Timeout,
                )),
            }
        })
    }
}

/// Takes a token from the foundation's bucket before each attempt.
#[derive(Clone)]
pub struct Budgeted<S> {
    inner: S,
    bucket: Arc<TokenBucket>,
}

impl<S> Budgeted<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, bucket: Arc<TokenBucket>) -> Self {
        Self { inner, bucket }
    }
}

impl<S, T> Service<Call<T>> for Budgeted<S>
where
    S: Service<Call<T>, Response = T, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
    T: Send + 'static,
{
    type Response = T;
    type Error = Error;
    type Future = BoxFuture<'static, Result<T>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Ready {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<T>) -> Self::Future {
        let (bucket, mut inner) = (self.bucket.clone(), self.inner.clone());
        Box::pin(async move {
            bucket.acquire(call.priority).await;
            inner.call(call).await
        })
    }
}

/// How [`Retry`] retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all for a user call.
    pub user_attempts: u32,
    /// Attempts in all for a background call.
    pub background_attempts: u32,
    /// The first backoff.
    pub base: Duration,
    /// The longest backoff (a longer Retry-After is still honoured).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            user_attempts: 4,
            background_attempts: 2,
            base: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` after `error`: exponential with
    /// full jitter in [½, 1½) of the step, and never less than Retry-After.
    pub fn backoff(&self, attempt: u32, error: &Error) -> Duration {
        let step = self
            .base
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_backoff);
        let jittered = step.mul_f64(rand::rng().random_range(0.5..1.5));
        match error {
            Error::Throttled {
                retry_after: Some(after),
                ..
            } => jittered.max(*after),
            _ => jittered,
        }
    }
}

/// Retries Throttled and Unavailable answers.
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    policy: RetryPolicy,
    metrics: Arc<AdapterMetrics>,
    foundation: Arc<str>,
}

impl<S> Retry<S> {
    /// Wraps `inner`.
    pub fn new(
        inner: S,
        policy: RetryPolicy,
        metrics: Arc<AdapterMetrics>,
        foundation: Arc<str>,
    ) -> Self {
        Self {
            inner,
            policy,
            metrics,
            foundation,
        }
    }
}

impl<S, T> Service<Call<T>> for Retry<S>
where
    S: Service<Call<T>, Response = T, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
    T: Send + 'static,
{
    type Response = T;
    type Error = Error;
    type Future = BoxFuture<'static, Result<T>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Ready {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<T>) -> Self::Future {
        let mut inner = self.inner.clone();
        let (policy, metrics, foundation) =
            (self.policy, self.metrics.clone(), self.foundation.clone());
        Box::pin(async move {
            let attempts = match call.priority {
                Priority::User => policy.user_attempts,
                Priority::Background => policy.background_attempts,
            }
            .max(1);
            let mut attempt = 0;
            loop {
                let result = inner.call(call.clone()).await;
                let Err(error) = &result else {
                    return result;
                };
                if error.kind() == ErrorKind::Throttled {
                    metrics.throttled(&foundation, call.operation);
                }
                let retryable =
                    matches!(error.kind(), ErrorKind::Throttled | ErrorKind::Unavailable);
                attempt += 1;
                if !retryable || attempt >= attempts {
                    return result;
                }
                let wait = policy.backoff(attempt - 1, error);
                tracing::debug!(
                    foundation = %foundation,
                    operation = call.operation,
                    attempt,
                    ?wait,
                    error = %error,
                    "retrying adapter call"
                );
                tokio::time::sleep(wait).await;
            }
        })
    }
}

/// Fails fast while the foundation's circuit is open.
#[derive(Clone)]
pub struct Breaker<S> {
    inner: S,
    circuit: Arc<Circuit>,
    foundation: Arc<str>,
}

impl<S> Breaker<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, circuit: Arc<Circuit>, foundation: Arc<str>) -> Self {
        Self {
            inner,
            circuit,
            foundation,
        }
    }
}

impl<S, T> Service<Call<T>> for Breaker<S>
where
    S: Service<Call<T>, Response = T, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
    T: Send + 'static,
{
    type Response = T;
    type Error = Error;
    type Future = BoxFuture<'static, Result<T>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Ready {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<T>) -> Self::Future {
        let (circuit, foundation, mut inner) = (
            self.circuit.clone(),
            self.foundation.clone(),
            self.inner.clone(),
        );
        Box::pin(async move {
            let admitted = circuit.admit();
            if admitted == Admit::Refuse {
                return Err(Error::unavailable(
                    format!(
                        "foundation {foundation} is Degraded: its API failed repeatedly, \
                         so calls are paused for a while"
                    ),
                    StackFailure::CircuitOpen,
                ));
            }
            let result = inner.call(call).await;
            circuit.record(admitted, result.as_ref().err().map(Error::kind));
            result
        })
    }
}

/// Counts and times calls.
#[derive(Clone)]
pub struct Measured<S> {
    inner: S,
    metrics: Arc<AdapterMetrics>,
    foundation: Arc<str>,
}

impl<S> Measured<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, metrics: Arc<AdapterMetrics>, foundation: Arc<str>) -> Self {
        Self {
            inner,
            metrics,
            foundation,
        }
    }
}

impl<S, T> Service<Call<T>> for Measured<S>
where
    S: Service<Call<T>, Response = T, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
    T: Send + 'static,
{
    type Response = T;
    type Error = Error;
    type Future = BoxFuture<'static, Result<T>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Ready {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<T>) -> Self::Future {
        let (metrics, foundation, mut inner) = (
            self.metrics.clone(),
            self.foundation.clone(),
            self.inner.clone(),
        );
        Box::pin(async move {
            let (op, started) = (call.operation, Instant::now());
            let result = inner.call(call).await;
            metrics.observe(&foundation, op, outcome(&result), started.elapsed());
            result
        })
    }
}

/// Every operation label the stack uses.
pub const OPERATIONS: [&str; 14] = [
    "probe",
    "ensure_tenant",
    "create_instance",
    "create_volume",
    "create_bucket",
    "get",
    "delete",
    "attach_volume",
    "detach_volume",
    "instance_action",
    "list_owned",
    "issue_credentials",
    "revoke_credentials",
    "revoke_expired_credentials",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    foundation: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    foundation: String,
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FoundationLabel {
    foundation: String,
}

/// Adapter call metrics. Labels are bounded: foundations are few and
/// admin-defined, operations and outcomes are fixed lists.
#[derive(Debug)]
pub struct AdapterMetrics {
    calls: Family<CallLabels, Counter>,
    latency: Family<OperationLabels, Histogram, fn() -> Histogram>,
    throttles: Family<OperationLabels, Counter>,
    circuit: Family<FoundationLabel, Gauge>,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

impl Default for AdapterMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            throttles: Family::default(),
            circuit: Family::default(),
        }
    }
}

impl AdapterMetrics {
    /// Registers the families under `registry` (whose prefix is `yunshu`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "adapter_calls",
            "Adapter calls per foundation, operation and outcome",
            self.calls.clone(),
        );
        registry.register(
            "adapter_call_duration_seconds",
            "Adapter call latency as the caller saw it, retries included",
            self.latency.clone(),
        );
        registry.register(
            "adapter_throttles",
            "Throttled adapter attempts per foundation and operation",
            self.throttles.clone(),
        );
        registry.register(
            "adapter_circuit_state",
            "Circuit breaker state per foundation: 0 closed, 1 half-open, 2 open",
            self.circuit.clone(),
        );
    }

    fn observe(
        &self,
        foundation: &str,
        operation: &'static str,
        outcome: &'static str,
        d: Duration,
    ) {
        self.calls
            .get_or_create(&CallLabels {
                foundation: foundation.to_owned(),
                operation,
                outcome,
            })
            .inc();
        self.latency
            .get_or_create(&OperationLabels {
                foundation: foundation.to_owned(),
                operation,
            })
            .observe(d.as_secs_f64());
    }

    fn throttled(&self, foundation: &str, operation: &'static str) {
        self.throttles
            .get_or_create(&OperationLabels {
                foundation: foundation.to_owned(),
                operation,
            })
            .inc();
    }

    /// Creates a foundation's throttle series at zero for every operation,
    /// so dashboards show a flat line rather than no data.
    pub fn init_foundation(&self, foundation: &str) {
        for operation in OPERATIONS {
            let _ = self.throttles.get_or_create(&OperationLabels {
                foundation: foundation.to_owned(),
                operation,
            });
        }
    }

    /// Sets a foundation's circuit gauge.
    pub fn set_circuit(&self, foundation: &str, state: i64) {
        self.circuit
            .get_or_create(&FoundationLabel {
                foundation: foundation.to_owned(),
            })
            .set(state);
    }

    /// Drops a removed foundation's series.
    pub fn forget(&self, foundation: &str) {
        self.circuit.remove(&FoundationLabel {
            foundation: foundation.to_owned(),
        });
    }
}
