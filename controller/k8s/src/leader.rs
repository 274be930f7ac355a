//! Leader election with a `coordination.k8s.io/v1` Lease, for the loops that
//! must run on one replica at a time (the reconcilers); the gRPC API serves
//! on every replica and is not tied to it.
//!
//! The protocol is the one client-go's leader election uses, so Yunshu's
//! Lease reads the same to `kubectl`: the holder renews `renewTime` every
//! retry period with a `replace` guarded by `resourceVersion`; a follower
//! notes when it last saw the record change *on its own clock* (no trust in
//! the holder's clock) and takes the Lease over once it has seen no change
//! for `leaseDurationSeconds`. Leadership is lost when a renewal answers
//! 409 (someone else wrote the Lease), when the Lease names another holder,
//! or when no renewal succeeded for the renew deadline (the API is
//! unreachable: step down before a follower may take over). On shutdown a
//! leader releases the Lease so a follower takes over at once.

use std::{future::Future, pin::pin, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use tokio::{sync::watch, time::Instant};

use crate::error::is_status;

/// Acquires and renews one Lease; see the module docs.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("lease_duration", &self.lease_duration)
            .finish_non_exhaustive()
    }
}

/// What one round of the election does, given the Lease's holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder stopped renewing: take it.
    TakeOver,
    /// Someone else holds it and renews: follow.
    Follow,
}

/// Decides a round: `expired` says the holder's record has not changed for
/// a lease duration on our clock.
pub fn decide(holder: Option<&str>, identity: &str, expired: bool) -> Step {
    match holder {
        Some(h) if h == identity => Step::Renew,
        None | Some("") => Step::TakeOver,
        Some(_) if expired => Step::TakeOver,
        Some(_) => Step::Follow,
    }
}

/// What a follower last saw of the Lease, and since when (its own clock).
#[derive(Debug, Default)]
pub struct Observation {
    record: Option<(Option<String>, Option<Timestamp>, Option<i32>)>,
    since: Option<Instant>,
}

impl Observation {
    /// Notes the Lease's record as seen at `now`; the clock restarts only
    /// when the record changed.
    pub fn observe(&mut self, spec: &LeaseSpec, now: Instant) {
        let record = (
            spec.holder_identity.clone(),
            spec.renew_time.as_ref().map(|t| t.0),
            spec.lease_transitions,
        );
        if self.record.as_ref() != Some(&record) {
            self.record = Some(record);
            self.since = Some(now);
        }
    }

    /// Whether the record has not changed for `duration` as of `now`.
    pub fn expired(&self, now: Instant, duration: Duration) -> bool {
        self.since
            .is_some_and(|s| now.duration_since(s) >= duration)
    }
}

impl LeaderElector {
    /// An elector for the Lease `namespace/name`, held as `identity` (the
    /// pod name) for `lease_duration` (whole seconds, at least one). It
    /// retries every fifth of the duration and steps down when it could not
    /// renew for two thirds of it.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Self {
        let lease_duration = Duration::from_secs(lease_duration.as_secs().max(1));
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration,
            renew_deadline: lease_duration * 2 / 3,
            retry_period: lease_duration / 5,
        }
    }

    /// Sets how often the Lease is read and renewed (default: a fifth of the
    /// lease duration).
    #[must_use]
    pub fn with_retry_period(mut self, period: Duration) -> Self {
        self.retry_period = period;
        self
    }

    fn seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Runs the election until `shutdown` resolves, then releases the Lease
    /// if held. The receiver says whether this replica leads now; it closes
    /// (with `false` as its last value) when the election stopped.
    pub fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let mut shutdown = pin!(shutdown);
            let mut seen = Observation::default();
            let mut renewed: Option<Instant> = None;
            loop {
                let round = tokio::time::timeout(self.renew_deadline, self.round(&mut seen));
                let outcome = tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    r = round => r,
                };
                let leading = *tx.borrow();
                match outcome {
                    Ok(Ok(true)) => {
                        if !leading {
                            tracing::info!(lease = %self.name, identity = %self.identity, "acquired the lease");
                        }
                        renewed = Some(Instant::now());
                        tx.send_replace(true);
                    }
                    Ok(Ok(false)) => {
                        if leading {
                            tracing::warn!(lease = %self.name, identity = %self.identity, "lost the lease to another holder");
                        }
                        renewed = None;
                        tx.send_replace(false);
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, lease = %self.name, "failed to acquire or renew the lease");
                        self.step_down_if_late(&tx, renewed);
                    }
                    Err(_) => {
                        tracing::warn!(lease = %self.name, "lease call timed out");
                        self.step_down_if_late(&tx, renewed);
                    }
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(self.retry_period) => {}
                }
            }
            if *tx.borrow() {
                tx.send_replace(false);
                if let Err(error) = self.release().await {
                    tracing::warn!(%error, lease = %self.name, "failed to release the lease");
                }
            }
        });
        rx
    }

    fn step_down_if_late(&self, tx: &watch::Sender<bool>, renewed: Option<Instant>) {
        let late = renewed.is_none_or(|r| r.elapsed() >= self.renew_deadline);
        if *tx.borrow() && late {
            tracing::warn!(lease = %self.name, "could not renew the lease in time; stepping down");
            tx.send_replace(false);
        }
    }

    /// One round: read the Lease and create, renew or take it over as
    /// [`decide`] says. `Ok(true)`: we hold it now.
    async fn round(&self, seen: &mut Observation) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.seconds()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_status(&e, 409) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        seen.observe(&spec, Instant::now());
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.lease_duration, Duration::from_secs);
        let step = decide(
            spec.holder_identity.as_deref(),
            &self.identity,
            seen.expired(Instant::now(), duration),
        );
        if step == Step::Follow {
            return Ok(false);
        }
        let mut next = lease;
        let spec = next.spec.get_or_insert_with(LeaseSpec::default);
        if step == Step::TakeOver {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(self.seconds());
        // `replace` sends metadata.resourceVersion: a concurrent writer makes it 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(written) => {
                seen.observe(&written.spec.unwrap_or_default(), Instant::now());
                Ok(true)
            }
            Err(e) if is_status(&e, 409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up so a follower can take it at once.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await?;
        tracing::info!(lease = %self.name, identity = %self.identity, "released the lease");
        Ok(())
    }
}

/// Runs the loops `start` makes while `leader` says this replica leads:
/// starts them when leadership is gained, drops them (stopping every loop
/// inside) when it is lost, and starts them afresh on the next gain.
/// Returns when the election stopped or the loops ended by themselves.
pub async fn while_leader<F, Fut>(mut leader: watch::Receiver<bool>, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        if leader.wait_for(|l| *l).await.is_err() {
            return;
        }
        tracing::info!("leading: starting the singleton loops");
        let work = start();
        tokio::select! {
            () = work => return,
            lost = leader.wait_for(|l| !*l) => {
                tracing::warn!("no longer leading: stopped the singleton loops");
                if lost.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_renew_follow_or_take_over() {
        assert_eq!(decide(Some("me"), "me", false), Step::Renew);
        assert_eq!(decide(None, "me", false), Step::TakeOver);
        assert_eq!(decide(Some(""), "me", false), Step::TakeOver);
        assert_eq!(decide(Some("other"), "me", false), Step::Follow);
        assert_eq!(decide(Some("other"), "me", true), Step::TakeOver);
    }

    #[test]
    fn expiry_counts_from_the_last_change_seen_on_our_clock() {
        let start = Instant::now();
        let mut seen = Observation::default();
        let spec = |renewed: i64| LeaseSpec {
            holder_identity: Some("other".into()),
            renew_time: Some(MicroTime(
                Timestamp::from_second(renewed).expect("valid time"),
            )),
            ..LeaseSpec::default()
        };
        let d = Duration::from_secs(15);
        seen.observe(&spec(100), start);
        assert!(!seen.expired(start + Duration::from_secs(14), d));
        // The same record seen later does not restart the clock...
        seen.observe(&spec(100), start + Duration::from_secs(10));
        assert!(seen.expired(start + Duration::from_secs(15), d));
        // ...a renewal does, whatever the holder's clock says.
        seen.observe(&spec(50), start + Duration::from_secs(16));
        assert!(!seen.expired(start + Duration::from_secs(30), d));
        assert!(seen.expired(start + Duration::from_secs(31), d));
    }
}
