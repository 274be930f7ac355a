//! The store conformance suite against every backend: embedded in memory,
//! embedded on a file, and a real etcd server.

use std::sync::Arc;

use yunshu_store::{EmbeddedStore, EtcdConfig, EtcdStore, conformance};
use yunshu_testenv::EtcdServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_in_memory() {
    conformance::run_all(Arc::new(EmbeddedStore::in_memory().expect("open"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_on_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    conformance::run_all(Arc::new(
        EmbeddedStore::open(dir.path().join("y.redb")).expect("open"),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd() {
    let server = EtcdServer::start().expect("start etcd");
    let store = EtcdStore::connect(EtcdConfig::new([server.endpoint()]))
        .await
        .expect("connect");
    conformance::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_file_survives_reopen() {
    use yunshu_core::store::{Store, StoreExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("y.redb");
    let rev = {
        let store = EmbeddedStore::open(&path).expect("open");
        store.put("/k", b"v".to_vec()).await.expect("put")
    };
    let store = EmbeddedStore::open(&path).expect("reopen");
    let kv = store.get("/k").await.expect("get").expect("persisted");
    assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"v"[..], rev));
    assert_eq!(store.current_revision().await.expect("revision"), rev);
}
