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
                    if is_watch(request.uri().path()) {
                        let recheck = recheck(&auth, &request, principal.clone());
                        request.extensions_mut().insert(recheck);
                    }
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

/// Whether `path` opens a watch (a `Watch…` rpc), which may stay open long
/// after its credentials were checked.
fn is_watch(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|method| method.starts_with("Watch"))
}

/// Authenticates `request`'s credentials again, as they were, each time it
/// is asked; they hold while they still give `principal`.
fn recheck<B>(
    auth: &Authenticator,
    request: &http::Request<B>,
    principal: crate::Principal,
) -> yunshu_core::principal::Recheck {
    let auth = auth.clone();
    let headers = std::sync::Arc::new(request.headers().clone());
    let extensions = std::sync::Arc::new(request.extensions().clone());
    let principal = std::sync::Arc::new(principal);
    yunshu_core::principal::Recheck::new(auth.watch_recheck(), move || {
        let (auth, headers, extensions, principal) = (
            auth.clone(),
            headers.clone(),
            extensions.clone(),
            principal.clone(),
        );
        Box::pin(async move {
            auth.reauthenticate(&headers, &extensions)
                .await
                .is_ok_and(|p| p == *principal)
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn watches_are_told_apart_by_their_method() {
        assert!(super::is_watch(
            "/yunshu.api.v1.InstanceService/WatchInstances"
        ));
        assert!(!super::is_watch(
            "/yunshu.api.v1.InstanceService/CreateInstance"
        ));
        assert!(!super::is_watch("/yunshu.api.v1.WatchService/List"));
    }
}
