//! What the operator is given ([`OperatorContext`], [`OperatorConfig`]) and
//! what its reconcilers share ([`Ctx`]): the event recorder and the
//! per-object failure counts the error policy backs off with.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client,
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use yunshu_core::{admission::Admission, catalog::Catalog, store::Store};

use crate::{conditions::Notice, credentials::CredentialsHub};

/// The operator's settings; [`Default`] gives production values.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The namespace of the leader-election Lease (the operator's own).
    pub namespace: String,
    /// This replica's identity in the Lease and in events (the pod name).
    pub identity: String,
    /// The Lease's name.
    pub lease_name: String,
    /// How long the Lease holds without renewal (whole seconds).
    pub lease_duration: Duration,
    /// Elect a leader before running the reconcilers; `false` runs them at
    /// once (a single replica).
    pub leader_election: bool,
    /// Watch Secrets only in these namespaces (where foundations keep their
    /// credentials); empty watches every namespace, which the RBAC must
    /// then allow cluster-wide.
    pub secret_namespaces: Vec<String>,
    /// How soon a department resource in a moving phase (Pending, Scheduled,
    /// Provisioning, Deleting) is read again to mirror its status.
    pub poll_active: Duration,
    /// How soon every other object is read again.
    pub resync: Duration,
    /// Attempts for a status write answered with a conflict, throttling or
    /// an outage, before the reconcile fails and is retried later.
    pub status_attempts: u32,
    /// The first wait between those attempts; it doubles each time.
    pub retry_base: Duration,
    /// The sizes and images department resources may request.
    pub catalog: Catalog,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            namespace: "yunshu-system".into(),
            identity: "yunshu".into(),
            lease_name: "yunshu-operator".into(),
            lease_duration: Duration::from_secs(15),
            leader_election: true,
            secret_namespaces: Vec::new(),
            poll_active: Duration::from_secs(5),
            resync: Duration::from_secs(300),
            status_attempts: 5,
            retry_base: Duration::from_millis(200),
            catalog: Catalog::default(),
        }
    }
}

/// Everything [`run`](crate::run) needs, built by the runtime.
#[derive(Clone)]
pub struct OperatorContext {
    /// The Kubernetes client.
    pub client: Client,
    /// Yunshu's store.
    pub store: Arc<dyn Store>,
    /// Admission of department resources (quota, request ids).
    pub admission: Admission,
    /// Where foundation credentials are published.
    pub credentials: CredentialsHub,
    /// Settings.
    pub config: OperatorConfig,
    /// Told the kind of every failed reconcile (the runtime counts them in
    /// `yunshu_reconcile_errors{controller="operator"}`).
    pub on_error: Option<ErrorCounter>,
}

/// Receives the kind of each failed reconcile.
pub type ErrorCounter = Arc<dyn Fn(yunshu_core::error::ErrorKind) + Send + Sync>;

impl fmt::Debug for OperatorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorContext")
            .field("store", &self.store.backend())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What every reconcile shares, behind an `Arc`.
pub struct Ctx {
    /// The operator's inputs.
    pub op: OperatorContext,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("op", &self.op)
            .finish_non_exhaustive()
    }
}

/// The controller name events are reported under.
pub const REPORTER: &str = "yunshu-operator";

impl Ctx {
    /// The shared context of one run.
    pub fn new(op: OperatorContext) -> Arc<Self> {
        let reporter = Reporter {
            controller: REPORTER.into(),
            instance: Some(op.config.identity.clone()),
        };
        Arc::new(Self {
            recorder: Recorder::new(op.client.clone(), reporter),
            op,
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// The Kubernetes client.
    pub fn client(&self) -> Client {
        self.op.client.clone()
    }

    /// The settings.
    pub fn config(&self) -> &OperatorConfig {
        &self.op.config
    }

    /// Publishes an event about `regarding`; a failure is logged, never
    /// fatal (events are informational).
    pub async fn notify(&self, regarding: &ObjectReference, notice: &Notice) {
        let event = Event {
            type_: if notice.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason.clone(),
            note: Some(truncate(&notice.note, 1024)),
            action: notice.action.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, regarding).await {
            tracing::warn!(%error, reason = %notice.reason, name = ?regarding.name, "failed to publish an event");
        }
    }

    /// Counts a failed reconcile of `key` and returns how long to wait
    /// before the next attempt: 1 s doubling to 5 min.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(1u64 << (*n - 1).min(8)).min(Duration::from_secs(300))
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
