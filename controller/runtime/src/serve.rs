//! `yunshu serve`: open the store, wire the components, serve until a
//! signal, then drain and stop.

use std::sync::Arc;

use tokio::sync::watch;
use yunshu_core::{
    admission::{Admission, AdmissionConfig},
    store::Store,
};
use yunshu_store::{EtcdConfig, StoreConfig};

use crate::{
    cli::{ServeArgs, StoreKind},
    config::Config,
    grpc::GrpcSettings,
};

/// The store configuration the flags describe.
pub fn store_config(args: &ServeArgs) -> StoreConfig {
    match args.store {
        StoreKind::Embedded => StoreConfig::Embedded {
            path: args.data_dir.join("yunshu.redb"),
        },
        StoreKind::Memory => StoreConfig::Memory,
        StoreKind::Etcd => StoreConfig::Etcd(EtcdConfig {
            endpoints: args.etcd_endpoints.clone(),
            request_timeout: args.etcd_timeout,
            max_txn_ops: args.etcd_max_txn_ops,
            ..EtcdConfig::new(args.etcd_endpoints.clone())
        }),
    }
}

/// What a running control plane shares with its components.
#[derive(Debug, Clone)]
pub struct Context {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Group-committed admission.
    pub admission: Admission,
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let store = yunshu_store::open(&store_config(&args))
        .await
        .map_err(|e| anyhow::anyhow!("failed to open the {:?} store: {e}", args.store))?;
    let revision = store
        .current_revision()
        .await
        .map_err(|e| anyhow::anyhow!("the store does not answer: {e}"))?;
    let ctx = Context {
        admission: Admission::new(
            store.clone(),
            AdmissionConfig {
                max_batch: args.admission_max_batch,
                ..AdmissionConfig::default()
            },
        ),
        store,
    };
    tracing::info!(
        store = ctx.store.backend(),
        revision,
        admission_batch = ctx.admission.max_batch(),
        "store opened"
    );
    let declared = config.apply(&*ctx.store).await?;
    if args.config.is_some() {
        tracing::info!(changed = declared, "configuration applied");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let scheduler = yunshu_placement::Scheduler::new(
        ctx.store.clone(),
        yunshu_placement::SchedulerConfig::default(),
    );
    let metrics = Arc::new(crate::metrics::Metrics::new());
    metrics.instrument(
        ctx.store.clone(),
        &ctx.admission,
        &scheduler,
        stop_rx.clone(),
    );
    let scheduling = {
        let (scheduler, stop) = (scheduler.clone(), stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = scheduler.run(stop).await {
                tracing::error!(error = %e, "the scheduling loop stopped");
            }
        })
    };
    let drivers = crate::drivers::start(&args, &ctx, &metrics, &stop_rx).await?;
    let api = yunshu_grpc::Api {
        store: ctx.store.clone(),
        admission: ctx.admission.clone(),
        catalog: Arc::new(config.catalog.clone().unwrap_or_default()),
        placement: Some(scheduler),
        actions: Some(drivers.actions.clone()),
        crds_own_config: args.kubernetes,
        currency: args.currency.clone(),
    };
    let auth = config.auth.clone().unwrap_or_default();
    let settings = GrpcSettings {
        addr: args.grpc_addr,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        auth,
        allow_plaintext: args.allow_plaintext,
    };
    let serving = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut grpc = tokio::spawn(crate::grpc::serve(
        api,
        settings,
        serving.clone(),
        metrics.clone(),
        stop_rx.clone(),
    ));
    let listener = crate::admin::bind(args.admin_addr).await?;
    tracing::info!(addr = %args.admin_addr, "admin server listening");
    let mut admin_stop = stop_rx.clone();
    let admin = tokio::spawn(async move {
        axum::serve(
            listener,
            crate::admin::router(ctx.store.clone(), serving, metrics),
        )
        .with_graceful_shutdown(async move {
            let _ = admin_stop.wait_for(|s| *s).await;
        })
        .await
    });

    let signal = tokio::select! {
        s = shutdown_signal() => s,
        r = &mut grpc => {
            let _ = stop_tx.send(true);
            return match r {
                Ok(Ok(())) => Err(anyhow::anyhow!("the gRPC server stopped unexpectedly")),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::anyhow!("the gRPC server task failed: {e}")),
            };
        }
    };
    tracing::info!(signal, "shutting down");
    let _ = stop_tx.send(true);
    match tokio::time::timeout(args.shutdown_grace, grpc).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "gRPC server failed while stopping"),
        Ok(Err(e)) => tracing::warn!(error = %e, "gRPC server task failed"),
        Err(_) => tracing::warn!(grace = ?args.shutdown_grace, "gRPC drain ran out of grace"),
    }
    match tokio::time::timeout(args.shutdown_grace, admin).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "admin server failed while stopping"),
        Ok(Err(e)) => tracing::warn!(error = %e, "admin server task failed"),
        Err(_) => tracing::warn!(grace = ?args.shutdown_grace, "shutdown grace period ran out"),
    }
    if tokio::time::timeout(args.shutdown_grace, scheduling)
        .await
        .is_err()
    {
        tracing::warn!("the scheduling loop did not stop within the grace period");
    }
    drivers.join(args.shutdown_grace).await;
    drop(stop_rx);
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
