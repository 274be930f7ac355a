//! The request-record sweep: forgets client request ids once they are older
//! than the retention period, so the records that make retries safe do not
//! pile up for ever (see [`yunshu_core::requests`]).
//!
//! Each record is removed by a transaction guarded by the revision the sweep
//! read, so a record written again meanwhile is kept. A record from before
//! records carried their time is stamped with the sweep's time instead,
//! and goes one retention period later. Records of a schema this build
//! cannot read are left alone.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;
use yunshu_core::{
    Result, codec, keys,
    requests::{ACTION_STALE_SECS, Written},
    store::{Compare, KeyValue, Op, RangeRequest, Store, Txn},
};

use crate::reconcile::ReconcileMetrics;

/// Keys read per page, and most records one transaction removes (below
/// etcd's default limit of 128 operations per transaction, and never above
/// the store's own limit).
const PAGE: usize = 64;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Records removed: their request ids are forgotten.
    pub removed: usize,
    /// Records without a time, given the sweep's.
    pub stamped: usize,
}

/// Removes every request record written at or before `now - retention`
/// (`now` in seconds since the Unix epoch); an action's reservation still
/// under way stays until it is [`ACTION_STALE_SECS`] old, even when the
/// retention is shorter.
pub async fn sweep(store: &dyn Store, retention: Duration, now: i64) -> Result<Swept> {
    let cutoff = now.saturating_sub(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX));
    // An action under way is kept until a retry may take it over anyway.
    let under_way_cutoff = cutoff.min(now.saturating_sub(ACTION_STALE_SECS));
    let mut swept = Swept::default();
    // Each removal is one compare and one delete.
    let page = PAGE.min(store.capabilities().max_txn_ops).max(1);
    let mut request = RangeRequest::prefix(keys::all_requests()).with_limit(page);
    loop {
        let read = store.range(request.clone()).await?;
        let mut expired = Vec::new();
        for kv in &read.kvs {
            let Ok(written) = codec::decode::<Written>(&kv.key, &kv.value) else {
                continue;
            };
            let cutoff = if written.done == Some(false) {
                under_way_cutoff
            } else {
                cutoff
            };
            match written.written_at {
                Some(at) if at <= cutoff => expired.push(kv),
                Some(_) => {}
                None => swept.stamped += usize::from(stamp(store, kv, now).await?),
            }
        }
        swept.removed += remove(store, &expired).await?;
        match (read.more, read.kvs.last()) {
            (true, Some(last)) => request = request.after(last.key.clone()),
            _ => return Ok(swept),
        }
    }
}

/// Removes `records` in one transaction, or one by one when another
/// writer changed some of them since they were read; returns how many.
async fn remove(store: &dyn Store, records: &[&KeyValue]) -> Result<usize> {
    let guarded = |kvs: &[&KeyValue]| {
        Txn::new()
            .when(
                kvs.iter()
                    .map(|kv| Compare::unchanged(&kv.key, kv.mod_revision)),
            )
            .and_then(kvs.iter().map(|kv| Op::delete(&kv.key)))
    };
    if records.is_empty() {
        return Ok(0);
    }
    if store.txn(guarded(records)).await?.succeeded {
        return Ok(records.len());
    }
    let mut removed = 0;
    for kv in records {
        removed += usize::from(store.txn(guarded(&[kv])).await?.succeeded);
    }
    Ok(removed)
}

/// Gives a record without a time the sweep's; whether it was still there.
async fn stamp(store: &dyn Store, kv: &KeyValue, now: i64) -> Result<bool> {
    let mut data: serde_json::Value = codec::decode(&kv.key, &kv.value)?;
    let Some(fields) = data.as_object_mut() else {
        return Ok(false);
    };
    fields.insert("writtenAt".into(), now.into());
    let txn = Txn::new()
        .when([Compare::unchanged(&kv.key, kv.mod_revision)])
        .and_then([Op::put(&kv.key, codec::encode(&data)?)]);
    Ok(store.txn(txn).await?.succeeded)
}

/// How often the sweep runs for a retention period: an eighth of it,
/// between a second and ten minutes, so a record outlives its period by
/// at most that much.
pub fn interval(retention: Duration) -> Duration {
    (retention / 8).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// Sweeps every [`interval`] until `stop`.
pub async fn run(
    store: Arc<dyn Store>,
    retention: Duration,
    metrics: Arc<ReconcileMetrics>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    while crate::singleton::pause(interval(retention), &mut stop).await {
        match sweep(&*store, retention, yunshu_core::requests::unix_now()).await {
            Ok(s) => {
                metrics.requests_forgotten(s.removed);
                if s != Swept::default() {
                    tracing::info!(
                        removed = s.removed,
                        stamped = s.stamped,
                        "request records swept"
                    );
                }
            }
            Err(e) => {
                metrics.error("retention", e.kind());
                tracing::warn!(error = %e, "request record sweep failed");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use yunshu_store::EmbeddedStore;

    use super::*;

    fn record(at: Option<i64>) -> Vec<u8> {
        let mut data = serde_json::json!({"objectKey": "/yunshu/objects/instances/d/a", "uid": "u", "fingerprint": "f"});
        if let Some(at) = at {
            data["writtenAt"] = at.into();
        }
        codec::encode(&data).unwrap_or_default()
    }

    async fn keys_under_root(store: &EmbeddedStore) -> Result<Vec<String>> {
        Ok(store
            .range(RangeRequest::prefix(keys::ROOT))
            .await?
            .kvs
            .into_iter()
            .map(|kv| kv.key)
            .collect())
    }

    #[tokio::test]
    async fn removes_only_what_is_older_than_the_retention() -> anyhow::Result<()> {
        let store = EmbeddedStore::in_memory()?;
        let day = Duration::from_secs(86_400);
        let now = 1_800_000_000;
        // More than a page of expired records, a young one, one without a
        // time, and one of a schema this build cannot read.
        for i in 0..150 {
            store
                .txn(Txn::new().and_then([Op::put(
                    keys::request("d", &format!("old-{i:03}")),
                    record(Some(now - 86_400 - i)),
                )]))
                .await?;
        }
        let young = keys::request("d", "young");
        let untimed = keys::request("e", "untimed");
        let future = keys::request("e", "future");
        let object = "/yunshu/objects/instances/d/a";
        for (k, v) in [
            (young.as_str(), record(Some(now - 60))),
            (untimed.as_str(), record(None)),
            (
                future.as_str(),
                br#"{"schemaVersion":99,"data":{}}"#.to_vec(),
            ),
            (object, b"kept".to_vec()),
        ] {
            store.txn(Txn::new().and_then([Op::put(k, v)])).await?;
        }

        let swept = sweep(&store, day, now).await?;
        assert_eq!(
            swept,
            Swept {
                removed: 150,
                stamped: 1
            }
        );
        assert_eq!(
            keys_under_root(&store).await?,
            [
                object.to_owned(),
                young.clone(),
                future.clone(),
                untimed.clone()
            ]
        );
        let stamped = store.range(RangeRequest::prefix(&untimed)).await?.kvs;
        assert_eq!(
            codec::decode::<Written>(&untimed, &stamped[0].value)?.written_at,
            Some(now)
        );

        // A day on, the young and the stamped record go too.
        let swept = sweep(&store, day, now + 86_400).await?;
        assert_eq!(
            swept,
            Swept {
                removed: 2,
                stamped: 0
            }
        );
        assert_eq!(keys_under_root(&store).await?, [object.to_owned(), future]);
        Ok(())
    }

    /// A retention shorter than an action may run does not forget the
    /// action while it runs: a retry would carry it out a second time.
    #[tokio::test]
    async fn an_action_under_way_outlives_a_short_retention() -> anyhow::Result<()> {
        let store = EmbeddedStore::in_memory()?;
        let now = 1_800_000_000;
        let action = |done: bool, at: i64| {
            let data = serde_json::json!({"objectKey": "/yunshu/objects/instances/d/a", "uid": "u",
                "fingerprint": "reboot", "done": done, "writtenAt": at});
            codec::encode(&data).unwrap_or_default()
        };
        let running = keys::request("d", "running");
        let done = keys::request("d", "done");
        let abandoned = keys::request("d", "abandoned");
        for (k, v) in [
            (&running, action(false, now - 60)),
            (&done, action(true, now - 60)),
            (&abandoned, action(false, now - ACTION_STALE_SECS)),
        ] {
            store
                .txn(Txn::new().and_then([Op::put(k.as_str(), v)]))
                .await?;
        }
        let swept = sweep(&store, Duration::from_secs(2), now).await?;
        assert_eq!(swept.removed, 2);
        assert_eq!(keys_under_root(&store).await?, [running]);
        // Once stale it goes, as a retry would take it over.
        sweep(&store, Duration::from_secs(2), now - 60 + ACTION_STALE_SECS).await?;
        assert!(keys_under_root(&store).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_record_written_again_since_it_was_read_is_kept() -> anyhow::Result<()> {
        let store = EmbeddedStore::in_memory()?;
        let (a, b) = (keys::request("d", "a"), keys::request("d", "b"));
        for k in [&a, &b] {
            store
                .txn(Txn::new().and_then([Op::put(k.as_str(), record(Some(10)))]))
                .await?;
        }
        let read = store
            .range(RangeRequest::prefix(keys::all_requests()))
            .await?
            .kvs;
        store
            .txn(Txn::new().and_then([Op::put(a.as_str(), record(Some(10)))]))
            .await?;
        assert_eq!(remove(&store, &read.iter().collect::<Vec<_>>()).await?, 1);
        let left = store
            .range(RangeRequest::prefix(keys::all_requests()))
            .await?
            .kvs;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].key, a);
        Ok(())
    }

    #[test]
    fn the_interval_is_an_eighth_of_the_retention_within_bounds() {
        assert_eq!(
            interval(Duration::from_secs(86_400)),
            Duration::from_secs(600)
        );
        assert_eq!(interval(Duration::from_secs(80)), Duration::from_secs(10));
        assert_eq!(interval(Duration::from_secs(2)), Duration::from_secs(1));
    }
}
