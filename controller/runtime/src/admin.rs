//! The admin HTTP server: `/healthz` (the process runs), `/readyz` (the store
//! answers), `/version`. Metrics join it in the monitoring work.

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
}

/// The admin routes. `/readyz` is ready once `serving` is set (the gRPC API
/// listens) and the store answers.
pub fn router(store: Arc<dyn Store>, serving: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/version",
            get(|| async { concat!("yunshu ", env!("CARGO_PKG_VERSION"), "\n") }),
        )
        .with_state(AdminState { store, serving })
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
