//! The provisioner's work queue: one reconcile of a key at a time, at most
//! `workers` at once, a key that changes while it is reconciled runs again,
//! and a reconcile may ask to run again after a delay.
//!
//! Every reconcile runs in the queue's own task set, so [`Queue::stop`]
//! ends them all: when a replica stops leading, no reconcile of its goes on
//! calling clouds beside the new leader's, and none waiting for a worker
//! starts. A reconcile cut short is like a crash at that point, which every
//! step of provisioning is written to survive.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::future::BoxFuture;
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Nothing until the object changes.
    Done,
    /// Look again after a while.
    After(Duration),
}

/// Reconciles one key.
pub(super) type Reconcile = Arc<dyn Fn(String) -> BoxFuture<'static, Next> + Send + Sync>;

pub(super) struct Queue {
    /// Where keys to reconcile are sent (delayed retries come back here).
    tx: mpsc::UnboundedSender<String>,
    /// The keys being reconciled, and whether each changed meanwhile.
    slots: Mutex<HashMap<String, bool>>,
    permits: Arc<Semaphore>,
    tasks: Mutex<JoinSet<()>>,
    reconcile: Reconcile,
}

impl Queue {
    pub(super) fn new(
        tx: mpsc::UnboundedSender<String>,
        workers: usize,
        reconcile: Reconcile,
    ) -> Arc<Self> {
        Arc::new(Self {
            tx,
            slots: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(workers.max(1))),
            tasks: Mutex::new(JoinSet::new()),
            reconcile,
        })
    }

    /// Starts a reconcile of `key`, or marks it to run again if one is
    /// running.
    pub(super) fn dispatch(self: &Arc<Self>, key: String) {
        {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(dirty) = slots.get_mut(&key) {
                *dirty = true;
                return;
            }
            slots.insert(key.clone(), false);
        }
        let queue = self.clone();
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget the reconciles that have finished.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let Ok(_permit) = queue.permits.clone().acquire_owned().await else {
                return;
            };
            loop {
                let next = (queue.reconcile)(key.clone()).await;
                if queue.finished(&key) {
                    if let Next::After(delay) = next {
                        let tx = queue.tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = tx.send(key);
                        });
                    }
                    break;
                }
            }
        });
    }

    /// Ends a reconcile of `key`: false if the key changed meanwhile and
    /// must run again.
    fn finished(&self, key: &str) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match slots.get_mut(key) {
            Some(dirty) if *dirty => {
                *dirty = false;
                false
            }
            _ => {
                slots.remove(key);
                true
            }
        }
    }

    /// Ends every reconcile, running or waiting for a worker, and returns
    /// once they are all gone; keys dispatched afterwards never run.
    pub(super) async fn stop(&self) {
        self.permits.close();
        let mut tasks =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        tasks.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts reconciles started and reconciles dropped unfinished; each
    /// reconcile waits forever.
    #[derive(Default)]
    struct Counts {
        started: AtomicUsize,
        dropped: AtomicUsize,
    }

    struct DropGuard(Arc<Counts>);

    impl Drop for DropGuard {
        fn drop(&mut self) {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn hanging(counts: &Arc<Counts>) -> Reconcile {
        let counts = counts.clone();
        Arc::new(move |_key| {
            let counts = counts.clone();
            Box::pin(async move {
                counts.started.fetch_add(1, Ordering::SeqCst);
                let _guard = DropGuard(counts);
                std::future::pending::<()>().await;
                Next::Done
            })
        })
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn stopping_ends_running_reconciles_and_starts_no_waiting_one() {
        let counts = Arc::new(Counts::default());
        let (tx, _rx) = mpsc::unbounded_channel();
        let queue = Queue::new(tx, 2, hanging(&counts));
        for key in ["a", "b", "c", "d"] {
            queue.dispatch(key.into());
        }
        settle().await;
        assert_eq!(counts.started.load(Ordering::SeqCst), 2, "two workers");

        tokio::time::timeout(Duration::from_secs(5), queue.stop())
            .await
            .expect("stop returns");
        assert_eq!(
            counts.dropped.load(Ordering::SeqCst),
            2,
            "the running reconciles were ended"
        );
        queue.dispatch("e".into());
        settle().await;
        assert_eq!(
            counts.started.load(Ordering::SeqCst),
            2,
            "nothing started after stop"
        );
    }

    #[tokio::test]
    async fn a_key_changed_while_it_runs_runs_again_and_never_twice_at_once() {
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let reconcile: Reconcile = {
            let (runs, gate) = (runs.clone(), gate.clone());
            Arc::new(move |_key| {
                let (runs, gate) = (runs.clone(), gate.clone());
                Box::pin(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    Next::Done
                })
            })
        };
        let (tx, _rx) = mpsc::unbounded_channel();
        let queue = Queue::new(tx, 4, reconcile);
        queue.dispatch("a".into());
        settle().await;
        queue.dispatch("a".into());
        queue.dispatch("a".into());
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one at a time");
        gate.notify_one();
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "once more for the change");
        gate.notify_one();
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        queue.stop().await;
    }
}
