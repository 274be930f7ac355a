//! The embedded backend across checkpoints: with checkpoints every few
//! events, reads, ranges, watches, leases, compaction, reopening and a crash
//! must all look as if redb had been written on every commit.

use std::{
    collections::BTreeMap,
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use futures::StreamExt;
use yunshu_core::{
    ErrorKind,
    store::{EventKind, Op, RangeRequest, Store, StoreExt, Txn, WatchEvent},
};

use super::{EmbeddedStore, checkpoint::Limits};

fn tiny() -> Limits {
    Limits {
        soft_events: 8,
        soft_bytes: 1 << 20,
    }
}

/// Writes a mix of puts, overwrites and deletes, checking every read
/// against a model; returns the model and every event written.
async fn churn(
    store: &EmbeddedStore,
    rounds: usize,
) -> (BTreeMap<String, Vec<u8>>, Vec<(EventKind, String, i64)>) {
    let mut model = BTreeMap::new();
    let mut written = Vec::new();
    for i in 0..rounds {
        let key = format!("/t/{:02}", i % 37);
        let value = format!("v{i}").into_bytes();
        let mut other = format!("/t/{:02}", (i * 7) % 37);
        if other == key {
            other = format!("/t/{:02}", (i + 1) % 37);
        }
        let txn = if i % 5 == 4 {
            Txn::new().and_then([Op::put(&key, value.clone()), Op::delete(&other)])
        } else {
            Txn::new().and_then([Op::put(&key, value.clone())])
        };
        let rev = store.txn(txn).await.expect("txn").revision;
        model.insert(key.clone(), value);
        written.push((EventKind::Put, key.clone(), rev));
        if i % 5 == 4 && model.remove(&other).is_some() {
            written.push((EventKind::Delete, other.clone(), rev));
        }
        if i % 13 == 0 {
            store.inner.checkpoint().expect("checkpoint");
        }
        let got = store.get(&key).await.expect("get").expect("present");
        assert_eq!(
            (got.value.as_slice(), got.mod_revision),
            (model[&key].as_slice(), rev)
        );
        if i % 5 == 4 {
            assert!(
                store.get(&other).await.expect("get").is_none(),
                "{other} deleted"
            );
        }
    }
    (model, written)
}

async fn check(
    store: &EmbeddedStore,
    model: &BTreeMap<String, Vec<u8>>,
    written: &[(EventKind, String, i64)],
) {
    let all = store.range_all("/t/", 5).await.expect("range");
    let got: BTreeMap<_, _> = all.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(&got, model, "ranges see exactly the live keys");
    let mut watch = store.watch("/t/", 1).await.expect("watch");
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let ev: WatchEvent = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("event");
        seen.push((ev.kind, ev.kv.key, ev.kv.mod_revision));
    }
    assert_eq!(seen, written, "history replays every event once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_store_checkpoints_without_changing_answers() {
    let store = EmbeddedStore::in_memory_with(tiny()).expect("open");
    let (model, written) = churn(&store, 300).await;
    check(&store, &model, &written).await;
    assert!(store.inner.mem().materialized > 0, "checkpoints ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_survives_reopen_between_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.redb");
    let (model, written) = {
        let store = EmbeddedStore::open_with(&path, tiny()).expect("open");
        let out = churn(&store, 300).await;
        check(&store, &out.0, &out.1).await;
        out
    };
    let store = EmbeddedStore::open_with(&path, tiny()).expect("reopen");
    check(&store, &model, &written).await;
    let last = written.last().expect("writes").2;
    assert_eq!(store.current_revision().await.expect("revision"), last);
}

/// Writes `key` attached to a new lease of `ttl`; returns the lease.
async fn held_by_a_lease(
    store: &EmbeddedStore,
    key: &str,
    ttl: Duration,
) -> yunshu_core::store::LeaseId {
    let lease = store.lease_grant(ttl).await.expect("grant");
    store
        .txn(Txn::new().and_then([Op::Put {
            key: key.into(),
            value: b"x".to_vec(),
            lease: Some(lease),
        }]))
        .await
        .expect("put");
    lease
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_compaction_span_checkpoints() {
    let store = EmbeddedStore::in_memory_with(tiny()).expect("open");
    let lease = held_by_a_lease(&store, "/l/held", Duration::from_secs(60)).await;
    store.inner.checkpoint().expect("checkpoint");
    let old = store.put("/l/other", b"1".to_vec()).await.expect("put");
    store.lease_revoke(lease).await.expect("revoke");
    assert!(
        store.get("/l/held").await.expect("get").is_none(),
        "revoked"
    );
    let latest = store.put("/l/other", b"2".to_vec()).await.expect("put");
    store.compact(latest).await.expect("compact");
    let mut w = store.watch("/l/", old).await.expect("watch");
    let err = w.next().await.expect("item").expect_err("compacted");
    assert_eq!(err.kind(), ErrorKind::Compacted);
    let mut w = store.watch("/l/", latest).await.expect("watch");
    let ev = w.next().await.expect("item").expect("event");
    assert_eq!(
        (ev.kv.key.as_str(), ev.kv.mod_revision),
        ("/l/other", latest)
    );
}

/// A deadline written before the system clock went back a day while the
/// store was closed runs out within its ttl of opening, not a day later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_outlives_no_clock_step_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("leases.redb");
    {
        let store = EmbeddedStore::open(&path).expect("open");
        let lease = held_by_a_lease(&store, "/l/held", Duration::from_secs(2)).await;
        let w = store.inner.db.begin_write().expect("write");
        {
            use redb::ReadableTable;
            let mut leases = w.open_table(super::LEASES).expect("table");
            let (ttl, deadline) = leases.get(lease).expect("read").expect("lease").value();
            leases
                .insert(lease, (ttl, deadline + 86_400_000))
                .expect("write");
        }
        w.commit().expect("commit");
    }
    let store = EmbeddedStore::open(&path).expect("reopen");
    assert!(store.get("/l/held").await.expect("get").is_some());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.get("/l/held").await.expect("get").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease did not run out within its ttl of opening"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_event_log_of_earlier_builds_is_converted() {
    use redb::{Database, TableDefinition};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.redb");
    {
        // The layout of earlier builds, written by hand.
        let kv: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
        let log: TableDefinition<(i64, u32), &[u8]> = TableDefinition::new("log");
        let meta: TableDefinition<&str, i64> = TableDefinition::new("meta");
        let db = Database::create(&path).expect("create");
        let w = db.begin_write().expect("write");
        {
            let (mut kv, mut log, mut meta) = (
                w.open_table(kv).expect("kv"),
                w.open_table(log).expect("log"),
                w.open_table(meta).expect("meta"),
            );
            for (rev, idx, key) in [(1, 0, "/o/a"), (1, 1, "/o/b"), (2, 0, "/o/c")] {
                let entry = yunshu_core::store::KeyValue {
                    key: key.into(),
                    value: b"v".to_vec(),
                    create_revision: rev,
                    mod_revision: rev,
                    version: 1,
                    lease: None,
                };
                kv.insert(key, super::record::encode_entry(&entry).as_slice())
                    .expect("kv");
                let ev = WatchEvent {
                    kind: EventKind::Put,
                    kv: entry,
                };
                log.insert((rev, idx), super::record::encode_event(&ev).as_slice())
                    .expect("log");
            }
            meta.insert("revision", 2).expect("meta");
        }
        w.commit().expect("commit");
    }
    let store = EmbeddedStore::open(&path).expect("open");
    let mut w = store.watch("/o/", 1).await.expect("watch");
    let mut keys = Vec::new();
    for _ in 0..3 {
        let ev = w.next().await.expect("item").expect("event");
        keys.push((ev.kv.key, ev.kv.mod_revision));
    }
    assert_eq!(
        keys,
        [("/o/a".into(), 1), ("/o/b".into(), 1), ("/o/c".into(), 2)]
    );
    let r = store.put("/o/d", b"v".to_vec()).await.expect("put");
    assert_eq!(r, 3, "revisions continue");
}

const CRASH_WRITES: usize = 600;

/// The child half of the crash test: writes with checkpoints every few
/// events, prints each acknowledged revision, and aborts mid-stream.
#[test]
fn checkpoint_crash_child() {
    let Some(path) = std::env::var_os("YUNSHU_CHECKPOINT_CRASH_CHILD") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = EmbeddedStore::open_with(path, tiny()).expect("open");
        let mut out = std::io::stdout().lock();
        for i in 0..CRASH_WRITES {
            let txn = Txn::new().and_then([
                Op::put(format!("/crash/{i:04}"), vec![b'x'; 100]),
                Op::put("/crash/last", i.to_string().into_bytes()),
            ]);
            let rev = store.txn(txn).await.expect("txn").revision;
            writeln!(out, "acked {i} {rev}").expect("stdout");
            out.flush().expect("flush");
        }
        std::process::abort();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_crash_amid_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.redb");
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "embedded::tests::checkpoint_crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("YUNSHU_CHECKPOINT_CRASH_CHILD", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .expect("run child");
    assert!(!child.status.success(), "the child aborts");
    let acked: Vec<(usize, i64)> = String::from_utf8_lossy(&child.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l[l.find("acked ")? + 6..].split(' ');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect();
    assert_eq!(acked.len(), CRASH_WRITES, "every write was acknowledged");
    let store = EmbeddedStore::open(&path).expect("reopen after crash");
    for (i, rev) in &acked {
        let kv = store.get(&format!("/crash/{i:04}")).await.expect("get");
        let kv = kv.unwrap_or_else(|| panic!("acknowledged write {i} was lost"));
        assert_eq!(kv.mod_revision, *rev, "write {i} kept its revision");
    }
    let last = acked.last().expect("writes").1;
    assert_eq!(store.current_revision().await.expect("revision"), last);
    let all = store
        .range(RangeRequest::prefix("/crash/"))
        .await
        .expect("range");
    assert_eq!(all.kvs.len(), CRASH_WRITES + 1);
    let mut w = store.watch("/crash/", 1).await.expect("watch");
    let mut n = 0;
    while n < 2 * CRASH_WRITES {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("event");
        assert_eq!(ev.kv.mod_revision, acked[n / 2].1, "history is whole");
        n += 1;
    }
}

#[tokio::test]
async fn settle_writes_the_backlog_into_redb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("settle.redb");
    let store = EmbeddedStore::open(&path).expect("open");
    let (model, _) = churn(&store, 40).await;
    store.settle().await.expect("settle");
    assert_eq!(
        store.inner.mem().backlog(),
        (0, 0),
        "nothing left only in memory"
    );
    for (key, value) in &model {
        let got = store.get(key).await.expect("get").expect("present");
        assert_eq!(&got.value, value);
    }
}
