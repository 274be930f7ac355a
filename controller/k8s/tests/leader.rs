//! Leader election over a coordination.k8s.io/v1 Lease: losing the Lease
//! (another holder, or a renewal answered 409) sets leader=false and stops
//! the loops gated on it. The first two tests are ordered scenarios against
//! the mocked API; the last runs the whole operator against the fake API
//! server, steals its Lease, and watches the reconcilers stop and resume.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::Method;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use yunshu_core::{meta::Kind, model::FoundationSpec};
use yunshu_k8s::{LeaderElector, while_leader};

use common::{Handle, expect, failure, fake_api::FakeApi, reply};

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/yunshu-system/leases";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/yunshu-system/leases/yunshu-operator";

/// Sets its flag when dropped: the gated loop was stopped.
struct Stopped(Arc<AtomicBool>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Gated {
    leader: watch::Receiver<bool>,
    ticks: Arc<AtomicUsize>,
    stopped: Arc<AtomicBool>,
    _shutdown: oneshot::Sender<()>,
}

/// An elector over the mocked API, and a loop gated on it.
fn start(client: kube::Client) -> Gated {
    let (shutdown, signal) = oneshot::channel::<()>();
    let leader = LeaderElector::new(
        client,
        "yunshu-system",
        "yunshu-operator",
        "replica-a",
        Duration::from_secs(3),
    )
    .with_retry_period(Duration::from_millis(20))
    .run(async move {
        let _ = signal.await;
    });
    let ticks = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let (t, s) = (ticks.clone(), stopped.clone());
    tokio::spawn(while_leader(leader.clone(), move || {
        let (ticks, stopped) = (t.clone(), s.clone());
        async move {
            let _guard = Stopped(stopped);
            loop {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }));
    Gated {
        leader,
        ticks,
        stopped,
        _shutdown: shutdown,
    }
}

/// GET answers 404, the create succeeds: the elector leads and the loop runs.
async fn acquire(api: &mut Handle, gated: &mut Gated) -> Value {
    let (_, send) = expect(api, Method::GET, LEASE).await;
    send.send_response(failure(404, "NotFound"));
    let (seen, send) = expect(api, Method::POST, LEASES).await;
    let spec = &seen.body["spec"];
    assert_eq!(spec["holderIdentity"], "replica-a");
    assert_eq!(spec["leaseDurationSeconds"], 3);
    assert!(spec["renewTime"].is_string() && spec["acquireTime"].is_string());
    let mut lease = seen.body.clone();
    lease["metadata"]["resourceVersion"] = json!("1");
    send.send_response(reply(201, &lease));
    tokio::time::timeout(Duration::from_secs(5), gated.leader.wait_for(|l| *l))
        .await
        .expect("leads in time")
        .expect("the elector runs");
    common::eventually(5, "the gated loop to run", || async {
        (gated.ticks.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    lease
}

async fn assert_stopped(gated: &mut Gated) {
    tokio::time::timeout(Duration::from_secs(5), gated.leader.wait_for(|l| !*l))
        .await
        .expect("leadership lost in time")
        .expect("the elector runs");
    common::eventually(5, "the gated loop to stop", || async {
        gated.stopped.load(Ordering::SeqCst).then_some(())
    })
    .await;
    let ticks = gated.ticks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        gated.ticks.load(Ordering::SeqCst),
        ticks,
        "the loop still runs"
    );
}

#[tokio::test]
async fn a_lease_held_by_another_replica_stops_the_gated_loops() {
    let (client, mut api) = common::mock_client();
    let mut gated = start(client);
    let mut lease = acquire(&mut api, &mut gated).await;

    // The next renewal round finds the Lease in another replica's hands.
    let (_, send) = expect(&mut api, Method::GET, LEASE).await;
    lease["spec"]["holderIdentity"] = json!("replica-b");
    lease["spec"]["renewTime"] = json!("2030-01-01T00:00:00.000000Z");
    lease["metadata"]["resourceVersion"] = json!("2");
    send.send_response(reply(200, &lease));
    assert_stopped(&mut gated).await;
}

#[tokio::test]
async fn a_renewal_answered_409_stops_the_gated_loops() {
    let (client, mut api) = common::mock_client();
    let mut gated = start(client);
    let lease = acquire(&mut api, &mut gated).await;

    let (_, send) = expect(&mut api, Method::GET, LEASE).await;
    send.send_response(reply(200, &lease));
    let (seen, send) = expect(&mut api, Method::PUT, LEASE).await;
    assert_eq!(
        seen.body["metadata"]["resourceVersion"], "1",
        "the renewal is guarded"
    );
    assert_eq!(seen.body["spec"]["holderIdentity"], "replica-a");
    assert_ne!(seen.body["spec"]["renewTime"], lease["spec"]["renewTime"]);
    send.send_response(failure(409, "Conflict"));
    assert_stopped(&mut gated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_stops_reconciling_when_its_lease_is_taken_and_resumes_when_it_expires() {
    let fake = FakeApi::new();
    let store = common::store();
    let mut op = common::context(fake.client(), store.clone());
    op.config.leader_election = true;
    op.config.lease_duration = Duration::from_secs(4);
    let (shutdown, signal) = oneshot::channel::<()>();
    let operator = tokio::spawn(yunshu_k8s::run(op, async move {
        let _ = signal.await;
    }));

    let holder = || fake.get(LEASE).map(|l| l["spec"]["holderIdentity"].clone());
    common::eventually(10, "the lease acquired", || async {
        (holder()? == "replica-a").then_some(())
    })
    .await;
    let in_store = |name: &'static str| {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move {
                common::stored::<FoundationSpec>(store.as_ref(), Kind::Foundation, None, name).await
            }
        }
    };
    fake.create(
        "/apis/yunshu.io/v1alpha1/foundations",
        common::foundation("kunpeng-1", None),
    );
    common::eventually(10, "kunpeng-1 synced by the leader", in_store("kunpeng-1")).await;

    // Another replica takes the Lease (and then never renews it).
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    fake.patch(
        LEASE,
        json!({ "spec": { "holderIdentity": "replica-b", "renewTime": now } }),
    );
    let seen = fake.calls().len();
    common::eventually(5, "the elector to read the stolen lease", || async {
        fake.calls()[seen..]
            .iter()
            .any(|c| c.method == Method::GET && c.path == LEASE)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    fake.create(
        "/apis/yunshu.io/v1alpha1/foundations",
        common::foundation("x86-phase-1", None),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        in_store("x86-phase-1")().await.is_none(),
        "a replica that lost its lease still reconciles"
    );
    assert_eq!(
        holder(),
        Some(json!("replica-b")),
        "the follower overwrote a live lease"
    );

    // replica-b stays silent for a lease duration: replica-a takes over and
    // the reconcilers catch up.
    common::eventually(
        15,
        "x86-phase-1 synced after the takeover",
        in_store("x86-phase-1"),
    )
    .await;
    let lease = fake.get(LEASE).expect("the lease");
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    // Shutdown releases the lease for the next replica.
    let _ = shutdown.send(());
    tokio::time::timeout(Duration::from_secs(10), operator)
        .await
        .expect("the operator stops in time")
        .expect("ran")
        .expect("stopped cleanly");
    let lease = fake.get(LEASE).expect("the lease");
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "the lease was not released: {lease}"
    );
}
