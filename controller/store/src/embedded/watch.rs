//! Watches on the embedded backend: replay history from the start revision
//! — checkpointed batches from redb's `history` table, newer ones from
//! memory — then follow the live broadcast. A watcher that falls behind the
//! broadcast goes back to history, so it never sees a gap or a duplicate;
//! if history was compacted past it, it gets `Compacted`.

use std::sync::{Arc, Weak};

use redb::ReadableDatabase;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use yunshu_core::{
    Error, Result,
    store::{Revision, WatchEvent, WatchStream},
};

use super::{COMPACTED, HISTORY, Inner, META, db_err, mem::Batch, record};

/// How many revisions one replay step reads.
const REPLAY_CHUNK: i64 = 256;

pub(crate) fn watch(inner: Arc<Inner>, prefix: String, from: Revision) -> WatchStream {
    let live = inner.events.subscribe();
    let current = inner.mem().revision;
    let next = if from <= 0 { current + 1 } else { from };
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(
        Follower {
            inner: Arc::downgrade(&inner),
            prefix,
            next,
            tx,
        }
        .run(live),
    );
    Box::pin(ReceiverStream::new(rx))
}

/// Holds the store weakly: a forgotten watch does not keep it open.
struct Follower {
    inner: Weak<Inner>,
    prefix: String,
    /// The first revision not yet delivered.
    next: Revision,
    tx: mpsc::Sender<Result<WatchEvent>>,
}

enum Replay {
    /// Caught up with the store as of this read.
    CaughtUp,
    /// More history to read.
    More,
}

/// What one replay step read.
struct Step {
    events: Vec<WatchEvent>,
    /// The last revision the step covered.
    upto: Revision,
    /// The store's revision when it read.
    current: Revision,
}

impl Follower {
    async fn run(mut self, mut live: tokio::sync::broadcast::Receiver<Arc<Batch>>) {
        'replay: loop {
            loop {
                match self.replay_step().await {
                    Ok(Replay::CaughtUp) => break,
                    Ok(Replay::More) => {}
                    Err(e) => {
                        let _ = self.tx.send(Err(e)).await;
                        return;
                    }
                }
                if self.tx.is_closed() {
                    return;
                }
            }
            loop {
                let received = tokio::select! {
                    r = live.recv() => r,
                    () = self.tx.closed() => return,
                };
                match received {
                    Ok(batch) => {
                        if batch.revision < self.next {
                            continue;
                        }
                        if batch.revision > self.next {
                            // Something was missed (cannot happen while the
                            // subscription predates the replay): go to history.
                            continue 'replay;
                        }
                        for ev in batch
                            .events
                            .iter()
                            .filter(|e| e.kv.key.starts_with(&self.prefix))
                        {
                            if self.tx.send(Ok(ev.clone())).await.is_err() {
                                return;
                            }
                        }
                        self.next = batch.revision + 1;
                    }
                    Err(RecvError::Lagged(_)) => continue 'replay,
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }

    /// Delivers up to [`REPLAY_CHUNK`] revisions of history.
    async fn replay_step(&mut self) -> Result<Replay> {
        let Some(inner) = self.inner.upgrade() else {
            return Err(Error::Unavailable {
                message: "the embedded store was closed".into(),
                source: None,
            });
        };
        let quick = read_history(&inner, self.next, &self.prefix, false)?;
        let step = match quick {
            Some(step) => {
                drop(inner);
                step
            }
            None => {
                let (from, prefix) = (self.next, self.prefix.clone());
                tokio::task::spawn_blocking(move || read_history(&inner, from, &prefix, true))
                    .await
                    .map_err(|e| Error::internal(format!("embedded store task failed: {e}")))??
                    .ok_or_else(|| Error::internal("embedded store history read did not finish"))?
            }
        };
        for ev in step.events {
            if self.tx.send(Ok(ev)).await.is_err() {
                return Ok(Replay::CaughtUp);
            }
        }
        self.next = self.next.max(step.upto + 1);
        Ok(if self.next > step.current {
            Replay::CaughtUp
        } else {
            Replay::More
        })
    }
}

/// Reads history from `from` on: redb's rows up to the checkpointed
/// revision, memory's batches after it. Without `disk`, answers `None`
/// instead of reading redb.
fn read_history(inner: &Inner, from: Revision, prefix: &str, disk: bool) -> Result<Option<Step>> {
    let (current, materialized, recent) = {
        let mem = inner.mem();
        if from < mem.compacted {
            return Err(Error::Compacted {
                requested: from,
                compacted: mem.compacted,
            });
        }
        let upto = from.saturating_add(REPLAY_CHUNK - 1).min(mem.revision);
        if from <= mem.materialized && !disk {
            return Ok(None);
        }
        let recent: Vec<Arc<Batch>> = mem
            .recent
            .iter()
            .filter(|b| b.revision >= from && b.revision <= upto)
            .cloned()
            .collect();
        (mem.revision, mem.materialized, recent)
    };
    let upto = from.saturating_add(REPLAY_CHUNK - 1).min(current);
    let mut events = Vec::new();
    if from <= materialized {
        let r = inner.db.begin_read().map_err(db_err("begin a read"))?;
        let meta = r.open_table(META).map_err(db_err("open a table"))?;
        let compacted = meta
            .get(COMPACTED)
            .map_err(db_err("read meta"))?
            .map_or(0, |v| v.value());
        if from < compacted {
            return Err(Error::Compacted {
                requested: from,
                compacted,
            });
        }
        let history = r.open_table(HISTORY).map_err(db_err("open a table"))?;
        for item in history
            .range(from..=upto.min(materialized))
            .map_err(db_err("read the history"))?
        {
            let (_, v) = item.map_err(db_err("read the history"))?;
            events.extend(record::decode_batch(v.value(), Some(prefix))?.1);
        }
    }
    for b in recent.iter().filter(|b| b.revision > materialized) {
        events.extend(
            b.events
                .iter()
                .filter(|e| e.kv.key.starts_with(prefix))
                .cloned(),
        );
    }
    Ok(Some(Step {
        events,
        upto,
        current,
    }))
}
