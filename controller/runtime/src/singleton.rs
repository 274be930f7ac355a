//! One replica at a time runs the loops that must not run twice — the
//! provisioner, the prober, the orphan sweep and credential expiry — when
//! several replicas share one store (etcd).
//!
//! The election is a key in the store attached to a lease: a replica
//! campaigns by creating `/yunshu/leases/controllers` only if it is absent,
//! leads while it keeps the lease alive, and steps down when it cannot
//! renew within the lease's time to live (another replica may then take
//! over). Followers try again every half TTL. The embedded store admits one
//! process, so there the caller skips the election and leads. The loops are idempotent and
//! crash-safe, so the short overlap a lost renewal can cause does no harm;
//! the election only keeps replicas from doing everything twice.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle, time::Instant};
use yunshu_core::{
    keys,
    store::{Compare, LeaseId, Op, Store, Txn},
};

/// Waits `period`; false if `stop` came first (the loop should end).
pub async fn pause(period: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(period) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

/// The name of the controllers' election key under `/yunshu/leases/`.
pub const ELECTION: &str = "controllers";

/// Campaigns for `name` as `identity` until `stop`; the receiver says
/// whether this replica leads.
pub fn elect(
    store: Arc<dyn Store>,
    name: &str,
    identity: String,
    ttl: Duration,
    mut stop: watch::Receiver<bool>,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let key = keys::lease(name);
    tokio::spawn(async move {
        while !*stop.borrow() {
            match campaign(&*store, &key, &identity, ttl).await {
                Ok(Some(lease)) => {
                    tracing::info!(election = %key, identity = %identity, "leading");
                    tx.send_replace(true);
                    let stopped = hold(&*store, lease, ttl, &mut stop).await;
                    tx.send_replace(false);
                    if stopped {
                        // Let the next replica take over now, not after the TTL.
                        let _ = store.lease_revoke(lease).await;
                        break;
                    }
                    tracing::warn!(election = %key, "lost the lease; campaigning again");
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, election = %key, "campaign failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(ttl / 2) => {}
                _ = stop.changed() => {}
            }
        }
        tx.send_replace(false);
    });
    rx
}

/// Creates the key with a fresh lease if nobody holds it.
async fn campaign(
    store: &dyn Store,
    key: &str,
    identity: &str,
    ttl: Duration,
) -> yunshu_core::Result<Option<LeaseId>> {
    let lease = store.lease_grant(ttl).await?;
    let won = store
        .txn(Txn::new().when([Compare::absent(key)]).and_then([Op::Put {
            key: key.to_owned(),
            value: identity.as_bytes().to_vec(),
            lease: Some(lease),
        }]))
        .await;
    match won {
        Ok(r) if r.succeeded => Ok(Some(lease)),
        other => {
            let _ = store.lease_revoke(lease).await;
            other.map(|_| None)
        }
    }
}

/// Renews `lease` every third of `ttl` until `stop` (true) or until no
/// renewal succeeded for two thirds of it (false). A renewal that hangs is
/// cut off at that point too: leading ends before the lease can have
/// expired, so before another replica can win it.
async fn hold(
    store: &dyn Store,
    lease: LeaseId,
    ttl: Duration,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(ttl / 3) => {}
            _ = stop.changed() => return true,
        }
        if *stop.borrow() {
            return true;
        }
        let deadline = renewed + ttl * 2 / 3;
        match tokio::time::timeout_at(deadline, store.lease_keep_alive(lease)).await {
            Ok(Ok(_)) => renewed = Instant::now(),
            Ok(Err(e)) if e.kind() == yunshu_core::ErrorKind::NotFound => return false,
            Ok(Err(e)) => tracing::warn!(error = %e, "failed to renew the election lease"),
            Err(_) => tracing::warn!("renewing the election lease timed out"),
        }
        if renewed.elapsed() >= ttl * 2 / 3 {
            return false;
        }
    }
}

/// Runs the loops `start` makes for as long as `leader` says this replica
/// leads: each term gets a stop signal of its own, raised when leadership
/// is lost or `stop` is, and the loops are awaited before the next term.
pub fn while_leading<F>(
    mut leader: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    mut start: F,
) -> JoinHandle<()>
where
    F: FnMut(watch::Receiver<bool>) -> Vec<(&'static str, JoinHandle<()>)> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                gained = leader.wait_for(|l| *l) => if gained.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
            let (term, term_rx) = watch::channel(false);
            let loops = start(term_rx);
            let (stopping, gone) = tokio::select! {
                lost = leader.wait_for(|l| !*l) => (false, lost.is_err()),
                _ = stop.wait_for(|s| *s) => (true, false),
            };
            // When nobody can take the lead away any more, it lasts until stop.
            if gone {
                let _ = stop.wait_for(|s| *s).await;
            }
            let stopping = stopping || gone;
            if !stopping {
                tracing::warn!("no longer leading: stopping the singleton loops");
            }
            term.send_replace(true);
            for (name, task) in loops {
                if let Err(e) = task.await {
                    tracing::warn!(loop_ = name, error = %e, "loop ended abnormally");
                }
            }
            if stopping {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use yunshu_store::EmbeddedStore;

    use super::*;

    async fn until(rx: &mut watch::Receiver<bool>, want: bool) {
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|v| *v == want))
            .await
            .expect("election settled in time")
            .expect("election running");
    }

    #[tokio::test]
    async fn one_replica_leads_and_another_takes_over_when_it_stops() {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory().expect("store"));
        let ttl = Duration::from_millis(600);
        let (stop_a, a_stop) = watch::channel(false);
        let (_stop_b, b_stop) = watch::channel(false);
        let mut a = elect(store.clone(), "test", "a".into(), ttl, a_stop);
        until(&mut a, true).await;
        let mut b = elect(store.clone(), "test", "b".into(), ttl, b_stop);
        // b follows while a renews, across several TTLs.
        tokio::time::sleep(ttl * 3).await;
        assert!(*a.borrow() && !*b.borrow(), "exactly one leader");
        let holder = store
            .get(&keys::lease("test"))
            .await
            .expect("read")
            .expect("held");
        assert_eq!(holder.value, b"a");
        // a stops: it revokes its lease, and b takes over.
        stop_a.send_replace(true);
        until(&mut a, false).await;
        until(&mut b, true).await;
    }

    #[tokio::test]
    async fn loops_run_only_while_leading_and_stop_with_each_term() {
        let (leader_tx, leader) = watch::channel(false);
        let (stop_tx, stop) = watch::channel(false);
        let running = Arc::new(AtomicUsize::new(0));
        let terms = Arc::new(AtomicUsize::new(0));
        let (r, t) = (running.clone(), terms.clone());
        let task = while_leading(leader, stop, move |mut term| {
            t.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            vec![(
                "test",
                tokio::spawn(async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    let _ = term.wait_for(|s| *s).await;
                    r.fetch_sub(1, Ordering::SeqCst);
                }),
            )]
        });
        let settle = || tokio::time::sleep(Duration::from_millis(50));
        settle().await;
        assert_eq!(
            terms.load(Ordering::SeqCst),
            0,
            "nothing runs before leading"
        );
        leader_tx.send_replace(true);
        settle().await;
        assert_eq!(running.load(Ordering::SeqCst), 1);
        leader_tx.send_replace(false);
        settle().await;
        assert_eq!(
            running.load(Ordering::SeqCst),
            0,
            "losing the lead stops the loops"
        );
        leader_tx.send_replace(true);
        settle().await;
        assert_eq!(
            (terms.load(Ordering::SeqCst), running.load(Ordering::SeqCst)),
            (2, 1)
        );
        stop_tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops")
            .expect("no panic");
        assert_eq!(running.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_lead_nobody_can_take_away_lasts_until_stop() {
        let (stop_tx, stop) = watch::channel(false);
        let terms = Arc::new(AtomicUsize::new(0));
        let t = terms.clone();
        let task = while_leading(watch::channel(true).1, stop, move |mut term| {
            t.fetch_add(1, Ordering::SeqCst);
            vec![(
                "test",
                tokio::spawn(async move {
                    let _ = term.wait_for(|s| *s).await;
                }),
            )]
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            terms.load(Ordering::SeqCst),
            1,
            "one term, not a restart loop"
        );
        stop_tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops")
            .expect("no panic");
        assert_eq!(terms.load(Ordering::SeqCst), 1);
    }
}
