//! Watches on the embedded backend: replay the log from the start revision,
//! then follow the live broadcast. A watcher that falls behind the broadcast
//! goes back to the log, so it never sees a gap or a duplicate; if the log
//! was compacted past it, it gets `Compacted`.

use std::sync::Arc;

use redb::ReadableDatabase;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use yunshu_core::{
    Error, Result,
    store::{Revision, WatchEvent, WatchStream},
};

use super::{COMPACTED, Inner, LOG, META, REVISION, db_err, record};

/// How many revisions one replay step reads.
const REPLAY_CHUNK: i64 = 256;

pub(crate) async fn watch(
    inner: Arc<Inner>,
    prefix: String,
    from: Revision,
) -> Result<WatchStream> {
    let live = inner.events.subscribe();
    let current = {
        let i = inner.clone();
        tokio::task::spawn_blocking(move || i.meta(REVISION))
            .await
            .map_err(|e| Error::internal(format!("embedded store task failed: {e}")))??
    };
    let next = if from <= 0 { current + 1 } else { from };
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(
        Follower {
            inner,
            prefix,
            next,
            tx,
        }
        .run(live),
    );
    Ok(Box::pin(ReceiverStream::new(rx)))
}

struct Follower {
    inner: Arc<Inner>,
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

impl Follower {
    async fn run(mut self, mut live: tokio::sync::broadcast::Receiver<Arc<super::Batch>>) {
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
                match live.recv().await {
                    Ok(batch) => {
                        if batch.revision < self.next {
                            continue;
                        }
                        if batch.revision > self.next {
                            // Something was missed (cannot happen while the
                            // subscription predates the replay): go to the log.
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

    /// Delivers up to [`REPLAY_CHUNK`] revisions from the log.
    async fn replay_step(&mut self) -> Result<Replay> {
        let inner = self.inner.clone();
        let (from, prefix) = (self.next, self.prefix.clone());
        let (events, current) = tokio::task::spawn_blocking(move || -> Result<_> {
            let r = inner.db.begin_read().map_err(db_err("begin a read"))?;
            let meta = r.open_table(META).map_err(db_err("open a table"))?;
            let current = meta
                .get(REVISION)
                .map_err(db_err("read meta"))?
                .map_or(0, |v| v.value());
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
            let log = r.open_table(LOG).map_err(db_err("open a table"))?;
            let upto = (from + REPLAY_CHUNK).min(current + 1);
            let mut events = Vec::new();
            for item in log
                .range((from, 0)..(upto, 0))
                .map_err(db_err("read the log"))?
            {
                let (_, v) = item.map_err(db_err("read the log"))?;
                let ev = record::decode_event(v.value())?;
                if ev.kv.key.starts_with(&prefix) {
                    events.push(ev);
                }
            }
            Ok((events, upto - 1))
        })
        .await
        .map_err(|e| Error::internal(format!("embedded store task failed: {e}")))??;
        for ev in events {
            if self.tx.send(Ok(ev)).await.is_err() {
                return Ok(Replay::CaughtUp);
            }
        }
        self.next = self.next.max(current + 1);
        let caught_up = self.next > self.inner.meta(REVISION)?;
        Ok(if caught_up {
            Replay::CaughtUp
        } else {
            Replay::More
        })
    }
}
