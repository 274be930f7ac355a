//! Planning a batch against what the committer read: which jobs go into
//! the transaction, which are answered at once, and the allocation after.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use yunshu_core::{model::Health, resources::Limits, store::Revision};

use super::Job;
use crate::{
    inventory::{AllocationRecord, Inventory, check_fit},
    keys,
};

/// What a committer believes about its foundation.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct State {
    pub foundation_revision: Revision,
    pub generation: u64,
    pub health: Health,
    pub inventory: Inventory,
    pub allocation_revision: Revision,
    pub allocation: AllocationRecord,
    pub departments: BTreeMap<String, DeptState>,
}

impl State {
    /// Whether anything a guard compares moved between `self` and `fresh`:
    /// the foundation, its allocation, or a department `fresh` read.
    pub fn moved(&self, fresh: &State) -> bool {
        self.foundation_revision != fresh.foundation_revision
            || self.allocation_revision != fresh.allocation_revision
            || fresh
                .departments
                .iter()
                .any(|(name, d)| self.departments.get(name).map(|s| s.revision) != Some(d.revision))
    }
}

/// What a committer believes about one department.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DeptState {
    /// 0 when the department does not exist.
    pub revision: Revision,
    pub allowed: bool,
    pub limits: Option<Limits>,
}

/// A job answered without a transaction.
#[derive(Debug)]
pub(super) enum Early {
    /// Decide it again, for this reason.
    Bounce(String),
    /// The object moved since the decision.
    Stale,
}

/// A batch planned against a [`State`].
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub accepted: Vec<Job>,
    pub answered: Vec<(Job, Early)>,
    /// Jobs for the next round: a second job on a key already in the batch,
    /// or every job when the state must be reread first.
    pub deferred: Vec<Job>,
    pub allocation: AllocationRecord,
    /// Departments whose quota the accepted placements relied on.
    pub departments: BTreeSet<String>,
    /// The state is older than a decision: reread before planning again.
    pub reload: bool,
}

/// The keys a job writes or guards.
fn job_keys(job: &Job) -> Vec<String> {
    match job {
        Job::Place(p) | Job::Park(p) => {
            let mut keys = vec![p.key.clone()];
            keys.extend(keys::claim_for(&p.key));
            keys
        }
        Job::Release(r) => vec![r.claim_key.clone(), r.object_key.clone()],
        Job::Adjust(a) => vec![a.claim_key.clone(), a.object_key.clone()],
    }
}

/// Plans `jobs` against `state`. `fresh` says the state was read for this
/// attempt; a decision newer than a stale state asks for a reload instead
/// of bouncing.
pub(super) fn plan(state: &State, fresh: bool, jobs: Vec<Job>) -> Plan {
    let mut out = Plan {
        allocation: state.allocation.clone(),
        ..Plan::default()
    };
    let needs_reload = |job: &Job| match job {
        Job::Place(p) => {
            p.generation != state.generation || !state.departments.contains_key(&p.department)
        }
        Job::Adjust(a) => a.grows() && !state.departments.contains_key(&a.claim.department),
        Job::Park(_) | Job::Release(_) => false,
    };
    if !fresh && jobs.iter().any(needs_reload) {
        out.reload = true;
        out.deferred = jobs;
        return out;
    }
    // Releases and shrinks first, so growth in the same batch can use the room.
    let (releases, rest): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| match j {
        Job::Release(_) => true,
        Job::Adjust(a) => !a.grows(),
        Job::Place(_) | Job::Park(_) => false,
    });
    let mut touched = HashSet::new();
    // A growth refused on a state read earlier is planned again on a fresh
    // one: the foundation or the department may have room by now, and a
    // refusal makes no transaction whose guard would say so.
    let mut refused_on_old = false;
    for job in releases.into_iter().chain(rest) {
        let keys = job_keys(&job);
        if keys.iter().any(|k| touched.contains(k)) {
            out.deferred.push(job);
            continue;
        }
        let early = match &job {
            Job::Release(r) => {
                out.allocation = out.allocation.minus(&r.claim.department, &r.claim.charge);
                None
            }
            Job::Adjust(a) => match adjust(state, &out.allocation, a) {
                Ok(allocation) => {
                    out.allocation = allocation;
                    if a.grows() {
                        out.departments.insert(a.claim.department.clone());
                    }
                    None
                }
                Err(why) => Some(Early::Bounce(why)),
            },
            Job::Park(p) => p.cancelled().then_some(Early::Stale),
            Job::Place(p) if p.cancelled() => Some(Early::Stale),
            Job::Place(p) => match admit(state, &out.allocation, p) {
                Ok(allocation) => {
                    out.allocation = allocation;
                    out.departments.insert(p.department.clone());
                    None
                }
                Err(why) => Some(Early::Bounce(why)),
            },
        };
        match early {
            Some(_) if !fresh && matches!(job, Job::Adjust(_)) => {
                refused_on_old = true;
                out.deferred.push(job);
            }
            Some(e) => out.answered.push((job, e)),
            None => {
                touched.extend(keys);
                out.accepted.push(job);
            }
        }
    }
    if refused_on_old {
        out.reload = true;
        out.deferred.append(&mut out.accepted);
        out.allocation = state.allocation.clone();
        out.departments.clear();
    }
    out
}

/// The allocation after placing `p`, or why it cannot be placed.
fn admit(
    state: &State,
    allocation: &AllocationRecord,
    p: &super::PlaceJob,
) -> Result<AllocationRecord, String> {
    if p.generation != state.generation {
        return Err("the foundation's spec changed since the decision".into());
    }
    if !matches!(state.health, Health::Ready | Health::Degraded) {
        return Err(format!("the foundation is {:?}", state.health));
    }
    let dept = state
        .departments
        .get(&p.department)
        .filter(|d| d.revision != 0)
        .ok_or_else(|| format!("department {} not found", p.department))?;
    if !dept.allowed {
        return Err("not among the department's allowed foundations".into());
    }
    check_fit(
        &state.inventory,
        allocation,
        &p.department,
        dept.limits.as_ref(),
        &p.charge,
    )
    .map_err(|m| m.to_string())?;
    allocation
        .plus(&p.department, &p.charge)
        .ok_or_else(|| "resource amounts overflow".to_owned())
}

/// The allocation after moving `a`'s claim to its new charge, or why the
/// growth does not fit. Shrinking needs no check; growth is checked as a
/// placement of the new charge with the old one taken out, so a foundation
/// never holds more than it has (and a department no more than its quota
/// there) while the cloud catches up.
fn adjust(
    state: &State,
    allocation: &AllocationRecord,
    a: &super::AdjustJob,
) -> Result<AllocationRecord, String> {
    let department = &a.claim.department;
    let without = allocation.minus(department, &a.claim.charge);
    if a.grows() {
        if !matches!(state.health, Health::Ready | Health::Degraded) {
            return Err(format!("the foundation is {:?}", state.health));
        }
        let dept = state
            .departments
            .get(department)
            .filter(|d| d.revision != 0)
            .ok_or_else(|| format!("department {department} not found"))?;
        check_fit(
            &state.inventory,
            &without,
            department,
            dept.limits.as_ref(),
            &a.charge,
        )
        .map_err(|m| m.to_string())?;
    }
    without
        .plus(department, &a.charge)
        .ok_or_else(|| "resource amounts overflow".to_owned())
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
