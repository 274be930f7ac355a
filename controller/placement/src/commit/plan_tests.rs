//! Planning a batch: what goes into the transaction, what is answered at
//! once, and the allocation after.

use std::sync::{Arc, atomic::AtomicBool};

use yunshu_core::{
    model::InventoryRecord,
    resources::{ResourceClass, Resources},
};

use super::*;
use crate::{
    commit::{AdjustJob, PlaceJob, ReleaseJob},
    inventory::ClaimRecord,
};

fn vcpu(n: u64) -> Resources {
    Resources::from_pairs([(ResourceClass::Vcpu, n)])
}

/// A Ready foundation at generation 3 with `capacity` vCPU (largest unit 16)
/// and `used` committed, and departments `d` (no limits) and `q` (8 vCPU here).
fn state(capacity: u64, used: u64) -> State {
    let record = InventoryRecord {
        total: capacity,
        reserved: 0,
        allocation_ratio: 1.0,
        used: 0,
        max_unit: 16,
    };
    let dept = |limit: Option<u64>| DeptState {
        revision: 5,
        allowed: true,
        limits: limit.map(|l| Limits::from([(ResourceClass::Vcpu, l)])),
    };
    State {
        foundation_revision: 10,
        generation: 3,
        health: Health::Ready,
        inventory: Inventory::from([(ResourceClass::Vcpu, record)]),
        allocation_revision: 11,
        allocation: AllocationRecord::default()
            .plus("d", &vcpu(used))
            .expect("small"),
        departments: BTreeMap::from([
            ("d".to_owned(), dept(None)),
            ("q".to_owned(), dept(Some(8))),
        ]),
    }
}

fn place(name: &str, dept: &str, n: u64) -> Job {
    Job::Place(PlaceJob {
        key: format!("/yunshu/objects/instances/{dept}/{name}"),
        revision: 20,
        uid: format!("uid-{name}"),
        department: dept.into(),
        charge: vcpu(n),
        record: Vec::new(),
        generation: 3,
        cancel: Arc::new(AtomicBool::new(false)),
    })
}

fn release(name: &str, n: u64) -> Job {
    Job::Release(ReleaseJob {
        claim_key: format!("/yunshu/claims/instances/d/{name}"),
        claim_revision: 15,
        claim: ClaimRecord {
            uid: format!("uid-{name}"),
            foundation: "f".into(),
            department: "d".into(),
            charge: vcpu(n),
        },
        object_key: format!("/yunshu/objects/instances/d/{name}"),
        object_revision: 0,
        reply: None,
    })
}

/// Department `d`'s instance `name` moving its claim from `from` to `to` vCPUs.
fn adjust(name: &str, from: u64, to: u64) -> Job {
    Job::Adjust(AdjustJob {
        claim_key: format!("/yunshu/claims/instances/d/{name}"),
        claim_revision: 15,
        claim: ClaimRecord {
            uid: format!("uid-{name}"),
            foundation: "f".into(),
            department: "d".into(),
            charge: vcpu(from),
        },
        charge: vcpu(to),
        object_key: format!("/yunshu/objects/instances/d/{name}"),
        object_revision: 21,
    })
}

fn key(job: &Job) -> &str {
    match job {
        Job::Place(p) | Job::Park(p) => &p.key,
        Job::Release(r) => &r.claim_key,
        Job::Adjust(a) => &a.claim_key,
    }
}

fn bounce_reason(e: &Early) -> &str {
    match e {
        Early::Bounce(why) => why,
        Early::Stale => "stale",
    }
}

#[test]
fn accepts_what_fits_and_bounces_the_rest_with_a_reason() {
    let p = plan(
        &state(40, 20),
        false,
        vec![place("a", "d", 8), place("b", "d", 16), place("c", "d", 4)],
    );
    let accepted: Vec<_> = p.accepted.iter().map(key).collect();
    assert_eq!(
        accepted,
        [
            "/yunshu/objects/instances/d/a",
            "/yunshu/objects/instances/d/c"
        ]
    );
    assert_eq!(p.answered.len(), 1);
    assert_eq!(
        bounce_reason(&p.answered[0].1),
        "vcpu: 16 requested, 12 free, largest free unit 12"
    );
    assert_eq!(p.allocation.used.get(ResourceClass::Vcpu), 32);
    assert_eq!(p.departments, BTreeSet::from(["d".to_owned()]));
    assert!(!p.reload);
}

#[test]
fn releases_make_room_for_placements_in_the_same_batch() {
    let p = plan(
        &state(40, 40),
        false,
        vec![place("new", "d", 10), release("old", 10)],
    );
    assert_eq!(p.accepted.len(), 2);
    assert!(
        matches!(p.accepted[0], Job::Release(_)),
        "releases go first"
    );
    assert_eq!(p.allocation.used.get(ResourceClass::Vcpu), 40);
}

#[test]
fn a_second_job_on_a_key_waits_for_the_next_round() {
    // A release of `x`'s old claim and a placement of a new `x` touch the same claim.
    let p = plan(
        &state(40, 10),
        false,
        vec![release("x", 10), place("x", "d", 2), place("x", "d", 2)],
    );
    assert_eq!(p.accepted.len(), 1);
    assert_eq!(p.deferred.len(), 2);
}

#[test]
fn cancelled_decisions_are_stale() {
    let job = place("a", "d", 1);
    if let Job::Place(p) = &job {
        p.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let p = plan(&state(40, 0), false, vec![job]);
    assert!(matches!(p.answered[..], [(_, Early::Stale)]));
    assert!(p.accepted.is_empty());
}

#[test]
fn a_decision_on_another_generation_rereads_then_bounces() {
    let mut s = state(40, 0);
    s.generation = 2;
    let p = plan(&s, false, vec![place("a", "d", 1), place("b", "d", 1)]);
    assert!(p.reload, "the state may be older than the decision");
    assert_eq!(p.deferred.len(), 2);
    let p = plan(&s, true, vec![place("a", "d", 1)]);
    assert_eq!(
        bounce_reason(&p.answered[0].1),
        "the foundation's spec changed since the decision"
    );
}

#[test]
fn health_departments_and_per_foundation_quota_are_checked_again() {
    let mut s = state(40, 0);
    let p = plan(
        &s,
        true,
        vec![place("a", "q", 6), place("b", "q", 4), place("c", "zz", 1)],
    );
    assert_eq!(p.accepted.len(), 1);
    let reasons: Vec<_> = p.answered.iter().map(|(_, e)| bounce_reason(e)).collect();
    assert_eq!(
        reasons,
        [
            "vcpu requested 4, used 6, limit 8 on this foundation",
            "department zz not found"
        ]
    );
    s.departments.insert(
        "zz".into(),
        DeptState {
            revision: 9,
            allowed: false,
            limits: None,
        },
    );
    s.health = Health::Down;
    let p = plan(&s, true, vec![place("a", "d", 1)]);
    assert_eq!(bounce_reason(&p.answered[0].1), "the foundation is Down");
    s.health = Health::Degraded;
    let p = plan(&s, true, vec![place("a", "zz", 1), place("b", "d", 1)]);
    assert_eq!(
        bounce_reason(&p.answered[0].1),
        "not among the department's allowed foundations"
    );
    assert_eq!(p.accepted.len(), 1, "Degraded still takes what was decided");
}

#[test]
fn unschedulable_writes_need_no_foundation() {
    let Job::Place(job) = place("a", "d", 1000) else {
        unreachable!("a placement");
    };
    let p = plan(&State::default(), true, vec![Job::Park(job)]);
    assert_eq!(p.accepted.len(), 1);
    assert!(p.departments.is_empty());
}

#[test]
fn only_guarded_revisions_count_as_moved() {
    let old = state(40, 0);
    let mut fresh = old.clone();
    fresh.departments.remove("q");
    assert!(!old.moved(&fresh), "a department not reread has not moved");
    fresh.allocation_revision += 1;
    assert!(old.moved(&fresh));
    let mut fresh = old.clone();
    if let Some(d) = fresh.departments.get_mut("d") {
        d.revision += 1;
    }
    assert!(old.moved(&fresh));
}

#[test]
fn claims_grow_only_into_free_room_and_shrinks_go_first() {
    // a holds 8 and b 8 of 16: b cannot grow to 12, a can shrink. Refused
    // on a state read for this attempt, it is answered; on an older one,
    // the state is read again first (room may have come since).
    let p = plan(&state(16, 16), true, vec![adjust("b", 8, 12)]);
    assert!(p.accepted.is_empty());
    let (job, why) = &p.answered[0];
    assert_eq!(key(job), "/yunshu/claims/instances/d/b");
    assert!(bounce_reason(why).contains("vcpu"), "{why:?}");
    let p = plan(
        &state(16, 16),
        false,
        vec![release("r", 0), adjust("b", 8, 12)],
    );
    assert!(p.reload && p.accepted.is_empty() && p.answered.is_empty());
    assert_eq!(p.deferred.len(), 2, "both wait for the reread");

    // Growing into its own charge plus what is free fits exactly.
    let p = plan(&state(16, 12), false, vec![adjust("a", 4, 8)]);
    assert_eq!(p.accepted.len(), 1);
    assert_eq!(p.allocation.used, vcpu(16));
    assert!(
        p.departments.contains("d"),
        "growth is guarded by the department"
    );

    // In one batch the shrink is planned first, and makes the growth fit.
    let p = plan(
        &state(16, 16),
        false,
        vec![adjust("b", 8, 12), adjust("a", 8, 2)],
    );
    let keys: Vec<&str> = p.accepted.iter().map(key).collect();
    assert_eq!(
        keys,
        [
            "/yunshu/claims/instances/d/a",
            "/yunshu/claims/instances/d/b"
        ]
    );
    assert_eq!(p.allocation.used, vcpu(14));
    assert!(p.answered.is_empty());

    // A shrink alone needs no department guard, even on a Down foundation.
    let mut down = state(16, 16);
    down.health = Health::Down;
    let p = plan(&down, false, vec![adjust("a", 8, 2)]);
    assert_eq!(p.accepted.len(), 1);
    assert!(p.departments.is_empty());
    assert_eq!(p.allocation.used, vcpu(10));
}
