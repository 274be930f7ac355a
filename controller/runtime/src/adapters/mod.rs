//! The runtime's side of the adapters: one [`FoundationClient`] per
//! foundation, which sends every call through the tower stack of
//! [`stack`] (metrics, circuit breaker, retry, token bucket, timeout), and
//! the [`Registry`] that builds those clients from the foundations in the
//! store and their credentials, rebuilding one when its spec or its
//! credentials change.
//!
//! A foundation without a credentials reference has no adapter: it is a
//! declared foundation (standalone mode, or a foundation Yunshu schedules
//! onto but does not drive), so nothing is probed or provisioned on it.

pub mod budget;
pub mod circuit;
pub mod factory;
pub mod stack;

use std::{
    collections::HashMap,
    future::Future,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::future::BoxFuture;
use tower::Service;
use yunshu_core::{
    adapter::{
        Adapter, CloudResource, Credentials, DeleteOptions, InstanceAction, IssuedCredentials,
        Owner, Probe,
    },
    error::{Error, Result},
    meta::Kind,
    model::{
        BucketSpec, CredentialsRef, Foundation, FoundationSpec, InstanceSpec, TenantMapping,
        VolumeSpec,
    },
};

pub use budget::Priority;
use budget::TokenBucket;
use circuit::{Circuit, CircuitConfig, CircuitState};
use stack::{
    AdapterMetrics, Breaker, Budgeted, Call, Invoke, Measured, Retry, RetryPolicy, Timeout,
};

/// Settings shared by every foundation's stack.
#[derive(Debug, Clone, Copy)]
pub struct StackConfig {
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// The circuit breaker.
    pub circuit: CircuitConfig,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            circuit: CircuitConfig::default(),
        }
    }
}

type Svc = Measured<Breaker<Retry<Budgeted<Timeout<Invoke>>>>>;

/// One foundation's adapter behind the call stack.
#[derive(Clone)]
pub struct FoundationClient {
    name: Arc<str>,
    svc: Svc,
    circuit: Arc<Circuit>,
    adapter: Arc<dyn Adapter>,
}

impl std::fmt::Debug for FoundationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoundationClient")
            .field("name", &self.name)
            .field("adapter", &self.adapter.kind())
            .finish_non_exhaustive()
    }
}

impl FoundationClient {
    /// Wraps `adapter` in the stack for foundation `name`.
    pub fn new(
        name: &str,
        adapter: Arc<dyn Adapter>,
        budget: yunshu_core::model::Budget,
        config: &StackConfig,
        metrics: Arc<AdapterMetrics>,
    ) -> Self {
        let name: Arc<str> = Arc::from(name);
        let circuit = Arc::new(Circuit::new(config.circuit));
        let svc = Measured::new(
            Breaker::new(
                Retry::new(
                    Budgeted::new(
                        Timeout::new(Invoke::new(adapter.clone()), config.timeout, name.clone()),
                        Arc::new(TokenBucket::new(budget)),
                    ),
                    config.retry,
                    metrics.clone(),
                    name.clone(),
                ),
                circuit.clone(),
                name.clone(),
            ),
            metrics.clone(),
            name.clone(),
        );
        metrics.set_circuit(&name, CircuitState::Closed.gauge());
        metrics.init_foundation(&name);
        let mut states = circuit.subscribe();
        let (gauge_name, gauge) = (name.clone(), metrics);
        tokio::spawn(async move {
            while states.changed().await.is_ok() {
                let state = *states.borrow_and_update();
                gauge.set_circuit(&gauge_name, state.gauge());
            }
        });
        Self {
            name,
            svc,
            circuit,
            adapter,
        }
    }

    /// The foundation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The breaker, to follow its state.
    pub fn circuit(&self) -> &Arc<Circuit> {
        &self.circuit
    }

    /// What the adapter can do.
    pub fn capabilities(&self) -> yunshu_core::adapter::Capabilities {
        self.adapter.capabilities()
    }

    /// Sends one operation through the stack. `run` is called once per
    /// attempt.
    pub async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        priority: Priority,
        run: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Adapter>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let run: stack::Run<T> =
            Arc::new(move |a| -> BoxFuture<'static, Result<T>> { Box::pin(run(a)) });
        let mut svc = self.svc.clone();
        svc.call(Call {
            operation,
            priority,
            run,
        })
        .await
    }

    /// Health and inventory.
    pub async fn probe(&self) -> Result<Probe> {
        self.call(
            "probe",
            Priority::Background,
            |a| async move { a.probe().await },
        )
        .await
    }

    /// The department's tenant.
    pub async fn ensure_tenant(
        &self,
        department: &str,
        priority: Priority,
    ) -> Result<TenantMapping> {
        let d = department.to_owned();
        self.call("ensure_tenant", priority, move |a| {
            let d = d.clone();
            async move { a.ensure_tenant(&d).await }
        })
        .await
    }

    /// Creates or finds an instance.
    pub async fn create_instance(
        &self,
        owner: &Owner,
        spec: &InstanceSpec,
    ) -> Result<CloudResource> {
        let (o, s) = (owner.clone(), spec.clone());
        self.call("create_instance", Priority::User, move |a| {
            let (o, s) = (o.clone(), s.clone());
            async move { a.create_instance(&o, &s).await }
        })
        .await
    }

    /// Creates or finds a volume.
    pub async fn create_volume(&self, owner: &Owner, spec: &VolumeSpec) -> Result<CloudResource> {
        let (o, s) = (owner.clone(), spec.clone());
        self.call("create_volume", Priority::User, move |a| {
            let (o, s) = (o.clone(), s.clone());
            async move { a.create_volume(&o, &s).await }
        })
        .await
    }

    /// Creates or finds a bucket.
    pub async fn create_bucket(&self, owner: &Owner, spec: &BucketSpec) -> Result<CloudResource> {
        let (o, s) = (owner.clone(), spec.clone());
        self.call("create_bucket", Priority::User, move |a| {
            let (o, s) = (o.clone(), s.clone());
            async move { a.create_bucket(&o, &s).await }
        })
        .await
    }

    /// The current state of an owned resource.
    pub async fn get(
        &self,
        kind: Kind,
        owner: &Owner,
        priority: Priority,
    ) -> Result<CloudResource> {
        let o = owner.clone();
        self.call("get", priority, move |a| {
            let o = o.clone();
            async move { a.get(kind, &o).await }
        })
        .await
    }

    /// Deletes an owned resource.
    pub async fn delete(&self, kind: Kind, owner: &Owner, opts: DeleteOptions) -> Result<()> {
        let o = owner.clone();
        self.call("delete", Priority::User, move |a| {
            let o = o.clone();
            async move { a.delete(kind, &o, opts).await }
        })
        .await
    }

    /// Attaches a volume to an instance.
    pub async fn attach_volume(&self, volume: &Owner, instance: &Owner) -> Result<()> {
        let (v, i) = (volume.clone(), instance.clone());
        self.call("attach_volume", Priority::User, move |a| {
            let (v, i) = (v.clone(), i.clone());
            async move { a.attach_volume(&v, &i).await }
        })
        .await
    }

    /// Detaches a volume.
    pub async fn detach_volume(&self, volume: &Owner) -> Result<()> {
        let v = volume.clone();
        self.call("detach_volume", Priority::User, move |a| {
            let v = v.clone();
            async move { a.detach_volume(&v).await }
        })
        .await
    }

    /// Acts on an instance.
    pub async fn instance_action(&self, owner: &Owner, action: InstanceAction) -> Result<()> {
        let o = owner.clone();
        self.call("instance_action", Priority::User, move |a| {
            let o = o.clone();
            async move { a.instance_action(&o, action).await }
        })
        .await
    }

    /// Every Yunshu-tagged resource of a kind.
    pub async fn list_owned(&self, kind: Kind) -> Result<Vec<CloudResource>> {
        self.call("list_owned", Priority::Background, move |a| async move {
            a.list_owned(kind).await
        })
        .await
    }

    /// Issues credentials.
    pub async fn issue_credentials(
        &self,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<IssuedCredentials> {
        let o = owner.clone();
        self.call("issue_credentials", Priority::User, move |a| {
            let o = o.clone();
            async move { a.issue_credentials(&o, ttl).await }
        })
        .await
    }

    /// Revokes credentials.
    pub async fn revoke_credentials(&self, owner: &Owner, access_key: &str) -> Result<()> {
        let (o, k) = (owner.clone(), access_key.to_owned());
        self.call("revoke_credentials", Priority::User, move |a| {
            let (o, k) = (o.clone(), k.clone());
            async move { a.revoke_credentials(&o, &k).await }
        })
        .await
    }

    /// Revokes every issued credential past its expiry, as the server
    /// knows them; how many.
    pub async fn revoke_expired_credentials(&self) -> Result<usize> {
        self.call(
            "revoke_expired_credentials",
            Priority::Background,
            |a| async move { a.revoke_expired_credentials().await },
        )
        .await
    }
}

/// Builds an adapter for a foundation.
pub trait AdapterFactory: Send + Sync + std::fmt::Debug {
    /// An adapter for foundation `name` with `spec`, acting with `credentials`.
    fn build(
        &self,
        name: &str,
        spec: &FoundationSpec,
        credentials: Credentials,
    ) -> BoxFuture<'static, Result<Arc<dyn Adapter>>>;
}

/// Where foundation credentials come from.
pub trait CredentialsSource: Send + Sync + std::fmt::Debug {
    /// The credentials `reference` of foundation `foundation` points at;
    /// `None` while not available (e.g. a Secret not synced yet).
    fn credentials(
        &self,
        foundation: &str,
        reference: &CredentialsRef,
    ) -> Result<Option<Credentials>>;
}

/// Reads `File` references from disk (a YAML or JSON map of strings), and
/// `Secret` references from what the operator published.
#[derive(Default)]
pub struct CredentialFiles {
    secrets: Mutex<HashMap<(String, String), Credentials>>,
    by_foundation: Mutex<Option<SecretLookup>>,
}

/// Looks a foundation's Secret credentials up by foundation name (the
/// operator's credentials hub).
pub type SecretLookup = Arc<dyn Fn(&str) -> Option<Credentials> + Send + Sync>;

impl std::fmt::Debug for CredentialFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialFiles").finish_non_exhaustive()
    }
}

impl CredentialFiles {
    /// Answers Secret references through `lookup` (Kubernetes mode).
    pub fn set_secret_lookup(&self, lookup: SecretLookup) {
        *self
            .by_foundation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(lookup);
    }

    /// Publishes (or replaces) a Secret's data, as the operator reads it.
    pub fn publish_secret(&self, namespace: &str, name: &str, credentials: Credentials) {
        self.secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((namespace.to_owned(), name.to_owned()), credentials);
    }
}

/// Reads a credentials file: a flat YAML (or JSON) map of strings.
pub fn read_credentials_file(path: &Path) -> Result<Credentials> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid(
            "spec.credentials.file.path",
            format!("cannot read {}: {}", path.display(), e.kind()),
        )
    })?;
    let map: std::collections::BTreeMap<String, serde_yaml::Value> = serde_yaml::from_str(&text)
        .map_err(|_| {
            Error::invalid(
                "spec.credentials.file.path",
                format!("{} must be a YAML map of string keys", path.display()),
            )
        })?;
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in map {
        let v = match v {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(Error::invalid(
                    format!("credentials.{k}"),
                    format!("in {} must be a string", path.display()),
                ));
            }
        };
        out.insert(k, v);
    }
    Ok(Credentials(out))
}

impl CredentialsSource for CredentialFiles {
    fn credentials(
        &self,
        foundation: &str,
        reference: &CredentialsRef,
    ) -> Result<Option<Credentials>> {
        match reference {
            CredentialsRef::File { path } => read_credentials_file(Path::new(path)).map(Some),
            CredentialsRef::Secret { .. }
                if self
                    .by_foundation
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some() =>
            {
                let lookup = self
                    .by_foundation
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                Ok(lookup.and_then(|l| l(foundation)))
            }
            CredentialsRef::Secret { namespace, name } => Ok(self
                .secrets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&(namespace.clone(), name.clone()))
                .cloned()),
        }
    }
}

struct Entry {
    spec: FoundationSpec,
    credentials: Credentials,
    client: FoundationClient,
}

/// The clients of every driven foundation.
pub struct Registry {
    factory: Arc<dyn AdapterFactory>,
    credentials: Arc<dyn CredentialsSource>,
    config: StackConfig,
    metrics: Arc<AdapterMetrics>,
    clients: tokio::sync::Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new(
        factory: Arc<dyn AdapterFactory>,
        credentials: Arc<dyn CredentialsSource>,
        config: StackConfig,
        metrics: Arc<AdapterMetrics>,
    ) -> Self {
        Self {
            factory,
            credentials,
            config,
            metrics,
            clients: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The call metrics.
    pub fn metrics(&self) -> &Arc<AdapterMetrics> {
        &self.metrics
    }

    /// The client of `foundation`, built or rebuilt as needed; `None` when
    /// the foundation names no credentials (or they are not available yet).
    pub async fn client(&self, foundation: &Foundation) -> Result<Option<FoundationClient>> {
        let name = &foundation.meta.name;
        let Some(reference) = &foundation.spec.credentials else {
            return Ok(None);
        };
        let Some(credentials) = self.credentials.credentials(name, reference)? else {
            return Ok(None);
        };
        let mut clients = self.clients.lock().await;
        if let Some(e) = clients.get(name)
            && e.spec == foundation.spec
            && e.credentials == credentials
        {
            return Ok(Some(e.client.clone()));
        }
        let adapter = self
            .factory
            .build(name, &foundation.spec, credentials.clone())
            .await?;
        let client = FoundationClient::new(
            name,
            adapter,
            foundation.spec.budget,
            &self.config,
            self.metrics.clone(),
        );
        if clients.contains_key(name) {
            tracing::info!(foundation = %name, "foundation spec or credentials changed; adapter rebuilt");
        }
        clients.insert(
            name.clone(),
            Entry {
                spec: foundation.spec.clone(),
                credentials,
                client: client.clone(),
            },
        );
        Ok(Some(client))
    }

    /// The client built earlier for `name`, if any.
    pub async fn cached(&self, name: &str) -> Option<FoundationClient> {
        self.clients
            .lock()
            .await
            .get(name)
            .map(|e| e.client.clone())
    }

    /// Forgets a removed foundation.
    pub async fn forget(&self, name: &str) {
        self.clients.lock().await.remove(name);
        self.metrics.forget(name);
    }
}
