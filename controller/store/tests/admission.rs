//! Admission with group commit: the single-caller answers, and the invariant
//! test of three admission instances sharing one real etcd.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;
use yunshu_core::{
    ErrorKind,
    admission::{Admission, AdmissionConfig, UsageRecord},
    codec, keys,
    model::{Charge, Department, DepartmentSpec, Instance, InstanceSpec, Quota},
    resources::{ResourceClass, Resources},
    store::{EventKind, Store, StoreExt},
};
use yunshu_store::{EmbeddedStore, EtcdConfig, EtcdStore};
use yunshu_testenv::EtcdServer;

async fn make_department(store: &dyn Store, name: &str, vcpu: u64) {
    let dept = Department::new(
        None,
        name,
        DepartmentSpec {
            quota: Quota {
                hard: BTreeMap::from([(ResourceClass::Vcpu, vcpu)]),
                ..Quota::default()
            },
            ..DepartmentSpec::default()
        },
    );
    store
        .put(
            &keys::department(name),
            codec::encode(&dept).expect("encode"),
        )
        .await
        .expect("put department");
}

fn instance(dept: &str, name: &str, vcpu: u32) -> Instance {
    Instance::new(
        Some(dept),
        name,
        InstanceSpec {
            vcpu,
            memory_mib: 1024,
            disk_gib: 10,
            image: "kylin-v10".into(),
            constraints: Default::default(),
            group: None,
            power: Default::default(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_created_repeated_and_over_quota() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory().expect("open"));
    make_department(&*store, "health", 48).await;
    let admission = Admission::new(store.clone(), AdmissionConfig::default());

    let first = admission
        .create("req-1", instance("health", "web-1", 44))
        .await
        .expect("admitted");
    assert!(first.created);
    let again = admission
        .create("req-1", instance("health", "web-1", 44))
        .await
        .expect("same answer");
    assert!(
        !again.created,
        "a repeated request id returns the existing object"
    );
    assert_eq!(again.object.meta.uid, first.object.meta.uid);
    // The request record says when it was written, which is all the
    // retention sweep reads.
    let record = store
        .get(&keys::request("health", "req-1"))
        .await
        .expect("get")
        .expect("a request record");
    let written = codec::decode::<yunshu_core::requests::Written>(&record.key, &record.value)
        .expect("decode")
        .written_at
        .expect("writtenAt");
    assert!(
        (yunshu_core::requests::unix_now() - written).abs() < 60,
        "{written}"
    );

    let rev = store.current_revision().await.expect("revision");
    let err = admission
        .create("req-2", instance("health", "web-2", 16))
        .await
        .expect_err("over quota");
    assert_eq!(
        err.to_string(),
        "quota exceeded: vcpu requested 16, used 44, limit 48"
    );
    assert_eq!(
        store.current_revision().await.expect("revision"),
        rev,
        "a rejected request writes nothing"
    );

    let err = admission
        .create("req-1", instance("health", "web-1", 2))
        .await
        .expect_err("reused id");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let mut labelled = instance("health", "web-1", 44);
    labelled
        .meta
        .labels
        .insert("team".into(), "radiology".into());
    let err = admission
        .create("req-1", labelled)
        .await
        .expect_err("reused id with other labels");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let err = admission
        .create("req-3", instance("health", "web-1", 2))
        .await
        .expect_err("name taken");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    let err = admission
        .create("req-4", instance("nobody", "web-1", 2))
        .await
        .expect_err("unknown department");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    let usage = store
        .get(&keys::usage("health"))
        .await
        .expect("get")
        .expect("usage");
    let usage: UsageRecord = codec::decode(&usage.key, &usage.value).expect("decode");
    assert_eq!(usage.usage.get(ResourceClass::Vcpu), 44);
}

/// What one caller was told.
#[derive(Debug)]
enum Answer {
    Ok { uid: String, created: bool },
    OverQuota,
}

/// Deleting a department is checked (it holds nothing) and then done in
/// a later transaction; an object admitted in between must make the delete
/// fail, not be left in a department that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_delete_fails_if_anything_was_admitted_meanwhile() {
    use yunshu_core::{
        admission::department_deletion,
        store::{Compare, Op},
    };

    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory().expect("open"));
    let admission = Admission::new(store.clone(), AdmissionConfig::default());
    let delete = |base: yunshu_core::store::Txn, at| {
        base.when([Compare::unchanged(keys::department("health"), at)])
            .and_then([Op::delete(keys::department("health"))])
    };
    let department_at = |store: Arc<dyn Store>| async move {
        store
            .get(&keys::department("health"))
            .await
            .expect("read")
            .expect("department")
            .mod_revision
    };

    make_department(&*store, "health", 48).await;
    // An instance admitted and released: the department is empty again,
    // with a usage key.
    let web = admission
        .create("req-1", instance("health", "web-1", 4))
        .await
        .expect("admitted");
    admission.release(&web.object).await.expect("released");

    let base = department_deletion(&*store, "health")
        .await
        .expect("checked")
        .expect("empty");
    let at = department_at(store.clone()).await;
    admission
        .create("req-2", instance("health", "web-2", 4))
        .await
        .expect("admitted meanwhile");
    let raced = store.txn(delete(base, at)).await.expect("txn");
    assert!(
        !raced.succeeded,
        "deleted with an object admitted meanwhile"
    );
    let refused = department_deletion(&*store, "health")
        .await
        .expect("checked");
    assert!(
        refused.is_err_and(|why| why.contains("instances")),
        "the retry says what the department holds"
    );

    let web2 = store
        .get(&keys::object(
            yunshu_core::meta::Kind::Instance,
            Some("health"),
            "web-2",
        ))
        .await
        .expect("read")
        .expect("web-2");
    let web2: Instance = codec::decode_object(&web2).expect("decode");
    admission.release(&web2).await.expect("released");
    let base = department_deletion(&*store, "health")
        .await
        .expect("checked")
        .expect("empty");
    let at = department_at(store.clone()).await;
    assert!(store.txn(delete(base, at)).await.expect("txn").succeeded);
    for key in [keys::department("health"), keys::usage("health")] {
        assert!(store.get(&key).await.expect("read").is_none(), "{key} left");
    }
}

/// Replays the whole history of the store and checks, at every revision,
/// that the department's objects fit its quota and its usage key matches them.
async fn check_history(store: &dyn Store, dept: &str, limit: u64) -> usize {
    // A sentinel write closes the history: once it is seen, every earlier
    // revision has been seen whole.
    let sentinel = format!("{}zz-history-end", keys::ROOT);
    let end = store.put(&sentinel, Vec::new()).await.expect("sentinel");
    let mut stream = store.watch(keys::ROOT, 1).await.expect("watch history");
    let usage_key = keys::usage(dept);
    let mut charges: HashMap<String, u64> = HashMap::new();
    let mut usage = 0u64;
    let mut revisions = 0;
    let mut pending_rev = 0;
    let check = |charges: &HashMap<String, u64>, usage: u64, rev: i64| {
        let sum: u64 = charges.values().sum();
        assert!(
            sum <= limit,
            "revision {rev}: objects charge {sum} vcpu, over the quota {limit}"
        );
        assert_eq!(
            usage, sum,
            "revision {rev}: usage key says {usage}, objects charge {sum}"
        );
    };
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("history event")
            .expect("open")
            .expect("ok");
        let rev = ev.kv.mod_revision;
        if rev == end {
            break;
        }
        if rev != pending_rev && pending_rev != 0 {
            check(&charges, usage, pending_rev);
            revisions += 1;
        }
        pending_rev = rev;
        if ev.kv.key == usage_key {
            usage = codec::decode::<UsageRecord>(&ev.kv.key, &ev.kv.value)
                .expect("usage")
                .usage
                .get(ResourceClass::Vcpu);
        } else if ev.kv.key.starts_with(&keys::objects(
            yunshu_core::meta::Kind::Instance,
            Some(dept),
        )) {
            match ev.kind {
                EventKind::Put => {
                    let obj: Instance = codec::decode(&ev.kv.key, &ev.kv.value).expect("instance");
                    assert!(
                        charges
                            .insert(
                                ev.kv.key.clone(),
                                obj.spec.charge().get(ResourceClass::Vcpu)
                            )
                            .is_none(),
                        "revision {rev}: {} written twice",
                        ev.kv.key
                    );
                }
                EventKind::Delete => {
                    charges.remove(&ev.kv.key);
                }
            }
        }
    }
    check(&charges, usage, pending_rev);
    revisions + 1
}

/// Three admission instances, each with its own etcd connection, take ≥ 2,000
/// concurrent requests for one department, some of them repeats sent to
/// another instance. Set `YUNSHU_ADMISSION_UNGUARDED=1` to drop the usage
/// guard and watch this test fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_one_etcd_never_overcommit() {
    const UNIQUE: usize = 2_000;
    const REPEATS: usize = 400;
    const LIMIT: u64 = 3_000;
    let server = EtcdServer::start().expect("start etcd");
    let unguarded = std::env::var_os("YUNSHU_ADMISSION_UNGUARDED").is_some();
    let mut instances = Vec::new();
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..3 {
        let store: Arc<dyn Store> = Arc::new(
            EtcdStore::connect(EtcdConfig::new([server.endpoint()]))
                .await
                .expect("connect"),
        );
        let config = AdmissionConfig {
            unguarded_usage_for_tests: unguarded,
            ..AdmissionConfig::default()
        };
        instances.push(Admission::new(store.clone(), config));
        stores.push(store);
    }
    make_department(&*stores[0], "health", LIMIT).await;

    // Request i asks for 1-4 vCPU; repeats reuse an earlier id and spec.
    let vcpu = |i: usize| u32::try_from(i % 4 + 1).expect("small");
    let mut jobs: Vec<(usize, usize)> = (0..UNIQUE).map(|i| (i, i % 3)).collect();
    jobs.extend((0..REPEATS).map(|k| {
        let i = (k * 7919) % UNIQUE;
        (i, (i + 1) % 3)
    }));
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|(i, replica)| {
            let admission = instances[replica].clone();
            tokio::spawn(async move {
                let obj = instance("health", &format!("vm-{i}"), vcpu(i));
                let answer = match admission.create(&format!("req-{i}"), obj).await {
                    Ok(c) => Answer::Ok {
                        uid: c.object.meta.uid,
                        created: c.created,
                    },
                    Err(e) if e.kind() == ErrorKind::QuotaExceeded => Answer::OverQuota,
                    Err(e) => panic!("request {i}: unexpected error {e}"),
                };
                (i, answer)
            })
        })
        .collect();
    let mut answers: HashMap<usize, Vec<Answer>> = HashMap::new();
    for t in tasks {
        let (i, a) = t.await.expect("task");
        answers.entry(i).or_default().push(a);
    }

    let store = &*stores[0];
    let objects = store
        .range_all(
            &keys::objects(yunshu_core::meta::Kind::Instance, Some("health")),
            500,
        )
        .await
        .expect("list");
    let by_name: HashMap<String, Instance> = objects
        .iter()
        .map(|kv| {
            let o: Instance = codec::decode(&kv.key, &kv.value).expect("decode");
            (o.meta.name.clone(), o)
        })
        .collect();
    let mut admitted = 0;
    let mut charged = Resources::ZERO;
    for (i, list) in &answers {
        let name = format!("vm-{i}");
        let request_key = keys::request("health", &format!("req-{i}"));
        match &list[0] {
            Answer::Ok { uid, .. } => {
                admitted += 1;
                let obj = by_name
                    .get(&name)
                    .unwrap_or_else(|| panic!("acknowledged {name} is missing"));
                assert_eq!(
                    obj.meta.request_id.as_deref(),
                    Some(format!("req-{i}").as_str())
                );
                let created = list
                    .iter()
                    .filter(|a| matches!(a, Answer::Ok { created: true, .. }))
                    .count();
                assert_eq!(created, 1, "{name}: exactly one answer created it");
                for a in list {
                    match a {
                        Answer::Ok { uid: u, .. } => {
                            assert_eq!(u, uid, "{name}: repeats return the same object")
                        }
                        Answer::OverQuota => {
                            panic!("{name}: one answer admitted it, another refused it")
                        }
                    }
                }
                assert_eq!(
                    &obj.meta.uid, uid,
                    "{name}: the stored object is the acknowledged one"
                );
                charged = charged.checked_add(&obj.spec.charge()).expect("sum");
            }
            Answer::OverQuota => {
                assert!(
                    list.iter().all(|a| matches!(a, Answer::OverQuota)),
                    "{name}: answers disagree"
                );
                assert!(
                    !by_name.contains_key(&name),
                    "{name} was refused but stored"
                );
                assert!(
                    store.get(&request_key).await.expect("get").is_none(),
                    "{name}: refused request left a record"
                );
            }
        }
    }
    assert_eq!(
        by_name.len(),
        admitted,
        "one object per admitted request id, no strays"
    );
    let usage = store
        .get(&keys::usage("health"))
        .await
        .expect("get")
        .expect("usage");
    let usage: UsageRecord = codec::decode(&usage.key, &usage.value).expect("decode");
    assert_eq!(
        usage.usage.get(ResourceClass::Vcpu),
        charged.get(ResourceClass::Vcpu),
        "usage matches the objects"
    );
    assert!(charged.get(ResourceClass::Vcpu) <= LIMIT);
    assert!(
        admitted > 100 && admitted < UNIQUE,
        "the quota admitted some and refused some ({admitted})"
    );
    let revisions = check_history(store, "health", LIMIT).await;
    eprintln!(
        "admitted {admitted} of {UNIQUE} unique requests (+{REPEATS} repeats), {} vcpu of {LIMIT}; history of {revisions} revisions checked",
        charged.get(ResourceClass::Vcpu)
    );
}

/// Changes that carry one request record (one request id sent for two
/// objects) may arrive in one batch: the second waits for the next round
/// and finds the id taken, and the rest of the batch (here an unrelated
/// create) is not spoiled by a transaction writing one key twice.
#[tokio::test(flavor = "current_thread")]
async fn changes_sharing_a_request_record_do_not_spoil_their_batch() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory().expect("open"));
    make_department(&*store, "health", 48).await;
    let admission = Admission::new(store.clone(), AdmissionConfig::default());
    let a = admission
        .create("r-a", instance("health", "a", 2))
        .await
        .expect("a")
        .object;
    let b = admission
        .create("r-b", instance("health", "b", 2))
        .await
        .expect("b")
        .object;
    let grow = |o: &Instance| {
        let mut n = o.clone();
        n.spec.vcpu = 4;
        n
    };
    let record = || Some(("same".to_owned(), b"{}".to_vec()));
    // On one thread, all three are queued before the committer runs, so
    // they are drained into one batch.
    let (ga, gb, c) = tokio::join!(
        admission.update_recorded(&a, grow(&a), record()),
        admission.update_recorded(&b, grow(&b), record()),
        admission.create("r-c", instance("health", "c", 2)),
    );
    c.expect("the unrelated create in the batch");
    let lost = match (ga, gb) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
        other => panic!("exactly one change is the request: {other:?}"),
    };
    assert_eq!(lost.kind(), ErrorKind::Conflict, "{lost:?}");
}
