//! Retries of spec changes (start, stop, resize, attach, detach): a
//! request id is carried out once, and a retry gets the first answer even
//! after someone else changed the object; an id used for another request
//! is refused.

use std::sync::Arc;

use super::*;
use yunshu_core::{
    keys,
    meta::Kind,
    model::{InstanceSpec, Phase},
};

const WEB_1: &str = "departments/health/instances/web-1";

fn resize(request_id: &str, vcpu: u32, memory_mib: u64) -> pb::ResizeInstanceRequest {
    pb::ResizeInstanceRequest {
        name: WEB_1.into(),
        vcpu,
        memory_mib,
        request_id: request_id.into(),
    }
}

fn spec_of(i: Option<pb::Instance>) -> (pb::InstanceSpec, u64) {
    let i = i.expect("instance");
    (
        i.spec.expect("spec"),
        i.metadata.expect("metadata").generation,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_change_is_answered_as_first_and_not_carried_out_again() {
    let s = start().await;
    department(&*s.store, "health", 48).await;
    let mut c = common::create_web_1(&s.channel).await;
    let stop = |id: &str| pb::StopInstanceRequest {
        name: WEB_1.into(),
        request_id: id.into(),
    };
    let start = |id: &str| pb::StartInstanceRequest {
        name: WEB_1.into(),
        request_id: id.into(),
    };

    // Stop, then someone else starts it; the stop's retry (its answer was
    // lost, say) answers as the stop did and leaves the instance running.
    let first = c
        .stop_instance(as_(ALICE, stop("stop-1")))
        .await
        .expect("stop")
        .into_inner();
    c.start_instance(as_(ALICE, start("start-1")))
        .await
        .expect("start");
    let retry = c
        .stop_instance(as_(ALICE, stop("stop-1")))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(retry.instance, first.instance, "the first answer");
    let now = c
        .get_instance(as_(ALICE, pb::GetInstanceRequest { name: WEB_1.into() }))
        .await
        .expect("get")
        .into_inner();
    let (spec, generation) = spec_of(now.instance);
    assert_eq!(
        spec.power,
        pb::PowerState::Running as i32,
        "started stays started"
    );
    assert_eq!(generation, 3, "stop and start, once each");

    // A resize retried after another resize does not undo it.
    c.resize_instance(as_(ALICE, resize("grow-1", 4, 8192)))
        .await
        .expect("grow");
    c.resize_instance(as_(ALICE, resize("shrink-1", 2, 4096)))
        .await
        .expect("shrink");
    let (spec, _) = spec_of(
        c.resize_instance(as_(ALICE, resize("grow-1", 4, 8192)))
            .await
            .expect("retry")
            .into_inner()
            .instance,
    );
    assert_eq!(spec.vcpu, 4, "the grow's own answer");
    let (spec, generation) = spec_of(
        c.get_instance(as_(ALICE, pb::GetInstanceRequest { name: WEB_1.into() }))
            .await
            .expect("get")
            .into_inner()
            .instance,
    );
    assert_eq!((spec.vcpu, generation), (2, 5), "the shrink stands");

    // A change that finds the spec as asked is remembered too.
    c.stop_instance(as_(ALICE, stop("stop-2")))
        .await
        .expect("stop");
    c.stop_instance(as_(ALICE, stop("stop-3")))
        .await
        .expect("already stopped");
    c.start_instance(as_(ALICE, start("start-2")))
        .await
        .expect("start");
    let (spec, _) = spec_of(
        c.stop_instance(as_(ALICE, stop("stop-3")))
            .await
            .expect("retry")
            .into_inner()
            .instance,
    );
    assert_eq!(
        spec.power,
        pb::PowerState::Stopped as i32,
        "as first answered"
    );

    // An id is for one request: another change, another size, or a create.
    for err in [
        c.start_instance(as_(ALICE, start("stop-1")))
            .await
            .expect_err("start under a stop's id"),
        c.resize_instance(as_(ALICE, resize("grow-1", 8, 16384)))
            .await
            .expect_err("another size under the id"),
        c.resize_instance(as_(ALICE, resize("r1", 4, 8192)))
            .await
            .expect_err("a resize under the create's id"),
    ] {
        assert_eq!(err.code(), Code::Aborted, "{err:?}");
        assert!(err.message().contains("already used"), "{err:?}");
    }
    let err = c
        .create_instance(as_(
            ALICE,
            common::create("web-2", "grow-1", common::instance(2, 4096, "kylin-v10")),
        ))
        .await
        .expect_err("a create under a resize's id");
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_a_change_change_it_once() {
    let s = start().await;
    department(&*s.store, "health", 48).await;
    let c = common::create_web_1(&s.channel).await;
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let mut c = c.clone();
            tokio::spawn(async move {
                c.resize_instance(as_(ALICE, resize("grow-1", 4, 8192)))
                    .await
                    .map(|r| spec_of(r.into_inner().instance))
            })
        })
        .collect();
    for call in calls {
        let (spec, generation) = call.await.expect("join").expect("resize");
        assert_eq!(
            (spec.vcpu, generation),
            (4, 2),
            "every call answers the one change"
        );
    }
    let key = keys::object(Kind::Instance, Some("health"), "web-1");
    let kv = s.store.get(&key).await.expect("read").expect("stored");
    let o = yunshu_core::codec::decode_object::<InstanceSpec>(&kv).expect("decode");
    assert_eq!((o.spec.vcpu, o.meta.generation), (4, 2));
    // Admission charged the growth once.
    let usage = s
        .store
        .get(&keys::usage("health"))
        .await
        .expect("read")
        .expect("usage");
    let usage: yunshu_core::admission::UsageRecord =
        yunshu_core::codec::decode(&usage.key, &usage.value).expect("decode");
    assert_eq!(
        usage.usage.get(yunshu_core::resources::ResourceClass::Vcpu),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_size_is_named_as_the_request_names_it_in_any_phase() {
    let s = start().await;
    department(&*s.store, "health", 48).await;
    let mut c = common::create_web_1(&s.channel).await;
    let key = keys::object(Kind::Instance, Some("health"), "web-1");
    common::change_stored::<InstanceSpec>(&*s.store, &key, |o| {
        o.status.phase = Phase::Provisioning;
    })
    .await;
    let err = c
        .resize_instance(as_(ALICE, resize("bad-1", 0, 4096)))
        .await
        .expect_err("no vCPUs");
    common::assert_names_field(err, "vcpu");
    let err = c
        .resize_instance(as_(ALICE, resize("bad-2", 3, 1000)))
        .await
        .expect_err("not a catalog size");
    common::assert_names_field(err, "vcpu");
    let err = c
        .resize_instance(as_(ALICE, resize("bad-3", 4, 0)))
        .await
        .expect_err("no memory");
    common::assert_names_field(err, "memory_mib");
    // A good size on an instance being built is refused for its phase.
    let err = c
        .resize_instance(as_(ALICE, resize("good-1", 4, 8192)))
        .await
        .expect_err("being built");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_id_for_two_objects_at_once_is_one_request_and_spoils_no_batch() {
    let s = start().await;
    department(&*s.store, "health", 48).await;
    let c = InstanceServiceClient::new(s.channel.clone());
    // Growths sent together often land in one admission batch: the second
    // write of the id must not make the batch's transaction invalid for
    // everyone in it. Several rounds, so one of them surely does.
    for round in 0..6 {
        let names = ["a", "b"].map(|n| format!("{n}-{round}"));
        for name in &names {
            c.clone()
                .create_instance(as_(
                    ALICE,
                    common::create(
                        name,
                        &format!("new-{name}"),
                        common::instance(2, 4096, "kylin-v10"),
                    ),
                ))
                .await
                .expect("create");
        }
        let calls = names.map(|name| {
            let mut c = c.clone();
            let req = pb::ResizeInstanceRequest {
                name: format!("departments/health/instances/{name}"),
                vcpu: 4,
                memory_mib: 8192,
                request_id: format!("same-{round}"),
            };
            tokio::spawn(async move { c.resize_instance(as_(ALICE, req)).await })
        });
        let mut results = Vec::new();
        for call in calls {
            results.push(call.await.expect("join"));
        }
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "one of them is the request: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert_eq!(e.code(), Code::Aborted, "{e:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_loses_to_a_status_write_is_made_again() {
    use std::sync::atomic::Ordering;
    let key = keys::object(Kind::Instance, Some("health"), "web-1");
    let racing = Arc::new(common::Racing {
        inner: yunshu_store::EmbeddedStore::in_memory().expect("store"),
        key: key.clone(),
        armed: false.into(),
        raced: 0.into(),
    });
    let s = common::start_on(racing.clone()).await;
    department(&*s.store, "health", 48).await;
    let mut c = common::create_web_1(&s.channel).await;

    // A stop (same charge: a guarded write) and a resize (through
    // admission), each losing once to another writer.
    racing.armed.store(true, Ordering::SeqCst);
    let (spec, generation) = spec_of(
        c.stop_instance(as_(
            ALICE,
            pb::StopInstanceRequest {
                name: WEB_1.into(),
                request_id: "stop-1".into(),
            },
        ))
        .await
        .expect("made again on a fresh read, not ABORTED")
        .into_inner()
        .instance,
    );
    assert_eq!(
        racing.raced.load(Ordering::SeqCst),
        1,
        "the write lost once"
    );
    assert_eq!(
        (spec.power, generation),
        (pb::PowerState::Stopped as i32, 2)
    );

    racing.armed.store(true, Ordering::SeqCst);
    let (spec, generation) = spec_of(
        c.resize_instance(as_(ALICE, resize("grow-1", 4, 8192)))
            .await
            .expect("made again on a fresh read")
            .into_inner()
            .instance,
    );
    assert_eq!(
        racing.raced.load(Ordering::SeqCst),
        2,
        "the write lost once"
    );
    assert_eq!((spec.vcpu, generation), (4, 3), "one generation per change");

    // A delete, both ways: marked for a finalizer (a guarded write), then,
    // once nothing holds it, removed with its charge (admission).
    common::change_stored::<InstanceSpec>(&*s.store, &key, |o| {
        o.meta.finalizers = vec!["yunshu.io/provisioner".into()];
    })
    .await;
    let delete = |request_id: &str| {
        as_(
            ALICE,
            pb::DeleteInstanceRequest {
                name: WEB_1.into(),
                request_id: request_id.into(),
            },
        )
    };
    let deletion_time = |i: Option<pb::Instance>| i.and_then(|i| i.metadata?.delete_time);
    racing.armed.store(true, Ordering::SeqCst);
    let marked = c
        .delete_instance(delete("bye-1"))
        .await
        .expect("marked on a fresh read, not ABORTED")
        .into_inner()
        .instance;
    assert_eq!(racing.raced.load(Ordering::SeqCst), 3, "the mark lost once");
    let again = c
        .delete_instance(delete("bye-1"))
        .await
        .expect("retry")
        .into_inner()
        .instance;
    assert!(deletion_time(marked.clone()).is_some());
    assert_eq!(deletion_time(again), deletion_time(marked));

    common::change_stored::<InstanceSpec>(&*s.store, &key, |o| o.meta.finalizers.clear()).await;
    racing.armed.store(true, Ordering::SeqCst);
    let gone = c
        .delete_instance(delete("bye-2"))
        .await
        .expect("removed on a fresh read, not ABORTED")
        .into_inner()
        .instance;
    assert_eq!(
        racing.raced.load(Ordering::SeqCst),
        4,
        "the removal lost once"
    );
    assert!(s.store.get(&key).await.expect("read").is_none(), "removed");
    let retried = c
        .delete_instance(delete("bye-2"))
        .await
        .expect("a retry is answered")
        .into_inner()
        .instance;
    assert_eq!(deletion_time(retried), deletion_time(gone));
}
