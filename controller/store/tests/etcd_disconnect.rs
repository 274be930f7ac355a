//! A watch on etcd survives the server being killed and restarted: it
//! resumes from the first undelivered revision, with no gap and no duplicate.

use std::time::Duration;

use futures::StreamExt;
use yunshu_core::store::{Store, StoreExt};
use yunshu_store::{EtcdConfig, EtcdStore};
use yunshu_testenv::EtcdServer;

async fn put_retrying(store: &EtcdStore, key: &str) -> i64 {
    for _ in 0..100 {
        match store.put(key, b"v".to_vec()).await {
            Ok(rev) => return rev,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("etcd did not come back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_across_server_restart() {
    let mut server = EtcdServer::start().expect("start etcd");
    let store = EtcdStore::connect(EtcdConfig::new([server.endpoint()]))
        .await
        .expect("connect");
    let prefix = "/restart/";
    let start = store.current_revision().await.expect("revision") + 1;
    let mut stream = store.watch(prefix, start).await.expect("watch");
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(put_retrying(&store, &format!("{prefix}{i}")).await);
    }
    let mut seen = Vec::new();
    for _ in 0..5 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event")
            .expect("open")
            .expect("ok");
        seen.push(ev.kv.mod_revision);
    }

    server.restart().expect("restart etcd");
    for i in 5..10 {
        revs.push(put_retrying(&store, &format!("{prefix}{i}")).await);
    }
    for _ in 0..5 {
        let ev = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("event after restart")
            .expect("open")
            .expect("ok");
        seen.push(ev.kv.mod_revision);
    }
    assert_eq!(seen, revs, "every change exactly once across the restart");
    let extra = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(
        extra.is_err(),
        "no duplicate after the last change: {extra:?}"
    );
}

/// A watcher catching up over more history than one default gRPC message
/// holds (4 MiB) still sees every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_catches_up_over_large_history() {
    let server = EtcdServer::start().expect("start etcd");
    let store = EtcdStore::connect(EtcdConfig::new([server.endpoint()]))
        .await
        .expect("connect");
    let start = store.current_revision().await.expect("revision") + 1;
    let value = vec![b'x'; 256 << 10];
    for i in 0..24 {
        store
            .put(&format!("/big/{i:02}"), value.clone())
            .await
            .expect("put");
    }
    let mut stream = store.watch("/big/", start).await.expect("watch");
    for i in 0..24 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event within 10 s")
            .expect("open")
            .expect("ok");
        assert_eq!(ev.kv.key, format!("/big/{i:02}"));
        assert_eq!(ev.kv.value.len(), value.len());
    }
}
