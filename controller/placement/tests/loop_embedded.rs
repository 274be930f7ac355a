//! The scheduling loop on the embedded (in-memory) store: objects admitted
//! Pending end Scheduled on the right foundation by architecture, or
//! Unschedulable with reasons, and are scheduled once capacity is added or
//! freed by a deletion.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use tokio::sync::watch;
use yunshu_core::{
    admission::{Admission, AdmissionConfig},
    codec,
    meta::{ConditionStatus, Kind, Object, Spec},
    model::{Bucket, BucketSpec, Phase, Volume, VolumeSpec, WorkloadStatus},
    resources::{ResourceClass, Resources},
    store::Store,
};
use yunshu_placement::{Scheduler, SchedulerConfig, VerdictReport, keys as pkeys};
use yunshu_store::EmbeddedStore;

const WAIT: Duration = Duration::from_secs(10);

struct Env {
    store: Arc<dyn Store>,
    admission: Admission,
    scheduler: Scheduler,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// An x86 and a Kunpeng foundation, department `health`, a running scheduler.
async fn env() -> Env {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory().expect("open"));
    put_foundation(
        &*store,
        "x86-phase1",
        foundation(&["arch:x86_64"], 32, 1.0, 256),
    )
    .await;
    put_foundation(
        &*store,
        "kunpeng",
        foundation(&["arch:aarch64", "cpu:kunpeng", "xinchuang"], 16, 1.0, 256),
    )
    .await;
    put_department(&*store, "health", department(&[], &[])).await;
    let admission = Admission::new(store.clone(), AdmissionConfig::default());
    let scheduler = Scheduler::new(store.clone(), SchedulerConfig::default());
    let (stop, rx) = watch::channel(false);
    let s = scheduler.clone();
    let task = tokio::spawn(async move { s.run(rx).await.expect("loop runs once") });
    Env {
        store,
        admission,
        scheduler,
        stop,
        task,
    }
}

impl Env {
    async fn create(&self, name: &str, vcpu: u32, required: &[&str]) {
        self.admission
            .create(
                &format!("req-{name}"),
                instance("health", name, vcpu, required),
            )
            .await
            .expect("admitted");
    }

    /// Gives both foundations room for volumes.
    async fn add_volume_capacity(&self) {
        for (name, traits, vcpu) in [
            ("x86-phase1", &["arch:x86_64"][..], 32),
            (
                "kunpeng",
                &["arch:aarch64", "cpu:kunpeng", "xinchuang"][..],
                16,
            ),
        ] {
            let mut f = foundation(traits, vcpu, 1.0, 256);
            if let Some(c) = f.capacity.as_mut() {
                c.set(ResourceClass::VolumeGib, 500);
            }
            put_foundation(&*self.store, name, f).await;
        }
    }

    async fn shutdown(self) {
        self.stop.send(true).expect("loop listening");
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("loop stops")
            .expect("loop task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_by_architecture_and_keeps_the_explanation() {
    let env = env().await;
    env.create("arm-vm", 4, &["arch:aarch64"]).await;
    env.create("x86-vm", 2, &["arch:x86_64"]).await;

    let arm = wait_phase(&env.store, "health", "arm-vm", Phase::Scheduled, WAIT).await;
    assert_eq!(arm.status.placement.foundation.as_deref(), Some("kunpeng"));
    assert!(
        arm.status.placement.summary.starts_with("kunpeng chosen"),
        "{}",
        arm.status.placement.summary
    );
    assert_eq!(
        arm.status.placement.per_foundation["x86-phase1"],
        "rejected by traits: lacks required trait `arch:aarch64`"
    );
    let cond = &arm.status.conditions[0];
    assert_eq!(
        (cond.type_.as_str(), cond.status),
        ("Scheduled", ConditionStatus::True)
    );
    let x86 = wait_phase(&env.store, "health", "x86-vm", Phase::Scheduled, WAIT).await;
    assert_eq!(
        x86.status.placement.foundation.as_deref(),
        Some("x86-phase1")
    );

    // The allocation and the claim record what was committed.
    let kunpeng = allocation(&*env.store, "kunpeng").await;
    assert_eq!(kunpeng.used.get(ResourceClass::Vcpu), 4);
    assert_eq!(
        kunpeng.department("health").get(ResourceClass::MemoryMib),
        4096
    );
    let claim = pkeys::claim_for(&yunshu_core::keys::object(
        Kind::Instance,
        Some("health"),
        "arm-vm",
    ))
    .expect("claim key");
    assert!(env.store.get(&claim).await.expect("get").is_some());

    // Explain reads the kept decision back; a dry run decides afresh.
    let report = env
        .scheduler
        .explain(Kind::Instance, "health", "arm-vm")
        .await
        .expect("explain")
        .expect("decided");
    assert_eq!(report.foundation.as_deref(), Some("kunpeng"));
    assert_eq!(report.decided_at, Some(cond.last_transition_time));
    assert_eq!(
        report.verdicts[1].verdict,
        VerdictReport::FilteredOut {
            filter: "traits".into(),
            reason: "lacks required trait `arch:aarch64`".into()
        }
    );
    let VerdictReport::Scored(score) = &report.verdicts[0].verdict else {
        panic!("kunpeng scored: {report:?}");
    };
    assert_eq!(score.rank, 1);
    let dry = env
        .scheduler
        .dry_run(
            "health",
            yunshu_placement::Request::instance(&instance("health", "big", 20, &[]).spec),
        )
        .await
        .expect("dry run");
    assert_eq!(dry.foundation.as_deref(), Some("x86-phase1"), "{dry:?}");
    assert!(dry.decided_at.is_some());
    assert!(matches!(
        &dry.verdicts[0].verdict,
        VerdictReport::FilteredOut { filter, .. } if filter == "capacity"
    ));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_with_reasons_until_capacity_is_added_or_freed() {
    let env = env().await;
    // Nothing has 24 aarch64 vCPUs.
    env.create("arm-big", 24, &["arch:aarch64"]).await;
    let big = wait_phase(&env.store, "health", "arm-big", Phase::Unschedulable, WAIT).await;
    let p = &big.status.placement;
    assert_eq!(p.foundation, None);
    assert_eq!(
        p.summary,
        "unschedulable; 0 of 2 feasible; rejected by traits 1, capacity 1"
    );
    assert_eq!(
        p.per_foundation["kunpeng"],
        "rejected by capacity: vcpu: 24 requested, 16 free"
    );
    assert_eq!(big.status.conditions[0].status, ConditionStatus::False);
    assert_eq!(big.status.conditions[0].reason, "Unschedulable");

    // The admin adds capacity: it is scheduled without being asked again.
    put_foundation(
        &*env.store,
        "kunpeng",
        foundation(&["arch:aarch64", "cpu:kunpeng", "xinchuang"], 16, 2.0, 256),
    )
    .await;
    let big = wait_phase(&env.store, "health", "arm-big", Phase::Scheduled, WAIT).await;
    assert_eq!(big.status.placement.foundation.as_deref(), Some("kunpeng"));

    // Full now (24 of 32): a 10-vCPU request waits until the 24 are released.
    env.create("arm-next", 10, &["arch:aarch64"]).await;
    wait_phase(&env.store, "health", "arm-next", Phase::Unschedulable, WAIT).await;
    env.admission.release(&big).await.expect("deleted");
    let next = wait_phase(&env.store, "health", "arm-next", Phase::Scheduled, WAIT).await;
    assert_eq!(next.status.placement.foundation.as_deref(), Some("kunpeng"));
    let claim = pkeys::claim_for(&yunshu_core::keys::object(
        Kind::Instance,
        Some("health"),
        "arm-big",
    ))
    .expect("claim key");
    assert!(
        env.store.get(&claim).await.expect("get").is_none(),
        "released"
    );
    assert_eq!(
        allocation(&*env.store, "kunpeng")
            .await
            .used
            .get(ResourceClass::Vcpu),
        10
    );
    // Releasing again finds nothing to release.
    let key = yunshu_core::keys::object(Kind::Instance, Some("health"), "arm-big");
    assert!(!env.scheduler.release(&key).await.expect("release"));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_and_buckets_go_where_their_kind_is_served() {
    let env = env().await;
    let mut oss = foundation(&["xinchuang"], 0, 1.0, 0);
    oss.adapter = yunshu_core::model::AdapterKind::S3;
    oss.capacity = Some(Resources::from_pairs([
        (ResourceClass::Buckets, 10),
        (ResourceClass::BucketBytes, 1 << 40),
    ]));
    put_foundation(&*env.store, "oss", oss).await;
    let mut x86 = foundation(&["arch:x86_64"], 32, 1.0, 256);
    if let Some(c) = x86.capacity.as_mut() {
        c.set(ResourceClass::VolumeGib, 500);
    }
    put_foundation(&*env.store, "x86-phase1", x86).await;

    let bucket = Bucket::new(
        Some("health"),
        "archive",
        BucketSpec {
            quota_bytes: 1 << 30,
            quota_objects: None,
            versioning: false,
            constraints: Default::default(),
        },
    );
    env.admission
        .create("req-b", bucket)
        .await
        .expect("admitted");
    let volume = Volume::new(
        Some("health"),
        "data",
        VolumeSpec {
            size_gib: 100,
            attach_to: None,
            constraints: Default::default(),
        },
    );
    env.admission
        .create("req-v", volume)
        .await
        .expect("admitted");

    let b: Bucket = wait_for(&env.store, Kind::Bucket, "archive").await;
    assert_eq!(b.status.placement.foundation.as_deref(), Some("oss"));
    assert_eq!(
        b.status.placement.per_foundation["x86-phase1"],
        "rejected by capability: adapter cannot create buckets"
    );
    let v: Volume = wait_for(&env.store, Kind::Volume, "data").await;
    assert_eq!(v.status.placement.foundation.as_deref(), Some("x86-phase1"));
    assert_eq!(
        v.status.placement.per_foundation["kunpeng"],
        "rejected by capacity: no volume_gib inventory"
    );
    let oss = allocation(&*env.store, "oss").await;
    assert_eq!(oss.used.get(ResourceClass::BucketBytes), 1 << 30);
    env.shutdown().await;
}

/// A volume to attach waits Unschedulable until its instance is placed,
/// then goes to the instance's foundation, even when spreading would pick
/// the other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_volume_follows_its_instance() {
    let env = env().await;
    env.add_volume_capacity().await;
    env.admission
        .create("req-d1", attached_volume("d1", "arm-vm"))
        .await
        .expect("admitted");
    wait_volume_reason(
        &env.store,
        "d1",
        "instance `arm-vm` to attach to does not exist",
    )
    .await;
    env.create("arm-vm", 2, &["arch:aarch64"]).await;
    let v: Volume = wait_for(&env.store, Kind::Volume, "d1").await;
    assert_eq!(v.status.placement.foundation.as_deref(), Some("kunpeng"));

    env.create("x86-vm", 2, &["arch:x86_64"]).await;
    wait_phase(&env.store, "health", "x86-vm", Phase::Scheduled, WAIT).await;
    for i in 0..3 {
        let name = format!("d-x86-{i}");
        env.admission
            .create(&format!("req-{name}"), attached_volume(&name, "x86-vm"))
            .await
            .expect("admitted");
        let v: Volume = wait_for(&env.store, Kind::Volume, &name).await;
        assert_eq!(v.status.placement.foundation.as_deref(), Some("x86-phase1"));
        assert_eq!(
            v.status.placement.per_foundation["kunpeng"],
            "rejected by zone: instance `x86-vm` to attach to is on `x86-phase1`"
        );
    }
    env.shutdown().await;
}

/// A volume waiting on an instance that cannot be placed hears at once
/// that the instance was deleted, and is placed at once when an instance
/// of that name is created again and placed — not at the next periodic
/// retry (30 s, longer than `WAIT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_volume_hears_when_its_instance_is_deleted_and_made_again() {
    let env = env().await;
    env.add_volume_capacity().await;
    // 64 vCPUs fit no aarch64 foundation (kunpeng has 16).
    env.create("arm-vm", 64, &["arch:aarch64"]).await;
    wait_phase(&env.store, "health", "arm-vm", Phase::Unschedulable, WAIT).await;
    env.admission
        .create("req-d1", attached_volume("d1", "arm-vm"))
        .await
        .expect("admitted");
    wait_volume_reason(
        &env.store,
        "d1",
        "instance `arm-vm` to attach to is not placed yet",
    )
    .await;

    let vm = read_instance(&*env.store, "health", "arm-vm")
        .await
        .expect("stored");
    env.admission.release(&vm).await.expect("deleted");
    wait_volume_reason(
        &env.store,
        "d1",
        "instance `arm-vm` to attach to does not exist",
    )
    .await;

    env.admission
        .create(
            "req-arm-vm-again",
            instance("health", "arm-vm", 2, &["arch:aarch64"]),
        )
        .await
        .expect("admitted");
    let v: Volume = wait_for(&env.store, Kind::Volume, "d1").await;
    assert_eq!(v.status.placement.foundation.as_deref(), Some("kunpeng"));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_scheduler_releases_what_was_deleted_while_it_was_down() {
    let env = env().await;
    env.create("vm", 8, &["arch:x86_64"]).await;
    let vm = wait_phase(&env.store, "health", "vm", Phase::Scheduled, WAIT).await;
    let (store, admission) = (env.store.clone(), env.admission.clone());
    env.shutdown().await;

    admission.release(&vm).await.expect("deleted");
    assert_eq!(
        allocation(&*store, "x86-phase1")
            .await
            .used
            .get(ResourceClass::Vcpu),
        8,
        "nobody released it yet"
    );
    let scheduler = Scheduler::new(store.clone(), SchedulerConfig::default());
    let (stop, rx) = watch::channel(false);
    let s = scheduler.clone();
    let task = tokio::spawn(async move { s.run(rx).await.expect("loop runs once") });
    let deadline = tokio::time::Instant::now() + WAIT;
    while allocation(&*store, "x86-phase1")
        .await
        .used
        .get(ResourceClass::Vcpu)
        != 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweep released the claim"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let claim = pkeys::claim_for(&yunshu_core::keys::object(
        Kind::Instance,
        Some("health"),
        "vm",
    ))
    .expect("claim key");
    assert!(store.get(&claim).await.expect("get").is_none());
    assert!(
        scheduler.run(watch::channel(false).1).await.is_err(),
        "one loop per scheduler"
    );
    stop.send(true).expect("listening");
    task.await.expect("loop task");
}

/// Waits until the object of `kind` named `name` in `health` is Scheduled.
async fn wait_for<S: Spec<Status = WorkloadStatus>>(
    store: &Arc<dyn Store>,
    kind: Kind,
    name: &str,
) -> Object<S> {
    let key = yunshu_core::keys::object(kind, Some("health"), name);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(kv) = store.get(&key).await.expect("get") {
            let o: Object<S> = codec::decode_object(&kv).expect("decode");
            if o.status.phase == Phase::Scheduled {
                return o;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} not scheduled: {o:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A 10 GiB volume of department `health` to attach to instance `to`.
fn attached_volume(name: &str, to: &str) -> Volume {
    Volume::new(
        Some("health"),
        name,
        VolumeSpec {
            size_gib: 10,
            attach_to: Some(to.into()),
            constraints: Default::default(),
        },
    )
}

/// Waits until volume `name` is Unschedulable and says `why` of kunpeng.
async fn wait_volume_reason(store: &Arc<dyn Store>, name: &str, why: &str) {
    let key = yunshu_core::keys::object(Kind::Volume, Some("health"), name);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let kv = store.get(&key).await.expect("get").expect("stored");
        let v: Volume = codec::decode_object(&kv).expect("decode");
        if v.status.phase == Phase::Unschedulable
            && v.status
                .placement
                .per_foundation
                .get("kunpeng")
                .is_some_and(|r| r.contains(why))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "volume {name} never said {why:?}: {:?}",
            v.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
