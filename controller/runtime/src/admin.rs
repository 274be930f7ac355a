//! The admin HTTP server: `/healthz` (the process runs), `/readyz` (the store
//! answers), `/version`, and `/metrics` (Prometheus text format).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use tokio::net::TcpListener;
use yunshu_core::store::Store;

#[derive(Clone)]
struct AdminState {
    store: Arc<dyn Store>,
    serving: Arc<AtomicBool>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// The admin routes. `/readyz` is ready once `serving` is set (the gRPC API
/// listens) and the store answers.
pub fn router(
    store: Arc<dyn Store>,
    serving: Arc<AtomicBool>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/version",
            get(|| async { concat!("yunshu ", env!("CARGO_PKG_VERSION"), "\n") }),
        )
        .route("/metrics", get(metrics_text))
        .with_state(AdminState {
            store,
            serving,
            metrics,
        })
}

async fn metrics_text(
    State(state): State<AdminState>,
) -> ([(axum::http::header::HeaderName, &'static str); 1], String) {
    let revision = state.store.current_revision().await.ok();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(revision),
    )
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, String) {
    if !state.serving.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the gRPC API is not listening yet\n".into(),
        );
    }
    match state.store.current_revision().await {
        Ok(rev) => (
            StatusCode::OK,
            format!("ready: {} store at revision {rev}\n", state.store.backend()),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {} store: {e}\n", state.store.backend()),
        ),
    }
}

/// Binds the admin address.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("failed to bind the admin address {addr}: {e}"))
}
