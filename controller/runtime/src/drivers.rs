//! Wiring of the loops that drive the clouds: the adapter registry with its
//! call stack, the provisioner, the prober and the orphan sweep, plus the
//! vault that seals the secrets adapters create.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use crate::{
    adapters::{CredentialFiles, Registry, StackConfig, factory::Builtin, stack::AdapterMetrics},
    cli::{ServeArgs, StoreKind},
    metrics::Metrics,
    prober::{Prober, ProberConfig},
    provisioner::{Provisioner, ProvisionerConfig},
    reconcile::ReconcileMetrics,
    serve::Context,
    singleton,
    sweeper::Sweeper,
};

/// How long the elected replica's lease lives without renewal: a replica
/// that dies is replaced within about one and a half of these.
const ELECTION_TTL: Duration = Duration::from_secs(10);

/// The running loops and what the API needs from them.
#[derive(Debug)]
pub struct Drivers {
    /// The adapter clients.
    pub registry: Arc<Registry>,
    /// Foundation credentials (files, and Secrets the operator publishes).
    pub credentials: Arc<CredentialFiles>,
    /// Reboots and bucket credentials, for the API.
    pub actions: Arc<crate::actions::RuntimeActions>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Drivers {
    /// Waits up to `grace` for every loop to stop.
    pub async fn join(self, grace: Duration) {
        for (name, task) in self.tasks {
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!(loop_ = name, "did not stop within the grace period");
            }
        }
    }
}

/// Spawns a loop, logging why it stopped if it failed.
fn spawn_loop(
    name: &'static str,
    run: impl Future<Output = yunshu_core::Result<()>> + Send + 'static,
) -> (&'static str, JoinHandle<()>) {
    let task = tokio::spawn(async move {
        if let Err(e) = run.await {
            tracing::error!(error = %e, loop_ = name, "a driver loop stopped");
        }
    });
    (name, task)
}

/// The master keys: those at `--master-keys`; else, on the memory store
/// (which writes nothing to disk and forgets every sealed secret on exit), a
/// key held in memory; else `<data-dir>/master-keys`, generated there on
/// first start unless the store is shared (etcd), where every replica must
/// be given the same keys.
fn master_keys(args: &ServeArgs) -> anyhow::Result<yunshu_vault::KeyRing> {
    let dir = match (&args.master_keys, args.store) {
        (Some(path), _) => path.clone(),
        (None, StoreKind::Memory) => {
            tracing::info!(
                "memory store: secrets are sealed under a key that lives as long as this process"
            );
            return Ok(yunshu_vault::KeyRing::generate());
        }
        (None, _) => args.data_dir.join("master-keys"),
    };
    if dir.exists() {
        yunshu_vault::KeyRing::load(&dir)
            .map_err(|e| anyhow::anyhow!("--master-keys {}: {e}", dir.display()))
    } else if args.master_keys.is_none() && args.store != StoreKind::Etcd {
        tracing::info!(dir = %dir.display(), "no master keys yet; generated one (back it up with the data directory)");
        yunshu_vault::KeyRing::generate_dir(&dir)
            .map_err(|e| anyhow::anyhow!("cannot create master keys in {}: {e}", dir.display()))
    } else {
        anyhow::bail!(
            "--master-keys {}: no such directory; with a shared store every replica needs the same keys \
             (create them with a Secret, or run once with the embedded store to generate a directory)",
            dir.display()
        )
    }
}

/// Opens the vault over the store with [`master_keys`].
fn open_vault(args: &ServeArgs, ctx: &Context) -> anyhow::Result<Arc<yunshu_vault::Vault>> {
    Ok(Arc::new(yunshu_vault::Vault::new(
        ctx.store.clone(),
        master_keys(args)?,
    )))
}

/// Starts the registry, provisioner, prober and sweeper.
pub async fn start(
    args: &ServeArgs,
    ctx: &Context,
    metrics: &Arc<Metrics>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Drivers> {
    let adapter_metrics = Arc::new(AdapterMetrics::default());
    let reconcile_metrics = Arc::new(ReconcileMetrics::default());
    metrics.with_registry(|r| {
        adapter_metrics.register(r);
        reconcile_metrics.register(r);
    });
    let vault = open_vault(args, ctx)?;
    let credentials = Arc::new(CredentialFiles::default());
    let registry = Arc::new(Registry::new(
        Arc::new(Builtin::new(vault.clone())),
        credentials.clone(),
        StackConfig {
            timeout: args.adapter_timeout,
            ..StackConfig::default()
        },
        adapter_metrics,
    ));
    let provisioner = Provisioner::new(
        ctx.store.clone(),
        ctx.admission.clone(),
        registry.clone(),
        ProvisionerConfig {
            workers: args.provision_workers,
            ..ProvisionerConfig::default()
        },
        reconcile_metrics.clone(),
    );
    let prober = Prober::new(
        ctx.store.clone(),
        registry.clone(),
        ProberConfig {
            interval: args.probe_interval,
            down_after: args.down_after,
            ..ProberConfig::default()
        },
        reconcile_metrics.clone(),
    );
    let sweeper = Sweeper::new(
        ctx.store.clone(),
        registry.clone(),
        args.sweep_interval,
        reconcile_metrics.clone(),
    );
    let actions = Arc::new(crate::actions::RuntimeActions::new(
        ctx.store.clone(),
        registry.clone(),
        vault.clone(),
    ));
    let (store, reg, every) = (ctx.store.clone(), registry.clone(), args.sweep_interval);
    // Only etcd is shared: the embedded store's file admits one process,
    // which leads from the start (and at once after a kill -9, rather than
    // when its previous lease runs out).
    let leader = if args.store == StoreKind::Etcd {
        singleton::elect(
            ctx.store.clone(),
            singleton::ELECTION,
            format!("{}/{}", args.identity, std::process::id()),
            ELECTION_TTL,
            stop.clone(),
        )
    } else {
        watch::channel(true).1
    };
    let (retention, retention_metrics) = (args.request_retention, reconcile_metrics.clone());
    let (meter_every, currency) = (args.meter_interval, args.currency.clone());
    let singletons = singleton::while_leading(leader, stop.clone(), move |term| {
        let (store, reg, vault) = (store.clone(), reg.clone(), vault.clone());
        let swept = crate::retention::run(
            store.clone(),
            retention,
            retention_metrics.clone(),
            term.clone(),
        );
        let metered = crate::meter::run(
            store.clone(),
            meter_every,
            currency.clone(),
            retention_metrics.clone(),
            term.clone(),
        );
        let (provisioner, prober, sweeper) = (provisioner.clone(), prober.clone(), sweeper.clone());
        let mut s = term.clone();
        vec![
            spawn_loop("credential-expiry", async move {
                while singleton::pause(every, &mut s).await {
                    match crate::actions::expire(&store, &reg, &*vault).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(revoked = n, "expired bucket credentials revoked"),
                        Err(e) => tracing::warn!(error = %e, "credential expiry sweep failed"),
                    }
                }
                Ok(())
            }),
            spawn_loop("provisioner", provisioner.run(term.clone())),
            spawn_loop("prober", prober.run(term.clone())),
            spawn_loop("sweeper", sweeper.run(term)),
            spawn_loop("retention", swept),
            spawn_loop("meter", metered),
        ]
    });
    let mut tasks = vec![("singletons", singletons)];
    if args.kubernetes {
        tasks.push((
            "operator",
            start_operator(args, ctx, &credentials, reconcile_metrics, stop).await?,
        ));
    }
    Ok(Drivers {
        registry,
        credentials,
        actions,
        tasks,
    })
}

/// Starts the Kubernetes operator and routes the Secrets it reads into the
/// adapter registry's credentials.
async fn start_operator(
    args: &ServeArgs,
    ctx: &Context,
    credentials: &Arc<CredentialFiles>,
    metrics: Arc<ReconcileMetrics>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let client = kube::Client::try_default().await.map_err(|e| {
        anyhow::anyhow!(
            "--kubernetes: no Kubernetes API to talk to (in-cluster or kubeconfig): {e}"
        )
    })?;
    let hub = yunshu_k8s::CredentialsHub::new();
    let lookup = hub.clone();
    credentials.set_secret_lookup(Arc::new(move |foundation: &str| lookup.current(foundation)));
    let operator = yunshu_k8s::OperatorContext {
        client,
        store: ctx.store.clone(),
        admission: ctx.admission.clone(),
        credentials: hub,
        on_error: Some(Arc::new(move |kind| metrics.error("operator", kind))),
        config: yunshu_k8s::OperatorConfig {
            namespace: args.namespace.clone(),
            identity: args.identity.clone(),
            secret_namespaces: args.secret_namespaces.clone(),
            ..yunshu_k8s::OperatorConfig::default()
        },
    };
    let mut stop = stop.clone();
    Ok(tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = yunshu_k8s::run(operator, shutdown).await {
            tracing::error!(error = %e, "the operator stopped");
        }
    }))
}
