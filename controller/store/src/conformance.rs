//! The conformance suite every `Store` backend must pass, written once and
//! run against the embedded backend and a real etcd server.
//!
//! Each check panics with a message naming what broke. Checks use their own
//! key prefixes, so they can share one store; [`compaction`] compacts the
//! whole store and runs last in [`run_all`].

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use futures::StreamExt;
use yunshu_core::{
    ErrorKind,
    store::{
        CmpOp, Compare, EventKind, Op, RangeRequest, Revision, Store, StoreExt, Txn, WatchEvent,
        WatchStream,
    },
};

const WAIT: Duration = Duration::from_secs(10);

/// Runs every check in order.
pub async fn run_all(store: Arc<dyn Store>) {
    put_get_delete(&*store).await;
    range_pages(&*store).await;
    transactions(&*store).await;
    concurrent_transactions(store.clone()).await;
    watch_from_revision(&*store).await;
    watch_resume(&*store).await;
    leases(&*store).await;
    compaction(&*store).await;
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("watch event within 10 s")
        .expect("watch stream still open")
        .expect("watch event, not an error")
}

async fn put(store: &dyn Store, key: &str, value: &str) -> Revision {
    store
        .put(key, value.as_bytes().to_vec())
        .await
        .expect("put")
}

/// Revisions and versions of single keys.
pub async fn put_get_delete(store: &dyn Store) {
    let key = "/conformance/basic/a";
    assert!(
        store.get(key).await.expect("get").is_none(),
        "a fresh key is absent"
    );
    let r1 = put(store, key, "one").await;
    let r2 = put(store, key, "two").await;
    assert!(r2 > r1, "each write bumps the revision ({r1} then {r2})");
    let kv = store.get(key).await.expect("get").expect("present");
    assert_eq!(kv.value, b"two");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r2, 2)
    );
    assert_eq!(store.current_revision().await.expect("revision"), r2);
    let r3 = store.delete(key).await.expect("delete");
    assert!(r3 > r2);
    assert!(store.get(key).await.expect("get").is_none(), "deleted");
    let r4 = put(store, key, "again").await;
    let kv = store.get(key).await.expect("get").expect("present");
    assert_eq!(
        (kv.create_revision, kv.version),
        (r4, 1),
        "a recreated key starts over"
    );
}

/// Prefix ranges page in key order with continuation and never leak keys
/// outside the prefix.
pub async fn range_pages(store: &dyn Store) {
    let prefix = "/conformance/range/";
    let mut want = BTreeSet::new();
    for i in 0..25 {
        let key = format!("{prefix}{i:03}");
        put(store, &key, "v").await;
        want.insert(key);
    }
    put(store, "/conformance/range0", "outside").await;
    put(store, "/conformance/rang", "outside").await;
    let all = store
        .range(RangeRequest::prefix(prefix))
        .await
        .expect("range");
    assert_eq!(all.kvs.len(), 25);
    assert!(!all.more);
    let mut seen = Vec::new();
    let mut req = RangeRequest::prefix(prefix).with_limit(7);
    let mut pages = 0;
    loop {
        let page = store.range(req.clone()).await.expect("range page");
        pages += 1;
        assert!(page.kvs.len() <= 7);
        assert!(page.revision > 0, "a range reports its revision");
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        if !page.more {
            break;
        }
        req = req.after(
            page.kvs
                .last()
                .expect("a page with more has keys")
                .key
                .clone(),
        );
    }
    assert_eq!(pages, 4, "25 keys in pages of 7");
    assert_eq!(
        seen,
        want.into_iter().collect::<Vec<_>>(),
        "pages cover the prefix once, in order"
    );
    let all = store.range_all(prefix, 10).await.expect("range_all");
    assert_eq!(all.len(), 25);
}

/// Guards decide between success and failure writes; one revision per transaction.
pub async fn transactions(store: &dyn Store) {
    let (a, b) = ("/conformance/txn/a", "/conformance/txn/b");
    let create = Txn::new()
        .when([Compare::absent(a)])
        .and_then([Op::put(a, b"1".to_vec()), Op::put(b, b"1".to_vec())]);
    let first = store.txn(create.clone()).await.expect("txn");
    assert!(first.succeeded, "absent key passes the absent guard");
    let ka = store.get(a).await.expect("get").expect("a");
    let kb = store.get(b).await.expect("get").expect("b");
    assert_eq!(ka.mod_revision, first.revision);
    assert_eq!(
        kb.mod_revision, first.revision,
        "writes of one transaction share its revision"
    );

    let again = store
        .txn(create.or_else([Op::put(b, b"lost".to_vec())]))
        .await
        .expect("txn");
    assert!(!again.succeeded, "existing key fails the absent guard");
    assert_eq!(
        store.get(b).await.expect("get").expect("b").value,
        b"lost",
        "failure branch applied"
    );
    assert_eq!(
        store.get(a).await.expect("get").expect("a").value,
        b"1",
        "success branch not applied"
    );

    let stale = store
        .txn(
            Txn::new()
                .when([Compare::unchanged(a, ka.mod_revision - 1)])
                .and_then([Op::delete(a)]),
        )
        .await
        .expect("txn");
    assert!(!stale.succeeded, "a stale revision fails");
    let fresh = store
        .txn(
            Txn::new()
                .when([
                    Compare::unchanged(a, ka.mod_revision),
                    Compare::mod_revision(b, CmpOp::Greater, ka.mod_revision),
                ])
                .and_then([Op::delete(a)]),
        )
        .await
        .expect("txn");
    assert!(fresh.succeeded, "current revisions pass");
    assert!(store.get(a).await.expect("get").is_none());

    // A key written twice in one branch is refused, as etcd refuses it.
    let rev = store.current_revision().await.expect("revision");
    for twice in [
        Txn::new().and_then([Op::put(a, b"1".to_vec()), Op::put(a, b"2".to_vec())]),
        Txn::new().or_else([Op::delete(b), Op::put(b, b"2".to_vec())]),
    ] {
        let err = store.txn(twice).await.expect_err("a key written twice");
        assert_eq!(err.kind(), yunshu_core::ErrorKind::Invalid, "{err}");
    }
    assert!(
        store.get(a).await.expect("get").is_none(),
        "nothing written"
    );
    assert_eq!(store.current_revision().await.expect("revision"), rev);

    let noop = store
        .txn(Txn::new().when([Compare::absent(a)]))
        .await
        .expect("txn");
    assert!(noop.succeeded);
    assert_eq!(
        noop.revision, rev,
        "a transaction that writes nothing keeps the revision"
    );
}

/// Read-compare-write increments from many tasks lose no update.
pub async fn concurrent_transactions(store: Arc<dyn Store>) {
    let key = "/conformance/counter";
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    loop {
                        let cur = store.get(key).await.expect("get");
                        let (n, rev) = cur.map_or((0u64, 0), |kv| {
                            (
                                std::str::from_utf8(&kv.value)
                                    .expect("utf8")
                                    .parse()
                                    .expect("number"),
                                kv.mod_revision,
                            )
                        });
                        let txn = Txn::new()
                            .when([Compare::unchanged(key, rev)])
                            .and_then([Op::put(key, (n + 1).to_string().into_bytes())]);
                        if store.txn(txn).await.expect("txn").succeeded {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let kv = store.get(key).await.expect("get").expect("counter");
    assert_eq!(kv.value, b"160", "8 tasks x 20 guarded increments");
}

/// A watch from a past revision replays history, then follows live changes.
pub async fn watch_from_revision(store: &dyn Store) {
    let prefix = "/conformance/watch/";
    let r1 = put(store, &format!("{prefix}a"), "1").await;
    put(store, "/conformance/watchX", "outside").await;
    put(store, &format!("{prefix}b"), "2").await;
    store.delete(&format!("{prefix}a")).await.expect("delete");
    let mut stream = store.watch(prefix, r1).await.expect("watch");
    let e1 = next_event(&mut stream).await;
    assert_eq!(
        (e1.kind, e1.kv.key.as_str(), e1.kv.value.as_slice()),
        (EventKind::Put, "/conformance/watch/a", &b"1"[..])
    );
    let e2 = next_event(&mut stream).await;
    assert_eq!(
        e2.kv.key,
        format!("{prefix}b"),
        "keys outside the prefix are not seen"
    );
    let e3 = next_event(&mut stream).await;
    assert_eq!(
        (e3.kind, e3.kv.key.as_str()),
        (EventKind::Delete, "/conformance/watch/a")
    );
    assert!(e3.kv.value.is_empty());
    let live = put(store, &format!("{prefix}c"), "3").await;
    let e4 = next_event(&mut stream).await;
    assert_eq!(
        (e4.kv.key.as_str(), e4.kv.mod_revision),
        ("/conformance/watch/c", live)
    );

    let mut now = store.watch(prefix, 0).await.expect("watch from now");
    let r = put(store, &format!("{prefix}d"), "4").await;
    let e = next_event(&mut now).await;
    assert_eq!(
        e.kv.mod_revision, r,
        "a watch from 0 starts with the next change"
    );
}

/// Dropping a watch and resuming from the last seen revision + 1 loses and
/// repeats nothing.
pub async fn watch_resume(store: &dyn Store) {
    let prefix = "/conformance/resume/";
    let start = store.current_revision().await.expect("revision") + 1;
    for i in 0..10 {
        put(store, &format!("{prefix}{i}"), "v").await;
    }
    let mut stream = store.watch(prefix, start).await.expect("watch");
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next_event(&mut stream).await);
    }
    drop(stream);
    for i in 10..15 {
        put(store, &format!("{prefix}{i}"), "v").await;
    }
    let resume = seen.last().expect("events").kv.mod_revision + 1;
    let mut stream = store.watch(prefix, resume).await.expect("resume");
    for _ in 0..11 {
        seen.push(next_event(&mut stream).await);
    }
    let keys: Vec<_> = seen.iter().map(|e| e.kv.key.clone()).collect();
    let want: Vec<_> = (0..15).map(|i| format!("{prefix}{i}")).collect();
    assert_eq!(keys, want, "every change exactly once, in order");
    let revs: Vec<_> = seen.iter().map(|e| e.kv.mod_revision).collect();
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "revisions increase");
}

/// Leases keep keys alive; revoked or expired leases delete them.
pub async fn leases(store: &dyn Store) {
    let key = "/conformance/lease/held";
    let lease = store
        .lease_grant(Duration::from_secs(2))
        .await
        .expect("grant");
    store
        .txn(Txn::new().and_then([Op::Put {
            key: key.into(),
            value: b"leader".to_vec(),
            lease: Some(lease),
        }]))
        .await
        .expect("put with lease");
    assert_eq!(
        store.get(key).await.expect("get").expect("held").lease,
        Some(lease)
    );
    let ttl = store.lease_keep_alive(lease).await.expect("keep alive");
    assert!(
        ttl >= Duration::from_secs(1),
        "keep-alive reports the ttl ({ttl:?})"
    );
    store.lease_revoke(lease).await.expect("revoke");
    assert!(
        store.get(key).await.expect("get").is_none(),
        "revoking deletes attached keys"
    );

    let mut watch = store.watch("/conformance/lease/", 0).await.expect("watch");
    let short = store
        .lease_grant(Duration::from_secs(1))
        .await
        .expect("grant");
    let expiring = "/conformance/lease/expiring";
    store
        .txn(Txn::new().and_then([Op::Put {
            key: expiring.into(),
            value: b"x".to_vec(),
            lease: Some(short),
        }]))
        .await
        .expect("put with lease");
    let put_ev = next_event(&mut watch).await;
    assert_eq!(put_ev.kind, EventKind::Put);
    let del = next_event(&mut watch).await;
    assert_eq!(
        (del.kind, del.kv.key.as_str()),
        (EventKind::Delete, expiring),
        "expiry deletes the key"
    );
    let err = store
        .lease_keep_alive(short)
        .await
        .expect_err("expired lease");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
}

/// A watch from a compacted revision fails with `Compacted`; relisting and
/// watching from the list's revision + 1 recovers.
pub async fn compaction(store: &dyn Store) {
    let prefix = "/conformance/compact/";
    let old = put(store, &format!("{prefix}a"), "1").await;
    put(store, &format!("{prefix}b"), "2").await;
    let latest = put(store, &format!("{prefix}a"), "3").await;
    store.compact(latest).await.expect("compact");
    let mut stream = store.watch(prefix, old).await.expect("watch opens");
    let err = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("answer within 10 s")
        .expect("an item")
        .expect_err("compacted");
    assert_eq!(err.kind(), ErrorKind::Compacted, "{err}");

    let list = store
        .range(RangeRequest::prefix(prefix))
        .await
        .expect("relist");
    assert_eq!(list.kvs.len(), 2);
    let mut stream = store
        .watch(prefix, list.revision + 1)
        .await
        .expect("rewatch");
    let r = put(store, &format!("{prefix}c"), "4").await;
    let e = next_event(&mut stream).await;
    assert_eq!(
        (e.kv.key.as_str(), e.kv.mod_revision),
        ("/conformance/compact/c", r)
    );
}
