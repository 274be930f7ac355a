//! The invariant test: three schedulers, each on its own connection to one
//! real etcd, place ≥ 2,000 concurrently admitted instances over six
//! foundations while some scheduled ones are deleted and one foundation
//! grows, and then 400 placed ones double their vCPUs (those that fit
//! grow, the rest wait). Replaying the whole history shows that no
//! foundation's allocation ever exceeded capacity × allocation ratio, that
//! the allocation keys always equal the claims, and every request ends
//! Scheduled or Unschedulable with a reason. Set `YUNSHU_PLACEMENT_UNGUARDED=1` to drop the allocation guard
//! and watch it fail.

mod common;
mod invariant;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use common::{allocation, foundation, instance, put_foundation};
use tokio::sync::watch;
use yunshu_core::{
    admission::{Admission, AdmissionConfig},
    codec, keys,
    meta::Kind,
    model::{Charge, Instance, Phase},
    resources::Resources,
    store::{Store, StoreExt},
};
use yunshu_placement::{ClaimRecord, Request, Scheduler, SchedulerConfig, keys as pkeys};
use yunshu_store::{EtcdConfig, EtcdStore};
use yunshu_testenv::EtcdServer;

const REQUESTS: usize = 2_100;
const DELETES: usize = 150;
const RESIZES: usize = 400;

async fn instances(store: &dyn Store) -> Vec<Instance> {
    store
        .range_all(&keys::objects_of_kind(Kind::Instance), 500)
        .await
        .expect("list")
        .iter()
        .map(|kv| codec::decode_object(kv).expect("decode"))
        .collect()
}

/// Waits until nothing is Pending and the store has not moved for a while.
async fn settle(store: &dyn Store, within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = (0, Instant::now());
    loop {
        assert!(Instant::now() < deadline, "scheduling did not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rev = store.current_revision().await.expect("revision");
        if rev != last.0 {
            last = (rev, Instant::now());
            continue;
        }
        if last.1.elapsed() > Duration::from_millis(700)
            && instances(store)
                .await
                .iter()
                .all(|i| i.status.phase != Phase::Pending)
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_schedulers_on_one_etcd_never_overcommit() {
    let started = Instant::now();
    let server = EtcdServer::start().expect("start etcd");
    let unguarded = std::env::var_os("YUNSHU_PLACEMENT_UNGUARDED").is_some();
    let (stop, stop_rx) = watch::channel(false);
    let (mut stores, mut admissions, mut schedulers, mut loops) = (vec![], vec![], vec![], vec![]);
    for _ in 0..3 {
        let store: Arc<dyn Store> = Arc::new(
            EtcdStore::connect(EtcdConfig::new([server.endpoint()]))
                .await
                .expect("connect"),
        );
        let config = SchedulerConfig {
            unguarded_allocations_for_tests: unguarded,
            ..SchedulerConfig::default()
        };
        let scheduler = Scheduler::new(store.clone(), config);
        let (s, rx) = (scheduler.clone(), stop_rx.clone());
        loops.push(tokio::spawn(async move { s.run(rx).await.expect("run") }));
        admissions.push(Admission::new(store.clone(), AdmissionConfig::default()));
        schedulers.push(scheduler);
        stores.push(store);
    }
    let store = stores[0].clone();
    // The history is recorded as it happens: catching up on it afterwards
    // would ask etcd for more than one watch response may carry.
    let recorder = invariant::history::Recorder::start(&*store).await;
    invariant::fleet(&*store).await;

    // Every request is admitted concurrently, through all three replicas.
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let admission = admissions[i % 3].clone();
            tokio::spawn(async move {
                let (dept, vcpu, required) = invariant::request(i);
                let obj = instance(dept, &format!("vm-{i}"), vcpu, &required);
                admission
                    .create(&format!("req-{i}"), obj)
                    .await
                    .expect("admitted");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("admission task");
    }
    let admitted_after = started.elapsed();

    // Delete some scheduled instances as scheduling goes on, and grow the DR site.
    let mut deleted = Vec::new();
    while deleted.len() < DELETES {
        for i in instances(&*store).await {
            if deleted.len() < DELETES
                && i.status.phase == Phase::Scheduled
                && admissions[deleted.len() % 3].release(&i).await.is_ok()
            {
                deleted.push(i.meta.name.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    put_foundation(
        &*store,
        "x86-dr",
        foundation(&["arch:x86_64", "cpu:intel"], 128, 1.0, 256),
    )
    .await;
    settle(&*store, Duration::from_secs(40)).await;
    let scheduled_after = started.elapsed();

    // Resizes of placed instances, through all three replicas: some made
    // Ready (as the provisioner would) double their vCPUs. Growth takes
    // room like a placement does, so the history must stay within capacity
    // here too; what does not fit waits with its claim unchanged.
    let mut resized = 0;
    let placed: Vec<Instance> = instances(&*store)
        .await
        .into_iter()
        .filter(|i| i.status.phase == Phase::Scheduled)
        .take(RESIZES)
        .collect();
    let tasks: Vec<_> = placed
        .into_iter()
        .enumerate()
        .map(|(n, mut i)| {
            let (store, admission) = (store.clone(), admissions[n % 3].clone());
            tokio::spawn(async move {
                let key = keys::object(Kind::Instance, i.meta.department.as_deref(), &i.meta.name);
                i.status.phase = Phase::Ready;
                i.status.provisioned = Some(i.spec.charge());
                let revision = store
                    .put(&key, codec::encode(&i).expect("encode"))
                    .await
                    .expect("ready");
                i.meta.revision = revision;
                let mut bigger = i.clone();
                bigger.spec.vcpu *= 2;
                bigger.meta.generation += 1;
                admission.update(&i, bigger).await.is_ok()
            })
        })
        .collect();
    for t in tasks {
        resized += usize::from(t.await.expect("resize task"));
    }
    settle(&*store, Duration::from_secs(40)).await;
    stop.send(true).expect("loops listening");
    for l in loops {
        tokio::time::timeout(Duration::from_secs(10), l)
            .await
            .expect("loop stops")
            .expect("loop task");
    }

    // At every revision: within capacity, allocation keys equal to claims.
    let revisions = recorder.replay(&*store, &invariant::LIMITS).await;

    // Final state: every request Scheduled (with a claim), Unschedulable
    // with reasons for every foundation, or deleted by the test.
    let all = instances(&*store).await;
    assert_eq!(
        all.len() + deleted.len(),
        REQUESTS,
        "one object per request"
    );
    let mut per_foundation: BTreeMap<String, Resources> = BTreeMap::new();
    let (mut scheduled, mut unschedulable, mut grown) = (0, 0, 0);
    let mut shapes: HashMap<(String, u32, Vec<String>), Instance> = HashMap::new();
    for i in &all {
        let key = keys::object(Kind::Instance, i.meta.department.as_deref(), &i.meta.name);
        let p = &i.status.placement;
        match i.status.phase {
            Phase::Scheduled | Phase::Ready => {
                scheduled += 1;
                let f = p.foundation.clone().expect("scheduled on a foundation");
                let ckv = store
                    .get(&pkeys::claim_for(&key).expect("claim key"))
                    .await
                    .expect("get")
                    .unwrap_or_else(|| panic!("{key} has no claim"));
                let claim: ClaimRecord = codec::decode(&ckv.key, &ckv.value).expect("claim");
                assert_eq!(
                    (claim.uid.as_str(), claim.foundation.as_str()),
                    (i.meta.uid.as_str(), f.as_str())
                );
                // A claim holds its object's size, or, for a growth still
                // waiting for room, what the cloud holds.
                let held = i.status.provisioned.unwrap_or(claim.charge);
                assert!(
                    claim.charge == i.spec.charge() || claim.charge == held,
                    "{key}: claim {:?}, spec {:?}, cloud {held:?}",
                    claim.charge,
                    i.spec.charge()
                );
                if claim.charge == i.spec.charge() && held != claim.charge {
                    grown += 1;
                }
                let e = per_foundation.entry(f.clone()).or_default();
                *e = e.checked_add(&claim.charge).expect("sum");
            }
            Phase::Unschedulable => {
                unschedulable += 1;
                // The summary counts only the foundations the department may
                // use: edu may use three of the six.
                let visible = if i.meta.department.as_deref() == Some("edu") {
                    3
                } else {
                    6
                };
                assert!(
                    p.summary
                        .starts_with(&format!("unschedulable; 0 of {visible} feasible")),
                    "{key}: {}",
                    p.summary
                );
                assert_eq!(p.per_foundation.len(), 6, "{key}: a reason per foundation");
                assert!(
                    p.per_foundation
                        .values()
                        .all(|l| l.starts_with("rejected by ")),
                    "{key}: {p:?}"
                );
                let shape = (
                    i.meta.department.clone().unwrap_or_default(),
                    i.spec.vcpu,
                    i.spec
                        .constraints
                        .required_traits
                        .iter()
                        .map(|t| t.to_string())
                        .collect(),
                );
                shapes.entry(shape).or_insert_with(|| i.clone());
            }
            other => panic!("{key} ended {other:?}"),
        }
    }
    for f in [
        "x86-phase1",
        "x86-phase2",
        "kunpeng",
        "pk-phytium",
        "hygon",
        "x86-dr",
    ] {
        let a = allocation(&*store, f).await;
        assert_eq!(
            a.used,
            per_foundation.get(f).copied().unwrap_or_default(),
            "{f}: allocation equals its scheduled objects' claims"
        );
    }
    // Nothing left Unschedulable would fit now.
    for (shape, i) in &shapes {
        let report = schedulers[0]
            .dry_run(&shape.0, Request::instance(&i.spec))
            .await
            .expect("dry run");
        assert_eq!(
            report.foundation, None,
            "{shape:?} fits now but was left Unschedulable"
        );
    }
    assert!(
        scheduled > 500 && unschedulable > 100,
        "a mix: {scheduled} scheduled, {unschedulable} unschedulable"
    );
    assert!(
        grown > 0 && grown < resized,
        "some resizes fit and some wait: {grown} of {resized} grew"
    );

    eprintln!(
        "{REQUESTS} requests over 6 foundations, 3 schedulers: {scheduled} scheduled, {unschedulable} unschedulable, \
         {} deleted, {grown} of {resized} doubled; admitted in {admitted_after:.1?}, settled in {scheduled_after:.1?}; \
         history of {revisions} revisions checked; total {:.1?}",
        deleted.len(),
        started.elapsed()
    );
}
