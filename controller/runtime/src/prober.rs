//! The prober: keeps every driven foundation's status current — health,
//! API latency and measured inventory — which is what the scheduler places
//! against.
//!
//! One task per driven foundation probes it every `interval` through the
//! adapter stack (as background work, so department calls go first). A
//! failed probe makes the foundation Degraded at once, and Down once it has
//! not answered for `down_after`; the scheduler avoids both. The circuit
//! breaker opening between probes (department calls failing) also marks it
//! Degraded straight away. The first probe that succeeds again makes it
//! Ready: recovery needs no one to step in.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use tokio::{sync::watch, task::JoinHandle};
use yunshu_core::{
    adapter::Probe,
    codec,
    error::{Error, ErrorKind, Result},
    keys,
    meta::{ConditionStatus, Kind, condition_types, set_condition},
    model::{Foundation, FoundationSpec, Health},
    store::{Store, StoreExt},
};

use crate::{
    adapters::{Registry, circuit::CircuitState},
    provisioner::mutate,
    reconcile::ReconcileMetrics,
};

/// Prober settings.
#[derive(Debug, Clone, Copy)]
pub struct ProberConfig {
    /// Time between probes of one foundation.
    pub interval: Duration,
    /// How long a foundation may fail its probes before it counts as Down
    /// rather than Degraded.
    pub down_after: Duration,
    /// How often the list of foundations is read again.
    pub rescan: Duration,
}

impl Default for ProberConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            down_after: Duration::from_secs(300),
            rescan: Duration::from_secs(2),
        }
    }
}

/// The prober.
#[derive(Debug)]
pub struct Prober {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    config: ProberConfig,
    metrics: Arc<ReconcileMetrics>,
}

impl Prober {
    /// A prober of the foundations in `store`.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        config: ProberConfig,
        metrics: Arc<ReconcileMetrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            registry,
            config,
            metrics,
        })
    }

    /// Runs until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut tasks: HashMap<String, JoinHandle<()>> = HashMap::new();
        loop {
            match self
                .store
                .range_all(&keys::objects_of_kind(Kind::Foundation), 500)
                .await
            {
                Ok(kvs) => {
                    let mut seen = Vec::new();
                    for kv in &kvs {
                        let Ok(f) = codec::decode_object::<FoundationSpec>(kv) else {
                            continue;
                        };
                        if f.spec.credentials.is_none() {
                            continue;
                        }
                        seen.push(f.meta.name.clone());
                        let running = tasks.get(&f.meta.name).is_some_and(|t| !t.is_finished());
                        if !running {
                            let (me, name, stop) =
                                (self.clone(), f.meta.name.clone(), stop.clone());
                            tasks.insert(
                                f.meta.name.clone(),
                                tokio::spawn(async move { me.follow(name, stop).await }),
                            );
                        }
                    }
                    tasks.retain(|name, t| {
                        let keep = seen.contains(name);
                        if !keep {
                            t.abort();
                        }
                        keep
                    });
                }
                Err(e) => {
                    self.metrics.error("prober", e.kind());
                    tracing::warn!(error = %e, "prober cannot list foundations");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.rescan) => {}
                _ = stop.changed() => break,
            }
        }
        for t in tasks.values() {
            t.abort();
        }
        Ok(())
    }

    /// Probes one foundation until it is removed, loses its adapter, or
    /// `stop` turns true.
    async fn follow(&self, name: String, mut stop: watch::Receiver<bool>) {
        let key = keys::object(Kind::Foundation, None, &name);
        let began = Instant::now();
        let mut last_ok: Option<Instant> = None;
        loop {
            let foundation = match self.store.get(&key).await {
                Ok(Some(kv)) => match codec::decode_object::<FoundationSpec>(&kv) {
                    Ok(f) => f,
                    Err(_) => return,
                },
                Ok(None) => {
                    self.registry.forget(&name).await;
                    return;
                }
                Err(e) => {
                    self.metrics.error("prober", e.kind());
                    tokio::time::sleep(self.config.interval).await;
                    continue;
                }
            };
            let client = match self.registry.client(&foundation).await {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    self.metrics.error("prober", e.kind());
                    let _ = self.record_failure(&key, &e, began, last_ok).await;
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.interval) => continue,
                        _ = stop.changed() => return,
                    }
                }
            };
            match client.probe().await {
                Ok(probe) => {
                    last_ok = Some(Instant::now());
                    let degraded = client.circuit().state() == CircuitState::Open;
                    let seen = Seen {
                        kinds: client.capabilities().kinds,
                        error_rate: client.circuit().error_rate(),
                    };
                    if let Err(e) = self
                        .record_probe(&key, &foundation, probe, seen, degraded)
                        .await
                    {
                        self.metrics.error("prober", e.kind());
                    }
                }
                Err(e) => {
                    self.metrics.error("prober", e.kind());
                    tracing::warn!(foundation = %name, error = %e, "probe failed");
                    if let Err(e) = self.record_failure(&key, &e, began, last_ok).await {
                        self.metrics.error("prober", e.kind());
                    }
                }
            }
            let mut circuit = client.circuit().subscribe();
            let deadline = tokio::time::sleep(self.config.interval);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut deadline => break,
                    _ = stop.changed() => return,
                    changed = circuit.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let state = *circuit.borrow_and_update();
                        if state == CircuitState::Open {
                            let e = Error::Unavailable {
                                message: format!(
                                    "foundation {name}'s API failed repeatedly; calls to it are paused"
                                ),
                                source: None,
                            };
                            let _ = self.record_failure(&key, &e, began, last_ok).await;
                        } else if state == CircuitState::Closed {
                            // Answering again: probe now rather than later.
                            break;
                        }
                    }
                }
            }
        }
    }

    async fn record_probe(
        &self,
        key: &str,
        foundation: &Foundation,
        probe: Probe,
        seen: Seen,
        circuit_open: bool,
    ) -> Result<()> {
        let health = if circuit_open && probe.health == Health::Ready {
            Health::Degraded
        } else {
            probe.health
        };
        let mismatch = arch_mismatch(&foundation.spec, &probe);
        mutate::<FoundationSpec>(&*self.store, key, |f| {
            f.status.health = health;
            f.status.api_latency_ms = Some(probe.latency.as_secs_f64() * 1000.0);
            f.status.inventory.clone_from(&probe.inventory);
            f.status.kinds.clone_from(&seen.kinds);
            f.status.api_error_rate = Some(seen.error_rate);
            f.status.last_probe = Some(Utc::now());
            let generation = f.meta.generation;
            let (status, reason, message) = match health {
                Health::Ready => (
                    ConditionStatus::True,
                    "Probed",
                    "the foundation answers and reports its inventory".to_owned(),
                ),
                Health::Degraded => (
                    ConditionStatus::False,
                    "Degraded",
                    "the foundation answers badly; placement avoids it".to_owned(),
                ),
                Health::Down => (
                    ConditionStatus::False,
                    "Down",
                    "the foundation does not answer".to_owned(),
                ),
                Health::Unknown => (ConditionStatus::Unknown, "Unknown", String::new()),
            };
            set_condition(
                &mut f.status.conditions,
                yunshu_core::meta::Condition {
                    type_: condition_types::READY.into(),
                    status,
                    reason: reason.into(),
                    message,
                    observed_generation: generation,
                    last_transition_time: Utc::now(),
                },
            );
            let (status, reason, message) = match &mismatch {
                None => (
                    ConditionStatus::True,
                    "Observed",
                    "declared traits agree with the cloud".to_owned(),
                ),
                Some(m) => (ConditionStatus::False, "ArchitectureMismatch", m.clone()),
            };
            set_condition(
                &mut f.status.conditions,
                yunshu_core::meta::Condition {
                    type_: condition_types::SYNCED.into(),
                    status,
                    reason: reason.into(),
                    message,
                    observed_generation: generation,
                    last_transition_time: Utc::now(),
                },
            );
            true
        })
        .await?;
        Ok(())
    }

    async fn record_failure(
        &self,
        key: &str,
        error: &Error,
        began: Instant,
        last_ok: Option<Instant>,
    ) -> Result<()> {
        let silent_for = last_ok.unwrap_or(began).elapsed();
        // A cloud refusing Yunshu's credentials, or a spec it cannot use, is
        // as unusable as one that does not answer (Down after the same
        // while, so no policy keeps placing on it), but the reason says
        // which, so an admin fixes the credentials rather than chasing an
        // outage.
        let refused = match error.kind() {
            ErrorKind::Unauthorized => Some("Unauthorized"),
            ErrorKind::PermissionDenied => Some("PermissionDenied"),
            ErrorKind::Invalid => Some("InvalidConfiguration"),
            _ => None,
        };
        let health = if silent_for >= self.config.down_after {
            Health::Down
        } else {
            Health::Degraded
        };
        let message = error.to_string();
        mutate::<FoundationSpec>(&*self.store, key, |f| {
            let same = f.status.health == health
                && f.status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == condition_types::READY && c.message == message);
            if same {
                return false;
            }
            f.status.health = health;
            f.status.last_probe = Some(Utc::now());
            let generation = f.meta.generation;
            set_condition(
                &mut f.status.conditions,
                yunshu_core::meta::Condition {
                    type_: condition_types::READY.into(),
                    status: ConditionStatus::False,
                    reason: match (refused, health) {
                        (Some(reason), _) => reason,
                        (None, Health::Down) => "Down",
                        (None, _) => "ProbeFailed",
                    }
                    .into(),
                    message: message.clone(),
                    observed_generation: generation,
                    last_transition_time: Utc::now(),
                },
            );
            true
        })
        .await?;
        Ok(())
    }
}

/// What the foundation's client knows beside the probe's answer.
struct Seen {
    /// The kinds its adapter serves.
    kinds: Vec<Kind>,
    /// The share of recent calls the cloud failed.
    error_rate: f64,
}

/// Says so when the spec declares an architecture the cloud does not report.
fn arch_mismatch(spec: &FoundationSpec, probe: &Probe) -> Option<String> {
    let arch = |traits: &[yunshu_core::traits::Trait]| -> Vec<String> {
        traits
            .iter()
            .map(ToString::to_string)
            .filter(|t| t.starts_with("arch:"))
            .collect()
    };
    let (declared, observed) = (arch(&spec.traits), arch(&probe.traits));
    if declared.is_empty() || observed.is_empty() || declared.iter().all(|d| observed.contains(d)) {
        return None;
    }
    Some(format!(
        "the spec declares {} but the cloud's computes report {}",
        declared.join(", "),
        observed.join(", ")
    ))
}
