//! Acknowledged writes to the embedded store survive a crash: a child
//! process writes keys, printing each acknowledged revision, and aborts
//! mid-stream without closing the store; reopening replays the write-ahead
//! log and every acknowledged write is there, with its revision.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use yunshu_core::store::{Op, RangeRequest, Store, Txn};
use yunshu_store::EmbeddedStore;

const WRITES: usize = 700;

/// The child half: only acts when the parent sets the variable.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os("YUNSHU_CRASH_CHILD") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = EmbeddedStore::open(path).expect("open");
        let mut out = std::io::stdout().lock();
        for i in 0..WRITES {
            let txn = Txn::new().and_then([
                Op::put(format!("/crash/{i:04}"), vec![b'x'; 200]),
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
async fn acknowledged_writes_survive_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.redb");
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("YUNSHU_CRASH_CHILD", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .expect("run child");
    assert!(!child.status.success(), "the child aborts");
    let acked: Vec<(usize, i64)> = String::from_utf8_lossy(&child.stdout)
        .lines()
        .filter_map(|l| {
            // libtest may print "test crash_child ... " on the same line.
            let mut parts = l[l.find("acked ")? + 6..].split(' ');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect();
    assert_eq!(
        acked.len(),
        WRITES,
        "the child acknowledged every write before aborting"
    );

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
    assert_eq!(all.kvs.len(), WRITES + 1, "nothing more, nothing less");
    // The history is whole too: a watch from revision 1 replays every write.
    use futures::StreamExt;
    let events: Vec<_> = store
        .watch("/crash/", 1)
        .await
        .expect("watch")
        .take(WRITES * 2)
        .collect()
        .await;
    assert_eq!(events.len(), WRITES * 2);
    assert_eq!(
        events
            .last()
            .expect("events")
            .as_ref()
            .expect("ok")
            .kv
            .mod_revision,
        last
    );
}
