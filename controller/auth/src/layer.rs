//! The tower layer: authenticates each `http::Request` before the wrapped
//! service sees it, inserts the [`Principal`](crate::Principal) into the
//! request's extensions, and answers refused requests itself with a gRPC
//! status (`grpc-status` and a fixed `grpc-message` in the headers of an
//! empty response), so the wrapped service never runs for them.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tower_layer::Layer;
use tower_service::Service;

use crate::authenticator::Authenticator;

/// Wraps services in [`AuthService`]. Put it in front of tonic services with
/// `Server::builder().layer(authenticator.layer())`.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Authenticator,
}

impl AuthLayer {
    /// A layer authenticating with `auth`.
    pub fn new(auth: Authenticator) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// A service that authenticates requests before passing them on.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Authenticator,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B, R> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // Call the clone that was polled ready; keep a fresh clone for later.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            if auth.is_public(request.uri().path()) {
                return inner.call(request).await;
            }
            match auth
                .authenticate(request.headers(), request.extensions())
                .await
            {
                Ok(principal) => {
                    tracing::trace!(
                        department = %principal.department,
                        subject = %principal.subject,
                        method = principal.method.as_str(),
                        "request authenticated"
                    );
                    // Services generic over core read the core principal;
                    // the full one (with the method) stays for metrics and logs.
                    request.extensions_mut().insert(principal.to_core());
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(reason) => {
                    tracing::debug!(
                        reason = reason.as_str(),
                        path = request.uri().path(),
                        "request refused"
                    );
                    Ok(reason.to_status().into_http())
                }
            }
        })
    }
}
