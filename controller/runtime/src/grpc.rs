//! Serving the gRPC API: the identity index kept current from the store,
//! the authentication layer in front of every service, optional TLS (and
//! mutual TLS), graceful shutdown.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use futures::StreamExt;
use tokio::sync::watch;
use tonic::transport::{Identity, Server};
use yunshu_auth::{AuthConfig, Authenticator, IdentityIndex, server_tls_config};
use yunshu_core::{
    codec, keys,
    meta::Kind,
    model::Department,
    store::{EventKind, Store, StoreExt},
};
use yunshu_grpc::Api;

/// How to serve gRPC.
#[derive(Debug, Clone)]
pub struct GrpcSettings {
    /// Listen address.
    pub addr: SocketAddr,
    /// Server certificate and key (PEM); plaintext when absent.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Authentication methods.
    pub auth: AuthConfig,
    /// Plaintext on an address other than loopback is allowed.
    pub allow_plaintext: bool,
}

/// Reads every department; returns them and the revision read at.
async fn departments(store: &dyn Store) -> anyhow::Result<(Vec<Department>, i64)> {
    let rev = store.current_revision().await?;
    let kvs = store
        .range_all(&keys::objects(Kind::Department, None), 500)
        .await?;
    let depts = kvs
        .iter()
        .map(codec::decode_object)
        .collect::<Result<Vec<Department>, _>>()?;
    Ok((depts, rev))
}

/// Keeps the identity index equal to the departments in the store: list,
/// then watch; relist when the watch history was compacted.
pub fn keep_index_current(store: Arc<dyn Store>, index: IdentityIndex, from: i64) {
    tokio::spawn(async move {
        let prefix = keys::objects(Kind::Department, None);
        let mut next = from + 1;
        loop {
            let mut stream = match store.watch(&prefix, next).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "failed to watch departments; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(ev) => {
                        // Not + 1: a revision may hold more department
                        // changes than arrived before a stream ends, and
                        // applying one again is harmless.
                        next = ev.kv.mod_revision;
                        match ev.kind {
                            EventKind::Put => match codec::decode_object::<
                                yunshu_core::model::DepartmentSpec,
                            >(&ev.kv)
                            {
                                Ok(d) => index.upsert(&d),
                                Err(e) => {
                                    tracing::warn!(error = %e, key = %ev.kv.key, "skipping an unreadable department")
                                }
                            },
                            EventKind::Delete => {
                                index.remove(ev.kv.key.rsplit('/').next().unwrap_or_default());
                            }
                        }
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "department watch ended; relisting");
                        match departments(&*store).await {
                            Ok((depts, rev)) => {
                                index.replace_all(&depts);
                                next = rev + 1;
                            }
                            Err(e) => tracing::warn!(error = %e, "failed to relist departments"),
                        }
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// Serves until `stop` turns true; sets `serving` once it listens.
pub async fn serve(
    api: Api,
    settings: GrpcSettings,
    serving: Arc<std::sync::atomic::AtomicBool>,
    metrics: Arc<crate::metrics::Metrics>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (depts, rev) = departments(&*api.store).await?;
    let index = IdentityIndex::from_departments(&depts);
    keep_index_current(api.store.clone(), index.clone(), rev);
    let auth = Authenticator::new(&settings.auth, index)
        .await
        .map_err(|e| anyhow::anyhow!("authentication settings: {e}"))?;
    let mut builder = Server::builder();
    if let Some((cert, key)) = &settings.tls {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| anyhow::anyhow!("failed to read {}: {e}", p.display()))
        };
        let identity = Identity::from_pem(read(cert)?, read(key)?);
        let tls = server_tls_config(identity, settings.auth.mtls.as_ref())
            .map_err(|e| anyhow::anyhow!("TLS settings: {e}"))?;
        builder = builder
            .tls_config(tls)
            .map_err(|e| anyhow::anyhow!("TLS settings: {e}"))?;
    } else if settings.auth.mtls.is_some() {
        anyhow::bail!(
            "auth.mtls needs --tls-cert and --tls-key: client certificates are only seen over TLS"
        );
    } else if !settings.addr.ip().is_loopback() && !settings.allow_plaintext {
        anyhow::bail!(
            "--grpc-addr {} is not loopback and the gRPC API has no TLS, so tokens would cross the network in clear text: set --tls-cert and --tls-key, or --allow-plaintext behind a proxy or mesh that encrypts the traffic",
            settings.addr
        );
    }
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .map_err(|e| anyhow::anyhow!("failed to bind the gRPC address {}: {e}", settings.addr))?;
    tracing::info!(addr = %settings.addr, tls = settings.tls.is_some(), "gRPC API listening");
    serving.store(true, std::sync::atomic::Ordering::Release);
    metrics.watch_auth(auth.clone());
    serve_on(builder, api, &auth, metrics, listener, async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await
}

/// Connections accepted from `listener`, with Nagle's algorithm off: a
/// unary answer is one small write, and holding it back for an ACK costs a
/// caller milliseconds.
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Serves every service on `listener` behind the layers each call passes —
/// metrics outermost, then authentication — until `shutdown` resolves.
/// `serve` runs exactly this, and so does the grpc-bench, so what the
/// benchmark measures is what a department calls.
pub async fn serve_on(
    builder: Server,
    api: Api,
    auth: &Authenticator,
    metrics: Arc<crate::metrics::Metrics>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let routes = yunshu_grpc::server::routes(api)
        .await
        .map_err(|e| anyhow::anyhow!("failed to build the gRPC services: {e}"))?;
    builder
        .layer(crate::metrics::GrpcMetricsLayer(metrics))
        .layer(auth.layer())
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("gRPC server failed: {e}"))
}
